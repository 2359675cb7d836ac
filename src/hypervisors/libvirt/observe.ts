// Reading domains: by UUID (the Driver's VM ID), by identity tag, and the full ObservedVM with
// power state, disk sizes, guest addresses and the VNC console. Names are never trusted: a domain
// is ours only when its <metadata> carries our identity element.

import {
  ConflictError,
  NotFoundError,
  type ObservedDisk,
  type ObservedNic,
  type ObservedVM,
  type PowerState,
  type VMRef,
} from '../../contracts/driver.js';
import { filterGuestAddresses } from '../common/addresses.js';
import type { LibvirtContext } from './context.js';
import { METADATA_NS, parseDomain, parseMetadata, type ParsedDomain, type VmMetadata } from './domain-xml.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isDomainId(id: string): boolean {
  return UUID.test(id);
}

/** The domain's XML (live when it runs, or the inactive definition); NotFound for anything but an existing UUID. */
export async function readDomain(ctx: LibvirtContext, id: string, signal?: AbortSignal, inactive = false): Promise<ParsedDomain> {
  // virsh also resolves numeric IDs and names: only a UUID may address a domain here.
  if (!isDomainId(id)) throw new NotFoundError(`no domain with UUID ${id}`);
  const xml = await ctx.host.virsh(['dumpxml', ...(inactive ? ['--inactive'] : []), '--domain', id], { signal });
  return parseDomain(xml);
}

export type DomainState = 'running' | 'paused' | 'shut off' | 'shutdown' | 'crashed' | 'pmsuspended' | 'idle' | 'blocked' | 'unknown';

export async function domainState(ctx: LibvirtContext, id: string, signal?: AbortSignal): Promise<DomainState> {
  const out = (await ctx.host.virsh(['domstate', '--domain', id], { signal })).trim();
  // "in shutdown" is printed for VIR_DOMAIN_SHUTDOWN
  if (out === 'in shutdown') return 'shutdown';
  return (['running', 'paused', 'shut off', 'crashed', 'pmsuspended', 'idle', 'blocked'] as const).find((state) => state === out) ?? 'unknown';
}

export function powerStateOf(state: DomainState): PowerState {
  switch (state) {
    case 'running':
    case 'idle':
    case 'blocked':
    case 'shutdown':
      return 'On';
    case 'paused':
    case 'pmsuspended':
      return 'Suspended';
    case 'shut off':
    case 'crashed':
      return 'Off';
    default:
      return 'Unknown';
  }
}

export function isActive(state: DomainState): boolean {
  return state !== 'shut off' && state !== 'crashed' && state !== 'unknown';
}

/** Every domain's UUID and name with our metadata when it has some: one remote run for all of them. */
export async function listDomains(ctx: LibvirtContext, signal?: AbortSignal): Promise<{ uuid: string; metadata?: VmMetadata }[]> {
  // A fixed script; the URI and namespace arrive as positional parameters, never spliced into it.
  // `metadata` fails for a domain without our element: that is an answer, not an error.
  const script =
    'for d in $(virsh -q -c "$1" list --all --uuid); do printf "\\n#virtrigaud-domain %s\\n" "$d"; ' +
    'virsh -q -c "$1" metadata --domain "$d" --uri "$2" 2>/dev/null || true; done';
  const out = await ctx.host.exec(['sh', '-c', script, 'sh', ctx.host.uri, METADATA_NS], { signal });
  const domains: { uuid: string; metadata?: VmMetadata }[] = [];
  for (const chunk of out.split('\n#virtrigaud-domain ').slice(1)) {
    const newline = chunk.indexOf('\n');
    const uuid = (newline < 0 ? chunk : chunk.slice(0, newline)).trim();
    if (!isDomainId(uuid)) continue;
    const metadata = newline < 0 ? undefined : parseMetadata(chunk.slice(newline + 1));
    domains.push(metadata ? { uuid, metadata } : { uuid });
  }
  return domains;
}

export async function findDomainByIdentity(ctx: LibvirtContext, uid: string, signal?: AbortSignal): Promise<string | undefined> {
  const domains = await listDomains(ctx, signal);
  return domains.find((domain) => domain.metadata?.owner.uid === uid)?.uuid;
}

export type OwnedDomain = ParsedDomain & { metadata: VmMetadata };

/** The domain, verified to carry `ref.owner`'s identity tag; ConflictError otherwise. */
export async function requireOwned(ctx: LibvirtContext, ref: VMRef, signal?: AbortSignal): Promise<OwnedDomain> {
  const domain = await readDomain(ctx, ref.id, signal, true);
  const metadata = domain.metadata;
  if (!metadata) throw new ConflictError(`domain ${domain.name} (${ref.id}) carries no virtrigaud identity tag; it is not ours to change`);
  if (metadata.owner.uid !== ref.owner.uid) {
    throw new ConflictError(`domain ${domain.name} (${ref.id}) belongs to ${metadata.owner.namespace}/${metadata.owner.name}, not ${ref.owner.namespace}/${ref.owner.name}`);
  }
  return { ...domain, metadata };
}

/**
 * Disk capacities by target, in bytes, from the volumes (`vol-info --bytes`): `domblkinfo` cannot
 * read `type='volume'` disks of an inactive domain ("missing storage backend for 'volume' storage").
 */
export async function diskSizes(ctx: LibvirtContext, domain: ParsedDomain, signal?: AbortSignal): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  await Promise.all(
    domain.disks
      .filter((disk) => disk.device === 'disk')
      .map(async (disk) => {
        const args =
          disk.pool !== undefined && disk.volume !== undefined
            ? ['vol-info', '--pool', disk.pool, '--vol', disk.volume, '--bytes']
            : disk.file !== undefined
              ? ['vol-info', '--vol', disk.file, '--bytes']
              : undefined;
        if (args === undefined) return;
        const result = await ctx.host.virshResult(args, { signal });
        const capacity = /^Capacity:\s+(\d+)/m.exec(result.stdout)?.[1];
        if (result.code === 0 && capacity !== undefined) sizes.set(disk.target, Number(capacity));
      }),
  );
  return sizes;
}

function parseAddresses(out: string): string[] {
  const addresses: string[] = [];
  for (const line of out.split('\n')) {
    const fields = line.trim().split(/\s+/);
    // Name  MAC  Protocol  Address (continuation lines repeat '-' for name and MAC)
    const address = fields[3];
    if (fields.length >= 4 && (fields[2] === 'ipv4' || fields[2] === 'ipv6') && address !== undefined) addresses.push(address);
  }
  return addresses;
}

/** Guest addresses: the guest agent first, then the DHCP leases of libvirt networks. */
export async function guestAddresses(ctx: LibvirtContext, id: string, signal?: AbortSignal): Promise<string[]> {
  const agent = await ctx.host.virshResult(['domifaddr', '--domain', id, '--source', 'agent'], { signal });
  if (agent.code === 0) {
    const ips = filterGuestAddresses(parseAddresses(agent.stdout));
    if (ips.length > 0) return ips;
  }
  const lease = await ctx.host.virshResult(['domifaddr', '--domain', id, '--source', 'lease'], { signal });
  return lease.code === 0 ? filterGuestAddresses(parseAddresses(lease.stdout)) : [];
}

function consoleURL(ctx: LibvirtContext, domain: ParsedDomain): string | undefined {
  if (!domain.vnc) return undefined;
  const listen = domain.vnc.listen;
  // A wildcard listen address is reachable through the host's own name.
  const host = listen === undefined || listen === '0.0.0.0' || listen === '::' ? ctx.config.ssh.host : listen;
  return `vnc://${host.includes(':') ? `[${host}]` : host}:${domain.vnc.port}`;
}

export function observedDisks(domain: ParsedDomain, sizes: Map<string, number>): ObservedDisk[] {
  return domain.disks
    .filter((disk) => disk.device === 'disk')
    .map((disk) => {
      const name = domain.metadata?.disks.find((entry) => entry.target === disk.target)?.name ?? disk.target;
      const observed: ObservedDisk = { name, sizeBytes: sizes.get(disk.target) ?? 0, provisioning: 'thin' };
      if (disk.pool !== undefined) observed.datastore = disk.pool;
      return observed;
    });
}

function observedNics(domain: ParsedDomain): ObservedNic[] {
  return domain.nics.map((nic, index) => {
    const name = domain.metadata?.nics.find((entry) => entry.mac === nic.mac)?.name ?? `nic${index}`;
    const observed: ObservedNic = { name, mac: nic.mac };
    const network = nic.network ?? nic.bridge;
    if (network !== undefined) observed.network = network;
    if (nic.vlan !== undefined) observed.vlan = nic.vlan;
    if (nic.model !== undefined) observed.model = nic.model;
    return observed;
  });
}

export async function describeVM(ctx: LibvirtContext, id: string, signal?: AbortSignal): Promise<ObservedVM> {
  const domain = await readDomain(ctx, id, signal);
  const state = await domainState(ctx, id, signal);
  const [sizes, ips] = await Promise.all([
    diskSizes(ctx, domain, signal),
    state === 'running' ? guestAddresses(ctx, id, signal) : Promise.resolve([]),
  ]);
  const vm: ObservedVM = {
    id: domain.uuid,
    name: domain.name,
    powerState: powerStateOf(state),
    cpus: domain.cpus,
    memoryBytes: domain.memoryKiB * 1024,
    firmware: domain.uefi ? 'uefi' : 'bios',
    features: {
      tpm: domain.tpm,
      secureBoot: domain.secureBoot,
      nestedVirtualization: domain.nested,
      cpuHotAdd: domain.metadata?.cpuHotAdd ?? domain.maxCpus > domain.cpus,
      memoryHotAdd: domain.metadata?.memoryHotAdd ?? domain.maxMemoryKiB > domain.memoryKiB,
    },
    disks: observedDisks(domain, sizes),
    nics: observedNics(domain),
    ips,
    host: ctx.config.ssh.host,
  };
  if (domain.metadata) vm.owner = { ...domain.metadata.owner };
  const lock = ctx.tasks.lock(domain.uuid);
  if (lock !== undefined) vm.lock = lock;
  if (domain.machine !== undefined) vm.machine = domain.machine;
  if (isActive(state)) {
    const url = consoleURL(ctx, domain);
    if (url !== undefined) vm.consoleURL = url;
  }
  return vm;
}
