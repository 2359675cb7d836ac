// Failure paths of the VM lifecycle with faults that persist, through the whole system (harness →
// hook server → driver): bounded hypervisor calls per hour of fake time, a clear reason in Ready,
// and nothing duplicated or left behind.
import t from 'tap';
import { ProxmoxDriver, proxmoxConfigFromEnv } from '../../src/hypervisors/proxmox/index.js';
import { FakePve } from '../fakes/proxmox/index.js';
import { FakeClock } from '../helpers/clock.js';
import { lifecycle } from '../helpers/lifecycle.js';

type Json = Record<string, any>;
const HOUR = 60 * 60 * 1000;

t.test('a create whose task always fails is tried at most 20 times an hour, with the reason in Ready', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.world.injectFault('create', { kind: 'taskFailure', times: Infinity, message: "storage 'local' does not support linked clones" });
  env.createVM('web');
  await env.metacontroller.advance(HOUR);
  const creates = env.world.callCount('create');
  t.ok(creates >= 5 && creates <= 20, `${creates} create calls in an hour`);
  const ready = env.condition('Ready');
  t.match(ready, { status: 'False', reason: 'CreateFailed', message: /linked clones/ });
  t.match(env.status()['failure'], { operation: 'Create', reason: 'CreateFailed', retryable: true });
  t.equal(env.world.listVMs().length, 0, 'a failed create leaves nothing behind');
  t.equal(env.status()['phase'], 'Failed');

  env.world.clearFaults();
  await env.metacontroller.settle(() => env.isReady(), { maxFakeMs: 10 * 60_000 });
  t.equal(env.world.listVMs().length, 1, 'created once the cause is gone, within the longest back-off');
  t.notOk(env.status()['failure'], 'the failure record is gone with the failure');
});

t.test('a create call that always fails is backed off the same way, and is not called the user\'s fault', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.world.injectFault('create', { kind: 'error', times: Infinity, message: 'cluster not ready - no quorum?' });
  env.createVM('web');
  await env.metacontroller.advance(HOUR);
  const creates = env.world.callCount('create');
  t.ok(creates >= 5 && creates <= 20, `${creates} create calls in an hour`);
  t.match(env.condition('Ready'), { status: 'False', reason: 'HypervisorError', message: /no quorum/ });
  t.not(env.status()['phase'], 'Failed', 'a retryable failure is not a failed VM');
  t.match(env.status()['failure'], { operation: 'Create', count: creates, retryable: true });
});

t.test('a status write caused by a failure does not cause an immediate retry', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.world.injectFault('create', { kind: 'busy', times: Infinity, message: "can't lock file '/var/lock/qemu-server/lock-100.conf' - got timeout" });
  env.createVM('web');
  await env.metacontroller.advance(900);
  t.equal(env.world.callCount('create'), 1, 'one attempt, then the back-off, whatever the status writes trigger');
  await env.metacontroller.advance(1500);
  t.equal(env.world.callCount('create'), 2, 'the second after 1 s, the third not before 2 s later');
});

t.test('a spec change retries a terminal failure at once', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.world.injectFault('create', { kind: 'invalid', times: 1, message: "template 'ubuntu-22-template' has no disk" });
  env.createVM('web');
  await env.metacontroller.advance(5000);
  t.match(env.condition('Ready'), { reason: 'InvalidSpec' });
  t.equal(env.world.callCount('create'), 1);
  env.patchVM('web', { powerState: 'Off' });
  await env.metacontroller.settle(() => env.condition('Provisioned')?.status === 'True', { maxFakeMs: 30_000 });
  t.equal(env.world.callCount('create'), 2, 'the new generation is tried without waiting out five minutes');
  t.ok((env.status() as Json)['failure'] === undefined);
});

async function withSnapshotVM(t: Parameters<typeof lifecycle>[0], simulator: Parameters<typeof lifecycle>[1] = {}) {
  const env = await lifecycle(t, simulator);
  await env.basics();
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady());
  const ref = { id: String(env.status()['providerID']), owner: { uid: env.vm()?.metadata.uid ?? '', namespace: 'default', name: 'web' } };
  const snapshotStatus = (name: string) => (env.get('VMSnapshot', name)?.['status'] ?? {}) as Json;
  const takeSnapshot = (name: string) => env.cluster.create({ apiVersion: 'infra.virtrigaud.io/v1beta1', kind: 'VMSnapshot', metadata: { name, namespace: 'default' }, spec: { vmRef: { name: 'web' } } });
  return { ...env, ref, snapshotStatus, takeSnapshot, snapshots: () => env.world.snapshotList(ref) };
}

t.test('a snapshot whose deletion meets a transient Conflict is kept on record until it is really gone', async (t) => {
  const env = await withSnapshotVM(t);
  env.takeSnapshot('nightly');
  await env.metacontroller.settle(() => env.snapshotStatus('nightly')['phase'] === 'Ready');
  env.world.injectFault('snapshotList', { kind: 'conflict', times: 4, message: 'InvalidState: the VM is being reconfigured' });
  env.cluster.delete('infra.virtrigaud.io/v1beta1', 'VMSnapshot', 'default', 'nightly');
  await env.metacontroller.advance(5000);
  t.ok(env.get('VMSnapshot', 'nightly'), 'not finalized on a Conflict while the VM is still ours');
  await env.metacontroller.settle(() => env.get('VMSnapshot', 'nightly') === undefined, { maxFakeMs: 10 * 60_000 });
  t.same(env.snapshots(), [], 'and the hypervisor snapshot went with it');
});

t.test('a snapshot deleted while it is being taken is deleted once taken, never left behind', async (t) => {
  const env = await withSnapshotVM(t, { simulator: { durations: { snapshot: 30_000 } } });
  env.takeSnapshot('nightly');
  await env.metacontroller.settle(() => env.snapshotStatus('nightly')['task'] !== undefined);
  env.cluster.delete('infra.virtrigaud.io/v1beta1', 'VMSnapshot', 'default', 'nightly');
  await env.metacontroller.settle(() => env.get('VMSnapshot', 'nightly') === undefined, { maxFakeMs: 10 * 60_000 });
  await env.metacontroller.advance(60_000);
  t.same(env.snapshots(), [], 'no snapshot without its object');
});

t.test('a namespace deleted with its Provider and VMs: the Provider waits for the VMs, every VM is deleted, nothing leaks', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  for (const name of ['web', 'db', 'cache']) env.createVM(name);
  await env.metacontroller.settle(() => ['web', 'db', 'cache'].every((name) => env.isReady(name)));
  t.equal(env.world.listVMs().length, 3);
  // What `kubectl delete namespace` does: everything at once, the Provider first.
  env.cluster.delete('infra.virtrigaud.io/v1beta1', 'Provider', 'default', 'sim');
  for (const name of ['web', 'db', 'cache']) env.cluster.delete('infra.virtrigaud.io/v1beta1', 'VirtualMachine', 'default', name);
  await env.metacontroller.advance(1000);
  const provider = env.get('Provider', 'sim');
  t.ok(provider, 'the Provider is still there while VMs need it');
  t.match((provider?.['status'] as Json | undefined)?.['conditions'], [{ type: 'Ready', status: 'False', reason: 'WaitingForDependents', message: /VirtualMachine/ }]);
  await env.metacontroller.settle(() => env.get('Provider', 'sim') === undefined, { maxFakeMs: 10 * 60_000 });
  t.equal(env.world.listVMs().length, 0, 'every VM was deleted on the hypervisor');
  for (const name of ['web', 'db', 'cache']) t.equal(env.vm(name), undefined, `${name} is gone`);
  t.same(env.metacontroller.events, []);
});

t.test('a Provider deleted while VMs that are not being deleted use it waits for them, and says which', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady());
  env.cluster.delete('infra.virtrigaud.io/v1beta1', 'Provider', 'default', 'sim');
  await env.metacontroller.advance(60_000);
  t.match((env.get('Provider', 'sim')?.['status'] as Json)['conditions'], [{ reason: 'WaitingForDependents', message: /1 VirtualMachine \(default\/web\)/ }]);
  t.equal(env.world.listVMs().length, 1, 'the VM is not touched');
  env.cluster.delete('infra.virtrigaud.io/v1beta1', 'VirtualMachine', 'default', 'web');
  await env.metacontroller.settle(() => env.get('Provider', 'sim') === undefined, { maxFakeMs: 10 * 60_000 });
  t.equal(env.world.listVMs().length, 0);
});

// --- Proxmox VE, through the fake PVE: the defects were seen there. ---

async function proxmoxFailures(t: Parameters<typeof lifecycle>[0], options: Parameters<typeof FakePve.start>[0] = {}) {
  const clock = new FakeClock();
  const pve = await FakePve.start({ clock, taskDurationMs: 1000, bootMs: 1500, authFailureDelayMs: 0, ...options });
  t.teardown(() => pve.close());
  const drivers: ProxmoxDriver[] = [];
  const newDriver = () => {
    const driver = new ProxmoxDriver(proxmoxConfigFromEnv({ PVE_ENDPOINT: pve.url, PVE_TOKEN_ID: 'virtrigaud@pve!vrtg', PVE_TOKEN_SECRET: 'secret-token' }), { now: () => clock.now() });
    drivers.push(driver);
    t.teardown(() => driver.close().catch(() => undefined));
    return driver;
  };
  // The runtime serving the hooks; `restart()` replaces it with a fresh process's driver.
  let serving = newDriver();
  const env = await lifecycle(t, {
    clock,
    registry: (simulators) => ({ driverFor: async (provider) => (provider.type === 'proxmox' ? serving : simulators.driverFor(provider)) }),
  });
  await env.basics({ cpus: 2, memory: '2Gi' }, { type: 'proxmox', endpoint: pve.url, runtime: { mode: 'InProcess' } });
  const ours = () => pve.vms().filter((vm) => String(vm.tags ?? '').includes('virtrigaud') || String(vm.config['description'] ?? '').includes('virtrigaud-owner'));
  const posts = (path: RegExp) => pve.requests.filter((request) => request.method === 'POST' && path.test(request.path)).length;
  return { ...env, pve, ours, posts, restart: () => (serving = newDriver()) };
}

t.test('PVE: deleted while its clone runs and served by a restarted runtime, the VM is deleted once created, never left behind', async (t) => {
  const env = await proxmoxFailures(t, { taskDurations: { qmclone: 120_000 } });
  env.createVM('web');
  await env.metacontroller.settle(() => (env.status()['task'] as Json | undefined)?.['operation'] === 'Create');
  env.restart();
  env.cluster.delete('infra.virtrigaud.io/v1beta1', 'VirtualMachine', 'default', 'web');
  await env.metacontroller.advance(30_000);
  t.ok(env.vm('web'), 'not finalized while the clone runs');
  t.match(env.condition('Ready'), { reason: 'WaitingForCreate', message: /creation of the VM still runs/ });
  await env.metacontroller.settle(() => env.vm('web') === undefined, { maxFakeMs: 30 * 60_000, maxSyncs: 2000 });
  await env.metacontroller.advance(10 * 60_000);
  t.same(env.ours(), [], 'no VM with the deleted object\'s marker');
  t.equal(env.posts(/\/clone$/), 1, 'cloned once');
});

t.test('PVE: a VM whose shutdown tasks always fail is hard-stopped once the timeout passes, counted from the first request', async (t) => {
  const env = await proxmoxFailures(t);
  env.createVM('web', { lifecycle: { gracefulShutdownTimeout: '60s' } });
  await env.metacontroller.settle(() => env.isReady());
  env.pve.injectFault({ kind: 'failTask', type: 'qmshutdown', message: 'QEMU guest agent is not running', times: Infinity });
  env.patchVM('web', { powerState: 'OffGraceful' });
  await env.metacontroller.settle(() => env.status()['powerState'] === 'Off', { maxFakeMs: 10 * 60_000 });
  const shutdowns = env.posts(/\/status\/shutdown$/);
  t.ok(shutdowns >= 1 && shutdowns <= 3, `${shutdowns} shutdown requests before the hard stop`);
  t.equal(env.posts(/\/status\/stop$/), 1, 'one hard stop');
  t.ok(env.isReady());
});

t.test('PVE: a lock that never clears is named and polled slowly, not an endless Busy', async (t) => {
  const env = await proxmoxFailures(t);
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady());
  const vmid = Number(env.status()['providerID']);
  env.pve.setLock(vmid, 'backup');
  const before = env.pve.requests.length;
  await env.metacontroller.advance(2 * HOUR);
  t.match(env.condition('Ready'), { status: 'Unknown', reason: 'LockHeld', message: /locked \("backup"\) since/ });
  const vmCalls = env.pve.requests.slice(before).filter((request) => request.path.includes(`/qemu/${vmid}/`)).length / 2;
  t.ok(vmCalls <= 100, `${vmCalls} calls about the VM per hour while the lock is held`);
  env.pve.setLock(vmid, undefined);
  await env.metacontroller.settle(() => env.isReady(), { maxFakeMs: 10 * 60_000 });
  t.notOk(env.status()['lockHeld']);
});

t.test('PVE: a clone task that always fails is POSTed at most 20 times an hour, and its reason shows in Ready', async (t) => {
  const env = await proxmoxFailures(t);
  env.pve.injectFault({ kind: 'failTask', type: 'qmclone', message: "clone failed: storage 'local-lvm' does not support linked clones", times: Infinity });
  env.createVM('web');
  await env.metacontroller.advance(HOUR);
  const clones = env.posts(/\/clone$/);
  t.ok(clones >= 5 && clones <= 20, `${clones} clone POSTs in an hour (301 in ten minutes before)`);
  t.match(env.condition('Ready'), { status: 'False', reason: 'CreateFailed', message: /does not support linked clones/ });
  t.same(env.ours(), [], 'no VM left by the failed clones');
});
