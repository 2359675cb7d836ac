// Desired versus observed hardware: what differs, what can be applied and how. Pure.
import type { Capabilities, CreateSpec, ObservedVM, ResourceChange, VMSettings } from '../../contracts/driver.js';
import { formatBytes } from '../../contracts/quantity.js';

export interface SizeChange {
  disk: string;
  fromBytes: number;
  toBytes: number;
}

export interface HardwareDiff {
  /** CPU/memory values to reach, only for the fields that differ. */
  resources: ResourceChange;
  grow: SizeChange[];
  /** Refused, never applied: disks only grow. */
  shrink: SizeChange[];
  /** Differences no driver call can fix on an existing VM (reported, never acted on). */
  notApplicable: string[];
}

/**
 * Hypervisors round a size up to their allocation unit (a `1G` disk, 10^9 bytes, is stored as a
 * whole number of KiB or MiB): a disk up to this much larger than asked is the size asked for,
 * not a shrink to refuse forever.
 */
export const SIZE_ROUNDING_BYTES = 1024 * 1024;

export function compareHardware(desired: CreateSpec, observed: ObservedVM): HardwareDiff {
  const resources: ResourceChange = {};
  if (desired.cpus !== observed.cpus) resources.cpus = desired.cpus;
  if (desired.memoryBytes !== observed.memoryBytes) resources.memoryBytes = desired.memoryBytes;
  // Only a driver with the tags capability reports tags; the hook sends them sorted and unique.
  const wantedTags = desired.tags ?? [];
  if (observed.tags !== undefined && !sameSet(wantedTags, observed.tags)) resources.tags = wantedTags;
  const settings = settingsChange(desired.settings ?? {}, observed.settings ?? {});
  if (settings !== undefined) resources.settings = settings;

  const grow: SizeChange[] = [];
  const shrink: SizeChange[] = [];
  const notApplicable: string[] = [];
  for (const disk of desired.disks) {
    const current = observed.disks.find((candidate) => candidate.name === disk.name);
    if (!current) {
      notApplicable.push(`disk ${disk.name} is not on the VM (disks cannot be added after creation)`);
    } else if (disk.sizeBytes > current.sizeBytes) {
      grow.push({ disk: disk.name, fromBytes: current.sizeBytes, toBytes: disk.sizeBytes });
    } else if (current.sizeBytes - disk.sizeBytes >= SIZE_ROUNDING_BYTES) {
      shrink.push({ disk: disk.name, fromBytes: current.sizeBytes, toBytes: disk.sizeBytes });
    }
    if (current) {
      for (const setting of ['bus', 'cache', 'format', 'datastore'] as const) {
        if (disk[setting] !== undefined && current[setting] !== undefined && disk[setting] !== current[setting]) {
          notApplicable.push(`disk ${disk.name} has ${setting} ${String(current[setting])}, not ${String(disk[setting])}`);
        }
      }
    }
  }
  for (const disk of observed.disks) {
    if (disk.name !== 'root' && !desired.disks.some((candidate) => candidate.name === disk.name)) {
      notApplicable.push(`disk ${disk.name} is not in the spec; disks are never removed`);
    }
  }

  for (const nic of desired.nics) {
    const current = observed.nics.find((candidate) => candidate.name === nic.name);
    if (!current) {
      notApplicable.push(`NIC ${nic.name} is not on the VM (NICs cannot be added after creation)`);
      continue;
    }
    const network = nic.bridge ?? nic.network;
    if (network !== undefined && current.network !== undefined && network !== current.network) {
      notApplicable.push(`NIC ${nic.name} is on ${current.network}, not ${network}`);
    }
    if (nic.vlan !== current.vlan && (nic.vlan !== undefined || current.vlan !== undefined)) {
      notApplicable.push(`NIC ${nic.name} has VLAN ${current.vlan ?? 'none'}, not ${nic.vlan ?? 'none'}`);
    }
    if (nic.mac !== undefined && current.mac !== undefined && nic.mac !== current.mac.toLowerCase()) {
      notApplicable.push(`NIC ${nic.name} has MAC ${current.mac}, not ${nic.mac}`);
    }
    for (const setting of ['model', 'mtu', 'firewall', 'rateLimitMBps'] as const) {
      if (nic[setting] !== undefined && current[setting] !== undefined && nic[setting] !== current[setting]) {
        notApplicable.push(`NIC ${nic.name} has ${setting} ${String(current[setting])}, not ${String(nic[setting])}`);
      }
    }
  }
  for (const nic of observed.nics) {
    if (!desired.nics.some((candidate) => candidate.name === nic.name)) {
      notApplicable.push(`NIC ${nic.name} is not in the spec; NICs are never removed`);
    }
  }

  if (desired.firmware !== undefined && desired.firmware !== observed.firmware) {
    notApplicable.push(`firmware is ${observed.firmware}, not ${desired.firmware}`);
  }
  for (const feature of ['tpm', 'secureBoot', 'nestedVirtualization', 'cpuHotAdd', 'memoryHotAdd'] as const) {
    if (desired.features[feature] !== observed.features[feature]) {
      notApplicable.push(`${feature} is ${observed.features[feature] ? 'on' : 'off'}, not ${desired.features[feature] ? 'on' : 'off'}`);
    }
  }
  return { resources, grow, shrink, notApplicable };
}

/**
 * The settings the spec names whose observed value differs; a setting the driver does not report
 * (undefined observed) is not compared, as for NICs. Undefined when nothing differs.
 */
function settingsChange(desired: VMSettings, observed: VMSettings): VMSettings | undefined {
  const change: VMSettings = {};
  const topology = desired.cpuTopology;
  const seen = observed.cpuTopology;
  if (topology !== undefined && seen !== undefined && (topology.sockets !== seen.sockets || topology.cores !== seen.cores)) change.cpuTopology = { ...topology };
  if (desired.osType !== undefined && observed.osType !== undefined && desired.osType !== observed.osType) change.osType = desired.osType;
  if (desired.bootOrder !== undefined && observed.bootOrder !== undefined && desired.bootOrder.join(',') !== observed.bootOrder.join(',')) {
    change.bootOrder = [...desired.bootOrder];
  }
  for (const flag of ['guestAgent', 'balloon', 'protection'] as const) {
    const wanted = desired[flag];
    if (wanted !== undefined && observed[flag] !== undefined && wanted !== observed[flag]) change[flag] = wanted;
  }
  return Object.keys(change).length > 0 ? change : undefined;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  const left = new Set(a);
  const right = new Set(b);
  return left.size === right.size && [...left].every((item) => right.has(item));
}

/** Splits a CPU/memory change into what the running VM takes online and what needs it powered off. */
export function splitOnline(
  change: ResourceChange,
  observed: ObservedVM,
  capabilities: Capabilities,
): { online: ResourceChange; offline: ResourceChange } {
  const online: ResourceChange = {};
  const offline: ResourceChange = {};
  // Tags are the hypervisor's bookkeeping, not the guest's: set whatever the power state. So is
  // deletion protection; every other setting is the guest's hardware and waits for it to be off.
  if (change.tags !== undefined) online.tags = change.tags;
  if (change.settings !== undefined) {
    const { protection, ...guest } = change.settings;
    if (protection !== undefined) online.settings = { protection };
    if (Object.keys(guest).length > 0) offline.settings = guest;
  }
  if (change.cpus !== undefined) {
    const canOnline =
      observed.features.cpuHotAdd && (change.cpus > observed.cpus ? capabilities.cpuHotAdd : capabilities.cpuHotRemove);
    if (canOnline) online.cpus = change.cpus;
    else offline.cpus = change.cpus;
  }
  if (change.memoryBytes !== undefined) {
    const canOnline =
      observed.features.memoryHotAdd &&
      (change.memoryBytes > observed.memoryBytes ? capabilities.memoryHotAdd : capabilities.memoryHotRemove);
    if (canOnline) online.memoryBytes = change.memoryBytes;
    else offline.memoryBytes = change.memoryBytes;
  }
  return { online, offline };
}

export function isEmptyChange(change: ResourceChange): boolean {
  return change.cpus === undefined && change.memoryBytes === undefined && change.tags === undefined && change.settings === undefined;
}

export function describeChange(change: ResourceChange, observed: ObservedVM): string {
  const parts: string[] = [];
  if (change.cpus !== undefined) parts.push(`cpus ${observed.cpus} → ${change.cpus}`);
  if (change.memoryBytes !== undefined) {
    parts.push(`memory ${formatBytes(observed.memoryBytes)} → ${formatBytes(change.memoryBytes)}`);
  }
  if (change.tags !== undefined) parts.push(`tags [${(observed.tags ?? []).join(', ')}] → [${change.tags.join(', ')}]`);
  const before = observed.settings ?? {};
  const after = change.settings ?? {};
  const show = (value: unknown): string =>
    value === undefined ? 'unset' : Array.isArray(value) ? value.join(',') : typeof value === 'object' && value !== null ? Object.entries(value).map(([k, v]) => `${k} ${String(v)}`).join(' ') : String(value);
  for (const [key, value] of Object.entries(after)) parts.push(`${key} ${show(before[key as keyof VMSettings])} → ${show(value)}`);
  return parts.join(', ');
}

export function describeSize(change: SizeChange): string {
  return `disk ${change.disk} ${formatBytes(change.fromBytes)} → ${formatBytes(change.toBytes)}`;
}
