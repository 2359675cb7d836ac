// What every verb shares: the driver's context, finding a VM's node, reading its config and
// status, and the owner check that guards every change (DESIGN §5: never touch a VM we do not own).

import { BusyError, ConflictError, NotFoundError, type VMRef } from '../../contracts/driver.js';
import type { ProxmoxClient } from './client.js';
import { segment } from './client.js';
import type { ProxmoxConfig } from './config.js';
import type { DetailsCache, VmDetails } from './details.js';
import { parseMarker, type Marker } from './identity.js';
import type { VmDirectory, VmRow } from './resources.js';
import { isRow, type Row } from './values.js';

export interface ProxmoxContext {
  client: ProxmoxClient;
  config: ProxmoxConfig;
  directory: VmDirectory;
  /** VMIDs handed to a clone call still in flight, so two creates of this process never race for one. */
  reservedIds: Set<number>;
  /** Clones this process asked for whose target may not show our marker yet (see PendingClone). */
  pending: Map<number, PendingClone>;
  details: DetailsCache;
  /** How long one node may take to answer a call that can go on without it (see withinNodeBound). */
  nodeTimeoutMs: number;
  /** Debug lines for the runtime's log: VMIDs and node names only. */
  debug: (message: string) => void;
  /** The PVE version, once a verb needed it (probe answers it). */
  version?: string;
}

/**
 * A clone target we asked for. PVE's clone writes only `lock: clone` into the target's config
 * before it answers ("# qmclone temporary file"); the description with our marker follows when
 * the task has copied the first drive. Until then this record is what ties the VMID to its owner,
 * also when the clone's answer was lost. Kept in memory only: a restarted process, or another
 * replica, finds our running clone task on PVE instead and waits (creations.ts), in create and in
 * findByIdentity alike, never making a second clone or answering "no VM".
 */
export interface PendingClone {
  marker: Marker;
  since: number;
  /** The clone's UPID, when its answer arrived. */
  task?: string;
}

/** How long a pending clone is remembered without its marker showing up. */
export const PENDING_CLONE_TTL_MS = 60 * 60 * 1000;

export function vmPath(node: string, vmid: number, rest = ''): string {
  return `/nodes/${segment(node)}/qemu/${vmid}${rest}`;
}

/** The VMID in a Driver id; anything else names no VM. */
export function parseVmid(id: string): number {
  if (!/^\d{1,9}$/.test(id)) throw new NotFoundError(`VM ${id} not found: not a PVE VMID`);
  return Number(id);
}

/** The VM's row in the cluster resources; NotFound when there is none (or it is a container). */
export async function locate(ctx: ProxmoxContext, vmid: number, signal?: AbortSignal): Promise<VmRow> {
  const row = await ctx.directory.find(vmid, signal);
  if (row === undefined || row.type !== 'qemu') throw new NotFoundError(`VM ${vmid} not found`);
  return row;
}

export async function readConfig(ctx: ProxmoxContext, node: string, vmid: number, signal?: AbortSignal): Promise<Row> {
  // current=1: the running values, not pending ones (NOTES §7), which is what describe reports.
  const data = await ctx.client.get(vmPath(node, vmid, '/config'), { current: true }, { signal });
  return isRow(data) ? data : {};
}

export async function readStatus(ctx: ProxmoxContext, node: string, vmid: number, signal?: AbortSignal): Promise<Row> {
  const data = await ctx.client.get(vmPath(node, vmid, '/status/current'), undefined, { signal });
  return isRow(data) ? data : {};
}

/** Config and status/current of the VM in `row`, from the details cache while its row is unchanged. */
export async function readDetails(ctx: ProxmoxContext, row: VmRow, signal?: AbortSignal): Promise<VmDetails> {
  const cached = ctx.details.get(row);
  if (cached !== undefined) return cached;
  const [status, config] = await Promise.all([readStatus(ctx, row.node, row.vmid, signal), readConfig(ctx, row.node, row.vmid, signal)]);
  ctx.details.put(row, { status, config });
  return { status, config };
}

/**
 * Runs `read` on the VM's node. A VM that migrated since the snapshot answers "does not exist" on
 * its old node (NOTES §1): then the node is looked up afresh and `read` runs once more.
 */
export async function onNode<T>(
  ctx: ProxmoxContext,
  vmid: number,
  signal: AbortSignal | undefined,
  read: (row: VmRow) => Promise<T>,
): Promise<T> {
  const calledAt = ctx.directory.now();
  const row = await locate(ctx, vmid, signal);
  try {
    return await read(row);
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
    const fresh = (await ctx.directory.fresh(calledAt, signal)).byId.get(vmid);
    if (fresh === undefined || fresh.type !== 'qemu' || fresh.node === row.node) throw new NotFoundError(`VM ${vmid} not found`);
    return read(fresh);
  }
}

export interface OwnedVM {
  vmid: number;
  node: string;
  config: Row;
  marker: Marker;
}

export interface GuardOptions {
  /** Refuse a VM that holds a lock (BusyError), except the locks listed in `allowLocks`. */
  idle: boolean;
  allowLocks?: readonly string[];
  /**
   * The caller forgets the VM's cached details itself, once it knows it changes something: a verb
   * that often finds nothing to do (reconfigure while a change is pending) keeps describe cheap.
   */
  keepDetails?: boolean;
}

/** The VM `ref` names, read fresh, refused unless its marker names `ref.owner` (and, if asked, unlocked). */
export async function requireOwned(ctx: ProxmoxContext, ref: VMRef, signal: AbortSignal | undefined, options: GuardOptions): Promise<OwnedVM> {
  const vmid = parseVmid(ref.id);
  const { node, config } = await onNode(ctx, vmid, signal, async (row) => ({ node: row.node, config: await readConfig(ctx, row.node, vmid, signal) }));
  // Whatever the caller changes next, the next describe must read it back.
  if (options.keepDetails !== true) ctx.details.forget(vmid);
  const marker = parseMarker(config['description']);
  if (marker === undefined || marker.uid !== ref.owner.uid) {
    throw new ConflictError(`VM ${vmid} is not owned by ${ref.owner.namespace}/${ref.owner.name}`);
  }
  const lock = typeof config['lock'] === 'string' && config['lock'] !== '' ? config['lock'] : undefined;
  if (options.idle && lock !== undefined && !(options.allowLocks ?? []).includes(lock)) {
    throw new BusyError(`VM ${vmid} is locked (${lock})`);
  }
  return { vmid, node, config, marker };
}
