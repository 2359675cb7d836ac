// create, from an imported disk (disk-import.ts): a new VM, not a clone, whose root disk
// qemu-server copies from the import volume while it creates the VM (`scsi0:
// <datastore>:0,import-from=<storage>:import/<file>`, create_disks in qemu-server's
// API2/Qemu.pm). It is made in the same two steps as a clone: the create call (a qmcreate task)
// carries the root disk, the owner's placeholder name, the tags and our marker with `state:
// configuring`; the configuration step (configure.ts) then sets CPU, memory, firmware, NICs,
// extra disks and cloud-init exactly as it does for a clone. qemu-server writes only `lock:
// create` before it answers and the rest of the config when the task ends
// (create_and_lock_config), so until then the VMID is tied to its owner as a clone target's is:
// by our pending record here, by our running qmcreate anywhere else (creations.ts).

import {
  BusyError,
  InvalidSpecError,
  UnreachableError,
  type CreateSpec,
  type Started,
} from '../../contracts/driver.js';
import { formatBytes } from '../../contracts/quantity.js';
import { segment } from './client.js';
import { checkBridges, planDiskSlots, withFreshVmid } from './create.js';
import { runningTasksOfOurs } from './creations.js';
import { locateImport } from './disk-import.js';
import { formatMarker, placeholderName, requireMarkerFits, tagsFor, type Marker } from './identity.js';
import { chooseNode } from './placement.js';
import type { ClusterResources } from './resources.js';
import type { ProxmoxContext } from './vm.js';

const CREATE_ATTEMPTS = 5;

// A volume of an import storage (pve-storage Plugin.pm parse_volname, the extensions PVE 8.4
// downloads as disk images); VM template names are DNS names, which never hold `:` or `/`.
const IMPORT_REF = /^[a-z][a-z0-9\-_.]*[a-z0-9]:import\/[A-Za-z0-9\-.+=_]+\.(?:qcow2|raw|vmdk)$/i;

/** Whether an image ref names an imported disk (`<storage>:import/<file>`) rather than a template. */
export function isImportRef(ref: string): boolean {
  return IMPORT_REF.test(ref);
}

/** The node's storage for VM disks with the most room: where a spec that names none gets its root disk. */
function imagesStorage(resources: ClusterResources, node: string): string | undefined {
  return resources.storages
    .filter((row) => row.node === node && row.content.includes('images'))
    .sort((a, b) => b.maxdisk - b.disk - (a.maxdisk - a.disk) || a.storage.localeCompare(b.storage))[0]?.storage;
}

/**
 * The first step of a VM made from the import volume `volid`: on a node that sees the volume
 * (a local import storage holds it on one node only), refused when the volume does not exist.
 * The import copies the disk whatever `fullClone` says.
 */
export async function createFromImport(
  ctx: ProxmoxContext,
  spec: CreateSpec,
  volid: string,
  resources: ClusterResources,
  signal?: AbortSignal,
): Promise<{ id: string } & Started> {
  const where = await locateImport(ctx, resources, volid, signal);
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
  const datastore = spec.storage.datastore ?? ctx.config.defaultStorage ?? imagesStorage(resources, node);
  if (datastore === undefined) throw new InvalidSpecError(`no storage for VM disks on node '${node}': name a datastore in the spec or set PVE_DEFAULT_STORAGE`);
  await checkBridges(ctx, node, spec, signal);

  const rootDrive = `${datastore}:0,import-from=${volid}`;
  const marker: Marker = {
    uid: spec.owner.uid,
    namespace: spec.owner.namespace,
    name: spec.owner.name,
    disks: planDiskSlots(spec, { scsi0: rootDrive }),
    nics: Object.fromEntries(spec.nics.map((nic, index) => [nic.name, `net${index}`])),
    state: 'configuring',
  };
  if (spec.placementRecord !== undefined) marker.placement = { labels: { ...spec.placementRecord.labels }, order: spec.placementRecord.order };
  requireMarkerFits(marker);
  const params = {
    name: placeholderName(spec.owner.uid),
    description: formatMarker(marker),
    tags: tagsFor(spec.owner.uid, spec.tags ?? [], marker.placement),
    scsihw: 'virtio-scsi-single',
    scsi0: rootDrive,
  };
  return createWithFreshId(ctx, node, params, marker, resources, signal);
}

/** Creates with a fresh VMID (withFreshVmid): PVE takes it (`lock: create`) before it answers. */
function createWithFreshId(
  ctx: ProxmoxContext,
  node: string,
  params: Record<string, string>,
  marker: Marker,
  resources: ClusterResources,
  signal?: AbortSignal,
): Promise<{ id: string } & Started> {
  return withFreshVmid(ctx, resources.vms, CREATE_ATTEMPTS, marker, async (vmid) => {
    const task = await ctx.client.post(`/nodes/${segment(node)}/qemu`, { vmid, ...params }, { signal });
    ctx.pending.set(vmid, { marker, since: ctx.directory.now(), ...(typeof task === 'string' ? { task } : {}) });
    return typeof task === 'string' ? { id: String(vmid), task } : { id: String(vmid) };
  }, signal);
}
