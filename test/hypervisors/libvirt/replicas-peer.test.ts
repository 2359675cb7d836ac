// Runtime replicas and restarts against the real libvirtd: tasks live on the host, so a task
// started by one driver instance (replica A) is followed, joined and refused by another
// (replica B), and found again by a fresh instance after A is gone (a restarted runtime). Tasks
// are held before their first step while the test looks at them (a fault that persists until
// released), so nothing here depends on how fast the host is.
import t, { type Test } from 'tap';
import type { CreateSpec, Identity } from '../../../src/contracts/driver.js';
import type { LibvirtDriver } from '../../../src/hypervisors/libvirt/index.js';
import { instrumentHost, type LibvirtPeer, libvirtPeer, peerSpec, taskDone, taskSettled, tasksOf } from '../../helpers/libvirt-peer.js';

t.setTimeout(300_000);

const owner = (name: string): Identity => ({ uid: `0e0e0f00-0000-4000-8000-${name.padEnd(12, '0').slice(0, 12)}`, namespace: 'replicas', name });

const spec = (peer: LibvirtPeer, name: string, overrides: Partial<CreateSpec> = {}): CreateSpec => peerSpec(peer, name, owner(name), { ...overrides });

const peer = await libvirtPeer(t);
if (peer) {
  t.teardown(() => peer.close());
  const host = instrumentHost(t, peer);
  const replica = (t: Test): LibvirtDriver => {
    const driver = peer.driver();
    t.teardown(() => driver.close());
    return driver;
  };
  /** Commands `work` ran on the host. */
  const counted = async <T>(work: () => Promise<T>): Promise<[T, string[]]> => {
    const before = host.commands.length;
    const result = await work();
    return [result, host.commands.slice(before)];
  };
  const vmFor = async (t: Test, driver: LibvirtDriver, name: string) => {
    const existing = await driver.findByIdentity(owner(name).uid);
    if (existing) await taskDone(driver, await driver.delete({ id: existing.id, owner: owner(name) }));
    const created = await driver.create(spec(peer, name));
    await taskDone(driver, created);
    const ref = { id: created.id, owner: owner(name) };
    t.teardown(async () => {
      const cleaner = peer.driver();
      const vm = await cleaner.findByIdentity(owner(name).uid);
      if (vm) await taskDone(cleaner, await cleaner.delete({ id: vm.id, owner: owner(name) }));
      await cleaner.close();
    });
    return ref;
  };

  t.test('a delete started on replica A is followed, joined and refused on replica B, and found after A restarts', async (t) => {
    const a = replica(t);
    const b = replica(t);
    const ref = await vmFor(t, a, 'rep-delete');
    const release = await host.hold();
    const started = await a.delete(ref);
    const task = started.task ?? '';
    t.match(task, /^libvirt-delete-/);

    const [status, statusCommands] = await counted(() => b.taskStatus(task));
    t.same(status, { state: 'running' }, 'B sees the task A started');
    t.equal(statusCommands.length, 1, 'one host command per taskStatus');
    const [again, deleteCommands] = await counted(() => b.delete(ref));
    t.equal(again.task, task, 'the same delete on B answers the running task');
    t.ok(deleteCommands.length <= 3, `a repeated delete costs a few commands: ${deleteCommands.join(', ')}`);
    await t.rejects(b.snapshotCreate(ref, { name: 'during-delete', memory: false, quiesce: false }), { code: 'Busy', message: /delete is running/ });
    await t.rejects(b.power(ref, 'on'), { code: 'Busy' }, 'B does not start a VM A deletes');
    t.equal((await b.describe(ref.id)).lock, 'delete', 'B reports the lock');

    await a.close();
    const restarted = replica(t);
    t.same(await restarted.taskStatus(task), { state: 'running' }, 'a restarted runtime finds the task');
    await release();
    t.same(await taskSettled(restarted, task), { state: 'succeeded' });
    await t.rejects(b.describe(ref.id), { code: 'NotFound' });
    t.same(
      (await tasksOf(peer, ref.id)).filter((id) => id.startsWith('libvirt-delete-')),
      [task],
      'one delete ran on the host',
    );
  });

  t.test('a revert started on A: B joins it, B refuses a delete beside it, a fresh instance follows it', async (t) => {
    const a = replica(t);
    const b = replica(t);
    const ref = await vmFor(t, a, 'rep-revert');
    await taskDone(a, await a.snapshotCreate(ref, { name: 'base', memory: false, quiesce: false }));
    const release = await host.hold();
    const task = (await a.snapshotRevert(ref, 'base')).task ?? '';
    t.match(task, /^libvirt-revert-/);
    t.same(await b.taskStatus(task), { state: 'running' });
    t.equal((await b.snapshotRevert(ref, 'base')).task, task, 'the same revert on B answers the running task');
    await t.rejects(b.delete(ref), { code: 'Busy', message: /revert is running/ }, 'another kind is Busy');
    await a.close();
    const restarted = replica(t);
    t.same(await restarted.taskStatus(task), { state: 'running' });
    await release();
    t.same(await taskSettled(restarted, task), { state: 'succeeded' });
    const revertTasks = (await tasksOf(peer, ref.id)).filter((id) => id.startsWith('libvirt-revert-'));
    t.same(revertTasks, [task], 'one revert ran on the host');
  });

  t.test('a full clone started on A locks its source: B joins it, B cannot delete or start the source meanwhile', async (t) => {
    const a = replica(t);
    const b = replica(t);
    const source = await vmFor(t, a, 'rep-source');
    const target = { name: 'rep-clone', owner: owner('rep-clone'), linked: false };
    t.teardown(async () => {
      const cleaner = peer.driver();
      const vm = await cleaner.findByIdentity(target.owner.uid);
      if (vm) await taskDone(cleaner, await cleaner.delete({ id: vm.id, owner: target.owner }));
      await cleaner.close();
    });
    const release = await host.hold();
    const cloned = await a.clone(source, target);
    const task = cloned.task ?? '';
    t.match(task, /^libvirt-create-/);
    t.equal((await b.findByIdentity(target.owner.uid))?.id, cloned.id, 'the clone is findable at once');
    t.same(await b.taskStatus(task), { state: 'running' });
    t.same(await b.clone(source, target), { id: cloned.id, task }, 'the same clone on B answers the running copy');
    t.equal((await b.describe(source.id)).lock, 'clone', "the source shows the clone's lock");
    t.equal((await b.describe(cloned.id)).lock, 'create');
    await t.rejects(b.delete(source), { code: 'Busy', message: /clone is running/ });
    await t.rejects(b.power(source, 'on'), { code: 'Busy' });
    await a.close();
    const restarted = replica(t);
    t.same(await restarted.taskStatus(task), { state: 'running' });
    await release();
    t.same(await taskSettled(restarted, task), { state: 'succeeded' });
    const clone = await restarted.describe(cloned.id);
    t.notOk(clone.incomplete, 'complete');
    t.equal(clone.lock, undefined);
    t.equal((await restarted.describe(source.id)).lock, undefined, 'the source is free again');
    t.same(await tasksOf(peer, cloned.id), [task], 'one copy ran');
  });

  t.test('a task whose process vanished is failed (retryable) and frees its lock for the next attempt', async (t) => {
    const a = replica(t);
    const b = replica(t);
    const ref = await vmFor(t, a, 'rep-vanish');
    const release = await host.hold();
    const task = (await a.delete(ref)).task ?? '';
    // The host reboots, or an administrator kills the task: its whole process group goes.
    const kill = 'for i in $(seq 100); do [ -s "$1/$2/pid" ] && break; sleep 0.1; done; kill -KILL "-$(cat "$1/$2/pid")"';
    const killed = await peer.exec(['sh', '-c', kill, 'sh', peer.taskDirectory, task]);
    t.equal(killed.code, 0, killed.stderr);
    await release();
    const status = await taskSettled(b, task);
    t.match(status, { state: 'failed', errorCode: 'HypervisorError', error: /without an exit status/ }, 'failed, not running forever');
    t.equal((await b.describe(ref.id)).lock, undefined, 'no stale lock');
    const retried = await b.delete(ref);
    t.not(retried.task, task, 'the next delete is a new task');
    await taskDone(b, retried);
    await t.rejects(b.describe(ref.id), { code: 'NotFound' });
  });
}
