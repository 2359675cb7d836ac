// The provider-runtime API: the Driver over HTTP. The runtime validates request bodies with these
// schemas (Fastify routes) and RemoteDriver checks every answer with them (Value.Check), so the
// two sides cannot disagree on a key name and have it pass silently (upstream VirtRigaud #266:
// a vSphere reconfigure did nothing because manager and provider spelled a key differently).
//
// Every object is closed (additionalProperties: false): an unknown key is an error, never ignored.
// Changing the contract in a way an older peer would refuse means a new version path, not /v1.
import { Type, type Static, type TBoolean, type TObject, type TSchema } from '@sinclair/typebox';
import { StringEnum } from './crds/common.js';
import * as Contract from './driver.js';

export const REMOTE_API_VERSION = 'v1';

const closed = { additionalProperties: false } as const;
const Bytes = Type.Number({ minimum: 0 });

export const DRIVER_ERROR_CODES = [
  'NotFound',
  'Busy',
  'Conflict',
  'InvalidSpec',
  'Unauthorized',
  'Unreachable',
  'Unsupported',
  'HypervisorError',
] as const satisfies readonly Contract.DriverErrorCode[];
export const DriverErrorCode = StringEnum(DRIVER_ERROR_CODES);

export const Capabilities = Type.Object(
  Object.fromEntries(Contract.CAPABILITIES.map((capability) => [capability, Type.Boolean()])) as { [K in Contract.Capability]: TBoolean },
  closed,
);

export const Identity = Type.Object({ uid: Type.String(), namespace: Type.String(), name: Type.String() }, closed);
export const VMRef = Type.Object({ id: Type.String(), owner: Identity }, closed);

export const HardwareFeatures = Type.Object(
  {
    tpm: Type.Boolean(),
    secureBoot: Type.Boolean(),
    nestedVirtualization: Type.Boolean(),
    cpuHotAdd: Type.Boolean(),
    memoryHotAdd: Type.Boolean(),
  },
  closed,
);

export const ImageSpec = Type.Union([
  Type.Object({ kind: Type.Literal('template'), ref: Type.String(), fullClone: Type.Boolean() }, closed),
  Type.Object({ kind: Type.Literal('url'), url: Type.String(), checksum: Type.Optional(Type.String()), fullClone: Type.Boolean() }, closed),
  Type.Object({ kind: Type.Literal('blank') }, closed),
  Type.Object(
    { kind: Type.Literal('iso'), ref: Type.Optional(Type.String()), url: Type.Optional(Type.String()), checksum: Type.Optional(Type.String()) },
    closed,
  ),
]);

export const NicSpec = Type.Object(
  {
    name: Type.String(),
    bridge: Type.Optional(Type.String()),
    network: Type.Optional(Type.String()),
    vlan: Type.Optional(Type.Integer()),
    mac: Type.Optional(Type.String()),
    model: Type.Optional(Type.String()),
    mtu: Type.Optional(Type.Integer()),
    firewall: Type.Optional(Type.Boolean()),
    rateLimitMBps: Type.Optional(Type.Number({ minimum: 0 })),
    staticIP: Type.Optional(
      Type.Object(
        { address: Type.String(), gateway: Type.Optional(Type.String()), dns: Type.Optional(Type.Array(Type.String())) },
        closed,
      ),
    ),
  },
  closed,
);

const DiskBus = StringEnum(Contract.DISK_BUSES);
const DiskCache = StringEnum(Contract.DISK_CACHES);
const DiskFormat = StringEnum(['qcow2', 'raw', 'vmdk'] as const satisfies readonly Contract.DiskFormat[]);

export const DiskSpec = Type.Object(
  {
    name: Type.String(),
    sizeBytes: Bytes,
    root: Type.Boolean(),
    bus: Type.Optional(DiskBus),
    cache: Type.Optional(DiskCache),
    format: Type.Optional(DiskFormat),
    datastore: Type.Optional(Type.String()),
  },
  closed,
);

export const VMSettings = Type.Object(
  {
    cpuTopology: Type.Optional(Type.Object({ sockets: Type.Integer({ minimum: 1 }), cores: Type.Integer({ minimum: 1 }) }, closed)),
    osType: Type.Optional(StringEnum(Contract.OS_TYPES)),
    bootOrder: Type.Optional(Type.Array(StringEnum(Contract.BOOT_DEVICES))),
    guestAgent: Type.Optional(Type.Boolean()),
    balloon: Type.Optional(Type.Boolean()),
    protection: Type.Optional(Type.Boolean()),
  },
  closed,
);

const Tags = Type.Array(Type.String({ pattern: Contract.TAG_PATTERN.source }));

export const ResourceLimits = Type.Object(
  {
    cpuLimitMHz: Type.Optional(Type.Integer({ minimum: 0 })),
    cpuReservationMHz: Type.Optional(Type.Integer({ minimum: 0 })),
    cpuShares: Type.Optional(Type.Integer({ minimum: 0 })),
    memoryLimitBytes: Type.Optional(Bytes),
    memoryReservationBytes: Type.Optional(Bytes),
  },
  closed,
);

const Firmware = StringEnum(['bios', 'uefi'] as const);
const Provisioning = StringEnum(['thin', 'thick'] as const);

const Labels = Type.Record(Type.String(), Type.String());
export const PlacementRecord = Type.Object({ labels: Labels, order: Type.Number({ minimum: 0 }) }, closed);

export const CreateSpec = Type.Object(
  {
    name: Type.String(),
    owner: Identity,
    cpus: Type.Integer({ minimum: 0 }),
    memoryBytes: Bytes,
    firmware: Type.Optional(Firmware),
    machine: Type.Optional(Type.String()),
    features: HardwareFeatures,
    image: ImageSpec,
    disks: Type.Array(DiskSpec),
    storage: Type.Object({ datastore: Type.Optional(Type.String()), provisioning: Provisioning }, closed),
    nics: Type.Array(NicSpec),
    placement: Type.Object(
      {
        host: Type.Optional(Type.String()),
        folder: Type.Optional(Type.String()),
        cluster: Type.Optional(Type.String()),
        resourcePool: Type.Optional(Type.String()),
      },
      closed,
    ),
    // cloud-init user-data, meta-data and Ignition, possibly from Secrets: they travel in this body and nowhere else.
    userData: Type.Optional(Type.String()),
    metaData: Type.Optional(Type.String()),
    ignition: Type.Optional(Type.String()),
    tags: Type.Optional(Tags),
    extraConfig: Type.Optional(Type.Record(Type.String(), Type.String())),
    limits: Type.Optional(ResourceLimits),
    placementRecord: Type.Optional(PlacementRecord),
    settings: Type.Optional(VMSettings),
    requestedId: Type.Optional(Type.Integer({ minimum: 1 })),
    idRange: Type.Optional(Type.Object({ min: Type.Integer({ minimum: 1 }), max: Type.Integer({ minimum: 1 }) }, closed)),
  },
  closed,
);

export const PowerState = StringEnum(['On', 'Off', 'Suspended', 'Unknown'] as const);
export const PowerOperation = StringEnum(['on', 'off', 'shutdown', 'reboot', 'suspend', 'reset'] as const);

export const ObservedDisk = Type.Object(
  {
    name: Type.String(),
    sizeBytes: Bytes,
    datastore: Type.Optional(Type.String()),
    provisioning: Type.Optional(Provisioning),
    bus: Type.Optional(DiskBus),
    cache: Type.Optional(DiskCache),
    format: Type.Optional(DiskFormat),
  },
  closed,
);

export const ObservedNic = Type.Object(
  {
    name: Type.String(),
    mac: Type.Optional(Type.String()),
    network: Type.Optional(Type.String()),
    vlan: Type.Optional(Type.Integer()),
    model: Type.Optional(Type.String()),
    mtu: Type.Optional(Type.Integer()),
    firewall: Type.Optional(Type.Boolean()),
    rateLimitMBps: Type.Optional(Type.Number({ minimum: 0 })),
  },
  closed,
);

export const ObservedVM = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    owner: Type.Optional(Identity),
    powerState: PowerState,
    lock: Type.Optional(Type.String()),
    incomplete: Type.Optional(Type.Boolean()),
    cpus: Type.Integer({ minimum: 0 }),
    memoryBytes: Bytes,
    firmware: Firmware,
    machine: Type.Optional(Type.String()),
    features: HardwareFeatures,
    disks: Type.Array(ObservedDisk),
    nics: Type.Array(ObservedNic),
    ips: Type.Array(Type.String()),
    tags: Type.Optional(Tags),
    host: Type.Optional(Type.String()),
    consoleURL: Type.Optional(Type.String()),
    settings: Type.Optional(VMSettings),
  },
  closed,
);

export const ResourceChange = Type.Object(
  {
    cpus: Type.Optional(Type.Integer({ minimum: 0 })),
    memoryBytes: Type.Optional(Bytes),
    tags: Type.Optional(Tags),
    settings: Type.Optional(VMSettings),
  },
  closed,
);

export const SnapshotRequest = Type.Object(
  { name: Type.String(), description: Type.Optional(Type.String()), memory: Type.Boolean(), quiesce: Type.Boolean() },
  closed,
);

export const SnapshotInfo = Type.Object(
  {
    id: Type.String(),
    name: Type.String(),
    description: Type.Optional(Type.String()),
    createdAt: Type.String(),
    memory: Type.Boolean(),
    sizeBytes: Type.Optional(Bytes),
  },
  closed,
);

export const TaskStatus = Type.Object(
  {
    state: StringEnum(['queued', 'running', 'succeeded', 'failed'] as const),
    progress: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
    error: Type.Optional(Type.String()),
    errorCode: Type.Optional(DriverErrorCode),
  },
  closed,
);

export const PlacedVMInfo = Type.Object(
  {
    name: Type.Optional(Type.String()),
    owner: Type.Optional(Type.String()),
    labels: Labels,
    order: Type.Optional(Type.Number({ minimum: 0 })),
    cpus: Type.Integer({ minimum: 0 }),
    memoryBytes: Bytes,
    settling: Type.Optional(Type.Boolean()),
  },
  closed,
);

export const Inventory = Type.Object(
  {
    hosts: Type.Array(
      Type.Object(
        {
          name: Type.String(),
          cpus: Type.Integer({ minimum: 0 }),
          memoryBytes: Bytes,
          cpusAllocated: Type.Integer({ minimum: 0 }),
          memoryAllocatedBytes: Bytes,
          vms: Type.Integer({ minimum: 0 }),
          selectable: Type.Optional(Type.Boolean()),
          cluster: Type.Optional(Type.String()),
          placed: Type.Optional(Type.Array(PlacedVMInfo)),
          storageBytes: Type.Optional(Bytes),
          storageUsedBytes: Type.Optional(Bytes),
        },
        closed,
      ),
    ),
    datastores: Type.Array(Type.Object({ name: Type.String(), capacityBytes: Bytes, usedBytes: Bytes }, closed)),
    networks: Type.Array(Type.String()),
  },
  closed,
);

export const Started = Type.Object({ task: Type.Optional(Type.String()) }, closed);
export const DiskFile = Type.Object({ path: Type.String(), format: StringEnum(['qcow2', 'raw', 'vmdk'] as const) }, closed);
export const DiskExportRequest = Type.Object({ disk: Type.String(), file: DiskFile }, closed);
export const DiskImportRequest = Type.Object({ name: Type.String(), file: DiskFile }, closed);
export const DiskImported = Type.Object({ task: Type.Optional(Type.String()), image: ImageSpec, sizeBytes: Bytes }, closed);
export const StartedWithId = Type.Object({ id: Type.String(), task: Type.Optional(Type.String()) }, closed);
export const CloneTarget = Type.Object({ name: Type.String(), owner: Identity, linked: Type.Boolean() }, closed);
export const CloneStarted = Type.Object(
  { id: Type.String(), task: Type.Optional(Type.String()), sourceSnapshot: Type.Optional(Type.String()) },
  closed,
);

const Empty = Type.Object({}, closed);

/** `GET /v1/capabilities`: what RemoteDriver exposes synchronously as `type` and `capabilities`. */
export const CapabilitiesResponse = Type.Object({ type: Type.String({ minLength: 1 }), capabilities: Capabilities }, closed);
export type CapabilitiesResponse = Static<typeof CapabilitiesResponse>;

/** Every non-2xx answer to a Driver call that the wrapped driver refused with a typed error. */
export const ErrorEnvelope = Type.Object(
  { error: Type.Object({ code: DriverErrorCode, message: Type.String() }, closed) },
  closed,
);
export type ErrorEnvelope = Static<typeof ErrorEnvelope>;

/** The HTTP status of an ErrorEnvelope. Fastify itself never answers 409, so it cannot be mistaken for one. */
export const DRIVER_ERROR_STATUS = 409;

/** `POST /v1/<method>`: one request and one answer schema per Driver method. */
export const REMOTE_METHODS = {
  probe: { request: Empty, response: Type.Object({ version: Type.String() }, closed) },
  inventory: { request: Empty, response: Inventory },
  describe: { request: Type.Object({ id: Type.String() }, closed), response: ObservedVM },
  // JSON has no `undefined`: no VM is an answer without `vm`.
  findByIdentity: { request: Type.Object({ uid: Type.String() }, closed), response: Type.Object({ vm: Type.Optional(ObservedVM) }, closed) },
  create: { request: Type.Object({ spec: CreateSpec }, closed), response: StartedWithId },
  delete: { request: Type.Object({ ref: VMRef }, closed), response: Started },
  power: { request: Type.Object({ ref: VMRef, operation: PowerOperation }, closed), response: Started },
  reconfigure: { request: Type.Object({ ref: VMRef, change: ResourceChange }, closed), response: Started },
  resizeDisk: { request: Type.Object({ ref: VMRef, disk: Type.String(), sizeBytes: Bytes }, closed), response: Started },
  snapshotCreate: { request: Type.Object({ ref: VMRef, request: SnapshotRequest }, closed), response: StartedWithId },
  snapshotDelete: { request: Type.Object({ ref: VMRef, snapshotId: Type.String() }, closed), response: Started },
  snapshotRevert: { request: Type.Object({ ref: VMRef, snapshotId: Type.String() }, closed), response: Started },
  snapshotList: { request: Type.Object({ ref: VMRef }, closed), response: Type.Object({ snapshots: Type.Array(SnapshotInfo) }, closed) },
  clone: { request: Type.Object({ ref: VMRef, target: CloneTarget }, closed), response: CloneStarted },
  taskStatus: { request: Type.Object({ task: Type.String() }, closed), response: TaskStatus },
  exportDisk: { request: Type.Object({ ref: VMRef, request: DiskExportRequest }, closed), response: Started },
  importDisk: { request: Type.Object({ owner: Identity, request: DiskImportRequest }, closed), response: DiskImported },
  deleteImportedDisk: { request: Type.Object({ owner: Identity, name: Type.String() }, closed), response: Started },
  migrationVolume: { request: Type.Object({ volume: Type.String() }, closed), response: Type.Object({ freeBytes: Bytes }, closed) },
  removeMigrationFiles: { request: Type.Object({ dir: Type.String() }, closed), response: Empty },
} as const satisfies Record<string, { request: TObject; response: TSchema }>;

export type RemoteMethod = keyof typeof REMOTE_METHODS;
export const REMOTE_METHOD_NAMES = Object.keys(REMOTE_METHODS) as RemoteMethod[];
export type RemoteRequest<M extends RemoteMethod> = Static<(typeof REMOTE_METHODS)[M]['request']>;
export type RemoteResponse<M extends RemoteMethod> = Static<(typeof REMOTE_METHODS)[M]['response']>;

export function remotePath(method: RemoteMethod | 'capabilities'): string {
  return `/${REMOTE_API_VERSION}/${method}`;
}

// The schemas must say exactly what the Driver interface says: these fail to compile otherwise.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type Assert<T extends true> = T;
export type SchemasMatchTheDriver = [
  Assert<Same<Static<typeof Capabilities>, Record<Contract.Capability, boolean>>>,
  Assert<Same<Static<typeof DriverErrorCode>, Contract.DriverErrorCode>>,
  Assert<Same<Static<typeof Identity>, Contract.Identity>>,
  Assert<Same<Static<typeof VMRef>, Contract.VMRef>>,
  Assert<Same<Static<typeof CreateSpec>, Contract.CreateSpec>>,
  Assert<Same<Static<typeof ObservedVM>, Contract.ObservedVM>>,
  Assert<Same<Static<typeof PowerOperation>, Contract.PowerOperation>>,
  Assert<Same<Static<typeof ResourceChange>, Contract.ResourceChange>>,
  Assert<Same<Static<typeof SnapshotRequest>, Contract.SnapshotRequest>>,
  Assert<Same<Static<typeof SnapshotInfo>, Contract.SnapshotInfo>>,
  Assert<Same<Static<typeof TaskStatus>, Contract.TaskStatus>>,
  Assert<Same<Static<typeof DiskExportRequest>, Contract.DiskExportRequest>>,
  Assert<Same<Static<typeof DiskImportRequest>, Contract.DiskImportRequest>>,
  Assert<Same<Static<typeof DiskImported>, Contract.DiskImported>>,
  Assert<Same<Static<typeof Inventory>, Contract.Inventory>>,
  Assert<Same<Static<typeof Started>, Contract.Started>>,
  Assert<Same<Static<typeof StartedWithId>, { id: string } & Contract.Started>>,
  Assert<Same<Static<typeof CloneTarget>, Contract.CloneTarget>>,
  Assert<Same<Static<typeof CloneStarted>, Contract.CloneStarted>>,
];
