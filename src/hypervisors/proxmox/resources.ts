// The cluster-wide resource list (`GET /cluster/resources`): where each VM lives, its tags and lock,
// plus nodes and storages. Any node answers it, and a wrong node answers a VM path with "does not
// exist" (NOTES §1), so every VM call starts here.
//
// One snapshot serves every describe and findByIdentity of a driver instance: fetched once at a
// time (single-flight), kept ~5 s, refreshed when a lookup misses. With many VMs syncing, that is
// one list call for all of them instead of one per VM.

import { parseTags } from './identity.js';
import { untilAborted } from './signals.js';
import { flag, num, rows, str, type Row } from './values.js';

export interface VmRow {
  vmid: number;
  type: 'qemu' | 'lxc';
  node: string;
  name: string;
  template: boolean;
  status: string;
  lock?: string;
  tags: string[];
  maxcpu: number;
  maxmem: number;
  maxdisk: number;
  /** Seconds since the VM started (0 when stopped). */
  uptime: number;
}

/**
 * The lock of a hibernated VM (stopped, its RAM in a `vmstate` volume). It is a state that lasts
 * until the VM is started again, not an operation anybody waits for: qemu-server's vm_start
 * resumes such a VM and destroy_vm ignores the lock (fix #4358, qemu-server 7.3-3).
 */
export const HIBERNATED = 'suspended';

/** Locks that a VM carries while PVE still creates it: the clone target, a fresh qmcreate. */
export const CREATION_LOCKS: ReadonlySet<string> = new Set(['clone', 'create']);

/** The lock when it names an operation PVE runs (or a crashed one left behind); undefined otherwise. */
export function operationLock(lock: string | undefined): string | undefined {
  return lock === undefined || lock === '' || lock === HIBERNATED ? undefined : lock;
}

export interface NodeRow {
  node: string;
  online: boolean;
  maxcpu: number;
  maxmem: number;
  mem: number;
}

export interface StorageRow {
  storage: string;
  node: string;
  /** The storage plugin (`plugintype`: dir, lvmthin, zfspool, rbd …); undefined when PVE does not say. */
  type?: string;
  shared: boolean;
  content: string[];
  maxdisk: number;
  disk: number;
}

export function parseVmRow(row: Row): VmRow | undefined {
  const type = str(row['type']);
  const vmid = num(row['vmid']);
  const node = str(row['node']);
  if ((type !== 'qemu' && type !== 'lxc') || vmid === undefined || node === undefined) return undefined;
  const parsed: VmRow = {
    vmid,
    type,
    node,
    name: str(row['name']) ?? '',
    template: flag(row['template']),
    status: str(row['status']) ?? 'unknown',
    tags: parseTags(str(row['tags'])),
    maxcpu: num(row['maxcpu']) ?? 0,
    maxmem: num(row['maxmem']) ?? 0,
    maxdisk: num(row['maxdisk']) ?? 0,
    uptime: num(row['uptime']) ?? 0,
  };
  const lock = str(row['lock']);
  if (lock !== undefined && lock !== '') parsed.lock = lock;
  return parsed;
}

export function parseNodeRow(row: Row): NodeRow | undefined {
  const node = str(row['node']);
  if (str(row['type']) !== 'node' || node === undefined) return undefined;
  return {
    node,
    online: str(row['status']) === 'online',
    maxcpu: num(row['maxcpu']) ?? 0,
    maxmem: num(row['maxmem']) ?? 0,
    mem: num(row['mem']) ?? 0,
  };
}

export function parseStorageRow(row: Row): StorageRow | undefined {
  const storage = str(row['storage']);
  const node = str(row['node']);
  if (str(row['type']) !== 'storage' || storage === undefined || node === undefined) return undefined;
  const parsed: StorageRow = {
    storage,
    node,
    shared: flag(row['shared']),
    content: (str(row['content']) ?? '').split(',').filter((part) => part !== ''),
    maxdisk: num(row['maxdisk']) ?? 0,
    disk: num(row['disk']) ?? 0,
  };
  const type = str(row['plugintype']);
  if (type !== undefined) parsed.type = type;
  return parsed;
}

export interface ClusterResources {
  vms: VmRow[];
  nodes: NodeRow[];
  storages: StorageRow[];
}

export function parseResources(data: unknown): ClusterResources {
  const result: ClusterResources = { vms: [], nodes: [], storages: [] };
  for (const row of rows(data)) {
    const vm = parseVmRow(row);
    if (vm !== undefined) result.vms.push(vm);
    const node = parseNodeRow(row);
    if (node !== undefined) result.nodes.push(node);
    const storage = parseStorageRow(row);
    if (storage !== undefined) result.storages.push(storage);
  }
  return result;
}

export interface VmSnapshot {
  /** When the request that produced it was sent: it shows the cluster at least as of then. */
  startedAt: number;
  rows: readonly VmRow[];
  byId: ReadonlyMap<number, VmRow>;
}

function snapshotOf(vms: VmRow[], startedAt: number): VmSnapshot {
  return { startedAt, rows: vms, byId: new Map(vms.map((row) => [row.vmid, row])) };
}

export class VmDirectory {
  readonly #fetch: () => Promise<unknown>;
  readonly #ttlMs: number;
  readonly #now: () => number;
  #snapshot: VmSnapshot | undefined;
  /** Snapshots whose request was sent before this instant are stale (see invalidate). */
  #floor = -Infinity;
  #inflight: { startedAt: number; promise: Promise<VmSnapshot> } | undefined;

  /** `fetch` answers `/cluster/resources?type=vm`; it runs without any caller's signal, since callers share it. */
  constructor(fetch: () => Promise<unknown>, options: { ttlMs?: number; now?: () => number } = {}) {
    this.#fetch = fetch;
    this.#ttlMs = options.ttlMs ?? 5000;
    this.#now = options.now ?? Date.now;
  }

  /** A snapshot no older than the TTL. */
  current(signal?: AbortSignal): Promise<VmSnapshot> {
    const snapshot = this.#snapshot;
    if (snapshot !== undefined && this.#now() - snapshot.startedAt < this.#ttlMs) return Promise.resolve(snapshot);
    return this.fresh(snapshot === undefined ? -Infinity : snapshot.startedAt + 1, signal);
  }

  /** A snapshot whose request was sent at or after `since`, joining one in flight when it qualifies. */
  fresh(since: number, signal?: AbortSignal): Promise<VmSnapshot> {
    const snapshot = this.#snapshot;
    if (snapshot !== undefined && snapshot.startedAt >= since) return Promise.resolve(snapshot);
    const inflight = this.#inflight;
    if (inflight !== undefined && inflight.startedAt >= since && inflight.startedAt >= this.#floor) return untilAborted(inflight.promise, signal);
    const startedAt = this.#now();
    const promise = this.#fetch().then((data) => {
      const next = snapshotOf(parseResources(data).vms, startedAt);
      this.#store(next);
      return next;
    });
    const entry = { startedAt, promise };
    this.#inflight = entry;
    void promise.then(
      () => this.#settle(entry),
      () => this.#settle(entry),
    );
    return untilAborted(promise, signal);
  }

  /** The row of `vmid`, refreshing once when the snapshot predates the call and lacks it. */
  async find(vmid: number, signal?: AbortSignal): Promise<VmRow | undefined> {
    const calledAt = this.#now();
    const snapshot = await this.current(signal);
    const row = snapshot.byId.get(vmid);
    if (row !== undefined || snapshot.startedAt >= calledAt) return row;
    return (await this.fresh(calledAt, signal)).byId.get(vmid);
  }

  /** Rows from a full resource list someone fetched anyway (create, inventory). */
  offer(vms: VmRow[], startedAt: number): void {
    this.#store(snapshotOf(vms, startedAt));
  }

  /** Forgets the snapshot after a change this driver made (a clone appears, a VM goes). */
  invalidate(): void {
    this.#snapshot = undefined;
    this.#floor = this.#now();
  }

  #store(next: VmSnapshot): void {
    if (next.startedAt < this.#floor) return;
    if (this.#snapshot === undefined || this.#snapshot.startedAt <= next.startedAt) this.#snapshot = next;
  }

  now(): number {
    return this.#now();
  }

  #settle(entry: { startedAt: number; promise: Promise<VmSnapshot> }): void {
    if (this.#inflight === entry) this.#inflight = undefined;
  }
}
