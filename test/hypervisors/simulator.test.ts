import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import type { CreateSpec, Identity, VMRef } from '../../src/contracts/driver.js';
import { GiB } from '../../src/contracts/quantity.js';
import {
  DEFAULT_DURATIONS,
  SimulatedHypervisor,
  SimulatorDriver,
  type SimulatorOptions,
} from '../../src/hypervisors/simulator/index.js';
import { FakeClock } from '../helpers/clock.js';

const D = DEFAULT_DURATIONS;

function world(options: SimulatorOptions = {}) {
  const clock = new FakeClock();
  const hypervisor = new SimulatedHypervisor({ clock, ...options });
  return { clock, hypervisor, driver: new SimulatorDriver(hypervisor) };
}

function owner(name: string): Identity {
  return { uid: `uid-${name}`, namespace: 'apps', name };
}

function spec(overrides: Partial<CreateSpec> = {}): CreateSpec {
  return {
    name: 'web',
    owner: owner('web'),
    cpus: 2,
    memoryBytes: 4 * GiB,
    features: { tpm: false, secureBoot: false, nestedVirtualization: false, cpuHotAdd: false, memoryHotAdd: false },
    image: { kind: 'template', ref: 'ubuntu-22-template', fullClone: true },
    disks: [{ name: 'root', sizeBytes: 20 * GiB, root: true }],
    storage: { provisioning: 'thin' },
    nics: [{ name: 'net0', bridge: 'vmbr0' }],
    placement: {},
    ...overrides,
  };
}

type World = ReturnType<typeof world>;

/** Creates a VM and lets its task finish. */
async function created({ driver, clock }: World, overrides: Partial<CreateSpec> = {}): Promise<VMRef> {
  const s = spec(overrides);
  const { id } = await driver.create(s);
  clock.advance(D.create);
  return { id, owner: s.owner };
}

/** Creates a VM, powers it on and waits until its guest reports addresses. */
async function running(w: World, overrides: Partial<CreateSpec> = {}): Promise<VMRef> {
  const ref = await created(w, overrides);
  await w.driver.power(ref, 'on');
  w.clock.advance(D.powerOn + D.boot);
  return ref;
}

t.test('a create task completes only when the clock passes its duration', async (t) => {
  const { driver, clock } = world();
  const { id, task } = await driver.create(spec());
  t.ok(task);
  const taskId = task ?? '';
  t.match(await driver.taskStatus(taskId), { state: 'running', progress: 0 });
  t.equal((await driver.describe(id)).lock, 'create');
  clock.advance(D.create / 2);
  t.match(await driver.taskStatus(taskId), { state: 'running', progress: 50 });
  clock.advance(D.create / 2 - 1);
  t.equal((await driver.taskStatus(taskId)).state, 'running');
  clock.advance(1);
  t.same(await driver.taskStatus(taskId), { state: 'succeeded', progress: 100 });
  const vm = await driver.describe(id);
  t.equal(vm.lock, undefined);
  t.equal(vm.powerState, 'Off');
});

t.test('a VM being created is found by its identity tag', async (t) => {
  const { driver } = world();
  const { id } = await driver.create(spec());
  const found = await driver.findByIdentity('uid-web');
  t.match(found, { id, name: 'web', owner: owner('web'), powerState: 'Off', lock: 'create' });
  t.equal(await driver.findByIdentity('uid-nobody'), undefined);
});

t.test('task IDs are unique and an unknown task is NotFound', async (t) => {
  const { driver } = world();
  const a = await driver.create(spec({ name: 'a', owner: owner('a') }));
  const b = await driver.create(spec({ name: 'b', owner: owner('b') }));
  t.not(a.task, b.task);
  t.match(a.task, /^UPID:sim-host-\d:[0-9A-F]{8}:qmcreate$/);
  await t.rejects(driver.taskStatus('UPID:sim-host-1:DEADBEEF:qmcreate'), { code: 'NotFound' });
});

t.test('finished tasks stay queryable', async (t) => {
  const w = world();
  const { task } = await w.driver.create(spec());
  w.clock.advance(D.create);
  await running(w, { name: 'other', owner: owner('other') });
  w.clock.advance(60_000);
  t.equal((await w.driver.taskStatus(task ?? '')).state, 'succeeded');
});

t.test('VM IDs are numeric from 100 up and never reused', async (t) => {
  const w = world();
  const first = await created(w, { name: 'a', owner: owner('a') });
  t.equal(first.id, '100');
  await w.driver.delete(first);
  w.clock.advance(D.delete);
  const second = await created(w, { name: 'a', owner: owner('a') });
  t.equal(second.id, '101');
});

t.test('guest addresses appear only after boot and never include loopback or link-local', async (t) => {
  const w = world();
  const ref = await created(w, { nics: [{ name: 'net0', bridge: 'vmbr0' }, { name: 'net1', network: 'lan' }] });
  t.same((await w.driver.describe(ref.id)).ips, [], 'no addresses while off');
  await w.driver.power(ref, 'on');
  w.clock.advance(D.powerOn);
  const booting = await w.driver.describe(ref.id);
  t.equal(booting.powerState, 'On');
  t.same(booting.ips, [], 'no addresses while the guest boots');
  w.clock.advance(D.boot);
  const ips = (await w.driver.describe(ref.id)).ips;
  t.equal(ips.length, 2, 'one address per NIC');
  for (const ip of ips) t.notMatch(ip, /^(127\.|::1$|fe80:|169\.254\.)/);
  t.same((await w.driver.describe(ref.id)).ips, ips, 'addresses are stable');
});

t.test('a static IP is reported without its prefix length', async (t) => {
  const w = world();
  const ref = await running(w, { nics: [{ name: 'net0', bridge: 'vmbr0', staticIP: { address: '192.168.10.20/24' } }] });
  t.same((await w.driver.describe(ref.id)).ips, ['192.168.10.20']);
});

t.test('a VM without NICs reports no addresses', async (t) => {
  const w = world();
  const ref = await running(w, { nics: [] });
  t.same((await w.driver.describe(ref.id)).ips, []);
});

t.test('describe reports host, console, disks, NICs and hardware', async (t) => {
  const w = world();
  const ref = await created(w, {
    image: { kind: 'template', ref: '9002', fullClone: true },
    firmware: undefined,
    disks: [{ name: 'root', sizeBytes: 20 * GiB, root: true }, { name: 'data', sizeBytes: 50 * GiB, root: false }],
    nics: [{ name: 'net0', bridge: 'vmbr0', vlan: 20, model: 'virtio' }, { name: 'net1', network: 'lan', mac: 'AA:BB:CC:DD:EE:FF' }],
    machine: 'q35',
  });
  const vm = await w.driver.describe(ref.id);
  t.match(vm, {
    firmware: 'uefi',
    machine: 'q35',
    host: /^sim-host-\d$/,
    consoleURL: /^vnc:\/\/sim-host-\d\.simulator\.invalid:\d+$/,
    disks: [
      { name: 'root', sizeBytes: 20 * GiB, datastore: 'sim-ds-1' },
      { name: 'data', sizeBytes: 50 * GiB, datastore: 'sim-ds-1' },
    ],
    nics: [
      { name: 'net0', network: 'vmbr0', vlan: 20, model: 'virtio', mac: /^52:54:00(:[0-9a-f]{2}){3}$/ },
      { name: 'net1', network: 'lan', mac: 'aa:bb:cc:dd:ee:ff' },
    ],
  });
});

t.test('NIC settings and disk provisioning are kept and reported', async (t) => {
  const w = world();
  const ref = await created(w, {
    storage: { provisioning: 'thick' },
    disks: [{ name: 'root', sizeBytes: 20 * GiB, root: true }, { name: 'data', sizeBytes: GiB, root: false }],
    nics: [{ name: 'net0', bridge: 'vmbr0', mtu: 9000, firewall: true, rateLimitMBps: 125, model: 'e1000' }],
  });
  const vm = await w.driver.describe(ref.id);
  t.match(vm.nics, [{ name: 'net0', network: 'vmbr0', mtu: 9000, firewall: true, rateLimitMBps: 125, model: 'e1000' }]);
  t.same(vm.disks.map((disk) => disk.provisioning), ['thick', 'thick']);
});

t.test('a root disk defaults to the template size', async (t) => {
  const w = world();
  const ref = await created(w, { image: { kind: 'template', ref: 'debian-12', fullClone: true }, disks: [] });
  t.same((await w.driver.describe(ref.id)).disks, [{ name: 'root', sizeBytes: 8 * GiB, datastore: 'sim-ds-1', provisioning: 'thin' }]);
});

t.test('a foreign VM is never changed by delete, power or reconfigure', async (t) => {
  const { driver, hypervisor, clock } = world();
  const id = hypervisor.addForeignVM({ name: 'legacy-db', powerState: 'On', cpus: 4, memoryBytes: 8 * GiB });
  const before = await driver.describe(id);
  t.equal(before.owner, undefined);
  const ref = { id, owner: owner('legacy-db') };
  await t.rejects(driver.delete(ref), { code: 'Conflict', message: `VM ${id} is not owned by apps/legacy-db` });
  await t.rejects(driver.power(ref, 'off'), { code: 'Conflict' });
  await t.rejects(driver.power(ref, 'shutdown'), { code: 'Conflict' });
  await t.rejects(driver.reconfigure(ref, { cpus: 8 }), { code: 'Conflict' });
  await t.rejects(driver.resizeDisk(ref, 'disk0', 100 * GiB), { code: 'Conflict' });
  await t.rejects(driver.snapshotCreate(ref, { name: 's', memory: false, quiesce: false }), { code: 'Conflict' });
  clock.advance(60_000);
  t.same(await driver.describe(id), before);
});

t.test("a VM tagged for another owner is never changed", async (t) => {
  const w = world();
  const mine = await running(w);
  const impostor = { id: mine.id, owner: owner('someone-else') };
  await t.rejects(w.driver.power(impostor, 'off'), { code: 'Conflict', message: /not owned by apps\/someone-else/ });
  await t.rejects(w.driver.delete(impostor), { code: 'Conflict' });
  w.clock.advance(60_000);
  t.match(await w.driver.describe(mine.id), { powerState: 'On', lock: undefined });
});

t.test('a mutation of a locked VM is refused as busy', async (t) => {
  const { driver } = world();
  const s = spec();
  const { id } = await driver.create(s);
  await t.rejects(driver.power({ id, owner: s.owner }, 'on'), { code: 'Busy', retryable: true });
  await t.rejects(driver.delete({ id, owner: s.owner }), { code: 'Busy' });
});

t.test('a missing VM is NotFound for describe and for mutations', async (t) => {
  const { driver } = world();
  await t.rejects(driver.describe('4242'), { code: 'NotFound' });
  await t.rejects(driver.power({ id: '4242', owner: owner('web') }, 'on'), { code: 'NotFound' });
});

t.test('an injected busy fault refuses as many calls as asked, then clears', async (t) => {
  const w = world();
  const ref = await created(w);
  w.hypervisor.injectFault('power', { kind: 'busy', times: 2 });
  await t.rejects(w.driver.power(ref, 'on'), { code: 'Busy' });
  await t.rejects(w.driver.power(ref, 'on'), { code: 'Busy' });
  t.ok((await w.driver.power(ref, 'on')).task);
  t.equal(w.hypervisor.callCount('power'), 3);
});

t.test('unreachable, unauthorized and invalid faults throw their typed errors without effect', async (t) => {
  const { driver, hypervisor } = world();
  hypervisor.injectFault('create', { kind: 'unreachable' });
  hypervisor.injectFault('create', { kind: 'unauthorized' });
  hypervisor.injectFault('create', { kind: 'invalid', message: 'parameter verification failed' });
  await t.rejects(driver.create(spec()), { code: 'Unreachable' });
  await t.rejects(driver.create(spec()), { code: 'Unauthorized' });
  await t.rejects(driver.create(spec()), { code: 'InvalidSpec', message: 'parameter verification failed' });
  t.same(hypervisor.listVMs(), []);
  hypervisor.injectFault('describe', { kind: 'busy' });
  hypervisor.clearFaults();
  await t.rejects(driver.describe('100'), { code: 'NotFound' });
});

t.test('a timed-out call answers only when its signal aborts, and nothing happens', async (t) => {
  const { driver, hypervisor } = world();
  hypervisor.injectFault('create', { kind: 'timeout' });
  const controller = new AbortController();
  let settled = false;
  const call = driver.create(spec(), { signal: controller.signal }).finally(() => {
    settled = true;
  });
  await new Promise((resolve) => setImmediate(resolve));
  t.notOk(settled, 'still waiting for an answer');
  controller.abort();
  await t.rejects(call, { code: 'Unreachable', message: /timed out/ });
  t.same(hypervisor.listVMs(), []);
  t.equal(await driver.findByIdentity('uid-web'), undefined);
});

t.test('an already-aborted call is refused and has no effect', async (t) => {
  const { driver, hypervisor } = world();
  await t.rejects(driver.create(spec(), { signal: AbortSignal.abort() }), { code: 'Unreachable' });
  t.same(hypervisor.listVMs(), []);
});

t.test('a lost response still creates the VM, which is then found by identity', async (t) => {
  const { driver, hypervisor } = world();
  hypervisor.injectFault('create', { kind: 'lostResponse' });
  await t.rejects(driver.create(spec()), { code: 'Unreachable', message: 'connection reset' });
  const found = await driver.findByIdentity('uid-web');
  t.match(found, { name: 'web', lock: 'create' });
  t.equal(hypervisor.listVMs().length, 1);
});

t.test('an injected task failure fails the create task and removes the VM', async (t) => {
  const { driver, hypervisor, clock } = world();
  hypervisor.injectFault('create', { kind: 'taskFailure', message: 'storage migration failed' });
  const { id, task } = await driver.create(spec());
  t.match(await driver.describe(id), { lock: 'create' }, 'the VM exists while the task runs');
  clock.advance(D.create);
  t.match(await driver.taskStatus(task ?? ''), { state: 'failed', error: 'storage migration failed' });
  await t.rejects(driver.describe(id), { code: 'NotFound' });
  t.equal(await driver.findByIdentity('uid-web'), undefined);
});

t.test('a failed power-on task leaves the VM off', async (t) => {
  const w = world();
  const ref = await created(w);
  w.hypervisor.injectFault('power', { kind: 'taskFailure' });
  const { task } = await w.driver.power(ref, 'on');
  w.clock.advance(D.powerOn);
  t.equal((await w.driver.taskStatus(task ?? '')).state, 'failed');
  t.match(await w.driver.describe(ref.id), { powerState: 'Off', lock: undefined });
});

t.test('firmware comes from the template unless the spec names one, and BIOS on a UEFI template is refused', async (t) => {
  const w = world();
  const plain = await created(w, { name: 'plain' });
  t.equal((await w.driver.describe(plain.id)).firmware, 'bios');
  const fromTemplate = await created(w, { name: 'efi', owner: owner('efi'), image: { kind: 'template', ref: 'ubuntu-24.04', fullClone: true }, disks: [] });
  t.equal((await w.driver.describe(fromTemplate.id)).firmware, 'uefi');
  await t.rejects(
    w.driver.create(spec({ name: 'bad', owner: owner('bad'), firmware: 'bios', image: { kind: 'template', ref: 'ubuntu-24.04', fullClone: true }, disks: [] })),
    { code: 'InvalidSpec', message: /UEFI/ },
  );
});

t.test('a linked clone of a template is recorded as linked', async (t) => {
  const w = world();
  const linked = await created(w, { image: { kind: 'template', ref: 'ubuntu-22-template', fullClone: false } });
  t.match(w.hypervisor.details(linked.id), { clonedFrom: { id: '9000', linked: true } });
});

t.test('a spec that needs a capability the hypervisor lacks is Unsupported', async (t) => {
  const cases: [keyof SimulatedHypervisor['capabilities'], Partial<CreateSpec>][] = [
    ['tpm', { features: { ...spec().features, tpm: true } }],
    ['secureBoot', { firmware: 'uefi', features: { ...spec().features, secureBoot: true } }],
    ['uefi', { firmware: 'uefi' }],
    ['uefi', { image: { kind: 'template', ref: 'ubuntu-24.04', fullClone: true }, disks: [] }],
    ['nestedVirtualization', { features: { ...spec().features, nestedVirtualization: true } }],
    ['cpuHotAdd', { features: { ...spec().features, cpuHotAdd: true } }],
    ['memoryHotAdd', { features: { ...spec().features, memoryHotAdd: true } }],
    ['vlan', { nics: [{ name: 'net0', bridge: 'vmbr0', vlan: 10 }] }],
    ['staticIP', { nics: [{ name: 'net0', bridge: 'vmbr0', staticIP: { address: '10.1.1.1/24' } }] }],
    ['nicModel', { nics: [{ name: 'net0', bridge: 'vmbr0', model: 'e1000' }] }],
    ['nicFirewall', { nics: [{ name: 'net0', bridge: 'vmbr0', firewall: true }] }],
    ['nicRateLimit', { nics: [{ name: 'net0', bridge: 'vmbr0', rateLimitMBps: 100 }] }],
    ['nicMTU', { nics: [{ name: 'net0', bridge: 'vmbr0', mtu: 9000 }] }],
    ['macAddress', { nics: [{ name: 'net0', bridge: 'vmbr0', mac: '52:54:00:00:00:01' }] }],
    ['machineType', { machine: 'q35' }],
    ['thickProvisioning', { storage: { provisioning: 'thick' } }],
    ['placementHost', { placement: { host: 'sim-host-1' } }],
    ['placementDatastore', { storage: { provisioning: 'thin', datastore: 'sim-ds-1' } }],
    ['imageImport', { image: { kind: 'url', url: 'http://127.0.0.1:9/image.qcow2', fullClone: true } }],
    ['cloudInit', { userData: '#cloud-config\n' }],
    ['linkedClones', { image: { kind: 'template', ref: 'ubuntu-22-template', fullClone: false } }],
  ];
  for (const [capability, overrides] of cases) {
    const { driver, hypervisor } = world({ capabilities: { [capability]: false } });
    await t.rejects(driver.create(spec(overrides)), { code: 'Unsupported', message: new RegExp(`'${capability}'`) }, capability);
    t.same(hypervisor.listVMs(), [], `${capability}: nothing created`);
  }
});

t.test('unknown references and a too-small root disk are refused with clear messages', async (t) => {
  const { driver, hypervisor } = world();
  const cases: [Partial<CreateSpec>, string][] = [
    [{ image: { kind: 'template', ref: 'windows-95', fullClone: true } }, "template 'windows-95' not found"],
    [{ nics: [{ name: 'net0', bridge: 'vmbr9' }] }, "network 'vmbr9' not found"],
    [{ nics: [{ name: 'net0', network: 'prod' }] }, "network 'prod' not found"],
    [{ nics: [{ name: 'backend' }] }, "network 'backend' not found"],
    [{ placement: { host: 'sim-host-9' } }, "host 'sim-host-9' not found"],
    [{ storage: { provisioning: 'thin', datastore: 'nfs-9' } }, "datastore 'nfs-9' not found"],
    [{ disks: [{ name: 'root', sizeBytes: 5 * GiB, root: true }] }, "root disk 5Gi is smaller than template 'ubuntu-22-template' (10Gi)"],
  ];
  for (const [overrides, message] of cases) {
    await t.rejects(driver.create(spec(overrides)), { code: 'InvalidSpec', message }, message);
  }
  t.same(hypervisor.listVMs(), []);
});

t.test('a template is found by its ID as well as its name', async (t) => {
  const w = world();
  const ref = await created(w, { image: { kind: 'template', ref: '9001', fullClone: true }, disks: [] });
  t.equal((await w.driver.describe(ref.id)).disks[0]?.sizeBytes, 8 * GiB);
});

t.test('a VM that does not fit in the free memory of a host is refused', async (t) => {
  const w = world({ hosts: [{ name: 'small', cpus: 8, memoryBytes: 16 * GiB }] });
  await created(w, { name: 'a', owner: owner('a'), memoryBytes: 12 * GiB });
  await t.rejects(w.driver.create(spec({ name: 'b', owner: owner('b'), memoryBytes: 8 * GiB })), {
    code: 'InvalidSpec',
    message: /not enough memory on host 'small': 4Gi free, 8Gi needed/,
  });
  await created(w, { name: 'c', owner: owner('c'), memoryBytes: 4 * GiB });
  t.equal(w.hypervisor.listVMs().length, 2);
});

t.test('a VM goes to the host with most free memory unless placed', async (t) => {
  const w = world();
  const a = await created(w, { name: 'a', owner: owner('a'), memoryBytes: 8 * GiB });
  const b = await created(w, { name: 'b', owner: owner('b'), memoryBytes: 8 * GiB });
  const c = await created(w, { name: 'c', owner: owner('c'), placement: { host: 'sim-host-1' } });
  const hosts = await Promise.all([a, b, c].map(async (ref) => (await w.driver.describe(ref.id)).host));
  t.same(hosts, ['sim-host-1', 'sim-host-2', 'sim-host-1']);
});

t.test('a second VM with a taken name is a conflict', async (t) => {
  const w = world();
  const first = await created(w);
  await t.rejects(w.driver.create(spec({ owner: owner('other') })), {
    code: 'Conflict',
    message: `a VM named 'web' already exists (id ${first.id})`,
  });
  w.hypervisor.addForeignVM({ name: 'legacy' });
  await t.rejects(w.driver.create(spec({ name: 'legacy', owner: owner('legacy') })), { code: 'Conflict' });
});

t.test('names may repeat when the hypervisor does not require unique names', async (t) => {
  const w = world({ uniqueNames: false });
  await created(w);
  await created(w, { owner: owner('other') });
  t.equal(w.hypervisor.listVMs().length, 2);
});

t.test('power on and off are tasks, and a VM already in the state needs none', async (t) => {
  const w = world();
  const ref = await created(w);
  t.same(await w.driver.power(ref, 'off'), {});
  const on = await w.driver.power(ref, 'on');
  t.ok(on.task);
  t.equal((await w.driver.describe(ref.id)).powerState, 'Off');
  w.clock.advance(D.powerOn);
  t.equal((await w.driver.describe(ref.id)).powerState, 'On');
  t.same(await w.driver.power(ref, 'on'), {});
  await w.driver.power(ref, 'off');
  w.clock.advance(D.powerOff);
  t.match(await w.driver.describe(ref.id), { powerState: 'Off', ips: [] });
});

t.test('a guest shutdown has no task and powers the VM off after a while', async (t) => {
  const w = world();
  const ref = await running(w);
  t.same(await w.driver.power(ref, 'shutdown'), {});
  w.clock.advance(D.shutdown - 1);
  t.equal((await w.driver.describe(ref.id)).powerState, 'On');
  w.clock.advance(1);
  t.match(await w.driver.describe(ref.id), { powerState: 'Off', ips: [] });
});

t.test('a guest that ignores shutdown stays on until powered off', async (t) => {
  const w = world();
  const ref = await running(w);
  w.hypervisor.setGuestIgnoresShutdown(ref.id, true);
  await w.driver.power(ref, 'shutdown');
  w.clock.advance(D.shutdown * 10);
  t.equal((await w.driver.describe(ref.id)).powerState, 'On');
  await w.driver.power(ref, 'off');
  w.clock.advance(D.powerOff);
  t.equal((await w.driver.describe(ref.id)).powerState, 'Off');
});

t.test('a shutdown overtaken by power-off and power-on does not turn the VM off later', async (t) => {
  const w = world();
  const ref = await running(w);
  await w.driver.power(ref, 'shutdown');
  await w.driver.power(ref, 'off');
  w.clock.advance(D.powerOff);
  await w.driver.power(ref, 'on');
  w.clock.advance(D.shutdown);
  t.equal((await w.driver.describe(ref.id)).powerState, 'On');
});

t.test('guest shutdown without the guestShutdown capability is Unsupported', async (t) => {
  const w = world({ capabilities: { guestShutdown: false } });
  const ref = await running(w);
  await t.rejects(w.driver.power(ref, 'shutdown'), { code: 'Unsupported' });
});

t.test('a reboot hides the addresses until the guest has booted again', async (t) => {
  const w = world();
  const ref = await running(w);
  const ips = (await w.driver.describe(ref.id)).ips;
  t.ok((await w.driver.power(ref, 'reboot')).task);
  t.same((await w.driver.describe(ref.id)).ips, []);
  w.clock.advance(D.reboot);
  t.match(await w.driver.describe(ref.id), { powerState: 'On', ips: [] });
  w.clock.advance(D.boot);
  t.same((await w.driver.describe(ref.id)).ips, ips);
});

t.test('rebooting a stopped VM is a conflict', async (t) => {
  const w = world();
  const ref = await created(w);
  await t.rejects(w.driver.power(ref, 'reboot'), { code: 'Conflict' });
});

t.test('delete powers off, holds a delete lock and removes the VM when its task ends', async (t) => {
  const w = world();
  const ref = await running(w);
  const { task } = await w.driver.delete(ref);
  t.match(await w.driver.describe(ref.id), { powerState: 'Off', lock: 'delete' });
  w.clock.advance(D.delete);
  t.equal((await w.driver.taskStatus(task ?? '')).state, 'succeeded');
  await t.rejects(w.driver.describe(ref.id), { code: 'NotFound' });
  t.equal(await w.driver.findByIdentity(ref.owner.uid), undefined);
});

t.test('a VM deleted out of band is NotFound and its running task fails', async (t) => {
  const w = world();
  const ref = await created(w);
  const { task } = await w.driver.power(ref, 'on');
  w.hypervisor.deleteOutOfBand(ref.id);
  w.clock.advance(D.powerOn);
  t.match(await w.driver.taskStatus(task ?? ''), { state: 'failed', errorCode: 'NotFound' });
  await t.rejects(w.driver.describe(ref.id), { code: 'NotFound' });
});

t.test('reconfigure applies to a stopped VM after its task', async (t) => {
  const w = world();
  const ref = await created(w);
  t.same(await w.driver.reconfigure(ref, { cpus: 2, memoryBytes: 4 * GiB }), {}, 'no change, no task');
  await w.driver.reconfigure(ref, { cpus: 4, memoryBytes: 8 * GiB });
  t.equal((await w.driver.describe(ref.id)).cpus, 2);
  w.clock.advance(D.reconfigure);
  t.match(await w.driver.describe(ref.id), { cpus: 4, memoryBytes: 8 * GiB });
});

t.test('reconfigure of a running VM needs hot-plug enabled on the VM', async (t) => {
  const w = world();
  const plain = await running(w);
  await t.rejects(w.driver.reconfigure(plain, { cpus: 4 }), { code: 'Unsupported', message: `cpu hot-add is not enabled on VM ${plain.id}` });
  await t.rejects(w.driver.reconfigure(plain, { memoryBytes: 8 * GiB }), { code: 'Unsupported' });
  const hot = await running(w, {
    name: 'hot',
    owner: owner('hot'),
    features: { ...spec().features, cpuHotAdd: true, memoryHotAdd: true },
  });
  await w.driver.reconfigure(hot, { cpus: 4, memoryBytes: 8 * GiB });
  w.clock.advance(D.reconfigure);
  t.match(await w.driver.describe(hot.id), { cpus: 4, memoryBytes: 8 * GiB, powerState: 'On' });
});

t.test('reconfigure of a running VM needs the hypervisor to hot-plug', async (t) => {
  const w = world({ capabilities: { cpuHotRemove: false } });
  const ref = await running(w, { features: { ...spec().features, cpuHotAdd: true } });
  await t.rejects(w.driver.reconfigure(ref, { cpus: 1 }), { code: 'Unsupported', message: /cpuHotRemove/ });
});

t.test('a disk never shrinks', async (t) => {
  const w = world();
  const ref = await created(w, { disks: [{ name: 'root', sizeBytes: 40 * GiB, root: true }] });
  await t.rejects(w.driver.resizeDisk(ref, 'root', 20 * GiB), { code: 'InvalidSpec', message: 'disk root cannot shrink from 40Gi to 20Gi' });
  await t.rejects(w.driver.resizeDisk(ref, 'swap', 50 * GiB), { code: 'InvalidSpec' });
  t.same(await w.driver.resizeDisk(ref, 'root', 40 * GiB), {});
  await w.driver.resizeDisk(ref, 'root', 60 * GiB);
  w.clock.advance(D.resizeDisk);
  t.equal((await w.driver.describe(ref.id)).disks[0]?.sizeBytes, 60 * GiB);
});

t.test('growing a disk of a running VM needs onlineDiskGrow', async (t) => {
  const w = world({ capabilities: { onlineDiskGrow: false } });
  const ref = await running(w);
  await t.rejects(w.driver.resizeDisk(ref, 'root', 60 * GiB), { code: 'Unsupported' });
});

t.test('a snapshot can be created, listed, reverted to and deleted', async (t) => {
  const w = world();
  const ref = await running(w);
  const taken = await w.driver.snapshotCreate(ref, { name: 'before-upgrade', description: 'pre', memory: false, quiesce: false });
  t.match(await w.driver.describe(ref.id), { lock: 'snapshot' });
  w.clock.advance(D.snapshot);
  t.same(await w.driver.snapshotList(ref), [
    { id: taken.id, name: 'before-upgrade', description: 'pre', createdAt: new Date(w.clock.now() - D.snapshot).toISOString(), memory: false },
  ]);
  await t.rejects(w.driver.snapshotCreate(ref, { name: 'before-upgrade', memory: false, quiesce: false }), { code: 'Conflict' });

  await w.driver.resizeDisk(ref, 'root', 30 * GiB);
  w.clock.advance(D.resizeDisk);
  await w.driver.snapshotRevert(ref, taken.id);
  w.clock.advance(D.snapshot);
  t.match(await w.driver.describe(ref.id), { powerState: 'Off', disks: [{ name: 'root', sizeBytes: 20 * GiB }] }, 'a disk-only snapshot comes back stopped');

  await w.driver.snapshotDelete(ref, taken.id);
  w.clock.advance(D.snapshot);
  t.same(await w.driver.snapshotList(ref), []);
  await t.rejects(w.driver.snapshotRevert(ref, taken.id), { code: 'NotFound' });
});

t.test('reverting to a memory snapshot leaves the VM running', async (t) => {
  const w = world();
  const ref = await running(w);
  const taken = await w.driver.snapshotCreate(ref, { name: 'live', memory: true, quiesce: true });
  w.clock.advance(D.snapshot);
  await w.driver.power(ref, 'off');
  w.clock.advance(D.powerOff);
  await w.driver.snapshotRevert(ref, taken.id);
  w.clock.advance(D.snapshot);
  const vm = await w.driver.describe(ref.id);
  t.equal(vm.powerState, 'On');
  t.not(vm.ips.length, 0, 'a resumed guest has its addresses');
});

t.test('a memory snapshot of a stopped VM records no memory', async (t) => {
  const w = world();
  const ref = await created(w);
  await w.driver.snapshotCreate(ref, { name: 'cold', memory: true, quiesce: false });
  t.match(await w.driver.snapshotList(ref), [{ name: 'cold', memory: false }]);
});

t.test('snapshots need their capabilities', async (t) => {
  const w = world({ capabilities: { memorySnapshots: false, quiescedSnapshots: false } });
  const ref = await running(w);
  await t.rejects(w.driver.snapshotCreate(ref, { name: 'm', memory: true, quiesce: false }), { code: 'Unsupported' });
  await t.rejects(w.driver.snapshotCreate(ref, { name: 'q', memory: false, quiesce: true }), { code: 'Unsupported' });
  const none = world({ capabilities: { snapshots: false } });
  const other = await created(none);
  await t.rejects(none.driver.snapshotCreate(other, { name: 's', memory: false, quiesce: false }), { code: 'Unsupported' });
});

t.test('a failed snapshot task leaves no snapshot behind', async (t) => {
  const w = world();
  const ref = await created(w);
  w.hypervisor.injectFault('snapshotCreate', { kind: 'taskFailure' });
  await w.driver.snapshotCreate(ref, { name: 's', memory: false, quiesce: false });
  w.clock.advance(D.snapshot);
  t.same(await w.driver.snapshotList(ref), []);
});

t.test('clone makes a powered-off copy carrying the new owner', async (t) => {
  const w = world();
  const source = await running(w, { cpus: 4, memoryBytes: 8 * GiB });
  const target = owner('web-copy');
  const { id, task } = await w.driver.clone(source, { name: 'web-copy', owner: target, linked: true });
  t.match(await w.driver.findByIdentity(target.uid), { id, lock: 'clone', powerState: 'Off' });
  w.clock.advance(D.clone);
  t.equal((await w.driver.taskStatus(task ?? '')).state, 'succeeded');
  const [original, copy] = await Promise.all([w.driver.describe(source.id), w.driver.describe(id)]);
  t.match(copy, { name: 'web-copy', owner: target, cpus: 4, memoryBytes: 8 * GiB, powerState: 'Off', disks: original.disks });
  t.not(copy.nics[0]?.mac, original.nics[0]?.mac, 'a clone gets its own MAC');
  t.same(w.hypervisor.details(id).clonedFrom, { id: source.id, linked: true });
  await t.rejects(w.driver.clone(source, { name: 'web-copy', owner: owner('x'), linked: false }), { code: 'Conflict' });
});

t.test('linked clones need the linkedClones capability', async (t) => {
  const w = world({ capabilities: { linkedClones: false } });
  const source = await created(w);
  await t.rejects(w.driver.clone(source, { name: 'copy', owner: owner('copy'), linked: true }), { code: 'Unsupported' });
});

t.test('inventory sums allocations per host and disk usage per datastore', async (t) => {
  const w = world({ hosts: [{ name: 'h1', cpus: 16, memoryBytes: 64 * GiB }] });
  await created(w, { name: 'a', owner: owner('a'), cpus: 2, memoryBytes: 4 * GiB, placementRecord: { labels: { app: 'web' }, order: 42 } });
  await created(w, {
    name: 'b',
    owner: owner('b'),
    cpus: 4,
    memoryBytes: 8 * GiB,
    disks: [{ name: 'root', sizeBytes: 20 * GiB, root: true }, { name: 'data', sizeBytes: 100 * GiB, root: false }],
    storage: { provisioning: 'thin', datastore: 'sim-ds-2' },
  });
  const inventory = await w.driver.inventory();
  t.same(inventory.hosts, [
    {
      name: 'h1',
      cpus: 16,
      memoryBytes: 64 * GiB,
      cpusAllocated: 6,
      memoryAllocatedBytes: 12 * GiB,
      vms: 2,
      placed: [
        { name: 'a', owner: 'uid-a', labels: { app: 'web' }, order: 42, cpus: 2, memoryBytes: 4 * GiB },
        { name: 'b', owner: 'uid-b', labels: {}, cpus: 4, memoryBytes: 8 * GiB },
      ],
    },
  ]);
  t.same(inventory.datastores, [
    { name: 'sim-ds-1', capacityBytes: 4096 * GiB, usedBytes: 20 * GiB },
    { name: 'sim-ds-2', capacityBytes: 4096 * GiB, usedBytes: 120 * GiB },
  ]);
  t.ok(inventory.networks.includes('vmbr0'));
});

t.test('without placementPolicy: no VM list in the inventory, and a placement record is refused', async (t) => {
  const w = world({ capabilities: { placementPolicy: false } });
  await created(w, { name: 'a', owner: owner('a') });
  t.equal((await w.driver.inventory()).hosts[0]?.placed, undefined);
  await t.rejects(w.driver.create(spec({ name: 'b', owner: owner('b'), placementRecord: { labels: {}, order: 1 } })), { code: 'Unsupported' });
});

t.test('probe reports the version', async (t) => {
  const { driver } = world({ version: 'sim 9' });
  t.same(await driver.probe(), { version: 'sim 9' });
  t.equal(driver.type, 'simulator');
});

t.test('user-data never appears in anything the driver returns', async (t) => {
  const secret = '#cloud-config\npassword: hunter2-very-secret\n';
  const w = world();
  w.hypervisor.injectFault('create', { kind: 'taskFailure' });
  const failed = await w.driver.create(spec({ name: 'failing', owner: owner('failing'), userData: secret }));
  await t.rejects(w.driver.create(spec({ name: 'failing', owner: owner('dup'), userData: secret })), { code: 'Conflict' });
  const ref = await running(w, { userData: secret });
  t.ok(w.hypervisor.details(ref.id).hasUserData, 'the hypervisor keeps it');
  const seen = JSON.stringify([
    await w.driver.describe(ref.id),
    await w.driver.findByIdentity(ref.owner.uid),
    await w.driver.taskStatus(failed.task ?? ''),
    w.hypervisor.listVMs(),
    w.hypervisor.details(ref.id),
    await w.driver.inventory(),
  ]);
  t.notMatch(seen, /hunter2/);
});

async function imageServer(t: { teardown: (fn: () => void) => void }, body: Buffer): Promise<{ url: string; requests: () => number }> {
  let requests = 0;
  const server: Server = createServer((request, response) => {
    requests += 1;
    if (request.url?.startsWith('/missing')) {
      response.writeHead(404).end();
      return;
    }
    if (request.url?.startsWith('/chunked')) {
      // No content-length: the size limit must hold while streaming.
      response.writeHead(200);
      response.write(body.subarray(0, body.length / 2));
      response.end(body.subarray(body.length / 2));
      return;
    }
    response.writeHead(200, { 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, requests: () => requests };
}

const IMAGE = Buffer.from('QFI\xfb pretend this is a qcow2 image '.repeat(1000));
const IMAGE_SHA256 = `sha256:${createHash('sha256').update(IMAGE).digest('hex')}`;

t.test('a URL image is downloaded, verified, and downloaded only once', async (t) => {
  const server = await imageServer(t, IMAGE);
  const w = world();
  const image = { kind: 'url' as const, url: `${server.url}/jammy.qcow2`, checksum: IMAGE_SHA256, fullClone: true };
  const first = await w.driver.create(spec({ name: 'a', owner: owner('a'), image, disks: [] }));
  w.clock.advance(D.create);
  t.match(await w.driver.taskStatus(first.task ?? ''), { state: 'running', progress: 99 }, 'not done before the download');
  await w.hypervisor.settled();
  t.equal((await w.driver.taskStatus(first.task ?? '')).state, 'succeeded');
  t.same((await w.driver.describe(first.id)).disks, [{ name: 'root', sizeBytes: IMAGE.length, datastore: 'sim-ds-1', provisioning: 'thin' }]);

  const second = await w.driver.create(spec({ name: 'b', owner: owner('b'), image, disks: [] }));
  await w.hypervisor.settled();
  t.equal((await w.driver.taskStatus(second.task ?? '')).state, 'running', 'not done before the create duration');
  w.clock.advance(D.create);
  t.equal((await w.driver.taskStatus(second.task ?? '')).state, 'succeeded');
  t.equal(server.requests(), 1);
  t.equal(w.hypervisor.imageDownloads, 1);
});

t.test('a URL image with the wrong checksum fails the task and removes the VM', async (t) => {
  const server = await imageServer(t, IMAGE);
  const w = world();
  const checksum = `sha256:${'0'.repeat(64)}`;
  const { id, task } = await w.driver.create(spec({ image: { kind: 'url', url: `${server.url}/jammy.qcow2`, checksum, fullClone: true }, disks: [] }));
  await w.hypervisor.settled();
  const status = await w.driver.taskStatus(task ?? '');
  t.match(status, { state: 'failed', errorCode: 'InvalidSpec', error: /checksum mismatch/ });
  await t.rejects(w.driver.describe(id), { code: 'NotFound' });
});

t.test('a failed download names the URL without credentials or query', async (t) => {
  const server = await imageServer(t, IMAGE);
  const w = world();
  const url = server.url.replace('http://', 'http://admin:s3cret@') + '/missing.qcow2?token=abc123';
  const { task } = await w.driver.create(spec({ image: { kind: 'url', url, fullClone: true }, disks: [] }));
  await w.hypervisor.settled();
  const status = await w.driver.taskStatus(task ?? '');
  t.match(status, { state: 'failed', error: `download of ${server.url}/missing.qcow2 failed: HTTP 404` });
  t.notMatch(JSON.stringify(status), /s3cret|abc123|admin/);
});

t.test('an image larger than the limit is refused, whether or not its size is announced', async (t) => {
  const server = await imageServer(t, IMAGE);
  const w = world({ maxImageBytes: 1024 });
  for (const path of ['/big.qcow2', '/chunked/big.qcow2']) {
    const name = path.startsWith('/chunked') ? 'chunked' : 'announced';
    const { task } = await w.driver.create(spec({ name, owner: owner(name), image: { kind: 'url', url: server.url + path, fullClone: true }, disks: [] }));
    await w.hypervisor.settled();
    t.match(await w.driver.taskStatus(task ?? ''), { state: 'failed', errorCode: 'InvalidSpec', error: /larger than 1Ki/ }, name);
  }
  t.same(w.hypervisor.listVMs(), []);
});

t.test('a failed download is not cached: the next create downloads again', async (t) => {
  const server = await imageServer(t, IMAGE);
  const w = world();
  const image = { kind: 'url' as const, url: `${server.url}/missing.qcow2`, fullClone: true };
  await w.driver.create(spec({ image, disks: [] }));
  await w.hypervisor.settled();
  await w.driver.create(spec({ image, disks: [] }));
  await w.hypervisor.settled();
  t.equal(server.requests(), 2);
});

t.test('an unreachable image server fails the task as Unreachable', async (t) => {
  const server = await imageServer(t, IMAGE);
  const w = world();
  const closed = server.url.replace(/:\d+$/, ':9');
  const { task } = await w.driver.create(spec({ image: { kind: 'url', url: `${closed}/jammy.qcow2`, fullClone: true }, disks: [] }));
  await w.hypervisor.settled();
  t.match(await w.driver.taskStatus(task ?? ''), { state: 'failed', errorCode: 'Unreachable', error: /^download of http:\/\/127\.0\.0\.1:9\/jammy\.qcow2 failed/ });
});

t.test('a thousand VMs are described and found by identity through indexes', async (t) => {
  const w = world({ hosts: [{ name: 'big', cpus: 4096, memoryBytes: 4096 * GiB }], durations: { create: 0 } });
  for (let i = 0; i < 1000; i += 1) {
    await w.driver.create(spec({ name: `vm-${i}`, owner: owner(`vm-${i}`), memoryBytes: GiB }));
  }
  t.equal(w.hypervisor.listVMs().length, 1000);
  t.match(await w.driver.findByIdentity('uid-vm-999'), { name: 'vm-999', lock: undefined });
  t.match(await w.driver.describe('1099'), { name: 'vm-999' });
});
