// Steady-state VirtualMachine sync latency and throughput for 1000 simulator VMs, next to a bare
// Fastify route that receives the same bodies, measured in the same run over real HTTP on loopback.
//
//   npm run bench                  (VMS=1000 ROUNDS=5 CONCURRENCY=5,32 by default)
import Fastify from 'fastify';
import { Pool } from 'undici';
import { buildServer } from '../src/hooks/server.js';
import { ProviderRegistry } from '../src/hypervisors/registry.js';
import { SimulatedHypervisor } from '../src/hypervisors/simulator/index.js';
import { isReady, percentile, post, vmBody, type SyncBody } from './common.js';

const VMS = Number(process.env['VMS'] ?? 1000);
const ROUNDS = Number(process.env['ROUNDS'] ?? 5);
const CONCURRENCY = (process.env['CONCURRENCY'] ?? '5,32').split(',').map(Number);


async function measure(pool: Pool, path: string, bodies: SyncBody[], concurrency: number) {
  const latencies: number[] = [];
  const started = performance.now();
  for (let round = 0; round < ROUNDS; round++) {
    let next = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < bodies.length) {
          const body = bodies[next++]!;
          const t0 = performance.now();
          const { status } = await post(pool, path, body);
          latencies.push(performance.now() - t0);
          if (status !== 200) throw new Error(`${path} answered ${status}`);
        }
      }),
    );
  }
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), perSecond: latencies.length / seconds };
}

async function main(): Promise<void> {
  const durations = { create: 0, clone: 0, powerOn: 0, powerOff: 0, shutdown: 0, reboot: 0, reconfigure: 0, resizeDisk: 0, delete: 0, snapshot: 0, boot: 0 };
  const world = new SimulatedHypervisor({ durations, hosts: [{ name: 'sim-host-1', cpus: 4096, memoryBytes: 2 ** 50 }] });
  const hooks = buildServer({ registry: new ProviderRegistry(() => world), logger: false });
  const bare = Fastify({ logger: false, bodyLimit: 16 * 1024 * 1024 });
  bare.post('/sync', async () => ({ status: {}, children: [] }));
  const hooksURL = await hooks.listen({ port: 0, host: '127.0.0.1' });
  const bareURL = await bare.listen({ port: 0, host: '127.0.0.1' });
  const hooksPool = new Pool(hooksURL, { connections: Math.max(...CONCURRENCY) });
  const barePool = new Pool(bareURL, { connections: Math.max(...CONCURRENCY) });

  try {
    // Bring every VM to Ready, feeding each answer's status back as Metacontroller would.
    const bodies = Array.from({ length: VMS }, (_, index) => vmBody(index));
    for (let pass = 0; pass < 10; pass++) {
      let notReady = 0;
      for (const body of bodies) {
        const { status, json } = await post(hooksPool, '/hooks/virtualmachine/sync', body);
        if (status !== 200) throw new Error(`sync answered ${status}: ${JSON.stringify(json)}`);
        body.parent.status = json['status'];
        if (!isReady(json['status'])) notReady++;
      }
      if (notReady === 0) break;
      if (pass === 9) throw new Error(`${notReady} VMs never became Ready`);
    }

    console.log(`steady-state sync, ${VMS} VMs × ${ROUNDS} rounds, Node ${process.version}, loopback HTTP`);
    console.log('| route | concurrency | p50 ms | p99 ms | requests/s |');
    console.log('|---|---|---|---|---|');
    const rows: { concurrency: number; sync: Awaited<ReturnType<typeof measure>>; bare: Awaited<ReturnType<typeof measure>> }[] = [];
    for (const concurrency of CONCURRENCY) {
      const bareResult = await measure(barePool, '/sync', bodies, concurrency);
      const syncResult = await measure(hooksPool, '/hooks/virtualmachine/sync', bodies, concurrency);
      rows.push({ concurrency, sync: syncResult, bare: bareResult });
      for (const [name, result] of [['VM sync', syncResult], ['bare Fastify', bareResult]] as const) {
        console.log(`| ${name} | ${concurrency} | ${result.p50.toFixed(2)} | ${result.p99.toFixed(2)} | ${result.perSecond.toFixed(0)} |`);
      }
    }
    console.log('');
    console.log('| concurrency | p50 ratio | p99 ratio | throughput ratio (sync/bare) |');
    console.log('|---|---|---|---|');
    for (const row of rows) {
      console.log(
        `| ${row.concurrency} | ${(row.sync.p50 / row.bare.p50).toFixed(2)}× | ${(row.sync.p99 / row.bare.p99).toFixed(2)}× | ${(row.sync.perSecond / row.bare.perSecond).toFixed(2)} |`,
      );
    }
  } finally {
    await hooksPool.close();
    await barePool.close();
    await hooks.close();
    await bare.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
