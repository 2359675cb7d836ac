import { Type, type Static } from '@sinclair/typebox';
import {
  AGE_COLUMN,
  CommonStatusFields,
  DiskSize,
  Duration,
  ItemName,
  MacAddress,
  NetworkName,
  VlanID,
  LocalObjectReference,
  NamedList,
  ObjectReference,
  READY_COLUMN,
  REASON_COLUMN,
  ResourceObject,
  SecretKeyReference,
  StringEnum,
  celRules,
  type KindDefinition,
} from './common.js';

/** CEL (1.26 level, no quantity library) for the bytes in a DiskSize string held in `expr`. */
export function diskBytesCel(expr: string): string {
  const unit =
    `(${expr}.endsWith('Ti') ? 1099511627776 : ${expr}.endsWith('Gi') ? 1073741824 : ` +
    `${expr}.endsWith('Mi') ? 1048576 : ${expr}.endsWith('T') ? 1000000000000 : ` +
    `${expr}.endsWith('G') ? 1000000000 : 1000000)`;
  return `int(${expr}.find('^[0-9]+')) * ${unit}`;
}

export const PowerState = StringEnum(['On', 'Off', 'OffGraceful'] as const, {
  description: 'On: running. Off: hard power-off. OffGraceful: guest shutdown, then power-off after lifecycle.gracefulShutdownTimeout.',
});
export type PowerState = Static<typeof PowerState>;

const IPAddress = Type.String({ maxLength: 45, pattern: '^[0-9A-Fa-f:.]+$' });

export const StaticIP = Type.Object(
  {
    address: Type.String({
      maxLength: 49,
      pattern: '^[0-9A-Fa-f:.]+/[0-9]{1,3}$',
      description: 'Address with prefix length, e.g. 192.168.1.100/24.',
    }),
    gateway: Type.Optional(IPAddress),
    dns: Type.Optional(Type.Array(IPAddress, { maxItems: 4 })),
  },
  { additionalProperties: false, description: 'Static addressing, written into the guest by cloud-init.' },
);
export type StaticIP = Static<typeof StaticIP>;


export const VMNetwork = Type.Object(
  {
    name: ItemName,
    networkRef: Type.Optional(LocalObjectReference),
    bridge: Type.Optional(NetworkName),
    vlan: Type.Optional(VlanID),
    mac: Type.Optional(MacAddress),
    staticIP: Type.Optional(StaticIP),
  },
  {
    additionalProperties: false,
    description:
      'One NIC. Its network comes from networkRef (a VMNetworkAttachment), else from bridge, else the ' +
      'provider maps the NIC name to a network; bridge, vlan and mac given here override the attachment.',
  },
);
export type VMNetwork = Static<typeof VMNetwork>;

export const VMDisk = Type.Object(
  {
    name: ItemName,
    size: DiskSize,
  },
  {
    additionalProperties: false,
    description: 'A disk. The disk named "root" sizes the boot disk cloned from the image; other names are extra empty disks.',
    ...celRules({
      rule: `${diskBytesCel('self.size')} >= ${diskBytesCel('oldSelf.size')}`,
      message: 'disk size can only grow',
    }),
  },
);
export type VMDisk = Static<typeof VMDisk>;

/** User-data is at most this many characters, inline or from a Secret. */
export const MAX_USERDATA_LENGTH = 65536;

export const CloudInit = Type.Object(
  {
    inline: Type.Optional(Type.String({ maxLength: MAX_USERDATA_LENGTH })),
    secretRef: Type.Optional(SecretKeyReference),
  },
  {
    additionalProperties: false,
    description: 'cloud-init user-data, read when the VM is created. secretRef.key defaults to "userdata".',
    ...celRules({
      rule: 'has(self.inline) != has(self.secretRef)',
      message: 'set exactly one of inline and secretRef',
    }),
  },
);

export const UserData = Type.Object({ cloudInit: Type.Optional(CloudInit) }, { additionalProperties: false });

export const Placement = Type.Object(
  {
    host: Type.Optional(NetworkName),
    datastore: Type.Optional(NetworkName),
    folder: Type.Optional(
      Type.String({ minLength: 1, maxLength: 1024, description: 'vSphere VM folder, as an inventory path (e.g. /dc1/vm/teams/web) or relative to the datacenter VM folder.' }),
    ),
    cluster: Type.Optional(NetworkName),
    resourcePool: Type.Optional(
      Type.String({ minLength: 1, maxLength: 1024, description: 'vSphere resource pool, as an inventory path or a name under the cluster.' }),
    ),
  },
  {
    additionalProperties: false,
    description: 'Per-VM placement; each field overrides the VMClass and Provider defaults. Read when the VM is created; changing it later does not move the VM.',
  },
);

export const PowerCyclePolicy = StringEnum(['Manual', 'Automatic'] as const, {
  description:
    'What to do with a CPU/memory change that the running VM cannot take online. Manual: report it as ' +
    'pending until the VM is off or restarted through restartRequest. Automatic: shut the guest down, apply, start.',
});

export const RevertRequest = Type.Object(
  {
    snapshotRef: LocalObjectReference,
    request: Type.String({ minLength: 1, maxLength: 64, description: 'Any value; a new value asks for a new revert (e.g. the current time).' }),
  },
  {
    additionalProperties: false,
    description:
      'Revert the VM once to a Ready VMSnapshot of it. Disks (and memory, for a memory snapshot) go back to the ' +
      'snapshot; the spec then applies again: CPU/memory are set back to the spec and the VM is powered to ' +
      'spec.powerState. status.revert echoes the request once the revert has been started; a failed revert is ' +
      'reported, never retried on its own (change request to try again).',
  },
);

export const CloneSource = Type.Object(
  {
    vmRef: LocalObjectReference,
    linkedClone: Type.Optional(Type.Boolean({ default: true, description: 'Share the source\'s disks copy-on-write where the provider can.' })),
  },
  {
    additionalProperties: false,
    description: 'Create this VM as a clone of another VirtualMachine on the same Provider instead of from an image.',
  },
);

export const Lifecycle = Type.Object(
  {
    gracefulShutdownTimeout: Type.Optional(Duration),
    powerCyclePolicy: Type.Optional(PowerCyclePolicy),
    restartRequest: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        description:
          'Change this value (e.g. to the current time) to restart the VM once: graceful shutdown with the ' +
          'timeout, pending changes applied, power on. status.restartRequest echoes the value once handled.',
      }),
    ),
    revertRequest: Type.Optional(RevertRequest),
  },
  { additionalProperties: false },
);

export const DeletionPolicy = StringEnum(['Delete', 'Retain'] as const, {
  description: 'Delete: the hypervisor VM is destroyed with the object. Retain: it is left in place, untouched.',
});

export const VirtualMachineSpec = Type.Object(
  {
    providerRef: { ...ObjectReference, ...celRules({ rule: 'self == oldSelf', message: 'providerRef is immutable' }) },
    classRef: LocalObjectReference,
    imageRef: Type.Optional(LocalObjectReference),
    cloneFrom: Type.Optional(CloneSource),
    powerState: Type.Optional({ ...PowerState, default: 'On' }),
    networks: Type.Optional(NamedList(VMNetwork, { maxItems: 10 })),
    disks: Type.Optional(NamedList(VMDisk, { maxItems: 16 })),
    userData: Type.Optional(UserData),
    placement: Type.Optional(Placement),
    lifecycle: Type.Optional(Lifecycle),
    deletionPolicy: Type.Optional({ ...DeletionPolicy, default: 'Delete' }),
  },
  {
    additionalProperties: false,
    ...celRules(
      { rule: 'has(self.imageRef) != has(self.cloneFrom)', message: 'set exactly one source: imageRef or cloneFrom' },
      { rule: 'has(self.cloneFrom) == has(oldSelf.cloneFrom) && (!has(self.cloneFrom) || self.cloneFrom == oldSelf.cloneFrom)', message: 'cloneFrom is immutable' },
    ),
  },
);
export type VirtualMachineSpec = Static<typeof VirtualMachineSpec>;

export const VMPhase = StringEnum(
  ['Pending', 'Provisioning', 'Running', 'Stopped', 'Reconfiguring', 'Deleting', 'Failed'] as const,
);
export type VMPhase = Static<typeof VMPhase>;

export const ObservedPowerState = StringEnum(['On', 'Off', 'Suspended', 'Unknown'] as const);
export type ObservedPowerState = Static<typeof ObservedPowerState>;

export const TaskOperation = StringEnum(
  ['Create', 'Delete', 'PowerOn', 'PowerOff', 'Shutdown', 'Reboot', 'Reconfigure', 'ResizeDisk', 'Revert'] as const,
);
export type TaskOperation = Static<typeof TaskOperation>;

export const TaskStatusRef = Type.Object(
  {
    id: Type.String({ maxLength: 512 }),
    operation: TaskOperation,
    startedAt: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false, description: 'The hypervisor operation in flight, if any.' },
);
export type TaskStatusRef = Static<typeof TaskStatusRef>;

/** Bounds of what the status reports; what a driver observes beyond them is cut off, never written. */
export const STATUS_LIMITS = { ips: 64, disks: 64, nics: 32, features: 16 } as const;
const Text = (maxLength: number, options: object = {}) => Type.String({ maxLength, ...options });

export const ObservedHardware = Type.Object(
  {
    cpus: Type.Integer({ minimum: 0 }),
    memory: Text(32),
    firmware: Type.Optional(StringEnum(['bios', 'uefi'] as const)),
    machine: Type.Optional(Text(128)),
    disks: Type.Array(
      Type.Object(
        {
          name: Text(128),
          size: Text(32),
          datastore: Type.Optional(Text(256)),
          provisioning: Type.Optional(StringEnum(['thin', 'thick'] as const)),
        },
        { additionalProperties: false },
      ),
      { maxItems: STATUS_LIMITS.disks },
    ),
    nics: Type.Array(
      Type.Object(
        {
          name: Text(128),
          mac: Type.Optional(Text(32)),
          network: Type.Optional(Text(256)),
          vlan: Type.Optional(Type.Integer()),
          model: Type.Optional(Text(64)),
          mtu: Type.Optional(Type.Integer()),
          firewall: Type.Optional(Type.Boolean()),
          rateLimitMBps: Type.Optional(Type.Number()),
        },
        { additionalProperties: false },
      ),
      { maxItems: STATUS_LIMITS.nics },
    ),
    features: Type.Array(Text(64), { maxItems: STATUS_LIMITS.features, description: 'Hardware features on, e.g. tpm, secureBoot, nestedVirtualization.' }),
  },
  { additionalProperties: false },
);
export type ObservedHardware = Static<typeof ObservedHardware>;

export const RevertRecord = Type.Object(
  {
    snapshot: Text(253),
    request: Text(64),
    snapshotID: Text(512),
    startedAt: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false, description: 'The last spec.lifecycle.revertRequest started.' },
);
export type RevertRecord = Static<typeof RevertRecord>;

export const CloneRecord = Type.Object(
  {
    vm: Text(253),
    providerID: Text(512),
    linked: Type.Boolean(),
    sourceSnapshot: Type.Optional(Text(512)),
  },
  { additionalProperties: false, description: 'The VM this one was cloned from, as it was when the clone was started.' },
);
export type CloneRecord = Static<typeof CloneRecord>;

/**
 * The last failure of the operation the controller keeps trying, so that it backs off across
 * syncs (1 s, 2 s, 4 s … 5 min) instead of retrying at every status write.
 */
export const FailureRecord = Type.Object(
  {
    operation: TaskOperation,
    reason: Text(128),
    message: Text(1024),
    count: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
    lastAttempt: Type.String({ format: 'date-time', maxLength: 64 }),
    retryable: Type.Boolean(),
    generation: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false, description: 'The operation that keeps failing: how often, why, and when it was last tried.' },
);
export type FailureRecord = Static<typeof FailureRecord>;

export const ShutdownRecord = Type.Object(
  { startedAt: Type.String({ format: 'date-time', maxLength: 64 }) },
  {
    additionalProperties: false,
    description: 'When the first graceful shutdown of the current power-off or restart was asked for; the hard power-off deadline counts from it.',
  },
);
export type ShutdownRecord = Static<typeof ShutdownRecord>;

export const LockRecord = Type.Object(
  { lock: Text(64), since: Type.String({ format: 'date-time', maxLength: 64 }) },
  { additionalProperties: false, description: 'A lock the hypervisor holds on the VM, and since when this controller has seen it.' },
);
export type LockRecord = Static<typeof LockRecord>;

export const StatusIPs = Type.Array(Text(45), { maxItems: STATUS_LIMITS.ips });
export const ConsoleURL = Text(2048);
export const HostName = Text(256);

export const VirtualMachineStatus = Type.Object(
  {
    providerID: Type.Optional(Text(512, { description: 'The VM\'s ID on the hypervisor.' })),
    phase: Type.Optional(VMPhase),
    powerState: Type.Optional(ObservedPowerState),
    ips: Type.Optional(StatusIPs),
    consoleURL: Type.Optional(ConsoleURL),
    host: Type.Optional(HostName),
    hardware: Type.Optional(ObservedHardware),
    task: Type.Optional(TaskStatusRef),
    restartRequest: Type.Optional(Text(64, { description: 'The last spec.lifecycle.restartRequest handled.' })),
    revert: Type.Optional(RevertRecord),
    clonedFrom: Type.Optional(CloneRecord),
    failure: Type.Optional(FailureRecord),
    gracefulShutdown: Type.Optional(ShutdownRecord),
    lockHeld: Type.Optional(LockRecord),
    ...CommonStatusFields,
  },
  { additionalProperties: false },
);
export type VirtualMachineStatus = Static<typeof VirtualMachineStatus>;

export const VirtualMachineKind: KindDefinition = {
  kind: 'VirtualMachine',
  plural: 'virtualmachines',
  singular: 'virtualmachine',
  shortNames: ['vrvm'],
  description: 'A virtual machine on the hypervisor of its Provider.',
  spec: VirtualMachineSpec,
  status: VirtualMachineStatus,
  printerColumns: [
    { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
    { name: 'Power', type: 'string', jsonPath: '.status.powerState' },
    { name: 'IP', type: 'string', jsonPath: '.status.ips[0]' },
    { name: 'Provider', type: 'string', jsonPath: '.spec.providerRef.name' },
    READY_COLUMN,
    AGE_COLUMN,
    { name: 'Class', type: 'string', jsonPath: '.spec.classRef.name', priority: 1 },
    { name: 'Image', type: 'string', jsonPath: '.spec.imageRef.name', priority: 1 },
    { name: 'Host', type: 'string', jsonPath: '.status.host', priority: 1 },
    REASON_COLUMN,
  ],
};

export const VirtualMachineObject = ResourceObject('VirtualMachine', VirtualMachineSpec);
export type VirtualMachineObject = Static<typeof VirtualMachineObject>;
