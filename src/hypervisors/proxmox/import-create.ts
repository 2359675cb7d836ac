// create, from an imported disk (disk-import.ts) or a URL image PVE downloaded (image-create.ts):
// a new VM, not a clone, whose root disk qemu-server copies from the import volume while it
// creates the VM (`scsi0: <datastore>:0,import-from=<storage>:import/<file>`, create_disks in
// qemu-server's API2/Qemu.pm), in the root disk's bus, format and cache when the spec names them.
// Made in the same two steps as a clone, its first being a create (create-call.ts).

import { BusyError, InvalidSpecError, UnreachableError, type CreateSpec, type Started } from '../../contracts/driver.js';
import { formatBytes } from '../../contracts/quantity.js';
import { checkBridges } from './create.js';
import { createWithDrives } from './create-call.js';
import { runningTasksOfOurs } from './creations.js';
import { imagesStorage, newVolume, planDiskSlots, requireDiskStorages, requireStorage } from './disk-layout.js';
import { locateImport } from './disk-import.js';
import { chooseNode } from './placement.js';
import type { ClusterResources } from './resources.js';
import type { ProxmoxContext } from './vm.js';

// A volume of an import storage (pve-storage Plugin.pm parse_volname, the extensions PVE 8.4
// downloads as disk images); VM template names are DNS names, which never hold `:` or `/`.
const IMPORT_REF = /^[a-z][a-z0-9\-_.]*[a-z0-9]:import\/[A-Za-z0-9\-.+=_]+\.(?:qcow2|raw|vmdk)$/i;

/** Whether an image ref names an imported disk (`<storage>:import/<file>`) rather than a template. */
export function isImportRef(ref: string): boolean {
  return IMPORT_REF.test(ref);
}

/** Where a volume is: the nodes that see it, those that did not answer, its length. */
export interface Located {
  nodes: string[];
  unreachable: string[];
  sizeBytes: number;
}

/**
 * The first step of a VM made from the import volume `volid` (`located`: where a caller found it): on a node that sees the volume
 * (a local import storage holds it on one node only), refused when the volume does not exist.
 * The import copies the disk whatever `fullClone` says.
 */
export async function createFromImport(
  ctx: ProxmoxContext,
  spec: CreateSpec,
  volid: string,
  resources: ClusterResources,
  signal?: AbortSignal,
  located?: Located,
): Promise<{ id: string } & Started> {
  const where = located ?? (await locateImport(ctx, resources, volid, signal));
  if (where.nodes.length === 0) {
    if (where.unreachable.length > 0) throw new UnreachableError(`imported disk '${volid}' may be on node '${where.unreachable.join("', '")}', which does not answer`);
    const file = volid.slice(volid.indexOf(':import/') + ':import/'.length);
    const download = (await runningTasksOfOurs(ctx, ['download'], signal)).find((task) => task.id === file);
    if (download !== undefined) throw new BusyError(`imported disk '${volid}' is still being downloaded (task ${download.upid})`);
    throw new InvalidSpecError(`imported disk '${volid}' not found on any node: import the disk again`);
  }
  const host = spec.placement.host;
  if (host !== undefined && !where.nodes.includes(host)) {
    throw new InvalidSpecError(`imported disk '${volid}' is on node '${where.nodes.join("', '")}', not on host '${host}'`);
  }
  const holders = { ...resources, nodes: resources.nodes.filter((node) => where.nodes.includes(node.node)) };
  const node = chooseNode(spec, where.nodes[0] ?? '', holders, ctx.config.nodeSelector);
  const root = spec.disks.find((disk) => disk.root);
  // PVE lists an import file by its length, which a qcow2 file's virtual size is never below.
  if (root !== undefined && root.sizeBytes < where.sizeBytes) {
    throw new InvalidSpecError(`root disk ${formatBytes(root.sizeBytes)} is smaller than imported disk '${volid}' (${formatBytes(where.sizeBytes)}); disks only grow`);
  }
  const datastore = root?.datastore ?? spec.storage.datastore ?? ctx.config.defaultStorage ?? imagesStorage(resources, node);
  if (datastore === undefined) throw new InvalidSpecError(`no storage for VM disks on node '${node}': name a datastore in the spec or set PVE_DEFAULT_STORAGE`);
  requireStorage(resources, node, datastore, root?.format);
  requireDiskStorages(resources, node, spec, spec.disks.filter((disk) => !disk.root), ctx.config.defaultStorage, datastore);
  await checkBridges(ctx, node, spec, signal);

  const rootSlot = `${root?.bus ?? 'scsi'}0`;
  const rootDrive = { [rootSlot]: `${newVolume(datastore, '0', root ?? {})},import-from=${volid}` };
  return createWithDrives(ctx, spec, node, planDiskSlots(spec, rootDrive), rootDrive, resources, signal);
}
