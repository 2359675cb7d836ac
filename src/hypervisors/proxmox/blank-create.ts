// create, a VM from nothing (ImageSpec `blank`): every disk a new, empty volume on its storage, bus,
// format and cache (`<bus><n>: <storage>:<GiB>[,format=…][,cache=…]`), made with the VM by the
// create call (create-call.ts); NICs, settings, firmware and cloud-init follow in the
// configuration step, as for a clone. The VM then boots as its boot order says.

import { InvalidSpecError, type CreateSpec, type Started } from '../../contracts/driver.js';
import { checkBridges } from './create.js';
import { createWithDrives } from './create-call.js';
import { diskStorage, imagesStorage, newVolume, planDiskSlots, requireStorage, wholeGibibytes } from './disk-layout.js';
import { chooseNode } from './placement.js';
import type { ClusterResources } from './resources.js';
import type { ProxmoxContext } from './vm.js';

/**
 * The first step of a blank VM, on the spec's host, else the node chooseNode picks (a full clone's
 * rule). Without node rows (listing nodes needs Sys.Audit) the first of PVE_NODE_SELECTOR.
 */
export async function createBlank(ctx: ProxmoxContext, spec: CreateSpec, resources: ClusterResources, signal?: AbortSignal): Promise<{ id: string } & Started> {
  const fallback = ctx.config.nodeSelector[0] ?? resources.nodes.find((row) => row.online)?.node;
  if (fallback === undefined && spec.placement.host === undefined) {
    throw new InvalidSpecError('no node to create the VM on: name a host in the spec or set PVE_NODE_SELECTOR');
  }
  const node = chooseNode(spec, fallback ?? '', resources, ctx.config.nodeSelector);
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
  await checkBridges(ctx, node, spec, signal);
  return createWithDrives(ctx, spec, node, slots, drives, resources, signal);
}
