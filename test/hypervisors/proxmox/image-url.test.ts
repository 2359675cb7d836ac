// VMs from URL images on Proxmox VE (imageImport): PVE downloads the image into an import storage
// (download-url, its checksum verified by PVE), once per URL and checksum, and create makes the VM
// with its root disk `import-from` the file, grown to the spec's size.

import t from 'tap';
import type { CreateSpec, Identity } from '../../../src/contracts/driver.js';
import { GiB } from '../../../src/contracts/quantity.js';
import { requireImportVersion } from '../../../src/hypervisors/proxmox/disk-import.js';
import { urlImageFile } from '../../../src/hypervisors/proxmox/image-download.js';
import type { ProxmoxContext } from '../../../src/hypervisors/proxmox/vm.js';
import { basicSpec } from '../../conformance/driver-suite.js';
import { createVM, fakeCluster, owner, type FakeCluster } from './fake-pve.js';
import { imageServer, qcow2Header, sha256 } from './image-server.js';

const IMAGE = qcow2Header(2 * GiB);

function urlSpec(name: string, me: Identity, url: string, checksum?: string, rootBytes = 4 * GiB): CreateSpec {
  return basicSpec(name, me, {
    image: { kind: 'url', url, fullClone: true, ...(checksum === undefined ? {} : { checksum }) },
    disks: [{ name: 'root', sizeBytes: rootBytes, root: true }],
  });
}

/** The downloads PVE ran, by how they ended. */
function downloads(cluster: FakeCluster): string[] {
  return cluster.fake.tasks().filter((task) => task.type === 'download').map((task) => task.exitstatus ?? task.status);
}

t.test('a VM is made from a URL image: PVE downloads it once, checksum verified, and its root disk is imported and grown to the spec', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const server = await imageServer(t, { '/images/noble-server-cloudimg-amd64.img': IMAGE });
  const url = `${server.url}/images/noble-server-cloudimg-amd64.img`;
  const me = owner('u1', 'noble');
  const spec = urlSpec('noble', me, url, `sha256:${sha256(IMAGE)}`);

  const first = await driver.create(spec);
  t.equal(first.id, '', 'no VM while PVE downloads');
  t.match(first.task, /:download:vr-img-[0-9a-f]{16}-noble-server-cloudimg-amd64\.qcow2:/);
  t.match(cluster.calls('POST', /\/download-url$/)[0]?.params, { content: 'import', url, checksum: sha256(IMAGE), 'checksum-algorithm': 'sha256' });
  t.equal(await driver.findByIdentity(me.uid), undefined, 'nothing of the owner exists yet');
  t.equal((await driver.create(spec)).task, first.task, 'a repeated create answers the running download');

  const id = await createVM(cluster, driver, spec);
  const work = cluster.fake.requests.filter((request) => !/\/tasks\/[^/]+\/(status|log)$/.test(request.path)).length;
  t.ok(work <= 40, `the whole create, download to configuration: ${work} PVE requests besides task polls`);
  const created = cluster.calls('POST', /^\/nodes\/[^/]+\/qemu$/);
  t.equal(created.length, 1);
  t.match(String(created[0]?.params['scsi0']), /^local-lvm:0,import-from=local:import\/vr-img-[0-9a-f]{16}-noble-server-cloudimg-amd64\.qcow2$/);
  t.match(cluster.calls('PUT', /\/resize$/)[0]?.params, { disk: 'scsi0', size: '4G' }, 'grown from the image\'s 2 GiB before it is configured');
  const vm = await driver.describe(id);
  t.same(vm.owner, me);
  t.equal(vm.name, 'noble');
  t.notOk(vm.incomplete);
  t.match(vm.disks, [{ name: 'root', sizeBytes: 4 * GiB, datastore: 'local-lvm' }]);
  t.equal(cluster.calls('POST', /\/download-url$/).length, 1, 'one download');
  t.equal(server.hits.get('/images/noble-server-cloudimg-amd64.img'), 1, 'fetched once');
  t.same(cluster.fake.volumes('import').map((volume) => volume.sha256), [sha256(IMAGE)], 'PVE keeps the verified file');

  // Another VM of the same image: made at once from the file, with no download.
  const before = cluster.fake.requests.length;
  const other = owner('u2', 'noble2');
  const started = await driver.create(urlSpec('noble2', other, url, `sha256:${sha256(IMAGE)}`));
  t.not(started.id, '', 'the VM at once');
  t.match(started.task, /:qmcreate:/);
  t.equal(cluster.calls('POST', /\/download-url$/).length, 1, 'still one download');
  const calls = cluster.fake.requests.length - before;
  t.ok(calls <= 10, `first step of a create from a downloaded image: ${calls} PVE requests`);
});

t.test('two replicas creating VMs of the same URL at once download it once', async (t) => {
  const cluster = await fakeCluster(t);
  const [one, two] = [cluster.driver(), cluster.driver()];
  const server = await imageServer(t, { '/debian-12-genericcloud-amd64.qcow2': IMAGE });
  const url = `${server.url}/debian-12-genericcloud-amd64.qcow2`;
  const [a, b] = [owner('u3', 'a'), owner('u4', 'b')];
  const [first, second, third] = await Promise.all([
    one.create(urlSpec('a', a, url)),
    two.create(urlSpec('b', b, url)),
    one.create(urlSpec('c', owner('u5', 'c'), url)),
  ]);
  t.equal(second.task, first.task, 'the replicas follow one download');
  t.equal(third.task, first.task, 'and so does a second create of the same process');
  t.ok(cluster.calls('POST', /\/download-url$/).length <= 3, 'at most one start per create, each but one stopped below');
  await cluster.finish(one, first.task, 'download');
  // A replica whose download started second stops it at once (real wget would have begun).
  const ends = downloads(cluster);
  t.equal(ends.filter((end) => end === 'OK').length, 1, 'one download ran to its end');
  t.ok(ends.every((end) => end === 'OK' || end === 'interrupted by signal'), `any other was stopped: ${ends.join(', ')}`);
  await createVM(cluster, one, urlSpec('a', a, url));
  await createVM(cluster, two, urlSpec('b', b, url));
  t.equal(cluster.fake.volumes('import').length, 1);
});

t.test('a download that always fails fails the create with a clear message, leaves no VM, and each create tries once', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const server = await imageServer(t, {});
  const url = `${server.url.replace('://', '://mirror:s3cret@')}/gone/fedora.qcow2?token=abc123`;
  const me = owner('u6', 'fedora');
  const vmsBefore = cluster.fake.vms().length;
  for (let attempt = 1; attempt <= 3; attempt += 1) {
    const before = cluster.fake.requests.length;
    const started = await driver.create(urlSpec('fedora', me, url));
    const calls = cluster.fake.requests.length - before;
    t.ok(calls <= 7, `attempt ${attempt}: ${calls} PVE requests`);
    t.equal(started.id, '');
    await cluster.until(async () => (await driver.taskStatus(started.task ?? '')).state === 'failed', 'the download fails');
    const status = await driver.taskStatus(started.task ?? '');
    t.match(status, { state: 'failed', error: /download failed: .*exit code 8/ });
    t.notMatch(status.error ?? '', /s3cret|abc123/, 'no credentials or query in the message');
  }
  t.equal(cluster.calls('POST', /\/download-url$/).length, 3, 'one download per create, no retry loop');
  t.equal(cluster.fake.vms().length, vmsBefore, 'no VM made');
  t.equal(await driver.findByIdentity(me.uid), undefined);
  t.same(cluster.fake.volumes('import'), []);
});

t.test('an image whose bytes do not match its checksum is refused by PVE and leaves no file', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const server = await imageServer(t, { '/noble.img': IMAGE });
  const started = await driver.create(urlSpec('noble', owner('u7'), `${server.url}/noble.img`, `sha256:${'0'.repeat(64)}`));
  await cluster.until(async () => (await driver.taskStatus(started.task ?? '')).state === 'failed', 'the download fails');
  t.match(await driver.taskStatus(started.task ?? ''), { state: 'failed', error: /checksum mismatch/ });
  t.same(cluster.fake.volumes('import'), []);
});

t.test('URL images are named by URL and checksum, and refused before any call when PVE could not take them', async (t) => {
  const noble = urlImageFile('https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img', undefined);
  t.match(noble, { content: 'import', file: /^vr-img-[0-9a-f]{16}-noble-server-cloudimg-amd64\.qcow2$/ });
  t.equal(urlImageFile('https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img', undefined).file, noble.file, 'the same URL, the same file');
  t.not(urlImageFile('https://cloud-images.ubuntu.com/noble/current/noble-server-cloudimg-amd64.img', `sha512:${'a'.repeat(128)}`).file, noble.file, 'another checksum, another file');
  t.match(urlImageFile('https://example.com/disk.raw', `sha512:${'A'.repeat(128)}`), { file: /\.raw$/, checksum: { algorithm: 'sha512', hex: 'a'.repeat(128) } });

  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const before = cluster.fake.requests.length;
  for (const [url, checksum, message] of [
    ['ftp://example.com/a.qcow2', undefined, /http or https/],
    ['https://example.com/a.qcow2.xz', undefined, /\.qcow2, \.img \(qcow2\), \.raw or \.vmdk/],
    ['https://example.com/a.qcow2', 'md5:0123', /checksum must be/],
    ['https://example.com/a.qcow2', 'sha256:abc', /checksum must be/],
  ] as const) {
    await t.rejects(driver.create(urlSpec('bad', owner('u8'), url, checksum)), { code: 'InvalidSpec', message }, url);
  }
  t.equal(cluster.fake.requests.length, before, 'no PVE call');
});

t.test('a URL image on PVE 8.4 is made the same way (import storages take disk images since 8.4)', async (t) => {
  const cluster = await fakeCluster(t, { version: '8.4' });
  const driver = cluster.driver();
  const server = await imageServer(t, { '/noble.qcow2': IMAGE });
  const id = await createVM(cluster, driver, urlSpec('noble', owner('u9'), `${server.url}/noble.qcow2`, undefined, 2 * GiB));
  t.match((await driver.describe(id)).disks, [{ name: 'root', sizeBytes: 2 * GiB }]);
  t.same(cluster.calls('PUT', /\/resize$/), [], 'the image is as large as the spec: no resize');
});

t.test('a cluster older than PVE 8.4 is refused before any download: its import storages take no disk images', async (t) => {
  const older = { version: '8.3.5' } as ProxmoxContext;
  await t.rejects(requireImportVersion(older, 'an image from a URL'), {
    code: 'Unsupported',
    message: 'an image from a URL needs Proxmox VE 8.4 or later, whose import storages take disk images; this cluster runs 8.3.5',
  });
  await t.resolves(requireImportVersion({ version: '9.1.9' } as ProxmoxContext, 'an image from a URL'));
});
