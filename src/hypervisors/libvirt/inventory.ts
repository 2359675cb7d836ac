// probe and inventory: one host, its storage pool, its networks, and every domain on it as
// placement policies see it.

import type { Inventory, PlacedVMInfo } from '../../contracts/driver.js';
import type { LibvirtContext } from './context.js';
import { listPlacedDomains, type ListedDomain } from './observe.js';

function keyValues(out: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of out.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) map.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  return map;
}

export async function probe(ctx: LibvirtContext, signal?: AbortSignal): Promise<{ version: string }> {
  const info = keyValues(await ctx.host.virsh(['version'], { signal }));
  const library = info.get('Using library') ?? '';
  const hypervisor = info.get('Running hypervisor') ?? '';
  return { version: [library, hypervisor].filter((part) => part !== '').join(', ') || 'libvirt' };
}

const UNIT_BYTES: Record<string, number> = { KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3, TiB: 1024 ** 4, B: 1, bytes: 1 };

function bytes(text: string | undefined): number {
  const match = /^([\d.]+)\s*(\S+)?/.exec(text ?? '');
  if (!match) return 0;
  return Math.round(Number(match[1]) * (UNIT_BYTES[match[2] ?? 'B'] ?? 1));
}

/** One domain's vCPUs and memory as `domstats --vcpu --balloon` reports them (current, not maximum). */
export interface DomainStats {
  cpus: number;
  memoryBytes: number;
}

/** `domstats --vcpu --balloon` output → each domain's statistics, by domain name. */
export function parseDomainStats(out: string): Map<string, DomainStats> {
  const stats = new Map<string, DomainStats>();
  let current: DomainStats | undefined;
  for (const line of out.split('\n')) {
    // virsh prints the name between quotes as it is (a name may hold a quote itself).
    const header = /^Domain: '(.*)'$/.exec(line);
    if (header) {
      current = { cpus: 0, memoryBytes: 0 };
      stats.set(header[1] ?? '', current);
      continue;
    }
    const match = /^(vcpu\.current|balloon\.current)=(\d+)$/.exec(line.trim());
    if (!match || !current) continue;
    if (match[1] === 'vcpu.current') current.cpus = Number(match[2]);
    else current.memoryBytes = Number(match[2]) * 1024;
  }
  return stats;
}

/**
 * A domain as placement sees it: owner and record from our metadata (none for a foreign domain).
 * Settling when what it records cannot be read yet: its metadata is unreadable (it may be ours),
 * or it was defined after the statistics were read (a create's define just now). A create that
 * is still filling its disks is not settling: its one define wrote the owner and the record.
 */
export function placedVM(domain: ListedDomain, stats: ReadonlyMap<string, DomainStats>): PlacedVMInfo {
  const measured = domain.name !== undefined ? stats.get(domain.name) : undefined;
  const placed: PlacedVMInfo = { labels: {}, cpus: measured?.cpus ?? 0, memoryBytes: measured?.memoryBytes ?? 0 };
  if (domain.name !== undefined) placed.name = domain.name;
  if (domain.unreadable !== undefined || measured === undefined) return { ...placed, settling: true };
  const metadata = domain.metadata;
  if (metadata === undefined) return placed;
  placed.owner = metadata.owner.uid;
  if (metadata.placement !== undefined) {
    placed.labels = { ...metadata.placement.labels };
    placed.order = metadata.placement.order;
  }
  return placed;
}

/** The host's allocation: every domain's current vCPUs and memory, running or not. */
function allocated(stats: ReadonlyMap<string, DomainStats>): { vms: number; cpusAllocated: number; memoryAllocatedBytes: number } {
  let cpusAllocated = 0;
  let memoryAllocatedBytes = 0;
  for (const domain of stats.values()) {
    cpusAllocated += domain.cpus;
    memoryAllocatedBytes += domain.memoryBytes;
  }
  return { vms: stats.size, cpusAllocated, memoryAllocatedBytes };
}

/**
 * The one host with every domain on it (placement policies): four host commands whatever the
 * number of domains, the domains' statistics, names and metadata all from one listing run.
 */
export async function inventory(ctx: LibvirtContext, signal?: AbortSignal): Promise<Inventory> {
  const [nodeinfo, listing, pool, networks] = await Promise.all([
    ctx.host.virsh(['nodeinfo'], { signal }),
    listPlacedDomains(ctx, signal),
    ctx.host.virsh(['pool-info', '--pool', ctx.config.storagePool, '--bytes'], { signal }),
    ctx.host.virsh(['net-list', '--all', '--name'], { signal }),
  ]);
  const node = keyValues(nodeinfo);
  const stats = parseDomainStats(listing.stats);
  const poolInfo = keyValues(pool);
  const capacity = bytes(poolInfo.get('Capacity'));
  return {
    hosts: [
      {
        name: ctx.config.ssh.host,
        cpus: Number(node.get('CPU(s)') ?? 0),
        memoryBytes: bytes(node.get('Memory size')),
        ...allocated(stats),
        placed: listing.domains.map((domain) => placedVM(domain, stats)),
      },
    ],
    datastores: [{ name: ctx.config.storagePool, capacityBytes: capacity, usedBytes: capacity - bytes(poolInfo.get('Available')) }],
    networks: networks.split('\n').map((line) => line.trim()).filter((line) => line !== ''),
  };
}
