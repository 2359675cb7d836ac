// An in-memory hypervisor that behaves like the real ones where the operator's safety depends on
// it: tasks take time and can fail, VMs carry identity tags and locks, names and capacity are
// finite. Every method first lands the effects the clock has made due, so under a FakeClock the
// world changes only when a test moves time.
//
// Methods named like the Driver's are what SimulatorDriver calls; they answer synchronously and
// throw the contract's typed errors. The rest is the test API (faults, out-of-band changes).

import type { Clock } from '../../contracts/clock.js';
import {
  NotFoundError,
  type CloneTarget,
  type Capabilities,
  type CreateSpec,
  type Inventory,
  type ObservedVM,
  type PowerOperation,
  type ResourceChange,
  type ResourceLimits,
  type SnapshotInfo,
  type SnapshotRequest,
  type Started,
  type TaskStatus,
  type VMRef,
  type DiskExportRequest,
  type DiskImported,
  type DiskImportRequest,
  type Identity,
  type MigrationVolume,
} from '../../contracts/driver.js';
import { GiB } from '../../contracts/quantity.js';
import { cloneVM, createVM, deleteVM } from './lifecycle.js';
import type { SimFault, SimOperation, SimTemplate, SimulatorOptions, VMRecord } from './model.js';
import { generatedMac, inventory, observe } from './observe.js';
import { powerVM, reconfigureVM, resizeVMDisk } from './power.js';
import { deleteImportedDisk, exportDisk, importDisk } from './disks.js';
import { checkMigrationVolume, removeMigrationFiles } from '../common/disk-files.js';
import { createSnapshot, deleteSnapshot, listSnapshots, revertSnapshot } from './snapshots.js';
import { taskStatus } from './tasks.js';
import { SimWorld } from './world.js';

export {
  DEFAULT_DURATIONS,
  type SimDatastore,
  type SimFault,
  type SimHost,
  type SimOperation,
  type SimTemplate,
  type SimulatorDurations,
  type SimulatorOptions,
} from './model.js';

/** Passed by the driver when an injected taskFailure fault applies to the call. */
export interface SimCallOptions {
  failTaskWith?: string;
}

/** What tests may check about a VM beyond ObservedVM; user-data shows only as present or not. */
export interface SimVMDetails {
  id: string;
  hasUserData: boolean;
  /** What the VM was created with, for tests: a real hypervisor keeps these on the VM too. */
  extraConfig?: Record<string, string>;
  limits?: ResourceLimits;
  ignoresShutdown: boolean;
  clonedFrom?: { id: string; linked: boolean };
  snapshots: number;
}

export class SimulatedHypervisor {
  readonly clock: Clock;
  readonly capabilities: Capabilities;
  readonly #world: SimWorld;

  constructor(options: SimulatorOptions = {}) {
    this.#world = new SimWorld(options);
    this.clock = this.#world.clock;
    this.capabilities = this.#world.capabilities;
  }

  // --- what the driver calls ---

  probe(): { version: string } {
    this.#world.advance();
    return { version: this.#world.version };
  }

  inventory(): Inventory {
    this.#world.advance();
    return inventory(this.#world);
  }

  describe(id: string): ObservedVM {
    this.#world.advance();
    return observe(this.#world, this.#world.requireVM(id));
  }

  findByIdentity(uid: string): ObservedVM | undefined {
    this.#world.advance();
    const vm = this.#world.findByOwner(uid);
    return vm === undefined ? undefined : observe(this.#world, vm);
  }

  create(spec: CreateSpec, options: SimCallOptions = {}): { id: string } & Started {
    this.#world.advance();
    return createVM(this.#world, spec, options.failTaskWith);
  }

  delete(ref: VMRef, options: SimCallOptions = {}): Started {
    this.#world.advance();
    return deleteVM(this.#world, ref, options.failTaskWith);
  }

  power(ref: VMRef, operation: PowerOperation, options: SimCallOptions = {}): Started {
    this.#world.advance();
    return powerVM(this.#world, ref, operation, options.failTaskWith);
  }

  reconfigure(ref: VMRef, change: ResourceChange, options: SimCallOptions = {}): Started {
    this.#world.advance();
    return reconfigureVM(this.#world, ref, change, options.failTaskWith);
  }

  resizeDisk(ref: VMRef, disk: string, sizeBytes: number, options: SimCallOptions = {}): Started {
    this.#world.advance();
    return resizeVMDisk(this.#world, ref, disk, sizeBytes, options.failTaskWith);
  }

  snapshotCreate(ref: VMRef, request: SnapshotRequest, options: SimCallOptions = {}): { id: string } & Started {
    this.#world.advance();
    return createSnapshot(this.#world, ref, request, options.failTaskWith);
  }

  snapshotDelete(ref: VMRef, snapshotId: string, options: SimCallOptions = {}): Started {
    this.#world.advance();
    return deleteSnapshot(this.#world, ref, snapshotId, options.failTaskWith);
  }

  snapshotRevert(ref: VMRef, snapshotId: string, options: SimCallOptions = {}): Started {
    this.#world.advance();
    return revertSnapshot(this.#world, ref, snapshotId, options.failTaskWith);
  }

  snapshotList(ref: VMRef): SnapshotInfo[] {
    this.#world.advance();
    return listSnapshots(this.#world, ref);
  }

  clone(ref: VMRef, target: CloneTarget, options: SimCallOptions = {}): { id: string } & Started {
    this.#world.advance();
    return cloneVM(this.#world, ref, target, options.failTaskWith);
  }

  exportDisk(ref: VMRef, request: DiskExportRequest, options: SimCallOptions = {}): Started {
    this.#world.advance();
    return exportDisk(this.#world, this.#world.migrationDir, ref, request, options.failTaskWith);
  }

  importDisk(owner: Identity, request: DiskImportRequest): Promise<DiskImported> {
    this.#world.advance();
    return importDisk(this.#world, this.#world.migrationDir, owner, request);
  }

  deleteImportedDisk(owner: Identity, name: string): Started {
    this.#world.advance();
    return deleteImportedDisk(this.#world, owner, name);
  }

  migrationVolume(volume: string): Promise<MigrationVolume> {
    return checkMigrationVolume(this.#world.migration, volume);
  }

  removeMigrationFiles(dir: string): Promise<void> {
    return removeMigrationFiles(this.#world.migration, dir);
  }

  taskStatus(id: string): TaskStatus {
    this.#world.advance();
    const task = this.#world.tasks.get(id);
    if (task === undefined) throw new NotFoundError(`task ${id} not found`);
    return taskStatus(task, this.#world.clock.now());
  }

  /** Counts a driver call and returns the fault it should suffer, if one is injected. */
  receiveCall(operation: SimOperation): SimFault | undefined {
    return this.#world.receiveCall(operation);
  }

  // --- test and fault API ---

  injectFault(operation: SimOperation, fault: SimFault): void {
    this.#world.injectFault(operation, fault);
  }

  clearFaults(): void {
    this.#world.clearFaults();
  }

  /** Driver calls of this operation received so far, faulted ones included. */
  callCount(operation: SimOperation): number {
    return this.#world.callCount(operation);
  }

  /** Driver calls of every operation but those named, faulted ones included. */
  totalCalls(except: readonly SimOperation[] = []): number {
    return this.#world.totalCalls(except);
  }

  /** A VM somebody else made: no identity tag, so the operator must never touch it. */
  addForeignVM(vm: { name: string; powerState?: 'On' | 'Off'; cpus?: number; memoryBytes?: number }): string {
    const world = this.#world;
    world.advance();
    world.refuseTakenName(vm.name);
    const memoryBytes = vm.memoryBytes ?? GiB;
    // An admin is not bound by our placement: take the emptiest host even if it overcommits.
    const host = [...world.hosts].sort((a, b) => world.freeMemory(b) - world.freeMemory(a))[0] ?? world.hosts[0];
    const id = world.allocateId();
    const record: VMRecord = {
      id,
      name: vm.name,
      host: host?.name ?? '',
      powerState: vm.powerState ?? 'On',
      cpus: vm.cpus ?? 1,
      memoryBytes,
      firmware: 'bios',
      features: { tpm: false, secureBoot: false, nestedVirtualization: false, cpuHotAdd: false, memoryHotAdd: false },
      disks: [{ name: 'disk0', sizeBytes: 10 * GiB, datastore: world.datastores[0]?.name ?? '', provisioning: 'thin' }],
      nics: [{ name: 'net0', mac: generatedMac(id, 0), network: [...world.networks][0] ?? 'default' }],
      ignoresShutdown: false,
      snapshots: new Map(),
    };
    if (record.powerState === 'On') record.ipsVisibleAt = world.clock.now();
    world.addVM(record);
    return id;
  }

  /** As if an admin destroyed the VM on the hypervisor; tasks running on it fail when they end. */
  deleteOutOfBand(id: string): void {
    this.#world.advance();
    this.#world.removeVM(this.#world.requireVM(id));
  }

  setGuestIgnoresShutdown(id: string, ignore: boolean): void {
    this.#world.advance();
    this.#world.requireVM(id).ignoresShutdown = ignore;
  }

  addTemplate(template: SimTemplate): void {
    this.#world.addTemplate(template);
  }

  /** Every template's name (imported disks are templates `import-<owner>-<name>`). */
  templateNames(): string[] {
    return this.#world.templateNames();
  }

  listVMs(): ObservedVM[] {
    this.#world.advance();
    return [...this.#world.vms.values()].map((vm) => observe(this.#world, vm));
  }

  details(id: string): SimVMDetails {
    this.#world.advance();
    const vm = this.#world.requireVM(id);
    const details: SimVMDetails = {
      id: vm.id,
      hasUserData: vm.userData !== undefined,
      ignoresShutdown: vm.ignoresShutdown,
      snapshots: vm.snapshots.size,
    };
    if (vm.clonedFrom !== undefined) details.clonedFrom = { ...vm.clonedFrom };
    if (vm.extraConfig !== undefined) details.extraConfig = { ...vm.extraConfig };
    if (vm.limits !== undefined) details.limits = { ...vm.limits };
    return details;
  }

  /**
   * What the guest would read at first boot (user-data, meta-data, Ignition): secrets, so kept out
   * of details() and everything else; only a test asks for them, by this name.
   */
  guestData(id: string): { userData?: string; metaData?: string; ignition?: string } {
    const vm = this.#world.requireVM(id);
    const data: { userData?: string; metaData?: string; ignition?: string } = {};
    if (vm.userData !== undefined) data.userData = vm.userData;
    if (vm.metaData !== undefined) data.metaData = vm.metaData;
    if (vm.ignition !== undefined) data.ignition = vm.ignition;
    return data;
  }

  /** URL image downloads actually made; a cache hit does not count. */
  get imageDownloads(): number {
    return this.#world.images.downloads;
  }

  /** Resolves once no task is waiting on an image download, so tests need no wall-clock sleeps. */
  settled(): Promise<void> {
    return this.#world.settled();
  }
}
