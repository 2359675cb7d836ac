import t from 'tap';
import { GiB, MiB } from '../../../src/contracts/quantity.js';
import { formatMarker, placeholderName } from '../../../src/hypervisors/proxmox/identity.js';
import { OWNER, TEMPLATE, marker, miniPve, ownedVM } from './mini-pve.js';
import { recorded, recordedData } from './pve-stub.js';

t.test('describe reads power, hardware, owner, host and console link from status and config', async (t) => {
  const vm = ownedVM(120, { status: recordedData('qemu-status-current.running.pve8') as Record<string, unknown> });
  const { driver, routes } = await miniPve(t, [vm]);
  routes.set('GET /nodes/pve1/qemu/120/agent/network-get-interfaces', { body: recorded('agent-network-get-interfaces.pve6') });
  const observed = await driver.describe('120');
  t.match(observed, {
    id: '120',
    name: 'web',
    owner: OWNER,
    powerState: 'On',
    cpus: 2,
    memoryBytes: 4096 * MiB,
    firmware: 'bios',
    disks: [{ name: 'root', sizeBytes: 20 * GiB, datastore: 'local-lvm' }],
    nics: [{ name: 'lan', mac: 'bc:24:11:00:00:01', network: 'vmbr0', model: 'virtio' }],
    host: 'pve1',
  });
  t.equal(observed.incomplete, undefined);
  t.equal(observed.lock, undefined);
  t.same(observed.ips, ['10.1.2.3', 'fd8c:4687:e88d:1be3:5b70:7b88:c79c:293'], 'loopback and the docker bridge are left out');
  t.match(observed.consoleURL, /^http:\/\/127\.0\.0\.1:\d+\/\?console=kvm&novnc=1&vmid=120&vmname=web&node=pve1&resize=off&cmd=$/);
});

t.test('a guest agent that is not running means no addresses, not an error', async (t) => {
  const vm = ownedVM(120, { status: { status: 'running', qmpstatus: 'running' } });
  const { driver } = await miniPve(t, [vm]);
  t.same((await driver.describe('120')).ips, []);
});

t.test('a QGA error inside a 200 answer means no addresses', async (t) => {
  const vm = ownedVM(120, { status: { status: 'running', qmpstatus: 'running' } });
  const { driver, routes } = await miniPve(t, [vm]);
  routes.set('GET /nodes/pve1/qemu/120/agent/network-get-interfaces', { body: recorded('agent-network-get-interfaces.unsupported.pve6') });
  t.same((await driver.describe('120')).ips, []);
});

t.test('the agent is not asked when the VM is stopped or has no agent', async (t) => {
  const { driver, stub } = await miniPve(t, [ownedVM(120), ownedVM(121, { status: { status: 'running' }, config: { ...ownedVM(121).config, agent: '0' } })]);
  await driver.describe('120');
  await driver.describe('121');
  t.equal(stub.calls('GET', /agent/).length, 0);
});

t.test('a paused VM is Suspended', async (t) => {
  const { driver } = await miniPve(t, [ownedVM(120, { status: { status: 'running', qmpstatus: 'paused' } })]);
  t.equal((await driver.describe('120')).powerState, 'Suspended');
});

t.test('a VM without the marker is foreign: it has no owner', async (t) => {
  const config = recordedData('qemu-config.vm-cloudinit.pve6') as Record<string, unknown>;
  const { driver } = await miniPve(t, [{ vmid: 101, node: 'pve1', name: 'test-qemu', config, status: recordedData('qemu-status-current.stopped.pve6') as Record<string, unknown> }]);
  const observed = await driver.describe('101');
  t.equal(observed.owner, undefined);
  t.equal(observed.incomplete, undefined);
  t.same(observed.disks.map((disk) => disk.name), ['root'], 'the boot disk is root, the cloud-init CD-ROM is no disk');
});

t.test('a VM whose marker says configuring and that holds no lock is incomplete', async (t) => {
  const vm = ownedVM(130, { config: { ...ownedVM(130).config, description: marker(OWNER, { state: 'configuring' }) } });
  const { driver } = await miniPve(t, [vm]);
  t.equal((await driver.describe('130')).incomplete, true);
});

t.test('a VM being cloned shows the clone lock and is not yet incomplete', async (t) => {
  const vm = ownedVM(130, { tags: undefined, lock: 'clone', config: { description: marker(OWNER, { state: 'configuring' }) } });
  const { driver } = await miniPve(t, [vm]);
  const observed = await driver.describe('130');
  t.equal(observed.lock, 'clone');
  t.equal(observed.incomplete, undefined);
  t.same(observed.owner, OWNER);
});

t.test('describe of a VMID that does not exist is NotFound after one fresh look', async (t) => {
  const { driver, stub } = await miniPve(t, [ownedVM(120)]);
  await driver.describe('120');
  await t.rejects(driver.describe('999'), { code: 'NotFound' });
  t.equal(stub.calls('GET', '/cluster/resources').length, 2, 'the miss refreshed the snapshot once');
  await t.rejects(driver.describe('not-a-vmid'), { code: 'NotFound' });
});

t.test('a VM that moved to another node is found there after a refresh', async (t) => {
  // No details cache: the read on the old node answers "does not exist", which forces the refresh.
  const { driver, vms } = await miniPve(t, [ownedVM(120)], { driver: { detailsTtlMs: 0 } });
  await driver.describe('120');
  const vm = vms.get(120);
  if (vm) vm.node = 'pve2';
  t.equal((await driver.describe('120')).host, 'pve2');
});

t.test('a steady VM is described from the resources snapshot and its cached details', async (t) => {
  let now = 1_000_000;
  const { driver, stub, vms } = await miniPve(t, [ownedVM(120)], { driver: { now: () => now } });
  await driver.describe('120');
  const reads = () => stub.calls('GET', '/nodes/pve1/qemu/120/config').length + stub.calls('GET', '/nodes/pve1/qemu/120/status/current').length;
  const first = reads();
  now += 10_000;
  await driver.describe('120');
  t.equal(reads(), first, 'no config or status read while the row is unchanged');
  t.equal(stub.calls('GET', '/cluster/resources').length, 2, 'one snapshot per TTL');
  const vm = vms.get(120);
  if (vm) vm.config['cores'] = 6;
  now += 10_000;
  t.equal((await driver.describe('120')).cpus, 6, 'a changed row (maxcpu) reads the details again');
  t.ok(reads() > first);
});

t.test('a NIC added behind the driver\'s back shows within 30 minutes; guest addresses are reused for an hour', async (t) => {
  let now = 1_000_000;
  const vm = ownedVM(120, { status: { status: 'running', qmpstatus: 'running', uptime: 600 } });
  const { driver, routes, stub, vms } = await miniPve(t, [vm], { driver: { now: () => now } });
  routes.set('GET /nodes/pve1/qemu/120/agent/network-get-interfaces', { body: recorded('agent-network-get-interfaces.pve6') });
  // The row's uptime grows with the clock: the same boot throughout.
  const bootedAt = now - 600_000;
  routes.set('GET /cluster/resources', () => ({
    data: [{ type: 'qemu', id: 'qemu/120', vmid: 120, node: 'pve1', name: 'web', status: 'running', template: 0, uptime: Math.floor((now - bootedAt) / 1000), tags: vm.tags }],
  }));
  t.equal((await driver.describe('120')).nics.length, 1);
  const entry = vms.get(120);
  if (entry) entry.config = { ...entry.config, net1: 'virtio=BC:24:11:00:00:02,bridge=vmbr1' };
  now += 20 * 60_000;
  t.equal((await driver.describe('120')).nics.length, 1, 'cached: the resources row cannot show NICs');
  now += 11 * 60_000;
  const observed = await driver.describe('120');
  t.equal(observed.nics.length, 2, 'read again after DETAILS_TTL_MS');
  t.ok(observed.ips.length > 0);
  t.equal(stub.calls('GET', /agent/).length, 1, 'the addresses were not asked again');
});

t.test('concurrent describes of many VMs share one resources request', async (t) => {
  const vms = Array.from({ length: 30 }, (_, index) => ownedVM(200 + index));
  const { driver, stub } = await miniPve(t, vms);
  const observed = await Promise.all(vms.map((vm) => driver.describe(String(vm.vmid))));
  t.equal(observed.length, 30);
  t.equal(stub.calls('GET', '/cluster/resources').length, 1);
  await Promise.all(vms.map((vm) => driver.describe(String(vm.vmid))));
  t.equal(stub.calls('GET', '/cluster/resources').length, 1, 'still fresh: no second request');
});

t.test('the resources snapshot is fetched again once its TTL has passed', async (t) => {
  let now = 1_000_000;
  const { driver, stub } = await miniPve(t, [ownedVM(120)], { driver: { now: () => now } });
  await driver.describe('120');
  now += 4000;
  await driver.describe('120');
  t.equal(stub.calls('GET', '/cluster/resources').length, 1);
  now += 1500;
  await Promise.all([driver.describe('120'), driver.describe('120'), driver.findByIdentity(OWNER.uid)]);
  t.equal(stub.calls('GET', '/cluster/resources').length, 2);
});

t.test('concurrent misses share one refresh', async (t) => {
  const { driver, stub } = await miniPve(t, [ownedVM(120)]);
  await driver.describe('120');
  const results = await Promise.allSettled(Array.from({ length: 10 }, (_, index) => driver.describe(String(900 + index))));
  t.ok(results.every((result) => result.status === 'rejected'));
  t.equal(stub.calls('GET', '/cluster/resources').length, 2);
});

t.test('findByIdentity finds the VM by its owner tag', async (t) => {
  const { driver } = await miniPve(t, [TEMPLATE, ownedVM(120)]);
  const found = await driver.findByIdentity(OWNER.uid);
  t.equal(found?.id, '120');
  t.same(found?.owner, OWNER);
});

t.test('findByIdentity finds a VM whose clone still runs, by the marker of a clone-locked row', async (t) => {
  const cloning = { vmid: 131, node: 'pve1', name: 'web', lock: 'clone', config: { description: marker(OWNER, { state: 'configuring' }) }, status: { status: 'stopped' } };
  const { driver } = await miniPve(t, [TEMPLATE, cloning]);
  const found = await driver.findByIdentity(OWNER.uid);
  t.equal(found?.id, '131');
  t.equal(found?.lock, 'clone');
});

t.test('findByIdentity finds a clone whose task ended before it was configured, by its placeholder name', async (t) => {
  const other = { uid: 'other-owner-uid', namespace: 'apps', name: 'copy' };
  const source = ownedVM(120);
  const copy = ownedVM(121, { name: placeholderName(other.uid), config: { ...ownedVM(121).config, description: formatMarker({ ...other, disks: {}, nics: {}, state: 'configuring' }) } });
  const { driver } = await miniPve(t, [source, copy]);
  t.equal((await driver.findByIdentity(other.uid))?.id, '121');
  t.equal((await driver.findByIdentity(OWNER.uid))?.id, '120', 'the tag alone is not enough: the marker decides');
});

t.test('findByIdentity answers undefined when no VM carries the owner, after one fresh look', async (t) => {
  const { driver, stub } = await miniPve(t, [TEMPLATE, ownedVM(120)]);
  await driver.describe('120');
  t.equal(await driver.findByIdentity('nobody'), undefined);
  t.equal(stub.calls('GET', '/cluster/resources').length, 2);
});

t.test('an aborted describe gives up its wait without cancelling the snapshot others share', async (t) => {
  const { driver, stub, routes } = await miniPve(t, [ownedVM(120), ownedVM(121)]);
  routes.set('GET /cluster/resources', () => ({
    delayMs: 200,
    data: [120, 121].map((vmid) => ({ type: 'qemu', id: `qemu/${vmid}`, vmid, node: 'pve1', name: 'web', status: 'stopped', template: 0 })),
  }));
  const controller = new AbortController();
  const aborted = driver.describe('120', { signal: controller.signal });
  const patient = driver.describe('121');
  setTimeout(() => controller.abort(), 20);
  await t.rejects(aborted, { code: 'Unreachable' });
  t.equal((await patient).id, '121');
  t.equal(stub.calls('GET', '/cluster/resources').length, 1);
});
