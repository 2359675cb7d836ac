// VMSnapshot, VMSnapshotSchedule and VMClone end to end: the Metacontroller stand-in drives the
// real hook server against the simulator, with the generated CRDs and controllers, in fake time.
import t, { type Test } from 'tap';
import type { SimulatorOptions } from '../../src/hypervisors/simulator/index.js';
import { hypervisorSnapshotName } from '../../src/hooks/vmsnapshot.js';
import { API, lifecycle, type Conditionish } from '../helpers/lifecycle.js';

async function withVM(t: Test, simulator: SimulatorOptions = {}) {
  const env = await lifecycle(t, { simulator });
  await env.basics();
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady() && (env.status()['ips'] as string[]).length > 0);
  const providerID = String(env.status()['providerID']);
  const ref = { id: providerID, owner: { uid: env.vm()?.metadata.uid ?? '', namespace: 'default', name: 'web' } };
  const object = (kind: string, name: string) => env.get(kind, name);
  const statusOf = (kind: string, name: string) => (object(kind, name)?.['status'] ?? {}) as Record<string, unknown> & { conditions?: Conditionish[] };
  const conditionOf = (kind: string, name: string, type: string) => statusOf(kind, name).conditions?.find((c) => c.type === type);
  const snapshots = () => env.world.snapshotList(ref);
  const takeSnapshot = (name: string, spec: Record<string, unknown> = {}) =>
    env.cluster.create({ apiVersion: API, kind: 'VMSnapshot', metadata: { name, namespace: 'default' }, spec: { vmRef: { name: 'web' }, ...spec } });
  return { ...env, providerID, ref, object, statusOf, conditionOf, snapshots, takeSnapshot };
}

t.test('a VMSnapshot is taken once, with memory, named after its UID, and reported', async (t) => {
  const env = await withVM(t);
  const created = env.takeSnapshot('before-upgrade', { description: 'Pre-maintenance snapshot', includeMemory: true });
  await env.metacontroller.settle(() => env.statusOf('VMSnapshot', 'before-upgrade')['phase'] === 'Ready');
  const status = env.statusOf('VMSnapshot', 'before-upgrade');
  const [onHypervisor, ...more] = env.snapshots();
  t.equal(more.length, 0, 'one snapshot');
  t.equal(onHypervisor?.name, hypervisorSnapshotName(created.metadata.uid ?? ''));
  t.equal(onHypervisor?.description, 'Pre-maintenance snapshot');
  t.equal(status['snapshotID'], onHypervisor?.id);
  t.equal(status['creationTime'], onHypervisor?.createdAt.replace('.000Z', 'Z'));
  t.equal(status['memoryIncluded'], true);
  t.equal(status['size'], '4Gi', 'the memory image, as the simulator reports it');
  t.match(status['vm'], { name: 'web', providerID: env.providerID, provider: { namespace: 'default', name: 'sim' } });
  t.match(env.conditionOf('VMSnapshot', 'before-upgrade', 'MemoryIncluded'), { status: 'True' });
  t.match(env.conditionOf('VMSnapshot', 'before-upgrade', 'Ready'), { status: 'True', reason: 'Created' });
  t.notOk(status['task'], 'no task left');
  // Steady: later syncs change nothing and take nothing.
  const version = env.object('VMSnapshot', 'before-upgrade')?.metadata.resourceVersion;
  await env.metacontroller.advance(10 * 60_000);
  t.equal(env.object('VMSnapshot', 'before-upgrade')?.metadata.resourceVersion, version, 'no status writes when steady');
  t.equal(env.world.callCount('snapshotCreate'), 1);
  t.same(env.metacontroller.events, []);
});

t.test('a lost snapshot answer is found again, never taken twice', async (t) => {
  const env = await withVM(t);
  env.world.injectFault('snapshotCreate', { kind: 'lostResponse' });
  env.takeSnapshot('nightly');
  await env.metacontroller.settle(() => env.statusOf('VMSnapshot', 'nightly')['phase'] === 'Ready');
  t.equal(env.snapshots().length, 1);
  t.equal(env.world.callCount('snapshotCreate'), 1);
});

t.test('memory and quiescing the provider cannot do are left out and said so', async (t) => {
  const env = await withVM(t, { capabilities: { memorySnapshots: false, quiescedSnapshots: false } });
  env.takeSnapshot('plain', { includeMemory: true, quiesce: true });
  await env.metacontroller.settle(() => env.statusOf('VMSnapshot', 'plain')['phase'] === 'Ready');
  t.match(env.conditionOf('VMSnapshot', 'plain', 'MemoryIncluded'), { status: 'False', reason: 'Unsupported', message: /simulator provider cannot save memory/ });
  t.match(env.conditionOf('VMSnapshot', 'plain', 'Quiesced'), { status: 'False', reason: 'Unsupported' });
  t.equal(env.statusOf('VMSnapshot', 'plain')['memoryIncluded'], false);
  t.equal(env.snapshots()[0]?.memory, false);
});

t.test('a snapshot spec is immutable', async (t) => {
  const env = await withVM(t);
  env.takeSnapshot('fixed');
  t.throws(() => env.cluster.patchSpec(API, 'VMSnapshot', 'default', 'fixed', { includeMemory: true }), /a VMSnapshot spec is immutable/);
});

t.test('snapshot, revert and delete: the VM goes back to the snapshot, then to its spec', async (t) => {
  const env = await withVM(t);
  env.takeSnapshot('before-upgrade');
  await env.metacontroller.settle(() => env.statusOf('VMSnapshot', 'before-upgrade')['phase'] === 'Ready');
  env.patchVM('web', { disks: [{ name: 'root', size: '50Gi' }] });
  await env.metacontroller.settle(() => env.isReady() && JSON.stringify(env.status()['hardware']).includes('50Gi'));

  env.patchVM('web', { lifecycle: { revertRequest: { snapshotRef: { name: 'before-upgrade' }, request: 'r1' } } });
  await env.metacontroller.settle(() => (env.status()['revert'] as { request?: string } | undefined)?.request === 'r1' && env.isReady());
  t.equal(env.world.callCount('snapshotRevert'), 1, 'reverted once');
  t.match(env.status()['revert'], { snapshot: 'before-upgrade', request: 'r1', snapshotID: env.statusOf('VMSnapshot', 'before-upgrade')['snapshotID'] });
  // The snapshot held 40Gi and no memory; the spec then applies again: disk regrown, VM powered on.
  t.equal(env.world.callCount('resizeDisk'), 2, 'the disk grew again after the revert');
  t.equal(env.status()['powerState'], 'On');
  await env.metacontroller.advance(10 * 60_000);
  t.equal(env.world.callCount('snapshotRevert'), 1, 'a handled request is not repeated');

  env.cluster.delete(API, 'VMSnapshot', 'default', 'before-upgrade');
  await env.metacontroller.settle(() => env.object('VMSnapshot', 'before-upgrade') === undefined);
  t.same(env.snapshots(), [], 'deleted on the hypervisor');
  t.equal(env.world.listVMs().length, 1, 'the VM stays');
});

t.test('a revert waits for its snapshot and refuses one of another VM', async (t) => {
  const env = await withVM(t);
  env.patchVM('web', { lifecycle: { revertRequest: { snapshotRef: { name: 'later' }, request: 'r1' } } });
  await env.metacontroller.settle(() => env.condition('Configured')?.reason === 'RevertSnapshotNotFound');
  t.match(env.condition('Configured')?.message, 'revert waits: VMSnapshot later not found');
  t.equal(env.status()['phase'], 'Running', 'the VM is otherwise reconciled');

  env.createVM('db');
  await env.metacontroller.settle(() => env.isReady('db'));
  env.cluster.create({ apiVersion: API, kind: 'VMSnapshot', metadata: { name: 'later', namespace: 'default' }, spec: { vmRef: { name: 'db' } } });
  await env.metacontroller.settle(() => env.condition('Configured')?.reason === 'RevertSnapshotInvalid');
  t.equal(env.world.callCount('snapshotRevert'), 0);
});

t.test('a VMSnapshot of a VM that is deleted finalizes without the VM', async (t) => {
  const env = await withVM(t);
  env.takeSnapshot('s1');
  await env.metacontroller.settle(() => env.statusOf('VMSnapshot', 's1')['phase'] === 'Ready');
  env.cluster.delete(API, 'VirtualMachine', 'default', 'web');
  await env.metacontroller.settle(() => env.vm() === undefined);
  await env.metacontroller.settle(() => env.conditionOf('VMSnapshot', 's1', 'Ready')?.reason === 'VMGone');
  env.cluster.delete(API, 'VMSnapshot', 'default', 's1');
  await env.metacontroller.settle(() => env.object('VMSnapshot', 's1') === undefined);
  t.same(env.world.listVMs(), []);
});

function schedule(env: Awaited<ReturnType<typeof withVM>>, name: string, spec: Record<string, unknown>) {
  return env.cluster.create({ apiVersion: API, kind: 'VMSnapshotSchedule', metadata: { name, namespace: 'default' }, spec: { vmRef: { name: 'web' }, ...spec } });
}

const scheduleChildren = (env: Awaited<ReturnType<typeof withVM>>, name: string) =>
  env.cluster
    .list(API, 'VMSnapshot')
    .filter((object) => object.metadata.labels?.['virtrigaud.io/schedule'] === name && object.metadata.deletionTimestamp === undefined)
    .map((object) => object.metadata.name)
    .sort();

t.test('a schedule takes a snapshot at each cron time and keeps maxCount of them', async (t) => {
  const env = await withVM(t);
  const start = env.clock.now();
  schedule(env, 'hourly', { schedule: '0 * * * *', snapshot: { includeMemory: true }, retentionPolicy: { maxCount: 3 } });
  await env.metacontroller.settle(() => env.statusOf('VMSnapshotSchedule', 'hourly')['nextScheduleTime'] !== undefined);
  t.same(scheduleChildren(env, 'hourly'), [], 'nothing before the first fire');
  const nextHour = Math.ceil((start + 1) / 3_600_000) * 3_600_000;
  t.equal(env.statusOf('VMSnapshotSchedule', 'hourly')['nextScheduleTime'], new Date(nextHour).toISOString().replace('.000Z', 'Z'));

  await env.metacontroller.advance(nextHour - env.clock.now() + 5 * 3_600_000 + 60_000);
  await env.metacontroller.settle(() => env.snapshots().length === 3 && scheduleChildren(env, 'hourly').length === 3);
  const stamp = (ms: number) => new Date(ms).toISOString().slice(0, 16).replace(/[-T:]/g, '');
  t.same(scheduleChildren(env, 'hourly'), [3, 4, 5].map((h) => `hourly-${stamp(nextHour + h * 3_600_000)}`), 'the newest three');
  t.equal(env.world.callCount('snapshotCreate'), 6, 'one per fire');
  t.equal(env.world.callCount('snapshotDelete'), 3, 'the pruned ones are deleted on the hypervisor');
  t.same(env.statusOf('VMSnapshotSchedule', 'hourly')['snapshots'], scheduleChildren(env, 'hourly'));
  const child = env.object('VMSnapshot', scheduleChildren(env, 'hourly')[0] ?? '');
  t.match(child?.['spec'], { vmRef: { name: 'web' }, includeMemory: true, description: 'scheduled by VMSnapshotSchedule hourly' });
  t.same(env.metacontroller.events, []);
});

t.test('a schedule prunes by maxAge, and suspend stops new snapshots only', async (t) => {
  const env = await withVM(t);
  schedule(env, 'often', { schedule: '@every 30m', retentionPolicy: { maxAge: '1h' } });
  await env.metacontroller.advance(3 * 3_600_000);
  await env.metacontroller.settle(() => scheduleChildren(env, 'often').length === 2 && env.snapshots().length === 2);
  t.equal(env.world.callCount('snapshotCreate'), 6);
  env.cluster.patchSpec(API, 'VMSnapshotSchedule', 'default', 'often', { suspend: true });
  await env.metacontroller.advance(2 * 3_600_000);
  await env.metacontroller.settle(() => scheduleChildren(env, 'often').length === 0 && env.snapshots().length === 0);
  t.equal(env.world.callCount('snapshotCreate'), 6, 'none while suspended');
  t.match(env.conditionOf('VMSnapshotSchedule', 'often', 'Ready'), { status: 'True', reason: 'Suspended' });
});

t.test('an invalid cron expression is reported on the schedule', async (t) => {
  const env = await withVM(t);
  schedule(env, 'bad', { schedule: '61 * * * *' });
  await env.metacontroller.settle(() => env.conditionOf('VMSnapshotSchedule', 'bad', 'Ready') !== undefined);
  t.match(env.conditionOf('VMSnapshotSchedule', 'bad', 'Ready'), { status: 'False', reason: 'InvalidSchedule', message: /minute field '61' is out of range 0-59/ });
});

for (const deleteOnVMDelete of [true, false]) {
  t.test(`deleting the VM with deleteOnVMDelete ${deleteOnVMDelete} ${deleteOnVMDelete ? 'deletes' : 'keeps'} the schedule's VMSnapshots`, async (t) => {
    const env = await withVM(t);
    schedule(env, 'daily', { schedule: '@hourly', retentionPolicy: { deleteOnVMDelete } });
    await env.metacontroller.advance(2 * 3_600_000 + 60_000);
    await env.metacontroller.settle(() => env.snapshots().length === 2);
    env.cluster.delete(API, 'VirtualMachine', 'default', 'web');
    await env.metacontroller.settle(() => env.vm() === undefined && env.conditionOf('VMSnapshotSchedule', 'daily', 'Ready')?.reason === 'VMNotFound');
    await env.metacontroller.advance(60_000);
    t.equal(scheduleChildren(env, 'daily').length, deleteOnVMDelete ? 0 : 2);
    t.same(env.world.listVMs(), [], 'the VM and its snapshots are gone from the hypervisor');
  });
}

t.test('a VMClone makes a linked clone of the source that lives on without it', async (t) => {
  const env = await withVM(t);
  env.cluster.create({ apiVersion: API, kind: 'VMClone', metadata: { name: 'web-clone', namespace: 'default' }, spec: { sourceVMRef: { name: 'web' } } });
  await env.metacontroller.settle(() => env.statusOf('VMClone', 'web-clone')['phase'] === 'Ready' && env.isReady('web-clone'));
  const clone = env.vm('web-clone');
  t.match(clone?.['spec'], { cloneFrom: { vmRef: { name: 'web' }, linkedClone: true }, classRef: { name: 'small' }, providerRef: { name: 'sim' } });
  t.match(env.status('web-clone')['clonedFrom'], { vm: 'web', providerID: env.providerID, linked: true });
  const cloneID = String(env.status('web-clone')['providerID']);
  t.not(cloneID, env.providerID);
  t.match(env.world.details(cloneID).clonedFrom, { id: env.providerID, linked: true });
  t.equal(env.world.describe(cloneID).owner?.uid, clone?.metadata.uid, 'its own identity');
  t.match(env.statusOf('VMClone', 'web-clone'), { targetRef: { name: 'web-clone' } });
  t.equal(env.status('web-clone')['phase'], 'Running');

  env.cluster.delete(API, 'VirtualMachine', 'default', 'web');
  await env.metacontroller.settle(() => env.vm('web') === undefined);
  await env.metacontroller.advance(10 * 60_000);
  t.ok(env.isReady('web-clone'), 'the clone stays Ready without its source');
  t.equal(env.world.listVMs().map((vm) => vm.id).join(), cloneID);

  env.cluster.delete(API, 'VMClone', 'default', 'web-clone');
  await env.metacontroller.settle(() => env.vm('web-clone') === undefined);
  t.same(env.world.listVMs(), [], 'deleting the VMClone deletes the clone');
});

t.test('a full clone, powered off as asked, and a lost clone answer makes one clone', async (t) => {
  const env = await withVM(t);
  env.world.injectFault('clone', { kind: 'lostResponse' });
  env.cluster.create({
    apiVersion: API,
    kind: 'VMClone',
    metadata: { name: 'copy', namespace: 'default' },
    spec: { sourceVMRef: { name: 'web' }, linkedClone: false, target: { name: 'web-copy', powerState: 'Off' } },
  });
  await env.metacontroller.settle(() => env.statusOf('VMClone', 'copy')['phase'] === 'Ready' && env.isReady('web-copy'));
  const cloneID = String(env.status('web-copy')['providerID']);
  t.match(env.world.details(cloneID).clonedFrom, { linked: false });
  t.equal(env.status('web-copy')['powerState'], 'Off');
  t.equal(env.world.listVMs().length, 2, 'source and one clone');
  t.equal(env.world.callCount('clone'), 1);
});

t.test('a clone of a VM that does not exist yet waits for it', async (t) => {
  const env = await withVM(t);
  env.cluster.create({ apiVersion: API, kind: 'VMClone', metadata: { name: 'early', namespace: 'default' }, spec: { sourceVMRef: { name: 'db' } } });
  await env.metacontroller.settle(() => env.conditionOf('VMClone', 'early', 'Ready')?.reason === 'SourceNotFound');
  t.equal(env.statusOf('VMClone', 'early')['phase'], 'Pending');
  env.createVM('db');
  await env.metacontroller.settle(() => env.isReady('early'));
  // Tries while the source is busy powering on are refused (Busy) and retried; one clone results.
  t.equal(env.world.listVMs().length, 3, 'web, db and one clone');
  t.match(env.status('early')['clonedFrom'], { vm: 'db' });
});

t.test('an upstream-shaped VMSnapshot is quiesced by default, expires after maxAge and stays as a record until deleted', async (t) => {
  const env = await withVM(t);
  env.takeSnapshot('pre-release', {
    snapshotConfig: { name: 'pre-release', description: 'Before release 2.4' },
    retentionPolicy: { maxAge: '2h', deleteOnVMDelete: true },
    metadata: { purpose: 'update' },
  });
  await env.metacontroller.settle(() => env.statusOf('VMSnapshot', 'pre-release')['phase'] === 'Ready');
  const [taken] = env.snapshots();
  t.equal(taken?.description, 'pre-release: Before release 2.4');
  t.match(env.conditionOf('VMSnapshot', 'pre-release', 'Quiesced'), { status: 'True' }, 'upstream\'s quiesce default');
  t.match(env.statusOf('VMSnapshot', 'pre-release')['expiryTime'], /Z$/);

  await env.metacontroller.advance(2 * 3_600_000 + 60_000);
  await env.metacontroller.settle(() => env.statusOf('VMSnapshot', 'pre-release')['phase'] === 'Expired' && env.snapshots().length === 0);
  t.match(env.conditionOf('VMSnapshot', 'pre-release', 'Ready'), { status: 'False', reason: 'Expired' });
  t.equal(env.world.callCount('snapshotDelete'), 1);
  t.ok(env.object('VMSnapshot', 'pre-release'), 'the object stays');
  await env.metacontroller.advance(3_600_000);
  t.equal(env.world.callCount('snapshotDelete'), 1, 'an Expired snapshot is left alone');

  env.cluster.delete(API, 'VMSnapshot', 'default', 'pre-release');
  await env.metacontroller.settle(() => env.object('VMSnapshot', 'pre-release') === undefined);
  t.equal(env.world.callCount('snapshotDelete'), 1, 'nothing left to delete');
});

t.test('an upstream-shaped VMClone makes a labelled full clone, left off, that becomes Ready', async (t) => {
  const env = await withVM(t);
  env.cluster.create({
    apiVersion: API,
    kind: 'VMClone',
    metadata: { name: 'web-test', namespace: 'default' },
    spec: {
      source: { vmRef: { name: 'web' } },
      target: { name: 'web-test', labels: { tier: 'test' }, disks: [{ name: 'root', sizeGiB: 50 }] },
      options: { type: 'FullClone' },
      metadata: { purpose: 'testing' },
    },
  });
  await env.metacontroller.settle(() => env.statusOf('VMClone', 'web-test')['phase'] === 'Ready' && env.isReady('web-test'));
  const clone = env.vm('web-test');
  t.match(clone?.metadata.labels, { tier: 'test' });
  t.match(clone?.['spec'], { cloneFrom: { vmRef: { name: 'web' }, linkedClone: false }, powerState: 'Off', disks: [{ name: 'root', size: '50Gi' }] });
  const cloneID = String(env.status('web-test')['providerID']);
  t.match(env.world.details(cloneID).clonedFrom, { id: env.providerID, linked: false });
  t.equal(env.status('web-test')['powerState'], 'Off', 'upstream\'s powerOn default');
  t.match(JSON.stringify(env.status('web-test')['hardware']), /"name":"root","size":"50Gi"/, 'the root disk grown after the copy');
  t.match(env.statusOf('VMClone', 'web-test'), { source: 'web', actualCloneType: 'FullClone', targetRef: { name: 'web-test' } });
});

t.test('an upstream-shaped VMClone that asks to customize the guest is Unsupported and makes no VM', async (t) => {
  const env = await withVM(t);
  env.cluster.create({
    apiVersion: API,
    kind: 'VMClone',
    metadata: { name: 'web-staging', namespace: 'default' },
    spec: { source: { vmRef: { name: 'web' } }, target: { name: 'web-staging' }, customization: { hostname: 'web-staging' } },
  });
  await env.metacontroller.settle(() => env.conditionOf('VMClone', 'web-staging', 'Ready')?.reason === 'Unsupported');
  t.match(env.conditionOf('VMClone', 'web-staging', 'Ready')?.message, /the simulator provider cannot honour spec.customization.hostname/);
  t.equal(env.statusOf('VMClone', 'web-staging')['phase'], 'Failed');
  t.equal(env.vm('web-staging'), undefined);
  t.equal(env.world.callCount('clone'), 0);
  t.equal(env.world.listVMs().length, 1);
});
