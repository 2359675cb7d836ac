// VMPlacementPolicy on the fake PVE with three nodes: the record travels as PVE tags, the
// inventory is one resource list, and two hook-server replicas (each with its own Proxmox driver)
// racing for the last node slot end with one VM there.
import t from 'tap';
import type { Test } from 'tap';
import { GiB } from '../../src/contracts/quantity.js';
import { proxmoxConfigFromEnv, ProxmoxDriver } from '../../src/hypervisors/proxmox/index.js';
import { FakePve } from '../fakes/proxmox/index.js';
import { FakeClock } from '../helpers/clock.js';
import { API, lifecycle } from '../helpers/lifecycle.js';
import { PVE_TOKEN } from '../helpers/proxmox-lifecycle.js';
import { RaceGate, raceSyncs } from '../helpers/race-gate.js';
import { testServer } from '../helpers/server.js';

const NODES = ['pve1', 'pve2', 'pve3'];

async function system(t: Test, gate: RaceGate) {
  const clock = new FakeClock();
  const pve = await FakePve.start({
    clock,
    taskDurationMs: 1000,
    bootMs: 1500,
    nodes: NODES.map((name) => ({ name, cpus: 16, memoryBytes: 64 * GiB })),
    // One template per node on local storage: a VM is made on the node its template is on.
    templates: NODES.map((node, i) => ({ vmid: 9000 + i, name: 'ubuntu-22-template', node, diskGiB: 10, bus: 'scsi' as const, cloudInit: true })),
  });
  t.teardown(() => pve.close());
  const driver = () => new ProxmoxDriver(proxmoxConfigFromEnv({ PVE_ENDPOINT: pve.url, ...PVE_TOKEN }), { now: () => clock.now() });
  const first = driver();
  const env = await lifecycle(t, { clock, registry: (simulators) => gate.wrap({ driverFor: async (provider) => (provider.type === 'proxmox' ? first : simulators.driverFor(provider)) }) });
  await env.basics({ cpus: 2, memory: '2Gi' }, { type: 'proxmox', endpoint: pve.url, runtime: { mode: 'InProcess' } });
  env.cluster.create({ apiVersion: API, kind: 'VMPlacementPolicy', metadata: { name: 'one-each', namespace: 'default' }, spec: { constraints: { maxVMsPerNode: 1 } } });
  // A second replica: its own process state and its own Proxmox driver, the same PVE.
  const second = driver();
  const replica = testServer({ clock, registry: () => gate.wrap({ driverFor: async () => second }) });
  t.teardown(() => replica.app.close());
  const ours = () => pve.vms().filter((vm) => (vm.tags ?? []).includes('virtrigaud'));
  return { ...env, pve, ours, replica };
}

const createVM = (env: Awaited<ReturnType<typeof system>>, name: string, labels: Record<string, string> = {}) =>
  env.cluster.create({
    apiVersion: API,
    kind: 'VirtualMachine',
    metadata: { name, namespace: 'default', labels },
    spec: { providerRef: { name: 'sim' }, classRef: { name: 'small' }, imageRef: { name: 'ubuntu-22' }, networks: [{ name: 'lan' }], placementRef: { name: 'one-each' } },
  });

t.test('maxVMsPerNode 1 on three PVE nodes, then ten syncs on two replicas race for the last node', async (t) => {
  const gate = new RaceGate(10);
  const env = await system(t, gate);
  createVM(env, 'a', { app: 'web' });
  createVM(env, 'b', { app: 'web' });
  await env.metacontroller.settle(() => env.isReady('a') && env.isReady('b'), { maxSyncs: 1000 });
  t.not(env.status('a')['host'], env.status('b')['host'], 'one VM per node');
  const recordTags = env.ours().flatMap((vm) => vm.tags ?? []).filter((tag) => tag.startsWith('vr-l-') || tag.startsWith('vr-o-'));
  t.equal(recordTags.length, 4, 'each VM carries its label and its order as PVE tags');

  const recorded = [...env.metacontroller.calls].reverse().find((call) => call.controller === 'virtrigaud-virtualmachine' && call.hook === 'sync');
  const related = (recorded?.request as { related: object }).related;
  const racers = Array.from({ length: 10 }, (_, i) => `racer-${i}`);
  for (const name of racers) createVM(env, name);
  const clonesBefore = env.pve.requests.filter((request) => request.method === 'POST' && request.path.endsWith('/clone')).length;
  gate.armed = true;
  t.same(await raceSyncs(env, [env.app, env.replica.app], racers, related), []);
  gate.armed = false;
  const clones = () => env.pve.requests.filter((request) => request.method === 'POST' && request.path.endsWith('/clone')).length - clonesBefore;
  const vms = () => env.pve.vms().filter((vm) => vm.vmid < 9000);
  // A clone whose VMID the other replica took first is refused by PVE and retried with the next.
  t.equal(vms().length, 4, 'each replica made one VM for the last node');

  await env.metacontroller.settle(
    () => racers.filter((name) => env.isReady(name)).length === 1 && env.ours().length === 3 && racers.filter((name) => env.condition('Placed', name)?.reason === 'Unschedulable').length === 9,
    { maxSyncs: 6000 },
  );
  t.same(env.ours().map((vm) => vm.node).sort(), NODES, 'one VM on each node');
  t.ok(clones() <= 3, `no clone beyond the two racing copies (${clones()} clone calls, one refused for its VMID)`);
  const deletes = env.pve.requests.filter((request) => request.method === 'DELETE' && /\/qemu\/\d+$/.test(request.path)).length;
  t.equal(deletes, 1, 'the copy placed second was destroyed, once');
  const waiting = racers.find((name) => env.condition('Placed', name)?.reason === 'Unschedulable') ?? '';
  t.equal(env.condition('Placed', waiting)?.message, 'no host fits: pve1: maxVMsPerNode 1 reached; pve2: maxVMsPerNode 1 reached; pve3: maxVMsPerNode 1 reached');
});
