// VMPlacementPolicy through the whole system on the simulator: the seed's policy, spreading,
// maxVMsPerNode with a VM waiting for a slot, ten syncs on two hook-server replicas racing for the
// last slot, a policy changed under placed VMs, and the bounded cost of a VM no host fits.
import t from 'tap';
import type { Test } from 'tap';
import { GiB } from '../../src/contracts/quantity.js';
import { ProviderRegistry } from '../../src/hypervisors/registry.js';
import type { KubeObject } from '../harness/index.js';
import { API, lifecycle, type Conditionish } from '../helpers/lifecycle.js';
import { RaceGate, raceSyncs } from '../helpers/race-gate.js';
import { testServer } from '../helpers/server.js';

type Env = Awaited<ReturnType<typeof lifecycle>>;

const HOSTS = ['sim-a', 'sim-b', 'sim-c'].map((name) => ({ name, cpus: 32, memoryBytes: 64 * GiB }));

async function system(t: Test): Promise<Env> {
  const env = await lifecycle(t, { simulator: { hosts: HOSTS } });
  await env.basics();
  return env;
}

function policy(env: Env, name: string, spec: Record<string, unknown>): void {
  env.cluster.create({ apiVersion: API, kind: 'VMPlacementPolicy', metadata: { name, namespace: 'default' }, spec });
}

function createVM(env: Env, name: string, labels: Record<string, string>, spec: Record<string, unknown> = {}): KubeObject {
  return env.createVM(name, spec, labels);
}

const placement = (env: Env, name: string) => env.status(name)['placement'] as { host: string; state: string } | undefined;
const perHost = (env: Env) => {
  const counts: Record<string, number> = {};
  for (const vm of env.world.listVMs()) counts[vm.host ?? '?'] = (counts[vm.host ?? '?'] ?? 0) + 1;
  return counts;
};
const names = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}-${i}`);

t.test('the seed\'s policy: the VM goes to a selected node, its status names the host, the policy counts it', async (t) => {
  const env = await lifecycle(t, { simulator: { hosts: ['pve-node-1', 'pve-node-2', 'pve-node-3'].map((name) => ({ name, cpus: 32, memoryBytes: 64 * GiB })) } });
  await env.basics();
  policy(env, 'production-placement', {
    nodeSelector: ['pve-node-1', 'pve-node-2'],
    antiAffinity: [{ key: 'vm.type', operator: 'In', values: ['database'] }],
    constraints: { maxVMsPerNode: 10, minFreeMemory: '4Gi' },
  });
  createVM(env, 'db-1', { 'vm.type': 'database' }, { placementRef: { name: 'production-placement' } });
  createVM(env, 'db-2', { 'vm.type': 'database' }, { placementRef: { name: 'production-placement' } });
  createVM(env, 'db-3', { 'vm.type': 'database' }, { placementRef: { name: 'production-placement' } });
  await env.metacontroller.settle(() => env.isReady('db-1') && env.isReady('db-2') && env.condition('Placed', 'db-3')?.reason === 'Unschedulable', { maxSyncs: 2000 });

  const hosts = ['db-1', 'db-2'].map((name) => env.status(name)['host']).sort();
  t.same(hosts, ['pve-node-1', 'pve-node-2'], 'one database VM per selected node');
  t.match(env.condition('Placed', 'db-1'), { status: 'True', reason: 'Placed' });
  t.match(env.condition('PlacementViolated', 'db-1'), { status: 'False', reason: 'PolicyMet' });
  const on1 = env.status('db-1')['host'] === 'pve-node-1' ? 'db-1' : 'db-2';
  const on2 = on1 === 'db-1' ? 'db-2' : 'db-1';
  t.equal(
    env.condition('Placed', 'db-3')?.message,
    `no host fits: pve-node-1: antiAffinity vm.type In [database] (VM ${on1}); pve-node-2: antiAffinity vm.type In [database] (VM ${on2}); pve-node-3: not in nodeSelector`,
  );
  t.equal(env.condition('Ready', 'db-3')?.reason, 'Unschedulable');
  t.equal(env.world.listVMs().length, 2, 'nothing created for the VM no host fits');

  await env.metacontroller.settle(() => (env.get('VMPlacementPolicy', 'production-placement')?.['status'] as { vmCount?: number } | undefined)?.vmCount === 3);
  const status = env.get('VMPlacementPolicy', 'production-placement')?.['status'] as { vmCount: number; hosts: unknown; conditions: Conditionish[] };
  t.same(status.hosts, [{ name: 'pve-node-1', vms: 1 }, { name: 'pve-node-2', vms: 1 }]);
  t.match(status.conditions, [{ type: 'Ready', status: 'True' }]);
});

t.test('20 VMs spread by their set label over 3 hosts: 7, 7 and 6', async (t) => {
  const env = await system(t);
  policy(env, 'spread', { spreadBy: ['app'] });
  // Unrelated VMs without the label weigh on free memory, not on the spread.
  for (const name of names('other', 3)) createVM(env, name, {}, { placement: { host: 'sim-a' } });
  for (const name of names('web', 20)) createVM(env, name, { app: 'web' }, { placementRef: { name: 'spread' } });
  await env.metacontroller.settle(() => names('web', 20).every((name) => env.isReady(name)), { maxSyncs: 8000 });
  const web = env.world.listVMs().filter((vm) => vm.name.startsWith('web-'));
  const counts: Record<string, number> = {};
  for (const vm of web) counts[vm.host ?? '?'] = (counts[vm.host ?? '?'] ?? 0) + 1;
  t.same(Object.values(counts).sort(), [6, 7, 7], JSON.stringify(counts));
});

t.test('maxVMsPerNode 2 with 7 VMs on 3 hosts: 6 placed, the 7th Unschedulable until one is deleted', async (t) => {
  const env = await system(t);
  policy(env, 'two-each', { constraints: { maxVMsPerNode: 2 } });
  let overfull = 0;
  env.metacontroller.afterEachSync = () => {
    const on: Record<string, number> = {};
    for (const vm of env.world.listVMs()) if (vm.powerState === 'On') on[vm.host ?? '?'] = (on[vm.host ?? '?'] ?? 0) + 1;
    overfull += Object.values(on).filter((count) => count > 2).length;
  };
  for (const name of names('vm', 7)) createVM(env, name, {}, { placementRef: { name: 'two-each' } });
  const waiting = () => names('vm', 7).find((name) => env.condition('Placed', name)?.reason === 'Unschedulable');
  await env.metacontroller.settle(() => names('vm', 7).filter((name) => env.isReady(name)).length === 6 && waiting() !== undefined, { maxSyncs: 4000 });
  t.same(perHost(env), { 'sim-a': 2, 'sim-b': 2, 'sim-c': 2 });
  const last = waiting() ?? '';
  t.equal(env.condition('Placed', last)?.message, 'no host fits: sim-a: maxVMsPerNode 2 reached; sim-b: maxVMsPerNode 2 reached; sim-c: maxVMsPerNode 2 reached');

  const inventoryBefore = env.world.callCount('inventory');
  await env.metacontroller.advance(60 * 60_000);
  t.equal(env.world.callCount('create'), 6, 'no create while no host fits');
  const retries = env.world.callCount('inventory') - inventoryBefore;
  // One per 30 s retry of the waiting VM, and the Provider's own once a minute.
  t.ok(retries <= 3600 / 30 + 3600 / 60 + 2, `an hour of waiting costs ${retries} inventory calls`);

  const gone = names('vm', 7).find((name) => name !== last && env.status(name)['host'] === 'sim-b') ?? '';
  env.cluster.delete(API, 'VirtualMachine', 'default', gone);
  await env.metacontroller.settle(() => env.isReady(last) && env.get('VirtualMachine', gone) === undefined, { maxSyncs: 2000, maxFakeMs: 5 * 60_000 });
  t.equal(env.status(last)['host'], 'sim-b', 'placed in the slot that was freed');
  t.same(perHost(env), { 'sim-a': 2, 'sim-b': 2, 'sim-c': 2 });
  t.equal(overfull, 0, 'never more than 2 VMs running on a host');
});

t.test('ten syncs on two hook-server replicas race for the last slot: one keeps it, the other copy is deleted, nothing else is created', async (t) => {
  const gate = new RaceGate(10);
  const env = await lifecycle(t, { simulator: { hosts: HOSTS }, registry: (simulators) => gate.wrap(simulators) });
  await env.basics();
  policy(env, 'one-each', { constraints: { maxVMsPerNode: 1 } });
  createVM(env, 'first-a', {}, { placementRef: { name: 'one-each' }, placement: { host: 'sim-a' } });
  createVM(env, 'first-b', {}, { placementRef: { name: 'one-each' }, placement: { host: 'sim-b' } });
  await env.metacontroller.settle(() => env.isReady('first-a') && env.isReady('first-b'), { maxSyncs: 2000 });
  const recorded = [...env.metacontroller.calls].reverse().find((call) => call.controller === 'virtrigaud-virtualmachine' && call.hook === 'sync');
  const related = (recorded?.request as { related: object }).related;

  // A second replica: its own process state (no shared memory), the same hypervisor.
  const replica = testServer({ clock: env.clock, registry: () => gate.wrap(new ProviderRegistry(() => env.world)) });
  t.teardown(() => replica.app.close());
  const racers = names('racer', 10);
  for (const name of racers) createVM(env, name, {}, { placementRef: { name: 'one-each' } });
  gate.armed = true;
  t.same(await raceSyncs(env, [env.app, replica.app], racers, related), []);
  gate.armed = false;
  t.equal(env.world.callCount('create'), 4, 'each replica created one VM for the last slot (each lets one sync through)');

  let overfull = 0;
  env.metacontroller.afterEachSync = () => {
    const on = env.world.listVMs().filter((vm) => vm.powerState === 'On' && vm.host === 'sim-c').length;
    if (on > 1) overfull += 1;
  };
  await env.metacontroller.settle(() => racers.filter((name) => env.isReady(name)).length === 1 && env.world.listVMs().length === 3 && racers.filter((name) => env.condition('Placed', name)?.reason === 'Unschedulable').length === 9, {
    maxSyncs: 4000,
  });
  t.equal(overfull, 0, 'the copy that lost never ran');
  t.same(perHost(env), { 'sim-a': 1, 'sim-b': 1, 'sim-c': 1 });
  t.equal(env.world.callCount('create'), 4, 'no create beyond the two racing copies');
  t.equal(env.world.callCount('delete'), 1, 'the copy placed second deleted itself, once');
  const winner = racers.find((name) => env.isReady(name)) ?? '';
  t.equal(placement(env, winner)?.state, 'Placed');
});

t.test('a policy changed under placed VMs: PlacementViolated, the VMs stay where they are, checked once', async (t) => {
  const env = await system(t);
  policy(env, 'anywhere', {});
  for (const name of names('vm', 3)) createVM(env, name, {}, { placementRef: { name: 'anywhere' }, placement: { host: 'sim-a' } });
  await env.metacontroller.settle(() => names('vm', 3).every((name) => env.isReady(name)), { maxSyncs: 2000 });
  const ids = env.world.listVMs().map((vm) => `${vm.id}@${vm.host}`).sort();
  env.cluster.patchSpec(API, 'VMPlacementPolicy', 'default', 'anywhere', { constraints: { maxVMsPerNode: 2 } });
  // The VMs learn of the change at their next sync (a policy change does not resync them).
  await env.metacontroller.settle(() => names('vm', 3).every((name) => env.condition('PlacementViolated', name)?.reason !== undefined && placement(env, name)?.state === 'Placed') && names('vm', 3).some((name) => env.condition('PlacementViolated', name)?.status === 'True'), { maxSyncs: 2000, maxFakeMs: 20 * 60_000 });
  const violated = names('vm', 3).filter((name) => env.condition('PlacementViolated', name)?.status === 'True');
  t.equal(violated.length, 1, 'only the VM placed last is over the limit');
  t.match(env.condition('PlacementViolated', violated[0] ?? '')?.message, /^sim-a: maxVMsPerNode 2 reached; the VM is not moved$/);
  t.same(env.world.listVMs().map((vm) => `${vm.id}@${vm.host}`).sort(), ids, 'nothing moved or recreated');
  t.ok(names('vm', 3).every((name) => env.isReady(name)), 'still Ready: the VMs work');
  const inventory = env.world.callCount('inventory');
  await env.metacontroller.advance(60 * 60_000);
  const provider = 60 + 1; // the Provider's own health check, once a minute, both ends counted
  t.ok(env.world.callCount("inventory") - inventory <= provider, `no placement inventory calls once the change was checked (${env.world.callCount("inventory") - inventory} in an hour)`);
});

t.test('an explicit host outside the policy is Unschedulable, never created elsewhere', async (t) => {
  const env = await system(t);
  policy(env, 'a-and-b', { nodeSelector: ['sim-a', 'sim-b'] });
  createVM(env, 'pinned', {}, { placementRef: { name: 'a-and-b' }, placement: { host: 'sim-c' } });
  await env.metacontroller.settle(() => env.condition('Placed', 'pinned')?.reason === 'Unschedulable');
  t.equal(env.condition('Placed', 'pinned')?.message, 'no host fits: sim-c: not in nodeSelector');
  t.equal(env.world.listVMs().length, 0);
});

t.test('a missing policy stops the VM before any hypervisor call', async (t) => {
  const env = await system(t);
  createVM(env, 'orphan', {}, { placementRef: { name: 'nope' } });
  await env.metacontroller.settle(() => env.condition('ReferencesResolved', 'orphan')?.reason === 'PlacementPolicyNotFound');
  t.equal(env.condition('ReferencesResolved', 'orphan')?.message, 'VMPlacementPolicy nope not found');
  t.equal(env.world.callCount('create'), 0);
});

t.test('minFreeMemory keeps room on every host', async (t) => {
  const env = await system(t);
  policy(env, 'roomy', { constraints: { minFreeMemory: '58Gi' } });
  for (const name of names('vm', 4)) createVM(env, name, {}, { placementRef: { name: 'roomy' } });
  const waiting = () => names('vm', 4).find((name) => env.condition('Placed', name)?.reason === 'Unschedulable');
  await env.metacontroller.settle(() => names('vm', 4).filter((name) => env.isReady(name)).length === 3 && waiting() !== undefined, { maxSyncs: 3000 });
  t.same(perHost(env), { 'sim-a': 1, 'sim-b': 1, 'sim-c': 1 }, '64Gi hosts and 4Gi VMs: a second VM would leave 56Gi');
  t.equal(
    env.condition('Placed', waiting() ?? '')?.message,
    'no host fits: sim-a: 56Gi free after it < minFreeMemory 58Gi; sim-b: 56Gi free after it < minFreeMemory 58Gi; sim-c: 56Gi free after it < minFreeMemory 58Gi',
  );
});

t.test('a VMSet whose template references a spreading policy puts its 6 replicas 2 per host, beside other VMs', async (t) => {
  const env = await system(t);
  policy(env, 'spread-sets', { spreadBy: ['virtrigaud.io/vmset'] });
  for (const name of names('big', 2)) createVM(env, name, {}, { placement: { host: 'sim-a' } });
  env.cluster.create({
    apiVersion: API,
    kind: 'VMSet',
    metadata: { name: 'web', namespace: 'default' },
    spec: {
      replicas: 6,
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: {
          providerRef: { name: 'sim' },
          classRef: { name: 'small' },
          imageRef: { name: 'ubuntu-22' },
          networks: [{ name: 'lan' }],
          disks: [{ name: 'root', size: '40Gi' }],
          placementRef: { name: 'spread-sets' },
        },
      },
    },
  });
  await env.metacontroller.settle(() => names('web', 6).every((name) => env.isReady(name)), { maxSyncs: 4000 });
  const counts: Record<string, number> = {};
  for (const name of names('web', 6)) {
    const host = String(env.status(name)['host']);
    counts[host] = (counts[host] ?? 0) + 1;
  }
  t.same(counts, { 'sim-a': 2, 'sim-b': 2, 'sim-c': 2 }, 'the set label, not free memory, decides');
});

t.test('the datastore constraints: an allowed datastore is chosen, and one too full is Unschedulable', async (t) => {
  const env = await system(t);
  policy(env, 'ds2', { constraints: { datastores: ['sim-ds-2'], minFreeStorage: '4020Gi' } });
  createVM(env, 'fits', {}, { placementRef: { name: 'ds2' } });
  await env.metacontroller.settle(() => env.isReady('fits'));
  t.match(env.status('fits')['hardware'], { disks: [{ name: 'root', datastore: 'sim-ds-2' }] });
  createVM(env, 'full', {}, { placementRef: { name: 'ds2' } });
  await env.metacontroller.settle(() => env.condition('Placed', 'full')?.reason === 'Unschedulable');
  t.equal(env.condition('Placed', 'full')?.message, 'no host fits: datastore sim-ds-2: 4016Gi free after the disks < minFreeStorage 4020Gi');
  createVM(env, 'elsewhere', {}, { placementRef: { name: 'ds2' }, placement: { datastore: 'sim-ds-1' } });
  await env.metacontroller.settle(() => env.condition('Placed', 'elsewhere')?.reason === 'Unschedulable');
  t.equal(env.condition('Placed', 'elsewhere')?.message, 'no host fits: datastore sim-ds-1 is not in the policy\'s constraints.datastores');
  t.equal(env.world.listVMs().length, 1);
});

t.test('a new VM stays off until its placement is verified, then starts', async (t) => {
  const env = await system(t);
  policy(env, 'any', {});
  createVM(env, 'web', {}, { placementRef: { name: 'any' } });
  // The test server's call budget is 2 s: the settle window is 2 s + 5 s of clock skew.
  await env.metacontroller.advance(6_000);
  t.equal(env.world.listVMs()[0]?.powerState, 'Off', 'created, not started within the settle window');
  t.match(env.condition('Placed', 'web'), { status: 'Unknown', reason: 'Verifying' });
  t.equal(placement(env, 'web')?.state, 'Verifying');
  await env.metacontroller.settle(() => env.isReady('web'));
  t.match(env.condition('Placed', 'web'), { status: 'True', reason: 'Placed', message: /verified against the VMs placed before it/ });
  t.equal(env.world.callCount('delete'), 0);
});

t.test('a status lost between create and verification: the VM is checked and adopted, never deleted', async (t) => {
  const env = await system(t);
  policy(env, 'two', { constraints: { maxVMsPerNode: 1 } });
  createVM(env, 'web', {}, { placementRef: { name: 'two' } });
  await env.metacontroller.settle(() => env.world.listVMs().length === 1);
  const { placement: _lost, ...rest } = env.status('web');
  env.cluster.updateStatus(API, 'VirtualMachine', 'default', 'web', rest);
  await env.metacontroller.settle(() => env.isReady('web'));
  t.equal(placement(env, 'web')?.state, 'Placed');
  t.match(env.condition('Placed', 'web'), { status: 'True', message: /found placed/ });
  t.equal(env.world.callCount('delete'), 0);
});

t.test('an inventory that fails for two hours: nothing is created, calls back off, then the VM is placed', async (t) => {
  const env = await system(t);
  policy(env, 'any', {});
  env.world.injectFault('inventory', { kind: 'unreachable', times: Infinity, until: env.clock.now() + 2 * 60 * 60_000 });
  createVM(env, 'web', {}, { placementRef: { name: 'any' } });
  await env.metacontroller.advance(2 * 60 * 60_000 - 60_000);
  t.equal(env.world.callCount('create'), 0, 'no create without a placement');
  // The Provider reads the same inventory: it turns unready first, and the VM waits for it.
  t.match(env.condition('Ready', 'web')?.reason, /^(Unreachable|ProviderNotReady)$/);
  const calls = env.world.callCount('inventory');
  t.ok(calls < 400, `${calls} inventory calls in two hours, the VM's backing off and the Provider's`);
  await env.metacontroller.settle(() => env.isReady('web'), { maxFakeMs: 30 * 60_000 });
  t.equal(env.world.callCount('create'), 1);
});

t.test('a loser whose delete keeps failing for an hour backs off, never starts, and is deleted once the fault clears', async (t) => {
  const gate = new RaceGate(2);
  const env = await lifecycle(t, { simulator: { hosts: HOSTS.slice(0, 1) }, registry: (simulators) => gate.wrap(simulators) });
  await env.basics();
  policy(env, 'one', { constraints: { maxVMsPerNode: 1 } });
  createVM(env, 'seed', {}, { placementRef: { name: 'one' } });
  await env.metacontroller.settle(() => env.isReady('seed'), { maxSyncs: 500 });
  env.cluster.delete(API, 'VirtualMachine', 'default', 'seed');
  await env.metacontroller.settle(() => env.vm('seed') === undefined && env.world.listVMs().length === 0, { maxSyncs: 500 });
  const recorded = [...env.metacontroller.calls].reverse().find((call) => call.controller === 'virtrigaud-virtualmachine' && call.hook === 'sync');
  const related = (recorded?.request as { related: object }).related;
  const replica = testServer({ clock: env.clock, registry: () => gate.wrap(new ProviderRegistry(() => env.world)) });
  t.teardown(() => replica.app.close());
  createVM(env, 'x', {}, { placementRef: { name: 'one' } });
  createVM(env, 'y', {}, { placementRef: { name: 'one' } });
  gate.armed = true;
  t.same(await raceSyncs(env, [env.app, replica.app], ['x', 'y'], related), []);
  gate.armed = false;
  t.equal(env.world.listVMs().length, 2, 'both replicas took the one slot');
  env.world.injectFault('delete', { kind: 'error', times: Infinity, message: 'datastore busy' });
  let running = 0;
  env.metacontroller.afterEachSync = () => {
    running = Math.max(running, env.world.listVMs().filter((vm) => vm.powerState === 'On').length);
  };
  await env.metacontroller.advance(60 * 60_000);
  const deletes = env.world.callCount('delete');
  // 1 s, 2 s … 256 s (9 attempts), then one per 5 minutes.
  t.ok(deletes >= 1 && deletes <= 9 + 3600 / 300 + 1, `${deletes} delete calls in an hour (backing off to 5 minutes)`);
  const loser = ['x', 'y'].find((name) => env.condition('Placed', name)?.reason === 'LostRace') ?? '';
  t.match(env.condition('Provisioned', loser), { status: 'False', message: /datastore busy/ });
  env.world.clearFaults();
  await env.metacontroller.settle(() => env.world.listVMs().length === 1 && env.condition('Placed', loser)?.reason === 'Unschedulable', { maxFakeMs: 10 * 60_000 });
  t.equal(running, 1, 'never two running on the one host');
});
