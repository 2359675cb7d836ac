/**
 * Drive and NIC property strings (parse_drive/print_drive, parse_net/print_net) and
 * qemu-server's create_disks: `local-lvm:32` allocates, `local-lvm:cloudinit` creates the
 * cloud-init drive, `local-lvm:0,import-from=…` copies a volume.
 */
import { fail, paramError } from './errors.js';
import { isValidDriveName } from './formats.js';
import { qemuCreateProperty, type FormatHash } from './schema.js';
import type { World } from './state.js';
import { splitVolid } from './storage.js';
import { parsePropertyString, printPropertyString } from './validate.js';

export type Drive = Record<string, string>;

/** `$NEW_DISK_RE`: `[storage:]size-in-GiB`. */
export const NEW_DISK_RE = /^(([^/:\s]+):)?(\d+(\.\d+)?)$/;
const GiB = 1024 ** 3;
const CLOUDINIT_SIZE = 4 * 1024 ** 2;

function hashOf(key: string): FormatHash {
  const format = qemuCreateProperty(key)?.format;
  if (!format || typeof format !== 'object') throw new Error(`no property-string format for ${key}`);
  return format;
}

/** Drive keys in qemu-server's order (ide, sata, scsi, virtio, efidisk0, tpmstate0). */
export const DRIVE_KEYS: readonly string[] = [
  ...Array.from({ length: 4 }, (_, i) => `ide${i}`),
  ...Array.from({ length: 6 }, (_, i) => `sata${i}`),
  ...Array.from({ length: 31 }, (_, i) => `scsi${i}`),
  ...Array.from({ length: 16 }, (_, i) => `virtio${i}`),
  'efidisk0',
  'tpmstate0',
];

export const isDriveKey = (key: string): boolean => isValidDriveName(key);

export function parseDrive(key: string, value: string): Drive {
  return parsePropertyString(hashOf(key), value, key);
}

export function printDrive(key: string, drive: Drive): string {
  return printPropertyString(drive, hashOf(key));
}

export const isCdrom = (drive: Drive): boolean => drive['media'] === 'cdrom';
export const isCloudinit = (drive: Drive): boolean =>
  /(^|[:/])vm-\d+-cloudinit(\.\w+)?$/.test(drive['file'] ?? '') || splitVolid(drive['file'] ?? '')?.volname === 'cloudinit';

export function parseNet(value: string): Drive {
  return parsePropertyString(hashOf('net0'), value, 'net0');
}

export function printNet(net: Drive): string {
  return printPropertyString(net, hashOf('net0'));
}

/** parse_net + print_net: canonical order, a MAC when none was given. */
export function normalizeNet(world: World, value: string): string {
  const net = parseNet(value);
  net['macaddr'] ??= world.randomMac();
  return printNet(net);
}

/** Every drive of a config: [key, parsed drive]. */
export function drivesOf(conf: ReadonlyMap<string, string>): [string, Drive][] {
  const result: [string, Drive][] = [];
  for (const key of DRIVE_KEYS) {
    const value = conf.get(key);
    if (value === undefined) continue;
    try {
      result.push([key, parseDrive(key, value)]);
    } catch {
      // unparsable drives are skipped, like foreach_volume does
    }
  }
  return result;
}

/** get_default_bootdevices + print_bootorder: first disk, first CD drive, first NIC. */
export function defaultBoot(conf: ReadonlyMap<string, string>): string {
  const drives = drivesOf(conf).filter(([key]) => key !== 'efidisk0' && key !== 'tpmstate0');
  const devices: string[] = [];
  const disk = drives.find(([, drive]) => !isCdrom(drive));
  if (disk) devices.push(disk[0]);
  const cdrom = drives.find(([, drive]) => isCdrom(drive));
  if (cdrom) devices.push(cdrom[0]);
  for (let i = 0; i < 32; i++) {
    if (conf.has(`net${i}`)) {
      devices.push(`net${i}`);
      break;
    }
  }
  return `order=${devices.join(';')}`;
}

/** Size of the boot disk (vmstatus' maxdisk). */
export function bootDiskSize(world: World, node: string, conf: ReadonlyMap<string, string>): number {
  const disk = drivesOf(conf).find(([, drive]) => !isCdrom(drive));
  if (!disk) return 0;
  const file = disk[1]['file'] ?? '';
  return world.volumes.get(node, file)?.size ?? sizeOf(disk[1]);
}

export function sizeOf(drive: Drive): number {
  const match = /^(\d+(?:\.\d+)?)([KMGT])?$/.exec(drive['size'] ?? '');
  if (!match) return 0;
  const unit = { K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[match[2] as 'K'] ?? 1;
  return Math.floor(Number(match[1]) * unit);
}

/**
 * Sync parameter checks of a create/update (check_drive_param, check_storage_access);
 * rewrites each drive setting into its canonical print_drive form.
 */
export function checkDriveParams(world: World, settings: Map<string, string>, defaultStorage: string | undefined, root: boolean): void {
  for (const key of [...settings.keys()].sort()) {
    if (!isDriveKey(key)) continue;
    const drive = parseDrive(key, settings.get(key) ?? '');
    const file = drive['file'] ?? '';
    const newDisk = NEW_DISK_RE.exec(file);
    const importFrom = drive['import-from'];
    if (importFrom !== undefined && (!newDisk || Number(newDisk[3]) !== 0)) {
      paramError({ [key]: "'import-from' requires special syntax - use <storage ID>:0,import-from=<source>" });
    }
    const parts = splitVolid(file);
    if (file === '' || file === 'none' || file === 'cdrom' || parts?.volname === 'cloudinit') {
      // nothing to check
    } else if (!isCdrom(drive) && newDisk) {
      const storeId = newDisk[2] ?? defaultStorage;
      if (storeId === undefined) fail('no storage ID specified (and no default storage)');
      if (!world.volumes.config(storeId).content.includes('images')) {
        paramError({ storage: `storage '${storeId}' does not support vm images` });
      }
    } else if (parts) {
      const { vtype } = world.volumes.parseVolname(file);
      if (vtype !== 'images' && vtype !== 'iso') paramError({ [key]: "content type needs to be 'images' or 'iso'" });
      if (vtype === 'iso' && !isCdrom(drive)) paramError({ [key]: "explicit 'media=cdrom' is required for iso images" });
    } else if (file.startsWith('/') && !root) {
      fail('Only root can pass arbitrary filesystem paths.');
    }
    if (importFrom !== undefined) {
      if (splitVolid(importFrom)) {
        const { vtype } = world.volumes.parseVolname(importFrom);
        if (vtype !== 'images' && vtype !== 'import') {
          paramError({ [key]: `${importFrom} has wrong type '${vtype}' - needs to be 'images' or 'import'` });
        }
      } else if (!root) {
        fail('Only root can pass arbitrary filesystem paths.');
      }
    }
    settings.set(key, printDrive(key, drive));
  }
}

export interface DiskCreation {
  node: string;
  vmid: number;
  /** The config so far, to refuse a second cloud-init drive. */
  conf: ReadonlyMap<string, string>;
  defaultStorage?: string;
  template: boolean;
  at: number;
  log: (line: string) => void;
}

/** create_disks: allocates what the settings ask for; frees everything again on error. */
export function createDisks(world: World, job: DiskCreation, settings: ReadonlyMap<string, string>): Map<string, string> {
  const created = new Map<string, string>();
  const allocated: string[] = [];
  try {
    for (const key of [...settings.keys()].sort()) {
      if (!isDriveKey(key)) continue;
      const drive = parseDrive(key, settings.get(key) ?? '');
      created.set(key, createOne(world, job, key, drive, created, allocated));
    }
  } catch (error) {
    for (const volid of allocated) world.volumes.remove(job.node, volid);
    throw error;
  }
  return created;
}

function createOne(world: World, job: DiskCreation, key: string, drive: Drive, created: Map<string, string>, allocated: string[]): string {
  const file = drive['file'] ?? '';
  const parts = splitVolid(file);
  const newDisk = NEW_DISK_RE.exec(file);
  if (file === '' || file === 'none' || file === 'cdrom') {
    delete drive['size'];
    return printDrive(key, drive);
  }
  if (parts?.volname === 'cloudinit') {
    const attached = [...job.conf.entries(), ...created.entries()].find(
      ([other, value]) => other !== key && isDriveKey(other) && isCloudinit(parseDrive(other, value)),
    );
    if (attached) fail(`${key} - cloud-init drive is already attached at '${attached[0]}'`);
    const volume = world.volumes.allocate({
      storage: parts.storage,
      node: job.node,
      vmid: job.vmid,
      size: CLOUDINIT_SIZE,
      ...(drive['format'] === undefined ? {} : { format: drive['format'] }),
      name: `vm-${job.vmid}-cloudinit`,
      now: job.at,
    });
    allocated.push(volume.volid);
    drive['file'] = volume.volid;
    drive['media'] = 'cdrom';
    delete drive['format'];
    const printed = printDrive(key, drive);
    job.log(`${key}: successfully created disk '${printed}'`);
    return printed;
  }
  if (newDisk) {
    const storage = newDisk[2] ?? job.defaultStorage;
    if (storage === undefined) fail('no storage ID specified (and no default storage)');
    let size = Math.floor(Number(newDisk[3]) * GiB);
    const source = drive['import-from'];
    delete drive['import-from'];
    if (source !== undefined) {
      const volume = splitVolid(source) ? world.volumes.get(job.node, source) : undefined;
      if (!volume) fail(`cannot import from '${source}' - could not get size of ${source}`);
      if (isCloudinit({ file: source })) fail(`cannot import from '${source}' - cannot import from cloudinit disk`);
      size = volume.size;
    }
    if (key === 'efidisk0') size = drive['efitype'] === '4m' ? 540_672 : 131_072;
    if (key === 'tpmstate0') size = CLOUDINIT_SIZE;
    let volume = world.volumes.allocate({
      storage,
      node: job.node,
      vmid: job.vmid,
      size,
      ...(drive['format'] === undefined ? {} : { format: drive['format'] }),
      now: job.at,
    });
    allocated.push(volume.volid);
    if (job.template) {
      volume = world.volumes.createBase(job.node, volume.volid);
      allocated[allocated.length - 1] = volume.volid;
    }
    drive['file'] = volume.volid;
    drive['size'] = String(size);
    delete drive['format'];
    const printed = printDrive(key, drive);
    job.log(`${key}: successfully created disk '${printed}'`);
    return printed;
  }
  if (parts) {
    const { vtype, format } = world.volumes.parseVolname(file);
    if (vtype !== 'images' && vtype !== 'iso') fail(`cannot use volume ${file} - content type needs to be 'images' or 'iso'`);
    if (drive['format'] !== undefined && drive['format'] !== format) {
      fail(`drive '${key}' - volume '${file}' - 'format=${drive['format']}' option different from storage format '${format}'`);
    }
    const volume = world.volumes.get(job.node, file);
    if (!volume) fail(`volume ${file} does not exist`);
    drive['size'] = String(volume.size);
  }
  return printDrive(key, drive);
}
