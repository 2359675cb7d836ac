// Read-only verbs: describe (a VM by VMID) and findByIdentity (a VM by owner UID). Both resolve
// nodes from the shared resources snapshot, then read `status/current` and `config?current=1`,
// and the guest agent's addresses when it can answer.

import { DriverError, UnreachableError, type ObservedDisk, type ObservedNic, type ObservedVM, type PowerState } from '../../contracts/driver.js';
import { filterGuestAddresses } from '../common/addresses.js';
import {
  agentEnabled,
  bootDiskSlot,
  disks,
  featuresOf,
  firmwareOf,
  machineType,
  nics,
  observedCpus,
  observedMemoryBytes,
} from './hardware.js';
import { waitForUnidentified } from './creations.js';
import { NodeUnreachableError } from './errors.js';
import { OWNER_TAG, hasOwnerTag, isOwnerTagShaped, parseMarker, placeholderName, userTags, type Marker } from './identity.js';
import { CREATION_LOCKS, HIBERNATED, operationLock, type VmRow } from './resources.js';
import { withinNodeBound } from './signals.js';
import { isRow, rows, str, type Row } from './values.js';
import { settingsOf } from './settings.js';
import { PENDING_CLONE_TTL_MS, onNode, parseVmid, readDetails, vmPath, type ProxmoxContext } from './vm.js';

export async function describeVM(ctx: ProxmoxContext, id: string, signal?: AbortSignal): Promise<ObservedVM> {
  const vmid = parseVmid(id);
  return onNode(ctx, vmid, signal, async (row) => {
    const { status, config } = await readDetails(ctx, row, signal);
    return observeVM(ctx, row, status, config, signal);
  });
}

/**
 * The owner's VM, including one whose clone is still running; the lowest VMID if there are copies.
 * Undefined only when PVE shows no VM that could be the owner's: a candidate on a node that does
 * not answer but bears the owner's marks is Unreachable, and a VM still being cloned by us that
 * cannot be told apart yet is Busy ("I cannot see it" is never "it is gone": driver.ts).
 */
export async function findByIdentity(ctx: ProxmoxContext, uid: string, signal?: AbortSignal): Promise<ObservedVM | undefined> {
  const calledAt = ctx.directory.now();
  let snapshot = await ctx.directory.current(signal);
  let scan = await scanOwned(ctx, uid, snapshot.rows, signal);
  // A miss on a snapshot older than this call is not an answer: the VM may have appeared since.
  if (scan.owned === undefined && snapshot.startedAt < calledAt) {
    snapshot = await ctx.directory.fresh(calledAt, signal);
    scan = await scanOwned(ctx, uid, snapshot.rows, signal);
  }
  const found = scan.owned;
  if (found === undefined) {
    await waitForUnidentified(ctx, scan.unidentified, 'waiting for it before answering that this owner has no VM', signal);
    return undefined;
  }
  const { status } = await readDetails(ctx, found.row, signal);
  return observeVM(ctx, found.row, status, found.config, signal);
}

export interface OwnedRow {
  row: VmRow;
  config: Row;
  marker: Marker;
}

export interface OwnerScan {
  owned?: OwnedRow;
  /** VMs PVE is still creating whose owner nobody can tell yet (see creations.ts). */
  unidentified: VmRow[];
  /** Candidates on nodes that did not answer, skipped because nothing ties them to the owner. */
  unreadable: VmRow[];
}

/** What a create knows beyond the owner's UID. */
export interface ScanHints {
  /**
   * The VM's name: a VM whose tags someone removed still carries it (and our marker), so a create
   * with a lost status finds it instead of making a second VM.
   */
  name?: string;
}

/** The owner record of a VM: its marker, or for a clone target still without one, our pending record. */
export function markerOf(ctx: ProxmoxContext, vmid: number, config: Row, lock: string | undefined): Marker | undefined {
  const marker = parseMarker(config['description']);
  if (marker !== undefined) {
    ctx.pending.delete(vmid);
    return marker;
  }
  const pending = ctx.pending.get(vmid);
  if (pending === undefined) return undefined;
  if (ctx.directory.now() - pending.since > PENDING_CLONE_TTL_MS) {
    ctx.pending.delete(vmid);
    return undefined;
  }
  return lock !== undefined && CREATION_LOCKS.has(lock) ? pending.marker : undefined;
}

/** What the resource list alone says about `row` and `uid`: the owner's tag, placeholder name, or our pending clone. */
function bearsOwnerMarks(ctx: ProxmoxContext, uid: string, row: VmRow): boolean {
  return hasOwnerTag(row.tags, uid) || row.name === placeholderName(uid) || ctx.pending.get(row.vmid)?.marker.uid === uid;
}

/**
 * A creation-locked VM whose config cannot be read, judged by its row. qemu-server writes the
 * clone's name with its first drive (clone_vm); before that the list shows no name, or PVE's
 * default `VM <id>`. Once named, our clones carry a placeholder name (identity.ts): any name then
 * tells whether it can be ours.
 */
function unnamed(row: VmRow): boolean {
  return row.name === '' || row.name === `VM ${row.vmid}`;
}

/**
 * Rows tagged for `uid`, then rows that may be the owner's without the tag yet: VMs PVE is still
 * creating (`lock: clone`, marker written once the first drive is copied), VMs bearing the owner's
 * placeholder name (a clone whose task ended before the configuration step retagged it), clones
 * this process started, VMs tagged ours without an owner tag (someone removed it), and for a
 * create (`hints`) VMs named like the spec (someone removed every tag). Each candidate's marker
 * decides; a steady cluster has one candidate per owner, so one config read.
 *
 * A candidate on a node that does not answer (595/596, or silent past ctx.nodeTimeoutMs) is
 * skipped unless its row bears the owner's marks; then the owner's VM exists in an unknown state
 * and the scan fails with UnreachableError rather than let anyone create a second one.
 */
export async function scanOwned(ctx: ProxmoxContext, uid: string, vms: readonly VmRow[], signal?: AbortSignal, hints: ScanHints = {}): Promise<OwnerScan> {
  const untagged = (row: VmRow): boolean =>
    row.tags.some((tag) => tag.toLowerCase() === OWNER_TAG) && !row.tags.some(isOwnerTagShaped);
  const candidates = vms
    .filter((row) => row.type === 'qemu' && !row.template)
    .filter(
      (row) =>
        bearsOwnerMarks(ctx, uid, row) ||
        ctx.pending.has(row.vmid) ||
        (row.lock !== undefined && CREATION_LOCKS.has(row.lock)) ||
        untagged(row) ||
        (hints.name !== undefined && row.name === hints.name),
    )
    .sort((a, b) => a.vmid - b.vmid);
  const configs = await Promise.all(candidates.map((row) => readCandidate(ctx, row, signal)));
  const scan: OwnerScan = { unidentified: [], unreadable: [] };
  const oursUnreadable: VmRow[] = [];
  for (const [index, row] of candidates.entries()) {
    const config = configs[index];
    if (config === undefined || config === 'gone') continue;
    if (config === 'unreadable') {
      if (bearsOwnerMarks(ctx, uid, row)) oursUnreadable.push(row);
      else {
        scan.unreadable.push(row);
        if (row.lock !== undefined && CREATION_LOCKS.has(row.lock) && unnamed(row)) scan.unidentified.push(row);
      }
      continue;
    }
    const lock = str(config['lock']) || row.lock;
    const marker = markerOf(ctx, row.vmid, config, lock);
    if (marker?.uid === uid && scan.owned === undefined) scan.owned = { row, config, marker };
    if (marker === undefined && lock !== undefined && CREATION_LOCKS.has(lock)) scan.unidentified.push(row);
  }
  if (scan.unreadable.length > 0) {
    ctx.debug(`owner lookup skipped VM ${scan.unreadable.map((row) => `${row.vmid} on node '${row.node}'`).join(', ')}: node unreachable, nothing ties it to the owner`);
  }
  if (scan.owned === undefined && oursUnreadable.length > 0) {
    const names = oursUnreadable.map((row) => `${row.vmid} on node '${row.node}'`).join(', ');
    throw new UnreachableError(`VM ${names} bears this owner's marks but its node does not answer: its state is unknown`);
  }
  return scan;
}

/** A candidate's config; 'gone' when it vanished or moved since the snapshot, 'unreadable' when its node does not answer. */
async function readCandidate(ctx: ProxmoxContext, row: VmRow, signal?: AbortSignal): Promise<Row | 'gone' | 'unreadable'> {
  try {
    return (await withinNodeBound(row.node, ctx.nodeTimeoutMs, signal, (bounded) => readDetails(ctx, row, bounded))).config;
  } catch (error) {
    if (error instanceof NodeUnreachableError) return 'unreadable';
    if (error instanceof DriverError && error.code === 'NotFound') return 'gone';
    throw error;
  }
}

function powerStateOf(status: Row, lock: string | undefined): PowerState {
  const state = str(status['status']);
  const qmp = str(status['qmpstatus']);
  if (state === 'running') {
    if (qmp === 'paused' || qmp === 'suspended') return 'Suspended';
    return 'On';
  }
  if (state === 'stopped') return lock === HIBERNATED ? 'Suspended' : 'Off';
  return 'Unknown';
}

export async function observeVM(ctx: ProxmoxContext, row: VmRow, status: Row, config: Row, signal?: AbortSignal): Promise<ObservedVM> {
  const lock = str(config['lock']) || str(status['lock']) || undefined;
  const marker = markerOf(ctx, row.vmid, config, lock);
  // A hibernated VM is Suspended, not busy: power-on resumes it and delete destroys it.
  const operation = operationLock(lock);
  const powerState = powerStateOf(status, lock);
  const name = str(config['name']) ?? str(status['name']) ?? row.name;
  const observed: ObservedVM = {
    id: String(row.vmid),
    name,
    powerState,
    cpus: observedCpus(config),
    memoryBytes: observedMemoryBytes(config),
    firmware: firmwareOf(config),
    features: featuresOf(config),
    disks: observedDisks(config, marker),
    nics: observedNics(config, marker),
    ips: powerState === 'On' && agentEnabled(config) ? await guestAddresses(ctx, row, signal) : [],
    // From the config read with the rest; the row's tags are part of the details cache's change
    // detector, so a change (ours or anyone's) is read again within one resources snapshot.
    tags: userTags(str(config['tags'])),
    host: row.node,
    consoleURL: consoleURL(ctx, row.vmid, name, row.node),
    settings: settingsOf(config),
  };
  if (marker !== undefined) observed.owner = { uid: marker.uid, namespace: marker.namespace, name: marker.name };
  if (operation !== undefined) observed.lock = operation;
  if (marker?.state === 'configuring' && lock === undefined) observed.incomplete = true;
  const machine = machineType(config);
  if (machine !== undefined) observed.machine = machine;
  return observed;
}

function reverse(map: Record<string, string>): Map<string, string> {
  return new Map(Object.entries(map).map(([name, slot]) => [slot, name]));
}

export function observedDisks(config: Row, marker: Marker | undefined): ObservedDisk[] {
  const names = reverse(marker?.disks ?? {});
  const root = bootDiskSlot(config, marker?.disks['root']);
  const all = disks(config);
  const ordered = [...all.filter((disk) => disk.slot === root), ...all.filter((disk) => disk.slot !== root)];
  return ordered.map((disk) => {
    const observed: ObservedDisk = { name: names.get(disk.slot) ?? (disk.slot === root ? 'root' : disk.slot), sizeBytes: disk.sizeBytes ?? 0, bus: disk.bus };
    if (disk.storage !== undefined) observed.datastore = disk.storage;
    if (disk.cache !== undefined) observed.cache = disk.cache;
    if (disk.format !== undefined) observed.format = disk.format;
    return observed;
  });
}

export function observedNics(config: Row, marker: Marker | undefined): ObservedNic[] {
  const names = reverse(marker?.nics ?? {});
  return nics(config).map((nic) => {
    const observed: ObservedNic = { name: names.get(nic.slot) ?? nic.slot };
    if (nic.mac !== undefined) observed.mac = nic.mac;
    if (nic.bridge !== undefined) observed.network = nic.bridge;
    if (nic.tag !== undefined) observed.vlan = nic.tag;
    if (nic.model !== undefined) observed.model = nic.model;
    if (nic.mtu !== undefined) observed.mtu = nic.mtu;
    if (nic.firewall !== undefined) observed.firewall = nic.firewall;
    if (nic.rate !== undefined) observed.rateLimitMBps = nic.rate;
    return observed;
  });
}

/** The noVNC link of the PVE web UI (NOTES §11); the user must be logged into the UI. */
export function consoleURL(ctx: ProxmoxContext, vmid: number, name: string, node: string): string {
  const query = new URLSearchParams({ console: 'kvm', novnc: '1', vmid: String(vmid), vmname: name, node, resize: 'off', cmd: '' });
  return `${ctx.config.uiBase}/?${query.toString()}`;
}

// Bridges and overlays that container runtimes and nested hypervisors create inside the guest
// (docker0 172.17.0.1, weave, flannel, virbr0 …): their addresses are not the VM's.
const CONTAINER_INTERFACE = /^(docker\d*|br-[0-9a-f]{12}|veth|cni|flannel|cali|weave|vxlan|kube-|cilium|lxcbr|lxdbr|virbr|datapath)/;

/**
 * Addresses the guest agent reports. An agent that is not running (yet), not configured, or a
 * guest that answers with a QGA error inside a 200 (NOTES §11) means "no addresses yet", not a
 * failed describe; only an unreachable or refusing PVE fails the call.
 */
async function guestAddresses(ctx: ProxmoxContext, row: VmRow, signal?: AbortSignal): Promise<string[]> {
  const cached = ctx.details.addresses(row);
  if (cached !== undefined) return cached;
  const addresses = await askGuestAgent(ctx, row, signal);
  ctx.details.putAddresses(row, addresses);
  return addresses;
}

async function askGuestAgent(ctx: ProxmoxContext, row: VmRow, signal?: AbortSignal): Promise<string[]> {
  let data: unknown;
  try {
    data = await ctx.client.get(vmPath(row.node, row.vmid, '/agent/network-get-interfaces'), undefined, { signal });
  } catch (error) {
    // A 403 too: reading the agent needs VM.Monitor (PVE 8) or VM.GuestAgent.Audit (PVE 9), and
    // a token without it should still see everything else.
    if (error instanceof UnreachableError) throw error;
    return [];
  }
  const result = isRow(data) ? data['result'] : undefined;
  const addresses: string[] = [];
  for (const iface of rows(result)) {
    if (CONTAINER_INTERFACE.test(str(iface['name']) ?? '')) continue;
    for (const address of rows(iface['ip-addresses'])) {
      const ip = str(address['ip-address']);
      if (ip !== undefined) addresses.push(ip);
    }
  }
  return filterGuestAddresses(addresses);
}
