// delete and clone. Delete removes the domain and only the volumes its metadata names as its own:
// never the base image an overlay points at, never another VM's seed ISO (which
// `undefine --remove-all-storage` would take along).

import { randomUUID } from 'node:crypto';
import {
  ConflictError,
  NotFoundError,
  InvalidSpecError,
  type CloneStarted,
  type CloneTarget,
  type Started,
  type VMRef,
} from '../../contracts/driver.js';
import type { LibvirtContext } from './context.js';
import { domainXml, metadataXml, type DomainDisk, type DomainNic, type VmMetadata } from './domain-xml.js';
import { createSeedVolume, metaData, networkConfig } from './cloudinit.js';
import { createVolume, deleteVolume, volumeExists, volumePath } from './images.js';
import { randomMac, validateIdentity, validateName, volumeNames } from './create.js';
import { diskSizes, domainState, findDomainByIdentity, isActive, listDomains, requireOwned, type OwnedDomain } from './observe.js';

/**
 * Destroys the domain, deletes its own volumes, then undefines it. Undefining last keeps the
 * metadata (the list of volumes) until everything else is gone, so a delete cut short by a
 * deadline or a lost connection is finished by the next call instead of leaking volumes.
 */
export async function deleteVM(ctx: LibvirtContext, ref: VMRef, signal?: AbortSignal): Promise<Started> {
  let domain: OwnedDomain;
  try {
    domain = await requireOwned(ctx, ref, signal);
  } catch (error) {
    if (error instanceof NotFoundError) return {};
    throw error;
  }
  return { task: ctx.tasks.start(domain.uuid, 'delete', () => removeDomain(ctx, domain)) };
}

async function removeDomain(ctx: LibvirtContext, domain: OwnedDomain): Promise<void> {
  if (isActive(await domainState(ctx, domain.uuid))) await ctx.host.virsh(['destroy', '--domain', domain.uuid]);
  const volumes = [...domain.metadata.disks.map((disk) => disk.volume), ...(domain.metadata.seed !== undefined ? [domain.metadata.seed] : [])];
  for (const volume of volumes) await deleteVolume(ctx, volume);
  if (domain.metadata.bases.length > 0) {
    // A frozen base shared with linked clones goes with the last VM that names it.
    const others = (await listDomains(ctx)).filter((other) => other.uuid !== domain.uuid);
    for (const base of domain.metadata.bases) {
      if (!others.some((other) => other.metadata?.bases.includes(base))) await deleteVolume(ctx, base);
    }
  }
  try {
    await ctx.host.virsh(['undefine', '--domain', domain.uuid, '--snapshots-metadata', '--managed-save', '--checkpoints-metadata', ...(domain.uefi ? ['--nvram'] : [])]);
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
  }
}

/**
 * A clone of a powered-off source: a fresh seed with the clone's instance-id and hostname, new
 * MACs, the clone owner's identity tag, and disks that are either full copies of the source's or,
 * for a linked clone, qcow2 overlays on them. An overlay on a disk that keeps changing would be
 * corrupt, so a linked clone first freezes the source's disks: the source moves onto overlays of
 * its own, and the frozen volumes become shared bases of both (metadata `base`), deleted with the
 * last VM that names them.
 */
export async function cloneVM(ctx: LibvirtContext, ref: VMRef, target: CloneTarget, signal?: AbortSignal): Promise<CloneStarted> {
  validateIdentity(target.owner);
  validateName(target.name);
  const source = await requireOwned(ctx, ref, signal);
  const existing = await findDomainByIdentity(ctx, target.owner.uid, signal);
  if (existing !== undefined) return { id: existing };
  if (isActive(await domainState(ctx, source.uuid, signal))) {
    throw new ConflictError(`VM ${source.name} must be powered off to be cloned (its disks are in use)`);
  }
  const names = volumeNames(target.owner.uid);
  const pool = ctx.config.storagePool;
  const sizes = await diskSizes(ctx, source, signal);
  if (target.linked) {
    const snapshots = (await ctx.host.virsh(['snapshot-list', '--domain', source.uuid, '--name'], { signal })).trim();
    if (snapshots !== '') throw new InvalidSpecError(`VM ${source.name} has snapshots; they live in the disks a linked clone would freeze: delete them or make a full clone`);
  }
  const metadata: VmMetadata = { owner: { ...target.owner }, disks: [], nics: [], bases: [...source.metadata.bases], cpuHotAdd: source.metadata.cpuHotAdd, memoryHotAdd: source.metadata.memoryHotAdd };
  const disks: DomainDisk[] = [];
  const created: string[] = [];
  try {
    for (const [index, disk] of source.metadata.disks.entries()) {
      const sourcePath = await volumePath(ctx, disk.volume, signal);
      if (sourcePath === undefined) throw new NotFoundError(`volume ${disk.volume} of ${source.name} not found`);
      const volume = names.disk(index);
      if (await volumeExists(ctx, volume, signal)) await deleteVolume(ctx, volume, signal);
      const size = sizes.get(disk.target) ?? 0;
      await createVolume(ctx, volume, size, { base: { path: sourcePath, format: 'qcow2', virtualSizeBytes: size }, linked: target.linked }, signal);
      created.push(volume);
      if (target.linked) metadata.bases.push(disk.volume);
      disks.push({ target: disk.target, device: 'disk', pool, volume, format: 'qcow2', bus: 'virtio' });
      metadata.disks.push({ name: disk.name, target: disk.target, volume });
    }
    const nics: DomainNic[] = source.nics.map((nic, index) => {
      const mac = randomMac();
      const name = source.metadata.nics.find((entry) => entry.mac === nic.mac)?.name ?? `nic${index}`;
      metadata.nics.push({ name, mac });
      const domainNic: DomainNic = { mac, source: nic.bridge !== undefined ? { bridge: nic.bridge } : { network: nic.network ?? ctx.config.defaultNetwork }, model: nic.model ?? 'virtio' };
      if (nic.vlan !== undefined) domainNic.vlan = nic.vlan;
      return domainNic;
    });
    if (source.metadata.seed !== undefined) {
      if (await volumeExists(ctx, names.seed, signal)) await deleteVolume(ctx, names.seed, signal);
      // The source's user-data is not kept anywhere we can read back safely: the clone boots with
      // an empty cloud-config and its own instance-id, so cloud-init treats it as a new instance.
      await createSeedVolume(
        ctx,
        names.seed,
        { userData: '#cloud-config\n{}\n', metaData: metaData(target), networkConfig: networkConfig(nics.map((nic) => ({ mac: nic.mac }))) },
        signal,
      );
      created.push(names.seed);
      metadata.seed = names.seed;
      disks.push({ target: 'sda', device: 'cdrom', pool, volume: names.seed, format: 'raw', bus: 'sata' });
    }
    if (target.linked) await freezeSource(ctx, source, created, signal);
    const uuid = randomUUID();
    const xml = domainXml({
      uuid,
      name: target.name,
      type: source.type === 'kvm' ? 'kvm' : 'qemu',
      memoryKiB: source.memoryKiB,
      maxMemoryKiB: source.maxMemoryKiB,
      cpus: source.cpus,
      maxCpus: source.maxCpus,
      ...(source.machine !== undefined ? { machine: source.machine } : {}),
      uefi: source.uefi,
      secureBoot: source.secureBoot,
      tpm: source.tpm,
      nested: source.nested,
      disks,
      nics,
      vncListen: ctx.config.vncListen,
      metadata,
    });
    await ctx.host.virsh(['define', '--file', '/dev/stdin'], { stdin: xml, signal });
    return { id: uuid };
  } catch (error) {
    const winner = await findDomainByIdentity(ctx, target.owner.uid).catch(() => undefined);
    if (winner !== undefined) return { id: winner };
    for (const volume of created) await deleteVolume(ctx, volume).catch(() => undefined);
    throw error;
  }
}

/** Moves the source onto fresh overlays of its current disks, which become shared frozen bases. */
async function freezeSource(ctx: LibvirtContext, source: OwnedDomain, created: string[], signal?: AbortSignal): Promise<void> {
  let xml = await ctx.host.virsh(['dumpxml', '--inactive', '--domain', source.uuid], { signal });
  const metadata: VmMetadata = { ...source.metadata, disks: [], bases: [...source.metadata.bases] };
  const suffix = randomUUID().slice(0, 8);
  const sizes = await diskSizes(ctx, source, signal);
  for (const disk of source.metadata.disks) {
    const frozenPath = await volumePath(ctx, disk.volume, signal);
    if (frozenPath === undefined) throw new NotFoundError(`volume ${disk.volume} of ${source.name} not found`);
    const overlay = `virtrigaud-${source.metadata.owner.uid}-${disk.target}-${suffix}.qcow2`;
    const size = sizes.get(disk.target) ?? 0;
    await createVolume(ctx, overlay, size, { base: { path: frozenPath, format: 'qcow2', virtualSizeBytes: size }, linked: true }, signal);
    created.push(overlay);
    // Volume names are ours (UID-derived, no quotes): an exact attribute match is unambiguous.
    xml = xml.replace(`volume='${disk.volume}'`, `volume='${overlay}'`);
    metadata.disks.push({ ...disk, volume: overlay });
    metadata.bases.push(disk.volume);
  }
  xml = xml.replace(/<virtrigaud:vm [\s\S]*?<\/virtrigaud:vm>/, metadataXml(metadata));
  await ctx.host.virsh(['define', '--file', '/dev/stdin'], { stdin: xml, signal });
  // From here the source runs on the overlays: they are no longer ours to clean up on failure.
  created.splice(created.length - source.metadata.disks.length, source.metadata.disks.length);
}
