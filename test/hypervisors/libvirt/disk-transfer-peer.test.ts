// Disk export and import against the real libvirtd over real SSH: a VM's disk (VM off) streamed
// into the local migration directory and back into the pool as an image a VM is made from. The
// peer's VMs are linked overlays of its tiny base image, so every export here flattens a chain.
// Throughput is measured by `npm run bench:migration`, not here.
import { execFile } from 'node:child_process';
import { copyFile, mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import t from 'tap';
import type { CreateSpec, DiskFormat, Identity, TaskStatus, VMRef } from '../../../src/contracts/driver.js';
import { GiB } from '../../../src/contracts/quantity.js';
import { sha256Of } from '../../../src/hypervisors/common/disk-files.js';
import { libvirtConfigFromEnv } from '../../../src/hypervisors/libvirt/index.js';
import { INLINE_VERIFY_BYTES } from '../../../src/hypervisors/libvirt/import.js';
import { importVolumeName } from '../../../src/hypervisors/libvirt/names.js';
import { SshTransport, type StreamOptions } from '../../../src/hypervisors/libvirt/ssh.js';
import { HostTasks } from '../../../src/hypervisors/libvirt/tasks.js';
import { LibvirtHost } from '../../../src/hypervisors/libvirt/virsh.js';
import { createFully, type ConformanceTarget } from '../../conformance/driver-suite.js';
import { libvirtPeer, peerSpec, taskDone, taskSettled, waitFor } from '../../helpers/libvirt-peer.js';

t.setTimeout(900_000);

const run = promisify(execFile);
const UID_PREFIX = '0d15c000-0000-4000-8000-';
const owner = (name: string): Identity => ({ uid: `${UID_PREFIX}${name.padEnd(12, '0').slice(0, 12)}`, namespace: 'disks', name });

async function localImage(path: string, format: string): Promise<{ format: string; 'virtual-size': number; 'backing-filename'?: string }> {
  const { stdout } = await run('qemu-img', ['info', '-f', format, '--output=json', path]);
  return JSON.parse(stdout) as { format: string; 'virtual-size': number; 'backing-filename'?: string };
}

async function flipByte(path: string, offset: number): Promise<void> {
  const handle = await open(path, 'r+');
  const byte = Buffer.alloc(1);
  await handle.read(byte, 0, 1, offset);
  byte[0] = (byte[0] ?? 0) ^ 0xff;
  await handle.write(byte, 0, 1, offset);
  await handle.close();
}

/** Bytes a held download lets through before it waits: enough for a whole percent of the peer's small disks. */
const HELD_AFTER = 4 * 1024 * 1024;

const peer = await libvirtPeer(t);
if (peer) {
  t.teardown(() => peer.close());
  const dir = peer.migrationDir;

  // Every streamed host command (vol-download, vol-upload), and a gate that holds a download after
  // its first few MiB, so a test sees the transfer running however fast the host is.
  const streamed: string[] = [];
  let gate: Promise<void> | undefined;
  const original = SshTransport.prototype.stream;
  SshTransport.prototype.stream = function (this: SshTransport, argv: readonly string[], options: StreamOptions = {}) {
    streamed.push(argv.includes('vol-upload') ? 'vol-upload' : 'download');
    const held = gate;
    const out = options.stdout;
    if (held === undefined || out === undefined) return original.call(this, argv, options);
    let passed = 0;
    const gated = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        const forward = () => out.write(chunk, (error) => callback(error ?? null));
        passed += chunk.length;
        if (passed <= HELD_AFTER) forward();
        else void held.then(forward);
      },
      final(callback) {
        out.end(() => callback());
      },
      destroy(error, callback) {
        out.destroy(error ?? undefined);
        callback(error);
      },
    });
    return original.call(this, argv, { ...options, stdout: gated });
  };
  t.teardown(() => {
    SshTransport.prototype.stream = original;
  });

  const driver = peer.driver();
  t.teardown(() => driver.close());
  const target: ConformanceTarget = {
    driver,
    spec: (name, who) => peerSpec(peer, name, who),
    waitUntil: (done, what) => waitFor(done, what, 180_000),
    addForeignVM: () => Promise.reject(new Error('not used here')),
    close: async () => undefined,
  };

  const remove = async (who: Identity) => {
    const vm = await driver.findByIdentity(who.uid);
    if (!vm) return;
    // An export of a killed earlier run holds the VM until its lease expires.
    await waitFor(async () => (await driver.describe(vm.id)).lock === undefined, 'the VM free', 120_000);
    await taskDone(driver, await driver.delete({ id: vm.id, owner: who }));
  };
  const vmFor = async (name: string, overrides: Partial<CreateSpec> = {}): Promise<VMRef> => {
    await remove(owner(name));
    const vm = await createFully(target, peerSpec(peer, name, owner(name), overrides));
    return { id: vm.id, owner: owner(name) };
  };
  const volumePathOf = async (volume: string) => (await peer.virsh(['vol-path', '--pool', peer.pool, '--vol', volume])).stdout.trim();
  const rootVolume = async (id: string) => {
    const xml = (await peer.virsh(['dumpxml', '--inactive', id])).stdout;
    return /<source pool='[^']+' volume='([^']+)'\/>\s*<target dev='vda'/.exec(xml)?.[1] ?? '';
  };
  const hostSha256 = async (path: string) => (await peer.exec(['sha256sum', '--', path])).stdout.split(' ')[0] ?? '';
  const ourVolumes = async () =>
    (await peer.virsh(['vol-list', '--pool', peer.pool]))
      .stdout.split('\n')
      .map((line) => line.trim().split(/\s+/)[0] ?? '')
      .filter((name) => name.startsWith(`virtrigaud-import-${UID_PREFIX}`));
  const removeImports = async () => {
    for (const volume of await ourVolumes()) await peer.virsh(['vol-delete', '--pool', peer.pool, '--vol', volume]);
    await peer.exec(['sh', '-c', 'rm -f "$1"/imports/virtrigaud-import-"$2"*', 'sh', peer.taskDirectory, UID_PREFIX]);
  };
  const uploads = () => streamed.filter((command) => command === 'vol-upload').length;
  /** Exports and waits: the file's path. */
  const exported = async (ref: VMRef, path: string, format: DiskFormat, disk = 'root'): Promise<string> => {
    await taskDone(driver, await driver.exportDisk(ref, { disk, file: { path, format } }));
    return join(dir, path);
  };

  // Leftovers of an interrupted earlier run would be found by identity or by name.
  await removeImports();
  t.teardown(removeImports);

  const source = await vmFor('dx-src');
  t.teardown(() => remove(source.owner));

  t.test('a powered-off VM\'s root disk is exported as one qcow2 file with its checksum, progress reported and the VM kept off meanwhile', async (t) => {
    let release = () => undefined as void;
    gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    t.teardown(() => {
      release();
      gate = undefined;
    });
    const started = await driver.exportDisk(source, { disk: 'root', file: { path: 'src/root.qcow2', format: 'qcow2' } });
    t.ok(started.task, 'a task');
    let running: TaskStatus = { state: 'queued' };
    await waitFor(async () => {
      running = await driver.taskStatus(started.task ?? '');
      return running.state === 'running' && (running.progress ?? 0) > 0;
    }, 'progress reported');
    t.ok((running.progress ?? 0) > 0 && (running.progress ?? 100) < 100, `running at ${running.progress ?? '?'}%`);
    t.equal((await driver.describe(source.id)).lock, 'export', 'describe shows the export');
    await t.rejects(driver.power(source, 'on'), { code: 'Busy' }, 'the VM cannot be powered on while its disk is read');
    const again = await driver.exportDisk(source, { disk: 'root', file: { path: 'src/root.qcow2', format: 'qcow2' } });
    t.equal(again.task, started.task, 'the same request again: the same task');
    await t.rejects(driver.exportDisk(source, { disk: 'root', file: { path: 'src/other.qcow2', format: 'qcow2' } }), { code: 'Busy' }, 'another export of the VM waits');
    release();
    t.equal((await taskSettled(driver, started.task)).state, 'succeeded');
    const path = join(dir, 'src/root.qcow2');
    t.equal((await readFile(`${path}.sha256`, 'utf8')).trim(), await sha256Of(path), 'the checksum beside the file is the file\'s');
    const info = await localImage(path, 'qcow2');
    t.equal(info['virtual-size'], GiB, 'the disk\'s size');
    t.equal(info['backing-filename'], undefined, 'standalone: the overlay was flattened');
    t.equal((await driver.describe(source.id)).lock, undefined, 'the VM is free again');
  });

  t.test('a root disk is exported as raw when raw is asked for', async (t) => {
    const path = await exported(source, 'src/root.raw', 'raw');
    t.equal((await readFile(`${path}.sha256`, 'utf8')).trim(), await sha256Of(path));
    t.equal((await localImage(path, 'raw'))['virtual-size'], GiB);
    const { stdout } = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'qcow2', path, join(dir, 'src/root.qcow2')]);
    t.match(stdout, /identical/, 'the same disk as the qcow2 export');
  });

  t.test('exporting a running VM is Busy', async (t) => {
    const vm = await vmFor('dx-running');
    t.teardown(() => remove(vm.owner));
    await driver.power(vm, 'on');
    await t.rejects(driver.exportDisk(vm, { disk: 'root', file: { path: 'running.qcow2', format: 'qcow2' } }), { code: 'Busy', message: /is running; export needs it off/ });
    await driver.power(vm, 'off');
  });

  t.test('exporting another owner\'s VM is Conflict', async (t) => {
    await t.rejects(driver.exportDisk({ id: source.id, owner: owner('dx-intruder') }, { disk: 'root', file: { path: 'stolen.qcow2', format: 'qcow2' } }), { code: 'Conflict' });
  });

  t.test('a file path leaving the migration directory, or naming it, is InvalidSpec and starts nothing', async (t) => {
    for (const path of ['../outside.qcow2', 'a/../../outside.qcow2', '/tmp/outside.qcow2', '.']) {
      await t.rejects(driver.exportDisk(source, { disk: 'root', file: { path, format: 'qcow2' } }), { code: 'InvalidSpec' }, path);
      await t.rejects(driver.importDisk(owner('dx-escape'), { name: 'root', file: { path, format: 'qcow2' } }), { code: 'InvalidSpec' }, path);
    }
    await t.rejects(driver.exportDisk(source, { disk: 'nope', file: { path: 'nope.qcow2', format: 'qcow2' } }), { code: 'InvalidSpec' }, 'an unknown disk');
  });

  t.test('an exported disk imported under another owner is a volume with the file\'s bytes, and a VM made from it boots', async (t) => {
    const importer = owner('dx-import');
    t.teardown(() => remove(importer));
    const file = { path: 'src/root.qcow2', format: 'qcow2' as const };
    const imported = await driver.importDisk(importer, { name: 'root', file });
    t.same(imported.image, { kind: 'template', ref: importVolumeName(importer.uid, 'root'), fullClone: true });
    t.equal(imported.sizeBytes, GiB);
    await taskDone(driver, imported);
    const volume = imported.image.kind === 'template' ? imported.image.ref : '';
    const path = await volumePathOf(volume);
    t.equal(await hostSha256(path), await sha256Of(join(dir, file.path)), 'the volume holds the file\'s bytes');
    const compared = await peer.exec(['qemu-img', 'compare', '-U', path, await volumePathOf(await rootVolume(source.id))]);
    t.match(compared.stdout, /identical/, 'the same disk as the source VM sees');

    const vm = await createFully(target, peerSpec(peer, 'dx-imported', importer, { image: imported.image }));
    const ref = { id: vm.id, owner: importer };
    await driver.power(ref, 'on');
    t.equal((await driver.describe(vm.id)).powerState, 'On');
    if (peer.guest) await waitFor(async () => (await driver.describe(vm.id)).ips.length > 0, 'the guest boots and gets an address', 180_000);
    await driver.power(ref, 'off');
  });

  t.test('importing the same file under the same owner and name again returns the image without a second upload', async (t) => {
    const importer = owner('dx-twice');
    const file = { path: 'src/root.qcow2', format: 'qcow2' as const };
    const first = await driver.importDisk(importer, { name: 'copy', file });
    await taskDone(driver, first);
    const before = uploads();
    const second = await driver.importDisk(importer, { name: 'copy', file });
    t.same(second.image, first.image);
    t.equal(second.sizeBytes, first.sizeBytes);
    t.equal(second.task, undefined, 'nothing left to do');
    t.equal(uploads(), before, 'no second upload');
  });

  t.test('raw and VMDK files are imported as qcow2 volumes of the same disk', async (t) => {
    await exported(source, 'src/root.vmdk', 'vmdk');
    t.equal((await localImage(join(dir, 'src/root.vmdk'), 'vmdk'))['virtual-size'], GiB, 'exported as VMDK');
    for (const format of ['raw', 'vmdk'] as const) {
      const importer = owner(`dx-${format}`);
      const imported = await driver.importDisk(importer, { name: 'root', file: { path: `src/root.${format}`, format } });
      await taskDone(driver, imported);
      const path = await volumePathOf(imported.image.kind === 'template' ? imported.image.ref : '');
      const info = JSON.parse((await peer.exec(['qemu-img', 'info', '-U', '--output=json', path])).stdout) as { format: string };
      t.equal(info.format, 'qcow2', `${format} became qcow2`);
      t.match((await peer.exec(['qemu-img', 'compare', '-U', path, await volumePathOf(await rootVolume(source.id))])).stdout, /identical/, `${format}: the same disk`);
    }
  });

  t.test('a file that does not match its checksum is Conflict and leaves no volume', async (t) => {
    const importer = owner('dx-corrupt');
    const good = join(dir, 'src/root.qcow2');
    const bad = join(dir, 'corrupt/root.qcow2');
    await mkdir(join(dir, 'corrupt'), { recursive: true });
    await copyFile(good, bad);
    await copyFile(`${good}.sha256`, `${bad}.sha256`);
    await flipByte(bad, 100_000);
    await t.rejects(driver.importDisk(importer, { name: 'root', file: { path: 'corrupt/root.qcow2', format: 'qcow2' } }), { code: 'Conflict' });
    t.notOk((await ourVolumes()).includes(importVolumeName(importer.uid, 'root')), 'no volume');
  });

  t.test('a file whose export has not finished is NotFound, and one that is not the format it claims is InvalidSpec', async (t) => {
    const importer = owner('dx-bad');
    await writeFile(join(dir, 'unfinished.qcow2'), 'partial');
    await t.rejects(driver.importDisk(importer, { name: 'root', file: { path: 'unfinished.qcow2', format: 'qcow2' } }), { code: 'NotFound' });
    await t.rejects(driver.importDisk(importer, { name: 'root', file: { path: 'src/root.raw', format: 'qcow2' } }), { code: 'InvalidSpec' });
  });

  t.test('an export cut short by the runtime stopping fails its task and leaves neither the file nor a checksum', async (t) => {
    let release = () => undefined as void;
    gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    t.teardown(() => {
      release();
      gate = undefined;
    });
    const stopping = peer.driver();
    const started = await stopping.exportDisk(source, { disk: 'root', file: { path: 'cut/root.qcow2', format: 'qcow2' } });
    await waitFor(async () => ((await stopping.taskStatus(started.task ?? '')).progress ?? 0) > 0, 'the export runs');
    await stopping.close();
    const status = await taskSettled(driver, started.task);
    t.match(status, { state: 'failed', error: /the provider runtime stopped during the transfer/ }, 'another driver reads the outcome from the host');
    const left = await run('find', [dir, '-path', '*cut*', '-type', 'f']);
    t.equal(left.stdout.trim(), '', 'no partial file, no checksum');
    t.equal((await driver.describe(source.id)).lock, undefined, 'the VM is free again');
  });

  t.test('a leased task whose runtime stops renewing it fails on the host and lets its lock go', async (t) => {
    const transport = new SshTransport(libvirtConfigFromEnv(peer.env).ssh, () => undefined);
    t.teardown(() => transport.close());
    const tasks = new HostTasks(new LibvirtHost(transport, 'qemu:///system'), peer.taskDirectory);
    const key = `dx-lease-${process.pid}`;
    const begun = await tasks.begin([{ key, kind: 'export' }], [['vr_lease', '2']]);
    t.ok(begun.started);
    t.equal(await tasks.lock(key), 'export', 'held while the lease is fresh');
    const status = await taskSettled(driver, begun.id);
    t.match(status, { state: 'failed', error: /stopped reporting for 2 seconds/ });
    t.equal(await tasks.lock(key), undefined, 'released');
  });

  t.test('a file too large to hash within the call is checked while it uploads: a wrong one fails the task with Conflict, no volume left', async (t) => {
    // Sparse: over INLINE_VERIFY_BYTES on disk for qemu-img, without the space or a long upload of data.
    await mkdir(join(dir, 'big'), { recursive: true });
    const path = join(dir, 'big/data.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-o', 'preallocation=metadata', path, String(INLINE_VERIFY_BYTES + 8 * 1024 * 1024)]);
    t.ok((await stat(path)).size > INLINE_VERIFY_BYTES, 'larger than what is hashed within the call');
    await writeFile(`${path}.sha256`, `${'0'.repeat(64)}\n`);
    const corrupt = owner('dx-bigbad');
    const started = await driver.importDisk(corrupt, { name: 'data', file: { path: 'big/data.qcow2', format: 'qcow2' } });
    t.ok(started.task, 'answered at once, with a task');
    const status = await taskSettled(driver, started.task);
    t.match(status, { state: 'failed', errorCode: 'Conflict', error: /does not match its checksum/ });
    t.notOk((await ourVolumes()).includes(importVolumeName(corrupt.uid, 'data')), 'no volume left');
    await rm(join(dir, 'big'), { recursive: true, force: true });
  });
}
