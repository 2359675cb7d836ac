// create, a VM from nothing (ImageSpec `blank`): every disk a new, empty volume on its storage, bus,
// format and cache (`<bus><n>: <storage>:<GiB>[,format=…][,cache=…]`), made with the VM by the
// create call (create-call.ts); NICs, settings, firmware and cloud-init follow in the
// configuration step, as for a clone. The VM then boots as its boot order says. A VM installed
// from an ISO (ImageSpec `iso`, image-create.ts) is one too, with the ISO in a CD-ROM drive
// (`ide2: <storage>:iso/<file>,media=cdrom`, or the next IDE/SATA slot its disks leave free).

import { InvalidSpecError, type CreateSpec, type Started } from '../../contracts/driver.js';
import { checkBridges } from './create.js';
import { createWithDrives } from './create-call.js';
import { diskStorage, imagesStorage, newVolume, planDiskSlots, requireStorage, wholeGibibytes } from './disk-layout.js';
import { chooseNode } from './placement.js';
import type { ClusterResources } from './resources.js';
import { cdromSlotFor } from './settings.js';
import type { ProxmoxContext } from './vm.js';

/** An installer ISO (ImageSpec `iso`): its volume, and the nodes that see it. */
export interface InstallerIso {
  volid: string;
  nodes: string[];
}

/**
 * The first step of a blank VM (or of one installed from `installer`, its CD-ROM drive holding
 * the ISO), on the spec's host, else the node chooseNode picks (a full clone's rule) among those
 * that see the ISO. Without node rows (listing nodes needs Sys.Audit) the first of
 * PVE_NODE_SELECTOR.
 */
export async function createBlank(
  ctx: ProxmoxContext,
  spec: CreateSpec,
  resources: ClusterResources,
  signal?: AbortSignal,
  installer?: InstallerIso,
): Promise<{ id: string } & Started> {
  const host = spec.placement.host;
  if (installer !== undefined && host !== undefined && !installer.nodes.includes(host)) {
    throw new InvalidSpecError(`ISO '${installer.volid}' is on node '${installer.nodes.join("', '")}', not on host '${host}'`);
  }
  // With an ISO on a local storage, only the nodes holding it can boot it.
  const eligible = installer === undefined ? resources : { ...resources, nodes: resources.nodes.filter((row) => installer.nodes.includes(row.node)) };
  const fallback = installer?.nodes[0] ?? ctx.config.nodeSelector[0] ?? resources.nodes.find((row) => row.online)?.node;
  if (fallback === undefined && host === undefined) {
    throw new InvalidSpecError('no node to create the VM on: name a host in the spec or set PVE_NODE_SELECTOR');
  }
  const node = chooseNode(spec, fallback ?? '', eligible, ctx.config.nodeSelector);
  if (spec.storage.datastore !== undefined) requireStorage(resources, node, spec.storage.datastore);
  const slots = planDiskSlots(spec, {});
  const drives: Record<string, string> = {};
  for (const disk of spec.disks) {
    const storage = diskStorage(disk, spec, ctx.config.defaultStorage, imagesStorage(resources, node));
    if (storage === undefined) throw new InvalidSpecError(`no storage for disk '${disk.name}' on node '${node}': name a datastore in the spec or set PVE_DEFAULT_STORAGE`);
    requireStorage(resources, node, storage, disk.format);
    const slot = slots[disk.name];
    if (slot !== undefined) drives[slot] = newVolume(storage, wholeGibibytes(disk.sizeBytes), disk);
  }
  if (installer !== undefined) drives[cdromSlotFor(new Set(Object.values(slots)))] = `${installer.volid},media=cdrom`;
  await checkBridges(ctx, node, spec, signal);
  return createWithDrives(ctx, spec, node, slots, drives, resources, signal);
}
