// Checks on a CreateSpec that need nothing but the spec and the capability flags. Pure: they
// return what is wrong, the caller decides which error to throw.

import { TAG_PATTERN, settingsAsked, type Capabilities, type Capability, type CreateSpec } from '../../contracts/driver.js';
import { displayURL, isValidChecksum } from './image.js';

export interface MissingCapability {
  capability: Capability;
  /** What the spec asked for, in words a user recognizes. */
  feature: string;
}

/** The first thing the spec asks for that the hypervisor cannot do, in spec order. */
export function missingCapability(spec: CreateSpec, firmware: 'bios' | 'uefi', capabilities: Capabilities): MissingCapability | undefined {
  const asked: [boolean, Capability, string][] = [
    [spec.image.kind === 'url', 'imageImport', 'images from a URL'],
    [spec.image.kind === 'template' && !spec.image.fullClone, 'linkedClones', 'linked clones'],
    [spec.userData !== undefined, 'cloudInit', 'cloud-init user-data'],
    [spec.metaData !== undefined, 'cloudInitMetaData', 'cloud-init meta-data'],
    [spec.ignition !== undefined, 'ignition', 'an Ignition config'],
    [(spec.tags ?? []).length > 0, 'tags', 'tags'],
    [spec.extraConfig !== undefined && Object.keys(spec.extraConfig).length > 0, 'extraConfig', 'extra configuration'],
    [
      spec.limits !== undefined &&
        [spec.limits.cpuLimitMHz, spec.limits.cpuReservationMHz, spec.limits.memoryLimitBytes, spec.limits.memoryReservationBytes].some((value) => value !== undefined),
      'resourceLimits',
      'resource limits and reservations',
    ],
    [spec.limits?.cpuShares !== undefined, 'cpuShares', 'CPU shares'],
    [firmware === 'uefi', 'uefi', 'UEFI firmware'],
    [spec.features.secureBoot, 'secureBoot', 'secure boot'],
    [spec.features.tpm, 'tpm', 'a TPM'],
    [spec.features.nestedVirtualization, 'nestedVirtualization', 'nested virtualization'],
    [spec.features.cpuHotAdd, 'cpuHotAdd', 'cpu hot-add'],
    [spec.features.memoryHotAdd, 'memoryHotAdd', 'memory hot-add'],
    [spec.machine !== undefined, 'machineType', 'a machine type'],
    [spec.storage.provisioning === 'thick', 'thickProvisioning', 'thick provisioning'],
    [spec.storage.datastore !== undefined, 'placementDatastore', 'choosing the datastore'],
    [spec.placement.host !== undefined, 'placementHost', 'choosing the host'],
    [spec.placement.folder !== undefined, 'placementFolder', 'choosing the folder'],
    [spec.placement.cluster !== undefined, 'placementCluster', 'choosing the cluster'],
    [spec.placement.resourcePool !== undefined, 'placementResourcePool', 'choosing the resource pool'],
    [spec.placementRecord !== undefined, 'placementPolicy', 'placement policies'],
    ...settingsAsked(spec).map(([capability, what]): [boolean, Capability, string] => [true, capability, what]),
  ];
  for (const nic of spec.nics) {
    asked.push(
      [nic.vlan !== undefined, 'vlan', `a VLAN on NIC '${nic.name}'`],
      [nic.staticIP !== undefined, 'staticIP', `a static IP on NIC '${nic.name}'`],
      [nic.mac !== undefined, 'macAddress', `a fixed MAC on NIC '${nic.name}'`],
      [nic.model !== undefined, 'nicModel', `a NIC model on NIC '${nic.name}'`],
      [nic.firewall === true, 'nicFirewall', `a firewall on NIC '${nic.name}'`],
      [nic.rateLimitMBps !== undefined, 'nicRateLimit', `a rate limit on NIC '${nic.name}'`],
      [nic.mtu !== undefined, 'nicMTU', `an MTU on NIC '${nic.name}'`],
    );
  }
  const missing = asked.find(([wanted, capability]) => wanted && !capabilities[capability]);
  return missing === undefined ? undefined : { capability: missing[1], feature: missing[2] };
}

/** Problems in the spec itself, before looking at the hypervisor's inventory. */
export function specProblem(spec: CreateSpec, firmware: 'bios' | 'uefi'): string | undefined {
  if (spec.name.trim() === '') return 'the VM name is empty';
  if (!Number.isInteger(spec.cpus) || spec.cpus < 1) return `cpus must be a positive integer, not ${spec.cpus}`;
  if (!Number.isSafeInteger(spec.memoryBytes) || spec.memoryBytes <= 0) return 'memory must be a positive number of bytes';
  if (spec.features.secureBoot && firmware !== 'uefi') return 'secure boot needs UEFI firmware';
  const roots = spec.disks.filter((disk) => disk.root);
  if (roots.length > 1) return `only one disk can be the root disk (${roots.map((disk) => disk.name).join(', ')})`;
  const duplicateDisk = firstDuplicate(spec.disks.map((disk) => disk.name));
  if (duplicateDisk !== undefined) return `disk '${duplicateDisk}' is listed twice`;
  if (roots.length === 0 && spec.disks.some((disk) => disk.name === 'root')) {
    return "disk name 'root' is reserved for the boot disk when no disk is marked root";
  }
  const badDisk = spec.disks.find((disk) => !Number.isSafeInteger(disk.sizeBytes) || disk.sizeBytes <= 0);
  if (badDisk !== undefined) return `disk '${badDisk.name}' must have a positive size`;
  const badTag = (spec.tags ?? []).find((tag) => !TAG_PATTERN.test(tag));
  if (badTag !== undefined) return `tag '${badTag}' is not a valid tag`;
  const duplicateNic = firstDuplicate(spec.nics.map((nic) => nic.name));
  if (duplicateNic !== undefined) return `NIC '${duplicateNic}' is listed twice`;
  for (const nic of spec.nics) {
    if (nic.mac !== undefined && !/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(nic.mac)) return `NIC '${nic.name}' has an invalid MAC '${nic.mac}'`;
    if (nic.vlan !== undefined && (!Number.isInteger(nic.vlan) || nic.vlan < 1 || nic.vlan > 4094)) {
      return `NIC '${nic.name}' has an invalid VLAN ${nic.vlan}`;
    }
  }
  if (spec.image.kind === 'url') {
    let protocol: string;
    try {
      protocol = new URL(spec.image.url).protocol;
    } catch {
      return 'the image URL is not a valid URL';
    }
    if (protocol !== 'http:' && protocol !== 'https:') return `the image URL ${displayURL(spec.image.url)} must be http or https`;
    if (spec.image.checksum !== undefined && !isValidChecksum(spec.image.checksum)) {
      return 'the image checksum must be sha256:<64 hex digits> or sha512:<128 hex digits>';
    }
  }
  return undefined;
}

function firstDuplicate(names: string[]): string | undefined {
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) return name;
    seen.add(name);
  }
  return undefined;
}
