// Disk layout (bus, cache, format, storage per disk) and blank VMs on the fake PVE, with the
// errors the Viti API's table names: a storage, bridge or template that does not exist.

import t from 'tap';
import type { CreateSpec, Identity } from '../../../src/contracts/driver.js';
import { GiB } from '../../../src/contracts/quantity.js';
import { parseMarker } from '../../../src/hypervisors/proxmox/identity.js';
import type { FakePveOptions } from '../../fakes/proxmox/index.js';
import { basicSpec } from '../../conformance/driver-suite.js';
import { createVM, fakeCluster, owner } from './fake-pve.js';

const STORAGES: FakePveOptions = {
  storages: [
    { id: 'local-lvm', type: 'lvmthin', content: ['images', 'rootdir'], capacityBytes: 512 * GiB },
    { id: 'local', type: 'dir', content: ['iso', 'vztmpl', 'snippets', 'import', 'images'], capacityBytes: 100 * GiB },
    { id: 'thick', type: 'lvm', content: ['images'], capacityBytes: 100 * GiB },
    { id: 'backups', type: 'dir', content: ['backup'], capacityBytes: 100 * GiB },
    { id: 'pve2-only', type: 'lvmthin', content: ['images'], capacityBytes: 100 * GiB, nodes: ['pve2'] },
  ],
};

function spec(name: string, who: Identity, overrides: Partial<CreateSpec> = {}): CreateSpec {
  return basicSpec(name, who, { disks: [{ name: 'root', sizeBytes: 10 * GiB, root: true }], ...overrides });
}

const blank = { kind: 'blank' } as const;

t.test('every disk of a clone lands on its bus, storage, format and cache; describe reports them', async (t) => {
  const cluster = await fakeCluster(t, STORAGES);
  const driver = cluster.driver();
  const disks = [
    { name: 'root', sizeBytes: 10 * GiB, root: true, cache: 'writeback' as const },
    { name: 'fast', sizeBytes: 2 * GiB, root: false, bus: 'virtio' as const, cache: 'none' as const, format: 'qcow2' as const, datastore: 'local' },
    { name: 'legacy', sizeBytes: GiB, root: false, bus: 'sata' as const },
    { name: 'plain', sizeBytes: GiB, root: false },
    { name: 'second', sizeBytes: GiB, root: false, bus: 'virtio' as const, format: 'raw' as const },
  ];
  const id = await createVM(cluster, driver, spec('disks', owner('c1'), { disks }));
  const config = cluster.fake.vm(Number(id))?.config ?? {};
  t.match(config['scsi0'], /^local-lvm:vm-\d+-disk-\d+,cache=writeback,/, 'the root stays on the template\'s slot, with its cache mode');
  t.match(config['virtio0'], new RegExp(`^local:${id}/vm-${id}-disk-\\d+\\.qcow2,cache=none,size=2G$`));
  t.match(config['sata0'], /^local-lvm:vm-\d+-disk-\d+,size=1G$/);
  t.match(config['scsi1'], /^local-lvm:vm-\d+-disk-\d+,size=1G$/, 'no bus: the next SCSI slot');
  t.match(config['virtio1'], /^local-lvm:vm-\d+-disk-\d+,size=1G$/);
  const vm = await driver.describe(id);
  t.match(vm.disks, [
    { name: 'root', bus: 'scsi', cache: 'writeback', datastore: 'local-lvm', sizeBytes: 10 * GiB },
    { name: 'fast', bus: 'virtio', cache: 'none', format: 'qcow2', datastore: 'local', sizeBytes: 2 * GiB },
    { name: 'second', bus: 'virtio', datastore: 'local-lvm' },
    { name: 'plain', bus: 'scsi' },
    { name: 'legacy', bus: 'sata' },
  ]);
  t.equal(vm.disks.find((disk) => disk.name === 'second')?.format, undefined, 'an LVM-thin volume names no format: none reported');
});

t.test('the root disk of a clone stays on the template\'s bus; a linked clone keeps its storage and format', async (t) => {
  const cluster = await fakeCluster(t, STORAGES);
  const driver = cluster.driver();
  await t.rejects(driver.create(spec('bus', owner('c2'), { disks: [{ name: 'root', sizeBytes: 10 * GiB, root: true, bus: 'virtio' }] })), {
    code: 'InvalidSpec',
    message: "root disk 'root' stays on the template's scsi bus (scsi0), it cannot be on virtio",
  });
  const linked = { kind: 'template' as const, ref: 'ubuntu-22-template', fullClone: false };
  await t.rejects(driver.create(spec('lstore', owner('c2'), { image: linked, disks: [{ name: 'root', sizeBytes: 10 * GiB, root: true, datastore: 'local' }] })), {
    code: 'InvalidSpec',
    message: "a linked clone keeps root disk 'root' on the template's storage 'local-lvm', not 'local'",
  });
  await t.rejects(driver.create(spec('lfmt', owner('c2'), { image: linked, disks: [{ name: 'root', sizeBytes: 10 * GiB, root: true, format: 'qcow2' }] })), {
    code: 'InvalidSpec',
    message: "a linked clone keeps root disk 'root' in the template's format (raw), not qcow2",
  });
  t.equal(cluster.calls('POST', /\/clone$/).length, 0, 'nothing cloned');
  // The same format as the template's volume is no change: the clone goes ahead.
  const id = await createVM(cluster, driver, spec('lraw', owner('c2'), { image: linked, disks: [{ name: 'root', sizeBytes: 10 * GiB, root: true, format: 'raw', bus: 'scsi' }] }));
  t.equal((await driver.describe(id)).disks[0]?.bus, 'scsi');
});

t.test('a full clone puts its root disk on the root\'s storage in the root\'s format', async (t) => {
  const cluster = await fakeCluster(t, STORAGES);
  const driver = cluster.driver();
  const id = await createVM(cluster, driver, spec('dir', owner('c3'), { disks: [{ name: 'root', sizeBytes: 10 * GiB, root: true, datastore: 'local', format: 'vmdk' }] }));
  t.match(cluster.calls('POST', /\/clone$/)[0]?.params, { storage: 'local', format: 'vmdk', full: '1' });
  t.match((await driver.describe(id)).disks[0], { name: 'root', datastore: 'local', format: 'vmdk' });
});

t.test('a format the storage cannot hold is refused before PVE is asked, in PVE\'s words, or by PVE', async (t) => {
  const cluster = await fakeCluster(t, STORAGES);
  const driver = cluster.driver();
  // A full clone would silently fall back to raw (resolve_dst_disk_format): refused here instead.
  await t.rejects(driver.create(spec('root', owner('c4'), { disks: [{ name: 'root', sizeBytes: 10 * GiB, root: true, format: 'qcow2' }] })), {
    code: 'InvalidSpec',
    message: "unsupported format 'qcow2': storage 'local-lvm' (lvmthin) holds raw volumes",
  });
  await t.rejects(
    driver.create(spec('extra', owner('c4'), { disks: [{ name: 'root', sizeBytes: 10 * GiB, root: true }, { name: 'data', sizeBytes: GiB, root: false, format: 'vmdk' }] })),
    { code: 'InvalidSpec', message: /^unsupported format 'vmdk'/ },
  );
  await t.rejects(driver.create(spec('blank', owner('c4'), { image: blank, disks: [{ name: 'root', sizeBytes: GiB, root: true, format: 'qcow2', datastore: 'local-lvm' }] })), {
    code: 'InvalidSpec',
    message: /^unsupported format 'qcow2'/,
  });
  t.equal(cluster.calls('POST', /\/clone$|\/qemu$/).length, 0);

  // LVM's formats PVE decides (PVE 9 lets it hold qcow2 chains): its refusal fails the create task as InvalidSpec.
  const who = owner('c5');
  const created = await driver.create(spec('thick', who, { image: blank, disks: [{ name: 'root', sizeBytes: GiB, root: true, format: 'qcow2', datastore: 'thick' }] }));
  let status = await driver.taskStatus(created.task ?? '');
  await cluster.until(async () => (status = await driver.taskStatus(created.task ?? '')).state !== 'running', 'create task ends');
  t.match(status, { state: 'failed', errorCode: 'InvalidSpec', error: /unsupported format 'qcow2'/ });
  t.equal(cluster.fake.vm(Number(created.id)), undefined, 'PVE removed what it began');
  t.equal(await driver.findByIdentity(who.uid), undefined);
});

t.test('the error table: a storage, bridge or template that does not exist is InvalidSpec before anything is made', async (t) => {
  const cluster = await fakeCluster(t, STORAGES);
  const driver = cluster.driver();
  const who = owner('c6');
  await t.rejects(driver.create(spec('s', who, { storage: { provisioning: 'thin', datastore: 'nowhere' } })), { code: 'InvalidSpec', message: "storage 'nowhere' not found" });
  await t.rejects(
    driver.create(spec('d', who, { disks: [{ name: 'root', sizeBytes: 10 * GiB, root: true }, { name: 'data', sizeBytes: GiB, root: false, datastore: 'nowhere' }] })),
    { code: 'InvalidSpec', message: "storage 'nowhere' not found" },
  );
  await t.rejects(driver.create(spec('b', who, { image: blank, storage: { provisioning: 'thin', datastore: 'nowhere' } })), { code: 'InvalidSpec', message: "storage 'nowhere' not found" });
  await t.rejects(driver.create(spec('c', who, { image: blank, disks: [{ name: 'root', sizeBytes: GiB, root: true, datastore: 'backups' }] })), {
    code: 'InvalidSpec',
    message: "storage 'backups' does not support vm images",
  });
  await t.rejects(driver.create(spec('n', who, { image: blank, placement: { host: 'pve1' }, disks: [{ name: 'root', sizeBytes: GiB, root: true, datastore: 'pve2-only' }] })), {
    code: 'InvalidSpec',
    message: "storage 'pve2-only' is not available on node 'pve1'",
  });
  await t.rejects(driver.create(spec('br', who, { nics: [{ name: 'lan', bridge: 'vmbr7' }] })), { code: 'InvalidSpec', message: /^bridge 'vmbr7' not found/ });
  await t.rejects(driver.create(spec('bb', who, { image: blank, nics: [{ name: 'lan', bridge: 'vmbr7' }] })), { code: 'InvalidSpec', message: /^bridge 'vmbr7' not found/ });
  await t.rejects(driver.create(spec('t', who, { image: { kind: 'template', ref: 'no-such-template', fullClone: true } })), {
    code: 'InvalidSpec',
    message: "template 'no-such-template' not found",
  });
  t.equal(cluster.calls('POST', /\/clone$|\/qemu$/).length, 0, 'nothing created');
  t.equal(cluster.fake.vms().length, 2, 'the two templates only');
});

t.test('a blank VM is created empty on its host, with its disks, NICs and settings, in two steps like a clone', async (t) => {
  const cluster = await fakeCluster(t, STORAGES);
  const driver = cluster.driver();
  const who = owner('c7');
  const machine = spec('blank', who, {
    image: blank,
    cpus: 2,
    placement: { host: 'pve2' },
    nics: [{ name: 'lan' }, { name: 'dmz', vlan: 20 }],
    disks: [
      { name: 'root', sizeBytes: 10 * GiB, root: true, bus: 'virtio', cache: 'writeback', format: 'raw' },
      { name: 'data', sizeBytes: 1.5 * GiB, root: false, bus: 'sata', datastore: 'local', format: 'qcow2' },
    ],
    settings: { bootOrder: ['network', 'disk'], osType: 'linux' },
  });
  const first = await driver.create(machine);
  t.match(first.task, /:qmcreate:/);
  const [create, ...more] = cluster.calls('POST', /^\/nodes\/[^/]+\/qemu$/);
  t.equal(more.length, 0);
  t.equal(cluster.calls('POST', /\/clone$/).length, 0, 'no template');
  t.match(create, { path: '/nodes/pve2/qemu', params: { virtio0: 'local-lvm:10,format=raw,cache=writeback', sata0: 'local:2,format=qcow2', name: `vr-${who.uid}` } });
  t.same(parseMarker(create?.params['description']), { ...who, disks: { root: 'virtio0', data: 'sata0' }, nics: { lan: 'net0', dmz: 'net1' }, state: 'configuring' });
  t.equal((await driver.findByIdentity(who.uid))?.id, first.id, 'findable while PVE creates it');

  const id = await createVM(cluster, driver, machine);
  t.equal(id, first.id);
  const vm = await driver.describe(id);
  t.match(vm, { name: 'blank', host: 'pve2', powerState: 'Off', cpus: 2, owner: who });
  t.notOk(vm.incomplete);
  t.match(vm.disks, [
    { name: 'root', bus: 'virtio', cache: 'writeback', sizeBytes: 10 * GiB, datastore: 'local-lvm' },
    { name: 'data', bus: 'sata', format: 'qcow2', sizeBytes: 2 * GiB, datastore: 'local' },
  ]);
  t.same(vm.nics.map((nic) => [nic.name, nic.vlan]), [['lan', undefined], ['dmz', 20]]);
  t.same(vm.settings?.bootOrder, ['network', 'disk']);
  t.equal(cluster.fake.vm(Number(id))?.config['boot'], 'order=net0;net1;virtio0');
  t.equal(cluster.calls('POST', /^\/nodes\/[^/]+\/qemu$/).length, 1, 'created once');
});

t.test('a blank VM whose create answer was lost is continued by a restarted runtime, never made twice', async (t) => {
  const cluster = await fakeCluster(t, { ...STORAGES, taskDurations: { qmcreate: 60_000 } });
  const who = owner('c8');
  const machine = spec('lost', who, { image: blank });
  const first = cluster.driver();
  cluster.fake.injectFault({ kind: 'dropResponse', method: 'POST', path: /^\/nodes\/[^/]+\/qemu$/ });
  await t.rejects(first.create(machine), { code: 'Unreachable' });
  await first.close();

  const second = cluster.driver();
  await t.rejects(second.create(machine), { code: 'Busy' }, 'its qmcreate still runs and its config names nobody yet');
  await t.rejects(second.findByIdentity(who.uid), { code: 'Busy' });
  cluster.clock.advance(61_000);
  const id = await createVM(cluster, second, machine);
  t.equal(cluster.calls('POST', /^\/nodes\/[^/]+\/qemu$/).length, 1, 'one create call in all');
  t.same((await second.describe(id)).owner, who);
  t.equal(cluster.fake.vms().filter((vm) => vm.config['template'] === undefined).length, 1);
});
