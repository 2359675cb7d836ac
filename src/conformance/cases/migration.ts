// Placement records, disk export/import and the migration volume: what placement policies and
// VMMigrations build on.
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256Of } from '../../hypervisors/common/disk-files.js';
import { skipped, unsupported } from '../checks.js';
import { createFully, deleteFully, taskDone, type ConformanceCase } from '../target.js';

export const placementRecord: ConformanceCase = {
  id: 'placement-record',
  title: 'a placement record is listed back with the VM on its host, or refused without placementPolicy',
  capability: 'placementPolicy',
  destructive: false,
  async run({ target, check, owner, vmName }) {
    const me = owner('placed');
    const record = { labels: { 'app.kubernetes.io/name': 'Web', tier: 'gold', empty: '' }, order: 1_767_225_600_123 };
    const spec = { ...target.spec(vmName('placed'), me), placementRecord: record };
    if (!target.driver.capabilities.placementPolicy) {
      await check.rejects(target.driver.create(spec), { code: 'Unsupported' }, 'a create with a placement record is refused');
      check.equal(await target.driver.findByIdentity(me.uid), undefined, 'nothing made');
      unsupported('no placementPolicy capability; a placement record is refused as Unsupported');
    }
    const vm = await createFully(target, spec);
    const host = (await target.driver.inventory()).hosts.find((candidate) => (candidate.placed ?? []).some((placed) => placed.owner === me.uid));
    const placed = host?.placed?.find((candidate) => candidate.owner === me.uid);
    check.same(placed?.labels, record.labels, 'the labels listed back');
    check.equal(placed?.order, record.order, 'the order listed back');
    check.equal(placed?.memoryBytes, spec.memoryBytes, 'the memory listed back');
    if (vm.host !== undefined) check.equal(host?.name, vm.host, 'listed on the host the VM is on');
    await deleteFully(target, { id: vm.id, owner: me });
  },
};

export const diskExport: ConformanceCase = {
  id: 'disk-export',
  title: 'a disk is exported (VM off) with its checksum and imported as an image a VM is made from, or refused without the capability',
  capability: 'diskExport',
  destructive: false,
  async run({ target, check, owner, vmName, scratch, recordImport }) {
    const me = owner('export');
    const file = { path: `${scratch}/export/root.raw`, format: 'raw' as const };
    const caps = target.driver.capabilities;
    if (!caps.diskExport) {
      await check.rejects(target.driver.exportDisk({ id: '1', owner: me }, { disk: 'root', file }), { code: 'Unsupported' }, 'exportDisk is refused');
    }
    if (!caps.diskImport) {
      await check.rejects(target.driver.importDisk(me, { name: 'root', file }), { code: 'Unsupported' }, 'importDisk is refused');
    }
    if (!caps.diskExport) unsupported(`no diskExport capability${caps.diskImport ? '' : ' nor diskImport'}; refused as Unsupported`);
    const dir = target.migrationDir;
    if (dir === undefined) skipped('needs the migration directory the driver exports to, readable here (vcts: MIGRATION_DIR or --migration-dir)');
    const vm = await createFully(target, target.spec(vmName('export'), me));
    const ref = { id: vm.id, owner: me };
    await check.rejects(target.driver.exportDisk(ref, { disk: 'root', file: { path: '../outside.raw', format: 'raw' } }), { code: 'InvalidSpec' }, 'a path outside the migration directory is refused');
    await check.rejects(target.driver.exportDisk({ id: vm.id, owner: owner('intruder') }, { disk: 'root', file }), { code: 'Conflict' }, "an export with another owner's identity is refused");
    const started = await target.driver.exportDisk(ref, { disk: 'root', file });
    await taskDone(target, started.task, 'export');
    const path = join(dir, file.path);
    check.equal((await readFile(`${path}.sha256`, 'utf8')).trim(), await sha256Of(path), "the checksum beside the file is the file's");
    if (caps.diskImport) {
      const other = owner('import');
      recordImport(other, 'root');
      const imported = await target.driver.importDisk(other, { name: 'root', file });
      await taskDone(target, imported.task, 'import');
      check.ok(imported.sizeBytes > 0, 'the imported image has a size');
      const again = await target.driver.importDisk(other, { name: 'root', file });
      check.same(again.image, imported.image, 'the same owner and name: the same image');
      const copy = await createFully(target, { ...target.spec(vmName('imported'), other), image: imported.image });
      check.ok(copy.disks.some((disk) => disk.name === 'root' && disk.sizeBytes > 0), 'a VM made from the imported disk');
      const removed = await target.driver.deleteImportedDisk(other, 'root');
      await taskDone(target, removed.task, 'imported disk delete');
      await target.driver.deleteImportedDisk(other, 'root');
      check.match(await target.driver.describe(copy.id), { id: copy.id }, 'the VM made from the image keeps its own copy');
      await deleteFully(target, { id: copy.id, owner: other });
    }
    await deleteFully(target, ref);
  },
};

export const migrationVolume: ConformanceCase = {
  id: 'migration-volume',
  title: "a migration volume is checked for room and writes, and a migration's files are removed, without a hypervisor call",
  capability: 'core',
  destructive: false,
  async run({ target, check, scratch }) {
    const dir = target.migrationDir;
    if (dir === undefined) skipped('needs the migration directory, readable here (vcts: MIGRATION_DIR or --migration-dir)');
    const volume = `${scratch}-volume`;
    const checked = await target.driver.migrationVolume(volume);
    check.ok(checked.freeBytes > 0, 'room on the volume');
    await check.rejects(target.driver.migrationVolume('Not_A_PVC'), { code: 'InvalidSpec' }, 'a volume name that is no PVC name is refused');
    await mkdir(join(dir, volume, 'm1'), { recursive: true });
    await writeFile(join(dir, volume, 'm1', 'root.raw'), 'x');
    await check.rejects(target.driver.removeMigrationFiles(volume), { code: 'InvalidSpec' }, 'never a whole volume');
    await check.rejects(target.driver.removeMigrationFiles('../etc'), { code: 'InvalidSpec' }, 'never outside the migration directory');
    await target.driver.removeMigrationFiles(`${volume}/m1`);
    await target.driver.removeMigrationFiles(`${volume}/m1`);
    check.same(await readdir(join(dir, volume)), [], "the migration's files are gone, the volume stays");
  },
};
