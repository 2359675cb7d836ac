// clone: a copy of a powered-off source with a fresh seed (the clone's instance-id and hostname),
// new MACs and the clone owner's identity tag. The source's user tags and Ignition config stay
// behind: the clone's owner sets its own tags, and Ignition runs on a first boot only. A full
// clone is defined first with `pending` metadata and its disks are copied by a host task that
// also locks the source (describe shows it "clone", so nothing powers it on meanwhile; QEMU's
// image locks refuse a start that would write to a disk being read). A linked clone overlays the
// source's disks, which must not change any more: the source is first moved onto overlays of its
// own and its former disks become frozen bases shared by both (metadata `base`), deleted with the
// last VM that names them.

import { randomUUID } from 'node:crypto';
import {
  BusyError,
  ConflictError,
  InvalidSpecError,
  NotFoundError,
  type CloneStarted,
  type CloneTarget,
  type VMRef,
} from '../../contracts/driver.js';
import { createSeedVolume, metaData, networkConfig } from './cloudinit.js';
import type { LibvirtContext } from './context.js';
import { domainXml, metadataXml, type DomainDisk, type DomainNic, type VmMetadata } from './domain-xml.js';
import { copySteps, createVolume, deleteVolume, volumeExists, volumePath } from './images.js';
import { completeStep, frozenOverlayName, randomMac, validateIdentity, validateName, volumeNames } from './names.js';
import { copiedNic } from './nics.js';
import { diskSizes, domainState, findDomainByIdentity, isActive, readDomain, requireCreated, requireOwned, type OwnedDomain } from './observe.js';
import { taskNoun } from './tasks.js';

export async function cloneVM(ctx: LibvirtContext, ref: VMRef, target: CloneTarget, signal?: AbortSignal): Promise<CloneStarted> {
  validateIdentity(target.owner);
  validateName(target.name);
  const source = await requireCreated(ctx, ref, signal);
  const existing = await findDomainByIdentity(ctx, target.owner.uid, signal);
  if (existing !== undefined) {
    // A repeated call (lost response): the clone, and the copy that still fills it.
    const clone = await requireOwned(ctx, { id: existing, owner: target.owner }, signal);
    return clone.metadata.pending ? { id: existing, task: await startCloneCopy(ctx, clone, signal) } : { id: existing };
  }
  if (isActive(await domainState(ctx, source.uuid, signal))) {
    throw new ConflictError(`VM ${source.name} must be powered off to be cloned (its disks are in use)`);
  }
  const running = await ctx.tasks.lock(source.uuid, signal);
  if (running !== undefined) throw new BusyError(`${taskNoun(running)} is running on VM ${source.name}`);
  if (target.linked) {
    const snapshots = (await ctx.host.virsh(['snapshot-list', '--domain', source.uuid, '--name'], { signal })).trim();
    if (snapshots !== '') throw new InvalidSpecError(`VM ${source.name} has snapshots; they live in the disks a linked clone would freeze: delete them or make a full clone`);
  }

  const names = volumeNames(target.owner.uid);
  const pool = ctx.config.storagePool;
  const sizes = await diskSizes(ctx, source, signal);
  // A full copy stands alone (libvirt flattens the backing chain); a linked clone shares the source's bases.
  const bases = new Set(target.linked ? source.metadata.bases : []);
  const metadata: VmMetadata = { owner: { ...target.owner }, disks: [], nics: [], bases: [], cpuHotAdd: source.metadata.cpuHotAdd, memoryHotAdd: source.metadata.memoryHotAdd };
  const copies: { volume: string; from: string; capacityBytes: number }[] = [];
  const disks: DomainDisk[] = [];
  const created: string[] = [];
  // Set before the freeze's define is sent: its answer may be lost after libvirt applied it.
  let freezing = false;
  try {
    freezing = target.linked;
    const frozen = target.linked ? await freezeSource(ctx, source, target.owner.uid, created, signal) : undefined;
    for (const [index, disk] of source.metadata.disks.entries()) {
      const volume = names.disk(index);
      const size = sizes.get(disk.target) ?? 0;
      if (frozen) {
        const base = frozen.get(disk.target);
        if (base === undefined) throw new NotFoundError(`disk ${disk.target} of ${source.name} was not frozen`);
        if (await volumeExists(ctx, volume, signal)) await deleteVolume(ctx, volume, signal);
        await createVolume(ctx, volume, size, { path: base.path, format: 'qcow2', virtualSizeBytes: size }, signal);
        created.push(volume);
        bases.add(base.volume);
      } else {
        const from = await volumePath(ctx, disk.volume, signal);
        if (from === undefined) throw new NotFoundError(`volume ${disk.volume} of ${source.name} not found`);
        copies.push({ volume, from, capacityBytes: size });
      }
      disks.push({ target: disk.target, device: 'disk', pool, volume, format: 'qcow2', bus: 'virtio' });
      metadata.disks.push({ name: disk.name, target: disk.target, volume });
    }
    metadata.bases = [...bases];
    const nics: DomainNic[] = source.nics.map((nic, index) => {
      const mac = randomMac();
      const name = source.metadata.nics.find((entry) => entry.mac === nic.mac)?.name ?? `nic${index}`;
      metadata.nics.push({ name, mac });
      return copiedNic(nic, mac, ctx.config.defaultNetwork);
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
    if (!target.linked) metadata.pending = { origin: 'clone', source: source.uuid, copies };
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
      ...(source.cpuShares !== undefined ? { cpuShares: source.cpuShares } : {}),
      disks,
      nics,
      vncListen: ctx.config.vncListen,
      metadata,
    });
    await ctx.host.virsh(['define', '--file', '/dev/stdin'], { stdin: xml, signal });
    created.length = 0;
    if (target.linked) return { id: uuid };
    return { id: uuid, task: await startCloneCopy(ctx, { uuid, name: target.name, metadata }, signal) };
  } catch (error) {
    const winner = await findDomainByIdentity(ctx, target.owner.uid).catch(() => undefined);
    if (winner !== undefined) return { id: winner };
    const keep = freezing ? await volumesOf(ctx, source.uuid) : new Set<string>();
    for (const volume of created) {
      // A define whose answer was lost may have moved the source onto these: never delete what it uses.
      if (keep === undefined || keep.has(volume)) continue;
      await deleteVolume(ctx, volume).catch(() => undefined);
    }
    throw error;
  }
}

/** The volumes domain `id`'s definition uses; undefined when it cannot be read. */
async function volumesOf(ctx: LibvirtContext, id: string): Promise<Set<string> | undefined> {
  try {
    const domain = await readDomain(ctx, id, undefined, true);
    return new Set(domain.disks.map((disk) => disk.volume).filter((volume): volume is string => volume !== undefined));
  } catch {
    return undefined;
  }
}

/**
 * Starts (or answers the running) task copying a pending full clone's disks. It holds the clone's
 * lock (kind create) and the source's (kind clone); the source must be off.
 */
export async function startCloneCopy(ctx: LibvirtContext, clone: Pick<OwnedDomain, 'uuid' | 'name' | 'metadata'>, signal?: AbortSignal): Promise<string> {
  const pending = clone.metadata.pending;
  if (!pending || pending.origin !== 'clone') throw new InvalidSpecError(`VM ${clone.name} is not a pending clone`);
  const running = await ctx.tasks.holder(clone.uuid, signal);
  if (running?.kind === 'create') return running.id;
  if (running) throw new BusyError(`${taskNoun(running.kind)} is running on VM ${clone.name}`);
  const locks = [{ key: clone.uuid, kind: 'create' }];
  if (pending.source !== undefined) {
    let state;
    try {
      state = await domainState(ctx, pending.source, signal);
    } catch (error) {
      if (error instanceof NotFoundError) throw new InvalidSpecError(`the source of clone ${clone.name} is gone before its disks were copied; delete the clone`);
      throw error;
    }
    if (isActive(state)) throw new ConflictError(`the source of clone ${clone.name} must stay powered off until its disks are copied`);
    locks.push({ key: pending.source, kind: 'clone' });
  }
  const steps = pending.copies.flatMap((copy) => copySteps(ctx, copy.volume, copy.capacityBytes, copy.from, 'qcow2', false));
  steps.push(completeStep(ctx, clone.uuid, clone.metadata));
  return ctx.tasks.start(locks, steps, signal);
}

/**
 * Moves the source onto fresh overlays of its current disks, which become frozen bases; answers
 * each disk's frozen base. A source frozen for this same clone by an earlier, interrupted attempt
 * is not frozen again: its overlays' backing files are the bases.
 */
async function freezeSource(ctx: LibvirtContext, source: OwnedDomain, cloneUid: string, created: string[], signal?: AbortSignal): Promise<Map<string, { path: string; volume: string }>> {
  const original = await ctx.host.virsh(['dumpxml', '--inactive', '--domain', source.uuid], { signal });
  let xml = original;
  const metadata: VmMetadata = { ...source.metadata, disks: [], bases: [...source.metadata.bases] };
  const sizes = await diskSizes(ctx, source, signal);
  const frozen = new Map<string, { path: string; volume: string }>();
  const fresh: string[] = [];
  for (const disk of source.metadata.disks) {
    const overlay = frozenOverlayName(source.metadata.owner.uid, disk.target, cloneUid);
    const currentPath = await volumePath(ctx, disk.volume, signal);
    if (currentPath === undefined) throw new NotFoundError(`volume ${disk.volume} of ${source.name} not found`);
    if (disk.volume === overlay) {
      frozen.set(disk.target, await backingOf(ctx, currentPath, signal));
      metadata.disks.push(disk);
      continue;
    }
    const size = sizes.get(disk.target) ?? 0;
    if (await volumeExists(ctx, overlay, signal)) await deleteVolume(ctx, overlay, signal);
    await createVolume(ctx, overlay, size, { path: currentPath, format: 'qcow2', virtualSizeBytes: size }, signal);
    created.push(overlay);
    fresh.push(overlay);
    // Volume names are ours (UID-derived, no quotes): an exact attribute match is unambiguous.
    xml = xml.replace(`volume='${disk.volume}'`, `volume='${overlay}'`);
    metadata.disks.push({ ...disk, volume: overlay });
    metadata.bases.push(disk.volume);
    frozen.set(disk.target, { path: currentPath, volume: disk.volume });
  }
  if (fresh.length === 0) return frozen;
  xml = xml.replace(/<virtrigaud:vm [\s\S]*?<\/virtrigaud:vm>/, metadataXml(metadata));
  await ctx.host.virsh(['define', '--file', '/dev/stdin'], { stdin: xml, signal });
  // From here the source's definition names the overlays: they are no longer ours to clean up.
  for (const overlay of fresh) created.splice(created.indexOf(overlay), 1);
  // Powered on after the state check, before the define: it runs on (and writes to) the disks
  // that were to be frozen. Put its definition back and give up; the overlays go with the clone's.
  if (isActive(await domainState(ctx, source.uuid, signal))) {
    const live = await readDomain(ctx, source.uuid, signal);
    if (!live.disks.some((disk) => disk.volume !== undefined && fresh.includes(disk.volume))) {
      await ctx.host.virsh(['define', '--file', '/dev/stdin'], { stdin: original, signal });
      created.push(...fresh);
      throw new ConflictError(`VM ${source.name} was powered on while being cloned; clone it again once it is off`);
    }
  }
  return frozen;
}

/** The backing file of a frozen source's overlay, which is the frozen base. */
async function backingOf(ctx: LibvirtContext, overlayPath: string, signal?: AbortSignal): Promise<{ path: string; volume: string }> {
  const info = JSON.parse(await ctx.host.exec(['qemu-img', 'info', '-U', '--output=json', overlayPath], { signal })) as { 'full-backing-filename'?: unknown; 'backing-filename'?: unknown };
  const path = info['full-backing-filename'] ?? info['backing-filename'];
  if (typeof path !== 'string' || path === '') throw new InvalidSpecError(`overlay ${overlayPath} has no backing file`);
  return { path, volume: path.slice(path.lastIndexOf('/') + 1) };
}
