// The Viti Proxmox Operator's API, vitistack.io/v1alpha1 (seed 003 "Proxmox Operator Reference"):
// Machine (namespaced), ProxmoxCluster and ProxmoxNode (cluster-scoped, as the seed writes them).
// Served by the same engine as VirtualMachine: a ProxmoxCluster is a Proxmox provider (its own
// runtime holds its credentials), a Machine resolves into the same desired VM (hooks/viti/).
import { Type, type Static } from '@sinclair/typebox';
import {
  AGE_COLUMN,
  CommonStatusFields,
  ItemName,
  MacAddress,
  NamedList,
  NetworkName,
  ObjectName,
  READY_COLUMN,
  REASON_COLUMN,
  ResourceObject,
  StringEnum,
  VITI_API_VERSION,
  VITI_GROUP,
  VITI_VERSION,
  VlanID,
  celRules,
  type KindDefinition,
} from './common.js';
import { VirtualMachineStatus } from './virtualmachine.js';

const VITI_API = { group: VITI_GROUP, version: VITI_VERSION, category: 'vitistack' } as const;

/** The label naming a Machine's ProxmoxCluster (seed: cluster.vitistack.io/cluster-name). */
export const CLUSTER_LABEL = 'cluster.vitistack.io/cluster-name';

/** The VM IDs the operator assigns itself (seed's VM ID table: 10000–99999, auto-assignment). */
export const OPERATOR_VMID_RANGE = { min: 10000, max: 99999 } as const;

const PROXMOX_NAME = Type.String({
  minLength: 1,
  maxLength: 63,
  pattern: '^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$',
  description: 'A Proxmox node name.',
});

/** A disk size as PVE writes it: a number with K, M, G or T (binary units; an `i` after it is accepted), a bare number is GiB. */
export const MACHINE_DISK_SIZE_PATTERN = '^[1-9][0-9]{0,6}([KMGT]i?)?$';

const SecretKeySelector = Type.Object(
  {
    secretRef: Type.Object(
      {
        name: { ...ObjectName, description: 'The Secret, in the namespace the ProxmoxCluster runtimes run in (the chart\'s namespace).' },
        key: Type.String({ minLength: 1, maxLength: 253, pattern: '^[-._a-zA-Z0-9]+$', description: 'The key of the Secret holding the value.' }),
      },
      { additionalProperties: false, description: 'The Secret and key holding the value.' },
    ),
  },
  { additionalProperties: false, description: 'A value read from a Secret.' },
);

export const ProxmoxCredentials = Type.Object(
  {
    username: Type.Optional(
      Type.String({ minLength: 3, maxLength: 128, pattern: '^[^\\s@!]+@[A-Za-z0-9._-]+$', description: 'The PVE user, e.g. operator@pve.' }),
    ),
    password: Type.Optional({ ...SecretKeySelector, description: 'The user\'s password (ticket authentication).' }),
    tokenID: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 256,
        pattern: '^([^\\s@!]+@[A-Za-z0-9._-]+!)?[A-Za-z][A-Za-z0-9._-]*$',
        description: 'The API token: its name (with username) or the whole user@realm!name.',
      }),
    ),
    tokenSecret: Type.Optional({ ...SecretKeySelector, description: 'The API token\'s secret (recommended over a password).' }),
  },
  {
    additionalProperties: false,
    description: 'How the operator signs in to PVE: a password or an API token, each read from a Secret.',
    ...celRules(
      { rule: 'has(self.password) != has(self.tokenSecret)', message: 'set exactly one of password and tokenSecret' },
      { rule: '!has(self.password) || has(self.username)', message: 'a password needs the username' },
      { rule: 'has(self.tokenID) == has(self.tokenSecret)', message: 'tokenID and tokenSecret go together' },
      {
        rule: "!has(self.tokenID) || self.tokenID.contains('!') || has(self.username)",
        message: 'a tokenID without user@realm! needs the username',
      },
    ),
  },
);

const NameList = (what: string, description: string) =>
  Type.Array({ ...NetworkName, description: what }, { maxItems: 256, 'x-kubernetes-list-type': 'set', description });

const PEM = (description: string) => Type.String({ maxLength: 65536, description });

export const ProxmoxClusterSpec = Type.Object(
  {
    endpoint: Type.String({
      minLength: 9,
      maxLength: 2048,
      pattern: '^https://[^\\s/?#]+(:[0-9]{1,5})?/?$',
      description: 'The PVE API, e.g. https://proxmox.example.com:8006 (the /api2/json path is added).',
    }),
    insecureSkipTLSVerify: Type.Optional(
      Type.Boolean({ description: 'Skip verifying PVE\'s certificate (testing only). Default false: verified, against caCertificate when set.' }),
    ),
    credentials: ProxmoxCredentials,
    caCertificate: Type.Optional(PEM('PEM CA certificate(s) to verify PVE\'s certificate with, instead of the system\'s.')),
    clientCertificate: Type.Optional(PEM('PEM client certificate for mutual TLS (with clientKey).')),
    clientKey: Type.Optional(
      PEM('PEM private key of clientCertificate. Kept in a Secret the operator makes for the cluster\'s runtime; readable by whoever can read this object.'),
    ),
    nodes: Type.Optional(NameList('A PVE node.', 'The nodes Machines may be placed on; all nodes of the cluster when unset.')),
    storages: Type.Optional(NameList('A PVE storage.', 'The storages Machine disks may use; any when unset.')),
    networks: Type.Optional(NameList('A PVE bridge.', 'The bridges Machine NICs may use; any when unset.')),
  },
  {
    additionalProperties: false,
    description: 'A PVE cluster, the credentials to reach it and what Machines may use of it.',
    ...celRules({ rule: 'has(self.clientCertificate) == has(self.clientKey)', message: 'clientCertificate and clientKey go together' }),
  },
);
export type ProxmoxClusterSpec = Static<typeof ProxmoxClusterSpec>;

export const NodeStatus = Type.Object(
  {
    name: Type.String({ maxLength: 63, description: 'The node.' }),
    ready: Type.Boolean({ description: 'Whether the node is online.' }),
    cpu: Type.Optional(Type.Integer({ minimum: 0, description: 'Its CPU threads.' })),
    memory: Type.Optional(Type.Integer({ minimum: 0, description: 'Its memory in bytes.' })),
    vmCount: Type.Optional(Type.Integer({ minimum: 0, description: 'VMs on it.' })),
  },
  { additionalProperties: false, description: 'One node as the cluster lists it.' },
);

export const ProxmoxClusterStatus = Type.Object(
  {
    ready: Type.Optional(Type.Boolean({ description: 'Whether PVE answered the last health check with these credentials.' })),
    version: Type.Optional(Type.String({ maxLength: 64, description: 'The PVE version, e.g. 8.4.1.' })),
    nodes: Type.Optional(Type.Array(NodeStatus, { maxItems: 256, description: 'Per-node status.' })),
    lastHealthCheck: Type.Optional(
      Type.String({ format: 'date-time', description: 'When the health check last ran (moves at most every 5 minutes while nothing changes).' }),
    ),
    runtime: Type.Optional(Type.String({ maxLength: 253, description: 'The Deployment (in the operator\'s namespace) that holds the credentials and talks to PVE.' })),
    ...CommonStatusFields,
  },
  { additionalProperties: false, description: 'Whether the cluster is reachable, and its nodes.' },
);
export type ProxmoxClusterStatus = Static<typeof ProxmoxClusterStatus>;

export const ProxmoxClusterKind: KindDefinition = {
  api: { ...VITI_API, scope: 'Cluster' },
  kind: 'ProxmoxCluster',
  plural: 'proxmoxclusters',
  singular: 'proxmoxcluster',
  shortNames: ['pxc'],
  description: 'A Proxmox VE cluster Machines are made on.',
  spec: ProxmoxClusterSpec,
  status: ProxmoxClusterStatus,
  printerColumns: [
    { name: 'Endpoint', type: 'string', jsonPath: '.spec.endpoint' },
    { name: 'Version', type: 'string', jsonPath: '.status.version' },
    { name: 'Reachable', type: 'boolean', jsonPath: '.status.ready' },
    READY_COLUMN,
    AGE_COLUMN,
    REASON_COLUMN,
  ],
};
export const ProxmoxClusterObject = ResourceObject('ProxmoxCluster', ProxmoxClusterSpec, VITI_API_VERSION);
export type ProxmoxClusterObject = Static<typeof ProxmoxClusterObject>;

export const ProxmoxNodeSpec = Type.Object(
  {
    cluster: { ...ObjectName, description: 'The ProxmoxCluster the node belongs to.' },
    nodeName: { ...PROXMOX_NAME, description: 'The node\'s name in PVE.' },
    maxVMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 100000, description: 'At most this many VMs (all of the node\'s, ours and others) for a Machine to be placed there.' })),
  },
  { additionalProperties: false, description: 'A PVE node of a ProxmoxCluster, and a limit for placing Machines on it.' },
);
export type ProxmoxNodeSpec = Static<typeof ProxmoxNodeSpec>;

const Usage = (what: string, unit: string) =>
  Type.Object(
    {
      total: Type.Integer({ minimum: 0, description: `Total ${what} (${unit}).` }),
      used: Type.Integer({ minimum: 0, description: `${what} allocated to VMs (${unit}).` }),
    },
    { additionalProperties: false, description: `The node's ${what}.` },
  );

export const ProxmoxNodeStatus = Type.Object(
  {
    ready: Type.Optional(Type.Boolean({ description: 'Whether the node is online in its cluster.' })),
    resources: Type.Optional(
      Type.Object(
        { cpu: Usage('CPU', 'cores'), memory: Usage('memory', 'bytes'), storage: Usage('storage', 'bytes') },
        { additionalProperties: false, description: 'Capacity and allocation, from the cluster\'s inventory.' },
      ),
    ),
    vmCount: Type.Optional(Type.Integer({ minimum: 0, description: 'VMs on the node.' })),
    ...CommonStatusFields,
  },
  { additionalProperties: false, description: 'The node as its cluster\'s inventory lists it.' },
);
export type ProxmoxNodeStatus = Static<typeof ProxmoxNodeStatus>;

export const ProxmoxNodeKind: KindDefinition = {
  api: { ...VITI_API, scope: 'Cluster' },
  kind: 'ProxmoxNode',
  plural: 'proxmoxnodes',
  singular: 'proxmoxnode',
  shortNames: ['pxn'],
  description: 'A node of a ProxmoxCluster.',
  spec: ProxmoxNodeSpec,
  status: ProxmoxNodeStatus,
  printerColumns: [
    { name: 'Cluster', type: 'string', jsonPath: '.spec.cluster' },
    { name: 'Node', type: 'string', jsonPath: '.spec.nodeName' },
    { name: 'VMs', type: 'integer', jsonPath: '.status.vmCount' },
    { name: 'Max', type: 'integer', jsonPath: '.spec.maxVMs' },
    READY_COLUMN,
    AGE_COLUMN,
  ],
};
export const ProxmoxNodeObject = ResourceObject('ProxmoxNode', ProxmoxNodeSpec, VITI_API_VERSION);
export type ProxmoxNodeObject = Static<typeof ProxmoxNodeObject>;

export const MachineDisk = Type.Object(
  {
    name: { ...ItemName, description: 'The disk\'s name; the first disk listed is the boot disk (a template\'s boot disk, grown to size).' },
    size: Type.String({ maxLength: 10, pattern: MACHINE_DISK_SIZE_PATTERN, description: 'Size, e.g. 20G or 1T (K, M, G, T are binary units as in PVE; a bare number is GiB). Disks only grow.' }),
    storage: Type.Optional({ ...NetworkName, description: 'The PVE storage; the cluster runtime\'s default (or the template\'s) when unset.' }),
    type: Type.Optional(StringEnum(['ide', 'sata', 'scsi', 'virtio'] as const, { description: 'The bus: ide, sata, scsi or virtio. Default scsi.' })),
    cache: Type.Optional(StringEnum(['none', 'writethrough', 'writeback'] as const, { description: 'The cache mode: none, writethrough or writeback.' })),
    format: Type.Optional(StringEnum(['raw', 'qcow2', 'vmdk'] as const, { description: 'The volume format, where the storage offers one: raw, qcow2 or vmdk.' })),
  },
  { additionalProperties: false, description: 'A disk: `{type}{index}: {storage}:{size}[,format=…][,cache=…]` in PVE.' },
);

export const MachineNetwork = Type.Object(
  {
    name: { ...ItemName, description: 'The interface\'s name; NICs become net0, net1… in the order listed.' },
    bridge: { ...NetworkName, description: 'The PVE bridge (vmbr0…).' },
    model: Type.Optional(StringEnum(['virtio', 'e1000', 'e1000e', 'rtl8139', 'vmxnet3'] as const, { description: 'The NIC model. Default virtio.' })),
    macAddress: Type.Optional({ ...MacAddress, description: 'A fixed MAC address; PVE picks one when unset.' }),
    vlan: Type.Optional({ ...VlanID, description: 'The VLAN tag, 1–4094.' }),
    firewall: Type.Optional(Type.Boolean({ description: 'Enable the PVE firewall on this NIC.' })),
  },
  { additionalProperties: false, description: 'A NIC: `{model},bridge={bridge}[,macaddr=…][,tag=…][,firewall=1]` in PVE.' },
);

export const MachinePowerState = StringEnum(['Running', 'Stopped', 'Suspended'] as const, {
  description:
    'Running (default: started — or resumed — and started again when found off), Stopped (as stopMode says) or Suspended (paused with its memory kept; Running resumes it).',
});

export const MachineSpec = Type.Object(
  {
    name: Type.Optional(
      Type.String({ minLength: 1, maxLength: 63, pattern: '^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$', description: 'The VM\'s name in PVE; the Machine\'s name when unset.' }),
    ),
    vmid: Type.Optional(
      Type.Integer({ minimum: 100, maximum: 999999999, description: 'The PVE VM ID, 100–999999999. Unset: the lowest free ID of 10000–99999, assigned by the operator.' }),
    ),
    node: Type.Optional({ ...PROXMOX_NAME, description: 'The PVE node; unset: chosen by free memory among the allowed, ready nodes under their maxVMs.' }),
    template: Type.Optional(
      Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9]([-A-Za-z0-9._]*[A-Za-z0-9])?$', description: 'The template (name or VM ID) to clone; unset: an empty VM, booting as bootOrder says.' }),
    ),
    cpu: Type.Optional(
      Type.Object(
        {
          cores: Type.Optional(Type.Integer({ minimum: 1, maximum: 128, description: 'Cores per socket, 1–128. Default 1.' })),
          sockets: Type.Optional(Type.Integer({ minimum: 1, maximum: 4, description: 'Sockets, 1–4. Default 1.' })),
          threadsPerCore: Type.Optional(
            Type.Integer({ minimum: 1, maximum: 2, description: 'Threads per core, 1–2. PVE has no such setting in its API: 2 is refused with an Unsupported condition.' }),
          ),
        },
        { additionalProperties: false, description: 'The CPU topology: cores × sockets vCPUs.' },
      ),
    ),
    memory: Type.Optional(
      Type.Integer({ minimum: 67108864, maximum: 4398046511104, description: 'Memory in bytes (at least 64 MiB; PVE gets bytes / 1048576 MB). Default 512 MiB.' }),
    ),
    disks: Type.Optional(NamedList(MachineDisk, { maxItems: 30, description: 'The disks; the first is the boot disk.' })),
    networks: Type.Optional(NamedList(MachineNetwork, { maxItems: 32, description: 'The NICs.' })),
    osType: Type.Optional(StringEnum(['linux', 'windows', 'solaris', 'other'] as const, { description: 'The guest OS PVE tunes for (ostype l26, win11, solaris, other).' })),
    bootOrder: Type.Optional(
      Type.Array(StringEnum(['disk', 'network', 'cdrom'] as const, { description: 'A boot device.' }), {
        maxItems: 3,
        'x-kubernetes-list-type': 'set',
        description: 'Boot devices in order: disk (the boot disk), network (the NICs in order), cdrom.',
      }),
    ),
    agent: Type.Optional(Type.Boolean({ description: 'The QEMU guest agent channel (IP addresses are read through it). Default true.' })),
    balloon: Type.Optional(Type.Boolean({ description: 'Memory ballooning. Default: PVE\'s (on).' })),
    protection: Type.Optional(
      Type.Boolean({ description: 'PVE deletion protection. While on, deleting the Machine waits with a DeletionProtected condition; set it to false to let the delete go on.' }),
    ),
    powerState: Type.Optional(MachinePowerState),
    stopMode: Type.Optional(
      StringEnum(['Shutdown', 'Stop'] as const, { description: 'How Stopped is reached: Shutdown (default: the guest shuts down, stopped after 5 minutes) or Stop (at once).' }),
    ),
    restartRequest: Type.Optional(
      Type.String({ maxLength: 64, description: 'Change this value to restart the VM once, as restartMode says; status.virtualMachine.restartRequest echoes it.' }),
    ),
    restartMode: Type.Optional(
      StringEnum(['Graceful', 'Reset'] as const, {
        description: 'How restartRequest restarts: Graceful (default: shutdown, pending changes applied, start) or Reset (a hard reset at once, like the reset button; pending changes stay pending).',
      }),
    ),
  },
  { additionalProperties: false, description: 'A VM on the ProxmoxCluster named by the cluster.vitistack.io/cluster-name label.' },
);
export type MachineSpec = Static<typeof MachineSpec>;

export const MachinePhase = StringEnum(['Pending', 'Creating', 'Running', 'Stopped', 'Error'] as const, { description: 'Pending, Creating, Running, Stopped or Error.' });
export type MachinePhase = Static<typeof MachinePhase>;

export const MachineStatus = Type.Object(
  {
    phase: Type.Optional(MachinePhase),
    vmid: Type.Optional(Type.Integer({ minimum: 1, description: 'The VM ID in PVE.' })),
    node: Type.Optional(Type.String({ maxLength: 63, description: 'The node the VM is on.' })),
    ipAddresses: Type.Optional(Type.Array(Type.String({ maxLength: 45, description: 'An address.' }), { maxItems: 64, description: 'The guest\'s addresses, from the guest agent.' })),
    lastUpdated: Type.Optional(Type.String({ format: 'date-time', description: 'When this status last changed.' })),
    cluster: Type.Optional(Type.String({ maxLength: 253, description: 'The ProxmoxCluster serving the Machine.' })),
    nextRetryAt: Type.Optional(Type.String({ format: 'date-time', description: 'When a failed step is tried again (back-off 1 s, 2 s, 4 s, 8 s … up to 5 minutes).' })),
    retryCount: Type.Optional(Type.Integer({ minimum: 0, description: 'Failures in a row of the step tried again.' })),
    virtualMachine: Type.Optional({ ...VirtualMachineStatus, description: 'The VM as the shared VirtualMachine engine reports it: task in flight, failure back-off, observed hardware.' }),
    ...CommonStatusFields,
  },
  { additionalProperties: false, description: 'The Machine\'s VM as last observed.' },
);
export type MachineStatus = Static<typeof MachineStatus>;

export const MachineKind: KindDefinition = {
  api: { ...VITI_API, scope: 'Namespaced' },
  kind: 'Machine',
  plural: 'machines',
  singular: 'machine',
  shortNames: ['vitim'],
  description: 'A Proxmox VE virtual machine (Viti Proxmox Operator API).',
  spec: MachineSpec,
  status: MachineStatus,
  printerColumns: [
    { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
    { name: 'VMID', type: 'integer', jsonPath: '.status.vmid' },
    { name: 'Node', type: 'string', jsonPath: '.status.node' },
    { name: 'IP', type: 'string', jsonPath: '.status.ipAddresses[0]' },
    READY_COLUMN,
    AGE_COLUMN,
    { name: 'Cluster', type: 'string', jsonPath: `.metadata.labels.cluster\\.vitistack\\.io/cluster-name`, priority: 1 },
    REASON_COLUMN,
  ],
};
export const MachineObject = ResourceObject('Machine', MachineSpec, VITI_API_VERSION);
export type MachineObject = Static<typeof MachineObject>;
