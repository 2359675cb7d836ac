// Where a new VM goes and which VMID it gets: the template (by VMID or name), the node, and a
// free VMID. Pure except for the VMID checks against `/cluster/nextid`.

import { BusyError, ConflictError, HypervisorError, InvalidSpecError, UnreachableError, type CreateSpec, type Started } from '../../contracts/driver.js';
import { drives } from './hardware.js';
import type { Marker } from './identity.js';
import type { ClusterResources, NodeRow, VmRow } from './resources.js';
import { num, volumeStorage, type Row } from './values.js';
import type { ProxmoxContext } from './vm.js';

/**
 * The template `ref` names: a VMID (the guide also allows cloning an ordinary VM by VMID), or the
 * name of a template. Templates of one name often exist once per node (local storage); then the
 * one on a preferred node wins, then the lowest VMID.
 */
export function chooseTemplate(ref: string, vms: readonly VmRow[], preferredNodes: readonly string[]): VmRow {
  const qemu = vms.filter((row) => row.type === 'qemu');
  if (/^\d+$/.test(ref)) {
    const byId = qemu.find((row) => row.vmid === Number(ref));
    if (byId !== undefined) return byId;
  }
  const rank = (row: VmRow): number => {
    const index = preferredNodes.indexOf(row.node);
    return index < 0 ? preferredNodes.length : index;
  };
  const named = qemu.filter((row) => row.template && row.name === ref).sort((a, b) => rank(a) - rank(b) || a.vmid - b.vmid);
  const template = named[0];
  if (template === undefined) throw new InvalidSpecError(`template '${ref}' not found`);
  return template;
}

function freeMemory(node: NodeRow): number {
  return node.maxmem - node.mem;
}

/**
 * The node for a full clone (or a VM made from an imported disk): the spec's host, else the first
 * node of PVE_NODE_SELECTOR with room for the VM's memory, else the selected (or any online) node
 * with the most free memory. Without node rows (listing nodes needs Sys.Audit) `fallback`, the
 * template's node, is the only one we know.
 */
export function chooseNode(spec: CreateSpec, fallback: string, resources: ClusterResources, selector: readonly string[]): string {
  const online = resources.nodes.filter((node) => node.online);
  const host = spec.placement.host;
  if (host !== undefined) {
    if (resources.nodes.length > 0 && !online.some((node) => node.node === host)) {
      throw new InvalidSpecError(`host '${host}' not found or not online`);
    }
    return host;
  }
  if (online.length === 0) return fallback;
  const selected = selector.map((name) => online.find((node) => node.node === name)).filter((node): node is NodeRow => node !== undefined);
  const fitting = selected.find((node) => freeMemory(node) >= spec.memoryBytes);
  if (fitting !== undefined) return fitting.node;
  const pool = selected.length > 0 ? selected : online;
  return pool.reduce((best, node) => (freeMemory(node) > freeMemory(best) ? node : best)).node;
}

/**
 * Whether a clone of `templateConfig` can be made on another node: PVE refuses unless every volume
 * is on shared storage ("can't clone VM to node 'x' (VM uses local storage)"), and the target
 * storage, when given, must be shared too (qemu-server clone_vm, NOTES §9).
 */
export function crossNodeProblem(templateConfig: Row, resources: ClusterResources, targetStorage: string | undefined): string | undefined {
  const shared = new Set(resources.storages.filter((storage) => storage.shared).map((storage) => storage.storage));
  const volumes: (string | undefined)[] = drives(templateConfig)
    .filter((drive) => !drive.cdrom || drive.cloudinit)
    .map((drive) => drive.storage);
  for (const key of ['efidisk0', 'tpmstate0']) {
    const value = templateConfig[key];
    if (typeof value === 'string') volumes.push(volumeStorage(value.split(',')[0] ?? ''));
  }
  for (const storage of volumes) {
    if (storage === undefined || !shared.has(storage)) return `the template uses local storage '${storage ?? 'a host path'}'`;
  }
  if (targetStorage !== undefined && !shared.has(targetStorage)) return `storage '${targetStorage}' is not shared`;
  return undefined;
}

const NEXTID_PROBES = 32;

/** The VMIDs a create may take: exactly one, the lowest free of a range, or (neither) PVE_VMID_RANGE or `nextid`. */
export interface VmidChoice {
  requested?: number;
  range?: { min: number; max: number };
}

/** What a CreateSpec asks (CreateSpec.requestedId, CreateSpec.idRange). */
export function vmidChoice(spec: Pick<CreateSpec, 'requestedId' | 'idRange'>): VmidChoice {
  return {
    ...(spec.requestedId === undefined ? {} : { requested: spec.requestedId }),
    ...(spec.idRange === undefined ? {} : { range: spec.idRange }),
  };
}

/**
 * A VMID for a new VM, reserved in `ctx.reservedIds` (the caller releases it once its clone call
 * has answered). `GET /cluster/nextid` reserves nothing on PVE (NOTES §6): the clone may still
 * find the id taken, and the caller then asks again. Within a range (the spec's, else
 * PVE_VMID_RANGE), candidates skip every id the resource list shows and are confirmed with
 * `nextid?vmid=` (400 "already exists" if taken): the lowest free one wins.
 */
export async function allocateVmid(
  ctx: ProxmoxContext,
  known: readonly VmRow[],
  signal?: AbortSignal,
  exclude: ReadonlySet<number> = new Set(),
  specRange?: { min: number; max: number },
): Promise<number> {
  const listed = new Set(known.map((row) => row.vmid));
  // Checked after every await: another create of this process may have reserved meanwhile.
  const taken = (vmid: number): boolean => listed.has(vmid) || exclude.has(vmid) || ctx.reservedIds.has(vmid);
  const reserve = (vmid: number): number => {
    ctx.reservedIds.add(vmid);
    return vmid;
  };
  const range = specRange ?? ctx.config.vmidRange;
  let candidate: number;
  let last: number;
  if (range === undefined) {
    // A JSON string although the schema says integer (NOTES §6).
    const next = num(await ctx.client.get('/cluster/nextid', undefined, { signal }));
    if (next === undefined) throw new HypervisorError('PVE returned no free VMID');
    if (!taken(next)) return reserve(next);
    candidate = next + 1;
    last = 999_999_999;
  } else {
    candidate = range.min;
    last = range.max;
  }
  for (let probes = 0; candidate <= last && probes < NEXTID_PROBES; candidate += 1) {
    if (taken(candidate)) continue;
    probes += 1;
    try {
      await ctx.client.get('/cluster/nextid', { vmid: candidate }, { signal });
    } catch (error) {
      if (error instanceof ConflictError) continue;
      throw error;
    }
    if (!taken(candidate)) return reserve(candidate);
  }
  if (range !== undefined && candidate > last) {
    throw new InvalidSpecError(`no free VMID left in ${specRange === undefined ? 'PVE_VMID_RANGE' : 'the requested range'} ${range.min}-${range.max}`);
  }
  throw new ConflictError(`no free VMID found after ${NEXTID_PROBES} tries; retrying later`);
}

/**
 * Runs `make` with a VMID that was free a moment ago; when another client took it meanwhile, PVE
 * says "already exists" (`make` throws Conflict) and the next one is tried, so concurrent creates
 * end up with distinct VMs. A VMID the spec requested is tried once: taken, it is Conflict
 * `VM <id> already exists`. A lost answer may hide a VM being made: whose it would be is remembered.
 */
export async function withFreshVmid(
  ctx: ProxmoxContext,
  known: readonly VmRow[],
  attempts: number,
  marker: Marker,
  make: (vmid: number) => Promise<{ id: string } & Started>,
  signal?: AbortSignal,
  choice: VmidChoice = {},
): Promise<{ id: string } & Started> {
  const attempt = async (vmid: number): Promise<{ id: string } & Started> => {
    try {
      return await make(vmid);
    } catch (error) {
      if (error instanceof UnreachableError) ctx.pending.set(vmid, { marker, since: ctx.directory.now() });
      throw error;
    } finally {
      ctx.reservedIds.delete(vmid);
      // Whatever happened, the list must be read again: the VM may exist although the answer was lost.
      ctx.directory.invalidate();
    }
  };
  const requested = choice.requested;
  if (requested !== undefined) {
    // Another create of this process holds it: which owner's VM it becomes is not known yet.
    if (ctx.reservedIds.has(requested)) throw new BusyError(`VM ${requested} is being created by another call of this provider`);
    ctx.reservedIds.add(requested);
    try {
      return await attempt(requested);
    } catch (error) {
      if (error instanceof ConflictError) throw new ConflictError(`VM ${requested} already exists`);
      throw error;
    }
  }
  let lastConflict: ConflictError | undefined;
  const tried = new Set<number>();
  for (let index = 0; index < attempts; index += 1) {
    const vmid = await allocateVmid(ctx, known, signal, tried, choice.range);
    tried.add(vmid);
    try {
      return await attempt(vmid);
    } catch (error) {
      if (!(error instanceof ConflictError)) throw error;
      lastConflict = error;
    }
  }
  throw new ConflictError(`no free VMID after ${attempts} attempts: ${lastConflict?.message ?? 'taken'}`);
}
