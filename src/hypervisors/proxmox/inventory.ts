// probe and inventory: what the Provider status shows and placement reads. One resource list for
// nodes, VMs and storages; one bridge list per node (never per VM).

import type { Inventory } from '../../contracts/driver.js';
import { listBridges } from './network.js';
import { parseResources, type StorageRow } from './resources.js';
import { isRow, str } from './values.js';
import type { ProxmoxContext } from './vm.js';

export async function probe(ctx: ProxmoxContext, signal?: AbortSignal): Promise<{ version: string }> {
  const data = await ctx.client.get('/version', undefined, { signal });
  const row = isRow(data) ? data : {};
  return { version: str(row['version']) ?? str(row['release']) ?? 'unknown' };
}

export async function inventory(ctx: ProxmoxContext, signal?: AbortSignal): Promise<Inventory> {
  const startedAt = ctx.directory.now();
  const resources = parseResources(await ctx.client.get('/cluster/resources', undefined, { signal }));
  ctx.directory.offer(resources.vms, startedAt);

  const vms = resources.vms.filter((vm) => vm.type === 'qemu' && !vm.template);
  const hosts = resources.nodes
    .filter((node) => node.online)
    .map((node) => {
      const mine = vms.filter((vm) => vm.node === node.node);
      return {
        name: node.node,
        cpus: node.maxcpu,
        memoryBytes: node.maxmem,
        cpusAllocated: mine.reduce((sum, vm) => sum + vm.maxcpu, 0),
        memoryAllocatedBytes: mine.reduce((sum, vm) => sum + vm.maxmem, 0),
        vms: mine.length,
      };
    })
    .sort((a, b) => a.name.localeCompare(b.name));

  const bridgeLists = await Promise.all(hosts.map((host) => listBridges(ctx.client, host.name, { signal })));
  const networks = [...new Set(bridgeLists.flatMap((list) => list ?? []))].sort();
  return { hosts, datastores: datastores(resources.storages), networks };
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
