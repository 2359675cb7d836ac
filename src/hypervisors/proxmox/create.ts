// create, step 1: the clone. PVE builds a VM in two tasks: `POST …/clone` (the disks) and
// `POST …/config` (everything else, configure.ts). The clone call carries the owner's placeholder
// name and our description marker (`state: configuring`), but qemu-server writes them only with
// the target's first copied drive: until then the target's config, written by the clone worker
// after it answered, holds nothing but `# qmclone temporary file` and `lock: clone` (clone_vm in
// qemu-server's API2/Qemu.pm; the fake PVE does the same). We keep passing both so they land as
// early as PVE allows. In between, this process attributes the VMID through its pending record
// (vm.ts), and any process waits while our clone task runs (creations.ts), so the owner is never
// reported without a VM while one is being made. describe reports `incomplete` once the clone task
// ends, and the next create continues with step 2. A VM made from an imported disk takes the same
// two steps, its first being a create instead of a clone (import-create.ts).

import { ConflictError, InvalidSpecError, NotFoundError, UnreachableError, type CreateSpec, type Started } from '../../contracts/driver.js';
import { formatBytes } from '../../contracts/quantity.js';
import { metaDataDocument, planCloudInit, requireMetaDataSnippets, requireNoCloud, requireSnippets } from './cloudinit.js';
import { configureVM } from './configure.js';
import { bootDiskSlot, drives, firmwareOf } from './hardware.js';
import { formatMarker, parseMarker, placeholderName, requireMarkerFits, type Marker } from './identity.js';
import { bridgeFor, listBridges } from './network.js';
import { mayBuild, runningCreations, waitForUnidentified } from './creations.js';
import { createFromImport, isImportRef } from './import-create.js';
import { scanOwned } from './observe.js';
import { allocateVmid, chooseNode, chooseTemplate, crossNodeProblem } from './placement.js';
import { CREATION_LOCKS, parseResources, type ClusterResources, type VmRow } from './resources.js';
import { str, type Row } from './values.js';
import { validateCreateSpec } from './validate.js';
import { readConfig, vmPath, type ProxmoxContext } from './vm.js';

const CLONE_ATTEMPTS = 5;
const MAX_SCSI = 30;

export async function createVM(ctx: ProxmoxContext, spec: CreateSpec, signal?: AbortSignal): Promise<{ id: string } & Started> {
  validateCreateSpec(spec);
  const cloudInit = planCloudInit(spec.userData, spec.name);
  requireSnippets(cloudInit, ctx.config);
  requireMetaDataSnippets(spec.metaData, ctx.config);
  // A meta-data document that cannot be composed is refused before anything is cloned.
  metaDataDocument(spec);

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

async function cloneTemplate(ctx: ProxmoxContext, spec: CreateSpec, resources: ClusterResources, signal?: AbortSignal): Promise<{ id: string } & Started> {
  if (spec.image.kind !== 'template') throw new InvalidSpecError('only template images can be cloned');
  const image = spec.image;
  const host = spec.placement.host;
  const preferred = [...(host === undefined ? [] : [host]), ...ctx.config.nodeSelector];
  const template = chooseTemplate(image.ref, resources.vms, preferred);
  if (!image.fullClone && !template.template) throw new InvalidSpecError(`linked clones need a template; VM ${template.vmid} is not one`);
  const templateConfig = await readConfig(ctx, template.node, template.vmid, signal);
  checkTemplate(spec, image.ref, templateConfig);

  // `storage` is refused for linked clones ("parameter 'storage' not allowed for linked clones").
  const storage = image.fullClone ? (spec.storage.datastore ?? ctx.config.defaultStorage) : undefined;
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
  await checkBridges(ctx, node, spec, signal);

  const marker: Marker = {
    uid: spec.owner.uid,
    namespace: spec.owner.namespace,
    name: spec.owner.name,
    disks: planDiskSlots(spec, templateConfig),
    nics: Object.fromEntries(spec.nics.map((nic, index) => [nic.name, `net${index}`])),
    state: 'configuring',
  };
  if (spec.placementRecord !== undefined) marker.placement = { labels: { ...spec.placementRecord.labels }, order: spec.placementRecord.order };
  requireMarkerFits(marker);
  // Both land with the first copied drive, not before (see the top of this file).
  const params = {
    name: placeholderName(spec.owner.uid),
    description: formatMarker(marker),
    full: image.fullClone,
    storage,
    target: node === template.node ? undefined : node,
  };
  return cloneWithFreshId(ctx, template, params, marker, resources.vms, signal);
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

/** Spec disk → slot: the root is the template's boot disk, the others get the next free `scsi<n>`. */
export function planDiskSlots(spec: CreateSpec, templateConfig: Row): Record<string, string> {
  const slots: Record<string, string> = {};
  const root = bootDiskSlot(templateConfig);
  const rootName = spec.disks.find((disk) => disk.root)?.name ?? 'root';
  if (root !== undefined) slots[rootName] = root;
  const used = new Set(drives(templateConfig).map((drive) => drive.slot));
  let next = 0;
  for (const disk of spec.disks.filter((candidate) => !candidate.root)) {
    while (used.has(`scsi${next}`)) next += 1;
    if (next > MAX_SCSI) throw new InvalidSpecError(`no free SCSI slot for disk '${disk.name}'`);
    slots[disk.name] = `scsi${next}`;
    used.add(`scsi${next}`);
  }
  return slots;
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
      throw new InvalidSpecError(`bridge '${bridge}' of NIC '${nic.name}' not found on node '${node}'`);
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
  target: string | undefined;
}

/**
 * Runs `make` with a VMID that was free a moment ago; when another client took it meanwhile, PVE
 * says "already exists" (`make` throws Conflict) and the next one is tried, so concurrent creates
 * end up with distinct VMs. A lost answer may hide a VM being made: whose it would be is remembered.
 */
export async function withFreshVmid(
  ctx: ProxmoxContext,
  known: readonly VmRow[],
  attempts: number,
  marker: Marker,
  make: (vmid: number) => Promise<{ id: string } & Started>,
  signal?: AbortSignal,
): Promise<{ id: string } & Started> {
  let lastConflict: ConflictError | undefined;
  const tried = new Set<number>();
  for (let attempt = 0; attempt < attempts; attempt += 1) {
    const vmid = await allocateVmid(ctx, known, signal, tried);
    tried.add(vmid);
    try {
      return await make(vmid);
    } catch (error) {
      if (error instanceof UnreachableError) ctx.pending.set(vmid, { marker, since: ctx.directory.now() });
      if (!(error instanceof ConflictError)) throw error;
      lastConflict = error;
    } finally {
      ctx.reservedIds.delete(vmid);
      // Whatever happened, the list must be read again: the VM may exist although the answer was lost.
      ctx.directory.invalidate();
    }
  }
  throw new ConflictError(`no free VMID after ${attempts} attempts: ${lastConflict?.message ?? 'taken'}`);
}

/** Clones with a fresh VMID (withFreshVmid). */
export function cloneWithFreshId(
  ctx: ProxmoxContext,
  template: VmRow,
  params: CloneParams,
  marker: Marker,
  known: readonly VmRow[],
  signal?: AbortSignal,
): Promise<{ id: string } & Started> {
  return withFreshVmid(ctx, known, CLONE_ATTEMPTS, marker, async (vmid) => {
    const task = await ctx.client.post(vmPath(template.node, template.vmid, '/clone'), { newid: vmid, ...params }, { signal });
    ctx.pending.set(vmid, { marker, since: ctx.directory.now(), ...(typeof task === 'string' ? { task } : {}) });
    if (await takenByOthers(ctx, template.node, vmid, marker, signal)) {
      // Our clone task will fail with "already exists"; its UPID is of no use to anyone.
      ctx.pending.delete(vmid);
      throw new ConflictError(`VM ${vmid} already exists: taken by another client while we cloned`);
    }
    return typeof task === 'string' ? { id: String(vmid), task } : { id: String(vmid) };
  }, signal);
}
