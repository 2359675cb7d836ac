// create against vcsim with its clone held running (a proxy rewrites what vcsim, which finishes
// clones at once, answers): the clone is started once whoever asks next, a restarted runtime or a
// second replica, and the VM ends configured. Each create call gets the hook's test budget (2 s).
import t, { type Test } from 'tap';
import type { CreateSpec, Identity, ObservedVM } from '../../../src/contracts/driver.js';
import { vsphereDriverFromEnv, type VsphereDriver } from '../../../src/hypervisors/vsphere/index.js';
import { basicSpec } from '../../conformance/driver-suite.js';
import { prepareTemplate, requireVcsim, startFaultProxy, startVcsim, vmsOwnedBy, type CloneHold } from '../../helpers/vcsim.js';

t.setTimeout(180_000);

const owner = (name: string): Identity => ({ uid: `c4e50000-0000-4000-8000-${name.padEnd(12, '0').slice(0, 12)}`, namespace: 'held', name });

/** The hook's budget for one driver call in tests (7 s in production). */
const budget = () => ({ signal: AbortSignal.timeout(2_000) });

/** SOAP requests one create may make while it finds the held clone (lookups, no clone). */
const CALLS_PER_CREATE = 12;

async function setup(t: Test, mode: CloneHold, chainEvents = false) {
  const vcsim = await startVcsim(t);
  await prepareTemplate(vcsim);
  const proxy = await startFaultProxy(t, vcsim);
  proxy.holdClones(mode, { chainEvents });
  /** A driver as a newly started runtime has it: no memory of earlier calls. */
  const fresh = (): VsphereDriver => {
    const driver = vsphereDriverFromEnv({ ...vcsim.env, VSPHERE_ENDPOINT: proxy.url });
    t.teardown(() => driver.close());
    return driver;
  };
  return { vcsim, proxy, fresh };
}

/** Continues the create with a fresh driver per step, until the VM is complete. */
async function finishCreate(fresh: () => VsphereDriver, spec: CreateSpec): Promise<ObservedVM> {
  for (let step = 0; step < 6; step++) {
    const driver = fresh();
    const { id, task } = await driver.create(spec, budget());
    for (let poll = 0; task && poll < 50; poll++) {
      const status = await fresh().taskStatus(task, budget());
      if (status.state === 'failed') throw new Error(`create step ${step} failed: ${status.error ?? ''}`);
      if (status.state === 'succeeded') break;
    }
    const vm = id === '' ? await fresh().findByIdentity(spec.owner.uid, budget()) : await fresh().describe(id, budget());
    if (vm && !vm.incomplete && !vm.lock) return vm;
  }
  throw new Error('create did not complete in 6 steps');
}

if (requireVcsim(t)) {
  t.test('a clone vCenter has not registered yet is started once, whoever asks next, and ends configured', async (t) => {
    const { vcsim, proxy, fresh } = await setup(t, 'unregistered');
    const spec = basicSpec('slow', owner('slow'));
    const first = fresh();
    const started = await first.create(spec, budget());
    t.match(started, { id: '', task: /^task-/ }, 'create answers the clone task at once; the VM has no moid yet');
    const second = fresh();
    for (let round = 0; round < 3; round++) {
      // A restarted runtime, then two replicas alternately.
      for (const [who, driver] of [['restarted', fresh()], ['replica 1', first], ['replica 2', second]] as const) {
        const before = proxy.requests.length;
        await t.rejects(driver.create(spec, budget()), { code: 'Busy', message: /clone/ }, `${who}: create waits for the running clone`);
        t.ok(proxy.requests.length - before <= CALLS_PER_CREATE, `${who}: ${proxy.requests.length - before} calls`);
        await t.rejects(driver.findByIdentity(spec.owner.uid, budget()), { code: 'Busy' }, `${who}: never "no VM" while the clone may be ours`);
      }
    }
    t.equal(proxy.calls('CloneVM_Task'), 1, 'one CloneVM_Task');
    await t.rejects(fresh().create(basicSpec('other', owner('other')), budget()), { code: 'Busy' }, "another owner waits too: vcsim names no clone's destination");
    t.equal(proxy.calls('CloneVM_Task'), 1, 'still one CloneVM_Task');

    proxy.releaseClones();
    const vm = await finishCreate(fresh, spec);
    t.equal(vm.name, 'slow', 'renamed from its placeholder by the configuration step');
    t.equal(vm.cpus, spec.cpus);
    t.equal(proxy.calls('CloneVM_Task'), 1, 'one CloneVM_Task in all');
    const owned = await vmsOwnedBy(vcsim, spec.owner.uid);
    t.match(owned, [{ id: vm.id, name: 'slow', state: 'ready' }], 'one VM, configured');
    t.equal(owned.length, 1);
  });

  t.test('a clone whose VM is registered but not yet readable is started once and ends configured', async (t) => {
    const { vcsim, proxy, fresh } = await setup(t, 'unreadable');
    const spec = basicSpec('unread', owner('unread'));
    const first = fresh();
    t.match(await first.create(spec, budget()), { id: '', task: /^task-/ });
    const second = fresh();
    for (let round = 0; round < 2; round++) {
      for (const [who, driver] of [['restarted', fresh()], ['replica 1', first], ['replica 2', second]] as const) {
        await t.rejects(driver.create(spec, budget()), { code: 'Unreachable', message: /configuration cannot be read/ }, `${who}: create waits`);
        await t.rejects(driver.findByIdentity(spec.owner.uid, budget()), { code: 'Unreachable', message: new RegExp(proxy.heldVMs()[0] ?? 'vm-') }, `${who}: names the VM`);
      }
    }
    t.equal(proxy.calls('CloneVM_Task'), 1, 'one CloneVM_Task');
    proxy.releaseClones();
    const vm = await finishCreate(fresh, spec);
    t.equal(proxy.calls('CloneVM_Task'), 1, 'one CloneVM_Task in all');
    t.match(await vmsOwnedBy(vcsim, spec.owner.uid), [{ id: vm.id, name: 'unread', state: 'ready' }]);
  });

  t.test("where vSphere names a running clone's destination, create follows its own clone and others clone theirs", async (t) => {
    const { vcsim, proxy, fresh } = await setup(t, 'unregistered', true);
    const mine = basicSpec('mine', owner('mine'));
    const theirs = basicSpec('theirs', owner('theirs'));
    const started = await fresh().create(mine, budget());
    t.match(started, { id: '', task: /^task-/ });
    t.same(await fresh().create(mine, budget()), started, 'a restarted runtime answers the same task');
    await t.rejects(fresh().findByIdentity(mine.owner.uid, budget()), { code: 'Busy', message: new RegExp(started.task ?? 'task-') });
    t.equal(await fresh().findByIdentity(theirs.owner.uid, budget()), undefined, 'a clone named for someone else is not theirs');
    const other = await fresh().create(theirs, budget());
    t.match(other, { id: '', task: /^task-/ }, 'another owner is not held up by our clone');
    t.not(other.task, started.task);
    t.same(await fresh().create(theirs, budget()), other);
    t.same(await fresh().create(mine, budget()), started);
    t.equal(proxy.calls('CloneVM_Task'), 2, 'one CloneVM_Task per owner');
    proxy.releaseClones();
    await finishCreate(fresh, mine);
    await finishCreate(fresh, theirs);
    t.equal(proxy.calls('CloneVM_Task'), 2);
    t.equal((await vmsOwnedBy(vcsim, mine.owner.uid)).length, 1);
    t.equal((await vmsOwnedBy(vcsim, theirs.owner.uid)).length, 1);
  });

  t.test("a linked clone's base snapshot still being taken is waited for, never taken twice", async (t) => {
    const vcsim = await startVcsim(t);
    await prepareTemplate(vcsim);
    const proxy = await startFaultProxy(t, vcsim);
    proxy.holdSnapshots();
    const fresh = (): VsphereDriver => {
      const driver = vsphereDriverFromEnv({ ...vcsim.env, VSPHERE_ENDPOINT: proxy.url });
      t.teardown(() => driver.close());
      return driver;
    };
    const spec = basicSpec('linked', owner('linked'), { image: { kind: 'template', ref: 'ubuntu-22-template', fullClone: false } });
    const first = fresh();
    const second = fresh();
    for (let round = 0; round < 2; round++) {
      for (const [who, driver] of [['restarted', fresh()], ['replica 1', first], ['replica 2', second]] as const) {
        await t.rejects(driver.create(spec, budget()), { code: 'Busy', message: /snapshot of ubuntu-22-template/ }, `${who}: waits for the base snapshot`);
      }
    }
    t.equal(proxy.calls('CreateSnapshot_Task'), 1, 'one base snapshot started');
    t.equal(proxy.calls('CloneVM_Task'), 0, 'no clone before its base exists');
    proxy.releaseSnapshots();
    await finishCreate(fresh, spec);
    t.equal(proxy.calls('CreateSnapshot_Task'), 1);
    t.equal(proxy.calls('CloneVM_Task'), 1);
    const tree = await vcsim.govc('snapshot.tree', '-vm', '/DC0/vm/ubuntu-22-template');
    t.equal(tree.split('\n').filter((line) => line.includes('virtrigaud-linked-base')).length, 1, `one base snapshot: ${tree}`);
  });
}
