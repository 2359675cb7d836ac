// The Driver conformance suite: one set of behaviours every driver must show, whatever the
// hypervisor behind it. Each driver's test file supplies a target and runs this suite.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Test } from 'tap';
import {
  NotFoundError,
  type Capability,
  type CreateSpec,
  type Driver,
  type Identity,
  type ObservedVM,
  type VMRef,
} from '../../src/contracts/driver.js';
import { GiB } from '../../src/contracts/quantity.js';
import { sha256Of } from '../../src/hypervisors/common/disk-files.js';

/** A small VM from the `ubuntu-22-template` template on a `lan` NIC: every test hypervisor has both. */
export function basicSpec(name: string, owner: Identity, overrides: Partial<CreateSpec> = {}): CreateSpec {
  return {
    name,
    owner,
    cpus: 2,
    memoryBytes: 2 * GiB,
    features: { tpm: false, secureBoot: false, nestedVirtualization: false, cpuHotAdd: false, memoryHotAdd: false },
    image: { kind: 'template', ref: 'ubuntu-22-template', fullClone: true },
    disks: [],
    storage: { provisioning: 'thin' },
    nics: [{ name: 'lan' }],
    placement: {},
    ...overrides,
  };
}

export interface ConformanceTarget {
  driver: Driver;
  /** A create spec this hypervisor can fulfil: an existing template, network, storage. */
  spec(name: string, owner: Identity): CreateSpec;
  /** Lets (fake or real) time pass until `done` holds; fails with `what` when it never does. */
  waitUntil(done: () => Promise<boolean>, what: string): Promise<void>;
  /** A VM the driver did not create and must never change. */
  addForeignVM(name: string): Promise<string>;
  /** Where the driver writes exported disks and reads imported ones (its MIGRATION_DIR), if it does. */
  migrationDir?: string;
  close(): Promise<void>;
}

const owner = (name: string): Identity => ({ uid: `0a1b2c3d-0000-4000-8000-${name.padEnd(12, '0').slice(0, 12)}`, namespace: 'conformance', name });

async function taskDone(target: ConformanceTarget, task: string | undefined, what: string): Promise<void> {
  if (!task) return;
  await target.waitUntil(async () => {
    const status = await target.driver.taskStatus(task);
    if (status.state === 'failed') throw new Error(`${what}: task failed: ${status.error ?? ''}`);
    return status.state === 'succeeded';
  }, what);
}

/** Creates a VM through every step its hypervisor needs (create, then continue while incomplete). */
export async function createFully(target: ConformanceTarget, spec: CreateSpec): Promise<ObservedVM> {
  for (let step = 0; step < 5; step++) {
    const { id, task } = await target.driver.create(spec);
    await taskDone(target, task, `create step ${step}`);
    const vm = await target.driver.describe(id);
    if (!vm.incomplete && !vm.lock) return vm;
  }
  throw new Error('create did not complete in 5 steps');
}

async function deleteFully(target: ConformanceTarget, ref: VMRef): Promise<void> {
  for (let step = 0; step < 5; step++) {
    let vm: ObservedVM;
    try {
      vm = await target.driver.describe(ref.id);
    } catch (error) {
      if (error instanceof NotFoundError) return;
      throw error;
    }
    if (vm.lock) {
      await target.waitUntil(async () => !(await target.driver.describe(ref.id).catch(() => undefined))?.lock, 'lock released');
      continue;
    }
    const { task } = await target.driver.delete(ref);
    await taskDone(target, task, `delete step ${step}`);
  }
  throw new Error('delete did not finish in 5 steps');
}

/**
 * The capabilities added for the Viti API's Machines: what each asks of a create, and what the
 * created VM must then show (`check` may go on calling the driver).
 */
interface MachineCase {
  capability: Capability;
  name: string;
  ask(spec: CreateSpec): CreateSpec;
  check(target: ConformanceTarget, vm: ObservedVM, me: Identity, t: Test): Promise<void>;
}

const MACHINE_CASES: readonly MachineCase[] = [
  {
    capability: 'cpuTopology',
    name: 'topology',
    ask: (spec) => ({ ...spec, cpus: 4, settings: { cpuTopology: { sockets: 2, cores: 2 } } }),
    async check(_target, vm, _me, t) {
      t.equal(vm.cpus, 4);
      t.same(vm.settings?.cpuTopology, { sockets: 2, cores: 2 });
    },
  },
  {
    capability: 'osType',
    name: 'ostype',
    ask: (spec) => ({ ...spec, settings: { osType: 'windows' } }),
    async check(_target, vm, _me, t) {
      t.equal(vm.settings?.osType, 'windows');
    },
  },
  {
    capability: 'bootOrder',
    name: 'bootorder',
    ask: (spec) => ({ ...spec, settings: { bootOrder: ['network', 'disk'] } }),
    async check(_target, vm, _me, t) {
      t.same(vm.settings?.bootOrder, ['network', 'disk']);
    },
  },
  {
    capability: 'memoryBalloon',
    name: 'balloon',
    ask: (spec) => ({ ...spec, settings: { balloon: false } }),
    async check(_target, vm, _me, t) {
      t.equal(vm.settings?.balloon, false);
    },
  },
  {
    capability: 'guestAgent',
    name: 'agent',
    ask: (spec) => ({ ...spec, settings: { guestAgent: false } }),
    async check(_target, vm, _me, t) {
      t.equal(vm.settings?.guestAgent, false);
    },
  },
  {
    capability: 'deletionProtection',
    name: 'protected',
    ask: (spec) => ({ ...spec, settings: { protection: true } }),
    async check(target, vm, me, t) {
      t.equal(vm.settings?.protection, true);
      const ref = { id: vm.id, owner: me };
      await t.rejects(target.driver.delete(ref), { code: 'Conflict', message: /protection/ });
      t.equal((await target.driver.describe(vm.id)).id, vm.id, 'still there');
      const { task } = await target.driver.reconfigure(ref, { settings: { protection: false } });
      await taskDone(target, task, 'protection off');
      t.equal((await target.driver.describe(vm.id)).settings?.protection, false);
    },
  },
  {
    capability: 'diskLayout',
    name: 'layout',
    ask: (spec) => ({ ...spec, disks: [...spec.disks, { name: 'data', sizeBytes: GiB, root: false, bus: 'virtio', cache: 'writeback' }] }),
    async check(_target, vm, _me, t) {
      t.match(vm.disks.find((disk) => disk.name === 'data'), { bus: 'virtio', cache: 'writeback', sizeBytes: GiB });
    },
  },
  {
    capability: 'explicitId',
    name: 'vmid',
    ask: (spec) => ({ ...spec, requestedId: 4321 }),
    async check(target, vm, _me, t) {
      t.equal(vm.id, '4321');
      const other = owner('vmidother');
      await t.rejects(target.driver.create({ ...target.spec('conf-vmid2', other), requestedId: 4321 }), { code: 'Conflict', message: 'VM 4321 already exists' });
      t.equal(await target.driver.findByIdentity(other.uid), undefined, 'nothing made for the other owner');
    },
  },
  {
    capability: 'blankVM',
    name: 'blank',
    ask: (spec) => ({ ...spec, image: { kind: 'blank' }, disks: [{ name: 'root', sizeBytes: GiB, root: true }] }),
    async check(_target, vm, _me, t) {
      t.equal(vm.powerState, 'Off');
      t.ok(vm.disks.some((disk) => disk.name === 'root' && disk.sizeBytes >= GiB), 'an empty root disk of the asked size');
    },
  },
];

async function powerTo(target: ConformanceTarget, ref: VMRef, operation: 'on' | 'off', state: 'On' | 'Off'): Promise<void> {
  const { task } = await target.driver.power(ref, operation);
  await taskDone(target, task, `power ${operation}`);
  await target.waitUntil(async () => (await target.driver.describe(ref.id)).powerState === state, `power ${state}`);
}

export function driverConformance(t: Test, name: string, makeTarget: () => Promise<ConformanceTarget>): void {
  const test = (title: string, body: (target: ConformanceTarget, t: Test) => Promise<void>) =>
    t.test(`${name}: ${title}`, async (t) => {
      const target = await makeTarget();
      t.teardown(() => target.close());
      await body(target, t);
    });

  test('probe answers a version and every capability flag is a boolean', async (target, t) => {
    t.ok((await target.driver.probe()).version.length > 0);
    for (const [flag, value] of Object.entries(target.driver.capabilities)) t.equal(typeof value, 'boolean', flag);
    const inventory = await target.driver.inventory();
    t.ok(inventory.hosts.length > 0, 'has hosts');
    t.ok(inventory.hosts.every((host) => host.cpus > 0 && host.memoryBytes > 0));
  });

  test('a VM is findable by its identity from the moment create returns', async (target, t) => {
    const me = owner('find');
    const { id } = await target.driver.create(target.spec('conf-find', me));
    const found = await target.driver.findByIdentity(me.uid);
    t.equal(found?.id, id);
    t.same(found?.owner, me);
    const vm = await createFully(target, target.spec('conf-find', me));
    t.equal(vm.id, id, 'continuing or repeating the create gives the same VM');
    t.equal(vm.powerState, 'Off', 'created powered off');
    t.equal(await target.driver.findByIdentity(owner('nobody').uid), undefined);
    await deleteFully(target, { id, owner: me });
  });

  test('the created VM has the asked hardware and a root disk', async (target, t) => {
    const me = owner('hardware');
    const spec = target.spec('conf-hw', me);
    const vm = await createFully(target, spec);
    t.equal(vm.cpus, spec.cpus);
    t.equal(vm.memoryBytes, spec.memoryBytes);
    t.ok(vm.disks.some((disk) => disk.name === 'root' && disk.sizeBytes > 0), 'root disk');
    t.same(vm.nics.map((nic) => nic.name).sort(), spec.nics.map((nic) => nic.name).sort());
    await deleteFully(target, { id: vm.id, owner: me });
  });

  test('a VM powers on, reports guest addresses without loopback or link-local, and powers off', async (target, t) => {
    const me = owner('power');
    const vm = await createFully(target, target.spec('conf-power', me));
    const ref = { id: vm.id, owner: me };
    await powerTo(target, ref, 'on', 'On');
    await target.waitUntil(async () => (await target.driver.describe(vm.id)).ips.length > 0, 'guest addresses');
    const ips = (await target.driver.describe(vm.id)).ips;
    t.notOk(ips.some((ip) => ip.startsWith('127.') || ip === '::1' || ip.toLowerCase().startsWith('fe80')), `filtered: ${ips.join(', ')}`);
    await powerTo(target, ref, 'off', 'Off');
    await deleteFully(target, ref);
  });

  test('CPU and memory change while the VM is off', async (target, t) => {
    const me = owner('resize');
    const vm = await createFully(target, target.spec('conf-cpu', me));
    const ref = { id: vm.id, owner: me };
    const { task } = await target.driver.reconfigure(ref, { cpus: vm.cpus + 1, memoryBytes: vm.memoryBytes + GiB });
    await taskDone(target, task, 'reconfigure');
    const after = await target.driver.describe(vm.id);
    t.equal(after.cpus, vm.cpus + 1);
    t.equal(after.memoryBytes, vm.memoryBytes + GiB);
    await deleteFully(target, ref);
  });

  test('a disk grows and never shrinks', async (target, t) => {
    const me = owner('disk');
    const vm = await createFully(target, target.spec('conf-disk', me));
    const ref = { id: vm.id, owner: me };
    const root = vm.disks.find((disk) => disk.name === 'root');
    if (!root) throw new Error('no root disk');
    const { task } = await target.driver.resizeDisk(ref, 'root', root.sizeBytes + 2 * GiB);
    await taskDone(target, task, 'resize');
    t.equal((await target.driver.describe(vm.id)).disks.find((disk) => disk.name === 'root')?.sizeBytes, root.sizeBytes + 2 * GiB);
    await t.rejects(target.driver.resizeDisk(ref, 'root', root.sizeBytes), { code: 'InvalidSpec' });
    await deleteFully(target, ref);
  });

  test('a foreign VM is never changed, whatever is asked', async (target, t) => {
    const foreign = await target.addForeignVM('conf-foreign');
    const before = await target.driver.describe(foreign);
    t.equal(before.owner, undefined, 'no owner');
    const ref = { id: foreign, owner: owner('intruder') };
    await t.rejects(target.driver.delete(ref), { code: 'Conflict' });
    await t.rejects(target.driver.power(ref, 'off'), { code: 'Conflict' });
    await t.rejects(target.driver.reconfigure(ref, { cpus: 1 }), { code: 'Conflict' });
    await t.rejects(target.driver.resizeDisk(ref, 'root', 999 * GiB), { code: 'Conflict' });
    const after = await target.driver.describe(foreign);
    t.equal(after.powerState, before.powerState);
    t.equal(after.cpus, before.cpus);
  });

  test("another owner's VM is not ours to change", async (target, t) => {
    const me = owner('mine');
    const vm = await createFully(target, target.spec('conf-mine', me));
    await t.rejects(target.driver.delete({ id: vm.id, owner: owner('someone') }), { code: 'Conflict' });
    t.equal((await target.driver.describe(vm.id)).id, vm.id);
    await deleteFully(target, { id: vm.id, owner: me });
  });

  test('delete removes the VM, then describe says NotFound', async (target, t) => {
    const me = owner('delete');
    const vm = await createFully(target, target.spec('conf-delete', me));
    const ref = { id: vm.id, owner: me };
    await powerTo(target, ref, 'on', 'On');
    await deleteFully(target, ref);
    await t.rejects(target.driver.describe(vm.id), { code: 'NotFound' });
    t.equal(await target.driver.findByIdentity(me.uid), undefined);
  });

  test('a placement record is listed back with the VM on its host, or refused without placementPolicy', async (target, t) => {
    const me = owner('placed');
    const record = { labels: { 'app.kubernetes.io/name': 'Web', tier: 'gold', empty: '' }, order: 1_767_225_600_123 };
    const spec = { ...target.spec('conf-placed', me), placementRecord: record };
    if (!target.driver.capabilities.placementPolicy) {
      await t.rejects(target.driver.create(spec), { code: 'Unsupported' });
      t.equal(await target.driver.findByIdentity(me.uid), undefined, 'nothing made');
      return;
    }
    const vm = await createFully(target, spec);
    const host = (await target.driver.inventory()).hosts.find((candidate) => (candidate.placed ?? []).some((placed) => placed.owner === me.uid));
    const placed = host?.placed?.find((candidate) => candidate.owner === me.uid);
    t.same(placed?.labels, record.labels);
    t.equal(placed?.order, record.order);
    t.equal(placed?.memoryBytes, spec.memoryBytes);
    if (vm.host !== undefined) t.equal(host?.name, vm.host, 'listed on the host the VM is on');
    await deleteFully(target, { id: vm.id, owner: me });
  });

  test('a disk is exported (VM off) with its checksum and imported as an image a VM is made from, or refused without the capability', async (target, t) => {
    const me = owner('export');
    const file = { path: 'conformance/export/root.raw', format: 'raw' as const };
    const caps = target.driver.capabilities;
    if (!caps.diskExport) {
      await t.rejects(target.driver.exportDisk({ id: '1', owner: me }, { disk: 'root', file }), { code: 'Unsupported' });
    }
    if (!caps.diskImport) {
      await t.rejects(target.driver.importDisk(me, { name: 'root', file }), { code: 'Unsupported' });
    }
    if (!caps.diskExport) return;
    const dir = target.migrationDir;
    if (dir === undefined) throw new Error('a target whose driver exports disks must name its migration directory');
    const vm = await createFully(target, target.spec('conf-export', me));
    const ref = { id: vm.id, owner: me };
    await t.rejects(target.driver.exportDisk(ref, { disk: 'root', file: { path: '../outside.raw', format: 'raw' } }), { code: 'InvalidSpec' });
    await t.rejects(target.driver.exportDisk({ id: vm.id, owner: owner('intruder') }, { disk: 'root', file }), { code: 'Conflict' });
    const started = await target.driver.exportDisk(ref, { disk: 'root', file });
    await taskDone(target, started.task, 'export');
    const path = join(dir, file.path);
    t.equal((await readFile(`${path}.sha256`, 'utf8')).trim(), await sha256Of(path), 'the checksum beside the file is the file\'s');
    if (caps.diskImport) {
      const other = owner('import');
      const imported = await target.driver.importDisk(other, { name: 'root', file });
      await taskDone(target, imported.task, 'import');
      t.ok(imported.sizeBytes > 0);
      const again = await target.driver.importDisk(other, { name: 'root', file });
      t.same(again.image, imported.image, 'the same owner and name: the same image');
      const copy = await createFully(target, { ...target.spec('conf-imported', other), image: imported.image });
      t.ok(copy.disks.some((disk) => disk.name === 'root' && disk.sizeBytes > 0), 'a VM made from the imported disk');
      const removed = await target.driver.deleteImportedDisk(other, 'root');
      await taskDone(target, removed.task, 'imported disk delete');
      await target.driver.deleteImportedDisk(other, 'root');
      t.match(await target.driver.describe(copy.id), { id: copy.id }, 'the VM made from the image keeps its own copy');
      await deleteFully(target, { id: copy.id, owner: other });
    }
    await deleteFully(target, ref);
  });

  test('a migration volume is checked for room and writes, and a migration\'s files are removed, without a hypervisor call', async (target, t) => {
    const dir = target.migrationDir;
    if (dir === undefined) {
      t.pass('no migration directory');
      return;
    }
    const volume = await target.driver.migrationVolume('conformance-volume');
    t.ok(volume.freeBytes > 0, 'room on the volume');
    await t.rejects(target.driver.migrationVolume('Not_A_PVC'), { code: 'InvalidSpec' });
    await mkdir(join(dir, 'conformance-volume', 'm1'), { recursive: true });
    await writeFile(join(dir, 'conformance-volume', 'm1', 'root.raw'), 'x');
    await t.rejects(target.driver.removeMigrationFiles('conformance-volume'), { code: 'InvalidSpec' }, 'never a whole volume');
    await t.rejects(target.driver.removeMigrationFiles('../etc'), { code: 'InvalidSpec' });
    await target.driver.removeMigrationFiles('conformance-volume/m1');
    await target.driver.removeMigrationFiles('conformance-volume/m1');
    t.same(await readdir(join(dir, 'conformance-volume')), [], 'the migration\'s files are gone, the volume stays');
  });

  for (const machine of MACHINE_CASES) {
    test(`${machine.capability}: honoured when claimed, refused as Unsupported with nothing made when not`, async (target, t) => {
      const me = owner(machine.name);
      const spec = machine.ask(target.spec(`conf-${machine.name}`, me));
      if (!target.driver.capabilities[machine.capability]) {
        await t.rejects(target.driver.create(spec), { code: 'Unsupported' });
        t.equal(await target.driver.findByIdentity(me.uid), undefined, 'nothing made');
        return;
      }
      const vm = await createFully(target, spec);
      t.same(vm.owner, me);
      await machine.check(target, vm, me, t);
      await deleteFully(target, { id: vm.id, owner: me });
    });
  }

  test('unknown VMs and tasks are NotFound', async (target, t) => {
    await t.rejects(target.driver.describe('987654'), { code: 'NotFound' });
  });

  test('snapshots are created, listed, reverted and deleted when supported', async (target, t) => {
    if (!target.driver.capabilities.snapshots) {
      t.pass('no snapshot capability');
      return;
    }
    const me = owner('snap');
    const vm = await createFully(target, target.spec('conf-snap', me));
    const ref = { id: vm.id, owner: me };
    const created = await target.driver.snapshotCreate(ref, { name: 'before', memory: false, quiesce: false });
    await taskDone(target, created.task, 'snapshot');
    const list = await target.driver.snapshotList(ref);
    t.ok(list.some((snapshot) => snapshot.id === created.id), 'listed');
    const changed = await target.driver.reconfigure(ref, { cpus: vm.cpus + 2 });
    await taskDone(target, changed.task, 'reconfigure');
    const reverted = await target.driver.snapshotRevert(ref, created.id);
    await taskDone(target, reverted.task, 'revert');
    t.equal((await target.driver.describe(vm.id)).cpus, vm.cpus, 'the snapshot hardware is back');
    const removed = await target.driver.snapshotDelete(ref, created.id);
    await taskDone(target, removed.task, 'snapshot delete');
    t.notOk((await target.driver.snapshotList(ref)).some((snapshot) => snapshot.id === created.id));
    await deleteFully(target, ref);
  });

  test('a snapshot is listed under the name it was created with, and goes away with its VM', async (target, t) => {
    if (!target.driver.capabilities.snapshots) {
      await t.rejects(
        target.driver.snapshotCreate({ id: '987654', owner: owner('nosnap') }, { name: 'x', memory: false, quiesce: false }),
        { code: /Unsupported|NotFound/ },
      );
      return;
    }
    const me = owner('snapname');
    const vm = await createFully(target, target.spec('conf-snapname', me));
    const ref = { id: vm.id, owner: me };
    const name = 'vr0a1b2c3d00004000800000000001';
    const created = await target.driver.snapshotCreate(ref, { name, description: 'conformance', memory: false, quiesce: false });
    await taskDone(target, created.task, 'snapshot');
    const listed = (await target.driver.snapshotList(ref)).find((snapshot) => snapshot.name === name);
    t.equal(listed?.id, created.id, 'found by name');
    t.ok(listed && !Number.isNaN(Date.parse(listed.createdAt)), 'creation time is a timestamp');
    t.equal(listed?.memory, false);
    await t.rejects(target.driver.snapshotList({ id: vm.id, owner: owner('someone') }), { code: 'Conflict' }, 'not listed for another owner');
    // Deleting a VM that still has snapshots removes it and them.
    await deleteFully(target, ref);
    await t.rejects(target.driver.describe(vm.id), { code: 'NotFound' });
  });

  test('a memory snapshot of a running VM is taken when supported, refused as Unsupported when not', async (target, t) => {
    if (!target.driver.capabilities.snapshots) {
      t.pass('no snapshot capability');
      return;
    }
    const me = owner('memsnap');
    const vm = await createFully(target, target.spec('conf-memsnap', me));
    const ref = { id: vm.id, owner: me };
    await powerTo(target, ref, 'on', 'On');
    if (!target.driver.capabilities.memorySnapshots) {
      await t.rejects(target.driver.snapshotCreate(ref, { name: 'withmemory', memory: true, quiesce: false }), { code: 'Unsupported' });
    } else {
      const created = await target.driver.snapshotCreate(ref, { name: 'withmemory', memory: true, quiesce: false });
      await taskDone(target, created.task, 'memory snapshot');
      t.equal((await target.driver.snapshotList(ref)).find((snapshot) => snapshot.id === created.id)?.memory, true, 'holds memory');
      const reverted = await target.driver.snapshotRevert(ref, created.id);
      await taskDone(target, reverted.task, 'revert');
      await target.waitUntil(async () => (await target.driver.describe(vm.id)).powerState === 'On', 'running again after a memory revert');
    }
    if (!target.driver.capabilities.quiescedSnapshots) {
      await t.rejects(target.driver.snapshotCreate(ref, { name: 'quiesced', memory: false, quiesce: true }), { code: 'Unsupported' });
    }
    await powerTo(target, ref, 'off', 'Off');
    await deleteFully(target, ref);
  });

  test('a linked clone of a VM is made where supported, refused with a typed error where not', async (target, t) => {
    const me = owner('lsource');
    const vm = await createFully(target, target.spec('conf-lsrc', me));
    const cloneOwner = owner('lclone');
    const attempt = target.driver.clone({ id: vm.id, owner: me }, { name: 'conf-lclone', owner: cloneOwner, linked: true });
    if (!target.driver.capabilities.linkedClones) {
      await t.rejects(attempt, { code: 'Unsupported' });
    } else {
      // PVE makes linked clones of templates only: an ordinary VM is InvalidSpec there, never a full copy in disguise.
      const outcome = await attempt.then(
        (started) => ({ started }),
        (error: unknown) => ({ error: error as { code?: string } }),
      );
      if ('error' in outcome) {
        t.equal(outcome.error.code, 'InvalidSpec', 'refused as InvalidSpec');
      } else {
        await taskDone(target, outcome.started.task, 'linked clone');
        let clone = await target.driver.describe(outcome.started.id);
        for (let step = 0; clone.incomplete && step < 3; step++) {
          const next = await target.driver.create(target.spec('conf-lclone', cloneOwner));
          await taskDone(target, next.task, 'clone continued');
          clone = await target.driver.describe(outcome.started.id);
        }
        t.same(clone.owner, cloneOwner);
        t.ok(outcome.started.sourceSnapshot === undefined || outcome.started.sourceSnapshot.length > 0, 'a named source snapshot, if any');
        await deleteFully(target, { id: outcome.started.id, owner: cloneOwner });
        t.equal((await target.driver.describe(vm.id)).id, vm.id, 'the source is untouched by deleting its linked clone');
      }
    }
    await deleteFully(target, { id: vm.id, owner: me });
  });

  test('a clone is a new VM with its own owner', async (target, t) => {
    const me = owner('source');
    const vm = await createFully(target, target.spec('conf-src', me));
    const cloneOwner = owner('clone');
    const { id, task } = await target.driver.clone({ id: vm.id, owner: me }, { name: 'conf-clone', owner: cloneOwner, linked: false });
    await taskDone(target, task, 'clone');
    let clone = await target.driver.describe(id);
    for (let step = 0; clone.incomplete && step < 3; step++) {
      const next = await target.driver.create(target.spec('conf-clone', cloneOwner));
      await taskDone(target, next.task, 'clone continued');
      clone = await target.driver.describe(id);
    }
    t.not(id, vm.id);
    t.same(clone.owner, cloneOwner);
    t.equal((await target.driver.findByIdentity(cloneOwner.uid))?.id, id);
    await deleteFully(target, { id, owner: cloneOwner });
    await deleteFully(target, { id: vm.id, owner: me });
  });
}
