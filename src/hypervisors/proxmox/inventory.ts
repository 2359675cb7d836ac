// probe and inventory: what the Provider status shows and placement reads. One resource list for
// nodes, VMs and storages; one bridge list per node (never per VM), each bounded in time.

import type { Inventory, PlacedVMInfo } from '../../contracts/driver.js';
import { NodeUnreachableError } from './errors.js';
import { ownerFromPlaceholder, ownerFromTags } from './identity.js';
import { listBridges } from './network.js';
import { recordFromTags } from './placement-record.js';
import { CREATION_LOCKS, parseResources, type StorageRow, type VmRow } from './resources.js';
import { withinNodeBound } from './signals.js';
import { isRow, str } from './values.js';
import type { ProxmoxContext } from './vm.js';

export async function probe(ctx: ProxmoxContext, signal?: AbortSignal): Promise<{ version: string }> {
  const data = await ctx.client.get('/version', undefined, { signal });
  const row = isRow(data) ? data : {};
  return { version: str(row['version']) ?? str(row['release']) ?? 'unknown' };
}

/**
 * Hosts, datastores and networks. A node that /cluster/resources lists online may still not answer
 * (its pveproxy forwards and waits, NOTES §1): each node's bridge list gets ctx.nodeTimeoutMs, and a
 * node that misses it, or answers 595/596, is left out of hosts and networks as unavailable rather
 * than failing the whole inventory (and with it the Provider's readiness).
 */
export async function inventory(ctx: ProxmoxContext, signal?: AbortSignal): Promise<Inventory> {
  const startedAt = ctx.directory.now();
  const resources = parseResources(await ctx.client.get('/cluster/resources', undefined, { signal }));
  ctx.directory.offer(resources.vms, startedAt);

  const online = resources.nodes.filter((node) => node.online).sort((a, b) => a.node.localeCompare(b.node));
  const bridgeLists = await Promise.all(online.map((node) => bridgesOf(ctx, node.node, signal)));
  const available = online.filter((_, index) => bridgeLists[index] !== 'unreachable');
  const skipped = online.filter((_, index) => bridgeLists[index] === 'unreachable').map((node) => node.node);
  if (skipped.length > 0) {
    ctx.debug(`inventory left out node ${skipped.map((node) => `'${node}'`).join(', ')}: listed online but not answering`);
    if (available.length === 0) throw new NodeUnreachableError(`no node answers (${skipped.join(', ')})`);
  }

  const vms = resources.vms.filter((vm) => vm.type === 'qemu' && !vm.template);
  const hosts = available.map((node) => {
    const mine = vms.filter((vm) => vm.node === node.node);
    // The disk storages the node sees, shared ones included (each pool once per node).
    const storages = resources.storages.filter((storage) => storage.node === node.node && storage.content.includes('images'));
    const row: Inventory['hosts'][number] = {
      name: node.node,
      cpus: node.maxcpu,
      memoryBytes: node.maxmem,
      cpusAllocated: mine.reduce((sum, vm) => sum + vm.maxcpu, 0),
      memoryAllocatedBytes: mine.reduce((sum, vm) => sum + vm.maxmem, 0),
      vms: mine.length,
      placed: mine.map(placedVM),
      storageBytes: storages.reduce((sum, storage) => sum + storage.maxdisk, 0),
      storageUsedBytes: storages.reduce((sum, storage) => sum + storage.disk, 0),
    };
    // PVE_NODE_SELECTOR bounds every placement policy: a node outside it is listed, never chosen.
    if (ctx.config.nodeSelector.length > 0 && !ctx.config.nodeSelector.includes(node.node)) row.selectable = false;
    return row;
  });
  const networks = [...new Set(bridgeLists.flatMap((list) => (Array.isArray(list) ? list : [])))].sort();
  return { hosts, datastores: datastores(resources.storages), networks };
}

/**
 * A VM as placement sees it, from its resources row alone: owner and record are tags (identity.ts,
 * placement-record.ts), so 10 000 VMs cost no config read. A VM PVE is still making is `settling`
 * and lists no record: a clone target has no tags while `lock: clone` holds, and after that the
 * tags PVE copied from its template or source VM (another owner's, another record) until the
 * configuration step. Meanwhile its placeholder name names its owner, so an owner's own VM never
 * has it wait for itself.
 */
export function placedVM(row: VmRow): PlacedVMInfo {
  const placed: PlacedVMInfo = { labels: {}, cpus: row.maxcpu, memoryBytes: row.maxmem };
  if (row.name !== '') placed.name = row.name;
  const cloned = ownerFromPlaceholder(row.name);
  if (cloned !== undefined) return { ...placed, owner: cloned, settling: true };
  if (row.lock !== undefined && CREATION_LOCKS.has(row.lock)) return { ...placed, settling: true };
  const owner = ownerFromTags(row.tags);
  if (owner !== undefined) placed.owner = owner;
  const record = recordFromTags(row.tags);
  placed.labels = record.labels;
  if (record.order !== undefined) placed.order = record.order;
  return placed;
}

/** The node's bridges; undefined when it does not tell us (no Sys.Audit); 'unreachable' when it does not answer. */
async function bridgesOf(ctx: ProxmoxContext, node: string, signal?: AbortSignal): Promise<string[] | undefined | 'unreachable'> {
  try {
    return await withinNodeBound(node, ctx.nodeTimeoutMs, signal, (bounded) => listBridges(ctx.client, node, { signal: bounded }));
  } catch (error) {
    if (error instanceof NodeUnreachableError) return 'unreachable';
    throw error;
  }
}

/**
 * Disk storages (content `images`), one entry per storage ID: a shared storage appears once per
 * node in the list but is one pool; a local one of the same ID on several nodes is summed.
 */
function datastores(storages: readonly StorageRow[]): Inventory['datastores'] {
  const byId = new Map<string, { capacityBytes: number; usedBytes: number; shared: boolean }>();
  for (const storage of storages) {
    if (!storage.content.includes('images')) continue;
    const entry = byId.get(storage.storage);
    if (entry === undefined) byId.set(storage.storage, { capacityBytes: storage.maxdisk, usedBytes: storage.disk, shared: storage.shared });
    else if (!storage.shared) {
      entry.capacityBytes += storage.maxdisk;
      entry.usedBytes += storage.disk;
    }
  }
  return [...byId.entries()]
    .map(([name, entry]) => ({ name, capacityBytes: entry.capacityBytes, usedBytes: entry.usedBytes }))
    .sort((a, b) => a.name.localeCompare(b.name));
}
