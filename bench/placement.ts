// What a placement policy costs: a VMSet of 200 replicas on 8 simulator hosts, once without a
// policy and once spread by a VMSet-label policy with maxVMsPerNode, through the whole system (the
// Metacontroller stand-in, the real hook server, one fake clock). Prints wall and fake time to all
// Ready, hook calls and inventory calls per VM, creates and deletes, and the VMs per host.
//
//   npm run bench:placement        (REPLICAS=200, HOSTS=8 by default)
import type { Test } from 'tap';
import { GiB } from '../src/contracts/quantity.js';
import { API, lifecycle } from '../test/helpers/lifecycle.js';

const REPLICAS = Number(process.env['REPLICAS'] ?? 200);
const HOSTS = Number(process.env['HOSTS'] ?? 8);

async function run(policy: Record<string, unknown> | undefined): Promise<void> {
  const teardowns: (() => unknown)[] = [];
  const fakeTest = { teardown: (fn: () => unknown) => teardowns.push(fn) } as unknown as Test;
  const hosts = Array.from({ length: HOSTS }, (_, i) => ({ name: `sim-${String(i).padStart(2, '0')}`, cpus: 64, memoryBytes: 256 * GiB }));
  const env = await lifecycle(fakeTest, { simulator: { hosts } });
  await env.basics({ cpus: 1, memory: '1Gi' });
  if (policy) env.cluster.create({ apiVersion: API, kind: 'VMPlacementPolicy', metadata: { name: 'spread', namespace: 'default' }, spec: policy });
  const before = { calls: env.metacontroller.calls.length, inventory: env.world.callCount('inventory'), fake: env.clock.now(), wall: performance.now() };
  env.cluster.create({
    apiVersion: API,
    kind: 'VMSet',
    metadata: { name: 'web', namespace: 'default' },
    spec: {
      replicas: REPLICAS,
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: {
          providerRef: { name: 'sim' },
          classRef: { name: 'small' },
          imageRef: { name: 'ubuntu-22' },
          networks: [{ name: 'lan' }],
          disks: [{ name: 'root', size: '10Gi' }],
          ...(policy ? { placementRef: { name: 'spread' } } : {}),
        },
      },
    },
  });
  const status = () => (env.get('VMSet', 'web')?.['status'] ?? {}) as Record<string, unknown>;
  await env.metacontroller.settle(() => status()['availableReplicas'] === REPLICAS && env.world.listVMs().length === REPLICAS, {
    maxSyncs: 200 * REPLICAS,
    maxFakeMs: 24 * 3600_000,
  });
  const hookCalls = env.metacontroller.calls.length - before.calls;
  const inventory = env.world.callCount('inventory') - before.inventory;
  const perHost = new Map<string, number>();
  for (const vm of env.world.listVMs()) perHost.set(vm.host ?? '?', (perHost.get(vm.host ?? '?') ?? 0) + 1);
  const counts = [...perHost.values()];
  console.log(
    `${policy ? 'with policy   ' : 'without policy'}: ${REPLICAS} VMs Ready in ${((performance.now() - before.wall) / 1000).toFixed(1)} s wall, ` +
      `${((env.clock.now() - before.fake) / 1000).toFixed(0)} s fake; ${(hookCalls / REPLICAS).toFixed(1)} hook calls and ` +
      `${(inventory / REPLICAS).toFixed(2)} inventory calls per VM; ${env.world.callCount('create')} creates, ${env.world.callCount('delete')} deletes; ` +
      `VMs per host ${Math.min(...counts)}–${Math.max(...counts)} over ${perHost.size} hosts`,
  );
  for (const teardown of teardowns.reverse()) await teardown();
}

await run(undefined);
await run({ spreadBy: ['virtrigaud.io/vmset'], constraints: { maxVMsPerNode: Math.ceil(REPLICAS / HOSTS) + 1, minFreeMemory: '8Gi' } });
