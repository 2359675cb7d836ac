// Reading domains: by UUID (the Driver's VM ID), by identity tag, and the full ObservedVM with
// power state, disk sizes, guest addresses and the VNC console. Names are never trusted: a domain
// is ours only when its <metadata> carries our identity element.

import {
  BusyError,
  ConflictError,
  HypervisorError,
  NotFoundError,
  UnreachableError,
  type ObservedDisk,
  type ObservedVM,
  type PowerState,
  type VMRef,
} from '../../contracts/driver.js';
import { filterGuestAddresses } from '../common/addresses.js';
import type { LibvirtContext } from './context.js';
import { METADATA_NS, parseDomain, parseMetadata, type ParsedDomain, type VmMetadata } from './domain-xml.js';
import { observedNics } from './nics.js';
import { taskNoun } from './tasks.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isDomainId(id: string): boolean {
  return UUID.test(id);
}

/** The domain's XML (live when it runs, or the inactive definition); NotFound for anything but an existing UUID. */
export async function readDomain(ctx: LibvirtContext, id: string, signal?: AbortSignal, inactive = false): Promise<ParsedDomain> {
  // virsh also resolves numeric IDs and names: only a UUID may address a domain here.
  if (!isDomainId(id)) throw new NotFoundError(`no domain with UUID ${id}`);
  const xml = await ctx.host.virsh(['dumpxml', ...(inactive ? ['--inactive'] : []), '--domain', id], { signal });
  try {
    return parseDomain(xml);
  } catch (error) {
    // It exists and cannot be read: never "not ours" or "gone".
    throw new HypervisorError(`the definition of domain ${id} cannot be read: ${error instanceof Error ? error.message : String(error)}`);
  }
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

export interface ListedDomain {
  uuid: string;
  /** The domain's name, when the listing asked for names (placement's listing). */
  name?: string;
  metadata?: VmMetadata;
  /** Why its metadata could not be read: it may be ours. */
  unreadable?: string;
}

// A fixed script; the URI and namespace arrive as positional parameters, never spliced into it.
// A failing `list` fails the script (an empty answer would read as "no VMs"); `metadata` failing
// with "not present" is an answer (not ours), a domain gone meanwhile is skipped, and any other
// failure is reported for that domain. With `placed` as $3 it first prints every domain's vCPUs
// and memory (`domstats`, which names domains, not UUIDs) and lists each domain's name beside
// its UUID, so the inventory reads everything placement needs in this one run.
const LIST_SCRIPT = `set -u
if [ "\${3:-}" = placed ]; then
  printf '#virtrigaud-stats\\n'
  virsh -q -c "$1" domstats --vcpu --balloon || exit 1
  # An older virsh may refuse --uuid together with --name: each name is then asked for below.
  vr_ids=$(virsh -q -c "$1" list --all --uuid --name 2>/dev/null) || vr_ids=$(virsh -q -c "$1" list --all --uuid) || exit 1
else
  vr_ids=$(virsh -q -c "$1" list --all --uuid) || exit 1
fi
printf '%s\\n' "$vr_ids" | while IFS= read -r vr_line; do
  vr_d=\${vr_line%% *}
  [ -n "$vr_d" ] || continue
  vr_name=
  case $vr_line in *" "*) vr_name=\${vr_line#* } ;; esac
  if [ "\${3:-}" = placed ] && [ -z "$vr_name" ]; then
    vr_name=$(virsh -q -c "$1" domname --domain "$vr_d" </dev/null 2>/dev/null) || vr_name=
  fi
  printf '\\n#virtrigaud-domain %s %s\\n' "$vr_d" "$vr_name"
  if vr_out=$(virsh -q -c "$1" metadata --domain "$vr_d" --uri "$2" </dev/null 2>&1); then
    printf '%s\\n' "$vr_out"
  else
    case $vr_out in
      *"metadata not found"*|*"failed to get domain"*) ;;
      *) printf '#virtrigaud-unreadable %s\\n' "$(printf '%s' "$vr_out" | tr '\\n' ' ')" ;;
    esac
  fi
done
`;

const DOMAIN_MARK = '\n#virtrigaud-domain ';

/** What LIST_SCRIPT printed: each domain's header (`<uuid> <name>`) and its metadata. */
export function parseDomainList(out: string): ListedDomain[] {
  const domains: ListedDomain[] = [];
  for (const chunk of out.split(DOMAIN_MARK).slice(1)) {
    const newline = chunk.indexOf('\n');
    const header = newline < 0 ? chunk : chunk.slice(0, newline);
    const space = header.indexOf(' ');
    const uuid = (space < 0 ? header : header.slice(0, space)).trim();
    if (!isDomainId(uuid)) continue;
    const name = space < 0 ? '' : header.slice(space + 1);
    const listed: ListedDomain = name !== '' ? { uuid, name } : { uuid };
    const body = newline < 0 ? '' : chunk.slice(newline + 1);
    const unreadable = /^#virtrigaud-unreadable (.*)$/m.exec(body)?.[1];
    if (unreadable !== undefined) {
      domains.push({ ...listed, unreadable: unreadable.trim() });
      continue;
    }
    try {
      const metadata = parseMetadata(body);
      domains.push(metadata ? { ...listed, metadata } : listed);
    } catch (error) {
      domains.push({ ...listed, unreadable: error instanceof Error ? error.message : String(error) });
    }
  }
  return domains;
}

/** Every domain's UUID with our metadata when it has some: one remote run for all of them. */
export async function listDomains(ctx: LibvirtContext, signal?: AbortSignal): Promise<ListedDomain[]> {
  return parseDomainList(await ctx.host.exec(['sh', '-c', LIST_SCRIPT, 'sh', ctx.host.uri, METADATA_NS], { signal, what: 'listing the domains' }));
}

/** The `domstats` text the placed listing printed before its domains. */
export function statsSection(out: string): string {
  const start = out.indexOf('#virtrigaud-stats\n');
  if (start < 0) return '';
  const end = out.indexOf(DOMAIN_MARK, start);
  return out.slice(start + '#virtrigaud-stats\n'.length, end < 0 ? undefined : end);
}

/**
 * Every domain with its name and metadata, and the `domstats --vcpu --balloon` of them all: one
 * remote run, whatever the number of domains. The statistics are read first, so a domain listed
 * without statistics was defined in between.
 */
export async function listPlacedDomains(ctx: LibvirtContext, signal?: AbortSignal): Promise<{ stats: string; domains: ListedDomain[] }> {
  const out = await ctx.host.exec(['sh', '-c', LIST_SCRIPT, 'sh', ctx.host.uri, METADATA_NS, 'placed'], { signal, what: 'listing the domains' });
  return { stats: statsSection(out), domains: parseDomainList(out) };
}

/** Whose domain this is; undefined only when every domain could be read and none names `uid`. */
export function ownerDomain(domains: readonly ListedDomain[], uid: string): string | undefined {
  const found = domains.find((domain) => domain.metadata?.owner.uid === uid);
  if (found) return found.uuid;
  const unreadable = domains.find((domain) => domain.unreadable !== undefined);
  if (unreadable) throw new UnreachableError(`the metadata of domain ${unreadable.uuid} cannot be read, so it may be this VM: ${unreadable.unreadable ?? ''}`);
  return undefined;
}

export async function findDomainByIdentity(ctx: LibvirtContext, uid: string, signal?: AbortSignal): Promise<string | undefined> {
  return ownerDomain(await listDomains(ctx, signal), uid);
}

/** The owner's VM; a domain undefined between the listing and the read is looked up once more. */
export async function findVMByIdentity(ctx: LibvirtContext, uid: string, signal?: AbortSignal): Promise<ObservedVM | undefined> {
  for (let attempt = 0; ; attempt++) {
    const id = await findDomainByIdentity(ctx, uid, signal);
    if (id === undefined) return undefined;
    try {
      return await describeVM(ctx, id, signal);
    } catch (error) {
      if (!(error instanceof NotFoundError) || attempt > 0) throw error;
    }
  }
}

export type OwnedDomain = ParsedDomain & { metadata: VmMetadata };

/** The domain, verified to carry `ref.owner`'s identity tag; ConflictError otherwise. Pending creations included. */
export async function requireOwned(ctx: LibvirtContext, ref: VMRef, signal?: AbortSignal): Promise<OwnedDomain> {
  const domain = await readDomain(ctx, ref.id, signal, true);
  const metadata = domain.metadata;
  if (!metadata) throw new ConflictError(`domain ${domain.name} (${ref.id}) carries no virtrigaud identity tag; it is not ours to change`);
  if (metadata.owner.uid !== ref.owner.uid) {
    throw new ConflictError(`domain ${domain.name} (${ref.id}) belongs to ${metadata.owner.namespace}/${metadata.owner.name}, not ${ref.owner.namespace}/${ref.owner.name}`);
  }
  return { ...domain, metadata };
}

/** An owned domain that is fully created: its disks are all there. */
export async function requireCreated(ctx: LibvirtContext, ref: VMRef, signal?: AbortSignal): Promise<OwnedDomain> {
  const domain = await requireOwned(ctx, ref, signal);
  if (domain.metadata.pending) throw new BusyError(`VM ${domain.name} is still being created`);
  return domain;
}

/**
 * An owned, created domain no task works on (a delete, a revert, a clone reading its disks):
 * changing it now would race that task, whichever replica started it.
 */
export async function requireIdle(ctx: LibvirtContext, ref: VMRef, signal?: AbortSignal): Promise<OwnedDomain> {
  const [domain, running] = await Promise.all([requireCreated(ctx, ref, signal), ctx.tasks.lock(ref.id, signal)]);
  if (running !== undefined) throw new BusyError(`${taskNoun(running)} is running on VM ${domain.name}`);
  return domain;
}

/**
 * Disk capacities by target, in bytes, from the volumes (`vol-info --bytes`): `domblkinfo` cannot
 * read `type='volume'` disks of an inactive domain ("missing storage backend for 'volume' storage").
 * A volume that does not exist (yet: a copy still running) has no entry; a volume that cannot be
 * read (its pool inactive) fails the call, rather than reading as an empty disk to be grown.
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
        let out: string;
        try {
          out = await ctx.host.virsh(args, { signal });
        } catch (error) {
          if (error instanceof NotFoundError) return;
          throw error;
        }
        const capacity = /^Capacity:\s+(\d+)/m.exec(out)?.[1];
        if (capacity !== undefined) sizes.set(disk.target, Number(capacity));
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

export async function describeVM(ctx: LibvirtContext, id: string, signal?: AbortSignal): Promise<ObservedVM> {
  const domain = await readDomain(ctx, id, signal);
  const [state, lock] = await Promise.all([domainState(ctx, id, signal), ctx.tasks.lock(domain.uuid, signal)]);
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
  if (domain.metadata) {
    vm.owner = { ...domain.metadata.owner };
    vm.tags = [...(domain.metadata.tags ?? [])];
  }
  if (lock !== undefined) vm.lock = lock;
  // Its disks are still being filled and no task does it (it failed, or never started): create continues it.
  else if (domain.metadata?.pending) vm.incomplete = true;
  if (domain.machine !== undefined) vm.machine = domain.machine;
  if (isActive(state)) {
    const url = consoleURL(ctx, domain);
    if (url !== undefined) vm.consoleURL = url;
  }
  return vm;
}
