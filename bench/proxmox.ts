// Proxmox at scale, against the fake PVE (official-schema validation, 50 ms latency, 1 s tasks):
//  1. time for N VMs from create to Running with an IP, driven the way Metacontroller drives
//     hooks (5 workers, a sync again at once when the status changed, else after resyncAfterSeconds);
//  2. PVE API calls per steady-state VM sync, over simulated hours of 60-second resyncs. Their
//     cost is set by the details cache's bounds (src/hypervisors/proxmox/details.ts): a VM's config
//     and status are read again every 30 min, its guest addresses every 60 min (0.085 per sync
//     measured at the defaults; keep it at or below 0.1).
//
//   npm run bench:proxmox          (VMS=500 WORKERS=5 LATENCY_MS=50 TASK_MS=1000 STEADY_MINUTES=60)
import { Pool } from 'undici';
import { buildServer } from '../src/hooks/server.js';
import { GiB } from '../src/contracts/quantity.js';
import { ProxmoxDriver, proxmoxConfigFromEnv } from '../src/hypervisors/proxmox/index.js';
import { FakePve } from '../test/fakes/proxmox/index.js';
import { exampleSync, isReady, post, vmBody, type SyncBody } from './common.js';

const VMS = Number(process.env['VMS'] ?? 500);
const WORKERS = Number(process.env['WORKERS'] ?? 5);
const LATENCY_MS = Number(process.env['LATENCY_MS'] ?? 50);
const TASK_MS = Number(process.env['TASK_MS'] ?? 1000);
const STEADY_MINUTES = Number(process.env['STEADY_MINUTES'] ?? 60);

/** Wall time plus an offset the steady-state phase moves forward, so caches age as in real hours. */
const clock = { offset: 0, now: () => Date.now() + clock.offset };

function proxmoxBody(index: number, endpoint: string): SyncBody {
  const body = vmBody(index, exampleSync);
  body.parent.spec = { providerRef: { name: 'pve' }, classRef: { name: 'small' }, imageRef: { name: 'ubuntu-22' }, networks: [{ name: 'lan' }] };
  const provider = structuredClone(Object.values(exampleSync.related['Provider.infra.virtrigaud.io/v1beta1'] ?? {})[0] ?? {});
  (provider['metadata'] as Record<string, unknown>)['name'] = 'pve';
  provider['spec'] = { type: 'proxmox', endpoint, runtime: { mode: 'Remote' } };
  body.related['Provider.infra.virtrigaud.io/v1beta1'] = { 'default/pve': provider };
  const vmClass = Object.values(body.related['VMClass.infra.virtrigaud.io/v1beta1'] ?? {})[0];
  if (vmClass) vmClass['spec'] = { cpus: 1, memory: '1Gi' };
  return body;
}

async function main(): Promise<void> {
  const nodes = Array.from({ length: 4 }, (_, i) => ({ name: `pve${i + 1}`, cpus: 128, memoryBytes: 512 * GiB }));
  const pve = await FakePve.start({
    clock,
    nodes,
    latencyMs: LATENCY_MS,
    taskDurationMs: TASK_MS,
    bootMs: TASK_MS,
    storages: [
      { id: 'local-lvm', type: 'lvmthin', content: ['images', 'rootdir'], capacityBytes: 64 * 1024 * GiB },
      { id: 'local', type: 'dir', content: ['iso', 'vztmpl', 'snippets', 'import'], capacityBytes: 1024 * GiB },
    ],
  });
  const driver = new ProxmoxDriver(
    proxmoxConfigFromEnv({ PVE_ENDPOINT: pve.url, PVE_TOKEN_ID: 'virtrigaud@pve!vrtg', PVE_TOKEN_SECRET: 'secret-token' }),
    { now: () => clock.now() },
  );
  const hooks = buildServer({ registry: { driverFor: async () => driver }, clock, logger: false, budgetMs: 9000 });
  const url = await hooks.listen({ port: 0, host: '127.0.0.1' });
  const pool = new Pool(url, { connections: WORKERS });
  const bodies = Array.from({ length: VMS }, (_, index) => proxmoxBody(index, pve.url));

  try {
    // Phase 1: a Metacontroller-like work queue.
    const due = bodies.map(() => 0);
    const done = bodies.map(() => false);
    let syncs = 0;
    const started = Date.now();
    const ready = (i: number) => isReady(bodies[i]!.parent.status) && ((bodies[i]!.parent.status as { ips?: string[] }).ips?.length ?? 0) > 0;
    const busy = new Set<number>();
    await Promise.all(
      Array.from({ length: WORKERS }, async () => {
        while (done.some((d) => !d)) {
          const now = Date.now();
          let next = -1;
          for (let i = 0; i < bodies.length; i++) {
            if (!done[i] && !busy.has(i) && due[i]! <= now && (next < 0 || due[i]! < due[next]!)) next = i;
          }
          if (next < 0) {
            await new Promise((resolve) => setTimeout(resolve, 20));
            continue;
          }
          busy.add(next);
          const body = bodies[next]!;
          const { status, json } = await post(pool, '/hooks/virtualmachine/sync', body);
          syncs++;
          if (status !== 200) throw new Error(`sync answered ${status}: ${JSON.stringify(json)}`);
          const changed = JSON.stringify(json['status']) !== JSON.stringify(body.parent.status);
          body.parent.status = json['status'];
          done[next] = ready(next);
          due[next] = Date.now() + (changed ? 0 : Number(json['resyncAfterSeconds'] ?? 60) * 1000);
          busy.delete(next);
        }
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    const vms = pve.vms().filter((vm) => String(vm.tags ?? '').includes('virtrigaud')).length;

    // Phase 2: every VM synced once per simulated minute for STEADY_MINUTES minutes.
    const before = pve.requests.length;
    let steadySyncs = 0;
    for (let minute = 0; minute < STEADY_MINUTES; minute++) {
      clock.offset += 60_000;
      let next = 0;
      await Promise.all(
        Array.from({ length: WORKERS }, async () => {
          while (next < bodies.length) {
            const body = bodies[next++]!;
            const { json } = await post(pool, '/hooks/virtualmachine/sync', body);
            body.parent.status = json['status'];
            steadySyncs++;
          }
        }),
      );
    }
    const steadyRequests = pve.requests.slice(before);
    const calls = steadyRequests.length;
    const byKind = new Map<string, number>();
    for (const request of steadyRequests) {
      const kind = `${request.method} ${request.path.replace(/\/\d+/g, '/{id}').replace(/\/nodes\/[^/]+/, '/nodes/{node}')}`;
      byKind.set(kind, (byKind.get(kind) ?? 0) + 1);
    }

    console.log(`Proxmox driver against the fake PVE: ${VMS} VMs, ${WORKERS} hook workers, ${LATENCY_MS} ms latency, ${TASK_MS} ms tasks`);
    console.log('| measure | value |');
    console.log('|---|---|');
    console.log(`| create → Running with an IP, all ${VMS} VMs | ${seconds.toFixed(1)} s |`);
    console.log(`| VM syncs to get there | ${syncs} (${(syncs / VMS).toFixed(1)} per VM) |`);
    console.log(`| VMs on PVE afterwards | ${vms} |`);
    console.log(`| PVE API calls per steady-state sync (${STEADY_MINUTES} simulated minutes, ${steadySyncs} syncs) | ${(calls / steadySyncs).toFixed(3)} |`);
    for (const [kind, count] of [...byKind].sort((a, b) => b[1] - a[1])) {
      console.log(`| … of which ${kind} | ${(count / steadySyncs).toFixed(3)} |`);
    }
  } finally {
    await pool.close();
    await hooks.close();
    await pve.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
