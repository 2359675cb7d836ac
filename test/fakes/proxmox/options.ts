/** Public options of the fake, their defaults, and the fault kinds it can inject. */

export type StorageType = 'lvmthin' | 'dir' | 'nfs' | 'zfspool' | 'lvm';
export type DiskBus = 'scsi' | 'virtio' | 'sata' | 'ide';

export interface FakePveNode {
  name: string;
  cpus: number;
  memoryBytes: number;
}

export interface FakePveStorage {
  id: string;
  type: StorageType;
  content: string[];
  shared?: boolean;
  capacityBytes: number;
  /** Nodes the storage is available on; all nodes when absent. */
  nodes?: string[];
}

export interface FakePveTemplate {
  vmid: number;
  name: string;
  node: string;
  diskGiB: number;
  storage?: string;
  bus?: DiskBus;
  /** Adds an `ide2` cloud-init drive (default: true for scsi templates, false otherwise). */
  cloudInit?: boolean;
}

export interface FakePveOptions {
  nodes?: FakePveNode[];
  storages?: FakePveStorage[];
  bridges?: string[];
  templates?: FakePveTemplate[];
  /** `USER@REALM!TOKENID` → secret. */
  tokens?: Record<string, string>;
  /** `user@realm` → password. */
  users?: Record<string, string>;
  taskDurationMs?: number;
  /** Per worker type (`qmclone`, `qmstart`, …), overriding taskDurationMs. */
  taskDurations?: Partial<Record<string, number>>;
  latencyMs?: number;
  /** Server time for tasks, boots and tickets (a test's FakeClock); default the wall clock. */
  clock?: { now(): number };
  guestAgent?: boolean;
  bootMs?: number;
  version?: '9.1' | '8.4';
  tls?: { key: string; cert: string };
  /** Ticket lifetime (PVE: 2 h). */
  ticketLifetimeMs?: number;
  /** Delay before every 401 (PVE waits about 3 s). */
  authFailureDelayMs?: number;
}

/**
 * How long a fault lasts. By default it is used up after one match. `times` counts matches
 * (`'always'` or `Infinity` never run out); `forMs` ends it that long after injectFault on the
 * fake's clock, `until` at that fake-clock instant; and the handle injectFault returns clears it
 * at any time. A fault with `forMs` or `until` and no `times` matches every time until it ends.
 */
export interface FaultLifetime {
  times?: number | 'always';
  forMs?: number;
  until?: number;
}

export type PveFault = FaultLifetime &
  (
    | { kind: 'lockTimeout'; method?: string; path?: RegExp }
    | { kind: 'vmLocked'; path?: RegExp }
    | { kind: 'status'; code: 500 | 595 | 596 | 401 | 403; path?: RegExp; method?: string; message?: string }
    | { kind: 'hang'; path?: RegExp; method?: string }
    | { kind: 'slow'; ms: number; path?: RegExp }
    | { kind: 'failTask'; type: string; message: string }
    | { kind: 'dropResponse'; path?: RegExp; method?: string }
  );

const GiB = 1024 ** 3;

export interface ResolvedOptions {
  nodes: FakePveNode[];
  storages: FakePveStorage[];
  bridges: string[];
  templates: FakePveTemplate[];
  tokens: Record<string, string>;
  users: Record<string, string>;
  taskDurationMs: number;
  taskDurations: Partial<Record<string, number>>;
  latencyMs: number;
  clock: { now(): number };
  guestAgent: boolean;
  bootMs: number;
  version: '9.1' | '8.4';
  tls: { key: string; cert: string } | undefined;
  ticketLifetimeMs: number;
  authFailureDelayMs: number;
}

export function resolveOptions(options: FakePveOptions = {}): ResolvedOptions {
  return {
    nodes: options.nodes ?? [
      { name: 'pve1', cpus: 16, memoryBytes: 64 * GiB },
      { name: 'pve2', cpus: 16, memoryBytes: 64 * GiB },
    ],
    storages: options.storages ?? [
      { id: 'local-lvm', type: 'lvmthin', content: ['images', 'rootdir'], capacityBytes: 512 * GiB },
      { id: 'local', type: 'dir', content: ['iso', 'vztmpl', 'snippets', 'import'], capacityBytes: 100 * GiB },
    ],
    bridges: options.bridges ?? ['vmbr0', 'vmbr1', 'vmbr2'],
    templates: options.templates ?? [
      { vmid: 9000, name: 'ubuntu-22-template', node: 'pve1', diskGiB: 10, bus: 'scsi', cloudInit: true },
      { vmid: 9001, name: 'debian-12', node: 'pve1', diskGiB: 8, bus: 'virtio', cloudInit: false },
    ],
    tokens: options.tokens ?? { 'virtrigaud@pve!vrtg': 'secret-token' },
    users: options.users ?? { 'root@pam': 'root-password' },
    taskDurationMs: options.taskDurationMs ?? 1000,
    taskDurations: options.taskDurations ?? {},
    latencyMs: options.latencyMs ?? 0,
    clock: options.clock ?? { now: () => Date.now() },
    guestAgent: options.guestAgent ?? true,
    bootMs: options.bootMs ?? 500,
    version: options.version ?? '9.1',
    tls: options.tls,
    ticketLifetimeMs: options.ticketLifetimeMs ?? 2 * 60 * 60 * 1000,
    authFailureDelayMs: options.authFailureDelayMs ?? 100,
  };
}
