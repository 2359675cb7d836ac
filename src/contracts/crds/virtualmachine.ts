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
  NamespaceName,
  ObjectName,
  ObjectReference,
  READY_COLUMN,
  REASON_COLUMN,
  ResourceObject,
  StringEnum,
  Untyped,
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

const POWER_STATES_TEXT =
  'On: running. Off: hard power-off. OffGraceful: guest shutdown, then power-off after lifecycle.gracefulShutdownTimeout. ' +
  'Suspended: paused with its memory kept (needs a provider with the suspend capability); On resumes it.';

export const PowerState = StringEnum(['On', 'Off', 'OffGraceful', 'Suspended'] as const, { description: POWER_STATES_TEXT });
export type PowerState = Static<typeof PowerState>;

/**
 * spec.powerState as people write it: kubectl reads YAML 1.1, where an unquoted On or Off is the
 * boolean true or false. The node has no type (x-kubernetes-preserve-unknown-fields) so that the
 * apiserver can hold either; its enum admits exactly these five values, and true/false mean On/Off.
 */
export const DesiredPowerState = Untyped<PowerState | boolean>({
  enum: ['On', 'Off', 'OffGraceful', 'Suspended', true, false],
  default: 'On',
  description:
    `${POWER_STATES_TEXT} ` +
    'The booleans true and false (what YAML 1.1, and so kubectl, makes of an unquoted On and Off) mean On and Off.',
});

const IPAddress = Type.String({ maxLength: 45, pattern: '^[0-9A-Fa-f:.]+$', description: 'An IPv4 or IPv6 address.' });
const IPV4 = '^((25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\\.){3}(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)$';

export const StaticIP = Type.Object(
  {
    address: Type.String({
      maxLength: 49,
      pattern: '^[0-9A-Fa-f:.]+/[0-9]{1,3}$',
      description: 'Address with prefix length, e.g. 192.168.1.100/24.',
    }),
    gateway: Type.Optional({ ...IPAddress, description: 'Default gateway.' }),
    dns: Type.Optional(Type.Array({ ...IPAddress, description: 'A DNS server address.' }, { maxItems: 4, description: 'DNS servers, at most four.' })),
  },
  { additionalProperties: false, description: 'Static addressing, written into the guest by cloud-init (seed spelling of ipAddress, prefix, gateway, dns).' },
);
export type StaticIP = Static<typeof StaticIP>;

/** A reference that may name a namespace; only the referrer's own namespace is served (see resolve). */
const NamespacedRef = (what: string) =>
  Type.Object(
    {
      name: { ...ObjectName, description: `The ${what}'s name.` },
      namespace: Type.Optional({
        ...NamespaceName,
        description: `The ${what}'s namespace: the VirtualMachine's own (the default); another namespace is refused with a condition.`,
      }),
    },
    { additionalProperties: false, description: `A ${what} of the VirtualMachine's namespace.` },
  );

export const VMNetwork = Type.Object(
  {
    name: { ...ItemName, description: 'The NIC\'s name, unique in the VM.' },
    networkRef: Type.Optional(NamespacedRef('VMNetworkAttachment')),
    bridge: Type.Optional({ ...NetworkName, description: 'Host bridge to attach to; overrides the attachment\'s network.' }),
    vlan: Type.Optional({ ...VlanID, description: 'VLAN tag of the NIC; overrides the attachment\'s.' }),
    mac: Type.Optional({ ...MacAddress, description: 'Fixed MAC address (seed spelling of macAddress).' }),
    macAddress: Type.Optional(
      Type.String({
        maxLength: 17,
        pattern: '^([0-9A-Fa-f]{2}[:-]){5}([0-9A-Fa-f]{2})$',
        description: 'Fixed MAC address, with colons or dashes (upstream spelling of mac).',
      }),
    ),
    staticIP: Type.Optional(StaticIP),
    ipAddress: Type.Optional(
      Type.String({ maxLength: 15, pattern: IPV4, description: 'Static IPv4 address, written into the guest by cloud-init (needs prefix).' }),
    ),
    prefix: Type.Optional(Type.Integer({ minimum: 1, maximum: 32, description: 'Prefix length of ipAddress, e.g. 24.' })),
    gateway: Type.Optional(Type.String({ maxLength: 15, pattern: IPV4, description: 'Default gateway with ipAddress.' })),
    dns: Type.Optional(Type.String({ maxLength: 256, description: 'DNS servers with ipAddress, comma-separated (at most four).' })),
  },
  {
    additionalProperties: false,
    description:
      'One NIC. Its network comes from networkRef (a VMNetworkAttachment), else from bridge, else the ' +
      'provider maps the NIC name to a network; bridge, vlan and the MAC given here override the attachment.',
    ...celRules(
      { rule: '!has(self.mac) || !has(self.macAddress)', message: 'set mac or macAddress, not both' },
      { rule: '!has(self.staticIP) || !has(self.ipAddress)', message: 'set staticIP or ipAddress, not both' },
      {
        rule: 'has(self.ipAddress) || (!has(self.prefix) && !has(self.gateway) && !has(self.dns))',
        message: 'prefix, gateway and dns go with ipAddress',
      },
    ),
  },
);
export type VMNetwork = Static<typeof VMNetwork>;

/** Bytes of a disk item in CEL, whichever spelling (size or sizeGiB) it uses. */
const diskItemBytesCel = (item: string) => `(has(${item}.sizeGiB) ? ${item}.sizeGiB * 1073741824 : ${diskBytesCel(`${item}.size`)})`;

export const VMDisk = Type.Object(
  {
    name: { ...ItemName, description: 'The disk\'s name, unique in the VM. "root" is the boot disk.' },
    size: Type.Optional({ ...DiskSize, description: `${DiskSize.description ?? ''} Seed spelling of sizeGiB.` }),
    sizeGiB: Type.Optional(Type.Integer({ minimum: 1, maximum: 65536, description: 'Disk size in GiB (upstream spelling of size).' })),
    type: Type.Optional(
      StringEnum(['thin', 'thick', 'eagerzeroedthick', 'ssd', 'hdd'] as const, {
        description: 'Provisioning of this disk: thin or thick; it must agree with the VM\'s (VMClass diskDefaults.type); eagerzeroedthick, ssd and hdd are refused as Unsupported.',
      }),
    ),
    expandPolicy: Type.Optional(
      StringEnum(['Online', 'Offline'] as const, {
        description: 'How a larger size is applied: Online grows the disk of a running VM where the provider can (else as Offline); Offline waits until the VM is off (or restarted through restartRequest).',
      }),
    ),
    storageClass: Type.Optional(Type.String({ maxLength: 253, description: 'Datastore / storage pool of this disk.' })),
    scsi: Type.Optional(
      Type.Object(
        {
          controller: Type.Optional(Type.Integer({ minimum: 0, maximum: 3, description: 'SCSI controller bus number.' })),
          sharedBus: Type.Optional(StringEnum(['noSharing', 'virtualSharing', 'physicalSharing'] as const, { description: 'SCSI bus sharing mode.' })),
          controllerType: Type.Optional(StringEnum(['lsilogic', 'buslogic', 'lsilogic-sas', 'pvscsi'] as const, { description: 'SCSI controller type.' })),
        },
        { additionalProperties: false, description: 'The SCSI controller the disk hangs off (vSphere).' },
      ),
    ),
  },
  {
    additionalProperties: false,
    description: 'A disk. The disk named "root" sizes the boot disk cloned from the image; other names are extra empty disks. Sizes only grow.',
    ...celRules(
      { rule: 'has(self.size) != has(self.sizeGiB)', message: 'set exactly one of size and sizeGiB' },
      { rule: `${diskItemBytesCel('self')} >= ${diskItemBytesCel('oldSelf')}`, message: 'disk size can only grow' },
    ),
  },
);
export type VMDisk = Static<typeof VMDisk>;

/** User-data is at most this many characters, inline or from a Secret. */
export const MAX_USERDATA_LENGTH = 65536;

const DataSecretRef = (what: string, keys: string) =>
  Type.Object(
    {
      name: { ...ObjectName, description: 'The Secret\'s name, in the VirtualMachine\'s namespace.' },
      key: Type.Optional(
        Type.String({ minLength: 1, maxLength: 253, pattern: '^[-._a-zA-Z0-9]+$', description: `The key holding the ${what}; default the first of ${keys} present.` }),
      ),
    },
    { additionalProperties: false, description: `A Secret holding the ${what}.` },
  );

export const USERDATA_KEYS = ['userdata', 'user-data', 'cloud-init', 'cloud-config'] as const;
export const METADATA_KEYS = ['metadata', 'meta-data', 'meta_data'] as const;
export const IGNITION_KEYS = ['ignition', 'config.ign', 'userdata'] as const;

export const CloudInit = Type.Object(
  {
    inline: Type.Optional(Type.String({ maxLength: MAX_USERDATA_LENGTH, description: 'The user-data itself.' })),
    secretRef: Type.Optional(DataSecretRef('user-data', USERDATA_KEYS.join(', '))),
  },
  {
    additionalProperties: false,
    description: 'cloud-init user-data, read when the VM is created; inline and secretRef together are sent as one MIME multipart document.',
    ...celRules({ rule: 'has(self.inline) || has(self.secretRef)', message: 'set inline or secretRef' }),
  },
);

export const Ignition = Type.Object(
  {
    inline: Type.Optional(Type.String({ maxLength: MAX_USERDATA_LENGTH, description: 'The Ignition config (JSON).' })),
    secretRef: Type.Optional(DataSecretRef('Ignition config', IGNITION_KEYS.join(', '))),
  },
  {
    additionalProperties: false,
    description: 'An Ignition config (Fedora CoreOS, RHCOS) instead of cloud-init.',
    ...celRules({ rule: 'has(self.inline) != has(self.secretRef)', message: 'set exactly one of inline and secretRef' }),
  },
);

export const UserData = Type.Object(
  { cloudInit: Type.Optional(CloudInit), ignition: Type.Optional(Ignition) },
  {
    additionalProperties: false,
    description: 'What the guest reads at first boot: cloud-init user-data or an Ignition config.',
    ...celRules({ rule: '!has(self.cloudInit) || !has(self.ignition)', message: 'set cloudInit or ignition, not both' }),
  },
);

export const MetaData = Type.Object(
  {
    cloudInit: Type.Optional(
      Type.Object(
        {
          inline: Type.Optional(Type.String({ maxLength: MAX_USERDATA_LENGTH, description: 'The meta-data itself (YAML).' })),
          secretRef: Type.Optional(DataSecretRef('meta-data', METADATA_KEYS.join(', '))),
        },
        {
          additionalProperties: false,
          description: 'cloud-init meta-data (instance-id, local-hostname, …); inline and secretRef together are joined with a newline.',
          ...celRules({ rule: 'has(self.inline) || has(self.secretRef)', message: 'set inline or secretRef' }),
        },
      ),
    ),
  },
  { additionalProperties: false, description: 'cloud-init meta-data for the guest.' },
);

export const Placement = Type.Object(
  {
    host: Type.Optional({ ...NetworkName, description: 'The host (node) to create the VM on.' }),
    datastore: Type.Optional({ ...NetworkName, description: 'The datastore / storage pool of the VM\'s disks.' }),
    storagePod: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'A vSphere datastore cluster to pick the datastore from; datastore wins when both are set.' })),
    folder: Type.Optional(
      Type.String({ minLength: 1, maxLength: 1024, description: 'vSphere VM folder, as an inventory path (e.g. /dc1/vm/teams/web) or relative to the datacenter VM folder.' }),
    ),
    cluster: Type.Optional({ ...NetworkName, description: 'The cluster to create the VM in.' }),
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
    snapshotRef: { ...LocalObjectReference, description: 'The VMSnapshot to revert to.' },
    request: Type.String({ minLength: 1, maxLength: 64, description: 'Any value; a new value asks for a new revert (e.g. the current time).' }),
  },
  {
    additionalProperties: false,
    description:
      'Revert the VM once to a Ready VMSnapshot of it. Disks (and memory, for a memory snapshot) go back to the ' +
      'snapshot; the spec then applies again: CPU/memory are set back to the spec and the VM is powered to ' +
      'spec.powerState. status.revert echoes the request once the revert has been started; a failed revert is ' +
      'reported, never retried on its own (change request to try again). Seed spelling of snapshot.revertToRef.',
  },
);

export const CloneSource = Type.Object(
  {
    vmRef: { ...LocalObjectReference, description: 'The VirtualMachine to clone.' },
    linkedClone: Type.Optional(Type.Boolean({ default: true, description: 'Share the source\'s disks copy-on-write where the provider can.' })),
  },
  {
    additionalProperties: false,
    description: 'Create this VM as a clone of another VirtualMachine on the same Provider instead of from an image.',
  },
);

export const ImportedDisk = Type.Object(
  {
    diskID: Type.String({ minLength: 1, maxLength: 253, description: 'The disk on the provider (for libvirt, a volume name).' }),
    path: Type.Optional(Type.String({ maxLength: 4096, description: 'The disk\'s path on the provider.' })),
    format: Type.Optional(StringEnum(['qcow2', 'vmdk', 'raw', 'vdi', 'vhdx'] as const, { description: 'The disk\'s format (qcow2 when unset).' })),
    source: Type.Optional(StringEnum(['migration', 'clone', 'import', 'snapshot', 'manual'] as const, { description: 'Where the disk came from.' })),
    migrationRef: Type.Optional({ ...LocalObjectReference, description: 'The VMMigration that imported the disk.' }),
    sizeGiB: Type.Optional(Type.Integer({ minimum: 1, description: 'The disk\'s expected size in GiB.' })),
  },
  { additionalProperties: false, description: 'Boot from a disk already on the provider (e.g. one a migration imported) instead of an image.' },
);

const LifecycleHandler = (when: string) =>
  Type.Object(
    {
      exec: Type.Optional(
        Type.Object(
          {
            command: Type.Array(Type.String({ maxLength: 4096, description: 'One argument.' }), {
              minItems: 1,
              maxItems: 64,
              description: 'The program and its arguments, run in the guest through its agent (no shell).',
            }),
          },
          { additionalProperties: false, description: 'Run a command in the guest.' },
        ),
      ),
      httpGet: Type.Optional(
        Type.Object(
          {
            path: Type.Optional(Type.String({ maxLength: 2048, description: 'The HTTP path.' })),
            port: Type.Integer({ minimum: 1, maximum: 65535, description: 'The port.' }),
            host: Type.Optional(Type.String({ maxLength: 253, description: 'The host; default the VM\'s first address.' })),
            scheme: Type.Optional(StringEnum(['HTTP', 'HTTPS'] as const, { description: 'HTTP (the default) or HTTPS.' })),
          },
          { additionalProperties: false, description: 'Send an HTTP GET request.' },
        ),
      ),
      snapshot: Type.Optional(
        Type.Object(
          {
            name: Type.String({ minLength: 1, maxLength: 64, description: 'A name for the snapshot.' }),
            includeMemory: Type.Optional(Type.Boolean({ description: 'Include the memory state.' })),
            description: Type.Optional(Type.String({ maxLength: 1024, description: 'The snapshot\'s description.' })),
          },
          { additionalProperties: false, description: 'Take a snapshot of the VM.' },
        ),
      ),
    },
    {
      additionalProperties: false,
      description: `What to do ${when}: one of exec, httpGet and snapshot.`,
      ...celRules({
        rule: '(has(self.exec) ? 1 : 0) + (has(self.httpGet) ? 1 : 0) + (has(self.snapshot) ? 1 : 0) == 1',
        message: 'set exactly one of exec, httpGet and snapshot',
      }),
    },
  );

export const Lifecycle = Type.Object(
  {
    gracefulShutdownTimeout: Type.Optional({
      ...Duration,
      description: 'How long a guest shutdown may take before the VM is powered off hard (default 60s).',
    }),
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
    preStop: Type.Optional(LifecycleHandler('before the VM is powered off or shut down')),
    postStart: Type.Optional(LifecycleHandler('after the VM has been powered on')),
  },
  { additionalProperties: false, description: 'Power and lifecycle behaviour.' },
);

export const DeletionPolicy = StringEnum(['Delete', 'Retain'] as const, {
  description: 'Delete: the hypervisor VM is destroyed with the object. Retain: it is left in place, untouched.',
});

export const VirtualMachineSpec = Type.Object(
  {
    providerRef: {
      ...ObjectReference,
      description: 'The Provider whose hypervisor runs the VM; another namespace\'s must admit this one (its spec.allowedNamespaces).',
      ...celRules({ rule: 'self == oldSelf', message: 'providerRef is immutable' }),
    },
    classRef: NamespacedRef('VMClass'),
    imageRef: Type.Optional(NamespacedRef('VMImage')),
    cloneFrom: Type.Optional(CloneSource),
    importedDisk: Type.Optional(ImportedDisk),
    powerState: Type.Optional(DesiredPowerState),
    networks: Type.Optional(NamedList(VMNetwork, { maxItems: 10, description: 'The NICs, by name.' })),
    disks: Type.Optional(NamedList(VMDisk, { maxItems: 20, description: 'The boot disk\'s size ("root") and extra disks, by name.' })),
    userData: Type.Optional(UserData),
    metaData: Type.Optional(MetaData),
    placement: Type.Optional(Placement),
    placementRef: Type.Optional({ ...LocalObjectReference, description: 'A VMPlacementPolicy of the VM\'s namespace.' }),
    tags: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 128, description: 'One tag.' }), {
        maxItems: 50,
        'x-kubernetes-list-type': 'set',
        description: 'Tags set on the hypervisor VM, next to the ones VirtRigaud-TS manages.',
      }),
    ),
    resources: Type.Optional(
      Type.Object(
        {
          cpu: Type.Optional(Type.Integer({ minimum: 1, maximum: 240, description: 'Virtual CPUs, instead of the VMClass\'s.' })),
          memoryMiB: Type.Optional(Type.Integer({ minimum: 128, maximum: 1048576, description: 'Memory in MiB, instead of the VMClass\'s.' })),
          gpu: Type.Optional(
            Type.Object(
              {
                count: Type.Integer({ minimum: 1, maximum: 8, description: 'How many GPUs.' }),
                type: Type.Optional(Type.String({ maxLength: 128, pattern: '^[a-zA-Z0-9-_]+$', description: 'The GPU model, in the provider\'s terms.' })),
                memory: Type.Optional(Type.Integer({ minimum: 512, description: 'GPU memory in MiB.' })),
              },
              { additionalProperties: false, description: 'GPUs passed through to the VM.' },
            ),
          ),
        },
        { additionalProperties: false, description: 'Per-VM overrides of the VMClass\'s CPUs and memory.' },
      ),
    ),
    snapshot: Type.Optional(
      Type.Object(
        {
          revertToRef: Type.Optional({
            ...LocalObjectReference,
            description: 'Revert once to this Ready VMSnapshot of the VM; naming another snapshot reverts again (upstream spelling of lifecycle.revertRequest).',
          }),
        },
        { additionalProperties: false, description: 'Snapshot operations on the VM.' },
      ),
    ),
    lifecycle: Type.Optional(Lifecycle),
    deletionPolicy: Type.Optional({ ...DeletionPolicy, default: 'Delete' }),
  },
  {
    additionalProperties: false,
    description: 'The VM wanted: where it runs, what it is made from and of, and its power state.',
    ...celRules(
      {
        rule: '(has(self.imageRef) ? 1 : 0) + (has(self.cloneFrom) ? 1 : 0) + (has(self.importedDisk) ? 1 : 0) == 1',
        message: 'set exactly one source: imageRef, cloneFrom or importedDisk',
      },
      { rule: 'has(self.cloneFrom) == has(oldSelf.cloneFrom) && (!has(self.cloneFrom) || self.cloneFrom == oldSelf.cloneFrom)', message: 'cloneFrom is immutable' },
      {
        rule: '!has(self.snapshot) || !has(self.snapshot.revertToRef) || !has(self.lifecycle) || !has(self.lifecycle.revertRequest)',
        message: 'set snapshot.revertToRef or lifecycle.revertRequest, not both',
      },
    ),
  },
);
export type VirtualMachineSpec = Static<typeof VirtualMachineSpec>;

export const VMPhase = StringEnum(
  ['Pending', 'Provisioning', 'Running', 'Stopped', 'Suspended', 'Reconfiguring', 'Deleting', 'Failed'] as const,
  { description: 'Where the VM is in its lifecycle, in one word; the conditions say why.' },
);
export type VMPhase = Static<typeof VMPhase>;

export const ObservedPowerState = StringEnum(['On', 'Off', 'Suspended', 'Unknown'] as const, { description: 'The power state the hypervisor reports.' });
export type ObservedPowerState = Static<typeof ObservedPowerState>;

export const TaskOperation = StringEnum(
  ['Create', 'Delete', 'PowerOn', 'PowerOff', 'Shutdown', 'Reboot', 'Suspend', 'Reset', 'Reconfigure', 'ResizeDisk', 'Revert'] as const,
);
export type TaskOperation = Static<typeof TaskOperation>;

export const TaskStatusRef = Type.Object(
  {
    id: Type.String({ maxLength: 512, description: 'The hypervisor\'s task ID.' }),
    operation: { ...TaskOperation, description: 'What the task does.' },
    startedAt: Type.String({ format: 'date-time', description: 'When it was started.' }),
  },
  { additionalProperties: false, description: 'The hypervisor operation in flight, if any.' },
);
export type TaskStatusRef = Static<typeof TaskStatusRef>;

/** Bounds of what the status reports; what a driver observes beyond them is cut off, never written. */
export const STATUS_LIMITS = { ips: 64, disks: 64, nics: 32, features: 16 } as const;
const Text = (maxLength: number, options: object = {}) => Type.String({ maxLength, ...options });

export const ObservedHardware = Type.Object(
  {
    cpus: Type.Integer({ minimum: 0, description: 'Virtual CPUs.' }),
    memory: Text(32, { description: 'Memory, e.g. 4Gi.' }),
    firmware: Type.Optional(StringEnum(['bios', 'uefi'] as const, { description: 'Firmware.' })),
    machine: Type.Optional(Text(128, { description: 'Machine type.' })),
    disks: Type.Array(
      Type.Object(
        {
          name: Text(128, { description: 'The disk\'s name ("root" for the boot disk).' }),
          size: Text(32, { description: 'Its size, e.g. 40Gi.' }),
          datastore: Type.Optional(Text(256, { description: 'The datastore / storage pool it is on.' })),
          provisioning: Type.Optional(StringEnum(['thin', 'thick'] as const, { description: 'Thin or thick.' })),
        },
        { additionalProperties: false, description: 'One disk.' },
      ),
      { maxItems: STATUS_LIMITS.disks, description: 'The disks.' },
    ),
    nics: Type.Array(
      Type.Object(
        {
          name: Text(128, { description: 'The NIC\'s name.' }),
          mac: Type.Optional(Text(32, { description: 'Its MAC address.' })),
          network: Type.Optional(Text(256, { description: 'The bridge, network or port group it is on.' })),
          vlan: Type.Optional(Type.Integer({ description: 'Its VLAN tag.' })),
          model: Type.Optional(Text(64, { description: 'Its device model.' })),
          mtu: Type.Optional(Type.Integer({ description: 'Its MTU.' })),
          firewall: Type.Optional(Type.Boolean({ description: 'Whether the hypervisor firewall is on for it.' })),
          rateLimitMBps: Type.Optional(Type.Number({ description: 'Its bandwidth limit in MB/s.' })),
        },
        { additionalProperties: false, description: 'One NIC.' },
      ),
      { maxItems: STATUS_LIMITS.nics, description: 'The NICs.' },
    ),
    features: Type.Array(Text(64, { description: 'One feature.' }), {
      maxItems: STATUS_LIMITS.features,
      description: 'Hardware features on, e.g. tpm, secureBoot, nestedVirtualization.',
    }),
  },
  { additionalProperties: false, description: 'The VM\'s hardware as the hypervisor reports it.' },
);
export type ObservedHardware = Static<typeof ObservedHardware>;

export const RevertRecord = Type.Object(
  {
    snapshot: Text(253, { description: 'The VMSnapshot reverted to.' }),
    request: Text(64, { description: 'The request token of that revert.' }),
    snapshotID: Text(512, { description: 'The snapshot on the hypervisor.' }),
    startedAt: Type.String({ format: 'date-time', description: 'When the revert was started.' }),
  },
  { additionalProperties: false, description: 'The last spec.lifecycle.revertRequest started.' },
);
export type RevertRecord = Static<typeof RevertRecord>;

export const CloneRecord = Type.Object(
  {
    vm: Text(253, { description: 'The source VirtualMachine.' }),
    providerID: Text(512, { description: 'The source\'s ID on the hypervisor.' }),
    linked: Type.Boolean({ description: 'Whether the clone is linked (copy-on-write).' }),
    sourceSnapshot: Type.Optional(Text(512, { description: 'The source snapshot a linked clone is based on.' })),
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
    operation: { ...TaskOperation, description: 'The operation that fails.' },
    reason: Text(128, { description: 'Why, in one word.' }),
    message: Text(1024, { description: 'Why, in a sentence.' }),
    count: Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'How many attempts failed in a row.' }),
    lastAttempt: Type.String({ format: 'date-time', maxLength: 64, description: 'When it was last tried.' }),
    retryable: Type.Boolean({ description: 'Whether trying again unchanged may succeed (else it waits 5 minutes or a spec change).' }),
    generation: Type.Optional(Type.Integer({ minimum: 0, description: 'The spec generation it failed with.' })),
  },
  { additionalProperties: false, description: 'The operation that keeps failing: how often, why, and when it was last tried.' },
);
export type FailureRecord = Static<typeof FailureRecord>;

export const ShutdownRecord = Type.Object(
  { startedAt: Type.String({ format: 'date-time', maxLength: 64, description: 'When the first shutdown was asked for.' }) },
  {
    additionalProperties: false,
    description: 'When the first graceful shutdown of the current power-off or restart was asked for; the hard power-off deadline counts from it.',
  },
);
export type ShutdownRecord = Static<typeof ShutdownRecord>;

export const LockRecord = Type.Object(
  {
    lock: Text(64, { description: 'The lock, as the hypervisor names it (backup, migrate, …).' }),
    since: Type.String({ format: 'date-time', maxLength: 64, description: 'Since when it has been seen.' }),
  },
  { additionalProperties: false, description: 'A lock the hypervisor holds on the VM, and since when this controller has seen it.' },
);
export type LockRecord = Static<typeof LockRecord>;

export const PlacementStatus = Type.Object(
  {
    policy: Text(253, { description: 'The VMPlacementPolicy the VM was placed by.' }),
    host: Text(256, { description: 'The host it chose.' }),
    order: Type.Integer({ minimum: 0, description: 'When the host was chosen (ms since the epoch): of VMs racing for one slot, the first keeps it.' }),
    state: StringEnum(['Verifying', 'Placed', 'Releasing'] as const, {
      description:
        'Verifying: created, not started until VMs created concurrently are counted; Placed: verified (or found placed); ' +
        'Releasing: it lost the slot to a VM created before it and is being deleted to be placed again.',
    }),
    rules: Text(64, { description: 'A digest of the policy\'s rules the placement was last checked against.' }),
  },
  { additionalProperties: false, description: 'How spec.placementRef placed the VM.' },
);
export type PlacementStatus = Static<typeof PlacementStatus>;

export const StatusIPs = Type.Array(Text(45, { description: 'One address.' }), {
  maxItems: STATUS_LIMITS.ips,
  description: 'The guest\'s addresses (loopback and link-local left out).',
});
export const ConsoleURL = Text(2048, { description: 'Where the VM\'s console is.' });
export const HostName = Text(256, { description: 'The host the VM runs on.' });

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
    placement: Type.Optional(PlacementStatus),
    ...CommonStatusFields,
  },
  { additionalProperties: false, description: 'The VM as last observed, and what the controller is doing about it.' },
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
