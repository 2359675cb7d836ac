// What every driver must show: probe and inventory, identity from the first moment, the asked
// hardware, power and guest addresses, reconfigure and disk growth, ownership before every change.
import { GiB } from '../../contracts/quantity.js';
import { skipped } from '../checks.js';
import { createFully, deleteFully, powerTo, taskDone, type ConformanceCase } from '../target.js';

const core = (id: string, title: string, run: ConformanceCase['run'], destructive = false): ConformanceCase => ({ id, title, capability: 'core', destructive, run });

export const probe = core('probe', 'probe answers a version and every capability flag is a boolean', async ({ target, check }) => {
  check.ok((await target.driver.probe()).version.length > 0, 'probe answers a version');
  for (const [flag, value] of Object.entries(target.driver.capabilities)) check.equal(typeof value, 'boolean', `capability ${flag} is a boolean`);
  const inventory = await target.driver.inventory();
  check.ok(inventory.hosts.length > 0, 'the inventory has hosts');
  check.ok(inventory.hosts.every((host) => host.cpus > 0 && host.memoryBytes > 0), 'every host has CPUs and memory');
});

export const identity = core('identity', 'a VM is findable by its identity from the moment create returns', async ({ target, check, owner, vmName }) => {
  const me = owner('find');
  const { id } = await target.driver.create(target.spec(vmName('find'), me));
  const found = await target.driver.findByIdentity(me.uid);
  check.equal(found?.id, id, 'findByIdentity right after create finds the VM');
  check.same(found?.owner, me, 'the found VM carries its owner');
  const vm = await createFully(target, target.spec(vmName('find'), me));
  check.equal(vm.id, id, 'continuing or repeating the create gives the same VM');
  check.equal(vm.powerState, 'Off', 'created powered off');
  check.equal(await target.driver.findByIdentity(owner('nobody').uid), undefined, 'findByIdentity of an owner without a VM finds nothing');
  await deleteFully(target, { id, owner: me });
});

export const hardware = core('hardware', 'the created VM has the asked hardware and a root disk', async ({ target, check, owner, vmName }) => {
  const me = owner('hardware');
  const spec = target.spec(vmName('hw'), me);
  const vm = await createFully(target, spec);
  check.equal(vm.cpus, spec.cpus, 'cpus');
  check.equal(vm.memoryBytes, spec.memoryBytes, 'memory');
  check.ok(vm.disks.some((disk) => disk.name === 'root' && disk.sizeBytes > 0), 'a root disk');
  check.same(vm.nics.map((nic) => nic.name).sort(), spec.nics.map((nic) => nic.name).sort(), 'the NICs by name');
  await deleteFully(target, { id: vm.id, owner: me });
});

export const power = core('power', 'a VM powers on, reports guest addresses without loopback or link-local, and powers off', async ({ target, check, owner, vmName }) => {
  const me = owner('power');
  const vm = await createFully(target, target.spec(vmName('power'), me));
  const ref = { id: vm.id, owner: me };
  await powerTo(target, ref, 'on', 'On');
  await target.waitUntil(async () => (await target.driver.describe(vm.id)).ips.length > 0, 'guest addresses');
  const ips = (await target.driver.describe(vm.id)).ips;
  check.notOk(ips.some((ip) => ip.startsWith('127.') || ip === '::1' || ip.toLowerCase().startsWith('fe80')), `loopback and link-local filtered out of ${ips.join(', ')}`);
  await powerTo(target, ref, 'off', 'Off');
  await deleteFully(target, ref);
});

export const reconfigure = core('reconfigure', 'CPU and memory change while the VM is off', async ({ target, check, owner, vmName }) => {
  const me = owner('resize');
  const vm = await createFully(target, target.spec(vmName('cpu'), me));
  const ref = { id: vm.id, owner: me };
  const { task } = await target.driver.reconfigure(ref, { cpus: vm.cpus + 1, memoryBytes: vm.memoryBytes + GiB });
  await taskDone(target, task, 'reconfigure');
  const after = await target.driver.describe(vm.id);
  check.equal(after.cpus, vm.cpus + 1, 'cpus after reconfigure');
  check.equal(after.memoryBytes, vm.memoryBytes + GiB, 'memory after reconfigure');
  await deleteFully(target, ref);
});

export const diskGrow = core('disk-grow', 'a disk grows and never shrinks', async ({ target, check, owner, vmName }) => {
  const me = owner('disk');
  const vm = await createFully(target, target.spec(vmName('disk'), me));
  const ref = { id: vm.id, owner: me };
  const root = vm.disks.find((disk) => disk.name === 'root');
  if (!root) throw check.fail('the VM has no root disk');
  const { task } = await target.driver.resizeDisk(ref, 'root', root.sizeBytes + 2 * GiB);
  await taskDone(target, task, 'resize');
  check.equal((await target.driver.describe(vm.id)).disks.find((disk) => disk.name === 'root')?.sizeBytes, root.sizeBytes + 2 * GiB, 'root disk size after growing it');
  await check.rejects(target.driver.resizeDisk(ref, 'root', root.sizeBytes), { code: 'InvalidSpec' }, 'shrinking the disk is refused');
  await deleteFully(target, ref);
});

export const foreignVM = core(
  'foreign-vm',
  'a foreign VM is never changed, whatever is asked',
  async ({ target, check, owner, vmName }) => {
    if (target.addForeignVM === undefined) skipped('needs a foreign VM (vcts: --foreign-vm ID)');
    const foreign = await target.addForeignVM(vmName('foreign'));
    const before = await target.driver.describe(foreign);
    // A VM that carries an identity is not a foreign VM: nothing is asked of it.
    check.equal(before.owner, undefined, 'the foreign VM has no owner');
    const ref = { id: foreign, owner: owner('intruder') };
    await check.rejects(target.driver.delete(ref), { code: 'Conflict' }, 'delete is refused');
    await check.rejects(target.driver.power(ref, 'off'), { code: 'Conflict' }, 'power off is refused');
    await check.rejects(target.driver.reconfigure(ref, { cpus: 1 }), { code: 'Conflict' }, 'reconfigure is refused');
    await check.rejects(target.driver.resizeDisk(ref, 'root', 999 * GiB), { code: 'Conflict' }, 'a disk resize is refused');
    const after = await target.driver.describe(foreign);
    check.equal(after.powerState, before.powerState, 'the power state is unchanged');
    check.equal(after.cpus, before.cpus, 'the CPUs are unchanged');
  },
  true,
);

export const otherOwner = core('other-owner', "another owner's VM is not ours to change", async ({ target, check, owner, vmName }) => {
  const me = owner('mine');
  const vm = await createFully(target, target.spec(vmName('mine'), me));
  await check.rejects(target.driver.delete({ id: vm.id, owner: owner('someone') }), { code: 'Conflict' }, "delete with another owner's identity is refused");
  check.equal((await target.driver.describe(vm.id)).id, vm.id, 'the VM is still there');
  await deleteFully(target, { id: vm.id, owner: me });
});

export const deleteVM = core('delete', 'delete removes the VM, then describe says NotFound', async ({ target, check, owner, vmName }) => {
  const me = owner('delete');
  const vm = await createFully(target, target.spec(vmName('delete'), me));
  const ref = { id: vm.id, owner: me };
  await powerTo(target, ref, 'on', 'On');
  await deleteFully(target, ref);
  await check.rejects(target.driver.describe(vm.id), { code: 'NotFound' }, 'describe after delete');
  check.equal(await target.driver.findByIdentity(me.uid), undefined, 'findByIdentity after delete finds nothing');
});

export const notFound = core('not-found', 'unknown VMs and tasks are NotFound', async ({ target, check, unknownId }) => {
  await check.rejects(target.driver.describe(unknownId), { code: 'NotFound' }, `describe of unknown VM ${unknownId}`);
});
