// The Driver: everything the controllers need from a hypervisor, and nothing else.
//
// Hooks branch on the typed errors below (never on message text). Messages are shown to users in
// conditions, so drivers must never put credentials, tokens or user-data into them.
//
// Rules every driver keeps, because the hooks build their safety on them:
// * "I cannot see it" is never "it is gone". NotFound (or findByIdentity answering undefined)
//   only when the hypervisor says the VM does not exist. A VM that exists but cannot be read (a
//   node down, a datastore inaccessible, a config locked mid-creation) is UnreachableError (or
//   Busy): the hook then neither creates a replacement nor lets the object go.
// * Unknown failures are retryable (HypervisorError). InvalidSpec only for a request that can
//   never succeed as asked: a parameter or validation error the hypervisor names.
// * Work that can outlast the caller's signal (the hook's budget, a few seconds) is started and
//   answered with a task at once; a driver never waits past the signal with work it started and
//   nobody can find. Tasks are findable from any process serving the same hypervisor (another
//   runtime replica, a restarted one): taskStatus answers NotFound only for a task the hypervisor
//   does not know.

import type { ProviderType } from './crds/provider.js';

/**
 * What Machines of the Viti API need beyond a VirtualMachine (VMSettings, VM IDs, disk layout,
 * blank VMs): a driver without them refuses such a create (unsupportedSettings).
 */
export const MACHINE_CAPABILITIES = [
  /** Sockets × cores per socket (VMSettings.cpuTopology) at create and reconfigure. */
  'cpuTopology',
  /** Per-disk bus, cache mode, format and storage (DiskSpec.bus/cache/format/datastore). */
  'diskLayout',
  /** The guest OS type the hypervisor tunes the VM for (VMSettings.osType). */
  'osType',
  /** The boot device order (VMSettings.bootOrder). */
  'bootOrder',
  /** Memory ballooning on or off (VMSettings.balloon). */
  'memoryBalloon',
  /** Hypervisor-side deletion protection (VMSettings.protection): delete answers Conflict while it is on. */
  'deletionProtection',
  /** The guest agent channel on or off (VMSettings.guestAgent). */
  'guestAgent',
  /** A VM ID the caller chose (CreateSpec.requestedId), or one from a range it names (CreateSpec.idRange). */
  'explicitId',
  /** A VM made from nothing (ImageSpec kind `blank`): its disks empty, booting as its boot order says. */
  'blankVM',
  /** power `suspend`: the running VM paused with its memory kept; `on` resumes it. */
  'suspend',
  /** power `reset`: a hard reset of the running VM, like its reset button (no shutdown). */
  'hardReset',
] as const;
export type MachineCapability = (typeof MACHINE_CAPABILITIES)[number];

/** The Machine capabilities all off, for a driver that has none of them. */
export const WITHOUT_MACHINE_CAPABILITIES = Object.freeze(
  Object.fromEntries(MACHINE_CAPABILITIES.map((capability) => [capability, false])) as Record<MachineCapability, false>,
);

export const CAPABILITIES = [
  'cloudInit',
  'staticIP',
  'vlan',
  'nicModel',
  'nicFirewall',
  'nicRateLimit',
  'nicMTU',
  'macAddress',
  'uefi',
  'secureBoot',
  'tpm',
  'nestedVirtualization',
  'machineType',
  'thickProvisioning',
  'cpuHotAdd',
  'cpuHotRemove',
  'memoryHotAdd',
  'memoryHotRemove',
  'onlineDiskGrow',
  'guestShutdown',
  'snapshots',
  'memorySnapshots',
  'quiescedSnapshots',
  'linkedClones',
  'imageImport',
  'consoleURL',
  'placementHost',
  'placementDatastore',
  'placementFolder',
  'placementCluster',
  'placementResourcePool',
  /** User tags on the VM (next to the identity tags), set at creation and kept in sync. */
  'tags',
  /** cloud-init meta-data next to the user-data (NoCloud meta-data, vSphere guestinfo.metadata). */
  'cloudInitMetaData',
  /** An Ignition config for the guest (Fedora CoreOS, RHCOS) instead of cloud-init. */
  'ignition',
  /** Hypervisor-specific key/value settings passed through (vSphere extraConfig). */
  'extraConfig',
  /** CPU limit/reservation in MHz and memory limit/reservation (vSphere resource allocation). */
  'resourceLimits',
  /** A relative CPU weight against other VMs (vSphere shares, PVE cpuunits, libvirt cputune shares). */
  'cpuShares',
  /**
   * Placement policies: the VM's labels and its placement order are recorded with its identity at
   * create (CreateSpec.placementRecord) and listed per host by the inventory (hosts[].placed), so a
   * VMPlacementPolicy is decided and verified from the hypervisor's own state.
   */
  'placementPolicy',
  /** exportDisk: a VM's disk (VM off) written to a file of the migration directory, with its SHA-256. */
  'diskExport',
  /** importDisk: a disk file of the migration directory made into an image that create can use. */
  'diskImport',
  /**
   * ImageSpec kind `iso`: a new VM whose disks are empty, with the installer ISO as its CD-ROM,
   * booting from the CD-ROM then the boot disk.
   */
  'isoInstall',
  ...MACHINE_CAPABILITIES,
] as const;
export type Capability = (typeof CAPABILITIES)[number];
export type Capabilities = Readonly<Record<Capability, boolean>>;

export type DriverErrorCode =
  | 'NotFound'
  | 'Busy'
  | 'Conflict'
  | 'InvalidSpec'
  | 'Unauthorized'
  | 'Unreachable'
  | 'Unsupported'
  | 'HypervisorError';

export abstract class DriverError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }

  abstract readonly code: DriverErrorCode;
  /** Whether the same call may succeed later without anyone changing anything. */
  abstract readonly retryable: boolean;
}

/** The VM (or snapshot, task, template…) does not exist. For a VM being deleted this means done. */
export class NotFoundError extends DriverError {
  readonly code = 'NotFound';
  readonly retryable = false;
}

/** The hypervisor holds a lock on the object (PVE "can't lock file", vSphere TaskInProgress). */
export class BusyError extends DriverError {
  readonly code = 'Busy';
  readonly retryable = true;
}

/** The object exists and is not ours, or is in a state that forbids the call (a name taken by a foreign VM). */
export class ConflictError extends DriverError {
  readonly code = 'Conflict';
  readonly retryable = true;
}

/** The request can never succeed as asked (unknown template, bad bridge, no capacity). */
export class InvalidSpecError extends DriverError {
  readonly code = 'InvalidSpec';
  readonly retryable = false;
}

export class UnauthorizedError extends DriverError {
  readonly code = 'Unauthorized';
  readonly retryable = false;
}

/** The hypervisor could not be reached or did not answer in time; the call may or may not have happened. */
export class UnreachableError extends DriverError {
  readonly code = 'Unreachable';
  readonly retryable = true;
}

export class UnsupportedError extends DriverError {
  readonly code = 'Unsupported';
  readonly retryable = false;
}

/**
 * The hypervisor failed the call for a reason no rule classifies (a 500 it did not explain, a
 * vim25 fault outside the table, a virsh error nobody has seen): retried with back-off, never
 * reported as the user's mistake.
 */
export class HypervisorError extends DriverError {
  readonly code = 'HypervisorError';
  readonly retryable = true;
}

const ERROR_CLASSES: Readonly<Record<DriverErrorCode, new (message: string) => DriverError>> = {
  NotFound: NotFoundError,
  Busy: BusyError,
  Conflict: ConflictError,
  InvalidSpec: InvalidSpecError,
  Unauthorized: UnauthorizedError,
  Unreachable: UnreachableError,
  Unsupported: UnsupportedError,
  HypervisorError: HypervisorError,
};

/** The typed error for a code (a PVE failure text, a vim25 fault, a provider runtime's answer). */
export function driverErrorOf(code: DriverErrorCode, message: string): DriverError {
  return new ERROR_CLASSES[code](message);
}

export function isDriverError(error: unknown): error is DriverError {
  return error instanceof DriverError;
}

/** Who a hypervisor VM belongs to: written into the VM at create time, checked before every change. */
export interface Identity {
  uid: string;
  namespace: string;
  name: string;
}

/** A VM we intend to change, with the owner we expect its identity tag to name. */
export interface VMRef {
  id: string;
  owner: Identity;
}

export interface CallOptions {
  /** Aborts the call; the driver answers with UnreachableError. The operation may still have happened. */
  signal?: AbortSignal;
}

export type ImageSpec =
  | { kind: 'template'; ref: string; fullClone: boolean }
  | { kind: 'url'; url: string; checksum?: string; fullClone: boolean }
  /** No image: every disk empty (needs blankVM). */
  | { kind: 'blank' }
  /**
   * An installer ISO (needs isoInstall): exactly one of `ref`, an ISO the hypervisor already has
   * (PVE `storage:iso/file.iso`, a libvirt volume path), or `url`, fetched onto the hypervisor
   * first (once per URL and checksum) and verified with `checksum` ("sha256:<hex>") when given.
   */
  | { kind: 'iso'; ref?: string; url?: string; checksum?: string };

export interface NicSpec {
  name: string;
  /** Exactly one of bridge or network is set once the hook has resolved the NIC; neither means "the driver maps the name". */
  bridge?: string;
  network?: string;
  vlan?: number;
  mac?: string;
  model?: string;
  mtu?: number;
  firewall?: boolean;
  rateLimitMBps?: number;
  staticIP?: { address: string; gateway?: string; dns?: string[] };
}

export const DISK_BUSES = ['ide', 'sata', 'scsi', 'virtio'] as const;
export type DiskBus = (typeof DISK_BUSES)[number];
export const DISK_CACHES = ['none', 'writethrough', 'writeback'] as const;
export type DiskCache = (typeof DISK_CACHES)[number];

export interface DiskSpec {
  name: string;
  sizeBytes: number;
  /** The boot disk cloned from the image; the others are created empty. */
  root: boolean;
  /** The rest needs diskLayout. The controller the disk hangs on; undefined: the driver's choice. */
  bus?: DiskBus;
  cache?: DiskCache;
  /** The volume's format, where the storage offers a choice. */
  format?: DiskFormat;
  /** The storage for this disk; undefined: CreateSpec.storage.datastore. */
  datastore?: string;
}

export const OS_TYPES = ['linux', 'windows', 'solaris', 'other'] as const;
export type OsType = (typeof OS_TYPES)[number];
export const BOOT_DEVICES = ['disk', 'network', 'cdrom'] as const;
export type BootDevice = (typeof BOOT_DEVICES)[number];

/** Settings of the VM beyond CPUs and memory, each needing its capability; undefined leaves the hypervisor's default. */
export interface VMSettings {
  /** cpus = sockets × cores. */
  cpuTopology?: { sockets: number; cores: number };
  osType?: OsType;
  /** Devices tried in this order (the boot disk, the NICs in spec order, the CD-ROM drive). */
  bootOrder?: BootDevice[];
  guestAgent?: boolean;
  balloon?: boolean;
  protection?: boolean;
}

export interface HardwareFeatures {
  tpm: boolean;
  secureBoot: boolean;
  nestedVirtualization: boolean;
  cpuHotAdd: boolean;
  memoryHotAdd: boolean;
}

export interface CreateSpec {
  name: string;
  owner: Identity;
  cpus: number;
  memoryBytes: number;
  /** Undefined: whatever the image boots with. */
  firmware?: 'bios' | 'uefi';
  machine?: string;
  features: HardwareFeatures;
  image: ImageSpec;
  disks: DiskSpec[];
  storage: { datastore?: string; provisioning: 'thin' | 'thick' };
  nics: NicSpec[];
  /** Per-VM overrides of the Provider's defaults; each needs its placement* capability. */
  placement: { host?: string; folder?: string; cluster?: string; resourcePool?: string };
  /** cloud-init user-data; may come from a Secret, so it is never logged or echoed. */
  userData?: string;
  /** cloud-init meta-data (YAML); needs cloudInitMetaData. Never logged. */
  metaData?: string;
  /** An Ignition config (JSON); needs ignition. Never logged. */
  ignition?: string;
  /** User tags; needs tags. Each matches TAG_PATTERN. */
  tags?: string[];
  /** Passed through as they are; needs extraConfig. */
  extraConfig?: Record<string, string>;
  /** Resource allocation beyond CPUs and memory; each field needs its capability (resourceLimits, cpuShares). */
  limits?: ResourceLimits;
  /** Recorded with the identity, listed back by inventory; needs placementPolicy. */
  placementRecord?: PlacementRecord;
  settings?: VMSettings;
  /** This VM ID or none: Conflict ("VM <id> already exists") when another VM has it. Needs explicitId. */
  requestedId?: number;
  /** The lowest free VM ID of this range (inclusive). Needs explicitId. */
  idRange?: { min: number; max: number };
}

/**
 * What placement needs to know of a VM on a host, written at create. `order` is the placement
 * decision's time (ms since the epoch, from the hook's clock): of two VMs racing for one slot the
 * one ordered first keeps it (src/hooks/placement/verify.ts).
 */
export interface PlacementRecord {
  labels: Record<string, string>;
  order: number;
}

/** A VM on a host as the inventory lists it for placement. */
export interface PlacedVMInfo {
  /** The VM's name on the hypervisor, for messages. */
  name?: string;
  /** The owner UID from the identity tag; undefined for a VM we did not create. */
  owner?: string;
  /** Labels and order from its PlacementRecord; absent for VMs created without one. */
  labels: Record<string, string>;
  order?: number;
  cpus: number;
  memoryBytes: number;
  /**
   * The hypervisor is still making it and cannot tell yet whose it is or what it records (a PVE
   * clone before its configuration step): placement waits rather than guess.
   */
  settling?: boolean;
}

export interface ResourceLimits {
  cpuLimitMHz?: number;
  cpuReservationMHz?: number;
  /** Relative weight; needs cpuShares. */
  cpuShares?: number;
  memoryLimitBytes?: number;
  memoryReservationBytes?: number;
}

/**
 * What the hook sends as a user tag: upstream's `key:value` style included. A driver whose
 * hypervisor allows less (PVE's pve-tag has no `:` or `/`) refuses the tag with InvalidSpecError
 * naming it; none rewrites a tag.
 */
export const TAG_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_\-+.:=/@]{0,127}$/;

export type PowerState = 'On' | 'Off' | 'Suspended' | 'Unknown';

export interface ObservedDisk {
  name: string;
  sizeBytes: number;
  datastore?: string;
  provisioning?: 'thin' | 'thick';
  /** Reported by drivers with diskLayout. */
  bus?: DiskBus;
  cache?: DiskCache;
  format?: DiskFormat;
}

export interface ObservedNic {
  name: string;
  mac?: string;
  network?: string;
  vlan?: number;
  model?: string;
  mtu?: number;
  firewall?: boolean;
  rateLimitMBps?: number;
}

export interface ObservedVM {
  id: string;
  name: string;
  /** From the identity tag; undefined for a VM we did not create. */
  owner?: Identity;
  powerState: PowerState;
  /** An operation the hypervisor is running on this VM (create, clone, delete…): wait, do not act. */
  lock?: string;
  /**
   * Created by a create that has steps left and none running (a PVE clone not yet configured):
   * call create again with the same spec to continue it. Never true for a VM we did not create.
   */
  incomplete?: boolean;
  cpus: number;
  memoryBytes: number;
  firmware: 'bios' | 'uefi';
  machine?: string;
  features: HardwareFeatures;
  disks: ObservedDisk[];
  nics: ObservedNic[];
  /** Guest addresses, loopback and link-local already filtered out. */
  ips: string[];
  /** User tags (identity tags left out), from drivers with the tags capability. */
  tags?: string[];
  host?: string;
  consoleURL?: string;
  /** The settings the driver has capabilities for, as the hypervisor has them. */
  settings?: VMSettings;
}

/** `suspend` needs the suspend capability, `reset` hardReset; `on` also resumes a suspended VM. */
export type PowerOperation = 'on' | 'off' | 'shutdown' | 'reboot' | 'suspend' | 'reset';

export interface ResourceChange {
  cpus?: number;
  memoryBytes?: number;
  /** The user tags wanted (the identity tags are the driver's and stay). Applied online. */
  tags?: string[];
  /** The settings to change, only those that differ. protection is applied online, the others with the VM off. */
  settings?: VMSettings;
}

export interface SnapshotRequest {
  name: string;
  description?: string;
  memory: boolean;
  quiesce: boolean;
}

export interface SnapshotInfo {
  id: string;
  name: string;
  description?: string;
  createdAt: string;
  memory: boolean;
  sizeBytes?: number;
}

export type TaskState = 'queued' | 'running' | 'succeeded' | 'failed';

export interface TaskStatus {
  state: TaskState;
  /** 0–100 when the hypervisor reports it. */
  progress?: number;
  /** Failure message; safe to show. */
  error?: string;
  /** The typed error class of a failure, when the driver can tell. */
  errorCode?: DriverErrorCode;
}

export interface Inventory {
  hosts: {
    name: string;
    cpus: number;
    memoryBytes: number;
    cpusAllocated: number;
    memoryAllocatedBytes: number;
    vms: number;
    /** False: the Provider's own configuration keeps new VMs off this host (PVE_NODE_SELECTOR, VSPHERE_CLUSTER). */
    selectable?: boolean;
    /** The cluster (or a standalone host's compute resource) the host is in (vSphere), for a VM whose placement names one. */
    cluster?: string;
    /** Every VM on the host (ours and others'), from drivers with placementPolicy. */
    placed?: PlacedVMInfo[];
    /** The storage the host sees (PVE: its storages, shared ones included), when the driver tells. */
    storageBytes?: number;
    storageUsedBytes?: number;
  }[];
  datastores: { name: string; capacityBytes: number; usedBytes: number }[];
  networks: string[];
}

/** A started operation: `task` is undefined when the hypervisor finished it within the call. */
export interface Started {
  task?: string;
}

export interface CloneTarget {
  name: string;
  owner: Identity;
  linked: boolean;
}

export interface CloneStarted extends Started {
  id: string;
  /** The source snapshot a linked clone is based on. */
  sourceSnapshot?: string;
}

export type DiskFormat = 'qcow2' | 'raw' | 'vmdk';

/** Where a provider runtime keeps migration files (MIGRATION_DIR); each VMMigration's PVC is mounted below it, at its name. */
export const DEFAULT_MIGRATION_DIR = '/var/lib/virtrigaud/migrations';

/**
 * A disk file in the migration directory (a VMMigration's PVC, mounted by the provider runtime at
 * MIGRATION_DIR): `path` is relative to it, never absolute, never with `..`. exportDisk writes the
 * file's SHA-256 (hex) beside it as `<path>.sha256` once the file is whole; importDisk checks it
 * before it imports anything.
 */
export interface DiskFile {
  path: string;
  format: DiskFormat;
}

export interface DiskExportRequest {
  /** The VM's disk, by its spec name (`root`: the boot disk). */
  disk: string;
  file: DiskFile;
}

export interface DiskImportRequest {
  /** Names the image: the same owner and name give the same image (a repeated call imports nothing twice). */
  name: string;
  file: DiskFile;
}

export interface DiskImported extends Started {
  /** What a CreateSpec names to make a VM from the imported disk. */
  image: ImageSpec;
  sizeBytes: number;
}

export interface MigrationVolume {
  freeBytes: number;
}

export interface Driver {
  readonly type: string;
  readonly capabilities: Capabilities;

  probe(options?: CallOptions): Promise<{ version: string }>;
  inventory(options?: CallOptions): Promise<Inventory>;

  /** The VM with this ID; NotFoundError when there is none. */
  describe(id: string, options?: CallOptions): Promise<ObservedVM>;
  /** The VM whose identity tag names this owner UID, including one whose creation is still running. */
  findByIdentity(uid: string, options?: CallOptions): Promise<ObservedVM | undefined>;

  /**
   * Starts creating a powered-off VM carrying the owner's identity tag, or continues the creation
   * of the owner's VM when describe reports it `incomplete`. The owner's identity must be findable
   * (findByIdentity, or a retryable error from it while the VM cannot be told apart yet) from the
   * moment the call starts, so a lost response never leads to a second VM. `id` is '' while the
   * hypervisor has not assigned one yet (a vSphere clone names its VM when its task ends): the
   * task is then what the caller follows, and findByIdentity what finds the VM afterwards.
   */
  create(spec: CreateSpec, options?: CallOptions): Promise<{ id: string } & Started>;
  /** Destroys the VM and its own disks; ConflictError when its tag names another owner. */
  delete(ref: VMRef, options?: CallOptions): Promise<Started>;
  power(ref: VMRef, operation: PowerOperation, options?: CallOptions): Promise<Started>;
  reconfigure(ref: VMRef, change: ResourceChange, options?: CallOptions): Promise<Started>;
  resizeDisk(ref: VMRef, disk: string, sizeBytes: number, options?: CallOptions): Promise<Started>;

  snapshotCreate(ref: VMRef, request: SnapshotRequest, options?: CallOptions): Promise<{ id: string } & Started>;
  snapshotDelete(ref: VMRef, snapshotId: string, options?: CallOptions): Promise<Started>;
  snapshotRevert(ref: VMRef, snapshotId: string, options?: CallOptions): Promise<Started>;
  snapshotList(ref: VMRef, options?: CallOptions): Promise<SnapshotInfo[]>;
  /**
   * Copies the VM into a new one carrying `target.owner`'s identity tag. A linked clone shares the
   * source's disks through a snapshot; `sourceSnapshot` names it when the driver made or used one.
   */
  clone(ref: VMRef, target: CloneTarget, options?: CallOptions): Promise<CloneStarted>;

  /**
   * Writes the disk of a VM that is off to `request.file` (Busy while it runs), then its SHA-256
   * beside it; a task with progress. Needs diskExport. Repeating it rewrites the file.
   */
  exportDisk(ref: VMRef, request: DiskExportRequest, options?: CallOptions): Promise<Started>;
  /**
   * Makes `request.file` (its SHA-256 checked first: Conflict when it does not match) an image
   * owned by `owner`, for create to use. Needs diskImport.
   */
  importDisk(owner: Identity, request: DiskImportRequest, options?: CallOptions): Promise<DiskImported>;
  /**
   * Removes the image importDisk made for this owner and name (a VM made from it has its own copy);
   * nothing when there is none. Busy while the hypervisor still needs it. Needs diskImport.
   */
  deleteImportedDisk(owner: Identity, name: string, options?: CallOptions): Promise<Started>;
  /**
   * The migration volume `volume` (a VMMigration's PVC, mounted below the migration directory) is
   * there and writable, with this much room: NotFound while this runtime has not mounted it,
   * InvalidSpec ("PVC mount not writable") when nothing can be written to it. No hypervisor call.
   */
  migrationVolume(volume: string, options?: CallOptions): Promise<MigrationVolume>;
  /** Removes a migration's files (`dir`: `<volume>/<migration>`, relative); nothing when they are gone. No hypervisor call. */
  removeMigrationFiles(dir: string, options?: CallOptions): Promise<void>;

  taskStatus(task: string, options?: CallOptions): Promise<TaskStatus>;
}

/** What a registry needs to know about a Provider object to hand out its Driver. */
export interface ProviderTarget {
  namespace: string;
  name: string;
  uid?: string;
  type: ProviderType;
  endpoint?: string;
  mode: 'Remote' | 'InProcess';
  /** The runtime Service port (Remote mode). */
  port?: number;
  /** Runtime pod addresses (`ip:port`) to use instead of the Service: set while the Provider is being deleted. */
  endpoints?: string[];
}

/** Resolves Provider objects to Drivers; rejects with a DriverError (e.g. Unsupported, Unreachable) when it cannot serve one. */
export interface DriverRegistry {
  driverFor(provider: ProviderTarget): Promise<Driver>;
}

/**
 * What a create asks of the capabilities added for Machines (settings, VM IDs, disk layout, blank
 * VMs), each with the words to name it: a driver refuses the first one it lacks (UnsupportedError)
 * rather than create a VM without it. The hooks check the same before any call; this is the
 * driver's own line.
 */
export function settingsAsked(spec: Pick<CreateSpec, 'settings' | 'requestedId' | 'idRange' | 'image' | 'disks'>): [Capability, string][] {
  const asked: [Capability, string][] = [];
  const settings = spec.settings ?? {};
  if (settings.cpuTopology !== undefined) asked.push(['cpuTopology', 'a CPU topology (sockets × cores)']);
  if (settings.osType !== undefined) asked.push(['osType', 'an OS type']);
  if (settings.bootOrder !== undefined) asked.push(['bootOrder', 'a boot order']);
  if (settings.guestAgent !== undefined) asked.push(['guestAgent', 'the guest agent setting']);
  if (settings.balloon !== undefined) asked.push(['memoryBalloon', 'memory ballooning']);
  if (settings.protection !== undefined) asked.push(['deletionProtection', 'deletion protection']);
  if (spec.requestedId !== undefined || spec.idRange !== undefined) asked.push(['explicitId', 'a chosen VM ID']);
  if (spec.image.kind === 'blank') asked.push(['blankVM', 'a VM without an image']);
  if (spec.image.kind === 'iso') asked.push(['isoInstall', 'a VM installed from an ISO']);
  for (const disk of spec.disks) {
    if (disk.bus !== undefined || disk.cache !== undefined || disk.format !== undefined || disk.datastore !== undefined) {
      asked.push(['diskLayout', `the bus, cache, format or storage of disk '${disk.name}'`]);
    }
  }
  return asked;
}

/** The first of settingsAsked that `capabilities` lacks, as an UnsupportedError; undefined when none. */
export function unsupportedSettings(spec: Pick<CreateSpec, 'settings' | 'requestedId' | 'idRange' | 'image' | 'disks'>, type: string, capabilities: Capabilities): UnsupportedError | undefined {
  const missing = settingsAsked(spec).find(([capability]) => !capabilities[capability]);
  return missing === undefined ? undefined : new UnsupportedError(`the ${type} driver cannot set ${missing[1]} (capability ${missing[0]})`);
}
