// Disk export and import of the vSphere driver against vcsim (govmomi's simulator, 0.24.2, built
// by test/vsphere/build-vcsim.sh), through test/helpers/vcsim-nfc.ts.
//
// What vcsim 0.24.2 does not serve, and what stands in for it:
// * ExportVm: not implemented (MethodNotFound, "VirtualMachine:vm-57 does not implement:
//   ExportVm"; govc export.ovf fails the same way). The proxy plays vSphere's export side: the
//   lease (initializing, then ready with one device URL per disk keyed
//   `/<vm>/<controller type><bus>:<unit>`, plus the NVRAM), the GET of a disk (a streamOptimized
//   VMDK made by qemu-img from deterministic data, chunked, without a length), and
//   HttpNfcLeaseProgress/Complete/Abort. Everything the driver does before and after (owner and
//   power checks, the disk by spec name, the conversion, the checksum) runs against vcsim's VMs.
// * Disk content on import: ImportVApp is real (it makes the VM and the lease, with a device URL
//   `https://*/nfc/<lease>/<file>.vmdk` even when vcsim serves plain HTTP), and the upload is
//   accepted (200) and thrown away (ioutil.Discard): what vSphere would store is read from the
//   proxy, which records every upload on its way to vcsim.
// * Lease life: vcsim's leases never time out and never end in error; HttpNfcLeaseAbort does not
//   remove the VM an import made (vSphere does), so the driver's own destroy is what the tests see.
//   Its HttpNfcLeaseProgress is accepted and not checked. Lease errors and cut transfers come from
//   the proxy.
// * Tasks: vcsim finishes Rename_Task and Destroy_Task within the call.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import type { Driver, Identity, TaskStatus } from '../../../src/contracts/driver.js';
import { MiB } from '../../../src/contracts/quantity.js';
import { sha256Of } from '../../../src/hypervisors/common/disk-files.js';
import { INLINE_VERIFY_BYTES } from '../../../src/hypervisors/vsphere/import.js';
import { importNames } from '../../../src/hypervisors/vsphere/imported.js';
import { vsphereDriverFromEnv } from '../../../src/hypervisors/vsphere/index.js';
import { isStreamOptimized } from '../../../src/hypervisors/vsphere/vmdk.js';
import { basicSpec, createFully } from '../../conformance/driver-suite.js';
import { startNfcProxy, type NfcProxyOptions } from '../../helpers/vcsim-nfc.js';
import { prepareTemplate, requireVcsim, startVcsim, type Vcsim } from '../../helpers/vcsim.js';

t.setTimeout(240_000);

const run = promisify(execFile);
const owner = (name: string): Identity => ({ uid: `d15c0000-0000-4000-8000-${name.padEnd(12, '0').slice(0, 12)}`, namespace: 'transfer', name });
const DISK_BYTES = 8 * MiB;

async function setup(t: Test, options: NfcProxyOptions = {}) {
  const vcsim = await startVcsim(t);
  await prepareTemplate(vcsim);
  const proxy = await startNfcProxy(t, vcsim, options);
  const dir = await mkdtemp(join(tmpdir(), 'vrtg-vsphere-migrations-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const env = { ...proxy.env, MIGRATION_DIR: dir };
  const driver = vsphereDriverFromEnv(env, { leaseTiming: { pollMs: 20, keepAliveMs: 50 } });
  t.teardown(() => driver.close());
  const target = {
    driver,
    spec: (name: string, who: Identity) => basicSpec(name, who, { nics: [{ name: 'lan', network: 'VM Network' }] }),
    async waitUntil(done: () => Promise<boolean>, what: string) {
      for (let round = 0; round < 100; round++) if (await done()) return;
      throw new Error(`${what} not reached`);
    },
    addForeignVM: async () => '',
    close: async () => {},
  };
  /** A VM of `who` with an 8 MiB root disk, off. */
  const createVM = (name: string, who: Identity) =>
    createFully(target, { ...target.spec(name, who), disks: [{ name: 'root', sizeBytes: DISK_BYTES, root: true }] });
  return { vcsim, proxy, dir, env, driver, target, createVM };
}

/** The task's status once it is no longer running. */
async function settled(driver: Driver, task: string | undefined): Promise<TaskStatus> {
  if (task === undefined) return { state: 'succeeded' };
  for (let round = 0; round < 1500; round++) {
    const status = await driver.taskStatus(task);
    if (status.state !== 'running' && status.state !== 'queued') return status;
    await new Promise((done) => setTimeout(done, 20));
  }
  throw new Error(`task ${task} still runs`);
}

/** A disk file read back as raw bytes, through qemu-img. */
async function rawOf(path: string, format: string): Promise<Buffer> {
  const raw = `${path}.check.raw`;
  await run('qemu-img', ['convert', '-q', '-f', format, '-O', 'raw', path, raw]);
  try {
    return await readFile(raw);
  } finally {
    await rm(raw, { force: true });
  }
}

/** The VMs vcsim holds under this name, read with govc (outside the driver). */
async function vmsNamed(vcsim: Vcsim, name: string): Promise<string[]> {
  const out = await vcsim.govc('find', '/', '-type', 'm', '-name', name);
  return out.split('\n').filter((line) => line !== '');
}

async function isTemplate(vcsim: Vcsim, path: string): Promise<boolean> {
  return (await vcsim.govc('object.collect', '-s', path, 'config.template')).trim() === 'true';
}

if (requireVcsim(t)) {
  t.test("a powered-off VM's disk is exported to qcow2, raw and vmdk, each with its checksum, through a lease completed at the end", async (t) => {
    const { proxy, dir, driver, createVM } = await setup(t);
    const me = owner('export');
    const vm = await createVM('exported', me);
    const expected = await proxy.diskRaw(vm.id, 0).catch(() => undefined);
    t.equal(expected, undefined, 'no export served before the first');
    for (const format of ['qcow2', 'raw', 'vmdk'] as const) {
      const file = { path: `vol/m1/root.${format}`, format };
      const started = await driver.exportDisk({ id: vm.id, owner: me }, { disk: 'root', file });
      t.match(started.task, /^vr-transfer:/, `${format}: answered with a task at once`);
      t.same(await settled(driver, started.task), { state: 'succeeded', progress: 100 }, `${format}: the task succeeds`);
      const path = join(dir, file.path);
      t.equal((await readFile(`${path}.sha256`, 'utf8')).trim(), await sha256Of(path), `${format}: the checksum beside the file is the file's`);
      t.ok((await rawOf(path, format)).equals(await proxy.diskRaw(vm.id, 0)), `${format}: the file holds the disk's content`);
      if (format === 'vmdk') t.ok(await isStreamOptimized(path), 'a VMDK is kept as the streamOptimized one vSphere served');
    }
    t.same(
      proxy.leases.map((lease) => [lease.vm, lease.completed, lease.aborted]),
      [
        [vm.id, true, false],
        [vm.id, true, false],
        [vm.id, true, false],
      ],
      'one lease per export, each completed',
    );
    t.same((await readdir(join(dir, 'vol/m1'))).sort(), ['root.qcow2', 'root.qcow2.sha256', 'root.raw', 'root.raw.sha256', 'root.vmdk', 'root.vmdk.sha256'], 'no partial file is left');
  });

  t.test('a running export renews its lease with its progress, and a repeated request answers its task', async (t) => {
    const { proxy, driver, createVM } = await setup(t, { dataBytes: 4 * MiB, chunkDelayMs: 25 });
    const me = owner('long');
    const vm = await createVM('long-export', me);
    const ref = { id: vm.id, owner: me };
    const request = { disk: 'root', file: { path: 'vol/m2/root.qcow2', format: 'qcow2' as const } };
    const started = await driver.exportDisk(ref, request);
    const again = await driver.exportDisk(ref, request);
    t.equal(again.task, started.task, 'the same export: the running task');
    await t.rejects(driver.exportDisk(ref, { ...request, file: { path: 'vol/m2/other.raw', format: 'raw' } }), { code: 'Busy' }, 'another export of the VM waits');
    let running: TaskStatus | undefined;
    for (let round = 0; round < 200 && running?.progress === undefined; round++) {
      const status = await driver.taskStatus(started.task ?? '');
      if (status.state === 'running' && (status.progress ?? 0) > 0) running = status;
      await new Promise((done) => setTimeout(done, 20));
    }
    t.match(running, { state: 'running', progress: Number }, 'running, with progress');
    t.equal((await settled(driver, started.task)).state, 'succeeded');
    const [lease] = proxy.leases;
    t.ok((lease?.progress.length ?? 0) >= 3, `the lease was renewed while the disk streamed (${lease?.progress.length ?? 0} times)`);
    t.same(lease?.progress, [...(lease?.progress ?? [])].sort((a, b) => a - b), 'with a progress that never goes back');
    t.equal(proxy.calls('ExportVm'), 1, 'one ExportVm for the repeated request');
  });

  t.test("an export is refused for a running VM (Busy), another owner's VM (Conflict) and a disk the VM lacks (InvalidSpec)", async (t) => {
    const { proxy, driver, createVM } = await setup(t);
    const me = owner('refused');
    const vm = await createVM('refused', me);
    const ref = { id: vm.id, owner: me };
    const file = { path: 'vol/m3/root.raw', format: 'raw' as const };
    await t.rejects(driver.exportDisk({ id: vm.id, owner: owner('intruder') }, { disk: 'root', file }), { code: 'Conflict' });
    await t.rejects(driver.exportDisk(ref, { disk: 'data', file }), { code: 'InvalidSpec' });
    await t.rejects(driver.exportDisk(ref, { disk: 'root', file: { path: '../outside.raw', format: 'raw' } }), { code: 'InvalidSpec' });
    const on = await driver.power(ref, 'on');
    await settled(driver, on.task);
    await t.rejects(driver.exportDisk(ref, { disk: 'root', file }), { code: 'Busy' });
    t.equal(proxy.calls('ExportVm'), 0, 'no lease was asked for');
  });

  t.test('a download cut mid-way fails the task, aborts the lease and leaves neither file nor checksum', async (t) => {
    const { proxy, dir, driver, createVM } = await setup(t);
    const me = owner('cut');
    const vm = await createVM('cut-export', me);
    const file = { path: 'vol/m4/root.qcow2', format: 'qcow2' as const };
    const path = join(dir, file.path);
    const first = await driver.exportDisk({ id: vm.id, owner: me }, { disk: 'root', file });
    t.equal((await settled(driver, first.task)).state, 'succeeded');
    proxy.failNextDownload(256 * 1024);
    const started = await driver.exportDisk({ id: vm.id, owner: me }, { disk: 'root', file });
    t.match(await settled(driver, started.task), { state: 'failed', error: String });
    t.match(proxy.leases[1], { completed: false, aborted: true, abortReason: /export of disk of .* failed/ }, 'the lease is aborted, naming why');
    t.same(await readdir(join(dir, 'vol/m4')), [], 'the earlier file and checksum are gone too: nothing an import could take for whole');
  });

  t.test("an export lease that ends in error fails the task with vSphere's reason", async (t) => {
    const { proxy, dir, driver, createVM } = await setup(t);
    const me = owner('leaseerr');
    const vm = await createVM('lease-error', me);
    proxy.failNextLease('the disk is locked by another process');
    const started = await driver.exportDisk({ id: vm.id, owner: me }, { disk: 'root', file: { path: 'vol/m5/root.raw', format: 'raw' } });
    t.match(await settled(driver, started.task), { state: 'failed', error: /the disk is locked by another process/, errorCode: 'HypervisorError' });
    t.same(await readdir(join(dir, 'vol/m5')).catch(() => []), [], 'nothing written');
  });

  t.test('an exported disk is imported as a template a VM is made from; deleting the image leaves that VM', async (t) => {
    const { vcsim, proxy, dir, driver, target: harness, createVM } = await setup(t);
    const source = owner('source');
    const vm = await createVM('source', source);
    const file = { path: 'vol/m6/root.qcow2', format: 'qcow2' as const };
    const exported = await driver.exportDisk({ id: vm.id, owner: source }, { disk: 'root', file });
    t.equal((await settled(driver, exported.task)).state, 'succeeded');

    const target = owner('target');
    const imported = await driver.importDisk(target, { name: 'root', file });
    const names = importNames(target.uid, 'root');
    t.same(imported.image, { kind: 'template', ref: names.final, fullClone: true });
    t.equal(imported.sizeBytes, DISK_BYTES, 'the virtual size of the file');
    t.same(await settled(driver, imported.task), { state: 'succeeded', progress: 100 });
    const [template] = await vmsNamed(vcsim, names.final);
    t.ok(template !== undefined && (await isTemplate(vcsim, template)), 'a template under the name the image names');
    t.same(await vmsNamed(vcsim, names.importing), [], 'nothing left under the importing name');

    const upload = proxy.uploads.at(-1);
    t.match(upload, { method: 'POST', contentType: 'application/x-vnd.vmware-streamVmdk', cut: false }, 'the disk is POSTed as a streamOptimized VMDK');
    t.equal(upload?.session, true, 'with the session cookie, to the endpoint the `*` URL means');
    t.equal(upload?.contentLength, upload?.bytes, 'with its length up front');
    t.ok(await isStreamOptimized(upload?.file ?? ''), 'what vSphere received is a streamOptimized VMDK');
    t.ok((await rawOf(upload?.file ?? '', 'vmdk')).equals(await proxy.diskRaw(vm.id, 0)), "with the exported disk's content");
    t.same(await readdir(join(dir, 'vol/m6')), ['root.qcow2', 'root.qcow2.sha256'], 'the converted copy is removed');

    const copy = await createFully(harness, { ...harness.spec('from-image', target), image: imported.image });
    t.match(copy.disks, [{ name: 'root', sizeBytes: DISK_BYTES }], "a VM made from the image has the disk's size");
    t.same(await driver.deleteImportedDisk(owner('intruder'), 'root'), {}, "another owner's image of that name: there is none");
    const removed = await driver.deleteImportedDisk(target, 'root');
    t.equal((await settled(driver, removed.task)).state, 'succeeded');
    t.same(await vmsNamed(vcsim, names.final), [], 'the template is gone');
    t.same(await driver.deleteImportedDisk(target, 'root'), {}, 'deleting it again: nothing to do');
    t.match(await driver.describe(copy.id), { id: copy.id, owner: target }, 'the VM made from it stays');
  });

  t.test('an import repeated answers the same image and makes one template', async (t) => {
    const { vcsim, proxy, dir, driver } = await setup(t);
    const file = { path: 'vol/m7/disk.vmdk', format: 'vmdk' as const };
    await writeDiskFile(dir, file.path, 'vmdk');
    const me = owner('repeat');
    const first = await driver.importDisk(me, { name: 'disk', file });
    const concurrent = await driver.importDisk(me, { name: 'disk', file });
    t.equal(concurrent.task, first.task, 'while it runs: its task');
    t.equal((await settled(driver, first.task)).state, 'succeeded');
    const again = await driver.importDisk(me, { name: 'disk', file });
    t.same(again, { image: first.image, sizeBytes: first.sizeBytes }, 'once done: the same image, no task');
    t.equal((await vmsNamed(vcsim, importNames(me.uid, 'disk').final)).length, 1, 'one template');
    t.equal(proxy.calls('ImportVApp'), 1, 'imported once');
    t.equal(proxy.uploads.length, 1, 'uploaded once');
    t.equal(proxy.uploads[0]?.sha256, await sha256Of(join(dir, file.path)), 'a streamOptimized VMDK is uploaded as it is');

    await writeDiskFile(dir, 'vol/m7/other.vmdk', 'vmdk', 'other content');
    await t.rejects(driver.importDisk(me, { name: 'disk', file: { path: 'vol/m7/other.vmdk', format: 'vmdk' } }), { code: 'Conflict' }, 'the same name from another file');
  });

  t.test('a file that does not match its checksum is Conflict, one without a checksum NotFound, and nothing is imported', async (t) => {
    const { vcsim, proxy, dir, driver } = await setup(t);
    const me = owner('corrupt');
    const file = { path: 'vol/m8/root.raw', format: 'raw' as const };
    const path = await writeDiskFile(dir, file.path, 'raw');
    const bytes = await readFile(path);
    bytes[1000] = (bytes[1000] ?? 0) ^ 0xff;
    await writeFile(path, bytes);
    await t.rejects(driver.importDisk(me, { name: 'root', file }), { code: 'Conflict' });
    await rm(`${path}.sha256`);
    await t.rejects(driver.importDisk(me, { name: 'root', file }), { code: 'NotFound' });
    t.equal(proxy.calls('ImportVApp'), 0, 'no import started');
    const names = importNames(me.uid, 'root');
    t.same([...(await vmsNamed(vcsim, names.final)), ...(await vmsNamed(vcsim, names.importing))], [], 'no VM made');
  });

  t.test('a file too large to hash within the call is checked in the task: a mismatch fails it as Conflict before vSphere sees anything', async (t) => {
    const { vcsim, proxy, dir, driver } = await setup(t);
    const me = owner('large');
    const file = { path: 'vol/m11/root.raw', format: 'raw' as const };
    const path = join(dir, file.path);
    await mkdir(dirname(path), { recursive: true });
    // Sparse: larger than INLINE_VERIFY_BYTES without the disk space.
    await writeFile(path, 'first bytes');
    await truncate(path, INLINE_VERIFY_BYTES + MiB);
    await writeFile(`${path}.sha256`, `${'0'.repeat(64)}\n`);
    const started = await driver.importDisk(me, { name: 'root', file });
    t.match(started, { sizeBytes: INLINE_VERIFY_BYTES + MiB, task: /^vr-transfer:/ }, 'answered at once');
    t.match(await settled(driver, started.task), { state: 'failed', errorCode: 'Conflict', error: /does not match its checksum/ });
    t.equal(proxy.calls('ImportVApp'), 0, 'no import started');
    const names = importNames(me.uid, 'root');
    t.same([...(await vmsNamed(vcsim, names.final)), ...(await vmsNamed(vcsim, names.importing))], [], 'no VM made');
    t.same((await readdir(dirname(path))).sort(), ['root.raw', 'root.raw.sha256'], 'no converted copy');
  });

  t.test('an upload cut mid-way fails the task and leaves no template, and the next import makes it', async (t) => {
    const { vcsim, proxy, dir, driver } = await setup(t);
    const me = owner('upcut');
    const file = { path: 'vol/m9/root.raw', format: 'raw' as const };
    await writeDiskFile(dir, file.path, 'raw');
    proxy.failNextUpload(64 * 1024);
    const failed = await driver.importDisk(me, { name: 'root', file });
    t.match(await settled(driver, failed.task), { state: 'failed', error: String });
    const names = importNames(me.uid, 'root');
    t.same([...(await vmsNamed(vcsim, names.final)), ...(await vmsNamed(vcsim, names.importing))], [], 'the VM the import made is destroyed');
    t.same((await readdir(join(dir, 'vol/m9'))).sort(), ['root.raw', 'root.raw.sha256'], 'the converted copy is removed');
    const retried = await driver.importDisk(me, { name: 'root', file });
    t.not(retried.task, failed.task, 'a new transfer');
    t.equal((await settled(driver, retried.task)).state, 'succeeded');
    t.equal((await vmsNamed(vcsim, names.final)).length, 1);
  });

  t.test('an unfinished import a stopped runtime left behind is replaced; a foreign VM under the name is Conflict', async (t) => {
    const { vcsim, dir, env, driver } = await setup(t);
    const me = owner('leftover');
    const names = importNames(me.uid, 'root');
    await vcsim.govc('vm.create', '-on=false', '-host', 'DC0_H0', '-net', 'VM Network', names.importing);
    await vcsim.govc('vm.change', '-vm', names.importing, '-e', `virtrigaud.image.owner.uid=${me.uid}`, '-e', 'virtrigaud.image.name=root');
    const file = { path: 'vol/m10/root.raw', format: 'raw' as const };
    await writeDiskFile(dir, file.path, 'raw');
    const imported = await driver.importDisk(me, { name: 'root', file });
    t.equal((await settled(driver, imported.task)).state, 'succeeded');
    t.same(await vmsNamed(vcsim, names.importing), [], 'the leftover is gone');
    t.equal((await vmsNamed(vcsim, names.final)).length, 1, 'the image is made');

    const other = owner('foreign');
    await vcsim.govc('vm.create', '-on=false', '-host', 'DC0_H0', '-net', 'VM Network', importNames(other.uid, 'root').final);
    await t.rejects(driver.importDisk(other, { name: 'root', file }), { code: 'Conflict' });
    await t.rejects(driver.deleteImportedDisk(other, 'root'), { code: 'Conflict' });
    t.equal((await vmsNamed(vcsim, importNames(other.uid, 'root').final)).length, 1, 'the foreign VM is left as it is');

    const restarted = vsphereDriverFromEnv(env);
    t.teardown(() => restarted.close());
    await t.rejects(restarted.taskStatus(imported.task ?? ''), { code: 'NotFound' }, "a restarted runtime does not know the other's transfer");
  });
}

/** A disk file of the migration directory, as an export writes it (with its checksum): 4 MiB, some data. */
async function writeDiskFile(dir: string, relative: string, format: 'raw' | 'vmdk' | 'qcow2', content = 'virtrigaud disk content'): Promise<string> {
  const path = join(dir, relative);
  const raw = `${path}.source.raw`;
  await mkdir(dirname(path), { recursive: true });
  const data = Buffer.alloc(4 * MiB);
  for (let offset = 0; offset < 2 * MiB; offset += content.length + 1) data.write(`${content}\n`, offset);
  await writeFile(raw, data);
  if (format === 'raw') await rename(raw, path);
  else {
    await run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', format, ...(format === 'vmdk' ? ['-o', 'subformat=streamOptimized'] : []), raw, path]);
    await rm(raw);
  }
  await writeFile(`${path}.sha256`, `${await sha256Of(path)}\n`);
  return path;
}
