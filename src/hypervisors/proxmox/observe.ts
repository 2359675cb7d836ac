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
import { ownerTag, parseMarker, placeholderName, type Marker } from './identity.js';
import type { VmRow } from './resources.js';
import { isRow, rows, str, type Row } from './values.js';
import { PENDING_CLONE_TTL_MS, onNode, parseVmid, readDetails, vmPath, type ProxmoxContext } from './vm.js';

export async function describeVM(ctx: ProxmoxContext, id: string, signal?: AbortSignal): Promise<ObservedVM> {
  const vmid = parseVmid(id);
  return onNode(ctx, vmid, signal, async (row) => {
    const { status, config } = await readDetails(ctx, row, signal);
    return observeVM(ctx, row, status, config, signal);
  });
}

/** The owner's VM, including one whose clone is still running; the lowest VMID if there are copies. */
export async function findByIdentity(ctx: ProxmoxContext, uid: string, signal?: AbortSignal): Promise<ObservedVM | undefined> {
  const calledAt = ctx.directory.now();
  let snapshot = await ctx.directory.current(signal);
  let found = await findOwnedRow(ctx, uid, snapshot.rows, signal);
  // A miss on a snapshot older than this call is not an answer: the VM may have appeared since.
  if (found === undefined && snapshot.startedAt < calledAt) {
    snapshot = await ctx.directory.fresh(calledAt, signal);
    found = await findOwnedRow(ctx, uid, snapshot.rows, signal);
  }
  if (found === undefined) return undefined;
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
  /** VMs PVE is still creating whose owner nobody can tell yet (see PendingClone). */
  unidentified: VmRow[];
}

// Locks that a VM carries while PVE still creates it: the clone target, a fresh qmcreate.
const CREATION_LOCKS = new Set(['clone', 'create']);

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

/**
 * Rows tagged for `uid`, then rows that may be the owner's without the tag yet: VMs PVE is still
 * creating (`lock: clone`, marker written once the first drive is copied), VMs bearing the owner's
 * placeholder name (a clone whose task ended before the configuration step retagged it), and
 * clones this process started. Each candidate's marker decides; a steady cluster has one
 * candidate per owner, so one config read.
 */
export async function scanOwned(ctx: ProxmoxContext, uid: string, vms: readonly VmRow[], signal?: AbortSignal): Promise<OwnerScan> {
  const tag = ownerTag(uid);
  const placeholder = placeholderName(uid);
  const candidates = vms
    .filter((row) => row.type === 'qemu' && !row.template)
    .filter(
      (row) =>
        row.tags.includes(tag) ||
        row.name === placeholder ||
        ctx.pending.has(row.vmid) ||
        (row.lock !== undefined && CREATION_LOCKS.has(row.lock)),
    )
    .sort((a, b) => a.vmid - b.vmid);
  const configs = await Promise.all(candidates.map((row) => readConfigIfPresent(ctx, row, signal)));
  const scan: OwnerScan = { unidentified: [] };
  for (const [index, row] of candidates.entries()) {
    const config = configs[index];
    if (config === undefined) continue;
    const lock = str(config['lock']) || row.lock;
    const marker = markerOf(ctx, row.vmid, config, lock);
    if (marker?.uid === uid && scan.owned === undefined) scan.owned = { row, config, marker };
    if (marker === undefined && lock !== undefined && CREATION_LOCKS.has(lock)) scan.unidentified.push(row);
  }
  return scan;
}

export async function findOwnedRow(ctx: ProxmoxContext, uid: string, vms: readonly VmRow[], signal?: AbortSignal): Promise<OwnedRow | undefined> {
  return (await scanOwned(ctx, uid, vms, signal)).owned;
}

async function readConfigIfPresent(ctx: ProxmoxContext, row: VmRow, signal?: AbortSignal): Promise<Row | undefined> {
  try {
    return (await readDetails(ctx, row, signal)).config;
  } catch (error) {
    // Gone or moved since the snapshot: not the VM we are looking for at this moment.
    if (error instanceof DriverError && error.code === 'NotFound') return undefined;
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
  if (state === 'stopped') return lock === 'suspended' ? 'Suspended' : 'Off';
  return 'Unknown';
}

export async function observeVM(ctx: ProxmoxContext, row: VmRow, status: Row, config: Row, signal?: AbortSignal): Promise<ObservedVM> {
  const lock = str(config['lock']) || str(status['lock']) || undefined;
  const marker = markerOf(ctx, row.vmid, config, lock);
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
    host: row.node,
    consoleURL: consoleURL(ctx, row.vmid, name, row.node),
  };
  if (marker !== undefined) observed.owner = { uid: marker.uid, namespace: marker.namespace, name: marker.name };
  if (lock !== undefined) observed.lock = lock;
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
    const observed: ObservedDisk = { name: names.get(disk.slot) ?? (disk.slot === root ? 'root' : disk.slot), sizeBytes: disk.sizeBytes ?? 0 };
    if (disk.storage !== undefined) observed.datastore = disk.storage;
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
