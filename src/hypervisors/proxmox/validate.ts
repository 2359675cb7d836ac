// Checks on a CreateSpec that need nothing but the spec: refused before anything is cloned, so a
// spec that can never work leaves no half-made VM behind. Pure.

import { InvalidSpecError, TAG_PATTERN, UnsupportedError, type CreateSpec, type ImageSpec, type PlacementRecord, type ResourceLimits } from '../../contracts/driver.js';
import { MiB } from '../../contracts/quantity.js';
import { OWNER_TAG, isIdentityTag } from './identity.js';
import { isIsoRef, isoImageFile, urlImageFile } from './image-download.js';
import { ipconfigValue, nameservers, nicValue } from './network.js';
import { isRecordableOrder } from './placement-record.js';
import { validateSettings } from './settings.js';

// PVE's `dns-name` format for VM names (pve-common JSONSchema).
export const DNS_NAME = /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/;

function unsupported(feature: string, capability: string): never {
  throw new UnsupportedError(`the Proxmox driver does not support ${feature} (capability '${capability}')`);
}

// `cpuunits` takes 1–262144 in the schema, but every PVE since 7 runs cgroup v2, where qemu-server
// clamps it to the cgroup's cpu.weight range 1–10000 (schema description, PVE 8.4 and 9.1): a
// larger weight would be stored and silently not be the one in effect.
export const CPU_UNITS_MIN = 1;
export const CPU_UNITS_MAX = 10_000;

export function validateCreateSpec(spec: CreateSpec): void {
  validateImage(spec.image);
  if (spec.storage.provisioning === 'thick') unsupported('thick provisioning', 'thickProvisioning');
  // qemu-server has no Ignition mechanism (no fw_cfg over the API) and no free-form settings.
  if (spec.ignition !== undefined) unsupported('an Ignition config', 'ignition');
  if (spec.extraConfig !== undefined && Object.keys(spec.extraConfig).length > 0) unsupported('extra configuration', 'extraConfig');
  if (spec.limits !== undefined) validateLimits(spec.limits);
  if (spec.tags !== undefined) validateTags(spec.tags);
  if (spec.placementRecord !== undefined) validatePlacementRecord(spec.placementRecord);
  if (spec.name.trim() === '') throw new InvalidSpecError('the VM name is empty');
  if (!DNS_NAME.test(spec.name)) throw new InvalidSpecError(`VM name '${spec.name}' is not a valid DNS name, which PVE requires`);
  if (!Number.isInteger(spec.cpus) || spec.cpus < 1) throw new InvalidSpecError(`cpus must be a positive integer, not ${spec.cpus}`);
  if (!Number.isSafeInteger(spec.memoryBytes) || spec.memoryBytes < 16 * MiB) throw new InvalidSpecError('memory must be at least 16Mi');
  // PVE counts memory in MiB; anything finer would differ from what describe reports, forever.
  if (spec.memoryBytes % MiB !== 0) throw new InvalidSpecError('memory must be a whole number of Mi (MiB) on Proxmox VE');
  if (spec.features.secureBoot && spec.firmware === 'bios') throw new InvalidSpecError('secure boot needs UEFI firmware');

  const roots = spec.disks.filter((disk) => disk.root);
  if (roots.length > 1) throw new InvalidSpecError(`only one disk can be the root disk (${roots.map((disk) => disk.name).join(', ')})`);
  const names = new Set<string>();
  for (const disk of spec.disks) {
    if (names.has(disk.name)) throw new InvalidSpecError(`disk '${disk.name}' is listed twice`);
    names.add(disk.name);
    if (!Number.isSafeInteger(disk.sizeBytes) || disk.sizeBytes <= 0) throw new InvalidSpecError(`disk '${disk.name}' must have a positive size`);
    // New volumes are sized in (fractional) GiB, allocated in KiB (qemu-server, NOTES §7).
    if (!disk.root && disk.sizeBytes % 1024 !== 0) throw new InvalidSpecError(`disk '${disk.name}' must be a whole number of Ki`);
  }
  if (roots.length === 0 && names.has('root')) throw new InvalidSpecError("disk name 'root' is reserved for the boot disk when no disk is marked root");
  for (const datastore of [spec.storage.datastore, ...spec.disks.map((disk) => disk.datastore)]) {
    if (datastore !== undefined && !STORAGE_ID.test(datastore)) throw new InvalidSpecError(`storage '${datastore}' is not a valid PVE storage ID`);
  }
  validateVmids(spec);
  validateMachineSettings(spec);

  const nicNames = new Set<string>();
  for (const nic of spec.nics) {
    if (nicNames.has(nic.name)) throw new InvalidSpecError(`NIC '${nic.name}' is listed twice`);
    nicNames.add(nic.name);
    nicValue(nic, undefined);
    ipconfigValue(nic);
  }
  nameservers(spec.nics);
}

// PVE's `pve-storage-id` (pve-storage Plugin.pm) and `pve-vmid` (100–999999999) formats.
const STORAGE_ID = /^[a-z][a-z0-9\-_.]*[a-z0-9]$/i;
const VMID_MIN = 100;
const VMID_MAX = 999_999_999;

function isVmid(value: number): boolean {
  return Number.isInteger(value) && value >= VMID_MIN && value <= VMID_MAX;
}

/** requestedId and idRange: PVE VMIDs, a range that holds one, and a requested one inside the range. */
function validateVmids(spec: CreateSpec): void {
  const requested = spec.requestedId;
  if (requested !== undefined && !isVmid(requested)) throw new InvalidSpecError(`VM ID ${requested} is not a PVE VMID (${VMID_MIN}-${VMID_MAX})`);
  const range = spec.idRange;
  if (range === undefined) return;
  if (!isVmid(range.min) || !isVmid(range.max) || range.min > range.max) {
    throw new InvalidSpecError(`VM ID range ${range.min}-${range.max} is not a range of PVE VMIDs (${VMID_MIN}-${VMID_MAX})`);
  }
  if (requested !== undefined && (requested < range.min || requested > range.max)) {
    throw new InvalidSpecError(`VM ID ${requested} is outside the VM ID range ${range.min}-${range.max}`);
  }
}

/** The settings, and what they ask of the rest of the spec. */
function validateMachineSettings(spec: CreateSpec): void {
  const settings = spec.settings;
  if (settings === undefined) return;
  validateSettings(settings);
  const topology = settings.cpuTopology;
  if (topology !== undefined) {
    if (topology.sockets * topology.cores !== spec.cpus) {
      throw new InvalidSpecError(`cpus ${spec.cpus} must be sockets × cores (${topology.sockets} × ${topology.cores} = ${topology.sockets * topology.cores})`);
    }
    // Hot-add plugs `vcpus` below a ceiling of cores × sockets (configure.ts): the VM would not
    // run the topology asked for, so the two are not combined.
    if (spec.features.cpuHotAdd) throw new InvalidSpecError('CPU hot-add cannot be combined with a CPU topology on Proxmox VE: hot-add needs spare cores above the CPUs in use');
  }
  const order = settings.bootOrder ?? [];
  if (order.includes('network') && spec.nics.length === 0) throw new InvalidSpecError("the boot order names 'network', but the VM has no NIC");
  const empty = spec.image.kind === 'blank' || spec.image.kind === 'iso';
  if (order.includes('disk') && empty && spec.disks.length === 0) throw new InvalidSpecError("the boot order names 'disk', but the VM has no disk");
}

/**
 * A URL image names a URL and (optionally) its checksum, which also decide its file name
 * (image-download.ts); an installer ISO exactly one of an ISO PVE has and a URL.
 */
function validateImage(image: ImageSpec): void {
  if (image.kind === 'url') {
    urlImageFile(image.url, image.checksum);
    return;
  }
  if (image.kind !== 'iso') return;
  if ((image.ref === undefined) === (image.url === undefined)) throw new InvalidSpecError('an installer ISO names exactly one of ref (an ISO on a storage) and url');
  if (image.url !== undefined) {
    isoImageFile(image.url, image.checksum);
    return;
  }
  if (image.checksum !== undefined) throw new InvalidSpecError('an ISO checksum goes with its url: an ISO already on a storage is used as it is');
  if (!isIsoRef(image.ref ?? '')) throw new InvalidSpecError(`ISO '${image.ref ?? ''}' is not an ISO volume of Proxmox VE: <storage>:iso/<file>.iso`);
}

function validateLimits(limits: ResourceLimits): void {
  // PVE's `cpulimit` counts host cores, not MHz, and it has no reservations (see driver.ts).
  if ([limits.cpuLimitMHz, limits.cpuReservationMHz, limits.memoryLimitBytes, limits.memoryReservationBytes].some((value) => value !== undefined)) {
    unsupported('resource limits and reservations', 'resourceLimits');
  }
  const shares = limits.cpuShares;
  if (shares !== undefined && (!Number.isInteger(shares) || shares < CPU_UNITS_MIN || shares > CPU_UNITS_MAX)) {
    throw new InvalidSpecError(`cpuShares must be an integer from ${CPU_UNITS_MIN} to ${CPU_UNITS_MAX} on Proxmox VE (cpuunits under cgroup v2), not ${shares}`);
  }
}

/** Any labels encode as tags (placement-record.ts); only an order that would not read back is refused. */
function validatePlacementRecord(record: PlacementRecord): void {
  if (!isRecordableOrder(record.order)) throw new InvalidSpecError(`the placement order must be a number of at least 0, not ${record.order}`);
}

// pve-tag (pve-common JSONSchema): narrower than TAG_PATTERN, with no `:`, `=`, `/` or `@`.
const PVE_TAG = /^[a-z0-9_][a-z0-9_\-+.]*$/i;

/**
 * User tags: what PVE stores as a tag, none that could pass for an identity tag, and no two that
 * PVE's default tag-style (case-insensitive) would merge into one, which would never match again.
 */
export function validateTags(tags: readonly string[]): void {
  const seen = new Map<string, string>();
  for (const tag of tags) {
    if (!TAG_PATTERN.test(tag) || !PVE_TAG.test(tag)) {
      throw new InvalidSpecError(`tag '${tag}' is not a Proxmox VE tag: letters, digits and _ - + . only, up to 128 characters`);
    }
    if (isIdentityTag(tag)) throw new InvalidSpecError(`tag '${tag}' is reserved: '${OWNER_TAG}' and tags starting 'vr-' name the VM's owner`);
    const other = seen.get(tag.toLowerCase());
    if (other !== undefined && other !== tag) throw new InvalidSpecError(`tags '${other}' and '${tag}' differ only in case, which Proxmox VE takes for one tag`);
    seen.set(tag.toLowerCase(), tag);
  }
}
