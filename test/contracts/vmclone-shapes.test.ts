// VMClone in both shapes: upstream VirtRigaud's v1beta1 (source/target/options/customization) and
// the seeds' (sourceVMRef/linkedClone/target.powerState). Each upstream-shaped fixture is accepted by
// the generated CRD as kubectl sends it (YAML 1.1) and normalizes like its seed-shaped twin; the
// defaults follow the shape; the spellings cannot be mixed; what is read once cannot change.
import { readdirSync, readFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import { parse } from 'yaml';
import { VMCloneObject, type VMCloneSpec } from '../../src/contracts/crds/vmclone.js';
import { normalizeVMClone, keyProblem, type CanonicalClone } from '../../src/contracts/normalize/vmclone.js';
import { upstreamFixtures } from '../helpers/upstream-fixtures.js';

type Json = Record<string, unknown>;

const fixtures = upstreamFixtures('VMClone', 'vmclone', VMCloneObject);
const DIR = fixtures.dir;
const crd = fixtures.crd;
const manifest = fixtures.manifest;
const stored = (object: Json, t: Test): Json => fixtures.stored(object, t);

function normalized(object: Json): CanonicalClone {
  const result = normalizeVMClone(object['spec'] as VMCloneSpec, String((object['metadata'] as Json)['name']));
  if (!result.ok) throw new Error(result.problem);
  return result.value;
}

/** What the shapes may differ in: which one it is, and upstream's 30m timeout (the seeds have none). */
const meaning = ({ shape: _shape, timeoutMs: _timeout, ...rest }: CanonicalClone) => rest;

const files = readdirSync(DIR).filter((name) => name.endsWith('.upstream.yaml'));
t.ok(files.length >= 4, 'the upstream-shaped fixtures are here');
for (const file of files) {
  t.test(`vmclone/${file} is accepted and normalizes${readdirSync(DIR).includes(file.replace('.upstream', '.seed')) ? ' like its seed-shaped twin' : ''}`, async (t) => {
    const upstream = normalized(stored(manifest(file), t));
    t.equal(upstream.shape, 'upstream');
    const twin = file.replace('.upstream.yaml', '.seed.yaml');
    if (!readdirSync(DIR).includes(twin)) return;
    const seed = normalized(stored(manifest(twin), t));
    t.equal(seed.shape, 'seed');
    t.same(meaning(upstream), meaning(seed), 'both shapes mean the same');
  });
}

t.test('the canonical clone of the upstream-shaped test copy', async (t) => {
  t.same(normalized(stored(manifest('test-copy.upstream.yaml'), t)), {
    shape: 'upstream',
    sourceVM: 'web',
    targetName: 'web-test',
    linked: false,
    linkedWritten: true,
    power: { state: 'Off', enforced: false },
    classRef: 'large',
    providerRef: { name: 'sim' },
    labels: { app: 'web', tier: 'test' },
    annotations: { 'example.com/owner': 'qa-team' },
    disks: [{ name: 'root', sizeGiB: 60 }],
    timeoutMs: 45 * 60_000,
  });
});

const seedSpec = (spec: Json = {}): VMCloneSpec => ({ sourceVMRef: { name: 'web' }, ...spec }) as VMCloneSpec;
const upstreamSpec = (spec: Json = {}): VMCloneSpec => ({ source: { vmRef: { name: 'web' } }, target: { name: 'copy' }, ...spec }) as VMCloneSpec;

interface Row {
  name: string;
  spec: VMCloneSpec;
  expect: Partial<CanonicalClone> & Json;
  absent?: (keyof CanonicalClone)[];
}

const rows: Row[] = [
  {
    name: 'the seeds default to a linked clone, powered on once, named after the VMClone, with no timeout',
    spec: seedSpec(),
    expect: { shape: 'seed', sourceVM: 'web', targetName: 'clone', linked: true, linkedWritten: false, power: { state: 'On', enforced: false } },
    absent: ['timeoutMs', 'classRef', 'providerRef'],
  },
  {
    name: 'upstream defaults to a full clone, left off, waited for 30m',
    spec: upstreamSpec(),
    expect: { shape: 'upstream', sourceVM: 'web', targetName: 'copy', linked: false, linkedWritten: false, power: { state: 'Off', enforced: false }, timeoutMs: 1_800_000 },
  },
  {
    name: 'upstream without a target name takes the VMClone\'s',
    spec: { source: { vmRef: { name: 'web' } } } as VMCloneSpec,
    expect: { targetName: 'clone' },
  },
  {
    name: 'the seeds\' target.powerState is kept from then on',
    spec: seedSpec({ target: { powerState: 'Off' } }),
    expect: { power: { state: 'Off', enforced: true } },
  },
  {
    name: 'upstream\'s powerOn is the first power state only',
    spec: upstreamSpec({ options: { powerOn: true } }),
    expect: { power: { state: 'On', enforced: false } },
  },
  {
    name: 'options.type LinkedClone with sourceVMRef: the written value wins over the seed default',
    spec: seedSpec({ options: { type: 'LinkedClone' } }),
    expect: { linked: true, linkedWritten: true, shape: 'seed' },
  },
  {
    name: 'options.type FullClone with sourceVMRef is a full clone',
    spec: seedSpec({ options: { type: 'FullClone' } }),
    expect: { linked: false, linkedWritten: true },
  },
  {
    name: 'linkedClone false with source is a full clone',
    spec: upstreamSpec({ linkedClone: false }),
    expect: { linked: false, linkedWritten: true },
  },
  {
    name: 'InstantClone is not a linked clone (and is Unsupported)',
    spec: upstreamSpec({ options: { type: 'InstantClone' } }),
    expect: { linked: false, linkedWritten: true },
  },
  {
    name: 'a seed VMClone may say options.timeout',
    spec: seedSpec({ options: { timeout: '1h30m' } }),
    expect: { timeoutMs: 5_400_000 },
  },
  {
    name: 'a snapshot source names no VirtualMachine',
    spec: { source: { snapshotRef: { name: 'before-upgrade' } }, target: { name: 'copy' } } as VMCloneSpec,
    expect: { shape: 'upstream' },
    absent: ['sourceVM'],
  },
];

for (const row of rows) {
  t.test(`normalize: ${row.name}`, async (t) => {
    const result = normalizeVMClone(row.spec, 'clone');
    if (!result.ok) return t.fail(result.problem);
    t.match(result.value, row.expect);
    for (const key of row.absent ?? []) t.notOk(key in result.value, `no ${key}`);
  });
}

const problems: { name: string; spec: VMCloneSpec; problem: RegExp }[] = [
  { name: 'neither source', spec: { target: { name: 'x' } } as VMCloneSpec, problem: /^set exactly one of spec.sourceVMRef and spec.source$/ },
  { name: 'both sources', spec: upstreamSpec({ sourceVMRef: { name: 'web' } }), problem: /exactly one of spec.sourceVMRef and spec.source/ },
  { name: 'both clone types', spec: seedSpec({ linkedClone: true, options: { type: 'FullClone' } }), problem: /spec.linkedClone or spec.options.type, not both/ },
  { name: 'both power settings', spec: seedSpec({ target: { powerState: 'On' }, options: { powerOn: false } }), problem: /spec.target.powerState or spec.options.powerOn/ },
  { name: 'a label key with a space', spec: upstreamSpec({ target: { name: 'c', labels: { 'bad key': 'x' } } }), problem: /^spec.target.labels: key "bad key" is not a label key/ },
  { name: 'a label value with a slash', spec: upstreamSpec({ target: { name: 'c', labels: { app: 'a/b' } } }), problem: /^spec.target.labels: the value of app is not a label value/ },
  { name: 'Metacontroller\'s own label', spec: upstreamSpec({ target: { name: 'c', labels: { 'controller-uid': 'x' } } }), problem: /controller-uid is set by Metacontroller/ },
  { name: 'an annotation key with a bad prefix', spec: upstreamSpec({ target: { name: 'c', annotations: { 'Example.COM/x': 'y' } } }), problem: /^spec.target.annotations: key "Example.COM\/x" is not an annotation key: its prefix/ },
  {
    name: 'more than 256 KiB of annotations',
    spec: upstreamSpec({ target: { name: 'c', annotations: { a: 'x'.repeat(200_000), b: 'y'.repeat(100_000) } } }),
    problem: /^spec.target.annotations: 300002 bytes/,
  },
  {
    name: 'a disk listed twice',
    spec: upstreamSpec({ target: { name: 'c', disks: [{ name: 'root', sizeGiB: 50 }, { name: 'root', sizeGiB: 60 }] } }),
    problem: /^spec.target.disks\[1\]: disk root is listed twice$/,
  },
];

for (const row of problems) {
  t.test(`normalize refuses ${row.name}, naming the field`, async (t) => {
    const result = normalizeVMClone(row.spec, 'clone');
    t.notOk(result.ok);
    if (!result.ok) t.match(result.problem, row.problem);
  });
}

t.test('label and annotation keys follow Kubernetes\' qualified names', async (t) => {
  for (const good of ['app', 'app.kubernetes.io/name', 'example.com/a_b.c-d', 'A1']) t.equal(keyProblem(good), undefined, good);
  for (const bad of ['', '/x', 'a/', '-a', 'a-', 'x'.repeat(64), 'UPPER.com/x', `${'a'.repeat(254)}/x`, 'a b']) t.ok(keyProblem(bad), bad);
});

const base = (spec: Json): Json => ({ apiVersion: 'infra.virtrigaud.io/v1beta1', kind: 'VMClone', metadata: { name: 'copy', namespace: 'default' }, spec });
const upstream = base({ source: { vmRef: { name: 'web' } }, target: { name: 'copy', labels: { app: 'web' } }, options: { type: 'FullClone', powerOn: true } });
const seed = base({ sourceVMRef: { name: 'web' }, linkedClone: true, target: { name: 'copy', powerState: 'On' } });
const withSpec = (object: Json, change: (spec: Json) => void): Json => {
  const copy = structuredClone(object);
  change(copy['spec'] as Json);
  return copy;
};
const issues = (object: Json, old?: Json) => crd.validate(object, old).map((issue) => `${issue.path}: ${issue.message}`);

const refusals: { name: string; object: Json; old?: Json; issue: RegExp }[] = [
  { name: 'both sourceVMRef and source', object: withSpec(upstream, (s) => (s['sourceVMRef'] = { name: 'web' })), issue: /^spec: set exactly one of sourceVMRef and source$/ },
  { name: 'neither sourceVMRef nor source', object: withSpec(upstream, (s) => delete s['source']), issue: /^spec: set exactly one of sourceVMRef and source$/ },
  {
    name: 'a source naming a VM and an image',
    object: withSpec(upstream, (s) => (s['source'] = { vmRef: { name: 'web' }, imageRef: { name: 'ubuntu' } })),
    issue: /^spec.source: set exactly one of vmRef, snapshotRef, templateRef and imageRef$/,
  },
  { name: 'an empty source', object: withSpec(upstream, (s) => (s['source'] = {})), issue: /^spec.source: set exactly one of/ },
  { name: 'linkedClone and options.type', object: withSpec(upstream, (s) => (s['linkedClone'] = true)), issue: /^spec: set linkedClone or options.type, not both$/ },
  {
    name: 'target.powerState and options.powerOn',
    object: withSpec(upstream, (s) => ((s['target'] as Json)['powerState'] = 'On')),
    issue: /^spec: set target.powerState or options.powerOn, not both$/,
  },
  { name: 'an unknown clone type', object: withSpec(upstream, (s) => ((s['options'] as Json)['type'] = 'QuickClone')), issue: /^spec.options.type: Unsupported value/ },
  { name: 'an unknown option', object: withSpec(upstream, (s) => ((s['options'] as Json)['fast'] = true)), issue: /^spec.options.fast: unknown field/ },
  { name: 'an unknown field under source.vmRef', object: withSpec(upstream, (s) => ((s['source'] as Json)['vmRef'] = { name: 'web', kind: 'VM' })), issue: /^spec.source.vmRef.kind: unknown field/ },
  { name: 'upstream\'s v1alpha1 sourceRef', object: withSpec(upstream, (s) => (s['sourceRef'] = { name: 'web' })), issue: /^spec.sourceRef: unknown field/ },
  { name: 'a label value longer than 63', object: withSpec(upstream, (s) => ((s['target'] as Json)['labels'] = { app: 'x'.repeat(64) })), issue: /^spec.target.labels.app: .*at most 63 chars/ },
  { name: 'a disk without sizeGiB', object: withSpec(upstream, (s) => ((s['target'] as Json)['disks'] = [{ name: 'root' }])), issue: /^spec.target.disks\[0\].sizeGiB: Required value/ },
  { name: 'a customization IP that is not IPv4', object: withSpec(upstream, (s) => (s['customization'] = { networks: [{ name: 'lan', ipAddress: '10.0.0.256' }] })), issue: /^spec.customization.networks\[0\].ipAddress: Invalid value/ },
  { name: 'a timeout that is not a duration', object: withSpec(upstream, (s) => ((s['options'] as Json)['timeout'] = '30 minutes')), issue: /^spec.options.timeout: Invalid value/ },
  { name: 'a change of source', old: upstream, object: withSpec(upstream, (s) => (s['source'] = { vmRef: { name: 'db' } })), issue: /^spec: source is immutable$/ },
  { name: 'a change of options', old: upstream, object: withSpec(upstream, (s) => ((s['options'] as Json)['type'] = 'LinkedClone')), issue: /^spec: options is immutable$/ },
  { name: 'options added later', old: withSpec(upstream, (s) => delete s['options']), object: upstream, issue: /^spec: options is immutable$/ },
  { name: 'a change of target.name', old: upstream, object: withSpec(upstream, (s) => ((s['target'] as Json)['name'] = 'other')), issue: /^spec: target.name is immutable$/ },
  { name: 'a target.classRef added later', old: upstream, object: withSpec(upstream, (s) => ((s['target'] as Json)['classRef'] = { name: 'large' })), issue: /^spec: target.classRef is immutable$/ },
  { name: 'a customization added later', old: upstream, object: withSpec(upstream, (s) => (s['customization'] = { hostname: 'x' })), issue: /^spec: customization is immutable$/ },
  { name: 'a change of sourceVMRef', old: seed, object: withSpec(seed, (s) => (s['sourceVMRef'] = { name: 'db' })), issue: /^spec: sourceVMRef is immutable$/ },
  { name: 'a change of linkedClone', old: seed, object: withSpec(seed, (s) => (s['linkedClone'] = false)), issue: /^spec: linkedClone is immutable$/ },
];

for (const row of refusals) {
  t.test(`the CRD refuses ${row.name}`, async (t) => {
    const found = issues(row.object, row.old);
    t.ok(found.some((issue) => row.issue.test(issue)), `expected ${String(row.issue)}, got ${JSON.stringify(found)}`);
  });
}

t.test('labels, annotations, metadata and the seeds\' powerState may change', async (t) => {
  const relabelled = withSpec(upstream, (s) => {
    (s['target'] as Json)['labels'] = { app: 'web', tier: 'test' };
    (s['target'] as Json)['annotations'] = { note: 'x' };
    s['metadata'] = { purpose: 'testing' };
  });
  t.same(issues(relabelled, upstream), []);
  t.same(issues(withSpec(seed, (s) => ((s['target'] as Json)['powerState'] = 'Off')), seed), []);
});

t.test('the seeds\' VMClone and its Full Clones fragment are valid, and no default is stored for either spelling', async (t) => {
  const seedFile = parse(readFileSync(new URL('../fixtures/seeds/001-vmclone-web-clone.yaml', import.meta.url), 'utf8')) as Json;
  t.same(issues(seedFile), []);
  const bare = base({ sourceVMRef: { name: 'web' } });
  t.same((crd.prune(bare) as Json)['spec'], { sourceVMRef: { name: 'web' } }, 'linkedClone is not stored: upstream-shaped objects would then say both');
  const bareUpstream = base({ source: { vmRef: { name: 'web' } }, target: { name: 'copy' } });
  t.same((crd.prune(bareUpstream) as Json)['spec'], bareUpstream['spec']);
});
