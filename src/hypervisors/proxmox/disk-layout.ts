// Where a spec's disks go on PVE (DiskSpec.bus/cache/format/datastore): the slot of each disk, the
// value of each new volume, the storage it lands on, and the checks of those storages against the
// resource list the create has read. Pure.

import { InvalidSpecError, type CreateSpec, type DiskBus, type DiskFormat, type DiskSpec } from '../../contracts/driver.js';
import { GiB } from '../../contracts/quantity.js';
import { bootDiskSlot, drives, type Drive } from './hardware.js';
import type { ClusterResources } from './resources.js';
import { parsePropertyString, type Row } from './values.js';

// qemu-server's is_valid_drivename: the highest index of each bus (MAX_IDE_DISKS and the others).
const LAST_INDEX: Readonly<Record<DiskBus, number>> = { ide: 3, sata: 5, scsi: 30, virtio: 15 };

export function isQ35(machine: string | undefined): boolean {
  return machine !== undefined && /q35/.test(machine);
}

/** The lowest free `<bus><n>`; q35 machines have no ide1 or ide3 (NOTES §7). */
function freeSlot(bus: DiskBus, used: ReadonlySet<string>, q35: boolean): string | undefined {
  for (let index = 0; index <= LAST_INDEX[bus]; index += 1) {
    if (q35 && bus === 'ide' && index % 2 === 1) continue;
    if (!used.has(`${bus}${index}`)) return `${bus}${index}`;
  }
  return undefined;
}

export function requireFreeSlot(bus: DiskBus, used: ReadonlySet<string>, q35: boolean, what: string): string {
  const slot = freeSlot(bus, used, q35);
  if (slot === undefined) throw new InvalidSpecError(`no free ${bus.toUpperCase()} slot for ${what}`);
  return slot;
}

/** The spec name of the boot disk: the disk marked root, else `root` (the template's own). */
export function rootDiskName(spec: Pick<CreateSpec, 'disks'>): string {
  return spec.disks.find((disk) => disk.root)?.name ?? 'root';
}

/**
 * Spec disk → slot. When `base` (the template's config, or the first drive of a create) has a boot
 * disk, the root disk is that one: a clone's root stays on the template's slot, so a root asking
 * for another bus is refused. Every other disk takes the next free index on its bus (`scsi` when
 * it names none), the root first when `base` has none (a blank VM).
 */
export function planDiskSlots(spec: CreateSpec, base: Row, machine?: string): Record<string, string> {
  const slots: Record<string, string> = {};
  const q35 = isQ35(spec.machine ?? machine);
  const used = new Set(drives(base).map((drive) => drive.slot));
  const root = spec.disks.find((disk) => disk.root);
  const baseRoot = bootDiskSlot(base);
  if (baseRoot !== undefined) {
    const bus = drives(base).find((drive) => drive.slot === baseRoot)?.bus;
    if (root?.bus !== undefined && root.bus !== bus) {
      throw new InvalidSpecError(`root disk '${root.name}' stays on the template's ${bus ?? ''} bus (${baseRoot}), it cannot be on ${root.bus}`);
    }
    slots[rootDiskName(spec)] = baseRoot;
  }
  const ordered = [...spec.disks.filter((disk) => disk.root && baseRoot === undefined), ...spec.disks.filter((disk) => !disk.root)];
  for (const disk of ordered) {
    const slot = requireFreeSlot(disk.bus ?? 'scsi', used, q35, `disk '${disk.name}'`);
    slots[disk.name] = slot;
    used.add(slot);
  }
  return slots;
}

/** The size of a blank volume: whole GiB, rounded up (the unit `<storage>:<size>` allocates in). */
export function wholeGibibytes(bytes: number): string {
  return String(Math.ceil(bytes / GiB));
}

/** `<storage>:<size>[,format=…][,cache=…]`: a new volume (the seed's disk naming convention). */
export function newVolume(storage: string, size: string, disk: Pick<DiskSpec, 'format' | 'cache'>): string {
  return [`${storage}:${size}`, ...(disk.format === undefined ? [] : [`format=${disk.format}`]), ...(disk.cache === undefined ? [] : [`cache=${disk.cache}`])].join(',');
}

/** A drive's value with one option set, the volume first and the other options kept in their order. */
export function withDriveOption(value: string, key: string, option: string): string {
  const options = parsePropertyString(value, 'file');
  options.set(key, option);
  return [...options].map(([name, text]) => (name === 'file' ? text : `${name}=${text}`)).join(',');
}

/**
 * The storage a disk's new volume goes to: its own, else the spec's, else PVE_DEFAULT_STORAGE,
 * else the boot disk's (`fallback`).
 */
export function diskStorage(disk: Pick<DiskSpec, 'datastore'>, spec: Pick<CreateSpec, 'storage'>, defaultStorage: string | undefined, fallback: string | undefined): string | undefined {
  return disk.datastore ?? spec.storage.datastore ?? defaultStorage ?? fallback;
}

// Formats a plugin allocates, where that is fixed: LVM-thin, ZFS and RBD hold raw volumes only (their
// alloc_image dies "unsupported format"), the directory-like plugins (Plugin.pm) raw, qcow2 and vmdk
// files. The rest (LVM, which PVE 9 lets hold qcow2 volume chains; third-party plugins) PVE decides.
const PLUGIN_FORMATS: Readonly<Record<string, readonly DiskFormat[]>> = {
  lvmthin: ['raw'],
  zfspool: ['raw'],
  rbd: ['raw'],
  dir: ['raw', 'qcow2', 'vmdk'],
  nfs: ['raw', 'qcow2', 'vmdk'],
  cifs: ['raw', 'qcow2', 'vmdk'],
};

/** The format of a volume: its name's, else the only one its storage plugin holds (`types`: storage → plugin). */
export function knownFormat(drive: Drive | undefined, types: ReadonlyMap<string, string>): DiskFormat | undefined {
  if (drive === undefined) return undefined;
  if (drive.format !== undefined) return drive.format;
  const formats = drive.storage === undefined ? undefined : PLUGIN_FORMATS[types.get(drive.storage) ?? ''];
  return formats?.length === 1 ? formats[0] : undefined;
}

/** Storage → plugin type, from the resource list's storage rows. */
export function storageTypes(resources: ClusterResources): Map<string, string> {
  return new Map(resources.storages.flatMap((row) => (row.type === undefined ? [] : [[row.storage, row.type] as const])));
}

/**
 * Refuses, before any PVE call, a storage the resource list shows is missing, not on `node`, not
 * for VM disks, or unable to hold `format` (a full clone would silently fall back to the storage's
 * default format: qemu-server resolve_dst_disk_format). A list without storage rows (the token
 * lacks Datastore.Audit) tells nothing: PVE then refuses by itself, in its own words.
 */
export function requireStorage(resources: ClusterResources, node: string, storage: string, format?: DiskFormat): void {
  if (resources.storages.length === 0) return;
  const rows = resources.storages.filter((row) => row.storage === storage);
  if (rows.length === 0) throw new InvalidSpecError(`storage '${storage}' not found`);
  const row = rows.find((candidate) => candidate.node === node);
  if (row === undefined) throw new InvalidSpecError(`storage '${storage}' is not available on node '${node}'`);
  if (!row.content.includes('images')) throw new InvalidSpecError(`storage '${storage}' does not support vm images`);
  const formats = PLUGIN_FORMATS[row.type ?? ''];
  if (format !== undefined && formats !== undefined && !formats.includes(format)) {
    throw new InvalidSpecError(`unsupported format '${format}': storage '${storage}' (${row.type ?? ''}) holds ${formats.join(', ')} volumes`);
  }
}

/** requireStorage for the spec's storage and for the new volume of each of `disks`. */
export function requireDiskStorages(
  resources: ClusterResources,
  node: string,
  spec: Pick<CreateSpec, 'storage'>,
  disks: readonly DiskSpec[],
  defaultStorage: string | undefined,
  fallback: string | undefined,
): void {
  if (spec.storage.datastore !== undefined) requireStorage(resources, node, spec.storage.datastore);
  for (const disk of disks) {
    const storage = diskStorage(disk, spec, defaultStorage, fallback);
    if (storage !== undefined) requireStorage(resources, node, storage, disk.format);
  }
}

/** The node's storage for VM disks with the most room: where a disk no setting places goes. */
export function imagesStorage(resources: ClusterResources, node: string): string | undefined {
  return resources.storages
    .filter((row) => row.node === node && row.content.includes('images'))
    .sort((a, b) => b.maxdisk - b.disk - (a.maxdisk - a.disk) || a.storage.localeCompare(b.storage))[0]?.storage;
}
