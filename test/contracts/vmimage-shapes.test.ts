// VMImage in both shapes: upstream VirtRigaud's v1beta1 (`source` as an object with a branch per
// hypervisor or transport) and the seeds' (`source: "<template>"`, `url`). Every fixture applies to
// the generated CRD as kubectl sends it; each upstream one normalizes, for every provider type that
// reads it, to the same ImageSpec as its seed-shaped twin; the untyped spec.source is checked by
// the hook, which names the field; fieldUses names what a provider cannot honour.
import { readFileSync } from 'node:fs';
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import t, { type Test } from 'tap';
import { parse } from 'yaml';
import type { ProviderType } from '../../src/contracts/crds/provider.js';
import { ImageSourceObject, VMImageObject, VMImageSpec, VMImageStatus } from '../../src/contracts/crds/vmimage.js';
import type { ImageSpec } from '../../src/contracts/driver.js';
import type { SourceBranch } from '../../src/contracts/normalize/common.js';
import { checkVMImage, normalizeVMImage, VMIMAGE_FIELDS } from '../../src/contracts/normalize/vmimage.js';
import { fieldUses, FIELD_SUPPORT } from '../../src/contracts/support.js';
import { syncVMImage } from '../../src/hooks/catalog.js';
import { upstreamFixtures } from '../helpers/upstream-fixtures.js';
import { structuralIssues } from '../helpers/crd-validator.js';
import { objectWith, testFieldRules } from '../helpers/field-rules.js';
import { testServer } from '../helpers/server.js';

type Json = Record<string, unknown>;

const fixtures = upstreamFixtures('VMImage', 'vmimage');
const validator = fixtures.crd;
const FILES = fixtures.files;
const PROVIDERS: readonly ProviderType[] = ['simulator', 'vsphere', 'libvirt', 'proxmox'];
const manifest = fixtures.manifest;
/** As the apiserver stores it (pruned, defaulted), after checking that it applies. */
const stored = (name: string, t?: Test): Json => fixtures.stored(manifest(name), t);

const specOf = (object: Json) => object['spec'] as VMImageSpec;
const image = (spec: Json) => ({ apiVersion: 'infra.virtrigaud.io/v1beta1', kind: 'VMImage', metadata: { name: 'img', namespace: 'default' }, spec });

t.test('every fixture applies to the CRD (strict fields, CEL), fits the contract and is valid for the hook', async (t) => {
  t.ok(FILES.length >= 15);
  for (const file of FILES) {
    const object = stored(file, t);
    t.ok(Value.Check(VMImageObject, object), `${file}: the TypeBox schema accepts it`);
    t.equal(checkVMImage(specOf(object)), undefined, `${file}: the hook finds nothing wrong`);
  }
});

/** Every dotted path of a TypeBox object schema (maps and arrays are leaves). */
function schemaPaths(schema: TSchema, prefix: string): string[] {
  const properties = (schema as { properties?: Record<string, TSchema> }).properties;
  if (properties === undefined) return [prefix];
  return Object.entries(properties).flatMap(([key, child]) => schemaPaths(child, `${prefix}.${key}`));
}

function hasPath(root: unknown, path: string): boolean {
  let node: unknown = root;
  for (const key of path.split('.')) {
    if (node === null || typeof node !== 'object' || !(key in node)) return false;
    node = (node as Json)[key];
  }
  return true;
}

t.test('the upstream fixtures set every field of upstream\'s VMImage spec, every branch of source included', async (t) => {
  const upstream = FILES.filter((file) => file.endsWith('.upstream.yaml')).map((file) => manifest(file)['spec']);
  const { source: _, url: __, fullClone: ___, ...typed } = VMImageSpec.properties;
  const paths = [...schemaPaths(ImageSourceObject, 'source'), ...Object.entries(typed).flatMap(([key, schema]) => schemaPaths(schema, key))];
  t.ok(paths.length > 60, `${paths.length} fields`);
  for (const path of paths) t.ok(upstream.some((spec) => hasPath(spec, path)), `spec.${path} is set by some fixture`);
});

interface Twin {
  name: string;
  providers: readonly ProviderType[];
  image: ImageSpec;
  branch?: SourceBranch;
}

const twins: Twin[] = [
  { name: 'vsphere-template', providers: ['vsphere', 'simulator'], image: { kind: 'template', ref: 'templates/ubuntu-22.04-cloud', fullClone: true }, branch: 'vsphere' },
  {
    name: 'libvirt-path',
    providers: ['libvirt', 'simulator'],
    image: { kind: 'template', ref: '/var/lib/libvirt/images/jammy-server-cloudimg-amd64.qcow2', fullClone: true },
    branch: 'libvirt',
  },
  {
    name: 'libvirt-url',
    providers: ['libvirt', 'simulator'],
    image: {
      kind: 'url',
      url: 'https://images.example.com/jammy/jammy-server-cloudimg-amd64.img',
      checksum: 'sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08',
      fullClone: true,
    },
    branch: 'libvirt',
  },
  { name: 'proxmox-linked', providers: ['proxmox', 'simulator'], image: { kind: 'template', ref: '9000', fullClone: false }, branch: 'proxmox' },
  {
    name: 'http',
    providers: PROVIDERS,
    image: {
      kind: 'url',
      url: 'https://images.example.com/fedora/Fedora-Cloud-Base-40.qcow2',
      checksum:
        'sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e',
      fullClone: false,
    },
    branch: 'http',
  },
];

t.test('every upstream fixture with a seed-shaped twin is in the twin table', async (t) => {
  const paired = FILES.filter((file) => file.endsWith('.seed.yaml')).map((file) => file.replace('.seed.yaml', ''));
  t.same(paired.sort(), twins.map((twin) => twin.name).sort());
});

for (const twin of twins) {
  t.test(`${twin.name}: both shapes normalize to the same image`, async (t) => {
    const upstream = specOf(stored(`${twin.name}.upstream.yaml`, t));
    const seed = specOf(stored(`${twin.name}.seed.yaml`, t));
    for (const provider of twin.providers) {
      const fromUpstream = normalizeVMImage(upstream, provider);
      const fromSeed = normalizeVMImage(seed, provider);
      t.same(fromUpstream, { ok: true, value: { image: twin.image, ...(twin.branch ? { branch: twin.branch } : {}) } }, `upstream, read by ${provider}`);
      t.same(fromSeed, { ok: true, value: { image: twin.image } }, `seed, read by ${provider}`);
    }
  });
}

t.test('a seed-shaped image means the same to every provider type', async (t) => {
  for (const file of FILES.filter((name) => name.endsWith('.seed.yaml'))) {
    const spec = specOf(stored(file));
    const first = normalizeVMImage(spec, 'simulator');
    for (const provider of PROVIDERS) t.same(normalizeVMImage(spec, provider), first, `${file} on ${provider}`);
  }
});

t.test('each provider type reads its own branch; the simulator the first of proxmox, vsphere, libvirt, http', async (t) => {
  const every = specOf(stored('every-hypervisor.upstream.yaml', t));
  const source = every.source as Json;
  const jammyURL = 'https://images.example.com/jammy/jammy-server-cloudimg-amd64.img';
  const cases: [string, Json, ProviderType, ImageSpec, SourceBranch | undefined][] = [
    ['all three', source, 'vsphere', { kind: 'template', ref: 'ubuntu-22.04-template', fullClone: true }, 'vsphere'],
    ['all three', source, 'libvirt', { kind: 'url', url: jammyURL, fullClone: true }, 'libvirt'],
    ['all three', source, 'proxmox', { kind: 'template', ref: 'ubuntu-22.04-template', fullClone: true }, 'proxmox'],
    ['all three', source, 'simulator', { kind: 'template', ref: 'ubuntu-22.04-template', fullClone: true }, 'proxmox'],
    ['vsphere and libvirt', { vsphere: source['vsphere'], libvirt: source['libvirt'] }, 'simulator', { kind: 'template', ref: 'ubuntu-22.04-template', fullClone: true }, 'vsphere'],
    ['libvirt', { libvirt: source['libvirt'] }, 'simulator', { kind: 'url', url: jammyURL, fullClone: true }, 'libvirt'],
    ['vsphere and http', { vsphere: source['vsphere'], http: { url: jammyURL } }, 'vsphere', { kind: 'template', ref: 'ubuntu-22.04-template', fullClone: true }, 'vsphere'],
    ['vsphere and http', { vsphere: source['vsphere'], http: { url: jammyURL } }, 'proxmox', { kind: 'url', url: jammyURL, fullClone: true }, 'http'],
    ['libvirt and http', { libvirt: { path: '/images/jammy.qcow2' }, http: { url: jammyURL } }, 'simulator', { kind: 'template', ref: '/images/jammy.qcow2', fullClone: true }, 'libvirt'],
    ['http and registry', { http: { url: jammyURL }, registry: { image: 'registry.example.com/jammy:22.04' } }, 'simulator', { kind: 'url', url: jammyURL, fullClone: true }, 'http'],
    ['http', { http: { url: jammyURL } }, 'qemu', { kind: 'url', url: jammyURL, fullClone: true }, 'http'],
  ];
  for (const [label, object, provider, expected, branch] of cases) {
    t.same(normalizeVMImage({ source: object }, provider), { ok: true, value: { image: expected, ...(branch ? { branch } : {}) } }, `${label}, read by ${provider}`);
  }
});

t.test('an image without a branch the provider type reads is Unsupported, naming the branches it has', async (t) => {
  const cases: [string, ProviderType, string][] = [
    ['vsphere-template.upstream.yaml', 'proxmox', 'spec.source has vsphere; a proxmox provider reads spec.source.proxmox or spec.source.http'],
    ['vsphere-template.upstream.yaml', 'libvirt', 'spec.source has vsphere; a libvirt provider reads spec.source.libvirt or spec.source.http'],
    ['proxmox-linked.upstream.yaml', 'vsphere', 'spec.source has proxmox; a vsphere provider reads spec.source.vsphere or spec.source.http'],
    ['every-hypervisor.upstream.yaml', 'qemu', 'spec.source has vsphere, libvirt, proxmox; a qemu provider reads spec.source.http'],
    [
      'registry.upstream.yaml',
      'simulator',
      'spec.source has registry; the simulator reads spec.source.proxmox, spec.source.vsphere, spec.source.libvirt or spec.source.http',
    ],
    ['datavolume.upstream.yaml', 'libvirt', 'spec.source has dataVolume; a libvirt provider reads spec.source.libvirt or spec.source.http'],
  ];
  for (const [file, provider, message] of cases) {
    const spec = specOf(stored(file));
    t.same(normalizeVMImage(spec, provider), { ok: false, problem: message, unsupported: true }, `${file} on ${provider}`);
    t.equal(checkVMImage(spec), undefined, `${file} is valid all the same`);
  }
});

t.test('combinations no single rule can see are Unsupported by normalize, naming the field', async (t) => {
  const url = 'https://images.example.com/jammy.qcow2';
  const cases: [string, Json, ProviderType, RegExp][] = [
    ['a vSphere branch with no template', { source: { vsphere: { contentLibrary: { library: 'l', item: 'i' } } } }, 'vsphere', /^spec\.source\.vsphere has contentLibrary but no templateName/],
    [
      'a checksum on an image at a host path',
      { source: { libvirt: { path: '/images/a.qcow2', checksum: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08' } } },
      'libvirt',
      /^spec\.source\.libvirt\.checksum: only downloaded images are verified/,
    ],
    ['onMissing Fail on a seed URL image', { url: { url }, prepare: { onMissing: 'Fail' } }, 'libvirt', /^spec\.prepare\.onMissing Fail: a URL image is downloaded/],
    ['onMissing Wait on an http image', { source: { http: { url } }, prepare: { onMissing: 'Wait' } }, 'simulator', /^spec\.prepare\.onMissing Wait/],
    ['onMissing Fail on a libvirt URL', { source: { libvirt: { url } }, prepare: { onMissing: 'Fail' } }, 'libvirt', /^spec\.prepare\.onMissing Fail/],
  ];
  for (const [label, spec, provider, message] of cases) {
    t.same(validator.validate(image(spec)), [], `${label}: applies`);
    const result = normalizeVMImage(spec as VMImageSpec, provider);
    t.match(result, { ok: false, unsupported: true, problem: message }, label);
  }
  const fine: [string, Json, ProviderType][] = [
    ['onMissing Fail on a template', { source: 'jammy', prepare: { onMissing: 'Fail' } }, 'proxmox'],
    ['onMissing Wait on a vSphere template', { source: { vsphere: { templateName: 'jammy' } }, prepare: { onMissing: 'Wait' } }, 'vsphere'],
    [
      'a checksum on a host path, not validated',
      { source: { libvirt: { path: '/images/a.qcow2', checksum: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08' } }, prepare: { validateChecksum: false } },
      'libvirt',
    ],
    ['an OVA beside a template (its own rule answers)', { source: { vsphere: { templateName: 'jammy', ovaURL: 'https://x.example.com/a.ova' } } }, 'vsphere'],
  ];
  for (const [label, spec, provider] of fine) t.match(normalizeVMImage(spec as VMImageSpec, provider), { ok: true }, label);
});

t.test('defaults follow the shape, and checksums come out as the drivers take them', async (t) => {
  const hex256 = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';
  const url = 'https://images.example.com/jammy.qcow2';
  const cases: [string, Json, ProviderType, ImageSpec][] = [
    ['seed template: a full clone', { source: 'jammy' }, 'proxmox', { kind: 'template', ref: 'jammy', fullClone: true }],
    ['an unquoted numeric template ID', { source: 9000 }, 'proxmox', { kind: 'template', ref: '9000', fullClone: true }],
    ['proxmox branch: a full clone', { source: { proxmox: { templateID: 9000 } } }, 'proxmox', { kind: 'template', ref: '9000', fullClone: true }],
    ['proxmox branch, templateName', { source: { proxmox: { templateName: 'jammy', fullClone: false } } }, 'proxmox', { kind: 'template', ref: 'jammy', fullClone: false }],
    ['seed fullClone beside a vSphere branch', { source: { vsphere: { templateName: 'jammy' } }, fullClone: false }, 'vsphere', { kind: 'template', ref: 'jammy', fullClone: false }],
    ['a bare hex digest is sha256', { source: { http: { url, checksum: hex256 } } }, 'libvirt', { kind: 'url', url, checksum: `sha256:${hex256}`, fullClone: true }],
    ['a prefixed digest in upper case', { source: { http: { url, checksum: `sha256:${hex256.toUpperCase()}` } } }, 'libvirt', { kind: 'url', url, checksum: `sha256:${hex256}`, fullClone: true }],
    ['validateChecksum false drops the checksum', { source: { http: { url, checksum: hex256 } }, prepare: { validateChecksum: false } }, 'libvirt', { kind: 'url', url, fullClone: true }],
    ['validateChecksum false, seed url', { url: { url, checksum: `sha256:${hex256}` }, prepare: { validateChecksum: false } }, 'libvirt', { kind: 'url', url, fullClone: true }],
    ['an md5 digest is not carried (its rule answers)', { source: { http: { url, checksum: '5d41402abc4b2a76b9719d911017c592', checksumType: 'md5' } } }, 'libvirt', { kind: 'url', url, fullClone: true }],
    ['empty strings are unset (Go omitempty)', { source: { libvirt: { path: '/images/a.qcow2', checksum: '', storagePool: '' } } }, 'libvirt', { kind: 'template', ref: '/images/a.qcow2', fullClone: true }],
  ];
  for (const [label, spec, provider, expected] of cases) {
    const result = normalizeVMImage(spec as VMImageSpec, provider);
    t.same(result.ok ? result.value.image : result, expected, label);
  }
});

t.test('source.proxmox.storage is the datastore of the clone', async (t) => {
  const spec = specOf(stored('proxmox-storage.upstream.yaml', t));
  t.same(normalizeVMImage(spec, 'proxmox'), {
    ok: true,
    value: { image: { kind: 'template', ref: 'debian-12-cloud', fullClone: true }, branch: 'proxmox', datastore: 'local-lvm' },
  });
  t.same(fieldUses('VMImage', { spec }, 'proxmox'), [{ path: 'spec.source.proxmox.storage', capability: 'placementDatastore' }]);
});

interface Refusal {
  name: string;
  spec: Json;
  message: string;
}

// The CRD cannot say any of these (spec.source is untyped; CEL cannot see it): they apply, and
// the hook refuses them with a message naming the field.
const refusals: Refusal[] = [
  { name: 'both source and url (seed)', spec: { source: 'jammy', url: { url: 'https://x.example.com/a.img' } }, message: 'set exactly one image source: spec.source or spec.url, not both' },
  {
    name: 'both an object source and url',
    spec: { source: { http: { url: 'https://x.example.com/a.img' } }, url: { url: 'https://x.example.com/a.img' } },
    message: 'set exactly one image source: spec.source or spec.url, not both',
  },
  { name: 'neither source nor url', spec: { fullClone: true }, message: 'set exactly one image source: spec.source or spec.url' },
  {
    name: 'both spellings of fullClone',
    spec: { source: { proxmox: { templateID: 9000, fullClone: false } }, fullClone: false },
    message: 'set spec.fullClone or spec.source.proxmox.fullClone, not both',
  },
  { name: 'a typo inside source.vsphere', spec: { source: { vsphere: { templateNam: 'jammy' } } }, message: 'spec.source.vsphere.templateNam is not a known field' },
  { name: 'an unknown branch', spec: { source: { ftp: { url: 'ftp://x' } } }, message: 'spec.source.ftp is not a known field' },
  { name: 'a templateID as a string', spec: { source: { proxmox: { templateID: '9000' } } }, message: 'spec.source.proxmox.templateID: expected integer' },
  { name: 'a templateID below 100', spec: { source: { proxmox: { templateID: 99 } } }, message: 'spec.source.proxmox.templateID: expected integer to be greater or equal to 100' },
  { name: 'an http branch without url', spec: { source: { http: { checksum: 'ab' } } }, message: 'spec.source.http.url is required' },
  { name: 'an unknown format', spec: { source: { libvirt: { path: '/a.qcow2', format: 'qcow3' } } }, message: 'spec.source.libvirt.format must be one of "qcow2", "raw", "vmdk", "vhd", "vhdx", "iso", "ova", "ovf"' },
  { name: 'an unknown checksumType', spec: { source: { http: { url: 'https://x.example.com/a', checksumType: 'crc32' } } }, message: 'spec.source.http.checksumType must be one of "md5", "sha1", "sha256", "sha512"' },
  { name: 'a vSphere ovaURL that is no OVA', spec: { source: { vsphere: { ovaURL: 'https://x.example.com/a.img' } } }, message: "spec.source.vsphere.ovaURL: expected string to match '^https?://.*\\.(ova|ovf)$'" },
  { name: 'a typo in a registry secret reference', spec: { source: { registry: { image: 'r/a:1', pullSecretRef: { nam: 'x' } } } }, message: 'spec.source.registry.pullSecretRef.nam is not a known field' },
  { name: 'an empty object', spec: { source: {} }, message: 'spec.source names no image: set one of vsphere, libvirt, proxmox, http, registry or dataVolume' },
  { name: 'a list', spec: { source: ['jammy'] }, message: 'spec.source must be a template name or ID, or an object with vsphere, libvirt, proxmox, http, registry or dataVolume' },
  { name: 'a boolean', spec: { source: true }, message: 'spec.source must be a template name or ID, or an object with vsphere, libvirt, proxmox, http, registry or dataVolume' },
  { name: 'an empty string', spec: { source: '' }, message: 'spec.source must be a template name or ID of 1 to 1024 characters' },
  { name: 'a negative template ID', spec: { source: -1 }, message: 'spec.source must be a template name or a whole-number template ID' },
  { name: 'a vSphere branch naming nothing', spec: { source: { vsphere: { checksumType: 'sha256' } } }, message: 'spec.source.vsphere: set templateName, contentLibrary or ovaURL' },
  { name: 'a libvirt path and url', spec: { source: { libvirt: { path: '/a.qcow2', url: 'https://x.example.com/a' } } }, message: 'spec.source.libvirt: set path or url, not both' },
  { name: 'a libvirt branch naming nothing', spec: { source: { libvirt: { format: 'qcow2' } } }, message: 'spec.source.libvirt: set path or url' },
  { name: 'a Proxmox templateID and templateName', spec: { source: { proxmox: { templateID: 9000, templateName: 'jammy' } } }, message: 'spec.source.proxmox: set templateID or templateName, not both' },
  { name: 'a Proxmox branch naming nothing', spec: { source: { proxmox: { storage: 'local-lvm' } } }, message: 'spec.source.proxmox: set templateID or templateName' },
  { name: 'a checksum that is not hex', spec: { source: { http: { url: 'https://x.example.com/a', checksum: 'sha256:REPLACE_ME' } } }, message: 'spec.source.http.checksum is not a hex digest (optionally prefixed "<algorithm>:")' },
  { name: 'a checksum of the wrong length', spec: { source: { libvirt: { url: 'https://x.example.com/a', checksum: 'abcd' } } }, message: 'spec.source.libvirt.checksum has 4 hex digits; a sha256 digest has 64' },
  {
    name: 'a checksum prefix that contradicts checksumType',
    spec: { source: { http: { url: 'https://x.example.com/a', checksum: 'sha512:abcd', checksumType: 'sha256' } } },
    message: 'spec.source.http.checksum is a sha512 digest but spec.source.http.checksumType is sha256',
  },
];

for (const refusal of refusals) {
  t.test(`the CRD accepts and the hook refuses ${refusal.name}`, async (t) => {
    const object = image(refusal.spec);
    t.same(validator.validate(object), [], 'applies (the apiserver cannot see inside spec.source)');
    const spec = specOf(validator.prune(object) as Json);
    t.equal(checkVMImage(spec), refusal.message);
    for (const provider of PROVIDERS) t.same(normalizeVMImage(spec, provider), { ok: false, problem: refusal.message }, `normalize on ${provider}`);
    const answer = syncVMImage({ controller: {}, parent: { ...object, metadata: { ...object.metadata, generation: 2 } } as never }, 1_700_000_000_000);
    t.match(answer.status, { conditions: [{ type: 'Ready', status: 'False', reason: 'InvalidSpec', message: refusal.message, observedGeneration: 2 }], observedGeneration: 2 });
    t.notOk('sourceType' in answer.status, 'an invalid image has no source type');
  });
}

t.test('the CRD installs: its CEL rules compile and none reaches into the untyped spec.source', async (t) => {
  const crd = parse(readFileSync(new URL(`../../manifests/crds/vmimages.infra.virtrigaud.io.yaml`, import.meta.url), 'utf8')) as Json;
  t.same(structuralIssues(crd), []);
  const text = JSON.stringify(crd);
  t.notMatch(text, /self\.source/, 'no rule reads self.source');
  t.match(text, /"source":\{"description":"[^"]+","x-kubernetes-preserve-unknown-fields":true\}/, 'spec.source is untyped and documented');
});

t.test('fields with two spellings carry no schema default', async (t) => {
  const stored = validator.prune(image({ source: 'jammy' })) as Json;
  t.same(stored['spec'], { source: 'jammy' }, 'no fullClone default is stored');
  const upstream = validator.prune(image({ source: { proxmox: { templateID: 9000 } }, prepare: {} })) as Json;
  t.same(upstream['spec'], { source: { proxmox: { templateID: 9000 } }, prepare: { onMissing: 'Import', validateChecksum: true, timeout: '30m', retries: 3 } });
});

t.test('the catalog hook publishes what the source amounts to, in a status that fits its schema', async (t) => {
  const cases: [string, Json][] = [
    ['vsphere-template.seed.yaml', { sourceType: 'Template' }],
    ['http.seed.yaml', { sourceType: 'URL' }],
    ['every-hypervisor.upstream.yaml', { sourceType: 'Branches', branches: ['vsphere', 'libvirt', 'proxmox'] }],
    ['registry.upstream.yaml', { sourceType: 'Branches', branches: ['registry'] }],
  ];
  for (const [file, summary] of cases) {
    const object = stored(file, t);
    const answer = syncVMImage({ controller: {}, parent: object as never }, 1_700_000_000_000);
    t.match(answer.status, { ...summary, conditions: [{ type: 'Ready', status: 'True', reason: 'Valid' }] }, file);
    t.ok(Value.Check(VMImageStatus, answer.status), `${file}: the status fits VMImageStatus`);
  }
});

// ---- The field-support rules ------------------------------------------------------------------

t.test('FIELD_SUPPORT registers the VMImage rules', async (t) => {
  t.equal(FIELD_SUPPORT.VMImage, VMIMAGE_FIELDS);
});

testFieldRules('VMImage', VMIMAGE_FIELDS, { ...VMImageSpec, properties: { ...VMImageSpec.properties, source: ImageSourceObject } } as TSchema);

t.test('explicit upstream defaults ask nothing of the driver', async (t) => {
  const spec = {
    source: {
      vsphere: { templateName: 'a', checksumType: 'sha256', checksum: '' },
      libvirt: { path: '/images/a.qcow2', format: 'qcow2', checksumType: 'sha256', storagePool: '' },
      proxmox: { templateID: 9000, fullClone: true, format: 'qcow2', node: 'pve1' },
    },
    prepare: {
      onMissing: 'Import',
      validateChecksum: true,
      timeout: '30m',
      retries: 3,
      force: false,
      storage: { preferredFormat: 'qcow2', compression: false },
      optimization: { enableCompression: false, removeUnusedSpace: false, convertFormat: 'qcow2', enableDeltaSync: false },
    },
    metadata: { architecture: 'amd64', displayName: 'A', description: 'B', version: '1', tags: { a: 'b' }, annotations: { c: 'd' } },
    distribution: { name: 'ubuntu', version: '22.04', variant: 'server', family: 'linux', kernel: { version: '5.15', type: 'linux' } },
    fullClone: true,
  };
  for (const branch of ['vsphere', 'libvirt', 'proxmox'] as const) {
    t.same(fieldUses('VMImage', { spec }, branch), [], `read as ${branch}`);
  }
  // A download needs imageImport, and nothing else.
  const http = { source: { http: { url: 'https://x.example.com/a', checksumType: 'sha256', timeout: '30m' } }, prepare: spec.prepare };
  t.same(fieldUses('VMImage', { spec: http }, 'http'), [{ path: 'spec.source.http.url', capability: 'imageImport' }]);
});

t.test('the fixtures\' uses, branch by branch', async (t) => {
  const uses = (file: string, branch?: SourceBranch) =>
    fieldUses('VMImage', stored(file), branch).map((use) => `${use.path} ${use.capability ?? 'why'}`);
  t.same(uses('every-hypervisor.upstream.yaml', 'vsphere'), []);
  t.same(uses('every-hypervisor.upstream.yaml', 'libvirt'), ['spec.source.libvirt imageImport', 'spec.source.libvirt.storagePool why']);
  t.same(uses('every-hypervisor.upstream.yaml', 'proxmox'), ['spec.source.proxmox.format=raw why']);
  t.same(uses('proxmox-linked.upstream.yaml', 'proxmox'), ['spec.source.proxmox.fullClone linkedClones']);
  t.same(uses('proxmox-linked.seed.yaml'), ['spec.fullClone linkedClones']);
  t.same(uses('libvirt-url.seed.yaml'), ['spec.url.url imageImport']);
  t.same(uses('libvirt-path.upstream.yaml', 'libvirt'), [], 'an empty storagePool is unset');
  t.same(uses('http-everything.upstream.yaml', 'http'), [
    'spec.source.http.url imageImport',
    'spec.source.http.checksumType=md5 why',
    'spec.source.http.headers why',
    'spec.source.http.authentication.basicAuth why',
    'spec.source.http.authentication.bearer why',
    'spec.source.http.authentication.clientCert why',
    'spec.source.http.timeout why',
  ]);
  t.same(uses('vsphere-import.upstream.yaml', 'vsphere'), [
    'spec.source.vsphere.contentLibrary why',
    'spec.source.vsphere why',
    'spec.source.vsphere why',
    'spec.source.vsphere.providerRef why',
    'spec.prepare.timeout why',
    'spec.prepare.retries why',
    'spec.prepare.force why',
    'spec.prepare.storage.vsphere.datastore why',
    'spec.prepare.storage.vsphere.folder why',
    'spec.prepare.storage.vsphere.thinProvisioned why',
    'spec.prepare.storage.vsphere.diskType why',
    'spec.prepare.storage.libvirt.storagePool why',
    'spec.prepare.storage.libvirt.allocationPolicy why',
    'spec.prepare.storage.libvirt.preallocation why',
    'spec.prepare.storage.preferredFormat=vmdk why',
    'spec.prepare.storage.compression why',
    'spec.prepare.optimization.enableCompression why',
    'spec.prepare.optimization.removeUnusedSpace why',
    'spec.prepare.optimization.convertFormat=raw why',
    'spec.prepare.optimization.enableDeltaSync why',
    'spec.metadata.architecture=arm64 why',
  ]);
  t.same(uses('registry.upstream.yaml', 'registry'), ['spec.source.registry.image why']);
  t.same(uses('datavolume.upstream.yaml', 'dataVolume'), ['spec.source.dataVolume.name why']);
});

t.test('the hook server takes an upstream-shaped VMImage through its route schemas and answers its status', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  for (const [file, ready] of [
    ['every-hypervisor.upstream.yaml', 'True'],
    ['http-everything.upstream.yaml', 'True'],
  ] as const) {
    const parent = { ...stored(file), metadata: { name: 'img', namespace: 'default', generation: 1 } };
    const response = await app.inject({ method: 'POST', url: '/hooks/vmimage/sync', payload: { controller: {}, parent, children: {}, related: {} } });
    t.equal(response.statusCode, 200, response.body);
    t.match(response.json(), { status: { sourceType: 'Branches', conditions: [{ type: 'Ready', status: ready }] } }, file);
  }
  const typo = image({ source: { vsphere: { templateNam: 'jammy' } } });
  const response = await app.inject({ method: 'POST', url: '/hooks/vmimage/sync', payload: { controller: {}, parent: typo, children: {}, related: {} } });
  t.equal(response.statusCode, 200, 'a mistake inside spec.source is a condition, not a refused request');
  t.match(response.json(), { status: { conditions: [{ status: 'False', reason: 'InvalidSpec', message: 'spec.source.vsphere.templateNam is not a known field' }] } });
});

t.test('an ISO, in any spelling, is an installer image (kind iso), not a disk to clone', async (t) => {
  const sha = 'a'.repeat(64);
  const cases: [string, Json, ProviderType, ImageSpec][] = [
    ['seed source naming a PVE ISO volume', { source: 'local:iso/debian-12.iso' }, 'proxmox', { kind: 'iso', ref: 'local:iso/debian-12.iso' }],
    ['seed url of an ISO', { url: { url: 'https://images.example.com/debian-12.iso?mirror=1', checksum: `sha256:${sha}` } }, 'proxmox', { kind: 'iso', url: 'https://images.example.com/debian-12.iso?mirror=1', checksum: `sha256:${sha}` }],
    ['http branch', { source: { http: { url: 'https://images.example.com/DEBIAN.ISO' } } }, 'vsphere', { kind: 'iso', url: 'https://images.example.com/DEBIAN.ISO' }],
    ['libvirt path', { source: { libvirt: { path: '/var/lib/libvirt/images/debian.iso' } } }, 'libvirt', { kind: 'iso', ref: '/var/lib/libvirt/images/debian.iso' }],
    ['libvirt format iso on a URL without the suffix', { source: { libvirt: { url: 'https://images.example.com/netinst', format: 'iso' } } }, 'libvirt', { kind: 'iso', url: 'https://images.example.com/netinst' }],
  ];
  for (const [what, spec, type, expected] of cases) {
    const normalized = normalizeVMImage(spec as VMImageSpec, type);
    t.same(normalized.ok ? normalized.value.image : normalized, expected, what);
    const uses = fieldUses('VMImage', image(spec), normalized.ok ? normalized.value.branch : undefined);
    t.ok(uses.some((use) => use.capability === 'isoInstall'), `${what}: needs isoInstall`);
    t.notOk(uses.some((use) => use.capability === 'imageImport'), `${what}: not an image import`);
  }
  // A vSphere ovaURL alone is an image to import (the provider makes it a template), not an ISO.
  const ova = { source: { vsphere: { ovaURL: 'https://x.example.com/a.ova', checksum: sha } } };
  t.same(normalizeVMImage(ova as VMImageSpec, 'vsphere'), {
    ok: true,
    value: { image: { kind: 'url', url: 'https://x.example.com/a.ova', checksum: `sha256:${sha}`, fullClone: true }, branch: 'vsphere' },
  });
  t.same(fieldUses('VMImage', image(ova), 'vsphere').map((use) => use.capability), ['imageImport']);
  // A disk image is still a disk image, and a name merely containing "iso" is not an ISO.
  t.same(normalizeVMImage({ url: { url: 'https://images.example.com/isolinux.qcow2' } } as VMImageSpec, 'libvirt'), {
    ok: true,
    value: { image: { kind: 'url', url: 'https://images.example.com/isolinux.qcow2', fullClone: true } },
  });
  t.same(normalizeVMImage({ source: 'iso-builder-template' } as VMImageSpec, 'proxmox'), {
    ok: true,
    value: { image: { kind: 'template', ref: 'iso-builder-template', fullClone: true } },
  });
});
