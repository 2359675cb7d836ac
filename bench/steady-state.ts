// The hook server at steady state with many VMs (issue #17, benchmark 3): N simulator VMs brought
// to Ready, then resynced round after round the way Metacontroller does (5 workers, each sync
// carrying the status the previous answer wrote). The hook server runs in a child process of its
// own, so its memory is its own: RSS and heap are read from its /metrics (prom-client's process
// metrics), as are the hypervisor calls (virtrigaud_driver_calls_total).
//
// Reported: RSS and heap after the steady rounds, syncs per second, hypervisor calls per steady
// sync, and how many steady syncs answered a status different from the one they were sent (each
// one would be a Kubernetes write and another resync: the target is 0).
//
//   npm run bench:steady           (VMS=10000 ROUNDS=3 WORKERS=5)
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { buildServer } from '../src/hooks/server.js';
import { ProviderRegistry } from '../src/hypervisors/registry.js';
import { SimulatedHypervisor } from '../src/hypervisors/simulator/index.js';
import { isReady, post, vmBody, type SyncBody } from './common.js';

const VMS = Number(process.env['VMS'] ?? 10_000);
const ROUNDS = Number(process.env['ROUNDS'] ?? 3);
const WORKERS = Number(process.env['WORKERS'] ?? 5);
const SYNC = '/hooks/virtualmachine/sync';
const MiB = 1024 * 1024;

/** The child: the hook server over a simulator whose one host holds every VM, its tasks instant. */
async function serve(): Promise<void> {
  const durations = { create: 0, clone: 0, powerOn: 0, powerOff: 0, shutdown: 0, reboot: 0, reconfigure: 0, resizeDisk: 0, delete: 0, snapshot: 0, boot: 0 };
  const world = new SimulatedHypervisor({ durations, hosts: [{ name: 'sim-host-1', cpus: 1_000_000, memoryBytes: 2 ** 53 }] });
  const hooks = buildServer({ registry: new ProviderRegistry(() => world), logger: false });
  const url = await hooks.listen({ port: 0, host: '127.0.0.1' });
  console.log(url);
}

function startServer(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), 'serve'], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the hook server exited (${String(code)}) before listening`)));
    createInterface({ input: child.stdout! }).once('line', (url) => resolve({ child, url: url.trim() }));
  });
}

/** The sums of the metrics named, from the server's /metrics. */
async function metrics(pool: Pool): Promise<{ rss: number; heap: number; driverCalls: number }> {
  const response = await pool.request({ method: 'GET', path: '/metrics' });
  const text = await response.body.text();
  const sum = (name: string) =>
    text
      .split('\n')
      .filter((line) => line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{'))
      .reduce((total, line) => total + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
  return { rss: sum('virtrigaud_process_resident_memory_bytes'), heap: sum('virtrigaud_nodejs_heap_size_used_bytes'), driverCalls: sum('virtrigaud_driver_calls_total') };
}

/** One sync of every body by WORKERS workers; the answers' statuses become the next bodies'. */
async function round(pool: Pool, bodies: SyncBody[]): Promise<{ seconds: number; changed: number; notReady: number }> {
  let next = 0;
  let changed = 0;
  let notReady = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: WORKERS }, async () => {
      while (next < bodies.length) {
        const body = bodies[next++]!;
        const { status, json } = await post(pool, SYNC, body);
        if (status !== 200) throw new Error(`sync answered ${status}: ${JSON.stringify(json).slice(0, 300)}`);
        if (JSON.stringify(json['status']) !== JSON.stringify(body.parent.status)) changed++;
        if (!isReady(json['status'])) notReady++;
        body.parent.status = json['status'];
      }
    }),
  );
  return { seconds: (performance.now() - started) / 1000, changed, notReady };
}

async function main(): Promise<void> {
  const { child, url } = await startServer();
  const pool = new Pool(url, { connections: WORKERS + 1 });
  try {
    const bodies = Array.from({ length: VMS }, (_, index) => vmBody(index));
    const idle = await metrics(pool);
    let passes = 0;
    for (let left = VMS; left > 0; passes++) {
      if (passes === 20) throw new Error(`${left} VMs never became Ready`);
      left = (await round(pool, bodies)).notReady;
    }
    const ready = await metrics(pool);
    const steady: Awaited<ReturnType<typeof round>>[] = [];
    for (let r = 0; r < ROUNDS; r++) steady.push(await round(pool, bodies));
    const after = await metrics(pool);

    const syncs = VMS * ROUNDS;
    const seconds = steady.reduce((total, r) => total + r.seconds, 0);
    const changed = steady.reduce((total, r) => total + r.changed, 0);
    console.log(`hook server at steady state: ${VMS} simulator VMs, ${ROUNDS} rounds, ${WORKERS} workers, Node ${process.version}, loopback HTTP`);
    console.log('| measure | value |');
    console.log('|---|---|');
    console.log(`| RSS idle / all Ready / after steady rounds | ${(idle.rss / MiB).toFixed(0)} / ${(ready.rss / MiB).toFixed(0)} / ${(after.rss / MiB).toFixed(0)} MiB |`);
    console.log(`| heap used idle / all Ready / after steady rounds | ${(idle.heap / MiB).toFixed(0)} / ${(ready.heap / MiB).toFixed(0)} / ${(after.heap / MiB).toFixed(0)} MiB |`);
    console.log(`| syncs to bring all to Ready | ${passes} passes |`);
    console.log(`| steady syncs per second | ${(syncs / seconds).toFixed(0)} |`);
    console.log(`| hypervisor calls per steady sync | ${((after.driverCalls - ready.driverCalls) / syncs).toFixed(3)} |`);
    console.log(`| steady syncs whose status changed | ${changed} of ${syncs} |`);
    if (changed > 0) process.exitCode = 1;
  } finally {
    await pool.close();
    child.kill();
  }
}

const entry = process.argv[2] === 'serve' ? serve : main;
entry().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
