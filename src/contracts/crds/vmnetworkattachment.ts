// VMNetworkAttachment in both spellings: the seeds' (`bridge` or `network: "<name>"`, `vlan`,
// `model`, `mtu`, `firewall`, `rateLimitMBps`) and upstream VirtRigaud's v1beta1 (`network` as an
// object with one branch per hypervisor, plus `ipAllocation`, `security`, `qos`, `metadata`).
// `spec.network` holds a string in one spelling and an object in the other, so the CRD declares it
// untyped: the apiserver checks nothing below it and CEL cannot see it. The exact shape of the
// object form is NetworkConfigObject below, which normalize/vmnetworkattachment.ts checks; it is
// never emitted into the CRD. Fields with two spellings carry no schema default.
import { Type, type Static } from '@sinclair/typebox';
import {
  AGE_COLUMN,
  CommonStatusFields,
  NetworkName,
  READY_COLUMN,
  REASON_COLUMN,
  ResourceObject,
  StringEnum,
  Untyped,
  VlanID,
  celRules,
  type KindDefinition,
} from './common.js';

export const NIC_MODELS = ['virtio', 'e1000', 'e1000e', 'rtl8139', 'vmxnet3'] as const;
export const NicModel = StringEnum(NIC_MODELS);
export type NicModel = Static<typeof NicModel>;

const Text = (maxLength: number, description: string) => Type.String({ maxLength, description });
const IPV4 = '^((25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\\.){3}(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)$';
const IPV4_CIDR = '^((25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\\.){3}(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)/([0-9]|[1-2][0-9]|3[0-2])$';
const UpstreamRef = (description: string) =>
  Type.Object(
    { name: Type.String({ maxLength: 253, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', description: 'Name of the object.' }) },
    { additionalProperties: false, description },
  );
const VlanNumber = (description: string) => Type.Integer({ minimum: 1, maximum: 4094, description });

// ---- Upstream's object form of spec.network (checked by normalize, not by the apiserver) -------

export const VSphereNetworkConfig = Type.Object(
  {
    portgroup: Type.Optional(Text(255, 'Port group (standard or distributed) by name or inventory path.')),
    distributedSwitch: Type.Optional(
      Type.Object(
        {
          name: Text(255, 'Distributed switch name.'),
          uuid: Type.Optional(Text(64, 'Distributed switch UUID.')),
          portgroupType: Type.Optional(StringEnum(['ephemeral', 'distributed'] as const, { description: 'Port binding of the port group.' })),
        },
        { additionalProperties: false, description: 'The distributed switch of the port group (no driver checks it).' },
      ),
    ),
    vlan: Type.Optional(
      Type.Object(
        {
          type: Type.Optional(StringEnum(['none', 'vlan', 'pvlan', 'trunk'] as const, { description: 'VLAN mode (default none; vlan with vlanID).' })),
          vlanID: Type.Optional(VlanNumber('VLAN ID (type vlan).')),
          trunkVlanIDs: Type.Optional(Type.Array(VlanNumber('A trunked VLAN ID.'), { maxItems: 100, description: 'VLAN IDs of a trunk.' })),
          primaryVlanID: Type.Optional(VlanNumber('Primary VLAN of a private VLAN.')),
          secondaryVlanID: Type.Optional(VlanNumber('Secondary VLAN of a private VLAN.')),
        },
        { additionalProperties: false, description: 'VLAN of the NIC.' },
      ),
    ),
    security: Type.Optional(
      Type.Object(
        {
          allowPromiscuous: Type.Optional(Type.Boolean({ description: 'Promiscuous mode (default false).' })),
          allowMACChanges: Type.Optional(Type.Boolean({ description: 'MAC address changes (default true).' })),
          allowForgedTransmits: Type.Optional(Type.Boolean({ description: 'Forged transmits (default true).' })),
        },
        { additionalProperties: false, description: 'Port group security policy (the port group\'s own applies).' },
      ),
    ),
    trafficShaping: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean({ description: 'Shape traffic (default false).' })),
          averageBandwidth: Type.Optional(Type.Integer({ minimum: 1000, description: 'Average bandwidth, bits per second.' })),
          peakBandwidth: Type.Optional(Type.Integer({ minimum: 1000, description: 'Peak bandwidth, bits per second.' })),
          burstSize: Type.Optional(Type.Integer({ minimum: 1024, description: 'Burst size, bytes.' })),
        },
        { additionalProperties: false, description: 'Traffic shaping of the port.' },
      ),
    ),
    pciSlotNumber: Type.Optional(Type.Integer({ minimum: 32, maximum: 1024, description: 'PCI slot of the adapter.' })),
    adapterType: Type.Optional(
      StringEnum(['vmxnet3', 'e1000', 'e1000e'] as const, { description: 'Adapter type (default vmxnet3: the template\'s adapter, vmxnet3 for added NICs).' }),
    ),
  },
  { additionalProperties: false, description: 'What a vSphere provider attaches the NIC to.' },
);

export const LibvirtNetworkConfig = Type.Object(
  {
    networkName: Type.Optional(Text(255, 'A libvirt network.')),
    bridge: Type.Optional(
      Type.Object(
        {
          name: Text(15, 'A host bridge.'),
          stp: Type.Optional(Type.Boolean({ description: 'Spanning tree on the bridge (default false).' })),
          delay: Type.Optional(Type.Integer({ minimum: 0, maximum: 30, description: 'STP forwarding delay.' })),
        },
        { additionalProperties: false, description: 'A host bridge to attach to.' },
      ),
    ),
    model: Type.Optional(
      StringEnum(['virtio', 'e1000', 'e1000e', 'rtl8139', 'pcnet', 'ne2k_pci'] as const, { description: 'NIC model (default virtio).' }),
    ),
    driver: Type.Optional(
      Type.Object(
        {
          name: Type.Optional(StringEnum(['kvm', 'vfio', 'uio'] as const, { description: 'Back-end driver.' })),
          queues: Type.Optional(Type.Integer({ minimum: 1, maximum: 16, description: 'Queues.' })),
          txMode: Type.Optional(StringEnum(['iothread', 'timer'] as const, { description: 'TX mode.' })),
          ioEventFD: Type.Optional(Type.Boolean({ description: 'ioeventfd.' })),
          eventIDX: Type.Optional(Type.Boolean({ description: 'event_idx.' })),
        },
        { additionalProperties: false, description: 'Driver tuning of the interface.' },
      ),
    ),
    filterRef: Type.Optional(
      Type.Object(
        {
          filter: Text(255, 'nwfilter name.'),
          parameters: Type.Optional(
            Type.Record(Type.String({ maxLength: 256 }), Type.String({ maxLength: 1024 }), { maxProperties: 20, description: 'Filter parameters.' }),
          ),
        },
        { additionalProperties: false, description: 'A libvirt network filter on the interface.' },
      ),
    ),
  },
  { additionalProperties: false, description: 'What a libvirt provider attaches the NIC to.' },
);

export const ProxmoxNetworkConfig = Type.Object(
  {
    bridge: Type.Optional(Type.String({ maxLength: 15, pattern: '^vmbr[0-9]+$', description: 'Linux bridge (vmbr0…).' })),
    model: Type.Optional(StringEnum(['virtio', 'e1000', 'rtl8139', 'vmxnet3'] as const, { description: 'NIC model (default virtio).' })),
    vlanTag: Type.Optional(VlanNumber('VLAN tag.')),
    firewall: Type.Optional(Type.Boolean({ description: 'The Proxmox firewall on the NIC (default false).' })),
    rateLimit: Type.Optional(Type.Integer({ minimum: 1, description: 'Bandwidth limit in MB/s.' })),
    mtu: Type.Optional(Type.Integer({ minimum: 68, maximum: 65520, description: 'MTU of the NIC.' })),
  },
  { additionalProperties: false, description: 'What a Proxmox VE provider attaches the NIC to.' },
);

export const NETWORK_TYPES = ['bridged', 'nat', 'isolated', 'host-only', 'external'] as const;

/** Upstream's NetworkConfig: the exact shape of spec.network when it is an object. */
export const NetworkConfigObject = Type.Object(
  {
    vsphere: Type.Optional(VSphereNetworkConfig),
    libvirt: Type.Optional(LibvirtNetworkConfig),
    proxmox: Type.Optional(ProxmoxNetworkConfig),
    type: Type.Optional(StringEnum(NETWORK_TYPES, { description: 'Kind of network (default bridged).' })),
    mtu: Type.Optional(Type.Integer({ minimum: 68, maximum: 9000, description: 'MTU (default 1500: the network\'s own).' })),
  },
  { additionalProperties: false },
);
export type NetworkConfigObject = Static<typeof NetworkConfigObject>;

export const NETWORK_BRANCHES = ['vsphere', 'libvirt', 'proxmox'] as const;

// ---- The CRD ------------------------------------------------------------------------------------

const NETWORK_DESCRIPTION =
  'What the NIC attaches to, in either spelling. Seed spelling: a string, a named network (libvirt network, vSphere ' +
  'port group, Proxmox bridge); set network or bridge, not both. Upstream spelling: an object with one branch per ' +
  'hypervisor, each provider reading its own (the simulator the first of proxmox, vsphere, libvirt): vsphere ' +
  '{portgroup, distributedSwitch, vlan {type, vlanID, …}, security, trafficShaping, pciSlotNumber, adapterType}, libvirt ' +
  '{networkName | bridge {name, stp, delay}, model, driver, filterRef}, proxmox {bridge, model, vlanTag, firewall, ' +
  'rateLimit, mtu}, plus type (bridged, the default, or external: attach to the named network) and mtu (1500, the ' +
  'default, is the network\'s own). The apiserver does not check this field; the Ready condition names any mistake in it.';

const Descriptive = 'Descriptive only: shown by kubectl, never sent to the hypervisor.';

export const IPAllocation = Type.Object(
  {
    type: Type.Optional(
      StringEnum(['DHCP', 'Static', 'Pool', 'None'] as const, {
        default: 'DHCP',
        description: 'DHCP (the default), Static (staticConfig, through cloud-init), Pool or None (no driver offers them).',
      }),
    ),
    staticConfig: Type.Optional(
      Type.Object(
        {
          address: Type.String({ pattern: IPV4_CIDR, description: 'IPv4 address with prefix length, e.g. 10.0.0.5/24.' }),
          gateway: Type.Optional(Type.String({ pattern: IPV4, description: 'Default gateway.' })),
          routes: Type.Optional(
            Type.Array(
              Type.Object(
                {
                  destination: Type.String({ pattern: IPV4_CIDR, description: 'Destination network, CIDR.' }),
                  gateway: Type.String({ pattern: IPV4, description: 'Next hop.' }),
                  metric: Type.Optional(Type.Integer({ minimum: 0, maximum: 65535, description: 'Route metric.' })),
                },
                { additionalProperties: false, description: 'A static route.' },
              ),
              { maxItems: 20, description: 'Static routes (no driver sets them).' },
            ),
          ),
        },
        { additionalProperties: false, description: 'The static address (type Static).' },
      ),
    ),
    poolConfig: Type.Optional(
      Type.Object(
        {
          poolRef: UpstreamRef('The IP pool.'),
          preferredIP: Type.Optional(Type.String({ pattern: IPV4, description: 'Address to ask the pool for.' })),
        },
        { additionalProperties: false, description: 'An IP pool to allocate from (type Pool).' },
      ),
    ),
    dhcpConfig: Type.Optional(
      Type.Object(
        {
          clientID: Type.Optional(Text(255, 'DHCP client identifier.')),
          hostname: Type.Optional(Text(255, 'Host name to send.')),
          options: Type.Optional(
            Type.Record(Type.String({ maxLength: 256 }), Type.String({ maxLength: 1024, description: 'Option value.' }), {
              maxProperties: 20,
              description: 'DHCP options.',
            }),
          ),
        },
        { additionalProperties: false, description: 'DHCP client settings (type DHCP; no driver sets them).' },
      ),
    ),
    dnsConfig: Type.Optional(
      Type.Object(
        {
          servers: Type.Optional(
            Type.Array(Type.String({ maxLength: 45, description: 'A DNS server address.' }), {
              maxItems: 10,
              description: 'DNS servers, set with a static address.',
            }),
          ),
          searchDomains: Type.Optional(Type.Array(Type.String({ maxLength: 253, description: 'A search domain.' }), { maxItems: 10, description: 'Search domains.' })),
          options: Type.Optional(
            Type.Record(Type.String({ maxLength: 256 }), Type.String({ maxLength: 1024, description: 'Option value.' }), {
              maxProperties: 10,
              description: 'Resolver options.',
            }),
          ),
        },
        { additionalProperties: false, description: 'DNS settings of the NIC.' },
      ),
    ),
  },
  { additionalProperties: false, description: 'How the NIC gets its IP address (upstream spelling).' },
);

export const NetworkSecurity = Type.Object(
  {
    firewall: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean({ description: 'The hypervisor firewall on the NIC (upstream spelling of firewall).' })),
          defaultPolicy: Type.Optional(
            StringEnum(['ACCEPT', 'DROP', 'REJECT'] as const, { description: 'Policy for traffic no rule matches (ACCEPT, the default).' }),
          ),
          rules: Type.Optional(
            Type.Array(
              Type.Object(
                {
                  name: Text(255, 'Rule name.'),
                  action: StringEnum(['ACCEPT', 'DROP', 'REJECT'] as const, { description: 'What the rule does.' }),
                  direction: StringEnum(['in', 'out', 'inout'] as const, { description: 'Traffic direction.' }),
                  protocol: Type.Optional(StringEnum(['tcp', 'udp', 'icmp', 'all'] as const, { description: 'Protocol.' })),
                  sourceCIDR: Type.Optional(Text(64, 'Source network.')),
                  destinationCIDR: Type.Optional(Text(64, 'Destination network.')),
                  ports: Type.Optional(
                    Type.Object(
                      {
                        start: Type.Integer({ minimum: 1, maximum: 65535, description: 'First port.' }),
                        end: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'Last port (default start).' })),
                      },
                      { additionalProperties: false, description: 'Port range.' },
                    ),
                  ),
                  priority: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Rule priority.' })),
                },
                { additionalProperties: false, description: 'A firewall rule.' },
              ),
              { maxItems: 100, description: 'Firewall rules (no driver sets them).' },
            ),
          ),
        },
        { additionalProperties: false, description: 'Firewall of the NIC.' },
      ),
    ),
    isolation: Type.Optional(
      Type.Object(
        {
          mode: Type.Optional(StringEnum(['none', 'strict', 'custom'] as const, { description: 'Isolation mode.' })),
          allowedNetworks: Type.Optional(Type.Array(Text(64, 'A network, CIDR.'), { maxItems: 50, description: 'Networks the NIC may reach.' })),
          deniedNetworks: Type.Optional(Type.Array(Text(64, 'A network, CIDR.'), { maxItems: 50, description: 'Networks the NIC may not reach.' })),
        },
        { additionalProperties: false, description: 'Network isolation (no driver offers it).' },
      ),
    ),
    encryption: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean({ description: 'Encrypt the traffic (default false).' })),
          protocol: Type.Optional(StringEnum(['ipsec', 'wireguard', 'openvpn'] as const, { description: 'Encryption protocol.' })),
          keyRef: Type.Optional(UpstreamRef('Secret with the keys.')),
        },
        { additionalProperties: false, description: 'Traffic encryption (no driver offers it).' },
      ),
    ),
  },
  { additionalProperties: false, description: 'Security settings of the NIC (upstream spelling).' },
);

export const NetworkQoS = Type.Object(
  {
    ingressLimit: Type.Optional(Type.Integer({ minimum: 1000, description: 'Inbound limit, bits per second.' })),
    egressLimit: Type.Optional(Type.Integer({ minimum: 1000, description: 'Outbound limit, bits per second.' })),
    priority: Type.Optional(Type.Integer({ minimum: 0, maximum: 7, description: 'Traffic priority.' })),
    dscp: Type.Optional(Type.Integer({ minimum: 0, maximum: 63, description: 'DSCP marking.' })),
  },
  { additionalProperties: false, description: 'Quality of service (no driver offers it; a rate limit in MB/s is rateLimitMBps or network.proxmox.rateLimit).' },
);

export const NetworkMetadata = Type.Object(
  {
    displayName: Type.Optional(Text(255, `Human-readable name. ${Descriptive}`)),
    description: Type.Optional(Text(1024, `What the network is. ${Descriptive}`)),
    environment: Type.Optional(StringEnum(['dev', 'staging', 'prod', 'test', 'qa', 'uat'] as const, { description: `Environment. ${Descriptive}` })),
    tags: Type.Optional(
      Type.Record(Type.String({ maxLength: 316 }), Type.String({ maxLength: 4096, description: 'A value.' }), {
        maxProperties: 50,
        description: `Key-value tags. ${Descriptive}`,
      }),
    ),
  },
  { additionalProperties: false, description: `Facts about the network for humans (upstream spelling). ${Descriptive}` },
);

export const VMNetworkAttachmentSpec = Type.Object(
  {
    bridge: Type.Optional({ ...NetworkName, description: 'Host bridge (vmbr0, br0) to attach to (seed spelling; set bridge or network, not both).' }),
    network: Type.Optional(Untyped<unknown>({ description: NETWORK_DESCRIPTION })),
    vlan: Type.Optional({ ...VlanID, description: 'VLAN tag of the NIC (seed spelling).' }),
    model: Type.Optional({ ...NicModel, description: 'NIC model (seed spelling; default virtio).' }),
    mtu: Type.Optional(Type.Integer({ minimum: 576, maximum: 65520, description: 'MTU of the NIC (seed spelling).' })),
    firewall: Type.Optional(Type.Boolean({ description: 'Enable the hypervisor firewall on the NIC (seed spelling of security.firewall.enabled).' })),
    rateLimitMBps: Type.Optional(Type.Number({ minimum: 0, maximum: 100000, description: 'Bandwidth limit in MB/s (seed spelling).' })),
    ipAllocation: Type.Optional(IPAllocation),
    security: Type.Optional(NetworkSecurity),
    qos: Type.Optional(NetworkQoS),
    metadata: Type.Optional(NetworkMetadata),
  },
  {
    additionalProperties: false,
    description: 'A network NICs attach to, with NIC settings, in the seed or the upstream spelling, not both.',
    ...celRules({
      rule: '!has(self.firewall) || !has(self.security) || !has(self.security.firewall) || !has(self.security.firewall.enabled)',
      message: 'set firewall or security.firewall.enabled, not both',
    }),
  },
);
export type VMNetworkAttachmentSpec = Static<typeof VMNetworkAttachmentSpec>;

export const VMNetworkAttachmentStatus = Type.Object(
  {
    branches: Type.Optional(
      Type.Array(StringEnum(NETWORK_BRANCHES, { description: 'A branch of spec.network.' }), {
        maxItems: NETWORK_BRANCHES.length,
        description: 'The hypervisor branches spec.network holds, when it is an object.',
      }),
    ),
    ...CommonStatusFields,
  },
  { additionalProperties: false, description: 'Whether the attachment is valid.' },
);

export const VMNetworkAttachmentKind: KindDefinition = {
  kind: 'VMNetworkAttachment',
  plural: 'vmnetworkattachments',
  singular: 'vmnetworkattachment',
  shortNames: ['vrnet', 'vmnet'],
  description: 'A network VirtualMachine NICs attach to, with its NIC settings.',
  spec: VMNetworkAttachmentSpec,
  status: VMNetworkAttachmentStatus,
  printerColumns: [
    { name: 'Bridge', type: 'string', jsonPath: '.spec.bridge' },
    { name: 'Network', type: 'string', jsonPath: '.spec.network' },
    { name: 'VLAN', type: 'integer', jsonPath: '.spec.vlan' },
    { name: 'Branches', type: 'string', jsonPath: '.status.branches', priority: 1 },
    { name: 'IP', type: 'string', jsonPath: '.spec.ipAllocation.type', priority: 1 },
    { name: 'Display Name', type: 'string', jsonPath: '.spec.metadata.displayName', priority: 1 },
    READY_COLUMN,
    AGE_COLUMN,
    REASON_COLUMN,
  ],
};

export const VMNetworkAttachmentObject = ResourceObject('VMNetworkAttachment', VMNetworkAttachmentSpec);
export type VMNetworkAttachmentObject = Static<typeof VMNetworkAttachmentObject>;
