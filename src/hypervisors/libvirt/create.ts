// create: volumes (root overlay, data disks, seed ISO, Ignition config), then one `define` of a
// domain whose <metadata> names the owner (and carries the user's tags and the placement record)
// and whose UUID we chose; a root disk that takes long (a full copy, a download) is filled
// afterwards by a host task. The identity is looked up first, so a repeated create (lost
// response) returns or continues the existing domain; libvirt's unique domain names make two
// concurrent creates define at most one.

import { randomUUID } from 'node:crypto';
import {
  BusyError,
  ConflictError,
  InvalidSpecError,
  UnsupportedError,
  type CreateSpec,
  type Started,
} from '../../contracts/driver.js';
import { MiB } from '../../contracts/quantity.js';
import { parseMetaData } from '../../contracts/guest-data.js';
import { metaData, networkConfig, seedTool } from './cloudinit.js';
import type { LibvirtContext } from './context.js';
import { domainXml, type DomainDisk, type DomainNic, type DomainSpec, type VmMetadata } from './domain-xml.js';
import { copySteps, imageSource, importSteps, installerSource, volumeXml, type ImageSource, type InstallerSource } from './images.js';
import { startCloneCopy } from './clone.js';
import { firmwareFacts } from './host-facts.js';
import { completeStep, validateIdentity, validateName, volumeNames } from './names.js';
import { checkNicHost, domainNic, validateNic } from './nics.js';
import { ignitionFile, ignitionStep, requireIgnition } from './ignition.js';
import { findDomainByIdentity, requireOwned } from './observe.js';
import { validatePlacementRecord } from './placement-record.js';
import { userTags } from './tags.js';
import { taskNoun, type TaskStep } from './tasks.js';

// libvirt's cputune shares: [2, 262144] where the cpu controller is cgroup v1 (refused at define
// otherwise: "Value of cputune 'shares' must be in range [2, 262144]"), [1, 10000] on cgroup v2
// (formatdomain). What both take, so a spec means the same on every host.
const CPU_SHARES = { min: 2, max: 10_000 };

async function domainCapabilities(ctx: LibvirtContext, signal?: AbortSignal): Promise<string> {
  return ctx.host.virsh(['domcapabilities', '--virttype', ctx.config.domainType, '--arch', 'x86_64'], { signal });
}

/**
 * One host per Provider: a placement policy may name it (the hook writes the inventory's host
 * name with the record), nothing else may choose a host, folder, cluster or pool.
 */
function checkPlacement(ctx: LibvirtContext, spec: CreateSpec): void {
  const { host, folder, cluster, resourcePool } = spec.placement;
  if (folder !== undefined || cluster !== undefined || resourcePool !== undefined) {
    throw new UnsupportedError('the libvirt driver serves one host: placement is not supported');
  }
  if (host === undefined) return;
  if (spec.placementRecord === undefined) throw new UnsupportedError('the libvirt driver serves one host: placement is not supported');
  if (host !== ctx.config.ssh.host) throw new UnsupportedError(`this provider serves host ${ctx.config.ssh.host} only, not ${host}`);
}

/** Refuses, before anything is created, what this host cannot give the VM. */
async function checkHostSupport(ctx: LibvirtContext, spec: CreateSpec, signal?: AbortSignal): Promise<void> {
  if (spec.storage.provisioning === 'thick') throw new UnsupportedError('thick provisioning is not supported by the libvirt driver');
  checkPlacement(ctx, spec);
  if (spec.storage.datastore !== undefined && spec.storage.datastore !== ctx.config.storagePool) {
    throw new UnsupportedError(`only the configured storage pool ${ctx.config.storagePool} is used`);
  }
  const limits = spec.limits ?? {};
  if ([limits.cpuLimitMHz, limits.cpuReservationMHz, limits.memoryLimitBytes, limits.memoryReservationBytes].some((value) => value !== undefined)) {
    throw new UnsupportedError('CPU and memory limits and reservations are not supported by the libvirt driver (only CPU shares)');
  }
  if (spec.extraConfig !== undefined && Object.keys(spec.extraConfig).length > 0) throw new UnsupportedError('extra configuration is not supported by the libvirt driver');
  if (spec.features.nestedVirtualization && ctx.config.domainType !== 'kvm') {
    throw new UnsupportedError('nested virtualization needs KVM; this provider runs domains with type qemu (software emulation)');
  }
  await checkNicHost(ctx, spec.nics, signal);
  const needsUefi = spec.firmware === 'uefi' || spec.features.secureBoot;
  if (!needsUefi && !spec.features.tpm) return;
  const firmware = firmwareFacts(await domainCapabilities(ctx, signal));
  if (needsUefi && !firmware.uefi) throw new UnsupportedError('UEFI firmware is not available on this host (install OVMF)');
  if (spec.features.secureBoot && !firmware.secureBoot) {
    throw new UnsupportedError('secure boot firmware is not available on this host (install OVMF with secure boot)');
  }
  if (spec.features.tpm && !firmware.tpm) throw new UnsupportedError('a TPM emulator is not available on this host (install swtpm)');
}

async function nameTaken(ctx: LibvirtContext, name: string, signal?: AbortSignal): Promise<boolean> {
  const out = await ctx.host.virsh(['list', '--all', '--name'], { signal });
  return out.split('\n').some((line) => line === name);
}

/** What a create task needs besides the domain's metadata: where the root disk comes from and the seed's tool. */
interface CreatePlan {
  /** Undefined for an ISO install: the root disk starts empty. */
  source: ImageSource | undefined;
  installer: InstallerSource | undefined;
  /** Undefined while a URL image without a root size in the spec is not downloaded yet. */
  rootBytes: number | undefined;
  seedTool: string | undefined;
}

/**
 * The steps of a create task: the root disk (after the image's download, if it needs one), the
 * data disks, the seed ISO, then the metadata without `pending`. Every step first removes what an
 * earlier, interrupted attempt left, so the task can simply run again. Without a size for the
 * root disk a URL image is only downloaded: create, called again for the still pending VM, does
 * the rest once the image's size is known.
 */
function createSteps(ctx: LibvirtContext, uuid: string, metadata: VmMetadata, spec: CreateSpec, plan: CreatePlan): TaskStep[] {
  const virsh = ['virsh', '-q', '-c', ctx.host.uri];
  const pool = ctx.config.storagePool;
  const [root, ...data] = metadata.disks;
  if (!root) throw new InvalidSpecError('the VM has no root disk');
  const steps: TaskStep[] = [];
  const { source, rootBytes } = plan;
  if (plan.installer?.download !== undefined) steps.push(...importSteps(ctx, plan.installer.download));
  if (source?.kind === 'download') steps.push(...importSteps(ctx, source));
  if (rootBytes === undefined) return steps;
  if (source === undefined) {
    steps.push(['vr_absent_ok', ...virsh, 'vol-delete', '--pool', pool, '--vol', root.volume]);
    steps.push(['vr_stdin', volumeXml(root.volume, rootBytes), ...virsh, 'vol-create', '--pool', pool, '--file', '/dev/stdin']);
  } else {
    const base = source.kind === 'download' ? { path: `${source.directory}/${source.volume}`, format: 'qcow2' } : source.base;
    steps.push(['vr_check_size', base.path, String(rootBytes)]);
    steps.push(...copySteps(ctx, root.volume, rootBytes, base.path, base.format, (spec.image.kind === 'template' || spec.image.kind === 'url') && !spec.image.fullClone));
  }
  for (const disk of data) {
    const size = spec.disks.find((entry) => !entry.root && entry.name === disk.name)?.sizeBytes;
    if (size === undefined) throw new InvalidSpecError(`disk ${disk.name} was removed from the spec while the VM was being created; delete the VM and create it again`);
    steps.push(['vr_absent_ok', ...virsh, 'vol-delete', '--pool', pool, '--vol', disk.volume]);
    steps.push(['vr_stdin', volumeXml(disk.volume, size), ...virsh, 'vol-create', '--pool', pool, '--file', '/dev/stdin']);
  }
  if (metadata.seed !== undefined) {
    if (plan.seedTool === undefined) throw new UnsupportedError('cloud-init needs genisoimage, xorriso or cloud-localds on the libvirt host');
    const seedNics = metadata.nics.map((nic) => {
      const staticIP = spec.nics.find((entry) => entry.name === nic.name)?.staticIP;
      return { mac: nic.mac, ...(staticIP ? { staticIP } : {}) };
    });
    steps.push(['vr_seed', ctx.host.uri, pool, metadata.seed, plan.seedTool, spec.userData ?? '#cloud-config\n{}\n', metaData(spec, spec.metaData), networkConfig(seedNics)]);
  }
  if (metadata.ignition !== undefined) {
    // The domain's fw_cfg entry names the volume: without its config the VM could not start.
    if (spec.ignition === undefined) throw new InvalidSpecError('the Ignition config was removed from the spec while the VM was being created; delete the VM and create it again');
    steps.push(ignitionStep(ctx, metadata.ignition, spec.ignition));
  }
  steps.push(completeStep(ctx, uuid, metadata));
  return steps;
}

/** The root disk's size: the spec's, else the image's (undefined while a URL image is not downloaded yet). */
function rootBytes(spec: CreateSpec, source: ImageSource | undefined): number | undefined {
  if (source === undefined) {
    const size = spec.disks.find((disk) => disk.root)?.sizeBytes;
    if (size === undefined) throw new InvalidSpecError('a VM installed from an ISO needs the size of its root disk');
    return size;
  }
  const imageSize = source.kind === 'ready' ? source.base.virtualSizeBytes : undefined;
  const size = spec.disks.find((disk) => disk.root)?.sizeBytes ?? imageSize;
  if (size !== undefined && imageSize !== undefined && size < imageSize) {
    throw new InvalidSpecError(`the root disk (${size} bytes) cannot be smaller than the image (${imageSize} bytes)`);
  }
  return size;
}

async function createPlan(ctx: LibvirtContext, spec: CreateSpec, signal?: AbortSignal): Promise<CreatePlan> {
  const source = await imageSource(ctx, spec.image, signal);
  const installer = spec.image.kind === 'iso' ? await installerSource(ctx, spec.image, signal) : undefined;
  return { source, installer, rootBytes: rootBytes(spec, source), seedTool: await seedTool(ctx, signal) };
}

/**
 * Continues the owner's domain: nothing to do once complete; otherwise the task that fills its
 * disks, which is the running one when there is one (the same kind answers its ID). The spec is
 * the truth for what the disks are made from: a corrected URL or checksum applies on the next try.
 */
async function continueCreate(ctx: LibvirtContext, uuid: string, spec: CreateSpec, signal?: AbortSignal): Promise<{ id: string } & Started> {
  const domain = await requireOwned(ctx, { id: uuid, owner: spec.owner }, signal);
  const pending = domain.metadata.pending;
  if (!pending) return { id: uuid };
  if (pending.origin === 'clone') return { id: uuid, task: await startCloneCopy(ctx, domain, signal) };
  const running = await ctx.tasks.holder(uuid, signal);
  if (running?.kind === 'create') return { id: uuid, task: running.id };
  if (running) throw new BusyError(`${taskNoun(running.kind)} is running on VM ${domain.name}`);
  const steps = createSteps(ctx, uuid, domain.metadata, spec, await createPlan(ctx, spec, signal));
  return { id: uuid, task: await ctx.tasks.start([{ key: uuid, kind: 'create' }], steps, signal) };
}

/**
 * Defines the domain at once, with `pending` metadata, so its identity is findable before any
 * disk exists; then a host task makes its disks (a full copy or an image download can take
 * hours) and clears `pending`. The call answers with that task; create called again while the
 * VM is pending continues it.
 */
export async function createVM(ctx: LibvirtContext, spec: CreateSpec, signal?: AbortSignal): Promise<{ id: string } & Started> {
  validateIdentity(spec.owner);
  validateName(spec.name);
  if (!Number.isInteger(spec.cpus) || spec.cpus < 1) throw new InvalidSpecError('cpus must be a positive integer');
  if (!Number.isSafeInteger(spec.memoryBytes) || spec.memoryBytes < 64 * MiB || spec.memoryBytes % 1024 !== 0) {
    throw new InvalidSpecError('memory must be at least 64Mi and a whole number of KiB');
  }
  for (const nic of spec.nics) validateNic(nic);
  for (const disk of spec.disks) if (!Number.isSafeInteger(disk.sizeBytes) || disk.sizeBytes <= 0) throw new InvalidSpecError(`disk ${disk.name} must have a positive size`);
  if (spec.disks.filter((disk) => !disk.root).length > 25) throw new InvalidSpecError('at most 26 disks');
  const tags = userTags(spec.tags ?? []);
  const shares = spec.limits?.cpuShares;
  if (shares !== undefined && (!Number.isInteger(shares) || shares < CPU_SHARES.min || shares > CPU_SHARES.max)) {
    throw new InvalidSpecError(`CPU shares must be a whole number from ${CPU_SHARES.min} to ${CPU_SHARES.max} on libvirt, not ${shares}`);
  }
  if (spec.metaData !== undefined) {
    const parsed = parseMetaData(spec.metaData);
    if (!parsed.ok) throw new InvalidSpecError(`cloud-init meta-data ${parsed.problem}`);
  }
  if (spec.ignition !== undefined) requireIgnition(spec.ignition);
  if (spec.placementRecord !== undefined) validatePlacementRecord(spec.placementRecord);

  const existing = await findDomainByIdentity(ctx, spec.owner.uid, signal);
  if (existing !== undefined) return continueCreate(ctx, existing, spec, signal);

  await checkHostSupport(ctx, spec, signal);
  if (await nameTaken(ctx, spec.name, signal)) {
    throw new ConflictError(`a domain named ${JSON.stringify(spec.name)} already exists and does not carry this VM's identity`);
  }
  const plan = await createPlan(ctx, spec, signal);
  const wantsSeed = spec.userData !== undefined || spec.metaData !== undefined || spec.nics.some((nic) => nic.staticIP !== undefined);
  if (wantsSeed && plan.seedTool === undefined) throw new UnsupportedError('cloud-init needs genisoimage, xorriso or cloud-localds on the libvirt host');

  const names = volumeNames(spec.owner.uid);
  const pool = ctx.config.storagePool;
  const metadata: VmMetadata = { owner: { ...spec.owner }, disks: [], nics: [], bases: [], cpuHotAdd: spec.features.cpuHotAdd, memoryHotAdd: spec.features.memoryHotAdd };
  if (tags.length > 0) metadata.tags = tags;
  // In the same define as the owner: whoever can find the VM can read its record.
  if (spec.placementRecord !== undefined) metadata.placement = { labels: { ...spec.placementRecord.labels }, order: spec.placementRecord.order };
  const disks: DomainDisk[] = [];
  const rootSpec = spec.disks.find((disk) => disk.root);
  const ordered = [{ name: rootSpec?.name ?? 'root' }, ...spec.disks.filter((disk) => !disk.root)];
  for (const [index, disk] of ordered.entries()) {
    const volume = names.disk(index);
    const target = `vd${String.fromCharCode(97 + index)}`;
    disks.push({ target, device: 'disk', pool, volume, format: 'qcow2', bus: 'virtio' });
    metadata.disks.push({ name: disk.name, target, volume });
  }
  const nics: DomainNic[] = spec.nics.map((nic) => {
    const made = domainNic(nic, ctx.config);
    metadata.nics.push({ name: nic.name, mac: made.mac });
    return made;
  });
  if (plan.seedTool !== undefined) {
    metadata.seed = names.seed;
    // q35 has no IDE bus; SATA works on both machine types.
    disks.push({ target: 'sda', device: 'cdrom', pool, volume: names.seed, format: 'raw', bus: 'sata' });
  }
  const ignition = spec.ignition !== undefined ? await ignitionFile(ctx, names.ignition, signal) : undefined;
  if (ignition !== undefined) metadata.ignition = names.ignition;
  const memoryKiB = spec.memoryBytes / 1024;
  const uuid = randomUUID();
  const steps = createSteps(ctx, uuid, metadata, spec, plan);
  const domain: DomainSpec = {
    uuid,
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
    metadata: { ...metadata, pending: { origin: 'create', copies: [] } },
  };
  if (plan.installer !== undefined) domain.installer = { file: plan.installer.path, target: 'sdb' };
  if (spec.machine !== undefined) domain.machine = spec.machine;
  if (shares !== undefined) domain.cpuShares = shares;
  if (ignition !== undefined) domain.ignitionFile = ignition;
  try {
    await ctx.host.virsh(['define', '--file', '/dev/stdin'], { stdin: domainXml(domain), signal });
  } catch (error) {
    // Another create for this owner (another replica, a repeated call) defined it first: continue that one.
    const winner = await findDomainByIdentity(ctx, spec.owner.uid).catch(() => undefined);
    if (winner !== undefined) return continueCreate(ctx, winner, spec, signal);
    throw error;
  }
  // From here the domain is the record: a failure below leaves it pending, and create continues it.
  return { id: uuid, task: await ctx.tasks.start([{ key: uuid, kind: 'create' }], steps, signal) };
}
