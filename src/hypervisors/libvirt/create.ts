// create: volumes (root overlay or copy, data disks, seed ISO), then one `define` of a domain
// whose <metadata> names the owner and whose UUID we chose. The identity is looked up first, so
// a repeated create (lost response) returns the existing domain; libvirt's unique domain names
// make two concurrent creates define at most one.

import { randomBytes, randomUUID } from 'node:crypto';
import {
  ConflictError,
  InvalidSpecError,
  UnsupportedError,
  type CreateSpec,
  type Identity,
  type NicSpec,
  type Started,
} from '../../contracts/driver.js';
import { MiB } from '../../contracts/quantity.js';
import { createSeedVolume, metaData, networkConfig, seedTool } from './cloudinit.js';
import type { LibvirtContext } from './context.js';
import { domainXml, type DomainDisk, type DomainNic, type DomainSpec, type VmMetadata } from './domain-xml.js';
import { createVolume, deleteVolume, resolveImage, volumeExists } from './images.js';
import { findDomainByIdentity } from './observe.js';

const UID = /^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/;
const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;

/** Volume names derive from the owner's UID, never from user-chosen names. */
export function volumeNames(uid: string) {
  return {
    disk: (index: number) => (index === 0 ? `virtrigaud-${uid}-root.qcow2` : `virtrigaud-${uid}-disk${index}.qcow2`),
    seed: `virtrigaud-${uid}-seed.iso`,
  };
}

export function validateIdentity(owner: Identity): void {
  if (!UID.test(owner.uid)) throw new InvalidSpecError('owner UID must be alphanumeric with dashes');
}

export function validateName(name: string): void {
  // libvirt refuses '/' in domain names; control characters would only confuse tools reading `virsh list`.
  if (name === '' || name.length > 200 || name.includes('/') || /[\u0000-\u001f\u007f]/.test(name)) {
    throw new InvalidSpecError('the VM name must be 1-200 characters without "/" or control characters');
  }
}

export function randomMac(): string {
  const bytes = randomBytes(3);
  return `52:54:00:${[...bytes].map((byte) => byte.toString(16).padStart(2, '0')).join(':')}`;
}

function nicSource(ctx: LibvirtContext, nic: NicSpec): DomainNic['source'] {
  if (nic.bridge !== undefined) return { bridge: nic.bridge };
  return { network: nic.network ?? ctx.config.defaultNetwork };
}

async function domainCapabilities(ctx: LibvirtContext, signal?: AbortSignal): Promise<string> {
  return ctx.host.virsh(['domcapabilities', '--virttype', ctx.config.domainType, '--arch', 'x86_64'], { signal });
}

/** Refuses, before anything is created, what this host cannot give the VM. */
async function checkHostSupport(ctx: LibvirtContext, spec: CreateSpec, signal?: AbortSignal): Promise<void> {
  if (spec.storage.provisioning === 'thick') throw new UnsupportedError('thick provisioning is not supported by the libvirt driver');
  if (spec.placement.host !== undefined || spec.placement.folder !== undefined || spec.placement.cluster !== undefined || spec.placement.resourcePool !== undefined) {
    throw new UnsupportedError('the libvirt driver serves one host: placement is not supported');
  }
  if (spec.storage.datastore !== undefined && spec.storage.datastore !== ctx.config.storagePool) {
    throw new UnsupportedError(`only the configured storage pool ${ctx.config.storagePool} is used`);
  }
  if (spec.features.nestedVirtualization && ctx.config.domainType !== 'kvm') {
    throw new UnsupportedError('nested virtualization needs KVM; this provider runs domains with type qemu (software emulation)');
  }
  const needsUefi = spec.firmware === 'uefi' || spec.features.secureBoot;
  if (!needsUefi && !spec.features.tpm) return;
  const caps = await domainCapabilities(ctx, signal);
  if (needsUefi && !/<enum name='firmware'>[\s\S]*?<value>efi<\/value>/.test(caps)) {
    throw new UnsupportedError('UEFI firmware is not available on this host (install OVMF)');
  }
  if (spec.features.secureBoot && !/<enum name='secure'>[\s\S]*?<value>yes<\/value>/.test(caps)) {
    throw new UnsupportedError('secure boot firmware is not available on this host (install OVMF with secure boot)');
  }
  if (spec.features.tpm && !/<tpm supported='yes'>[\s\S]*?<value>emulator<\/value>/.test(caps)) {
    throw new UnsupportedError('a TPM emulator is not available on this host (install swtpm)');
  }
}

async function nameTaken(ctx: LibvirtContext, name: string, signal?: AbortSignal): Promise<boolean> {
  const out = await ctx.host.virsh(['list', '--all', '--name'], { signal });
  return out.split('\n').some((line) => line === name);
}

export async function createVM(ctx: LibvirtContext, spec: CreateSpec, signal?: AbortSignal): Promise<{ id: string } & Started> {
  validateIdentity(spec.owner);
  validateName(spec.name);
  if (!Number.isInteger(spec.cpus) || spec.cpus < 1) throw new InvalidSpecError('cpus must be a positive integer');
  if (!Number.isSafeInteger(spec.memoryBytes) || spec.memoryBytes < 64 * MiB || spec.memoryBytes % 1024 !== 0) {
    throw new InvalidSpecError('memory must be at least 64Mi and a whole number of KiB');
  }
  for (const nic of spec.nics) if (nic.mac !== undefined && !MAC.test(nic.mac.toLowerCase())) throw new InvalidSpecError(`NIC ${nic.name}: invalid MAC address`);

  const existing = await findDomainByIdentity(ctx, spec.owner.uid, signal);
  if (existing !== undefined) return { id: existing };

  await checkHostSupport(ctx, spec, signal);
  if (await nameTaken(ctx, spec.name, signal)) {
    throw new ConflictError(`a domain named ${JSON.stringify(spec.name)} already exists and does not carry this VM's identity`);
  }
  const wantsSeed = spec.userData !== undefined || spec.nics.some((nic) => nic.staticIP !== undefined);
  const canSeed = (await seedTool(ctx, signal)) !== undefined;
  if (wantsSeed && !canSeed) throw new UnsupportedError('cloud-init needs genisoimage, xorriso or cloud-localds on the libvirt host');

  const base = await resolveImage(ctx, spec.image, signal);
  const rootSpec = spec.disks.find((disk) => disk.root);
  const rootSize = rootSpec?.sizeBytes ?? base.virtualSizeBytes;
  if (rootSize < base.virtualSizeBytes) {
    throw new InvalidSpecError(`the root disk (${rootSize} bytes) cannot be smaller than the image (${base.virtualSizeBytes} bytes)`);
  }

  const names = volumeNames(spec.owner.uid);
  const pool = ctx.config.storagePool;
  const created: string[] = [];
  const metadata: VmMetadata = { owner: { ...spec.owner }, disks: [], nics: [], bases: [], cpuHotAdd: spec.features.cpuHotAdd, memoryHotAdd: spec.features.memoryHotAdd };
  const disks: DomainDisk[] = [];
  const ordered = [{ name: rootSpec?.name ?? 'root', sizeBytes: rootSize, root: true }, ...spec.disks.filter((disk) => !disk.root)];
  try {
    for (const [index, disk] of ordered.entries()) {
      const volume = names.disk(index);
      const target = `vd${String.fromCharCode(97 + index)}`;
      if (index > 25) throw new InvalidSpecError('at most 26 disks');
      if (!Number.isSafeInteger(disk.sizeBytes) || disk.sizeBytes <= 0) throw new InvalidSpecError(`disk ${disk.name} must have a positive size`);
      // A volume left by an interrupted create for this same owner is replaced: no domain uses it.
      if (await volumeExists(ctx, volume, signal)) await deleteVolume(ctx, volume, signal);
      await createVolume(ctx, volume, disk.sizeBytes, disk.root ? { base, linked: !spec.image.fullClone } : undefined, signal);
      created.push(volume);
      disks.push({ target, device: 'disk', pool, volume, format: 'qcow2', bus: 'virtio' });
      metadata.disks.push({ name: disk.name, target, volume });
    }
    const nics: DomainNic[] = spec.nics.map((nic) => {
      const domainNic: DomainNic = { mac: nic.mac?.toLowerCase() ?? randomMac(), source: nicSource(ctx, nic), model: nic.model ?? 'virtio' };
      if (nic.vlan !== undefined) domainNic.vlan = nic.vlan;
      metadata.nics.push({ name: nic.name, mac: domainNic.mac });
      return domainNic;
    });
    if (canSeed) {
      if (await volumeExists(ctx, names.seed, signal)) await deleteVolume(ctx, names.seed, signal);
      const seedNics = spec.nics.map((nic, index) => ({ mac: nics[index]?.mac ?? '', ...(nic.staticIP ? { staticIP: nic.staticIP } : {}) }));
      await createSeedVolume(ctx, names.seed, { userData: spec.userData ?? '#cloud-config\n{}\n', metaData: metaData(spec), networkConfig: networkConfig(seedNics) }, signal);
      created.push(names.seed);
      metadata.seed = names.seed;
      // q35 has no IDE bus; SATA works on both machine types.
      disks.push({ target: 'sda', device: 'cdrom', pool, volume: names.seed, format: 'raw', bus: 'sata' });
    }
    const memoryKiB = spec.memoryBytes / 1024;
    const domain: DomainSpec = {
      uuid: randomUUID(),
      name: spec.name,
      type: ctx.config.domainType,
      memoryKiB,
      maxMemoryKiB: spec.features.memoryHotAdd ? memoryKiB * 2 : memoryKiB,
      cpus: spec.cpus,
      maxCpus: spec.features.cpuHotAdd ? spec.cpus * 2 : spec.cpus,
      uefi: spec.firmware === 'uefi' || spec.features.secureBoot,
      secureBoot: spec.features.secureBoot,
      tpm: spec.features.tpm,
      nested: spec.features.nestedVirtualization,
      disks,
      nics,
      vncListen: ctx.config.vncListen,
      metadata,
    };
    if (spec.machine !== undefined) domain.machine = spec.machine;
    await ctx.host.virsh(['define', '--file', '/dev/stdin'], { stdin: domainXml(domain), signal });
    return { id: domain.uuid };
  } catch (error) {
    // Someone else's create for this owner won the race for the name: theirs is the VM.
    const winner = await findDomainByIdentity(ctx, spec.owner.uid).catch(() => undefined);
    if (winner !== undefined) return { id: winner };
    for (const volume of created) await deleteVolume(ctx, volume).catch(() => undefined);
    throw error;
  }
}
