// A VM config (`GET …/config`) read as hardware: drives, NICs, CPU, memory, firmware, features.
// Pure functions; both describe and the create/configure planners use them.

import { MiB } from '../../contracts/quantity.js';
import { DISK_CACHES, type DiskCache, type DiskFormat, type HardwareFeatures } from '../../contracts/driver.js';
import { flag, num, parseDiskSize, parseMemoryMiB, parsePropertyString, str, volumeStorage, type Row } from './values.js';

/** Boot priority of disk buses, highest first (virtio-blk, then SCSI, SATA, IDE). */
export const DISK_BUSES = ['virtio', 'scsi', 'sata', 'ide'] as const;
export type DiskBus = (typeof DISK_BUSES)[number];
const DRIVE_KEY = /^(virtio|scsi|sata|ide)(\d+)$/;

export interface Drive {
  slot: string;
  bus: DiskBus;
  index: number;
  volume: string;
  storage?: string;
  sizeBytes?: number;
  cdrom: boolean;
  cloudinit: boolean;
  /** The `cache=` option, when set and one the contract names. */
  cache?: DiskCache;
  /** The volume's format: its file name's extension, else a `format=` option. */
  format?: DiskFormat;
}

const FORMATS: readonly DiskFormat[] = ['qcow2', 'raw', 'vmdk'];

/** A volume's format from its name (`local:100/vm-100-disk-0.qcow2`); undefined for block volumes, which carry none. */
function volumeFormat(volume: string): DiskFormat | undefined {
  const extension = /\.(\w+)$/.exec(volume)?.[1];
  return FORMATS.find((format) => format === extension);
}

export function parseDrive(slot: string, value: string): Drive | undefined {
  const match = DRIVE_KEY.exec(slot);
  if (!match) return undefined;
  const options = parsePropertyString(value, 'file');
  const volume = options.get('file') ?? options.get('volume') ?? '';
  // A cloud-init drive is `<storage>:vm-<id>-cloudinit,media=cdrom` (qemu-server Cloudinit.pm).
  const cloudinit = /(^|[:/])vm-\d+-cloudinit(\.\w+)?$/.test(volume) || volume.endsWith(':cloudinit');
  const drive: Drive = {
    slot,
    bus: match[1] as DiskBus,
    index: Number(match[2]),
    volume,
    cdrom: options.get('media') === 'cdrom' || cloudinit,
    cloudinit,
  };
  const storage = volumeStorage(volume);
  if (storage !== undefined) drive.storage = storage;
  const size = parseDiskSize(options.get('size'));
  if (size !== undefined) drive.sizeBytes = size;
  const cache = DISK_CACHES.find((mode) => mode === options.get('cache'));
  if (cache !== undefined) drive.cache = cache;
  const format = volumeFormat(volume) ?? FORMATS.find((candidate) => candidate === options.get('format'));
  if (format !== undefined) drive.format = format;
  return drive;
}

function busRank(bus: DiskBus): number {
  return DISK_BUSES.indexOf(bus);
}

/** Every drive of the config, CD-ROMs included, in boot priority order. */
export function drives(config: Row): Drive[] {
  const result: Drive[] = [];
  for (const [key, value] of Object.entries(config)) {
    const text = str(value);
    if (text === undefined) continue;
    const drive = parseDrive(key, text);
    if (drive !== undefined) result.push(drive);
  }
  return result.sort((a, b) => busRank(a.bus) - busRank(b.bus) || a.index - b.index);
}

export function disks(config: Row): Drive[] {
  return drives(config).filter((drive) => !drive.cdrom);
}

/**
 * The boot disk: the marker's `root` slot when it names a disk, else the first disk of the `boot`
 * order (or the legacy `bootdisk`), else the first disk by bus priority.
 */
export function bootDiskSlot(config: Row, markerRoot?: string): string | undefined {
  const all = disks(config);
  const isDisk = (slot: string | undefined): slot is string => slot !== undefined && all.some((disk) => disk.slot === slot);
  if (isDisk(markerRoot)) return markerRoot;
  const order = parsePropertyString(str(config['boot']) ?? '', 'legacy').get('order');
  const first = order?.split(';').find((slot) => isDisk(slot));
  if (first !== undefined) return first;
  const legacy = str(config['bootdisk']);
  if (isDisk(legacy)) return legacy;
  return all[0]?.slot;
}

/** `order=<root>;<other disks>`: CD-ROMs and the network are left out, so a VM never waits on PXE. */
export function bootOrder(slots: string[], root: string | undefined): string {
  const parsed = slots
    .map((slot) => DRIVE_KEY.exec(slot))
    .filter((match): match is RegExpExecArray => match !== null)
    .map((match) => ({ slot: match[0], bus: match[1] as DiskBus, index: Number(match[2]) }))
    .sort((a, b) => busRank(a.bus) - busRank(b.bus) || a.index - b.index)
    .map((drive) => drive.slot);
  const ordered = root !== undefined && parsed.includes(root) ? [root, ...parsed.filter((slot) => slot !== root)] : parsed;
  return `order=${ordered.join(';')}`;
}

export const NIC_MODELS = [
  'e1000',
  'e1000-82540em',
  'e1000-82544gc',
  'e1000-82545em',
  'e1000e',
  'i82551',
  'i82557b',
  'i82559er',
  'ne2k_isa',
  'ne2k_pci',
  'pcnet',
  'rtl8139',
  'virtio',
  'vmxnet3',
] as const;

export interface NicSlot {
  slot: string;
  index: number;
  model?: string;
  mac?: string;
  bridge?: string;
  tag?: number;
  firewall?: boolean;
  rate?: number;
  mtu?: number;
}

/** `net0: virtio=BC:24:11:2C:69:EC,bridge=vmbr0,firewall=1` — the model key doubles as the MAC key. */
export function parseNic(slot: string, value: string): NicSlot | undefined {
  const match = /^net(\d+)$/.exec(slot);
  if (!match) return undefined;
  const nic: NicSlot = { slot, index: Number(match[1]) };
  for (const [key, option] of parsePropertyString(value, 'model')) {
    if (key === 'model') nic.model = option;
    else if ((NIC_MODELS as readonly string[]).includes(key)) {
      nic.model = key;
      nic.mac = option.toLowerCase();
    } else if (key === 'macaddr') nic.mac = option.toLowerCase();
    else if (key === 'bridge') nic.bridge = option;
    else if (key === 'tag') nic.tag = num(option);
    else if (key === 'firewall') nic.firewall = flag(option);
    else if (key === 'rate') nic.rate = num(option);
    else if (key === 'mtu') nic.mtu = num(option);
  }
  for (const key of ['tag', 'rate', 'mtu'] as const) if (nic[key] === undefined) delete nic[key];
  return nic;
}

export function nics(config: Row): NicSlot[] {
  const result: NicSlot[] = [];
  for (const [key, value] of Object.entries(config)) {
    const text = str(value);
    const nic = text === undefined ? undefined : parseNic(key, text);
    if (nic !== undefined) result.push(nic);
  }
  return result.sort((a, b) => a.index - b.index);
}

/** `hotplug`: unset or `1` is the default `network,disk,usb`; `0` is nothing (qemu-server schema). */
export function hotplugFeatures(config: Row): Set<string> {
  const value = str(config['hotplug']);
  if (value === undefined || value === '1') return new Set(['network', 'disk', 'usb']);
  if (value === '0') return new Set();
  return new Set(value.split(',').map((part) => part.trim()));
}

export function cpuType(config: Row): string | undefined {
  const value = str(config['cpu']);
  return value === undefined ? undefined : parsePropertyString(value, 'cputype').get('cputype');
}

/** Online vCPUs: `vcpus` when CPU hotplug set it, else cores × sockets. */
export function observedCpus(config: Row): number {
  const vcpus = num(config['vcpus']);
  if (vcpus !== undefined && vcpus > 0) return vcpus;
  return (num(config['cores']) ?? 1) * (num(config['sockets']) ?? 1);
}

export function maxCpus(config: Row): number {
  return (num(config['cores']) ?? 1) * (num(config['sockets']) ?? 1);
}

/** PVE's default memory is 512 MiB when the key is absent (qemu-server schema default). */
export function observedMemoryBytes(config: Row): number {
  return (parseMemoryMiB(config['memory']) ?? 512) * MiB;
}

export function firmwareOf(config: Row): 'bios' | 'uefi' {
  return str(config['bios']) === 'ovmf' ? 'uefi' : 'bios';
}

export function machineType(config: Row): string | undefined {
  const value = str(config['machine']);
  return value === undefined ? undefined : parsePropertyString(value, 'type').get('type');
}

export function agentEnabled(config: Row): boolean {
  const value = str(config['agent']);
  return value !== undefined && flag(parsePropertyString(value, 'enabled').get('enabled'));
}

export function featuresOf(config: Row): HardwareFeatures {
  const efidisk = str(config['efidisk0']);
  const cpu = str(config['cpu']);
  const flags = cpu === undefined ? '' : (parsePropertyString(cpu, 'cputype').get('flags') ?? '');
  const hotplug = hotplugFeatures(config);
  return {
    tpm: str(config['tpmstate0']) !== undefined,
    secureBoot:
      firmwareOf(config) === 'uefi' &&
      efidisk !== undefined &&
      flag(parsePropertyString(efidisk, 'file').get('pre-enrolled-keys')),
    nestedVirtualization: cpuType(config) === 'host' || /(^|;)\+(vmx|svm)\b/.test(flags),
    cpuHotAdd: hotplug.has('cpu'),
    memoryHotAdd: hotplug.has('memory'),
  };
}
