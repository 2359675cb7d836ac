// create, step 1: the clone. PVE builds a VM in two tasks: `POST …/clone` (the disks) and
// `POST …/config` (everything else, configure.ts). The clone call carries the owner's placeholder
// name and our description marker (`state: configuring`), but qemu-server writes them only with
// the target's first copied drive: until then the target's config, written by the clone worker
// after it answered, holds nothing but `# qmclone temporary file` and `lock: clone` (clone_vm in
// qemu-server's API2/Qemu.pm; the fake PVE does the same). We keep passing both so they land as
// early as PVE allows. In between, this process attributes the VMID through its pending record
// (vm.ts), and any process waits while our clone task runs (creations.ts), so the owner is never
// reported without a VM while one is being made. describe reports `incomplete` once the clone task
// ends, and the next create continues with step 2. A VM made from an imported disk or from
// nothing (a blank VM) takes the same two steps, its first being a create instead of a clone
// (create-call.ts); one from a URL or an ISO URL may first wait for PVE to download the image,
// with no VM yet (image-create.ts).

import { ConflictError, InvalidSpecError, NotFoundError, type CreateSpec, type DiskFormat, type Started } from '../../contracts/driver.js';
import { formatBytes } from '../../contracts/quantity.js';
import { createBlank } from './blank-create.js';
import { metaDataDocument, planCloudInit, requireMetaDataSnippets, requireNoCloud, requireSnippets, type CloudInitPlan } from './cloudinit.js';
import { configureVM } from './configure.js';
import { knownFormat, planDiskSlots, requireDiskStorages, requireStorage, storageTypes } from './disk-layout.js';
import { bootDiskSlot, drives, firmwareOf, machineType } from './hardware.js';
import { creationMarker, formatMarker, parseMarker, placeholderName, type Marker } from './identity.js';
import { bridgeFor, listBridges } from './network.js';
import { mayBuild, runningCreations, waitForUnidentified } from './creations.js';
import { createFromIso, createFromUrl } from './image-create.js';
import { createFromImport, isImportRef } from './import-create.js';
import { scanOwned } from './observe.js';
import { chooseNode, chooseTemplate, crossNodeProblem, vmidChoice, withFreshVmid, type VmidChoice } from './placement.js';
import { CREATION_LOCKS, parseResources, type ClusterResources, type VmRow } from './resources.js';
import { str, type Row } from './values.js';
import { validateCreateSpec } from './validate.js';
import { readConfig, vmPath, type ProxmoxContext } from './vm.js';

const CLONE_ATTEMPTS = 5;

type Created = { id: string } & Started;

export async function createVM(ctx: ProxmoxContext, spec: CreateSpec, signal?: AbortSignal): Promise<Created> {
  validateCreateSpec(spec);
  const cloudInit = planCloudInit(spec.userData, spec.name);
  requireSnippets(cloudInit, ctx.config);
  requireMetaDataSnippets(spec.metaData, ctx.config);
  // A meta-data document that cannot be composed is refused before anything is cloned.
  metaDataDocument(spec);

  const first = await ownersCreation(ctx, spec, cloudInit, signal);
  if ('id' in first) return first;
  try {
    return await createNew(ctx, spec, first.resources, signal);
  } catch (error) {
    // A requested VMID that "already exists" may be this owner's VM, made meanwhile by another
    // runtime (or by an earlier call whose answer was lost): that VM is the answer, never a Conflict.
    if (!(error instanceof ConflictError) || spec.requestedId === undefined) throw error;
    const again = await ownersCreation(ctx, spec, cloudInit, signal);
    if ('id' in again) return again;
    throw error;
  }
}

/**
 * The owner's VM, its create continued where it stopped; else (nothing of the owner's, and nothing
 * of ours being made that might be) the resources a new create starts from.
 */
async function ownersCreation(ctx: ProxmoxContext, spec: CreateSpec, cloudInit: CloudInitPlan, signal?: AbortSignal): Promise<Created | { resources: ClusterResources }> {
  // One unfiltered list: VMs (the identity check must not trust a cached snapshot), nodes and storages.
  const startedAt = ctx.directory.now();
  const resources = parseResources(await ctx.client.get('/cluster/resources', undefined, { signal }));
  ctx.directory.offer(resources.vms, startedAt);

  const scan = await scanOwned(ctx, spec.owner.uid, resources.vms, signal, { name: spec.name });
  const existing = scan.owned;
  if (existing !== undefined) {
    const id = String(existing.row.vmid);
    // A lost response or a retried sync must never make a second VM (DESIGN §5).
    const lock = str(existing.config['lock']);
    if (lock) return { id, ...(CREATION_LOCKS.has(lock) ? await runningCreation(ctx, existing.row, signal) : {}) };
    if (existing.marker.state === 'configuring') {
      return configureVM(ctx, spec, { vmid: existing.row.vmid, node: existing.row.node, config: existing.config, marker: existing.marker }, cloudInit, signal);
    }
    return { id };
  }
  await waitForUnidentified(ctx, scan.unidentified, 'waiting for it before creating another VM', signal);
  return { resources };
}

function createNew(ctx: ProxmoxContext, spec: CreateSpec, resources: ClusterResources, signal?: AbortSignal): Promise<Created> {
  const requested = spec.requestedId;
  // Listed, and neither the owner's nor one of ours still being made (ownersCreation): somebody else's.
  if (requested !== undefined && resources.vms.some((row) => row.vmid === requested)) throw new ConflictError(`VM ${requested} already exists`);
  if (spec.image.kind === 'blank') return createBlank(ctx, spec, resources, signal);
  if (spec.image.kind === 'url') return createFromUrl(ctx, spec, resources, signal);
  if (spec.image.kind === 'iso') return createFromIso(ctx, spec, resources, signal);
  if (spec.image.kind === 'template' && isImportRef(spec.image.ref)) return createFromImport(ctx, spec, spec.image.ref, resources, signal);
  return cloneTemplate(ctx, spec, resources, signal);
}

/**
 * The clone (or create) task still building `row`, so a repeated create can be waited on like the
 * first. This process knows the UPID of its own; otherwise the one running creation of ours that
 * can be building it is it (a qmclone UPID names the source, not the target). Ambiguity gives no task.
 */
async function runningCreation(ctx: ProxmoxContext, row: VmRow, signal?: AbortSignal): Promise<Started> {
  const known = ctx.pending.get(row.vmid)?.task;
  if (known !== undefined) return { task: known };
  const ours = (await runningCreations(ctx, signal)).filter((task) => mayBuild(task, row));
  return ours.length === 1 && ours[0] !== undefined ? { task: ours[0].upid } : {};
}

async function cloneTemplate(ctx: ProxmoxContext, spec: CreateSpec, resources: ClusterResources, signal?: AbortSignal): Promise<Created> {
  if (spec.image.kind !== 'template') throw new InvalidSpecError('only template images can be cloned');
  const image = spec.image;
  const host = spec.placement.host;
  const preferred = [...(host === undefined ? [] : [host]), ...ctx.config.nodeSelector];
  const template = chooseTemplate(image.ref, resources.vms, preferred);
  if (!image.fullClone && !template.template) throw new InvalidSpecError(`linked clones need a template; VM ${template.vmid} is not one`);
  const templateConfig = await readConfig(ctx, template.node, template.vmid, signal);
  checkTemplate(spec, image.ref, templateConfig);
  const root = spec.disks.find((disk) => disk.root);
  const templateRoot = drives(templateConfig).find((drive) => drive.slot === bootDiskSlot(templateConfig));
  if (!image.fullClone) checkLinkedRoot(spec, templateConfig, resources);

  // `storage` and `format` are refused for linked clones ("parameter 'storage' not allowed for linked clones").
  const storage = image.fullClone ? (root?.datastore ?? spec.storage.datastore ?? ctx.config.defaultStorage) : undefined;
  const format = image.fullClone ? root?.format : undefined;
  let node = template.node;
  if (!image.fullClone) {
    if (host !== undefined && host !== template.node) {
      throw new InvalidSpecError(`a linked clone of template '${image.ref}' is made on its node '${template.node}', not '${host}'`);
    }
  } else {
    node = chooseNode(spec, template.node, resources, ctx.config.nodeSelector);
    const problem = node === template.node ? undefined : crossNodeProblem(templateConfig, resources, storage);
    if (problem !== undefined) {
      if (host !== undefined) throw new InvalidSpecError(`cannot clone template '${image.ref}' to host '${host}': ${problem}`);
      node = template.node;
    }
  }
  const rootStorage = storage ?? templateRoot?.storage;
  // The format is checked here because a full clone silently takes the storage's default for a
  // format the storage cannot hold (qemu-server resolve_dst_disk_format).
  if (rootStorage !== undefined && (storage !== undefined || format !== undefined)) requireStorage(resources, node, rootStorage, format);
  requireDiskStorages(resources, node, spec, spec.disks.filter((disk) => !disk.root), ctx.config.defaultStorage, rootStorage);
  await checkBridges(ctx, node, spec, signal);

  const marker = creationMarker(spec, planDiskSlots(spec, templateConfig, machineType(templateConfig)));
  // Both land with the first copied drive, not before (see the top of this file).
  const params = {
    name: placeholderName(spec.owner.uid),
    description: formatMarker(marker),
    full: image.fullClone,
    storage,
    format,
    target: node === template.node ? undefined : node,
  };
  return cloneWithFreshId(ctx, template, params, marker, resources.vms, signal, vmidChoice(spec));
}

/** A linked clone shares the template's root volume: its storage and format are the template's. */
function checkLinkedRoot(spec: CreateSpec, templateConfig: Row, resources: ClusterResources): void {
  const root = spec.disks.find((disk) => disk.root);
  if (root === undefined) return;
  const volume = drives(templateConfig).find((drive) => drive.slot === bootDiskSlot(templateConfig));
  if (root.datastore !== undefined && root.datastore !== volume?.storage) {
    throw new InvalidSpecError(`a linked clone keeps root disk '${root.name}' on the template's storage '${volume?.storage ?? ''}', not '${root.datastore}'`);
  }
  const format: DiskFormat | undefined = knownFormat(volume, storageTypes(resources));
  if (root.format !== undefined && root.format !== format) {
    throw new InvalidSpecError(`a linked clone keeps root disk '${root.name}' in the template's format${format === undefined ? '' : ` (${format})`}, not ${root.format}`);
  }
}

function checkTemplate(spec: CreateSpec, ref: string, config: Row): void {
  const templateFirmware = firmwareOf(config);
  // A template installed for UEFI does not boot with a BIOS (mirrors the simulator).
  if (templateFirmware === 'uefi' && spec.firmware === 'bios') throw new InvalidSpecError(`template '${ref}' boots with UEFI firmware, not bios`);
  if (spec.features.secureBoot && (spec.firmware ?? templateFirmware) !== 'uefi') throw new InvalidSpecError('secure boot needs UEFI firmware');
  requireNoCloud(spec.metaData, config, `template '${ref}'`);
  const rootSlot = bootDiskSlot(config);
  const rootSpec = spec.disks.find((disk) => disk.root);
  if (rootSlot === undefined) {
    if (rootSpec !== undefined) throw new InvalidSpecError(`template '${ref}' has no disk to be the root disk`);
    return;
  }
  const templateBytes = drives(config).find((drive) => drive.slot === rootSlot)?.sizeBytes ?? 0;
  if (rootSpec !== undefined && rootSpec.sizeBytes < templateBytes) {
    throw new InvalidSpecError(
      `root disk ${formatBytes(rootSpec.sizeBytes)} is smaller than template '${ref}' (${formatBytes(templateBytes)}); disks only grow`,
    );
  }
}

/**
 * Refuses a classic bridge (`vmbrN`) the node does not have, before anything is cloned. Other
 * names may be SDN vnets, which the bridge list does not show, and a node that will not list its
 * bridges (no Sys.Audit) is not checked: PVE then refuses at start.
 */
export async function checkBridges(ctx: ProxmoxContext, node: string, spec: CreateSpec, signal?: AbortSignal): Promise<void> {
  if (spec.nics.length === 0) return;
  const bridges = await listBridges(ctx.client, node, { signal });
  if (bridges === undefined) return;
  for (const nic of spec.nics) {
    const bridge = bridgeFor(nic);
    if (/^vmbr\d+$/.test(bridge) && !bridges.includes(bridge)) {
      throw new InvalidSpecError(`bridge '${bridge}' not found on node '${node}' (NIC '${nic.name}')`);
    }
  }
}

/**
 * Create, then verify (DESIGN §5). Someone else may have created `vmid` between our nextid and our
 * clone; depending on where PVE checks, our clone then fails at once or inside its task. A target
 * that is neither being cloned nor carries our marker is somebody else's VM.
 */
async function takenByOthers(ctx: ProxmoxContext, node: string, vmid: number, marker: Marker, signal?: AbortSignal): Promise<boolean> {
  let config: Row;
  try {
    config = await readConfig(ctx, node, vmid, signal);
  } catch (error) {
    // Not (yet) visible on the source node (a clone to another node moves there at the end): no evidence.
    if (error instanceof NotFoundError) return false;
    throw error;
  }
  const owner = parseMarker(config['description']);
  if (owner !== undefined) return owner.uid !== marker.uid;
  return str(config['lock']) !== 'clone';
}

interface CloneParams {
  name: string;
  description: string;
  full: boolean;
  storage: string | undefined;
  format?: DiskFormat | undefined;
  target: string | undefined;
}

/** Clones with a fresh VMID (withFreshVmid). */
export function cloneWithFreshId(
  ctx: ProxmoxContext,
  template: VmRow,
  params: CloneParams,
  marker: Marker,
  known: readonly VmRow[],
  signal?: AbortSignal,
  choice: VmidChoice = {},
): Promise<Created> {
  return withFreshVmid(ctx, known, CLONE_ATTEMPTS, marker, async (vmid) => {
    const task = await ctx.client.post(vmPath(template.node, template.vmid, '/clone'), { newid: vmid, ...params }, { signal });
    ctx.pending.set(vmid, { marker, since: ctx.directory.now(), ...(typeof task === 'string' ? { task } : {}) });
    if (await takenByOthers(ctx, template.node, vmid, marker, signal)) {
      // Our clone task will fail with "already exists"; its UPID is of no use to anyone.
      ctx.pending.delete(vmid);
      throw new ConflictError(`VM ${vmid} already exists: taken by another client while we cloned`);
    }
    return typeof task === 'string' ? { id: String(vmid), task } : { id: String(vmid) };
  }, signal, choice);
}
