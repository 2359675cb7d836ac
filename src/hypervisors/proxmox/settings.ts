// VMSettings on PVE: CPU topology (`sockets`, `cores` per socket), OS type (`ostype`), boot order
// (`boot: order=…`), guest agent (`agent`), ballooning (`balloon`) and deletion protection
// (`protection`), as qemu-server's config schema names them. Pure: what a config says, and what
// to write so that it says what is wanted.

import { InvalidSpecError, type BootDevice, type OsType, type VMSettings } from '../../contracts/driver.js';
import { agentEnabled, bootDiskSlot, disks, drives, nics, parseDrive } from './hardware.js';
import type { Marker } from './identity.js';
import { flag, num, parsePropertyString, str, type Row } from './values.js';

const OSTYPE: Readonly<Record<OsType, string>> = { linux: 'l26', windows: 'win11', solaris: 'solaris', other: 'other' };

/** `ostype` as the contract's kind; qemu-server's default is `other`. */
function osTypeOf(config: Row): OsType {
  const value = str(config['ostype']) ?? 'other';
  if (value === 'l24' || value === 'l26') return 'linux';
  if (/^(wxp|w2k\d*|wvista|win\d+)$/.test(value)) return 'windows';
  return value === 'solaris' ? 'solaris' : 'other';
}

function topologyOf(config: Row): { sockets: number; cores: number } {
  return { sockets: num(config['sockets']) ?? 1, cores: num(config['cores']) ?? 1 };
}

/** The balloon device is on unless `balloon` is 0 (qemu-server schema). */
function balloonOn(config: Row): boolean {
  return num(config['balloon']) !== 0;
}

/** What each boot device kind stands for on one VM. */
export interface BootDevices {
  /** The boot disk's slot. */
  disk?: string;
  /** Every NIC, in the spec's order. */
  network: string[];
  /** The CD-ROM drives, the cloud-init drive left out. */
  cdrom: string[];
}

/** The boot devices of an existing VM: its boot disk, its NICs in the spec's order (the marker's), its CD-ROM drives. */
export function bootDevicesOf(config: Row, marker: Marker): BootDevices {
  const present = nics(config).map((nic) => nic.slot);
  const named = Object.values(marker.nics).filter((slot) => present.includes(slot));
  const disk = bootDiskSlot(config, marker.disks['root']);
  return {
    ...(disk === undefined ? {} : { disk }),
    network: [...named, ...present.filter((slot) => !named.includes(slot))],
    cdrom: cdromSlots(config),
  };
}

/** CD-ROM drives other than the cloud-init drive, which holds no bootable medium. */
export function cdromSlots(config: Row): string[] {
  return drives(config)
    .filter((drive) => drive.cdrom && !drive.cloudinit)
    .map((drive) => drive.slot);
}

export const EMPTY_CDROM = 'none,media=cdrom';

/** A slot for an empty CD-ROM drive: ide2, ide0 (q35 machines have no ide1 or ide3), then SATA. */
export function cdromSlotFor(used: ReadonlySet<string>): string {
  const slot = ['ide2', 'ide0', 'sata0', 'sata1', 'sata2', 'sata3', 'sata4', 'sata5'].find((candidate) => !used.has(candidate));
  if (slot === undefined) throw new InvalidSpecError('no free IDE or SATA slot for the CD-ROM drive the boot order names');
  return slot;
}

/** Whether the boot order names a CD-ROM drive the VM does not have yet. */
export function needsCdrom(order: readonly BootDevice[] | undefined, config: Row): boolean {
  return order !== undefined && order.includes('cdrom') && cdromSlots(config).length === 0;
}

const NOUN: Readonly<Record<BootDevice, string>> = { disk: 'disk', network: 'NIC', cdrom: 'CD-ROM drive' };

/** The devices of `order=…`: each kind replaced by its devices. */
export function bootDevicesFor(order: readonly BootDevice[], devices: BootDevices): string[] {
  return order.flatMap((kind) => {
    const found = kind === 'disk' ? (devices.disk === undefined ? [] : [devices.disk]) : devices[kind];
    if (found.length === 0) throw new InvalidSpecError(`the boot order names '${kind}', but the VM has no ${NOUN[kind]}`);
    return found;
  });
}

function kindOf(config: Row, device: string): BootDevice | undefined {
  if (/^net\d+$/.test(device)) return config[device] === undefined ? undefined : 'network';
  const value = str(config[device]);
  const drive = value === undefined ? undefined : parseDrive(device, value);
  if (drive === undefined || drive.cloudinit) return undefined;
  return drive.cdrom ? 'cdrom' : 'disk';
}

const LEGACY: Readonly<Record<string, BootDevice>> = { c: 'disk', d: 'cdrom', n: 'network' };

/**
 * The boot order as device kinds, consecutive devices of one kind collapsed. Devices the config
 * does not have and the cloud-init drive are left out. Without `order`, the legacy letters
 * (`boot: cdn`, qemu-server's default when `boot` is unset) for the kinds the VM has devices of.
 */
function bootOrderOf(config: Row): BootDevice[] {
  const boot = parsePropertyString(str(config['boot']) ?? '', 'legacy');
  const order = boot.get('order');
  let kinds: (BootDevice | undefined)[];
  if (order !== undefined) {
    kinds = order.split(';').map((device) => kindOf(config, device.trim()));
  } else {
    const present = new Set<BootDevice>([
      ...(disks(config).length > 0 ? (['disk'] as const) : []),
      ...(cdromSlots(config).length > 0 ? (['cdrom'] as const) : []),
      ...(nics(config).length > 0 ? (['network'] as const) : []),
    ]);
    kinds = [...(boot.get('legacy') ?? 'cdn')].map((letter) => LEGACY[letter]).filter((kind) => kind !== undefined && present.has(kind));
  }
  const collapsed: BootDevice[] = [];
  for (const kind of kinds) if (kind !== undefined && collapsed.at(-1) !== kind) collapsed.push(kind);
  return collapsed;
}

/** The settings a config has, every one the driver can set. */
export function settingsOf(config: Row): VMSettings {
  return {
    cpuTopology: topologyOf(config),
    osType: osTypeOf(config),
    bootOrder: bootOrderOf(config),
    guestAgent: agentEnabled(config),
    balloon: balloonOn(config),
    protection: flag(config['protection']),
  };
}

/** Checks that need nothing but the settings. */
export function validateSettings(settings: VMSettings): void {
  const topology = settings.cpuTopology;
  if (topology !== undefined) {
    for (const [key, value] of Object.entries(topology)) {
      if (!Number.isInteger(value) || value < 1) throw new InvalidSpecError(`cpuTopology.${key} must be a positive integer, not ${value}`);
    }
  }
  const order = settings.bootOrder;
  if (order !== undefined) {
    if (order.length === 0) throw new InvalidSpecError('the boot order names no device');
    const twice = order.find((kind, index) => order.indexOf(kind) !== index);
    if (twice !== undefined) throw new InvalidSpecError(`the boot order names '${twice}' twice`);
  }
}

/** Config keys to set and to delete. */
export interface ConfigChange {
  set: Record<string, string | number>;
  remove: string[];
  /** The boot order names a CD-ROM drive the VM lacks: add one (ensureCdrom) and compute again. */
  cdromMissing?: boolean;
}

export function isEmptyChange(change: ConfigChange): boolean {
  return Object.keys(change.set).length === 0 && change.remove.length === 0 && change.cdromMissing !== true;
}

/** The config keys that make `config` have `settings` (the defined ones); empty when it has them. */
export function settingsChange(settings: VMSettings, config: Row, devices: BootDevices): ConfigChange {
  const change: ConfigChange = { set: {}, remove: [] };
  const topology = settings.cpuTopology;
  if (topology !== undefined) {
    const current = topologyOf(config);
    if (current.sockets !== topology.sockets) change.set['sockets'] = topology.sockets;
    if (current.cores !== topology.cores) change.set['cores'] = topology.cores;
    // Without CPU hotplug every core of every socket runs: no `vcpus` below them.
    if (config['vcpus'] !== undefined) change.remove.push('vcpus');
  }
  if (settings.osType !== undefined && osTypeOf(config) !== settings.osType) change.set['ostype'] = OSTYPE[settings.osType];
  if (settings.bootOrder !== undefined) {
    if (needsCdrom(settings.bootOrder, config)) change.cdromMissing = true;
    else {
      const order = bootDevicesFor(settings.bootOrder, devices).join(';');
      if (parsePropertyString(str(config['boot']) ?? '', 'legacy').get('order') !== order) change.set['boot'] = `order=${order}`;
    }
  }
  if (settings.guestAgent !== undefined && agentEnabled(config) !== settings.guestAgent) change.set['agent'] = settings.guestAgent ? 1 : 0;
  if (settings.balloon === false && balloonOn(config)) change.set['balloon'] = 0;
  if (settings.balloon === true && !balloonOn(config)) change.remove.push('balloon');
  if (settings.protection !== undefined && flag(config['protection']) !== settings.protection) change.set['protection'] = settings.protection ? 1 : 0;
  return change;
}

/** Two changes as one (a key deleted by either is deleted once). */
export function mergeChanges(...changes: ConfigChange[]): ConfigChange {
  const merged: ConfigChange = { set: {}, remove: [] };
  for (const change of changes) {
    Object.assign(merged.set, change.set);
    for (const key of change.remove) if (!merged.remove.includes(key)) merged.remove.push(key);
    if (change.cdromMissing === true) merged.cdromMissing = true;
  }
  return merged;
}

/** The parameters of a `…/config` call for a change (`delete` lists the keys to delete). */
export function changeParams(change: ConfigChange): Record<string, string | number> {
  return change.remove.length === 0 ? { ...change.set } : { ...change.set, delete: change.remove.join(',') };
}
