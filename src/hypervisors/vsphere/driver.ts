// The Driver for vSphere (vim25 SOAP): wiring only. Each verb lives in its own module; this class
// holds the per-endpoint state they share (connection pool, session, VM list snapshot, names),
// none of which a correct answer depends on: another replica, or this one restarted, answers the
// same from what vCenter reports.

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
import { WITHOUT_MACHINE_CAPABILITIES, unsupportedSettings } from '../../contracts/driver.js';
import { checkMigrationVolume, migrationStorage, removeMigrationFiles } from '../common/disk-files.js';
import { VsphereClient, type VsphereClientOptions } from './client.js';
import type { VsphereConfig } from './config.js';
import { createVM } from './create.js';
import { exportDisk } from './export.js';
import { deleteImportedDisk, importDisk } from './import.js';
import { inventory, probe } from './inventory.js';
import { cloneVM, deleteVM } from './lifecycle.js';
import { DEFAULT_LEASE_TIMING, type LeaseTiming } from './nfc.js';
import { describeVM, findByIdentity } from './observe.js';
import { powerVM, reconfigureVM, resizeVMDisk } from './power.js';
import { SnapshotCache } from './snapshot-cache.js';
import { createSnapshot, deleteSnapshot, listSnapshots, revertSnapshot } from './snapshots.js';
import { taskStatus } from './tasks.js';
import { urlImage } from './url-image.js';
import { Transfers, isTransferTask, type TransferContext } from './transfers.js';
import { fetchVmList, type VsphereContext } from './vm.js';

export const VSPHERE_CAPABILITIES: Capabilities = Object.freeze({
  // guestinfo.userdata / guestinfo.metadata for cloud-init's VMware datasource.
  cloudInit: true,
  // cloud-init network config v2 in guestinfo.metadata, each NIC matched by its MAC (guest-network.ts).
  staticIP: true,
  // VLANs belong to port groups on vSphere: a NIC asking for one is put on a port group that
  // carries it (nics.ts, portgroups.ts). The adapter type is the model; a manual MAC in vSphere's
  // manual range. Firewall, rate limit and MTU are set per switch or port group, not per NIC.
  vlan: true,
  nicModel: true,
  nicFirewall: false,
  nicRateLimit: false,
  nicMTU: false,
  macAddress: true,
  uefi: true,
  secureBoot: true,
  // A VirtualTPM device, after upgrading the virtual hardware to version 14 when it is older.
  tpm: true,
  nestedVirtualization: true,
  machineType: false,
  thickProvisioning: false,
  cpuHotAdd: true,
  cpuHotRemove: false,
  memoryHotAdd: true,
  memoryHotRemove: false,
  onlineDiskGrow: true,
  guestShutdown: true,
  snapshots: true,
  memorySnapshots: true,
  quiescedSnapshots: true,
  linkedClones: true,
  // An OVA or OVF URL imported once per URL and checksum into a template, then cloned (url-image.ts).
  imageImport: true,
  consoleURL: true,
  placementHost: true,
  placementDatastore: true,
  placementFolder: true,
  placementCluster: true,
  placementResourcePool: true,
  // vSphere tags live in the CIS REST tagging service, not in vim25 (and not on a bare ESXi host):
  // not implemented.
  tags: false,
  // The rest are set at creation (create.ts configuration step): guestinfo.metadata merged with
  // the driver's, guestinfo.ignition.config.data, extraConfig except the driver's keys
  // (guestinfo.ts), cpuAllocation/memoryAllocation (allocation.ts).
  cloudInitMetaData: true,
  ignition: true,
  extraConfig: true,
  resourceLimits: true,
  cpuShares: true,
  // The record in extraConfig next to the identity, written by the clone (placement-record.ts);
  // every VM and running clone listed per host from the VM list and the recent tasks (placed.ts).
  placementPolicy: true,
  // Through HttpNfcLeases: ExportVm (export.ts) and ImportVApp into a template (import.ts), the
  // bytes moved by this process as local transfer tasks (transfers.ts).
  diskExport: true,
  diskImport: true,
  // Not implemented yet.
  isoInstall: false,
  // Settings, VM IDs, disk layout and blank VMs (Machines of the Viti API): not on this driver.
  ...WITHOUT_MACHINE_CAPABILITIES,
  // SuspendVM_Task (PowerOnVM_Task resumes) and ResetVM_Task (power.ts).
  suspend: true,
  hardReset: true,
});

export interface VsphereDriverOptions extends VsphereClientOptions {
  /** How long one VM list serves findByIdentity (ms). */
  vmListTtlMs?: number;
  /** How often disk transfers look at an initializing lease and renew one in use (tests shorten them). */
  leaseTiming?: Partial<LeaseTiming>;
}

export class VsphereDriver implements Driver {
  readonly type = 'vsphere';
  readonly capabilities = VSPHERE_CAPABILITIES;
  readonly #ctx: VsphereContext;
  readonly #transfer: TransferContext;

  constructor(config: VsphereConfig, options: VsphereDriverOptions = {}) {
    const client = new VsphereClient(config, options);
    this.#ctx = {
      client,
      config,
      vmList: new SnapshotCache((signal) => fetchVmList({ client }, signal), { ttlMs: options.vmListTtlMs ?? 2_000 }),
      names: new Map(),
    };
    this.#transfer = {
      ctx: this.#ctx,
      transfers: new Transfers(),
      migration: config.migration ?? migrationStorage({}),
      timing: { ...DEFAULT_LEASE_TIMING, ...options.leaseTiming },
    };
  }

  /** The SOAP client (tests read its login count). */
  get client(): VsphereClient {
    return this.#ctx.client;
  }

  /** Stops running disk transfers (their leases aborted, their tasks failed), then logs out and closes the connection pool. */
  async close(): Promise<void> {
    await this.#transfer.transfers.close();
    await this.#ctx.client.close();
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
    return createVM(this.#ctx, spec, (image, signal) => urlImage(this.#transfer, image, signal), options?.signal);
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

  async taskStatus(task: string, options?: CallOptions): Promise<TaskStatus> {
    // A disk transfer runs in this process (transfers.ts); every other task is vSphere's.
    if (isTransferTask(task)) return this.#transfer.transfers.status(task);
    return taskStatus(this.#ctx, task, options?.signal);
  }

  exportDisk(ref: VMRef, request: DiskExportRequest, options?: CallOptions): Promise<Started> {
    return exportDisk(this.#transfer, ref, request, options?.signal);
  }

  importDisk(owner: Identity, request: DiskImportRequest, options?: CallOptions): Promise<DiskImported> {
    return importDisk(this.#transfer, owner, request, options?.signal);
  }

  deleteImportedDisk(owner: Identity, name: string, options?: CallOptions): Promise<Started> {
    return deleteImportedDisk(this.#transfer, owner, name, options?.signal);
  }

  migrationVolume(volume: string): Promise<MigrationVolume> {
    return checkMigrationVolume(this.#transfer.migration, volume);
  }

  removeMigrationFiles(dir: string): Promise<void> {
    return removeMigrationFiles(this.#transfer.migration, dir);
  }
}
