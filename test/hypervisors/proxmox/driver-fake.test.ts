// The Proxmox driver against the fake PVE (test/fakes/proxmox), which checks every request
// against the official schema: one whole VM life, then the shared Driver conformance suite.

import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Driver, Identity, VMRef } from '../../../src/contracts/driver.js';
import { GiB } from '../../../src/contracts/quantity.js';
import { ProxmoxDriver } from '../../../src/hypervisors/proxmox/driver.js';
import { proxmoxConfigFromEnv } from '../../../src/hypervisors/proxmox/config.js';
import { FakePve } from '../../fakes/proxmox/index.js';
import { basicSpec, driverConformance } from '../../conformance/driver-suite.js';
import { imageServer, qcow2Header } from './image-server.js';

const FAST = { taskDurationMs: 40, bootMs: 80 };
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq0b3BlcmF0b3Ita2V5LWZvci10ZXN0aW5nLW9ubHk operator@k8s';

const specFor = basicSpec;

async function waitUntil(done: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await done()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`${what}: not reached in ${timeoutMs} ms`);
}

async function taskDone(driver: Driver, task: string | undefined, what: string): Promise<void> {
  if (task === undefined) return;
  await waitUntil(async () => {
    const status = await driver.taskStatus(task);
    if (status.state === 'failed') throw new Error(`${what}: task failed: ${status.error ?? ''}`);
    return status.state === 'succeeded';
  }, what);
}

async function start(env: Record<string, string> = {}) {
  const fake = await FakePve.start(FAST);
  const driver = new ProxmoxDriver(proxmoxConfigFromEnv({ PVE_ENDPOINT: fake.url, PVE_TOKEN_ID: 'virtrigaud@pve!vrtg', PVE_TOKEN_SECRET: 'secret-token', ...env }));
  return { fake, driver, close: async () => (await driver.close(), await fake.close()) };
}

t.test('a VM lives its whole life on the fake PVE: create, start, addresses, reconfigure, snapshot, delete', async (t) => {
  const { fake, driver, close } = await start();
  t.teardown(close);
  const owner: Identity = { uid: '8d3f2a10-1111-4000-8000-00000000c0de', namespace: 'apps', name: 'web' };
  const spec = specFor('web', owner, {
    disks: [{ name: 'root', sizeBytes: 12 * GiB, root: true }, { name: 'data', sizeBytes: 2 * GiB, root: false }],
    nics: [{ name: 'lan', staticIP: { address: '192.168.1.100/24', gateway: '192.168.1.1', dns: ['8.8.8.8'] } }, { name: 'dmz', vlan: 100 }],
    userData: ['#cloud-config', 'hostname: web', 'users:', '  - name: ubuntu', '    ssh_authorized_keys:', `      - ${KEY}`].join('\n'),
  });

  const first = await driver.create(spec);
  t.ok(first.task, 'the clone runs as a task');
  t.equal((await driver.findByIdentity(owner.uid))?.id, first.id, 'findable while the clone runs');
  await taskDone(driver, first.task, 'clone');
  t.equal((await driver.describe(first.id)).incomplete, true, 'cloned, not yet configured');
  const second = await driver.create(spec);
  t.equal(second.id, first.id, 'create continues the same VM');
  await taskDone(driver, second.task, 'configure');
  let vm = await driver.describe(first.id);
  t.notOk(vm.incomplete);
  t.same(vm.owner, owner);
  t.equal(vm.name, 'web');
  t.equal(vm.cpus, 2);
  t.equal(vm.memoryBytes, 2 * GiB);
  t.same(vm.disks.map((disk) => disk.name), ['root', 'data']);
  t.same(vm.nics.map((nic) => [nic.name, nic.network, nic.vlan]), [['lan', 'vmbr0', undefined], ['dmz', 'vmbr1', 100]]);
  const config = fake.vm(Number(first.id))?.config ?? {};
  t.equal(config['ciuser'], 'ubuntu');
  t.equal(decodeURIComponent(String(config['sshkeys'])), KEY, 'PVE stored the keys it was sent');
  t.equal(config['ipconfig0'], 'ip=192.168.1.100/24,gw=192.168.1.1');

  const ref: VMRef = { id: first.id, owner };
  const grow = await driver.resizeDisk(ref, 'root', 12 * GiB);
  await taskDone(driver, grow.task, 'grow root');
  t.equal((await driver.describe(first.id)).disks[0]?.sizeBytes, 12 * GiB);

  const on = await driver.power(ref, 'on');
  await taskDone(driver, on.task, 'start');
  await waitUntil(async () => (await driver.describe(first.id)).ips.length > 0, 'guest addresses');
  vm = await driver.describe(first.id);
  t.equal(vm.powerState, 'On');
  t.notOk(vm.ips.some((ip) => ip.startsWith('127.') || ip === '::1' || ip.startsWith('fe80')), vm.ips.join(', '));

  const off = await driver.power(ref, 'off');
  await taskDone(driver, off.task, 'stop');
  const changed = await driver.reconfigure(ref, { cpus: 4, memoryBytes: 4 * GiB });
  await taskDone(driver, changed.task, 'reconfigure');
  vm = await driver.describe(first.id);
  t.equal(vm.cpus, 4);
  t.equal(vm.memoryBytes, 4 * GiB);

  const snapshot = await driver.snapshotCreate(ref, { name: 'Before Upgrade', memory: false, quiesce: false });
  await taskDone(driver, snapshot.task, 'snapshot');
  t.same((await driver.snapshotList(ref)).map((entry) => entry.id), ['before-upgrade']);
  const removed = await driver.snapshotDelete(ref, snapshot.id);
  await taskDone(driver, removed.task, 'snapshot delete');

  const gone = await driver.delete(ref);
  await taskDone(driver, gone.task, 'destroy');
  await t.rejects(driver.describe(first.id), { code: 'NotFound' });
  t.equal(await driver.findByIdentity(owner.uid), undefined);
  t.equal(fake.vms().filter((entry) => entry.vmid === Number(first.id)).length, 0);
});

t.test('UEFI with secure boot, a TPM, hot-plug and nested virtualization pass the schema and show as features', async (t) => {
  const { driver, close } = await start({ PVE_DEFAULT_STORAGE: 'local-lvm' });
  t.teardown(close);
  const owner: Identity = { uid: '8d3f2a10-5555-4000-8000-00000000c0de', namespace: 'apps', name: 'secure' };
  const features = { tpm: true, secureBoot: true, nestedVirtualization: true, cpuHotAdd: true, memoryHotAdd: true };
  const spec = specFor('secure', owner, { firmware: 'uefi', machine: 'q35', features, nics: [{ name: 'lan', model: 'e1000', firewall: true, rateLimitMBps: 50 }] });
  let vm = await driver.describe((await driver.create(spec)).id);
  for (let step = 0; (vm.lock !== undefined || vm.incomplete) && step < 100; step++) {
    const next = await driver.create(spec);
    await taskDone(driver, next.task, 'create');
    vm = await driver.describe(next.id);
  }
  t.equal(vm.firmware, 'uefi');
  t.equal(vm.machine, 'q35');
  t.same(vm.features, features);
  t.equal(vm.cpus, 2);
  t.match(vm.nics, [{ name: 'lan', model: 'e1000', firewall: true, rateLimitMBps: 50 }]);
});

t.test('a VMID taken by someone else between nextid and clone gives the next one', async (t) => {
  const { fake, driver, close } = await start();
  t.teardown(close);
  const owner: Identity = { uid: '8d3f2a10-2222-4000-8000-00000000c0de', namespace: 'apps', name: 'race' };
  const next = fake.vms().reduce((low, vm) => (vm.vmid === low ? low + 1 : low), 100);
  fake.takeNextId(next);
  const created = await driver.create(specFor('race', owner));
  t.not(created.id, String(next));
});

t.test('two concurrent creates make two distinct VMs', async (t) => {
  const { driver, close } = await start();
  t.teardown(close);
  const a: Identity = { uid: '8d3f2a10-3333-4000-8000-00000000000a', namespace: 'apps', name: 'a' };
  const b: Identity = { uid: '8d3f2a10-3333-4000-8000-00000000000b', namespace: 'apps', name: 'b' };
  const [one, two] = await Promise.all([driver.create(specFor('a', a)), driver.create(specFor('b', b))]);
  t.not(one.id, two.id);
});

t.test('ticket authentication works against the fake', async (t) => {
  const fake = await FakePve.start(FAST);
  const driver = new ProxmoxDriver(proxmoxConfigFromEnv({ PVE_ENDPOINT: fake.url, PVE_USERNAME: 'root@pam', PVE_PASSWORD: 'root-password' }));
  t.teardown(async () => (await driver.close(), await fake.close()));
  t.ok((await driver.probe()).version);
  const owner: Identity = { uid: '8d3f2a10-4444-4000-8000-00000000c0de', namespace: 'apps', name: 'ticket' };
  const created = await driver.create(specFor('ticket', owner));
  t.ok(created.task, 'a write with the CSRF token');
  fake.expireTickets();
  t.equal((await driver.describe(created.id)).id, created.id, 'logged in again after the ticket expired');
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

// The image-import case has the fake PVE download a qcow2 image from here (its header is all
// PVE reads); the iso-install case boots an ISO the fake's `local` storage holds.
const images = await imageServer(t, { '/conformance/tiny.qcow2': qcow2Header(GiB) });

driverConformance(t, 'proxmox', async () => {
  const migrationDir = await mkdtemp(join(tmpdir(), 'virtrigaud-pve-migrations-'));
  const port = await freePort();
  const { fake, driver, close } = await start({
    MIGRATION_DIR: migrationDir,
    PVE_MIGRATION_LISTEN: `127.0.0.1:${port}`,
    PVE_MIGRATION_URL: `http://127.0.0.1:${port}`,
  });
  fake.addVolume('local', 'iso/installer.iso', 64 * 1024 * 1024);
  return {
    driver,
    spec: (name, owner) => specFor(name, owner),
    imageURL: { url: `${images.url}/conformance/tiny.qcow2` },
    iso: { ref: 'local:iso/installer.iso' },
    waitUntil,
    addForeignVM: async (name) => String(fake.addForeignVm({ name, running: true })),
    migrationDir,
    close: async () => {
      await close();
      await rm(migrationDir, { recursive: true, force: true });
    },
  };
});
