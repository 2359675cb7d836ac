// The simulator's disk export and import: real files in a migration directory, a checksum beside
// each, refusals that leave nothing behind, and an import that keeps the disk's virtual size.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { CreateSpec, Identity, VMRef } from '../../src/contracts/driver.js';
import { GiB } from '../../src/contracts/quantity.js';
import { sha256Of } from '../../src/hypervisors/common/disk-files.js';
import { CONTENT_BYTES } from '../../src/hypervisors/simulator/disks.js';
import { DEFAULT_DURATIONS as D, SimulatedHypervisor, SimulatorDriver } from '../../src/hypervisors/simulator/index.js';
import { basicSpec } from '../conformance/driver-suite.js';
import { FakeClock } from '../helpers/clock.js';

const owner = (name: string): Identity => ({ uid: `uid-${name}`, namespace: 'apps', name });

async function world(t: Test) {
  const clock = new FakeClock();
  const migrationDir = await mkdtemp(join(tmpdir(), 'virtrigaud-sim-disks-'));
  t.teardown(() => rm(migrationDir, { recursive: true, force: true }));
  const hypervisor = new SimulatedHypervisor({ clock, migrationDir });
  const driver = new SimulatorDriver(hypervisor);
  const create = async (name: string, overrides: Partial<CreateSpec> = {}): Promise<VMRef> => {
    const spec = basicSpec(name, owner(name), overrides);
    const { id } = await driver.create(spec);
    clock.advance(D.create);
    return { id, owner: spec.owner };
  };
  /**
   * Lets the task's file I/O (qemu-img conversions: real time, slower on a loaded machine) and its
   * simulated duration both pass; gives up after a minute of real time.
   */
  const finished = async (task: string | undefined) => {
    const deadline = Date.now() + 60_000;
    while (task && Date.now() < deadline) {
      const status = await driver.taskStatus(task);
      if (status.state !== 'running' && status.state !== 'queued') return status;
      clock.advance(100);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    throw new Error('task did not end');
  };
  return { clock, migrationDir, hypervisor, driver, create, finished };
}

const file = { path: 'm1/root.raw', format: 'raw' as const };

t.test('an export writes the disk\'s content and its checksum; an import makes it a template of the same virtual size', async (t) => {
  const w = await world(t);
  const ref = await w.create('src', { disks: [{ name: 'root', sizeBytes: 30 * GiB, root: true }] });
  const started = await w.driver.exportDisk(ref, { disk: 'root', file });
  t.match(await w.driver.describe(ref.id), { lock: 'export' }, 'the VM is held while it is exported');
  t.match(await w.finished(started.task), { state: 'succeeded' });
  const path = join(w.migrationDir, file.path);
  const bytes = await readFile(path);
  t.equal(bytes.length, CONTENT_BYTES);
  t.match(bytes.subarray(0, 200).toString('utf8'), /^virtrigaud-simulator-disk \{"vm":"\d+","disk":"root","virtualSize":32212254720\}\n/);
  t.equal((await readFile(`${path}.sha256`, 'utf8')).trim(), await sha256Of(path));
  t.same((await readdir(join(w.migrationDir, 'm1'))).sort(), ['root.raw', 'root.raw.sha256'], 'no partial file left');

  const again = await w.driver.exportDisk(ref, { disk: 'root', file: { path: 'm2/root.raw', format: 'raw' } });
  await w.finished(again.task);
  t.same(await readFile(join(w.migrationDir, 'm2/root.raw')), bytes, 'the same disk, the same bytes');

  const imported = await w.driver.importDisk(owner('dst'), { name: 'root', file });
  t.same(imported, { image: { kind: 'template', ref: 'import-uid-dst-root', fullClone: true }, sizeBytes: 30 * GiB });
  const copy = await w.create('dst', { image: imported.image });
  t.equal((await w.driver.describe(copy.id)).disks.find((disk) => disk.name === 'root')?.sizeBytes, 30 * GiB, 'the VM made from it has the source\'s disk size');
});

t.test('qcow2 and VMDK files go through qemu-img both ways: the same template size, no scratch file left', async (t) => {
  const w = await world(t);
  const ref = await w.create('src', { disks: [{ name: 'root', sizeBytes: 12 * GiB, root: true }] });
  for (const format of ['qcow2', 'vmdk'] as const) {
    const converted = { path: `c/root.${format}`, format };
    const started = await w.driver.exportDisk(ref, { disk: 'root', file: converted });
    t.match(await w.finished(started.task), { state: 'succeeded' }, format);
    const path = join(w.migrationDir, converted.path);
    const magic = (await readFile(path)).subarray(0, 4).toString('latin1');
    t.equal(magic, format === 'qcow2' ? 'QFI\xfb' : 'KDMV', `a real ${format} file`);
    t.equal((await readFile(`${path}.sha256`, 'utf8')).trim(), await sha256Of(path));
    const imported = await w.driver.importDisk(owner(`dst-${format}`), { name: 'root', file: converted });
    t.equal(imported.sizeBytes, 12 * GiB, 'the header read back through the conversion');
  }
  t.same((await readdir(join(w.migrationDir, 'c'))).sort(), ['root.qcow2', 'root.qcow2.sha256', 'root.vmdk', 'root.vmdk.sha256']);
});

t.test('refusals: a running VM is Busy, another owner\'s VM Conflict, a path out of the directory InvalidSpec', async (t) => {
  const w = await world(t);
  const ref = await w.create('src');
  await w.driver.power(ref, 'on');
  w.clock.advance(D.powerOn);
  await t.rejects(w.driver.exportDisk(ref, { disk: 'root', file }), { code: 'Busy', message: /running/ });
  await w.driver.power(ref, 'off');
  w.clock.advance(D.powerOff);
  await t.rejects(w.driver.exportDisk({ id: ref.id, owner: owner('other') }, { disk: 'root', file }), { code: 'Conflict' });
  await t.rejects(w.driver.exportDisk(ref, { disk: 'data', file }), { code: 'NotFound' });
  await t.rejects(w.driver.exportDisk(ref, { disk: 'root', file: { path: '../x.raw', format: 'raw' } }), { code: 'InvalidSpec' });
  await t.rejects(w.driver.exportDisk(ref, { disk: 'root', file: { path: '/etc/x.raw', format: 'raw' } }), { code: 'InvalidSpec' });
  t.same(await readdir(w.migrationDir), [], 'nothing written');
});

t.test('an import checks the file first: not exported yet is NotFound, a corrupted copy Conflict, and nothing is imported', async (t) => {
  const w = await world(t);
  await t.rejects(w.driver.importDisk(owner('dst'), { name: 'root', file }), { code: 'NotFound', message: /has not finished/ });
  const ref = await w.create('src');
  await w.finished((await w.driver.exportDisk(ref, { disk: 'root', file })).task);
  const path = join(w.migrationDir, file.path);
  const bytes = await readFile(path);
  bytes[100] = (bytes[100] ?? 0) ^ 0xff;
  await writeFile(path, bytes);
  await t.rejects(w.driver.importDisk(owner('dst'), { name: 'root', file }), { code: 'Conflict', message: /does not match its checksum/ });
  t.equal(w.hypervisor.listVMs().length, 1);
  await t.rejects(w.driver.create(basicSpec('dst', owner('dst'), { image: { kind: 'template', ref: 'import-uid-dst-root', fullClone: true } })), { code: 'InvalidSpec' }, 'no template was made');
});

t.test('an export that fails leaves no file and no checksum; a fault injected on export or import is what the caller sees', async (t) => {
  const w = await world(t);
  const ref = await w.create('src');
  w.hypervisor.injectFault('exportDisk', { kind: 'taskFailure', message: 'storage went away' });
  const failed = await w.driver.exportDisk(ref, { disk: 'root', file });
  t.match(await w.finished(failed.task), { state: 'failed', error: 'storage went away' });
  // The removal is file I/O after the task's end: wait for it (bounded), whatever the machine's load.
  for (let waited = 0; waited < 5000 && (await readdir(join(w.migrationDir, 'm1'))).length > 0; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
  t.same(await readdir(join(w.migrationDir, 'm1')), [], 'neither the file nor its checksum');
  w.hypervisor.injectFault('importDisk', { kind: 'unreachable' });
  await t.rejects(w.driver.importDisk(owner('dst'), { name: 'root', file }), { code: 'Unreachable' });
  t.equal(w.hypervisor.callCount('importDisk'), 1);
});
