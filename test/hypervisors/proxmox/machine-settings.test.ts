// The settings of the Viti API's Machines on the fake PVE: CPU topology, OS type, boot order,
// guest agent, ballooning and deletion protection, at create and reconfigure, and what describe
// reports back.

import t from 'tap';
import type { CreateSpec, Identity } from '../../../src/contracts/driver.js';
import { GiB } from '../../../src/contracts/quantity.js';
import { errorFromResponse } from '../../../src/hypervisors/proxmox/errors.js';
import { settingsOf } from '../../../src/hypervisors/proxmox/settings.js';
import { basicSpec } from '../../conformance/driver-suite.js';
import { createVM, fakeCluster, owner, type FakeCluster } from './fake-pve.js';

function spec(name: string, who: Identity, overrides: Partial<CreateSpec> = {}): CreateSpec {
  return basicSpec(name, who, { disks: [{ name: 'root', sizeBytes: 10 * GiB, root: true }], ...overrides });
}

const configPosts = (cluster: FakeCluster, id: string) => cluster.calls('POST', new RegExp(`/qemu/${id}/config$`));

t.test('a clone gets every setting in its configuration step, and describe reports them back', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const who = owner('b1');
  const settings = {
    cpuTopology: { sockets: 2, cores: 2 },
    osType: 'windows' as const,
    bootOrder: ['cdrom' as const, 'disk' as const, 'network' as const],
    guestAgent: false,
    balloon: false,
    protection: true,
  };
  const id = await createVM(cluster, driver, spec('win', who, { cpus: 4, settings, nics: [{ name: 'lan' }, { name: 'dmz' }] }));
  const config = cluster.fake.vm(Number(id))?.config ?? {};
  t.match(config, { sockets: 2, cores: 4 / 2, ostype: 'win11', agent: '0', balloon: 0, protection: 1 });
  t.equal(config['vcpus'], undefined);
  t.equal(config['ide0'], 'none,media=cdrom', 'an empty CD-ROM drive next to the cloud-init drive on ide2');
  t.equal(config['boot'], 'order=ide0;scsi0;net0;net1', 'the CD-ROM, the boot disk, then every NIC in spec order');
  const vm = await driver.describe(id);
  t.same(vm.settings, settings);
  t.equal(vm.cpus, 4);
  // The CD-ROM drive came in a call of its own, before the configuration (qemu-server would append
  // a new CD drive to the old boot order of the same update).
  const puts = cluster.calls('PUT', new RegExp(`/qemu/${id}/config$`));
  t.equal(puts.length, 1);
  t.same(puts[0]?.params, { ide0: 'none,media=cdrom' });
  const all = cluster.calls();
  t.ok(all.indexOf(puts[0]!) < all.indexOf(configPosts(cluster, id)[0]!), 'before the configuration');
  t.equal(configPosts(cluster, id).length, 1, 'one configuration call');
});

t.test('without settings the configuration writes what it always did, and describe reports PVE\'s values', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const id = await createVM(cluster, driver, spec('plain', owner('b2')));
  const config = cluster.fake.vm(Number(id))?.config ?? {};
  t.match(config, { sockets: 1, cores: 2, agent: '1', ostype: 'l26', boot: 'order=scsi0' });
  for (const key of ['balloon', 'protection', 'ide0']) t.equal(config[key], undefined, key);
  t.same((await driver.describe(id)).settings, {
    cpuTopology: { sockets: 1, cores: 2 },
    osType: 'linux',
    bootOrder: ['disk'],
    guestAgent: true,
    balloon: true,
    protection: false,
  });
});

t.test('a topology whose product is not the CPUs, or one with CPU hot-add, is refused before anything is cloned', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  await t.rejects(driver.create(spec('bad', owner('b3'), { cpus: 4, settings: { cpuTopology: { sockets: 2, cores: 3 } } })), {
    code: 'InvalidSpec',
    message: 'cpus 4 must be sockets × cores (2 × 3 = 6)',
  });
  const features = { tpm: false, secureBoot: false, nestedVirtualization: false, cpuHotAdd: true, memoryHotAdd: false };
  await t.rejects(driver.create(spec('hot', owner('b3'), { cpus: 4, features, settings: { cpuTopology: { sockets: 2, cores: 2 } } })), {
    code: 'InvalidSpec',
    message: /CPU hot-add cannot be combined with a CPU topology/,
  });
  await t.rejects(driver.create(spec('twice', owner('b3'), { settings: { bootOrder: ['disk', 'network', 'disk'] } })), { code: 'InvalidSpec', message: "the boot order names 'disk' twice" });
  await t.rejects(driver.create(spec('nonic', owner('b3'), { nics: [], settings: { bootOrder: ['network'] } })), { code: 'InvalidSpec', message: /has no NIC/ });
  t.equal(cluster.calls('POST', /\/clone$/).length, 0);
});

t.test('reconfigure changes only the settings that differ, and a repeat sends nothing', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const who = owner('b4');
  const id = await createVM(cluster, driver, spec('re', who, { settings: { balloon: false, guestAgent: false } }));
  const ref = { id, owner: who };
  const change = {
    cpus: 4,
    settings: { cpuTopology: { sockets: 1, cores: 4 }, osType: 'other' as const, bootOrder: ['network' as const, 'disk' as const], balloon: true, guestAgent: true },
  };
  const before = configPosts(cluster, id).length;
  const started = await driver.reconfigure(ref, change);
  await cluster.finish(driver, started.task, 'reconfigure');
  const config = cluster.fake.vm(Number(id))?.config ?? {};
  t.match(config, { sockets: 1, cores: 4, ostype: 'other', boot: 'order=net0;scsi0', agent: '1' });
  t.equal(config['balloon'], undefined, 'ballooning on is PVE\'s default: the key is deleted');
  t.same((await driver.describe(id)).settings, { ...change.settings, protection: false });
  t.same(await driver.reconfigure(ref, change), {}, 'nothing left to change');
  t.equal(configPosts(cluster, id).length, before + 1);
  await t.rejects(driver.reconfigure(ref, { cpus: 3, settings: { cpuTopology: { sockets: 2, cores: 2 } } }), { code: 'InvalidSpec', message: /cpus 3 must be sockets × cores/ });
});

t.test('a boot order naming a CD-ROM drive the VM lacks adds an empty one before the order is written', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const who = owner('b5');
  const id = await createVM(cluster, driver, spec('cd', who));
  const started = await driver.reconfigure({ id, owner: who }, { settings: { bootOrder: ['disk', 'cdrom'] } });
  await cluster.finish(driver, started.task, 'boot order');
  const config = cluster.fake.vm(Number(id))?.config ?? {};
  t.equal(config['ide0'], 'none,media=cdrom');
  t.equal(config['boot'], 'order=scsi0;ide0');
  t.same((await driver.describe(id)).settings?.bootOrder, ['disk', 'cdrom']);
  t.same(await driver.reconfigure({ id, owner: who }, { settings: { bootOrder: ['disk', 'cdrom'] } }), {});
  t.equal(cluster.calls('PUT', /\/config$/).length, 1, 'one CD-ROM drive, added once');
});

t.test('a protected VM is not deleted, not even stopped; protection goes off live and the delete goes on', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const who = owner('b6');
  const id = await createVM(cluster, driver, spec('keep', who, { settings: { protection: true } }));
  const ref = { id, owner: who };
  const on = await driver.power(ref, 'on');
  await cluster.finish(driver, on.task, 'start');
  for (let attempt = 0; attempt < 3; attempt += 1) {
    await t.rejects(driver.delete(ref), { code: 'Conflict', message: `VM ${id} has deletion protection on: turn protection off to delete it` });
  }
  t.equal(cluster.calls('POST', /\/status\/stop$/).length, 0, 'not stopped');
  t.equal(cluster.calls('DELETE').length, 0, 'no destroy asked');
  t.equal(cluster.fake.vm(Number(id))?.status, 'running');

  const off = await driver.reconfigure(ref, { settings: { protection: false } });
  await cluster.finish(driver, off.task, 'protection off');
  t.equal(cluster.fake.vm(Number(id))?.config['protection'], 0, 'applied to the running VM at once');
  t.equal((await driver.describe(id)).settings?.protection, false);
  const stop = await driver.delete(ref);
  t.match(stop.task, /:qmstop:/);
  await cluster.finish(driver, stop.task, 'stop');
  const destroy = await driver.delete(ref);
  await cluster.finish(driver, destroy.task, 'destroy');
  t.equal(cluster.fake.vm(Number(id)), undefined);
});

t.test("PVE's refusal to destroy a protected VM is Conflict naming the protection, never NotFound or a retried failure", async (t) => {
  const error = errorFromResponse(500, "can't remove VM 100 - protection mode enabled", { data: null, message: "can't remove VM 100 - protection mode enabled\n" });
  t.equal(error.code, 'Conflict');
  t.match(error.message, /protection mode enabled/);
  // The fake answers as qemu-server's destroy_vm does, in its synchronous part.
  const cluster = await fakeCluster(t);
  const vmid = cluster.fake.addForeignVm({ name: 'guarded' });
  const response = await fetch(`${cluster.fake.url}/api2/json/nodes/pve1/qemu/${vmid}/config`, {
    method: 'PUT',
    headers: { authorization: 'PVEAPIToken=virtrigaud@pve!vrtg=secret-token', 'content-type': 'application/x-www-form-urlencoded' },
    body: 'protection=1',
  });
  t.equal(response.status, 200);
  const destroy = await fetch(`${cluster.fake.url}/api2/json/nodes/pve1/qemu/${vmid}`, {
    method: 'DELETE',
    headers: { authorization: 'PVEAPIToken=virtrigaud@pve!vrtg=secret-token' },
  });
  t.equal(destroy.status, 500);
  t.match(((await destroy.json()) as { message?: string }).message, `can't remove VM ${vmid} - protection mode enabled`);
  t.ok(cluster.fake.vm(vmid), 'still there');
});

t.test('describe maps the ways PVE stores OS types and boot orders back to the contract', async (t) => {
  const disk = 'local-lvm:vm-1-disk-0,size=8G';
  t.same(settingsOf({ scsi0: disk, ostype: 'w2k8', sockets: 2, cores: 3 }), {
    cpuTopology: { sockets: 2, cores: 3 },
    osType: 'windows',
    bootOrder: ['disk'],
    guestAgent: false,
    balloon: true,
    protection: false,
  });
  t.equal(settingsOf({ ostype: 'l24' }).osType, 'linux');
  t.equal(settingsOf({ ostype: 'solaris' }).osType, 'solaris');
  t.equal(settingsOf({}).osType, 'other', "PVE's default");
  t.equal(settingsOf({ balloon: '0' }).balloon, false);
  t.equal(settingsOf({ balloon: 1024 }).balloon, true);
  const vm = { scsi0: disk, scsi1: disk, ide2: 'local-lvm:vm-1-cloudinit,media=cdrom', ide0: 'none,media=cdrom', net0: 'virtio,bridge=vmbr0', net1: 'virtio,bridge=vmbr1' };
  t.same(settingsOf({ ...vm, boot: 'order=net0;net1;scsi0;scsi1;ide2' }).bootOrder, ['network', 'disk'], 'runs collapse, the cloud-init drive is no boot device');
  t.same(settingsOf({ ...vm, boot: 'order=ide0;scsi1;net1' }).bootOrder, ['cdrom', 'disk', 'network']);
  t.same(settingsOf({ ...vm, boot: 'order=scsi7;net0' }).bootOrder, ['network'], 'a device the VM does not have is left out');
  t.same(settingsOf({ ...vm, boot: 'dcn' }).bootOrder, ['cdrom', 'disk', 'network'], 'legacy letters');
  t.same(settingsOf({ scsi0: disk, net0: 'virtio,bridge=vmbr0' }).bootOrder, ['disk', 'network'], "qemu-server's default cdn, for the devices there are");
  t.equal(settingsOf({ agent: 'enabled=1,fstrim_cloned_disks=1' }).guestAgent, true);
});
