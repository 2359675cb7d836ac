// The simulator's vocabulary: its options, the records its world keeps, and their defaults.

import type { Clock } from '../../contracts/clock.js';
import type { Capabilities, DriverErrorCode, HardwareFeatures, Identity, PlacementRecord, PowerState, ResourceLimits } from '../../contracts/driver.js';
import { CAPABILITIES, MACHINE_CAPABILITIES } from '../../contracts/driver.js';
import { GiB } from '../../contracts/quantity.js';

/** How long each kind of task runs, in milliseconds of the simulator's clock. */
export interface SimulatorDurations {
  create: number;
  clone: number;
  powerOn: number;
  powerOff: number;
  shutdown: number;
  reboot: number;
  reconfigure: number;
  resizeDisk: number;
  delete: number;
  snapshot: number;
  /** From power-on (or reboot) until the guest reports its addresses. */
  boot: number;
}

export const DEFAULT_DURATIONS: SimulatorDurations = {
  create: 2000,
  clone: 1500,
  powerOn: 500,
  powerOff: 300,
  shutdown: 1500,
  reboot: 1000,
  reconfigure: 300,
  resizeDisk: 500,
  delete: 800,
  snapshot: 500,
  boot: 1500,
};

export interface SimHost {
  name: string;
  cpus: number;
  memoryBytes: number;
}

export interface SimDatastore {
  name: string;
  capacityBytes: number;
}

export interface SimTemplate {
  name: string;
  id: string;
  diskBytes: number;
  firmware?: 'bios' | 'uefi';
}

/** The Driver methods faults can be injected into; 'power' covers every power operation. */
export type SimOperation =
  | 'probe'
  | 'inventory'
  | 'describe'
  | 'findByIdentity'
  | 'create'
  | 'delete'
  | 'power'
  | 'reconfigure'
  | 'resizeDisk'
  | 'snapshotCreate'
  | 'snapshotDelete'
  | 'snapshotRevert'
  | 'snapshotList'
  | 'clone'
  | 'taskStatus'
  | 'exportDisk'
  | 'importDisk'
  | 'deleteImportedDisk'
  | 'migrationVolume'
  | 'removeMigrationFiles';

export interface SimFault {
  kind: 'busy' | 'conflict' | 'unreachable' | 'unauthorized' | 'invalid' | 'error' | 'timeout' | 'lostResponse' | 'taskFailure';
  /** How many calls the fault answers; 1 when absent, Infinity for a fault that persists until cleared. */
  times?: number;
  /** The fault stops at this clock time (epoch ms) however many calls it has left: a node down for two hours. */
  until?: number;
  message?: string;
}

export interface SimulatorOptions {
  clock?: Clock;
  durations?: Partial<SimulatorDurations>;
  /** Where exportDisk writes and importDisk reads (the migration PVC in a runtime); default MIGRATION_DIR. */
  migrationDir?: string;
  hosts?: SimHost[];
  datastores?: SimDatastore[];
  networks?: string[];
  templates?: SimTemplate[];
  capabilities?: Partial<Capabilities>;
  /** Refuse a second VM with a taken name, as libvirt and vCenter do. Default true. */
  uniqueNames?: boolean;
  version?: string;
  /** Whole-download timeout for URL images. Default 60 s. */
  fetchTimeoutMs?: number;
  /** Largest URL image accepted. Default 2 GiB; tests lower it. */
  maxImageBytes?: number;
}

export const DEFAULT_HOSTS: readonly SimHost[] = [
  { name: 'sim-host-1', cpus: 32, memoryBytes: 128 * GiB },
  { name: 'sim-host-2', cpus: 32, memoryBytes: 128 * GiB },
];

export const DEFAULT_DATASTORES: readonly SimDatastore[] = [
  { name: 'sim-ds-1', capacityBytes: 4096 * GiB },
  { name: 'sim-ds-2', capacityBytes: 4096 * GiB },
];

export const DEFAULT_NETWORKS: readonly string[] = ['default', 'lan', 'dmz', 'mgmt', 'vmbr0', 'vmbr1', 'vmbr2', 'br0'];

export const DEFAULT_TEMPLATES: readonly SimTemplate[] = [
  { name: 'ubuntu-22-template', id: '9000', diskBytes: 10 * GiB },
  { name: 'debian-12', id: '9001', diskBytes: 8 * GiB },
  { name: 'ubuntu-24.04', id: '9002', diskBytes: 12 * GiB, firmware: 'uefi' },
];

export const DEFAULT_VERSION = 'virtrigaud-simulator 1.0';
export const DEFAULT_FETCH_TIMEOUT_MS = 60_000;
export const DEFAULT_MAX_IMAGE_BYTES = 2 * GiB;

/**
 * vSphere inventory placement: the simulator has no folders or resource pools to place a VM in.
 * The settings, VM IDs, disk layout and blank VMs of Machines (a Proxmox-only API) and installs
 * from an ISO are not simulated; suspend and hard reset are.
 */
const NOT_SIMULATED: ReadonlySet<string> = new Set([
  'placementFolder',
  'placementCluster',
  'placementResourcePool',
  'isoInstall',
  ...MACHINE_CAPABILITIES.filter((capability) => capability !== 'suspend' && capability !== 'hardReset'),
]);

export function allCapabilities(overrides: Partial<Capabilities> = {}): Capabilities {
  const flags = Object.fromEntries(CAPABILITIES.map((name) => [name, overrides[name] ?? !NOT_SIMULATED.has(name)]));
  return Object.freeze(flags as Record<keyof Capabilities, boolean>);
}

export interface DiskRecord {
  name: string;
  sizeBytes: number;
  datastore: string;
  provisioning: 'thin' | 'thick';
}

export interface NicRecord {
  name: string;
  mac: string;
  network: string;
  vlan?: number;
  model?: string;
  mtu?: number;
  firewall?: boolean;
  rateLimitMBps?: number;
  /** The static address without its prefix length, when one was asked for. */
  staticAddress?: string;
}

export interface SnapshotRecord {
  id: string;
  name: string;
  description?: string;
  createdAt: number;
  memory: boolean;
  cpus: number;
  memoryBytes: number;
  disks: DiskRecord[];
}

export interface VMRecord {
  id: string;
  name: string;
  owner?: Identity;
  host: string;
  powerState: PowerState;
  /** The running task holding the VM; every mutation is refused with BusyError while it is set. */
  lock?: { name: string; task: string };
  cpus: number;
  memoryBytes: number;
  firmware: 'bios' | 'uefi';
  machine?: string;
  features: HardwareFeatures;
  disks: DiskRecord[];
  nics: NicRecord[];
  /** Kept because a real hypervisor keeps it (cloud-init drive); returned only to tests (details). */
  userData?: string;
  metaData?: string;
  ignition?: string;
  tags?: string[];
  extraConfig?: Record<string, string>;
  limits?: ResourceLimits;
  placementRecord?: PlacementRecord;
  /** When the guest starts reporting addresses; undefined while it cannot (off, rebooting). */
  ipsVisibleAt?: number;
  /** The filtered guest addresses, valid while ipsVisibleAt still equals `since` (NICs never change). */
  guestAddresses?: { since: number; ips: string[] };
  /** The pending guest shutdown, so that a later power change can cancel it. */
  shutdownEvent?: { cancelled: boolean };
  ignoresShutdown: boolean;
  snapshots: Map<string, SnapshotRecord>;
  clonedFrom?: { id: string; linked: boolean };
}

export interface TaskFailure {
  message: string;
  code?: DriverErrorCode;
}

export function copyDisk(disk: DiskRecord): DiskRecord {
  return { ...disk };
}
