// Every row of the field-support table that can refuse a VirtualMachine (its own fields, its
// VMClass's, VMImage's and VMNetworkAttachment's) does: the VM's Ready condition says Unsupported,
// names the field, and the hypervisor was not called once. Rows with a capability are tried on a
// simulator without it; rows no driver honours, on one with every capability.
import t from 'tap';
import type { FieldRule } from '../../src/contracts/normalize/common.js';
import { FIELD_SUPPORT, type SupportedKind } from '../../src/contracts/support.js';
import { API, lifecycle } from '../helpers/lifecycle.js';

// ~40 whole systems (one per capability a simulator lacks), ~150 VMs.
t.setTimeout(300_000);

type Json = Record<string, unknown>;

/** What a list item needs besides the field under test, so the object stays valid. */
const LIST_ITEMS: Record<string, Json> = {
  networks: { name: 'lan' },
  disks: { name: 'root', size: '40Gi' },
};
/** Siblings a field cannot go without (CEL or normalize would refuse the object first). */
const SIBLINGS: Record<string, Json> = {
  'spec.networks[].ipAddress': { prefix: 24 },
};
/** A minimal valid branch per hypervisor (or transport), for rules inside upstream's branch objects. */
const BRANCHES: Record<string, Record<string, Json>> = {
  VMImage: {
    vsphere: { templateName: 'ubuntu-22-template' },
    libvirt: { url: 'https://images.example/ubuntu.qcow2' },
    proxmox: { templateID: 9000 },
    http: { url: 'https://images.example/ubuntu.qcow2' },
    registry: { image: 'registry.example/images/ubuntu:22.04' },
    dataVolume: { name: 'ubuntu' },
  },
  VMNetworkAttachment: { vsphere: { portgroup: 'VM Network' }, libvirt: { networkName: 'default' }, proxmox: { bridge: 'vmbr0' } },
};
const BRANCH_KEY: Record<string, string> = { VMImage: 'source', VMNetworkAttachment: 'network' };

/** What a rule's field needs around it, by path prefix: the other spelling removed, a coherent sibling. */
const CONTEXT: [string, (spec: Json, rule: FieldRule) => void][] = [
  ['spec.url', (spec) => delete spec['source']],
  ['spec.network.', (spec) => {
    delete spec['bridge'];
    spec['network'] ??= { proxmox: { bridge: 'vmbr0' } };
  }],
  ['spec.network.libvirt.bridge', (spec) => {
    spec['network'] = { libvirt: { bridge: { name: 'br0' } } };
  }],
  ['spec.ipAllocation.type', (spec, rule) => {
    if (rule.values?.[0] === 'Pool') spec['ipAllocation'] = { poolConfig: { poolRef: { name: 'pool' } } };
  }],
  // The parts of an imported disk no driver reads come with the disk they describe.
  ['spec.importedDisk.', (spec) => {
    spec['importedDisk'] = { diskID: 'disk-1' };
  }],
  ['spec.ipAllocation.staticConfig', (spec) => {
    spec['ipAllocation'] = { type: 'Static', staticConfig: { address: '10.0.0.5/24' } };
  }],
];

function clone<T>(value: T): T {
  return structuredClone(value);
}

/** Sets `value` at a support-table path (`[]`: the first item, made if missing). */
function setAt(root: Json, path: string, value: unknown): void {
  const steps = path.split('.');
  let node: Json = root;
  for (const [index, step] of steps.entries()) {
    const last = index === steps.length - 1;
    const list = step.endsWith('[]');
    const key = list ? step.slice(0, -2) : step;
    if (list) {
      const items = (node[key] as Json[] | undefined) ?? [clone(LIST_ITEMS[key] ?? {})];
      node[key] = items;
      if (last) throw new Error(`${path}: a rule on a whole list item needs an example object`);
      node = items[0] as Json;
      continue;
    }
    if (last) {
      node[key] = value;
      return;
    }
    const next = node[key];
    if (next === undefined || next === null || typeof next !== 'object') node[key] = {};
    node = node[key] as Json;
  }
}

function valueOf(rule: FieldRule): unknown {
  if (rule.values !== undefined) return rule.values[0];
  if (rule.example !== undefined) return clone(rule.example);
  throw new Error(`${rule.path}: a rule without values needs an example`);
}

/** How the condition names the rule's field (a branch nobody reads is named as the branch). */
function named(rule: FieldRule): string {
  if (rule.for === 'registry' || rule.for === 'dataVolume') return `spec.source has ${rule.for}`;
  const value = rule.values?.[0];
  const path = value !== undefined && typeof value !== 'boolean' ? `${rule.path}=${String(value)}` : rule.path;
  return rule.with === undefined ? path : `${path} with ${rule.with}`;
}

const BASE: Record<string, Json> = {
  VirtualMachine: { providerRef: { name: 'sim' }, classRef: { name: 'small' }, imageRef: { name: 'ubuntu-22' }, networks: [{ name: 'lan' }], disks: [{ name: 'root', size: '40Gi' }] },
  VMClass: { cpus: 2, memory: '4Gi' },
  VMImage: { source: 'ubuntu-22-template' },
  VMNetworkAttachment: { bridge: 'vmbr0' },
};

const KINDS: SupportedKind[] = ['VirtualMachine', 'VMClass', 'VMImage', 'VMNetworkAttachment'];

/** The objects one rule's case is made of, named after its index so many share one system. */
function objectsFor(kind: SupportedKind, rule: FieldRule, index: number): { vm: Json; related: { kind: string; name: string; spec: Json }[] } {
  const spec = clone(BASE[kind] ?? {});
  const root: Json = { spec };
  if (rule.for !== undefined) {
    const branchKey = BRANCH_KEY[kind] ?? '';
    spec[branchKey] = { [rule.for]: clone(BRANCHES[kind]?.[rule.for] ?? {}) };
    delete spec['bridge'];
  }
  if (rule.with !== undefined) setAt(root, rule.with, { vmRef: { name: 'source' } });
  for (const [prefix, apply] of CONTEXT) if (rule.path.startsWith(prefix)) apply(spec, rule);
  setAt(root, rule.path, valueOf(rule));
  const siblings = SIBLINGS[rule.path];
  if (siblings) Object.assign((spec['networks'] as Json[])[0] ?? {}, siblings);

  const vm = kind === 'VirtualMachine' ? spec : clone(BASE['VirtualMachine'] ?? {});
  if (/^spec\.(cloneFrom|importedDisk)/.test(rule.path) || rule.with === 'spec.cloneFrom') delete vm['imageRef'];
  const related: { kind: string; name: string; spec: Json }[] = [];
  if (kind === 'VMClass') {
    related.push({ kind, name: `class-${index}`, spec });
    vm['classRef'] = { name: `class-${index}` };
  } else if (kind === 'VMImage') {
    related.push({ kind, name: `image-${index}`, spec });
    vm['imageRef'] = { name: `image-${index}` };
  } else if (kind === 'VMNetworkAttachment') {
    related.push({ kind, name: `net-${index}`, spec });
    vm['networks'] = [{ name: 'lan', networkRef: { name: `net-${index}` } }];
  }
  return { vm, related };
}

// The rules grouped by the capability a simulator lacks for them (none: rules no driver honours),
// one whole system per group with one VM per rule: ~40 systems instead of one per rule.
const groups = new Map<string, { kind: SupportedKind; rule: FieldRule }[]>();
for (const kind of KINDS) {
  for (const rule of FIELD_SUPPORT[kind] ?? []) {
    const key = rule.capability ?? '';
    groups.set(key, [...(groups.get(key) ?? []), { kind, rule }]);
  }
}

for (const [capability, cases] of groups) {
  const how = capability ? `without ${capability}` : 'on any driver';
  t.test(`${cases.length} rules ${how}: each VM Unsupported naming its field, no hypervisor call`, async (t) => {
    const env = await lifecycle(t, capability ? { simulator: { capabilities: { [capability]: false } } } : {});
    await env.basics();
    const before = env.world.totalCalls(['probe', 'inventory']);
    const names = cases.map((_, index) => `vm-${index}`);
    for (const [index, { kind, rule }] of cases.entries()) {
      const { vm, related } = objectsFor(kind, rule, index);
      for (const object of related) env.cluster.create({ apiVersion: API, kind: object.kind, metadata: { name: object.name, namespace: 'default' }, spec: object.spec });
      env.cluster.create({ apiVersion: API, kind: 'VirtualMachine', metadata: { name: `vm-${index}`, namespace: 'default' }, spec: vm });
    }
    await env.metacontroller.settle(() => names.every((name) => env.condition('Ready', name)?.reason === 'Unsupported'), { maxSyncs: 50 * cases.length + 200 });
    for (const [index, { kind, rule }] of cases.entries()) {
      const message = env.condition('Ready', `vm-${index}`)?.message;
      t.match(message, named(rule), `${kind} ${named(rule)}: the condition names the field`);
      if (rule.why && rule.for !== 'registry' && rule.for !== 'dataVolume') t.match(message, rule.why, `${kind} ${named(rule)}: and says why`);
    }
    t.equal(env.world.totalCalls(['probe', 'inventory']) - before, 0, 'no hypervisor call for any of the VMs');
  });
}
