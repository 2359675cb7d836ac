// The generated CRDs accept the seed examples as written and reject what they must, as the
// apiserver would; the TypeBox schemas the hook server validates with agree with them.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import t from 'tap';
import { parse, parseAllDocuments } from 'yaml';
import {
  KINDS,
  ProviderObject,
  VMClassObject,
  VMImageObject,
  VMNetworkAttachmentObject,
  VirtualMachineObject,
  VMCloneObject,
  VMSetObject,
  VMPlacementPolicyObject,
  VMMigrationObject,
  VMSnapshotObject,
  VMSnapshotScheduleObject,
} from '../../src/contracts/crds/index.js';
import { checkVMImage } from '../../src/contracts/normalize/vmimage.js';
import { normalizeVMPlacementPolicy } from '../../src/contracts/normalize/vmplacementpolicy.js';
import type { VMPlacementPolicySpec } from '../../src/contracts/crds/vmplacementpolicy.js';
import { checkVMNetworkAttachment } from '../../src/contracts/normalize/vmnetworkattachment.js';
import { normalizeVMMigration } from '../../src/contracts/normalize/vmmigration.js';
import { loadCrdValidators, type CrdValidator, type ValidationIssue } from '../helpers/crd-validator.js';

type Json = Record<string, unknown>;

const root = fileURLToPath(new URL('../..', import.meta.url));
const seeds = join(root, 'test/fixtures/seeds');
const validators = loadCrdValidators(join(root, 'manifests/crds'));
const objectSchemas: Record<string, TSchema> = {
  VirtualMachine: VirtualMachineObject,
  VMClass: VMClassObject,
  VMImage: VMImageObject,
  VMNetworkAttachment: VMNetworkAttachmentObject,
  Provider: ProviderObject,
  VMSnapshot: VMSnapshotObject,
  VMSnapshotSchedule: VMSnapshotScheduleObject,
  VMClone: VMCloneObject,
  VMSet: VMSetObject,
  VMPlacementPolicy: VMPlacementPolicyObject,
  VMMigration: VMMigrationObject,
};

const isJson = (value: unknown): value is Json => value !== null && typeof value === 'object' && !Array.isArray(value);

/** YAML 1.2, as our examples are written: `powerState: On` is the string "On". */
function readYaml(path: string): Json {
  const value: unknown = parse(readFileSync(path, 'utf8'));
  if (!isJson(value)) throw new Error(`${path} is not a YAML mapping`);
  return value;
}

const seed = (name: string) => readYaml(join(seeds, name));

function validatorFor(kind: string): CrdValidator {
  const validator = validators.get(kind);
  if (!validator) throw new Error(`no CRD for ${kind} in manifests/crds`);
  return validator;
}

function validate(object: Json, old?: Json): ValidationIssue[] {
  return validatorFor(String(object['kind'])).validate(object, old);
}

/** RFC 7386 JSON merge patch, as `kubectl patch --type=merge` applies it. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isJson(patch)) return structuredClone(patch);
  const out: Json = isJson(target) ? structuredClone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

function withSpec(object: Json, change: (spec: Json) => void): Json {
  const copy = structuredClone(object);
  if (!isJson(copy['spec'])) throw new Error('object has no spec');
  change(copy['spec']);
  return copy;
}

/** The request-side check: the kind's TypeBox object schema (which embeds its spec schema). */
function typeboxAccepts(object: Json): boolean {
  const kind = KINDS.find((k) => k.kind === object['kind']);
  const schema = objectSchemas[String(object['kind'])];
  if (!kind || !schema) throw new Error(`no TypeBox schema for ${String(object['kind'])}`);
  return Value.Check(schema, object) && Value.Check(kind.spec, object['spec']);
}

const wholeExamples = readdirSync(seeds).filter((f) => f.endsWith('.yaml')).sort();
const webServer = seed('001-virtualmachine-web-server.yaml');
const proxmoxProd = seed('001-provider-proxmox-prod.yaml');

t.test('the seed examples are all here and name their kind in the file name', async (t) => {
  t.equal(wholeExamples.length, 16);
  for (const file of wholeExamples) {
    t.equal(file.split('-')[1], String(seed(file)['kind']).toLowerCase(), file);
  }
});

for (const file of wholeExamples) {
  t.test(`${file} is accepted by its CRD as written`, async (t) => {
    t.same(validate(seed(file)), []);
  });
  t.test(`${file} is accepted by the TypeBox schema of its kind`, async (t) => {
    const object = seed(file);
    t.ok(typeboxAccepts(object), JSON.stringify([...Value.Errors(objectSchemas[String(object['kind'])] as TSchema, object)]));
  });
}

t.test('the "Scale up" fragment, merged onto the web-server example, is a valid object and a valid update', async (t) => {
  const fragment = readYaml(join(seeds, 'fragments/001-virtualmachine-web-server-scale-up.yaml'));
  const scaled = mergePatch(webServer, fragment) as Json;
  t.same(scaled['spec'], { ...(webServer['spec'] as Json), classRef: { name: 'large' } });
  t.same(validate(scaled), []);
  t.same(validate(scaled, webServer), []);
  t.ok(typeboxAccepts(scaled));
});

t.test('the "Full Clones" fragment, merged onto the linked-clone example, is a valid VMClone (but not a valid update: linkedClone is immutable)', async (t) => {
  const linked = seed('001-vmclone-web-clone.yaml');
  const full = mergePatch(linked, readYaml(join(seeds, 'fragments/001-vmclone-full-clone.yaml'))) as Json;
  t.same(validate(full), []);
  t.ok(typeboxAccepts(full));
  t.match(validate(full, linked), [{ message: /linkedClone is immutable/ }]);
});

t.test('every document of examples/placement.yaml is accepted by its CRD and TypeBox schema, and means something', async (t) => {
  const documents = parseAllDocuments(readFileSync(join(root, 'examples/placement.yaml'), 'utf8')).map((doc) => doc.toJS() as Json);
  t.equal(documents.length, 4);
  for (const document of documents) {
    t.same(validate(document), [], `${String(document['kind'])} ${String((document['metadata'] as Json)['name'])}`);
    t.ok(typeboxAccepts(document));
    if (document['kind'] === 'VMPlacementPolicy') t.ok(normalizeVMPlacementPolicy(document['spec'] as VMPlacementPolicySpec).ok);
  }
});

t.test('VMPlacementPolicy: In/NotIn need values, weights stay within 1–100, unknown fields are refused', async (t) => {
  const policy = (spec: Json): Json => ({ apiVersion: 'infra.virtrigaud.io/v1beta1', kind: 'VMPlacementPolicy', metadata: { name: 'p', namespace: 'default' }, spec });
  t.match(validate(policy({ antiAffinity: [{ key: 'a', operator: 'In' }] })), [{ message: /In and NotIn need at least one value/ }]);
  t.match(validate(policy({ preferredAffinity: [{ weight: 0, key: 'a', operator: 'Exists' }] })), [{ path: /weight/ }]);
  t.not(validate(policy({ hard: { zones: ['a'] } })).length, 0, 'upstream\'s unenforced blocks are not accepted');
  t.same(validate(policy({ constraints: { minFreeMemory: 4294967296 } })), [], 'a plain number of bytes');
});

t.test('every document of examples/snapshots-and-clones.yaml is accepted by its CRD and TypeBox schema', async (t) => {
  const documents = parseAllDocuments(readFileSync(join(root, 'examples/snapshots-and-clones.yaml'), 'utf8')).map((doc) => doc.toJS() as Json);
  t.ok(documents.length >= 4);
  for (const document of documents) {
    t.same(validate(document), [], `${String(document['kind'])} ${String((document['metadata'] as Json)['name'])}`);
    t.ok(typeboxAccepts(document));
  }
});

t.test('every document of examples/migration.yaml is accepted by its CRD and TypeBox schema, and normalizes', async (t) => {
  const documents = parseAllDocuments(readFileSync(join(root, 'examples/migration.yaml'), 'utf8')).map((doc) => doc.toJS() as Json);
  t.equal(documents.length, 2);
  for (const document of documents) {
    t.same(validate(document), [], `${String(document['kind'])} ${String((document['metadata'] as Json)['name'])}`);
    t.ok(typeboxAccepts(document));
    t.ok(normalizeVMMigration(document as unknown as VMMigrationObject).ok);
  }
});

t.test('VMMigration: one target name, immutable source and target, staging fields checked', async (t) => {
  const seedMigration = seed('002-vmmigration-vm-migration-example.yaml');
  t.ok(normalizeVMMigration(seedMigration as unknown as VMMigrationObject).ok, 'the seed\'s migration means something');
  const both = withSpec(seedMigration, (spec) => ((spec['target'] as Json)['name'] = 'other'));
  t.match(validate(both), [{ message: /exactly one of name and vmRef/ }]);
  const moved = withSpec(seedMigration, (spec) => ((spec['source'] as Json)['vmRef'] = { name: 'another' }));
  t.match(validate(moved, seedMigration), [{ message: /source\.vmRef is immutable/ }]);
  t.not(validate(withSpec(seedMigration, (spec) => ((spec['storage'] as Json)['type'] = 'ftp'))).length, 0);
});

t.test('every document of examples/vmsets.yaml is accepted by its CRD and TypeBox schema', async (t) => {
  const documents = parseAllDocuments(readFileSync(join(root, 'examples/vmsets.yaml'), 'utf8')).map((doc) => doc.toJS() as Json);
  t.equal(documents.length, 2);
  for (const document of documents) {
    t.same(validate(document), [], `${String(document['kind'])} ${String((document['metadata'] as Json)['name'])}`);
    t.ok(typeboxAccepts(document));
  }
});

t.test('a VirtualMachine names exactly one source, and cloneFrom cannot change', async (t) => {
  const cloned = withSpec(webServer, (spec) => {
    delete spec['imageRef'];
    spec['cloneFrom'] = { vmRef: { name: 'golden' } };
  });
  t.same(validate(cloned), []);
  t.match(validate(withSpec(cloned, (spec) => (spec['imageRef'] = { name: 'ubuntu-22' }))), [{ message: /exactly one source/ }]);
  t.match(validate(withSpec(webServer, (spec) => delete spec['imageRef'])), [{ message: /exactly one source/ }]);
  t.match(validate(withSpec(cloned, (spec) => (spec['cloneFrom'] = { vmRef: { name: 'other' } })), cloned), [{ message: /cloneFrom is immutable/ }]);
});

t.test('the static-IP userData fragment, merged into the web-server spec, is valid', async (t) => {
  const fragment = readYaml(join(seeds, 'fragments/001-virtualmachine-userdata-static-ip.yaml'));
  const updated = mergePatch(webServer, { spec: fragment }) as Json;
  t.same(validate(updated), []);
  t.same(validate(updated, webServer), []);
  t.ok(typeboxAccepts(updated));
});

t.test('the TLS runtime.env fragment, merged onto the proxmox-prod Provider, is valid', async (t) => {
  const fragment = readYaml(join(seeds, 'fragments/001-provider-tls-runtime-env.yaml'));
  const updated = mergePatch(proxmoxProd, fragment) as Json;
  t.same(validate(updated), []);
  t.same(validate(updated, proxmoxProd), []);
  t.ok(typeboxAccepts(updated));
});

t.test('defaults are applied as the apiserver stores the object', async (t) => {
  const { powerState: _, ...spec } = webServer['spec'] as Json;
  const stored = validatorFor('VirtualMachine').prune({ ...webServer, spec }) as Json;
  t.match(stored['spec'], { powerState: 'On', deletionPolicy: 'Delete' });
  const provider = validatorFor('Provider').prune(proxmoxProd) as Json;
  t.match(provider, { spec: { runtime: { service: { port: 9090 } } } });
});

interface Rejection {
  name: string;
  object: Json;
  old?: Json;
  path: string;
  message?: RegExp;
  /** The TypeBox schemas cannot say it: a CEL rule, a transition rule or list-map key uniqueness. */
  crdOnly?: boolean;
}

const provider = (spec: Json): Json => ({ ...proxmoxProd, spec });
const vmClass = seed('001-vmclass-small.yaml');
const vmImage = seed('001-vmimage-ubuntu-22.yaml');
const attachment: Json = {
  apiVersion: 'infra.virtrigaud.io/v1beta1',
  kind: 'VMNetworkAttachment',
  metadata: { name: 'dmz', namespace: 'default' },
  spec: { bridge: 'vmbr1', vlan: 100 },
};

const rejections: Rejection[] = [
  {
    name: 'a VirtualMachine without providerRef',
    object: withSpec(webServer, (s) => delete s['providerRef']),
    path: 'spec.providerRef',
    message: /Required value/,
  },
  {
    name: 'powerState "Paused"',
    object: withSpec(webServer, (s) => (s['powerState'] = 'Paused')),
    path: 'spec.powerState',
    message: /Unsupported value: "Paused"/,
  },
  {
    name: 'disk size "40GB"',
    object: withSpec(webServer, (s) => (s['disks'] = [{ name: 'root', size: '40GB' }])),
    path: 'spec.disks[0].size',
  },
  {
    name: 'disk size "0Gi"',
    object: withSpec(webServer, (s) => (s['disks'] = [{ name: 'root', size: '0Gi' }])),
    path: 'spec.disks[0].size',
  },
  {
    name: 'two networks with the same name',
    object: withSpec(webServer, (s) => (s['networks'] = [{ name: 'lan' }, { name: 'lan', bridge: 'vmbr1' }])),
    path: 'spec.networks[1]',
    message: /Duplicate value/,
    crdOnly: true,
  },
  {
    name: 'vlan 5000',
    object: withSpec(webServer, (s) => (s['networks'] = [{ name: 'lan', vlan: 5000 }])),
    path: 'spec.networks[0].vlan',
    message: /less than or equal to 4094/,
  },
  {
    name: 'a malformed mac',
    object: withSpec(webServer, (s) => (s['networks'] = [{ name: 'lan', mac: '02:00:00:aa:bb' }])),
    path: 'spec.networks[0].mac',
  },
  {
    name: 'cloudInit with neither inline nor secretRef',
    object: withSpec(webServer, (s) => (s['userData'] = { cloudInit: {} })),
    path: 'spec.userData.cloudInit',
    message: /set inline or secretRef/,
    crdOnly: true,
  },
  {
    name: 'shrinking a disk from 40Gi to 20Gi on update',
    object: withSpec(webServer, (s) => (s['disks'] = [{ name: 'root', size: '20Gi' }])),
    old: webServer,
    path: 'spec.disks[0]',
    message: /disk size can only grow/,
    crdOnly: true,
  },
  {
    // 42G = 42,000,000,000 bytes < 40Gi = 42,949,672,960 bytes: a shrink despite the bigger number.
    name: 'changing a disk from 40Gi to 42G on update',
    object: withSpec(webServer, (s) => (s['disks'] = [{ name: 'root', size: '42G' }])),
    old: webServer,
    path: 'spec.disks[0]',
    message: /disk size can only grow/,
    crdOnly: true,
  },
  {
    name: 'changing providerRef on update',
    object: withSpec(webServer, (s) => (s['providerRef'] = { name: 'proxmox-cluster' })),
    old: webServer,
    path: 'spec.providerRef',
    message: /providerRef is immutable/,
    crdOnly: true,
  },
  {
    name: "a VMClass with bios 'bios' and secureBoot true",
    object: withSpec(vmClass, (s) => {
      s['spec'] = { machine: 'q35', bios: 'bios' };
      s['securityProfile'] = { secureBoot: true };
    }),
    path: 'spec',
    message: /need uefi firmware/,
    crdOnly: true,
  },
  {
    name: 'a VMClass with memory "lots"',
    object: withSpec(vmClass, (s) => (s['memory'] = 'lots')),
    path: 'spec.memory',
  },
  {
    name: 'a proxmox Provider without endpoint',
    object: provider({ type: 'proxmox', credentialSecretRef: { name: 'pve-credentials' } }),
    path: 'spec',
    message: /^endpoint is required$/,
    crdOnly: true,
  },
  {
    name: 'a Provider of type "hyperv"',
    object: provider({ type: 'hyperv', endpoint: 'https://hyperv.example.com' }),
    path: 'spec.type',
    message: /Unsupported value: "hyperv"/,
  },
  {
    name: 'an unknown field in spec',
    object: withSpec(webServer, (s) => (s['cpuCount'] = 4)),
    path: 'spec.cpuCount',
    message: /unknown field "spec.cpuCount"/,
  },
];

// spec.source (VMImage) and spec.network (VMNetworkAttachment) hold a string in the seeds' shape and
// an object in upstream's: untyped nodes, which CEL cannot see. Exactly-one-source is the hook's
// (test/contracts/vmimage-shapes.test.ts, vmnetworkattachment-shapes.test.ts).
t.test('the CRD leaves VMImage and VMNetworkAttachment source exclusivity to the hook, which refuses it', async (t) => {
  const cases: [Json, string][] = [
    [withSpec(vmImage, (s) => (s['url'] = { url: 'https://images.example.com/jammy.qcow2' })), 'set exactly one image source: spec.source or spec.url, not both'],
    [withSpec(vmImage, (s) => delete s['source']), 'set exactly one image source: spec.source or spec.url'],
    [withSpec(attachment, (s) => (s['network'] = 'dmz')), 'set exactly one of spec.bridge and spec.network, not both'],
  ];
  for (const [object, message] of cases) {
    t.same(validate(object), [], `${String(object['kind'])} applies`);
    const spec = object['spec'] as never;
    t.equal(object['kind'] === 'VMImage' ? checkVMImage(spec) : checkVMNetworkAttachment(spec), message);
  }
});

for (const r of rejections) {
  t.test(`the CRD rejects ${r.name}`, async (t) => {
    const issues = validate(r.object, r.old);
    const hit = issues.find((i) => i.path === r.path && (r.message === undefined || r.message.test(i.message)));
    t.ok(hit, `expected an issue at ${r.path}${r.message ? ` matching ${r.message}` : ''}, got ${JSON.stringify(issues)}`);
  });
  if (!r.crdOnly) {
    t.test(`the TypeBox schema rejects ${r.name}`, async (t) => {
      t.notOk(typeboxAccepts(r.object));
    });
  }
}

t.test('the CEL-only and list-map rules are the only ones the TypeBox schemas leave to the apiserver', async (t) => {
  for (const r of rejections.filter((r) => r.crdOnly && r.old === undefined)) {
    t.ok(typeboxAccepts(r.object), r.name);
  }
});

t.test('a disk may grow on update, across units', async (t) => {
  for (const size of ['40Gi', '41Gi', '43G', '1Ti', '40960Mi']) {
    const grown = withSpec(webServer, (s) => (s['disks'] = [{ name: 'root', size }]));
    t.same(validate(grown, webServer), [], `40Gi -> ${size}`);
  }
});

t.test('the grow-only rule compares disks by name, not by position', async (t) => {
  const old = withSpec(webServer, (s) => (s['disks'] = [{ name: 'root', size: '40Gi' }, { name: 'data', size: '100Gi' }]));
  const reordered = withSpec(webServer, (s) => (s['disks'] = [{ name: 'data', size: '200Gi' }, { name: 'root', size: '40Gi' }]));
  t.same(validate(reordered, old), []);
  const shrunk = withSpec(webServer, (s) => (s['disks'] = [{ name: 'data', size: '50Gi' }, { name: 'root', size: '40Gi' }]));
  t.match(validate(shrunk, old), [{ path: 'spec.disks[0]', message: 'disk size can only grow' }]);
});

t.test('a new disk on update is not compared with anything', async (t) => {
  const added = withSpec(webServer, (s) => (s['disks'] = [{ name: 'root', size: '40Gi' }, { name: 'data', size: '1Gi' }]));
  t.same(validate(added, webServer), []);
});

t.test('an unchanged providerRef is accepted on update, and any providerRef on create', async (t) => {
  const relabelled = mergePatch(webServer, { metadata: { labels: { tier: 'web' } } }) as Json;
  t.same(validate(relabelled, webServer), []);
  const moved = withSpec(webServer, (s) => (s['providerRef'] = { name: 'proxmox-cluster' }));
  t.same(validate(moved), []);
});
