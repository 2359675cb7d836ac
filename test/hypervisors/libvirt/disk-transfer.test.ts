// The decisions behind disk export and import that need no host: how a disk's chain becomes a
// file, what an imported image is named, which disk files are refused, and the import record.
import t from 'tap';
import { exportPlan } from '../../../src/hypervisors/libvirt/export.js';
import { parseImportRecord } from '../../../src/hypervisors/libvirt/import-records.js';
import { foreignFiles } from '../../../src/hypervisors/common/qemu-img.js';
import { importVolumeName, isImportVolume } from '../../../src/hypervisors/libvirt/names.js';

const UID = '0d15c000-0000-4000-8000-000000000001';
const top = { path: '/pool/vm-root.qcow2', format: 'qcow2', bytes: 200_000 };
const base = { path: '/pool/base.qcow2', format: 'qcow2', bytes: 18_000_000 };

t.test('a one-layer disk already in the asked format is streamed as it is; anything else is flattened', async (t) => {
  t.same(exportPlan([top], 'qcow2'), { kind: 'stream', layer: top });
  t.same(exportPlan([top], 'raw'), { kind: 'flatten', layers: [top] });
  t.same(exportPlan([top, base], 'qcow2'), { kind: 'flatten', layers: [top, base] }, 'an overlay alone would name a host file');
  t.throws(() => exportPlan([], 'qcow2'), { code: 'HypervisorError' });
});

t.test('an imported image is named by its owner and name, in safe characters, apart from names that reduce alike', async (t) => {
  const name = importVolumeName(UID, 'root');
  t.equal(name, importVolumeName(UID, 'root'), 'the same owner and name: the same volume');
  t.match(name, /^virtrigaud-import-0d15c000-0000-4000-8000-000000000001-root-[0-9a-f]{8}\.qcow2$/);
  t.not(importVolumeName(UID, 'a b'), importVolumeName(UID, 'a/b'), 'names that reduce alike stay apart');
  t.match(importVolumeName(UID, "x'; rm -rf / #"), /^[A-Za-z0-9_.-]+$/);
  t.ok(importVolumeName('a'.repeat(63), 'n'.repeat(253)).length <= 128, 'fits a task lock key with the longest UID and name');
  t.throws(() => importVolumeName(UID, ''), { code: 'InvalidSpec' });
  t.ok(isImportVolume(name));
  t.notOk(isImportVolume('virtrigaud-1234-root.qcow2'));
});

t.test('a disk file that would read other files than itself is refused', async (t) => {
  t.equal(foreignFiles({ format: 'qcow2', 'virtual-size': 1 }, '/m/a.qcow2'), undefined);
  t.match(foreignFiles({ 'backing-filename': '/etc/shadow' }, '/m/a.qcow2'), /backing file/);
  t.match(foreignFiles({ 'format-specific': { data: { 'data-file': '/etc/shadow' } } }, '/m/a.qcow2'), /data file/);
  t.equal(foreignFiles({ 'format-specific': { data: { extents: [{ filename: '/m/a.vmdk' }] } } }, '/m/a.vmdk'), undefined, 'a monolithic VMDK is its own extent');
  t.match(foreignFiles({ 'format-specific': { data: { extents: [{ filename: '/m/a.vmdk' }, { filename: '/root/.ssh/id_ed25519' }] } } }, '/m/a.vmdk'), /extents/);
});

t.test('an import record is read back only when whole', async (t) => {
  const a = 'a'.repeat(64);
  const b = 'b'.repeat(64);
  t.same(parseImportRecord(`${a} ${b} 1024\n`), { fileSha256: a, volumeSha256: b, bytes: 1024 });
  t.equal(parseImportRecord(''), undefined);
  t.equal(parseImportRecord(`${a} ${b}`), undefined);
});
