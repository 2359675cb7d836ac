// Disk import on Proxmox VE: the driver serves the file (file-server.ts), the fake PVE downloads
// it over loopback with download-url (checked against the schema like every call), and create
// makes a VM whose root disk is `import-from` the import volume.

import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import type { DiskFile, Identity } from '../../../src/contracts/driver.js';
import { MiB } from '../../../src/contracts/quantity.js';
import { writeChecksum } from '../../../src/hypervisors/common/disk-files.js';
import { classifyFailure } from '../../../src/hypervisors/proxmox/errors.js';
import { MigrationFileServer } from '../../../src/hypervisors/proxmox/file-server.js';
import { basicSpec } from '../../conformance/driver-suite.js';
import type { FakePveOptions } from '../../fakes/proxmox/index.js';
import { createVM, fakeCluster, owner, type FakeCluster } from './fake-pve.js';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

interface Setup {
  cluster: FakeCluster;
  dir: string;
  driver: ReturnType<FakeCluster['driver']>;
}

async function setup(t: Test, env: Record<string, string> = {}, options: FakePveOptions = {}): Promise<Setup> {
  const cluster = await fakeCluster(t, options);
  const dir = await mkdtemp(join(tmpdir(), 'vr-pve-import-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const port = await freePort();
  const driver = cluster.driver({}, {
    MIGRATION_DIR: dir,
    PVE_MIGRATION_LISTEN: `127.0.0.1:${port}`,
    PVE_MIGRATION_URL: `http://127.0.0.1:${port}`,
    ...env,
  });
  return { cluster, dir, driver };
}

/** A disk file as an export leaves it: the bytes, then the SHA-256 beside them. */
async function exported(dir: string, path: string, bytes: Buffer): Promise<DiskFile> {
  const full = join(dir, path);
  await mkdir(dirname(full), { recursive: true });
  await writeFile(full, bytes);
  await writeChecksum(full, createHash('sha256').update(bytes).digest('hex'));
  return { path, format: 'raw' };
}

const me: Identity = owner('1', 'migrated');

t.test('a disk is imported by PVE downloading it, a VM is made from it, and deleting the image leaves the VM', async (t) => {
  const { cluster, dir, driver } = await setup(t);
  const bytes = randomBytes(3 * MiB);
  const file = await exported(dir, 'pvc-a/m1/root.raw', bytes);

  const imported = await driver.importDisk(me, { name: 'root', file });
  t.ok(imported.task, 'the download is a PVE task');
  t.match(imported.image, { kind: 'template', fullClone: true, ref: /^local:import\/vr-import-5e0c7d1a-[0-9a-f-]+-root-[0-9a-f]{8}-[0-9a-f]{16}\.raw$/ });
  t.equal(imported.sizeBytes, 3 * MiB);
  await cluster.finish(driver, imported.task, 'download');
  const volumes = cluster.fake.volumes('import');
  t.equal(volumes.length, 1);
  t.equal(volumes[0]?.sha256, createHash('sha256').update(bytes).digest('hex'), 'PVE holds the file\'s bytes');
  const download = cluster.calls('POST', /\/download-url$/)[0];
  t.match(download?.params, { content: 'import', 'checksum-algorithm': 'sha256', checksum: createHash('sha256').update(bytes).digest('hex') });

  const spec = basicSpec('migrated', me, { image: imported.image, disks: [{ name: 'root', sizeBytes: 3 * MiB, root: true }] });
  const id = await createVM(cluster, driver, spec);
  t.same(cluster.calls('POST', /\/clone$/), [], 'not a clone');
  t.match(String(cluster.calls('POST', /^\/nodes\/[^/]+\/qemu$/)[0]?.params['scsi0']), /^local-lvm:0,import-from=local:import\/vr-import-/);
  const vm = await driver.describe(id);
  t.same(vm.owner, me);
  t.equal(vm.name, 'migrated');
  t.equal(vm.cpus, spec.cpus);
  t.equal(vm.memoryBytes, spec.memoryBytes);
  t.match(vm.disks, [{ name: 'root', sizeBytes: 3 * MiB, datastore: 'local-lvm' }]);
  t.same(vm.nics.map((nic) => nic.name), ['lan']);
  t.notOk(vm.incomplete);

  const removed = await driver.deleteImportedDisk(me, 'root');
  await cluster.finish(driver, removed.task, 'delete the image');
  t.same(cluster.fake.volumes('import'), [], 'the import volume is gone');
  t.same(await driver.deleteImportedDisk(me, 'root'), {}, 'nothing left to delete');
  t.match(await driver.describe(id), { id, disks: [{ name: 'root', sizeBytes: 3 * MiB }] }, 'the VM keeps its own copy');
});

t.test('a repeated import downloads the file once: the running download is the answer, then the volume', async (t) => {
  const { cluster, dir, driver } = await setup(t);
  const file = await exported(dir, 'pvc-a/m2/root.raw', randomBytes(MiB));
  const first = await driver.importDisk(me, { name: 'root', file });
  const second = await driver.importDisk(me, { name: 'root', file });
  t.equal(second.task, first.task, 'the same download');
  t.same(second.image, first.image);
  await cluster.finish(driver, first.task, 'download');
  const third = await driver.importDisk(me, { name: 'root', file });
  t.same(third, { image: first.image, sizeBytes: MiB }, 'done: no task, the same image');
  t.equal(cluster.calls('POST', /\/download-url$/).length, 1, 'one download');
});

t.test('a file that does not match its checksum is Conflict, and nothing is downloaded', async (t) => {
  const { cluster, dir, driver } = await setup(t);
  const file = await exported(dir, 'pvc-a/m3/root.raw', randomBytes(MiB));
  await writeFile(join(dir, file.path), randomBytes(MiB));
  await t.rejects(driver.importDisk(me, { name: 'root', file }), { code: 'Conflict' });
  t.same(cluster.calls('POST', /\/download-url$/), []);
  t.same(cluster.fake.volumes('import'), []);
});

t.test('a file whose export has not finished (no checksum beside it) is NotFound', async (t) => {
  const { cluster, dir, driver } = await setup(t);
  await mkdir(join(dir, 'pvc-a/m4'), { recursive: true });
  await writeFile(join(dir, 'pvc-a/m4/root.raw'), randomBytes(1024));
  await t.rejects(driver.importDisk(me, { name: 'root', file: { path: 'pvc-a/m4/root.raw', format: 'raw' } }), { code: 'NotFound' });
  await t.rejects(driver.importDisk(me, { name: 'root', file: { path: '../outside.raw', format: 'raw' } }), { code: 'InvalidSpec' });
  t.same(cluster.calls('POST', /\/download-url$/), []);
});

t.test('the same name for another file is Conflict once the first is imported', async (t) => {
  const { cluster, dir, driver } = await setup(t);
  const file = await exported(dir, 'pvc-a/m5/root.raw', randomBytes(MiB));
  const first = await driver.importDisk(me, { name: 'root', file });
  await cluster.finish(driver, first.task, 'download');
  await exported(dir, 'pvc-a/m5/root.raw', randomBytes(MiB));
  await t.rejects(driver.importDisk(me, { name: 'root', file }), { code: 'Conflict', message: /imported from another file/ });
});

t.test('an imported qcow2 file gives the VM a disk of its virtual size', { skip: !(await hasQemuImg()) && 'no qemu-img' }, async (t) => {
  const { cluster, dir, driver } = await setup(t);
  const path = join(dir, 'pvc-a/m6/root.qcow2');
  await mkdir(dirname(path), { recursive: true });
  await promisify(execFile)('qemu-img', ['create', '-q', '-f', 'qcow2', path, '64M']);
  const { sha256Of } = await import('../../../src/hypervisors/common/disk-files.js');
  await writeChecksum(path, await sha256Of(path));
  const imported = await driver.importDisk(me, { name: 'root', file: { path: 'pvc-a/m6/root.qcow2', format: 'qcow2' } });
  t.equal(imported.sizeBytes, 64 * MiB);
  t.match(imported.image.kind === 'template' ? imported.image.ref : '', /\.qcow2$/);
  await cluster.finish(driver, imported.task, 'download');
  const id = await createVM(cluster, driver, basicSpec('qcow', me, { image: imported.image }));
  t.match((await driver.describe(id)).disks, [{ name: 'root', sizeBytes: 64 * MiB }]);
});

t.test('create refuses an imported disk that does not exist', async (t) => {
  const { cluster, driver } = await setup(t);
  const image = { kind: 'template' as const, ref: 'local:import/vr-import-missing-0123456789abcdef.raw', fullClone: true };
  await t.rejects(driver.create(basicSpec('ghost', me, { image })), { code: 'InvalidSpec', message: /imported disk 'local:import\/vr-import-missing-0123456789abcdef.raw' not found/ });
  t.same(cluster.calls('POST', /^\/nodes\/[^/]+\/qemu$/), [], 'no VM made');
});

t.test('a VM from an import on a local storage is made on the node holding it, and a host elsewhere is refused', async (t) => {
  const { cluster, dir, driver } = await setup(t, { PVE_NODE_SELECTOR: 'pve2' });
  const file = await exported(dir, 'pvc-a/m7/root.raw', randomBytes(MiB));
  const imported = await driver.importDisk(me, { name: 'root', file });
  await cluster.finish(driver, imported.task, 'download');
  t.equal(cluster.fake.volumes('import')[0]?.node, 'pve2', 'downloaded on the preferred node');
  const elsewhere = basicSpec('pinned', owner('2'), { image: imported.image, placement: { host: 'pve1' } });
  await t.rejects(driver.create(elsewhere), { code: 'InvalidSpec', message: /is on node 'pve2', not on host 'pve1'/ });
  const id = await createVM(cluster, driver, basicSpec('placed', owner('3'), { image: imported.image }));
  t.equal((await driver.describe(id)).host, 'pve2');
});

t.test('deleting an imported disk is Busy while PVE still downloads it', async (t) => {
  const { cluster, dir, driver } = await setup(t);
  const file = await exported(dir, 'pvc-a/m8/root.raw', randomBytes(MiB));
  const imported = await driver.importDisk(me, { name: 'root', file });
  await t.rejects(driver.deleteImportedDisk(me, 'root'), { code: 'Busy' });
  await cluster.finish(driver, imported.task, 'download');
  const removed = await driver.deleteImportedDisk(me, 'root');
  await cluster.finish(driver, removed.task, 'delete');
  t.same(cluster.fake.volumes('import'), []);
});

t.test('a download that fails shows why without the URL\'s token', async (t) => {
  const unused = await freePort();
  const { cluster, dir, driver } = await setup(t, { PVE_MIGRATION_URL: `http://127.0.0.1:${unused}` });
  const file = await exported(dir, 'pvc-a/m9/root.raw', randomBytes(1024));
  const imported = await driver.importDisk(me, { name: 'root', file });
  let status = await driver.taskStatus(imported.task ?? '');
  await cluster.until(async () => (status = await driver.taskStatus(imported.task ?? '')).state !== 'running', 'download ends');
  t.equal(status.state, 'failed');
  t.match(status.error, /download failed/);
  t.match(status.error, /\/files\/<token>\/root\.raw/);
  t.notMatch(status.error, /[0-9a-f]{64}/, 'no token');
  t.equal(status.errorCode, 'HypervisorError', 'retried');
});

t.test('a checksum mismatch in PVE\'s download is Conflict: the copy is bad, not the request', async (t) => {
  t.equal(classifyFailure(`checksum mismatch: got '${'a'.repeat(64)}' != expect '${'b'.repeat(64)}'`), 'Conflict');
});

t.test('without PVE_MIGRATION_LISTEN and PVE_MIGRATION_URL importDisk is Unsupported and says what to set', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  t.equal(driver.capabilities.diskImport, false);
  await t.rejects(driver.importDisk(me, { name: 'root', file: { path: 'a/b.raw', format: 'raw' } }), {
    code: 'Unsupported',
    message: /set PVE_MIGRATION_LISTEN and PVE_MIGRATION_URL so Proxmox can download migration files from this runtime/,
  });
  await t.rejects(driver.exportDisk({ id: '100', owner: me }, { disk: 'root', file: { path: 'a/b.raw', format: 'raw' } }), {
    code: 'Unsupported',
    message: 'Proxmox has no API to read a disk; configure PVE_SSH_* so the runtime can read it over SSH',
  });
  t.same(await driver.deleteImportedDisk(me, 'root'), {}, 'deleting needs no file server');
});

t.test('without a storage with import content importDisk is Unsupported with that reason', async (t) => {
  const GiB = 1024 * MiB;
  const { cluster, dir, driver } = await setup(t, {}, {
    storages: [
      { id: 'local-lvm', type: 'lvmthin', content: ['images', 'rootdir'], capacityBytes: 512 * GiB },
      { id: 'local', type: 'dir', content: ['iso', 'vztmpl', 'snippets'], capacityBytes: 100 * GiB },
    ],
  });
  t.equal(driver.capabilities.diskImport, true);
  const file = await exported(dir, 'pvc-a/m10/root.raw', randomBytes(1024));
  await t.rejects(driver.importDisk(me, { name: 'root', file }), { code: 'Unsupported', message: /no storage with 'import' content/ });
  const named = cluster.driver({}, { MIGRATION_DIR: dir, PVE_MIGRATION_LISTEN: '127.0.0.1:1', PVE_MIGRATION_URL: 'http://127.0.0.1:1', PVE_IMPORT_STORAGE: 'local' });
  await t.rejects(named.importDisk(me, { name: 'root', file }), { code: 'Unsupported', message: /PVE_IMPORT_STORAGE 'local' has no 'import' content/ });
});

t.test('the file server serves a granted file under its own name only, and nothing for unknown or used tokens', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'vr-pve-files-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'root.raw'), 'disk bytes');
  await writeFile(join(dir, 'secret'), 'not yours');
  let now = 1_000_000;
  const server = new MigrationFileServer({ host: '127.0.0.1', port: 0, publicUrl: 'http://unused.example', now: () => now });
  t.teardown(() => server.close());
  const grant = await server.grant(join(dir, 'root.raw'));
  const base = `http://127.0.0.1:${server.address()?.port ?? 0}`;
  const path = new URL(grant.url).pathname;
  t.match(path, /^\/files\/[0-9a-f]{64}\/root\.raw$/);
  const status = async (suffix: string, method = 'GET'): Promise<number> => (await fetch(`${base}${suffix}`, { method })).status;

  t.equal(await status(`/files/${'0'.repeat(64)}/root.raw`), 404, 'unknown token');
  t.equal(await status(`/files/${grant.token}/secret`), 404, 'another file of the directory');
  t.equal(await status(`/files/${grant.token}/..%2Fsecret`), 404, 'an encoded traversal');
  t.equal(await status(`/files/${grant.token}/../secret`), 404, 'a traversal');
  t.equal(await status(`/files/${grant.token}/root.raw`, 'PUT'), 405);
  t.equal(await status(path, 'HEAD'), 200, 'HEAD leaves the grant');
  const response = await fetch(`${base}/some/prefix${path}`);
  t.equal(response.status, 200, 'behind a path prefix');
  t.equal(await response.text(), 'disk bytes');
  t.equal(await status(path), 404, 'sent whole: the token is used up');

  const later = await server.grant(join(dir, 'root.raw'));
  now += 60 * 60 * 1000;
  t.equal(await status(new URL(later.url).pathname), 404, 'expired after an hour');
  const gone = await server.grant(join(dir, 'missing.raw'));
  t.equal(await status(new URL(gone.url).pathname), 404, 'a granted file that is gone');
});

async function hasQemuImg(): Promise<boolean> {
  try {
    await promisify(execFile)('qemu-img', ['--version']);
    return true;
  } catch {
    return false;
  }
}
