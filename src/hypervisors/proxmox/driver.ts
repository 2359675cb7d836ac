// The Driver for Proxmox VE: wiring only. Each verb lives in its own module; this class holds the
// per-endpoint state they share (connection pool, session, resources snapshot).

import type {
  MigrationVolume,
  CallOptions,
  Capabilities,
  CloneStarted,
  CloneTarget,
  CreateSpec,
  DiskExportRequest,
  DiskImported,
  DiskImportRequest,
  Driver,
  Identity,
  Inventory,
  ObservedVM,
  PowerOperation,
  ResourceChange,
  SnapshotInfo,
  SnapshotRequest,
  Started,
  TaskStatus,
  VMRef,
} from '../../contracts/driver.js';
import { UnsupportedError, unsupportedSettings } from '../../contracts/driver.js';
import { checkMigrationVolume, migrationStorage, removeMigrationFiles, type MigrationStorage } from '../common/disk-files.js';
import { ProxmoxClient, type ProxmoxClientOptions } from './client.js';
import type { ProxmoxConfig } from './config.js';
import { createVM } from './create.js';
import { deleteImportedDisk, importDisk } from './disk-import.js';
import { MigrationFileServer } from './file-server.js';
import { inventory, probe } from './inventory.js';
import { cloneVM, deleteVM } from './lifecycle.js';
import { describeVM, findByIdentity } from './observe.js';
import { powerVM, reconfigureVM, resizeVMDisk } from './power.js';
import { DetailsCache } from './details.js';
import { VmDirectory } from './resources.js';
import { createSnapshot, deleteSnapshot, listSnapshots, revertSnapshot } from './snapshots.js';
import { taskStatus } from './tasks.js';
import type { ProxmoxContext } from './vm.js';

export const PROXMOX_CAPABILITIES: Capabilities = Object.freeze({
  cloudInit: true,
  staticIP: true,
  vlan: true,
  nicModel: true,
  nicFirewall: true,
  nicRateLimit: true,
  nicMTU: true,
  macAddress: true,
  uefi: true,
  secureBoot: true,
  tpm: true,
  nestedVirtualization: true,
  machineType: true,
  // PVE allocates what the storage gives (LVM-thin, ZFS, RBD are thin); there is no thick switch.
  thickProvisioning: false,
  cpuHotAdd: true,
  // qemu-server unplugs vCPUs (vcpus below cores×sockets) on a running VM with CPU hotplug.
  cpuHotRemove: true,
  memoryHotAdd: true,
  // Unplugging DIMMs needs the guest's cooperation and often stays pending: not promised.
  memoryHotRemove: false,
  onlineDiskGrow: true,
  guestShutdown: true,
  snapshots: true,
  memorySnapshots: true,
  // PVE freezes the guest's filesystems through its agent around a snapshot without RAM; a
  // snapshot PVE would take unfrozen (agent off or silent, no fsfreeze) is refused (quiesce.ts).
  quiescedSnapshots: true,
  linkedClones: true,
  // download-url into an import storage (PVE 8.4+), verified by PVE against the checksum, then
  // the root disk `import-from` it; one download per URL and checksum (image-download.ts).
  imageImport: true,
  consoleURL: true,
  placementHost: true,
  placementDatastore: true,
  placementFolder: false,
  placementCluster: false,
  placementResourcePool: false,
  // PVE `tags`, next to the identity tags (identity.ts); changed live, whatever the power state.
  tags: true,
  // A `cicustom=meta=` snippet, written like raw user-data: needs PVE_SNIPPETS_STORAGE/_DIR (cloudinit.ts).
  cloudInitMetaData: true,
  // qemu-server passes no Ignition config (fw_cfg) through its API; `args` is root@pam only.
  ignition: false,
  // The VM config is a fixed schema: there is nothing free-form to pass settings through.
  extraConfig: false,
  // `cpulimit` caps host cores (0–128), not MHz, and PVE has no CPU or memory reservation
  // (`balloon` is a ballooning target, not a guarantee): no honest mapping.
  resourceLimits: false,
  // `cpuunits`, the cgroup v2 CPU weight (1–10000).
  cpuShares: true,
  // The record is kept in the marker and as tags next to the identity tags (placement-record.ts).
  placementPolicy: true,
  // PVE's API cannot read a disk out (see exportDisk).
  diskExport: false,
  // download-url into an import storage, then import-from at create (disk-import.ts); a driver
  // whose runtime serves no migration files (PVE_MIGRATION_LISTEN unset) says false.
  diskImport: true,
  // A blank VM with the ISO (on a storage, or downloaded from its URL) in its CD-ROM drive,
  // booting from it first (image-create.ts).
  isoInstall: true,
  // `sockets` and `cores` (per socket); refused together with CPU hot-add (validate.ts).
  cpuTopology: true,
  // Bus (`<bus><n>` slot), `cache=`, `format=` and storage per disk (disk-layout.ts); a clone's
  // root disk keeps the template's bus, a linked clone's its storage and format too.
  diskLayout: true,
  // `ostype`: l26, win11, solaris, other (settings.ts).
  osType: true,
  // `boot: order=`: the boot disk, every NIC, the CD-ROM drives (an empty one added when missing).
  bootOrder: true,
  // `balloon: 0` turns the balloon device off; on is PVE's default (no key).
  memoryBalloon: true,
  // `protection`, changed live; delete answers Conflict while it is on (lifecycle.ts).
  deletionProtection: true,
  // `agent` 1/0 (on unless the spec turns it off).
  guestAgent: true,
  // That VMID, or the lowest free one of a range (placement.ts withFreshVmid).
  explicitId: true,
  // `POST /nodes/{node}/qemu` with empty volumes, no template (blank-create.ts).
  blankVM: true,
  // status/suspend (paused in memory; `on` resumes it) and status/reset.
  suspend: true,
  hardReset: true,
});

/** Why exportDisk is Unsupported. */
export const NO_DISK_EXPORT = 'Proxmox has no API to read a disk; configure PVE_SSH_* so the runtime can read it over SSH';

export interface ProxmoxDriverOptions extends ProxmoxClientOptions {
  /** How long one resources snapshot serves describe and findByIdentity. */
  resourcesTtlMs?: number;
  /** How long a VM's config, status and guest addresses are reused while its resources row is unchanged. */
  detailsTtlMs?: number;
  /**
   * How long one node may take to answer a call that can do without it (a lookup's candidates on
   * other nodes, the inventory's bridge lists) before it counts as unreachable.
   */
  nodeTimeoutMs?: number;
  /** Receives debug lines (VMIDs and node names, never credentials), e.g. candidates a lookup skipped. */
  debug?: (message: string) => void;
}

const NODE_TIMEOUT_MS = 5000;

export class ProxmoxDriver implements Driver {
  readonly type = 'proxmox';
  readonly capabilities: Capabilities;
  readonly #ctx: ProxmoxContext;

  readonly #migration: MigrationStorage;
  /** Serves migration files to PVE's downloads; listens from the first import on. */
  readonly #files: MigrationFileServer | undefined;

  constructor(config: ProxmoxConfig, options: ProxmoxDriverOptions = {}) {
    this.#migration = config.migration ?? migrationStorage({});
    const server = config.migrationServer;
    this.#files = server === undefined ? undefined : new MigrationFileServer({ ...server.listen, publicUrl: server.url });
    this.capabilities = Object.freeze({ ...PROXMOX_CAPABILITIES, diskImport: server !== undefined });
    const client = new ProxmoxClient(config, options);
    const directory = new VmDirectory(() => client.get('/cluster/resources', { type: 'vm' }), {
      ...(options.resourcesTtlMs === undefined ? {} : { ttlMs: options.resourcesTtlMs }),
      ...(options.now === undefined ? {} : { now: options.now }),
    });
    const details = new DetailsCache(options.now ?? Date.now, options.detailsTtlMs);
    this.#ctx = {
      client,
      config,
      directory,
      reservedIds: new Set(),
      pending: new Map(),
      details,
      nodeTimeoutMs: options.nodeTimeoutMs ?? NODE_TIMEOUT_MS,
      debug: options.debug ?? (() => undefined),
    };
  }

  /** Closes the connection pool and the migration file server. */
  async close(): Promise<void> {
    await Promise.all([this.#ctx.client.close(), this.#files?.close()]);
  }

  probe(options?: CallOptions): Promise<{ version: string }> {
    return probe(this.#ctx, options?.signal);
  }

  inventory(options?: CallOptions): Promise<Inventory> {
    return inventory(this.#ctx, options?.signal);
  }

  describe(id: string, options?: CallOptions): Promise<ObservedVM> {
    return describeVM(this.#ctx, id, options?.signal);
  }

  findByIdentity(uid: string, options?: CallOptions): Promise<ObservedVM | undefined> {
    return findByIdentity(this.#ctx, uid, options?.signal);
  }

  async create(spec: CreateSpec, options?: CallOptions): Promise<{ id: string } & Started> {
    const unsupported = unsupportedSettings(spec, this.type, this.capabilities);
    if (unsupported) throw unsupported;
    return createVM(this.#ctx, spec, options?.signal);
  }

  delete(ref: VMRef, options?: CallOptions): Promise<Started> {
    return deleteVM(this.#ctx, ref, options?.signal);
  }

  power(ref: VMRef, operation: PowerOperation, options?: CallOptions): Promise<Started> {
    return powerVM(this.#ctx, ref, operation, options?.signal);
  }

  reconfigure(ref: VMRef, change: ResourceChange, options?: CallOptions): Promise<Started> {
    return reconfigureVM(this.#ctx, ref, change, options?.signal);
  }

  resizeDisk(ref: VMRef, disk: string, sizeBytes: number, options?: CallOptions): Promise<Started> {
    return resizeVMDisk(this.#ctx, ref, disk, sizeBytes, options?.signal);
  }

  snapshotCreate(ref: VMRef, request: SnapshotRequest, options?: CallOptions): Promise<{ id: string } & Started> {
    return createSnapshot(this.#ctx, ref, request, options?.signal);
  }

  snapshotDelete(ref: VMRef, snapshotId: string, options?: CallOptions): Promise<Started> {
    return deleteSnapshot(this.#ctx, ref, snapshotId, options?.signal);
  }

  snapshotRevert(ref: VMRef, snapshotId: string, options?: CallOptions): Promise<Started> {
    return revertSnapshot(this.#ctx, ref, snapshotId, options?.signal);
  }

  snapshotList(ref: VMRef, options?: CallOptions): Promise<SnapshotInfo[]> {
    return listSnapshots(this.#ctx, ref, options?.signal);
  }

  clone(ref: VMRef, target: CloneTarget, options?: CallOptions): Promise<CloneStarted> {
    return cloneVM(this.#ctx, ref, target, options?.signal);
  }

  taskStatus(task: string, options?: CallOptions): Promise<TaskStatus> {
    return taskStatus(this.#ctx, task, options?.signal);
  }

  exportDisk(_ref: VMRef, _request: DiskExportRequest, _options?: CallOptions): Promise<Started> {
    return Promise.reject(new UnsupportedError(NO_DISK_EXPORT));
  }

  importDisk(owner: Identity, request: DiskImportRequest, options?: CallOptions): Promise<DiskImported> {
    return importDisk(this.#ctx, this.#files, this.#migration.root, owner, request, options?.signal);
  }

  /** Works without PVE_MIGRATION_*, too: removing what an earlier configuration imported needs only the API. */
  deleteImportedDisk(owner: Identity, name: string, options?: CallOptions): Promise<Started> {
    return deleteImportedDisk(this.#ctx, owner, name, options?.signal);
  }

  migrationVolume(volume: string): Promise<MigrationVolume> {
    return checkMigrationVolume(this.#migration, volume);
  }

  removeMigrationFiles(dir: string): Promise<void> {
    return removeMigrationFiles(this.#migration, dir);
  }

}
