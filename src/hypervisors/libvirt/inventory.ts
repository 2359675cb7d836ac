// probe and inventory: one host, its storage pool and its networks.

import type { Inventory } from '../../contracts/driver.js';
import type { LibvirtContext } from './context.js';

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

export async function inventory(ctx: LibvirtContext, signal?: AbortSignal): Promise<Inventory> {
  const [nodeinfo, stats, pool, networks] = await Promise.all([
    ctx.host.virsh(['nodeinfo'], { signal }),
    ctx.host.virsh(['domstats', '--vcpu', '--balloon'], { signal }),
    ctx.host.virsh(['pool-info', '--pool', ctx.config.storagePool, '--bytes'], { signal }),
    ctx.host.virsh(['net-list', '--all', '--name'], { signal }),
  ]);
  const node = keyValues(nodeinfo);
  let vms = 0;
  let cpusAllocated = 0;
  let memoryAllocatedBytes = 0;
  for (const line of stats.split('\n')) {
    const trimmed = line.trim();
    if (trimmed.startsWith('Domain:')) vms++;
    const match = /^(vcpu\.current|balloon\.current)=(\d+)$/.exec(trimmed);
    if (match?.[1] === 'vcpu.current') cpusAllocated += Number(match[2]);
    if (match?.[1] === 'balloon.current') memoryAllocatedBytes += Number(match[2]) * 1024;
  }
  const poolInfo = keyValues(pool);
  const capacity = bytes(poolInfo.get('Capacity'));
  return {
    hosts: [
      {
        name: ctx.config.ssh.host,
        cpus: Number(node.get('CPU(s)') ?? 0),
        memoryBytes: bytes(node.get('Memory size')),
        cpusAllocated,
        memoryAllocatedBytes,
        vms,
      },
    ],
    datastores: [{ name: ctx.config.storagePool, capacityBytes: capacity, usedBytes: capacity - bytes(poolInfo.get('Available')) }],
    networks: networks.split('\n').map((line) => line.trim()).filter((line) => line !== ''),
  };
}
