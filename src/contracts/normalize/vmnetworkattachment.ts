// VMNetworkAttachment, either spelling → the settings of one NIC. Pure and table-tested
// (test/contracts/vmnetworkattachment-shapes.test.ts).
//
// Seed spelling: `bridge` or `network: "<name>"`, with `vlan`, `model`, `mtu`, `firewall`,
// `rateLimitMBps`. Upstream spelling: `network` as an object with a branch per hypervisor
// (vsphere, libvirt, proxmox) plus `type` and `mtu`, and `ipAllocation`, `security`, `qos`,
// `metadata` beside it. A provider reads its own branch; the simulator reads the first present of
// proxmox, vsphere, libvirt. The seed's NIC settings may sit beside an upstream `network` when
// the branch read does not set the same thing (then the object is refused: both spellings).
//
// Who answers what: VMNETWORKATTACHMENT_FIELDS names every field whose meaning needs a driver
// capability or that no driver honours. normalizeVMNetworkAttachment answers `unsupported` only
// when no branch fits the provider type, or for DNS servers without a static address (a
// combination no single rule can see).
import { isIP } from 'node:net';
import type { ProviderType } from '../crds/provider.js';
import { NETWORK_BRANCHES, NetworkConfigObject, type VMNetworkAttachmentSpec } from '../crds/vmnetworkattachment.js';
import type { NicSpec } from '../driver.js';
import { NO_DRIVER, problem, unsupported, type BranchType, type FieldRule, type Normalized } from './common.js';
import { shapeProblem } from './shape.js';

export interface CanonicalNic {
  /** The NIC's settings; the VirtualMachine's `networks[]` entry names it and may override some. */
  nic: Omit<NicSpec, 'name'>;
  /** The per-hypervisor branch of spec.network that was read; undefined for the seed spelling. */
  branch?: BranchType;
}

/** The branches a provider type reads, in order of preference (types no driver serves read none). */
const READ_ORDER: Readonly<Record<ProviderType, readonly BranchType[]>> = {
  simulator: ['proxmox', 'vsphere', 'libvirt'],
  vsphere: ['vsphere'],
  libvirt: ['libvirt'],
  proxmox: ['proxmox'],
  firecracker: [],
  qemu: [],
};

/** Upstream's default MTU: what the network gives, so written or not it asks nothing of the driver. */
const UPSTREAM_DEFAULT_MTU = 1500;
const NETWORK_NAME = /^[A-Za-z0-9][-A-Za-z0-9_.]*$/;

const given = (value: string | undefined): value is string => value !== undefined && value !== '';

type Network = { form: 'bridge'; bridge: string } | { form: 'name'; name: string } | { form: 'object'; network: NetworkConfigObject; branches: BranchType[] };
type Read<T> = { ok: true; value: T } | { ok: false; problem: string };

/** A seed NIC setting beside the upstream spelling of the same thing. */
function bothSpellings(spec: VMNetworkAttachmentSpec, network: NetworkConfigObject): string | undefined {
  const { vsphere, libvirt, proxmox } = network;
  const pairs: [keyof VMNetworkAttachmentSpec, string, unknown][] = [
    ['vlan', 'spec.network.proxmox.vlanTag', proxmox?.vlanTag],
    ['vlan', 'spec.network.vsphere.vlan.vlanID', vsphere?.vlan?.vlanID],
    ['model', 'spec.network.proxmox.model', proxmox?.model],
    ['model', 'spec.network.libvirt.model', libvirt?.model],
    ['model', 'spec.network.vsphere.adapterType', vsphere?.adapterType],
    ['mtu', 'spec.network.mtu', network.mtu],
    ['mtu', 'spec.network.proxmox.mtu', proxmox?.mtu],
    ['firewall', 'spec.network.proxmox.firewall', proxmox?.firewall],
    ['rateLimitMBps', 'spec.network.proxmox.rateLimit', proxmox?.rateLimit],
  ];
  const pair = pairs.find(([seed, , upstream]) => spec[seed] !== undefined && upstream !== undefined);
  return pair === undefined ? undefined : `set spec.${pair[0]} or ${pair[1]}, not both`;
}

function readIPAllocation(spec: VMNetworkAttachmentSpec): string | undefined {
  const allocation = spec.ipAllocation;
  if (allocation === undefined) return undefined;
  const type = allocation.type ?? 'DHCP';
  if (type === 'Static' && allocation.staticConfig === undefined) return 'spec.ipAllocation: type Static needs staticConfig';
  if (allocation.staticConfig !== undefined && type !== 'Static') return `spec.ipAllocation.staticConfig needs type Static, not ${type}`;
  if (type === 'Pool' && allocation.poolConfig === undefined) return 'spec.ipAllocation: type Pool needs poolConfig';
  if (allocation.poolConfig !== undefined && type !== 'Pool') return `spec.ipAllocation.poolConfig needs type Pool, not ${type}`;
  if (allocation.dhcpConfig !== undefined && type !== 'DHCP') return `spec.ipAllocation.dhcpConfig needs type DHCP, not ${type}`;
  const servers = allocation.dnsConfig?.servers ?? [];
  const bad = servers.findIndex((server) => isIP(server) === 0);
  if (bad >= 0) return `spec.ipAllocation.dnsConfig.servers[${bad}] is not an IP address`;
  return undefined;
}

/** Everything that does not depend on the provider. */
function readNetwork(spec: VMNetworkAttachmentSpec): Read<Network> {
  const fail = (message: string): Read<Network> => ({ ok: false, problem: message });
  const network = spec.network === null ? undefined : spec.network;
  if (spec.bridge !== undefined && network !== undefined) return fail('set exactly one of spec.bridge and spec.network, not both');
  if (spec.bridge === undefined && network === undefined) return fail('set exactly one of spec.bridge and spec.network');
  const allocation = readIPAllocation(spec);
  if (allocation !== undefined) return fail(allocation);
  // The CRD refuses it too (CEL); checked here for objects that did not come through the apiserver.
  if (spec.firewall !== undefined && spec.security?.firewall?.enabled !== undefined) return fail('set spec.firewall or spec.security.firewall.enabled, not both');
  if (spec.bridge !== undefined) return { ok: true, value: { form: 'bridge', bridge: spec.bridge } };
  if (typeof network === 'string') {
    if (network.length > 128 || !NETWORK_NAME.test(network)) {
      return fail('spec.network must be a network name: up to 128 letters, digits, "-", "_" or ".", starting with a letter or digit');
    }
    return { ok: true, value: { form: 'name', name: network } };
  }
  if (network === null || typeof network !== 'object' || Array.isArray(network)) {
    return fail('spec.network must be a network name, or an object with vsphere, libvirt or proxmox');
  }
  const shape = shapeProblem(NetworkConfigObject, network, 'spec.network');
  if (shape !== undefined) return fail(shape);
  const object = network as NetworkConfigObject;
  const branches = NETWORK_BRANCHES.filter((branch) => object[branch] !== undefined);
  if (branches.length === 0) return fail('spec.network names no network: set vsphere, libvirt or proxmox');

  const { vsphere, libvirt, proxmox } = object;
  if (vsphere !== undefined) {
    if (!given(vsphere.portgroup)) return fail('spec.network.vsphere: set portgroup');
    const vlan = vsphere.vlan;
    if (vlan?.type === 'vlan' && vlan.vlanID === undefined) return fail('spec.network.vsphere.vlan: type vlan needs vlanID');
    if (vlan?.vlanID !== undefined && vlan.type !== undefined && vlan.type !== 'vlan') {
      return fail(`spec.network.vsphere.vlan.vlanID needs type vlan, not ${vlan.type}`);
    }
  }
  if (libvirt !== undefined) {
    if (given(libvirt.networkName) && libvirt.bridge !== undefined) return fail('spec.network.libvirt: set networkName or bridge, not both');
    if (!given(libvirt.networkName) && libvirt.bridge === undefined) return fail('spec.network.libvirt: set networkName or bridge');
  }
  if (proxmox !== undefined) {
    if (!given(proxmox.bridge)) return fail('spec.network.proxmox: set bridge');
    if (proxmox.mtu !== undefined && object.mtu !== undefined && proxmox.mtu !== object.mtu) {
      return fail('spec.network.mtu and spec.network.proxmox.mtu differ: set one');
    }
    const enabled = spec.security?.firewall?.enabled;
    if (proxmox.firewall !== undefined && enabled !== undefined && proxmox.firewall !== enabled) {
      return fail('spec.network.proxmox.firewall and spec.security.firewall.enabled differ: set one');
    }
  }
  const both = bothSpellings(spec, object);
  if (both !== undefined) return fail(both);
  return { ok: true, value: { form: 'object', network: object, branches } };
}

/**
 * Whether a VMNetworkAttachment is valid whatever provider uses it: exactly one of bridge and
 * network, the exact shape of an object spec.network, one network in each branch, no setting in
 * both spellings, an ipAllocation that agrees with its type. Undefined when it is.
 */
export function checkVMNetworkAttachment(spec: VMNetworkAttachmentSpec): string | undefined {
  const network = readNetwork(spec);
  return network.ok ? undefined : network.problem;
}

/** The hypervisor branches an object spec.network holds (for status); undefined for the seed spelling. */
export function networkBranches(spec: VMNetworkAttachmentSpec): BranchType[] | undefined {
  const network = readNetwork(spec);
  return network.ok && network.value.form === 'object' ? network.value.branches : undefined;
}

/** Copies the keys whose value is not undefined (exactOptionalPropertyTypes-friendly). */
function definedOnly<T extends object>(object: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined)) as { [K in keyof T]?: Exclude<T[K], undefined> };
}

/**
 * The NIC settings a provider of `providerType` applies. `branch` says which per-hypervisor
 * branch was read (pass it to fieldUses). Defaults: model virtio, which drivers read as their
 * default NIC (vSphere: the template's adapter, vmxnet3 for added NICs, what upstream's default
 * adapterType vmxnet3 asks); no MTU (the network's own) where upstream says 1500; DHCP unless
 * ipAllocation says Static.
 */
export function normalizeVMNetworkAttachment(spec: VMNetworkAttachmentSpec, providerType: ProviderType): Normalized<CanonicalNic> {
  const read = readNetwork(spec);
  if (!read.ok) return problem(read.problem);
  const network = read.value;

  let nic: Omit<NicSpec, 'name'>;
  let branch: BranchType | undefined;
  if (network.form !== 'object') {
    nic = network.form === 'bridge' ? { bridge: network.bridge } : { network: network.name };
    Object.assign(nic, definedOnly({ vlan: spec.vlan, model: spec.model ?? 'virtio', mtu: spec.mtu, firewall: spec.firewall, rateLimitMBps: spec.rateLimitMBps }));
  } else {
    const object = network.network;
    branch = READ_ORDER[providerType].find((name) => object[name] !== undefined);
    if (branch === undefined) {
      const reads = READ_ORDER[providerType].map((name) => `spec.network.${name}`);
      const read = reads.length === 0 ? 'no branch' : reads.length === 1 ? (reads[0] ?? '') : `${reads.slice(0, -1).join(', ')} or ${reads[reads.length - 1] ?? ''}`;
      const who = providerType === 'simulator' ? `the simulator reads ${read}` : `a ${providerType} provider reads ${read}`;
      return unsupported(`spec.network has ${network.branches.join(', ')}; ${who}`);
    }
    const commonMTU = object.mtu === UPSTREAM_DEFAULT_MTU ? undefined : object.mtu;
    switch (branch) {
      case 'vsphere': {
        const vsphere = object.vsphere ?? {};
        const adapter = vsphere.adapterType === 'vmxnet3' ? undefined : vsphere.adapterType;
        nic = definedOnly({
          network: vsphere.portgroup,
          vlan: vsphere.vlan?.vlanID ?? spec.vlan,
          // virtio is the canonical "default model": the vSphere driver keeps the template's adapter, vmxnet3 for added NICs.
          model: adapter ?? spec.model ?? 'virtio',
          mtu: commonMTU ?? spec.mtu,
        });
        break;
      }
      case 'libvirt': {
        const libvirt = object.libvirt ?? {};
        nic = definedOnly({
          network: given(libvirt.networkName) ? libvirt.networkName : undefined,
          bridge: libvirt.bridge?.name,
          vlan: spec.vlan,
          model: libvirt.model ?? spec.model ?? 'virtio',
          mtu: commonMTU ?? spec.mtu,
        });
        break;
      }
      case 'proxmox': {
        const proxmox = object.proxmox ?? {};
        nic = definedOnly({
          bridge: proxmox.bridge,
          vlan: proxmox.vlanTag ?? spec.vlan,
          model: proxmox.model ?? spec.model ?? 'virtio',
          mtu: proxmox.mtu ?? commonMTU ?? spec.mtu,
          firewall: proxmox.firewall,
          rateLimitMBps: proxmox.rateLimit ?? spec.rateLimitMBps,
        });
        break;
      }
    }
    if (spec.firewall !== undefined && nic.firewall === undefined) nic.firewall = spec.firewall;
  }
  const enabled = spec.security?.firewall?.enabled;
  if (enabled !== undefined && nic.firewall === undefined) nic.firewall = enabled;

  const allocation = spec.ipAllocation;
  const servers = allocation?.dnsConfig?.servers ?? [];
  const staticConfig = allocation?.staticConfig;
  if (staticConfig !== undefined) {
    nic.staticIP = { address: staticConfig.address };
    if (staticConfig.gateway !== undefined) nic.staticIP.gateway = staticConfig.gateway;
    if (servers.length > 0) nic.staticIP.dns = [...servers];
  } else if (servers.length > 0) {
    return unsupported('spec.ipAllocation.dnsConfig.servers: DNS servers are set with a static address only (ipAllocation.type Static)');
  }
  const value: CanonicalNic = { nic };
  if (branch !== undefined) value.branch = branch;
  return { ok: true, value };
}

const OTHER_MODEL = 'NIC models are virtio, e1000, e1000e, rtl8139 and vmxnet3';
const PORTGROUP_POLICY = 'the port group\'s own security policy applies; no driver changes it';
const NO_TRAFFIC_SHAPING = 'no driver shapes a port\'s traffic';

/**
 * The VMNetworkAttachment fields whose meaning needs something of the driver (support.ts).
 * Explicit values equal to upstream's defaults (type bridged, mtu 1500, adapterType vmxnet3,
 * model virtio, ipAllocation DHCP, defaultPolicy ACCEPT, …) mean what leaving them out means.
 */
export const VMNETWORKATTACHMENT_FIELDS: readonly FieldRule[] = [
  // Seed spelling.
  { path: 'spec.vlan', example: 100, capability: 'vlan' },
  { path: 'spec.model', values: ['e1000', 'e1000e', 'rtl8139', 'vmxnet3'], capability: 'nicModel' },
  { path: 'spec.mtu', example: 9000, capability: 'nicMTU' },
  { path: 'spec.firewall', values: [true], capability: 'nicFirewall' },
  { path: 'spec.rateLimitMBps', example: 100, capability: 'nicRateLimit' },
  // network, whichever branch is read.
  { path: 'spec.network.type', values: ['nat', 'isolated', 'host-only'], why: 'no driver creates networks; a NIC attaches to an existing one by name' },
  { path: 'spec.network.mtu', when: { text: 'other than 1500', test: (value) => value !== UPSTREAM_DEFAULT_MTU }, example: 9000, capability: 'nicMTU' },
  // network.vsphere.
  { path: 'spec.network.vsphere.adapterType', for: 'vsphere', values: ['e1000', 'e1000e'], capability: 'nicModel' },
  { path: 'spec.network.vsphere.vlan.vlanID', for: 'vsphere', example: 100, capability: 'vlan' },
  { path: 'spec.network.vsphere.vlan.type', for: 'vsphere', values: ['pvlan', 'trunk'], why: 'no driver sets private VLANs or trunks' },
  { path: 'spec.network.vsphere.vlan.trunkVlanIDs', for: 'vsphere', example: [100, 200], why: 'no driver sets VLAN trunks' },
  { path: 'spec.network.vsphere.vlan.primaryVlanID', for: 'vsphere', example: 100, why: 'no driver sets private VLANs' },
  { path: 'spec.network.vsphere.vlan.secondaryVlanID', for: 'vsphere', example: 101, why: 'no driver sets private VLANs' },
  {
    path: 'spec.network.vsphere.distributedSwitch',
    for: 'vsphere',
    example: { name: 'dvs-prod' },
    why: 'the port group is found by name or inventory path; no driver checks or picks its switch',
  },
  { path: 'spec.network.vsphere.security.allowPromiscuous', for: 'vsphere', values: [true], why: PORTGROUP_POLICY },
  { path: 'spec.network.vsphere.security.allowMACChanges', for: 'vsphere', values: [false], why: PORTGROUP_POLICY },
  { path: 'spec.network.vsphere.security.allowForgedTransmits', for: 'vsphere', values: [false], why: PORTGROUP_POLICY },
  { path: 'spec.network.vsphere.trafficShaping.enabled', for: 'vsphere', values: [true], why: NO_TRAFFIC_SHAPING },
  { path: 'spec.network.vsphere.trafficShaping.averageBandwidth', for: 'vsphere', example: 100000, why: NO_TRAFFIC_SHAPING },
  { path: 'spec.network.vsphere.trafficShaping.peakBandwidth', for: 'vsphere', example: 200000, why: NO_TRAFFIC_SHAPING },
  { path: 'spec.network.vsphere.trafficShaping.burstSize', for: 'vsphere', example: 102400, why: NO_TRAFFIC_SHAPING },
  { path: 'spec.network.vsphere.pciSlotNumber', for: 'vsphere', example: 192, why: 'no driver places a NIC in a PCI slot' },
  // network.libvirt.
  { path: 'spec.network.libvirt.model', for: 'libvirt', values: ['e1000', 'e1000e', 'rtl8139'], capability: 'nicModel' },
  { path: 'spec.network.libvirt.model', for: 'libvirt', values: ['pcnet', 'ne2k_pci'], why: OTHER_MODEL },
  { path: 'spec.network.libvirt.bridge.stp', for: 'libvirt', values: [true], why: 'no driver configures the host bridge' },
  { path: 'spec.network.libvirt.bridge.delay', for: 'libvirt', example: 2, why: 'no driver configures the host bridge' },
  { path: 'spec.network.libvirt.driver.name', for: 'libvirt', example: 'vfio', why: 'no driver tunes the interface driver' },
  { path: 'spec.network.libvirt.driver.queues', for: 'libvirt', example: 4, why: 'no driver tunes the interface driver' },
  { path: 'spec.network.libvirt.driver.txMode', for: 'libvirt', example: 'iothread', why: 'no driver tunes the interface driver' },
  { path: 'spec.network.libvirt.driver.ioEventFD', for: 'libvirt', example: true, why: 'no driver tunes the interface driver' },
  { path: 'spec.network.libvirt.driver.eventIDX', for: 'libvirt', example: true, why: 'no driver tunes the interface driver' },
  { path: 'spec.network.libvirt.filterRef', for: 'libvirt', example: { filter: 'clean-traffic' }, why: 'no driver attaches network filters' },
  // network.proxmox.
  { path: 'spec.network.proxmox.model', for: 'proxmox', values: ['e1000', 'rtl8139', 'vmxnet3'], capability: 'nicModel' },
  { path: 'spec.network.proxmox.vlanTag', for: 'proxmox', example: 100, capability: 'vlan' },
  { path: 'spec.network.proxmox.firewall', for: 'proxmox', values: [true], capability: 'nicFirewall' },
  { path: 'spec.network.proxmox.rateLimit', for: 'proxmox', example: 100, capability: 'nicRateLimit' },
  { path: 'spec.network.proxmox.mtu', for: 'proxmox', example: 9000, capability: 'nicMTU' },
  // ipAllocation (DHCP, the default, needs nothing; dnsConfig.servers go with a static address).
  { path: 'spec.ipAllocation.type', values: ['Pool'], why: 'no driver allocates from IP pools' },
  { path: 'spec.ipAllocation.type', values: ['None'], why: 'every driver configures a NIC by DHCP or a static address; none leaves it unconfigured' },
  { path: 'spec.ipAllocation.staticConfig.address', example: '10.0.0.5/24', capability: 'staticIP' },
  { path: 'spec.ipAllocation.staticConfig.address', example: '10.0.0.5/24', capability: 'cloudInit' },
  { path: 'spec.ipAllocation.staticConfig.routes', example: [{ destination: '10.1.0.0/16', gateway: '10.0.0.1' }], why: 'no driver sets static routes' },
  { path: 'spec.ipAllocation.dhcpConfig.clientID', example: 'web-1', why: 'no driver configures the DHCP client' },
  { path: 'spec.ipAllocation.dhcpConfig.hostname', example: 'web-1', why: 'no driver configures the DHCP client' },
  { path: 'spec.ipAllocation.dhcpConfig.options', example: { 'domain-name': 'example.com' }, why: 'no driver configures the DHCP client' },
  { path: 'spec.ipAllocation.dnsConfig.searchDomains', example: ['example.com'], why: 'no driver sets DNS search domains' },
  { path: 'spec.ipAllocation.dnsConfig.options', example: { ndots: '2' }, why: 'no driver sets resolver options' },
  // security.
  { path: 'spec.security.firewall.enabled', values: [true], capability: 'nicFirewall' },
  { path: 'spec.security.firewall.defaultPolicy', values: ['DROP', 'REJECT'], why: 'no driver sets firewall policies' },
  { path: 'spec.security.firewall.rules', example: [{ name: 'ssh', action: 'ACCEPT', direction: 'in' }], why: 'no driver sets firewall rules' },
  { path: 'spec.security.isolation.mode', values: ['strict', 'custom'], why: NO_DRIVER },
  { path: 'spec.security.isolation.allowedNetworks', example: ['10.0.0.0/8'], why: NO_DRIVER },
  { path: 'spec.security.isolation.deniedNetworks', example: ['10.0.0.0/8'], why: NO_DRIVER },
  { path: 'spec.security.encryption.enabled', values: [true], why: NO_DRIVER },
  { path: 'spec.security.encryption.protocol', example: 'wireguard', why: NO_DRIVER },
  { path: 'spec.security.encryption.keyRef', example: { name: 'keys' }, why: NO_DRIVER },
  // qos: bits per second, by direction; the MB/s rate limit is rateLimitMBps / network.proxmox.rateLimit.
  { path: 'spec.qos.ingressLimit', example: 100000000, why: NO_DRIVER },
  { path: 'spec.qos.egressLimit', example: 100000000, why: NO_DRIVER },
  { path: 'spec.qos.priority', example: 5, why: NO_DRIVER },
  { path: 'spec.qos.dscp', example: 46, why: NO_DRIVER },
];
