// Snapshots (create, list, revert, delete; by name; with memory) and clones (full and linked).
import { unsupported } from '../checks.js';
import { createFully, deleteFully, powerTo, taskDone, type ConformanceCase } from '../target.js';

export const snapshotRevert: ConformanceCase = {
  id: 'snapshot-revert',
  title: 'snapshots are created, listed, reverted and deleted when supported',
  capability: 'snapshots',
  destructive: false,
  async run({ target, check, owner, vmName }) {
    if (!target.driver.capabilities.snapshots) unsupported('no snapshots capability');
    const me = owner('snap');
    const vm = await createFully(target, target.spec(vmName('snap'), me));
    const ref = { id: vm.id, owner: me };
    const created = await target.driver.snapshotCreate(ref, { name: 'before', memory: false, quiesce: false });
    await taskDone(target, created.task, 'snapshot');
    const list = await target.driver.snapshotList(ref);
    check.ok(list.some((snapshot) => snapshot.id === created.id), 'the snapshot is listed');
    const changed = await target.driver.reconfigure(ref, { cpus: vm.cpus + 2 });
    await taskDone(target, changed.task, 'reconfigure');
    const reverted = await target.driver.snapshotRevert(ref, created.id);
    await taskDone(target, reverted.task, 'revert');
    check.equal((await target.driver.describe(vm.id)).cpus, vm.cpus, 'the snapshot hardware is back');
    const removed = await target.driver.snapshotDelete(ref, created.id);
    await taskDone(target, removed.task, 'snapshot delete');
    check.notOk((await target.driver.snapshotList(ref)).some((snapshot) => snapshot.id === created.id), 'the deleted snapshot is no longer listed');
    await deleteFully(target, ref);
  },
};

export const snapshotName: ConformanceCase = {
  id: 'snapshot-name',
  title: 'a snapshot is listed under the name it was created with, and goes away with its VM',
  capability: 'snapshots',
  destructive: false,
  async run({ target, check, owner, vmName, unknownId }) {
    if (!target.driver.capabilities.snapshots) {
      await check.rejects(
        target.driver.snapshotCreate({ id: unknownId, owner: owner('nosnap') }, { name: 'x', memory: false, quiesce: false }),
        { code: /Unsupported|NotFound/ },
        'snapshotCreate is refused',
      );
      unsupported('no snapshots capability; snapshotCreate is refused');
    }
    const me = owner('snapname');
    const vm = await createFully(target, target.spec(vmName('snapname'), me));
    const ref = { id: vm.id, owner: me };
    const name = 'vr0a1b2c3d00004000800000000001';
    const created = await target.driver.snapshotCreate(ref, { name, description: 'conformance', memory: false, quiesce: false });
    await taskDone(target, created.task, 'snapshot');
    const listed = (await target.driver.snapshotList(ref)).find((snapshot) => snapshot.name === name);
    check.equal(listed?.id, created.id, 'found by name');
    check.ok(listed && !Number.isNaN(Date.parse(listed.createdAt)), 'creation time is a timestamp');
    check.equal(listed?.memory, false, 'holds no memory');
    await check.rejects(target.driver.snapshotList({ id: vm.id, owner: owner('someone') }), { code: 'Conflict' }, 'not listed for another owner');
    // Deleting a VM that still has snapshots removes it and them.
    await deleteFully(target, ref);
    await check.rejects(target.driver.describe(vm.id), { code: 'NotFound' }, 'describe after deleting the VM with its snapshot');
  },
};

export const memorySnapshot: ConformanceCase = {
  id: 'memory-snapshot',
  title: 'a memory snapshot of a running VM is taken when supported, refused as Unsupported when not',
  capability: 'memorySnapshots',
  destructive: false,
  async run({ target, check, owner, vmName }) {
    const caps = target.driver.capabilities;
    if (!caps.snapshots) unsupported('no snapshots capability');
    const me = owner('memsnap');
    const vm = await createFully(target, target.spec(vmName('memsnap'), me));
    const ref = { id: vm.id, owner: me };
    await powerTo(target, ref, 'on', 'On');
    if (!caps.memorySnapshots) {
      await check.rejects(target.driver.snapshotCreate(ref, { name: 'withmemory', memory: true, quiesce: false }), { code: 'Unsupported' }, 'a memory snapshot is refused');
    } else {
      const created = await target.driver.snapshotCreate(ref, { name: 'withmemory', memory: true, quiesce: false });
      await taskDone(target, created.task, 'memory snapshot');
      check.equal((await target.driver.snapshotList(ref)).find((snapshot) => snapshot.id === created.id)?.memory, true, 'the snapshot holds memory');
      const reverted = await target.driver.snapshotRevert(ref, created.id);
      await taskDone(target, reverted.task, 'revert');
      await target.waitUntil(async () => (await target.driver.describe(vm.id)).powerState === 'On', 'running again after a memory revert');
    }
    await powerTo(target, ref, 'off', 'Off');
    await deleteFully(target, ref);
    if (!caps.memorySnapshots) unsupported('no memorySnapshots capability; refused as Unsupported');
  },
};

export const linkedClone: ConformanceCase = {
  id: 'linked-clone',
  title: 'a linked clone of a VM is made where supported, refused with a typed error where not',
  capability: 'linkedClones',
  destructive: false,
  async run({ target, check, owner, vmName }) {
    const me = owner('lsource');
    const vm = await createFully(target, target.spec(vmName('lsrc'), me));
    const cloneOwner = owner('lclone');
    const attempt = target.driver.clone({ id: vm.id, owner: me }, { name: vmName('lclone'), owner: cloneOwner, linked: true });
    let refusedAs: string | undefined;
    if (!target.driver.capabilities.linkedClones) {
      await check.rejects(attempt, { code: 'Unsupported' }, 'a linked clone is refused');
      refusedAs = 'no linkedClones capability; refused as Unsupported';
    } else {
      // PVE makes linked clones of templates only: an ordinary VM is InvalidSpec there, never a full copy in disguise.
      const outcome = await attempt.then(
        (started) => ({ started }),
        (error: unknown) => ({ error: error as { code?: string } }),
      );
      if ('error' in outcome) {
        check.equal(outcome.error.code, 'InvalidSpec', 'refused as InvalidSpec');
      } else {
        await taskDone(target, outcome.started.task, 'linked clone');
        let clone = await target.driver.describe(outcome.started.id);
        for (let step = 0; clone.incomplete && step < 3; step++) {
          const next = await target.driver.create(target.spec(vmName('lclone'), cloneOwner));
          await taskDone(target, next.task, 'clone continued');
          clone = await target.driver.describe(outcome.started.id);
        }
        check.same(clone.owner, cloneOwner, 'the clone carries its own owner');
        check.ok(outcome.started.sourceSnapshot === undefined || outcome.started.sourceSnapshot.length > 0, 'a named source snapshot, if any');
        await deleteFully(target, { id: outcome.started.id, owner: cloneOwner });
        check.equal((await target.driver.describe(vm.id)).id, vm.id, 'the source is untouched by deleting its linked clone');
      }
    }
    await deleteFully(target, { id: vm.id, owner: me });
    if (refusedAs !== undefined) unsupported(refusedAs);
  },
};

export const fullClone: ConformanceCase = {
  id: 'clone',
  title: 'a clone is a new VM with its own owner',
  capability: 'core',
  destructive: false,
  async run({ target, check, owner, vmName }) {
    const me = owner('source');
    const vm = await createFully(target, target.spec(vmName('src'), me));
    const cloneOwner = owner('clone');
    const { id, task } = await target.driver.clone({ id: vm.id, owner: me }, { name: vmName('clone'), owner: cloneOwner, linked: false });
    await taskDone(target, task, 'clone');
    let clone = await target.driver.describe(id);
    for (let step = 0; clone.incomplete && step < 3; step++) {
      const next = await target.driver.create(target.spec(vmName('clone'), cloneOwner));
      await taskDone(target, next.task, 'clone continued');
      clone = await target.driver.describe(id);
    }
    check.not(id, vm.id, 'the clone is another VM');
    check.same(clone.owner, cloneOwner, 'the clone carries its own owner');
    check.equal((await target.driver.findByIdentity(cloneOwner.uid))?.id, id, 'the clone is found by its owner');
    await deleteFully(target, { id, owner: cloneOwner });
    await deleteFully(target, { id: vm.id, owner: me });
  },
};
