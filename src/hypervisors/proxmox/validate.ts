// Checks on a CreateSpec that need nothing but the spec: refused before anything is cloned, so a
// spec that can never work leaves no half-made VM behind. Pure.

import { InvalidSpecError, UnsupportedError, type CreateSpec } from '../../contracts/driver.js';
import { MiB } from '../../contracts/quantity.js';
import { ipconfigValue, nameservers, nicValue } from './network.js';

// PVE's `dns-name` format for VM names (pve-common JSONSchema).
export const DNS_NAME = /^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?\.)*[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/;

function unsupported(feature: string, capability: string): never {
  throw new UnsupportedError(`the Proxmox driver does not support ${feature} (capability '${capability}')`);
}

export function validateCreateSpec(spec: CreateSpec): void {
  if (spec.image.kind === 'url') unsupported('images from a URL', 'imageImport');
  if (spec.storage.provisioning === 'thick') unsupported('thick provisioning', 'thickProvisioning');
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

  const nicNames = new Set<string>();
  for (const nic of spec.nics) {
    if (nicNames.has(nic.name)) throw new InvalidSpecError(`NIC '${nic.name}' is listed twice`);
    nicNames.add(nic.name);
    nicValue(nic, undefined);
    ipconfigValue(nic);
  }
  nameservers(spec.nics);
}
