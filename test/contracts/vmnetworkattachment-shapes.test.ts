// VMNetworkAttachment in both shapes: upstream VirtRigaud's v1beta1 (`network` as an object with
// a branch per hypervisor, `ipAllocation`, `security`, `qos`) and the seeds' (`bridge` or
// `network: "<name>"` with NIC settings). Every fixture applies to the generated CRD as kubectl
// sends it; each upstream one normalizes, for every provider type that reads it, to the same NIC
// as its seed-shaped twin; the untyped spec.network is checked by the hook, which names the field;
// fieldUses names what a provider cannot honour.
import { readFileSync } from 'node:fs';
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import t, { type Test } from 'tap';
import { parse } from 'yaml';
import type { ProviderType } from '../../src/contracts/crds/provider.js';
import {
  NetworkConfigObject,
  VMNetworkAttachmentObject,
  VMNetworkAttachmentSpec,
  VMNetworkAttachmentStatus,
} from '../../src/contracts/crds/vmnetworkattachment.js';
import type { NicSpec } from '../../src/contracts/driver.js';
import type { BranchType } from '../../src/contracts/normalize/common.js';
import { checkVMNetworkAttachment, normalizeVMNetworkAttachment, VMNETWORKATTACHMENT_FIELDS } from '../../src/contracts/normalize/vmnetworkattachment.js';
import { fieldUses, FIELD_SUPPORT } from '../../src/contracts/support.js';
import { syncVMNetworkAttachment } from '../../src/hooks/catalog.js';
import { upstreamFixtures } from '../helpers/upstream-fixtures.js';
import { structuralIssues } from '../helpers/crd-validator.js';
import { objectWith, testFieldRules } from '../helpers/field-rules.js';
import { testServer } from '../helpers/server.js';

type Json = Record<string, unknown>;
type Nic = Omit<NicSpec, 'name'>;

const fixtures = upstreamFixtures('VMNetworkAttachment', 'vmnetworkattachment');
const validator = fixtures.crd;
const FILES = fixtures.files;
const PROVIDERS: readonly ProviderType[] = ['simulator', 'vsphere', 'libvirt', 'proxmox'];
const manifest = fixtures.manifest;
/** As the apiserver stores it (pruned, defaulted), after checking that it applies. */
const stored = (name: string, t?: Test): Json => fixtures.stored(manifest(name), t);

const specOf = (object: Json) => object['spec'] as VMNetworkAttachmentSpec;
const attachment = (spec: Json) => ({
  apiVersion: 'infra.virtrigaud.io/v1beta1',
  kind: 'VMNetworkAttachment',
  metadata: { name: 'net', namespace: 'default' },
  spec,
});
/** What the apiserver would store for this spec (defaults such as ipAllocation.type applied). */
const storedSpec = (spec: Json) => specOf(validator.prune(attachment(spec)) as Json);

t.test('every fixture applies to the CRD (strict fields, CEL), fits the contract and is valid for the hook', async (t) => {
  t.ok(FILES.length >= 12);
  for (const file of FILES) {
    const object = stored(file, t);
    t.ok(Value.Check(VMNetworkAttachmentObject, object), `${file}: the TypeBox schema accepts it`);
    t.equal(checkVMNetworkAttachment(specOf(object)), undefined, `${file}: the hook finds nothing wrong`);
  }
});

/** Every dotted path of a TypeBox object schema (maps and arrays of scalars are leaves; arrays of objects are walked). */
function schemaPaths(schema: TSchema, prefix: string): string[] {
  const items = (schema as { items?: TSchema }).items;
  if (items !== undefined && (items as { properties?: unknown }).properties !== undefined) return schemaPaths(items, `${prefix}[]`);
  const properties = (schema as { properties?: Record<string, TSchema> }).properties;
  if (properties === undefined) return [prefix];
  return Object.entries(properties).flatMap(([key, child]) => schemaPaths(child, `${prefix}.${key}`));
}

function hasPath(root: unknown, path: string): boolean {
  let nodes: unknown[] = [root];
  for (const step of path.split('.')) {
    const list = step.endsWith('[]');
    const key = list ? step.slice(0, -2) : step;
    nodes = nodes.flatMap((node) => {
      if (node === null || typeof node !== 'object' || !(key in node)) return [];
      const value = (node as Json)[key];
      return list ? (Array.isArray(value) ? value : []) : [value];
    });
  }
  return nodes.length > 0;
}

t.test('the upstream fixtures set every field of upstream\'s VMNetworkAttachment spec, every branch of network included', async (t) => {
  const upstream = FILES.filter((file) => file.endsWith('.upstream.yaml')).map((file) => manifest(file)['spec']);
  const { ipAllocation, security, qos, metadata } = VMNetworkAttachmentSpec.properties;
  const paths = [
    ...schemaPaths(NetworkConfigObject, 'network'),
    ...Object.entries({ ipAllocation, security, qos, metadata }).flatMap(([key, schema]) => schemaPaths(schema, key)),
  ];
  t.ok(paths.length > 70, `${paths.length} fields`);
  for (const path of paths) t.ok(upstream.some((spec) => hasPath(spec, path)), `spec.${path} is set by some fixture`);
});

interface Twin {
  name: string;
  providers: readonly ProviderType[];
  nic: Nic;
  branch: BranchType;
}

const twins: Twin[] = [
  { name: 'vsphere-portgroup', providers: ['vsphere', 'simulator'], nic: { network: 'app-portgroup', model: 'virtio' }, branch: 'vsphere' },
  { name: 'libvirt-network', providers: ['libvirt', 'simulator'], nic: { network: 'default', model: 'e1000' }, branch: 'libvirt' },
  { name: 'libvirt-bridge', providers: ['libvirt', 'simulator'], nic: { bridge: 'br0', model: 'virtio' }, branch: 'libvirt' },
  {
    name: 'proxmox-bridge',
    providers: ['proxmox', 'simulator'],
    nic: { bridge: 'vmbr1', vlan: 100, model: 'rtl8139', mtu: 1400, firewall: true, rateLimitMBps: 50 },
    branch: 'proxmox',
  },
];

t.test('every upstream fixture with a seed-shaped twin is in the twin table', async (t) => {
  const paired = FILES.filter((file) => file.endsWith('.seed.yaml')).map((file) => file.replace('.seed.yaml', ''));
  t.same(paired.sort(), twins.map((twin) => twin.name).sort());
});

for (const twin of twins) {
  t.test(`${twin.name}: both shapes normalize to the same NIC`, async (t) => {
    const upstream = specOf(stored(`${twin.name}.upstream.yaml`, t));
    const seed = specOf(stored(`${twin.name}.seed.yaml`, t));
    for (const provider of twin.providers) {
      t.same(normalizeVMNetworkAttachment(upstream, provider), { ok: true, value: { nic: twin.nic, branch: twin.branch } }, `upstream, read by ${provider}`);
      t.same(normalizeVMNetworkAttachment(seed, provider), { ok: true, value: { nic: twin.nic } }, `seed, read by ${provider}`);
    }
    const asks = (uses: { capability?: string; why?: string }[]) => uses.map((use) => use.capability ?? use.why).sort();
    t.same(asks(fieldUses('VMNetworkAttachment', { spec: upstream }, twin.branch)), asks(fieldUses('VMNetworkAttachment', { spec: seed })), 'and ask the same of the driver');
  });
}

t.test('a seed-shaped attachment means the same to every provider type', async (t) => {
  for (const file of FILES.filter((name) => name.endsWith('.seed.yaml'))) {
    const spec = specOf(stored(file));
    const first = normalizeVMNetworkAttachment(spec, 'simulator');
    for (const provider of PROVIDERS) t.same(normalizeVMNetworkAttachment(spec, provider), first, `${file} on ${provider}`);
  }
});

t.test('each provider type reads its own branch; the simulator the first of proxmox, vsphere, libvirt', async (t) => {
  const every = specOf(stored('every-hypervisor.upstream.yaml', t));
  const network = every.network as Json;
  const cases: [string, Json, ProviderType, Nic, BranchType][] = [
    ['all three', network, 'vsphere', { network: 'LAN', vlan: 10, model: 'virtio' }, 'vsphere'],
    ['all three', network, 'libvirt', { network: 'lan', model: 'e1000e' }, 'libvirt'],
    ['all three', network, 'proxmox', { bridge: 'vmbr0', vlan: 10, model: 'virtio' }, 'proxmox'],
    ['all three', network, 'simulator', { bridge: 'vmbr0', vlan: 10, model: 'virtio' }, 'proxmox'],
    ['vsphere and libvirt', { vsphere: network['vsphere'], libvirt: network['libvirt'] }, 'simulator', { network: 'LAN', vlan: 10, model: 'virtio' }, 'vsphere'],
    ['libvirt', { libvirt: network['libvirt'] }, 'simulator', { network: 'lan', model: 'e1000e' }, 'libvirt'],
  ];
  for (const [label, object, provider, nic, branch] of cases) {
    t.same(normalizeVMNetworkAttachment({ network: object }, provider), { ok: true, value: { nic, branch } }, `${label}, read by ${provider}`);
  }
});

t.test('an attachment without a branch the provider type reads is Unsupported, naming the branches it has', async (t) => {
  const cases: [string, ProviderType, string][] = [
    ['vsphere-portgroup.upstream.yaml', 'proxmox', 'spec.network has vsphere; a proxmox provider reads spec.network.proxmox'],
    ['proxmox-bridge.upstream.yaml', 'libvirt', 'spec.network has proxmox; a libvirt provider reads spec.network.libvirt'],
    ['libvirt-bridge.upstream.yaml', 'vsphere', 'spec.network has libvirt; a vsphere provider reads spec.network.vsphere'],
    ['every-hypervisor.upstream.yaml', 'firecracker', 'spec.network has vsphere, libvirt, proxmox; a firecracker provider reads no branch'],
  ];
  for (const [file, provider, message] of cases) {
    const spec = specOf(stored(file));
    t.same(normalizeVMNetworkAttachment(spec, provider), { ok: false, problem: message, unsupported: true }, `${file} on ${provider}`);
    t.equal(checkVMNetworkAttachment(spec), undefined, `${file} is valid all the same`);
  }
});

t.test('ipAllocation: a static address is the NIC\'s staticIP in CIDR form; DHCP needs nothing', async (t) => {
  t.same(normalizeVMNetworkAttachment(specOf(stored('proxmox-static.upstream.yaml', t)), 'proxmox'), {
    ok: true,
    value: {
      nic: { bridge: 'vmbr0', model: 'virtio', staticIP: { address: '192.168.1.50/24', gateway: '192.168.1.1', dns: ['192.168.1.1', '2620:fe::fe'] } },
      branch: 'proxmox',
    },
  });
  const cases: [string, Json, Nic][] = [
    ['a seed network with an upstream static address', { network: 'lan', ipAllocation: { type: 'Static', staticConfig: { address: '10.0.0.5/24' } } }, { network: 'lan', model: 'virtio', staticIP: { address: '10.0.0.5/24' } }],
    ['DHCP, written', { bridge: 'vmbr0', ipAllocation: { type: 'DHCP' } }, { bridge: 'vmbr0', model: 'virtio' }],
    ['DHCP, the default', { bridge: 'vmbr0', ipAllocation: {} }, { bridge: 'vmbr0', model: 'virtio' }],
  ];
  for (const [label, spec, nic] of cases) t.same(normalizeVMNetworkAttachment(storedSpec(spec), 'proxmox'), { ok: true, value: { nic } }, label);
  t.same(
    normalizeVMNetworkAttachment(storedSpec({ bridge: 'vmbr0', ipAllocation: { dnsConfig: { servers: ['1.1.1.1'] } } }), 'proxmox'),
    { ok: false, unsupported: true, problem: 'spec.ipAllocation.dnsConfig.servers: DNS servers are set with a static address only (ipAllocation.type Static)' },
    'DNS servers without a static address are Unsupported',
  );
});

t.test('defaults follow the shape; seed NIC settings beside an upstream network fill what its branch leaves', async (t) => {
  const cases: [string, Json, ProviderType, Nic][] = [
    ['seed: model virtio', { bridge: 'vmbr0' }, 'proxmox', { bridge: 'vmbr0', model: 'virtio' }],
    ['upstream mtu 1500 is the network\'s own', { network: { mtu: 1500, libvirt: { networkName: 'default' } } }, 'libvirt', { network: 'default', model: 'virtio' }],
    ['upstream mtu 9000 is an MTU', { network: { mtu: 9000, libvirt: { networkName: 'default' } } }, 'libvirt', { network: 'default', model: 'virtio', mtu: 9000 }],
    ['proxmox mtu wins over nothing', { network: { mtu: 9000, proxmox: { bridge: 'vmbr0', mtu: 9000 } } }, 'proxmox', { bridge: 'vmbr0', model: 'virtio', mtu: 9000 }],
    ['vSphere adapterType vmxnet3 is the default adapter', { network: { vsphere: { portgroup: 'VM Network', adapterType: 'vmxnet3' } } }, 'vsphere', { network: 'VM Network', model: 'virtio' }],
    ['vSphere adapterType e1000e', { network: { vsphere: { portgroup: 'VM Network', adapterType: 'e1000e' } } }, 'vsphere', { network: 'VM Network', model: 'e1000e' }],
    ['a vSphere VLAN of type vlan', { network: { vsphere: { portgroup: 'pg', vlan: { type: 'vlan', vlanID: 42 } } } }, 'vsphere', { network: 'pg', vlan: 42, model: 'virtio' }],
    ['seed vlan and model beside a vSphere branch', { network: { vsphere: { portgroup: 'pg' } }, vlan: 7, model: 'e1000' }, 'vsphere', { network: 'pg', vlan: 7, model: 'e1000' }],
    ['seed firewall and rate beside a Proxmox branch', { network: { proxmox: { bridge: 'vmbr0' } }, firewall: true, rateLimitMBps: 12.5 }, 'proxmox', { bridge: 'vmbr0', model: 'virtio', firewall: true, rateLimitMBps: 12.5 }],
    ['security.firewall.enabled is the NIC firewall', { bridge: 'vmbr0', security: { firewall: { enabled: true } } }, 'proxmox', { bridge: 'vmbr0', model: 'virtio', firewall: true }],
    ['proxmox firewall and security.firewall agreeing', { network: { proxmox: { bridge: 'vmbr0', firewall: true } }, security: { firewall: { enabled: true } } }, 'proxmox', { bridge: 'vmbr0', model: 'virtio', firewall: true }],
    ['an empty libvirt networkName is unset (Go omitempty)', { network: { libvirt: { networkName: '', bridge: { name: 'br0' } } } }, 'libvirt', { bridge: 'br0', model: 'virtio' }],
  ];
  for (const [label, spec, provider, nic] of cases) {
    const result = normalizeVMNetworkAttachment(storedSpec(spec), provider);
    t.same(result.ok ? result.value.nic : result, nic, label);
  }
});

interface Refusal {
  name: string;
  spec: Json;
  message: string;
}

// Refused by the hook only: the CRD applies them (spec.network is untyped, or upstream's own CRD
// accepts the combination).
const refusals: Refusal[] = [
  { name: 'both bridge and a network name', spec: { bridge: 'vmbr0', network: 'lan' }, message: 'set exactly one of spec.bridge and spec.network, not both' },
  { name: 'both bridge and an upstream network', spec: { bridge: 'vmbr0', network: { proxmox: { bridge: 'vmbr0' } } }, message: 'set exactly one of spec.bridge and spec.network, not both' },
  { name: 'neither bridge nor network', spec: { vlan: 100 }, message: 'set exactly one of spec.bridge and spec.network' },
  { name: 'a network name with a space', spec: { network: 'VM Network' }, message: 'spec.network must be a network name: up to 128 letters, digits, "-", "_" or ".", starting with a letter or digit' },
  { name: 'a network that is a number', spec: { network: 42 }, message: 'spec.network must be a network name, or an object with vsphere, libvirt or proxmox' },
  { name: 'a typo inside network.vsphere', spec: { network: { vsphere: { portgroupp: 'VM Network' } } }, message: 'spec.network.vsphere.portgroupp is not a known field' },
  { name: 'a typo inside a libvirt bridge', spec: { network: { libvirt: { bridge: { nmae: 'br0' } } } }, message: 'spec.network.libvirt.bridge.nmae is not a known field' },
  { name: 'upstream\'s vlanId misspelling', spec: { network: { vsphere: { portgroup: 'pg', vlan: { vlanId: 100 } } } }, message: 'spec.network.vsphere.vlan.vlanId is not a known field' },
  { name: 'an unknown branch', spec: { network: { hyperv: { switch: 'x' } } }, message: 'spec.network.hyperv is not a known field' },
  { name: 'a Proxmox bridge that is no vmbr', spec: { network: { proxmox: { bridge: 'br0' } } }, message: "spec.network.proxmox.bridge: expected string to match '^vmbr[0-9]+$'" },
  { name: 'an unknown model', spec: { network: { proxmox: { bridge: 'vmbr0', model: 'e1000e' } } }, message: 'spec.network.proxmox.model must be one of "virtio", "e1000", "rtl8139", "vmxnet3"' },
  { name: 'a VLAN of 5000', spec: { network: { proxmox: { bridge: 'vmbr0', vlanTag: 5000 } } }, message: 'spec.network.proxmox.vlanTag: expected integer to be less or equal to 4094' },
  { name: 'an MTU above upstream\'s 9000', spec: { network: { mtu: 9001, proxmox: { bridge: 'vmbr0' } } }, message: 'spec.network.mtu: expected integer to be less or equal to 9000' },
  { name: 'a network type of its own', spec: { network: { type: 'overlay', proxmox: { bridge: 'vmbr0' } } }, message: 'spec.network.type must be one of "bridged", "nat", "isolated", "host-only", "external"' },
  { name: 'an empty object', spec: { network: {} }, message: 'spec.network names no network: set vsphere, libvirt or proxmox' },
  { name: 'only a type', spec: { network: { type: 'bridged' } }, message: 'spec.network names no network: set vsphere, libvirt or proxmox' },
  { name: 'a vSphere branch without portgroup', spec: { network: { vsphere: { adapterType: 'vmxnet3' } } }, message: 'spec.network.vsphere: set portgroup' },
  { name: 'a vSphere VLAN of type vlan without ID', spec: { network: { vsphere: { portgroup: 'pg', vlan: { type: 'vlan' } } } }, message: 'spec.network.vsphere.vlan: type vlan needs vlanID' },
  { name: 'a vSphere VLAN ID of type none', spec: { network: { vsphere: { portgroup: 'pg', vlan: { type: 'none', vlanID: 5 } } } }, message: 'spec.network.vsphere.vlan.vlanID needs type vlan, not none' },
  { name: 'a libvirt networkName and bridge', spec: { network: { libvirt: { networkName: 'default', bridge: { name: 'br0' } } } }, message: 'spec.network.libvirt: set networkName or bridge, not both' },
  { name: 'a libvirt branch naming nothing', spec: { network: { libvirt: { model: 'virtio' } } }, message: 'spec.network.libvirt: set networkName or bridge' },
  { name: 'a Proxmox branch without bridge', spec: { network: { proxmox: { vlanTag: 5 } } }, message: 'spec.network.proxmox: set bridge' },
  { name: 'both spellings of the VLAN', spec: { network: { proxmox: { bridge: 'vmbr0', vlanTag: 5 } }, vlan: 5 }, message: 'set spec.vlan or spec.network.proxmox.vlanTag, not both' },
  { name: 'both spellings of the vSphere VLAN', spec: { network: { vsphere: { portgroup: 'pg', vlan: { vlanID: 5 } } }, vlan: 5 }, message: 'set spec.vlan or spec.network.vsphere.vlan.vlanID, not both' },
  { name: 'both spellings of the model', spec: { network: { vsphere: { portgroup: 'pg', adapterType: 'e1000' } }, model: 'e1000' }, message: 'set spec.model or spec.network.vsphere.adapterType, not both' },
  { name: 'both spellings of the libvirt model', spec: { network: { libvirt: { networkName: 'default', model: 'virtio' } }, model: 'virtio' }, message: 'set spec.model or spec.network.libvirt.model, not both' },
  { name: 'both spellings of the MTU', spec: { network: { mtu: 1500, libvirt: { networkName: 'default' } }, mtu: 1500 }, message: 'set spec.mtu or spec.network.mtu, not both' },
  { name: 'both spellings of the Proxmox firewall', spec: { network: { proxmox: { bridge: 'vmbr0', firewall: false } }, firewall: true }, message: 'set spec.firewall or spec.network.proxmox.firewall, not both' },
  { name: 'both spellings of the rate limit', spec: { network: { proxmox: { bridge: 'vmbr0', rateLimit: 10 } }, rateLimitMBps: 10 }, message: 'set spec.rateLimitMBps or spec.network.proxmox.rateLimit, not both' },
  { name: 'two different upstream MTUs', spec: { network: { mtu: 1500, proxmox: { bridge: 'vmbr0', mtu: 9000 } } }, message: 'spec.network.mtu and spec.network.proxmox.mtu differ: set one' },
  {
    name: 'a Proxmox firewall contradicting security.firewall',
    spec: { network: { proxmox: { bridge: 'vmbr0', firewall: false } }, security: { firewall: { enabled: true } } },
    message: 'spec.network.proxmox.firewall and spec.security.firewall.enabled differ: set one',
  },
  { name: 'type Static without staticConfig', spec: { bridge: 'vmbr0', ipAllocation: { type: 'Static' } }, message: 'spec.ipAllocation: type Static needs staticConfig' },
  { name: 'a staticConfig under DHCP, the default type', spec: { bridge: 'vmbr0', ipAllocation: { staticConfig: { address: '10.0.0.5/24' } } }, message: 'spec.ipAllocation.staticConfig needs type Static, not DHCP' },
  { name: 'type Pool without poolConfig', spec: { bridge: 'vmbr0', ipAllocation: { type: 'Pool' } }, message: 'spec.ipAllocation: type Pool needs poolConfig' },
  { name: 'a poolConfig under DHCP', spec: { bridge: 'vmbr0', ipAllocation: { poolConfig: { poolRef: { name: 'p' } } } }, message: 'spec.ipAllocation.poolConfig needs type Pool, not DHCP' },
  {
    name: 'a dhcpConfig with a static address',
    spec: { bridge: 'vmbr0', ipAllocation: { type: 'Static', staticConfig: { address: '10.0.0.5/24' }, dhcpConfig: { hostname: 'a' } } },
    message: 'spec.ipAllocation.dhcpConfig needs type DHCP, not Static',
  },
  {
    name: 'a DNS server that is no address',
    spec: { bridge: 'vmbr0', ipAllocation: { type: 'Static', staticConfig: { address: '10.0.0.5/24' }, dnsConfig: { servers: ['1.1.1.1', 'dns.example.com'] } } },
    message: 'spec.ipAllocation.dnsConfig.servers[1] is not an IP address',
  },
];

for (const refusal of refusals) {
  t.test(`the CRD accepts and the hook refuses ${refusal.name}`, async (t) => {
    const object = attachment(refusal.spec);
    t.same(validator.validate(object), [], 'applies');
    const spec = specOf(validator.prune(object) as Json);
    t.equal(checkVMNetworkAttachment(spec), refusal.message);
    for (const provider of PROVIDERS) t.same(normalizeVMNetworkAttachment(spec, provider), { ok: false, problem: refusal.message }, `normalize on ${provider}`);
    const answer = syncVMNetworkAttachment({ controller: {}, parent: { ...object, metadata: { ...object.metadata, generation: 4 } } as never }, 1_700_000_000_000);
    t.match(answer.status, { conditions: [{ type: 'Ready', status: 'False', reason: 'InvalidSpec', message: refusal.message, observedGeneration: 4 }], observedGeneration: 4 });
  });
}

t.test('the CRD refuses what it can see: both spellings of the firewall, malformed static addresses', async (t) => {
  const cases: [Json, string, RegExp][] = [
    [{ bridge: 'vmbr0', firewall: true, security: { firewall: { enabled: true } } }, 'spec', /^set firewall or security\.firewall\.enabled, not both$/],
    [{ bridge: 'vmbr0', ipAllocation: { type: 'Static', staticConfig: { address: '10.0.0.5' } } }, 'spec.ipAllocation.staticConfig.address', /should match|does not match|Invalid value/],
    [{ bridge: 'vmbr0', ipAllocation: { type: 'DHCPv6' } }, 'spec.ipAllocation.type', /Unsupported value: "DHCPv6"/],
    [{ bridge: 'vmbr0', security: { firewall: { rules: [{ name: 'a', action: 'ALLOW', direction: 'in' }] } } }, 'spec.security.firewall.rules[0].action', /Unsupported value/],
    [{ bridge: 'vmbr0', qos: { dscp: 64 } }, 'spec.qos.dscp', /less than or equal to 63/],
    [{ bridge: 'vmbr0', metadata: { environment: 'production' } }, 'spec.metadata.environment', /Unsupported value/],
  ];
  for (const [spec, path, message] of cases) {
    const issues = validator.validate(attachment(spec));
    t.ok(issues.some((issue) => issue.path === path && message.test(issue.message)), `${path}: ${JSON.stringify(issues)}`);
  }
  t.equal(
    checkVMNetworkAttachment({ bridge: 'vmbr0', firewall: true, security: { firewall: { enabled: true } } }),
    'set spec.firewall or spec.security.firewall.enabled, not both',
    'the hook says so too, for objects that did not come through the apiserver',
  );
});

t.test('the CRD installs: its CEL rules compile and none reaches into the untyped spec.network', async (t) => {
  const crd = parse(readFileSync(new URL(`../../manifests/crds/vmnetworkattachments.infra.virtrigaud.io.yaml`, import.meta.url), 'utf8')) as Json;
  t.same(structuralIssues(crd), []);
  const text = JSON.stringify(crd);
  t.notMatch(text, /self\.network/, 'no rule reads self.network');
  t.match(text, /"network":\{"description":"[^"]+","x-kubernetes-preserve-unknown-fields":true\}/, 'spec.network is untyped and documented');
});

t.test('fields with two spellings carry no schema default', async (t) => {
  t.same((validator.prune(attachment({ bridge: 'vmbr0' })) as Json)['spec'], { bridge: 'vmbr0' }, 'no model default is stored');
});

t.test('the catalog hook publishes the branches, in a status that fits its schema', async (t) => {
  const cases: [string, Json][] = [
    ['proxmox-bridge.seed.yaml', {}],
    ['every-hypervisor.upstream.yaml', { branches: ['vsphere', 'libvirt', 'proxmox'] }],
    ['libvirt-bridge.upstream.yaml', { branches: ['libvirt'] }],
  ];
  for (const [file, summary] of cases) {
    const answer = syncVMNetworkAttachment({ controller: {}, parent: stored(file, t) as never }, 1_700_000_000_000);
    t.match(answer.status, { ...summary, conditions: [{ type: 'Ready', status: 'True', reason: 'Valid' }] }, file);
    if (!('branches' in summary)) t.notOk('branches' in answer.status, `${file}: no branches`);
    t.ok(Value.Check(VMNetworkAttachmentStatus, answer.status), `${file}: the status fits VMNetworkAttachmentStatus`);
  }
});

// ---- The field-support rules ------------------------------------------------------------------

t.test('FIELD_SUPPORT registers the VMNetworkAttachment rules', async (t) => {
  t.equal(FIELD_SUPPORT.VMNetworkAttachment, VMNETWORKATTACHMENT_FIELDS);
});

testFieldRules('VMNetworkAttachment', VMNETWORKATTACHMENT_FIELDS, { ...VMNetworkAttachmentSpec, properties: { ...VMNetworkAttachmentSpec.properties, network: NetworkConfigObject } } as TSchema);

t.test('explicit upstream defaults ask nothing of the driver', async (t) => {
  const spec = {
    network: {
      type: 'bridged',
      mtu: 1500,
      vsphere: {
        portgroup: 'pg',
        adapterType: 'vmxnet3',
        vlan: { type: 'none' },
        security: { allowPromiscuous: false, allowMACChanges: true, allowForgedTransmits: true },
        trafficShaping: { enabled: false },
      },
      libvirt: { networkName: 'default', model: 'virtio' },
      proxmox: { bridge: 'vmbr0', model: 'virtio', firewall: false },
    },
    ipAllocation: { type: 'DHCP' },
    security: { firewall: { enabled: false, defaultPolicy: 'ACCEPT' }, isolation: { mode: 'none' }, encryption: { enabled: false } },
    metadata: { displayName: 'LAN', description: 'The LAN', environment: 'prod', tags: { a: 'b' } },
  };
  for (const branch of [undefined, 'vsphere', 'libvirt', 'proxmox'] as const) {
    t.same(fieldUses('VMNetworkAttachment', { spec }, branch), [], `read as ${branch ?? 'no branch'}`);
  }
  t.same(fieldUses('VMNetworkAttachment', { spec: { network: { type: 'external', libvirt: { networkName: 'default' } } } }, 'libvirt'), [], 'type external attaches too');
  t.same(fieldUses('VMNetworkAttachment', { spec: { bridge: 'vmbr0', model: 'virtio', firewall: false } }), [], 'seed: virtio, no firewall');
});

t.test('the fixtures\' uses, branch by branch', async (t) => {
  const uses = (file: string, branch?: BranchType) =>
    fieldUses('VMNetworkAttachment', stored(file), branch).map((use) => `${use.path} ${use.capability ?? 'why'}`);
  t.same(uses('every-hypervisor.upstream.yaml', 'vsphere'), ['spec.network.vsphere.vlan.vlanID vlan', 'spec.ipAllocation.type=None why']);
  t.same(uses('every-hypervisor.upstream.yaml', 'libvirt'), ['spec.network.libvirt.model=e1000e nicModel', 'spec.ipAllocation.type=None why']);
  t.same(uses('every-hypervisor.upstream.yaml', 'proxmox'), ['spec.network.proxmox.vlanTag vlan', 'spec.ipAllocation.type=None why']);
  t.same(uses('proxmox-static.upstream.yaml', 'proxmox'), ['spec.ipAllocation.staticConfig.address staticIP', 'spec.ipAllocation.staticConfig.address cloudInit']);
  t.same(uses('pool.upstream.yaml', 'proxmox'), ['spec.network.type=host-only why', 'spec.ipAllocation.type=Pool why']);
  t.same(uses('vsphere-everything.upstream.yaml', 'vsphere'), [
    'spec.network.type=nat why',
    'spec.network.mtu nicMTU',
    'spec.network.vsphere.adapterType=e1000e nicModel',
    'spec.network.vsphere.vlan.vlanID vlan',
    'spec.network.vsphere.vlan.trunkVlanIDs why',
    'spec.network.vsphere.vlan.primaryVlanID why',
    'spec.network.vsphere.vlan.secondaryVlanID why',
    'spec.network.vsphere.distributedSwitch why',
    'spec.network.vsphere.security.allowPromiscuous why',
    'spec.network.vsphere.security.allowMACChanges why',
    'spec.network.vsphere.security.allowForgedTransmits why',
    'spec.network.vsphere.trafficShaping.enabled why',
    'spec.network.vsphere.trafficShaping.averageBandwidth why',
    'spec.network.vsphere.trafficShaping.peakBandwidth why',
    'spec.network.vsphere.trafficShaping.burstSize why',
    'spec.network.vsphere.pciSlotNumber why',
    'spec.ipAllocation.dhcpConfig.clientID why',
    'spec.ipAllocation.dhcpConfig.hostname why',
    'spec.ipAllocation.dhcpConfig.options why',
    'spec.ipAllocation.dnsConfig.searchDomains why',
    'spec.ipAllocation.dnsConfig.options why',
    'spec.security.firewall.enabled nicFirewall',
    'spec.security.firewall.defaultPolicy=DROP why',
    'spec.security.firewall.rules why',
    'spec.security.isolation.mode=strict why',
    'spec.security.isolation.allowedNetworks why',
    'spec.security.isolation.deniedNetworks why',
    'spec.security.encryption.enabled why',
    'spec.security.encryption.protocol why',
    'spec.security.encryption.keyRef why',
    'spec.qos.ingressLimit why',
    'spec.qos.egressLimit why',
    'spec.qos.priority why',
    'spec.qos.dscp why',
  ]);
  t.same(uses('libvirt-everything.upstream.yaml', 'libvirt'), [
    'spec.network.type=isolated why',
    'spec.network.libvirt.model=pcnet why',
    'spec.network.libvirt.bridge.stp why',
    'spec.network.libvirt.bridge.delay why',
    'spec.network.libvirt.driver.name why',
    'spec.network.libvirt.driver.queues why',
    'spec.network.libvirt.driver.txMode why',
    'spec.network.libvirt.driver.ioEventFD why',
    'spec.network.libvirt.driver.eventIDX why',
    'spec.network.libvirt.filterRef why',
    'spec.ipAllocation.staticConfig.address staticIP',
    'spec.ipAllocation.staticConfig.address cloudInit',
    'spec.ipAllocation.staticConfig.routes why',
  ]);
});

t.test('the hook server takes an upstream-shaped VMNetworkAttachment through its route schemas and answers its status', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const parent = { ...stored('vsphere-everything.upstream.yaml'), metadata: { name: 'net', namespace: 'default', generation: 1 } };
  const response = await app.inject({ method: 'POST', url: '/hooks/vmnetworkattachment/sync', payload: { controller: {}, parent, children: {}, related: {} } });
  t.equal(response.statusCode, 200, response.body);
  t.match(response.json(), { status: { branches: ['vsphere'], conditions: [{ type: 'Ready', status: 'True' }] } });
  const typo = attachment({ network: { proxmox: { bridge: 'vmbr0', vlantag: 5 } } });
  const refused = await app.inject({ method: 'POST', url: '/hooks/vmnetworkattachment/sync', payload: { controller: {}, parent: typo, children: {}, related: {} } });
  t.equal(refused.statusCode, 200, 'a mistake inside spec.network is a condition, not a refused request');
  t.match(refused.json(), { status: { conditions: [{ status: 'False', reason: 'InvalidSpec', message: 'spec.network.proxmox.vlantag is not a known field' }] } });
});
