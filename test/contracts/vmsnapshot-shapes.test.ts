// VMSnapshot in both shapes: upstream VirtRigaud's v1beta1 (snapshotConfig, retentionPolicy,
// schedule, metadata; and v1alpha1's nameHint and memory, still in its examples) and the seeds'
// (description, includeMemory, quiesce). Each upstream-shaped fixture is accepted by the generated
// CRD as kubectl sends it (YAML 1.1) and normalizes like its seed-shaped twin; the quiesce default
// follows the shape; one thing cannot be said twice; the spec is immutable but for metadata.
import { readdirSync, readFileSync } from 'node:fs';
import t, { type Test } from 'tap';
import { parse } from 'yaml';
import { VMSnapshotObject, type VMSnapshotSpec } from '../../src/contracts/crds/vmsnapshot.js';
import {
  normalizeVMSnapshot,
  parseRetentionDuration,
  snapshotExpiry,
  snapshotShape,
  type CanonicalSnapshot,
} from '../../src/contracts/normalize/vmsnapshot.js';
import { upstreamFixtures } from '../helpers/upstream-fixtures.js';

type Json = Record<string, unknown>;

const fixtures = upstreamFixtures('VMSnapshot', 'vmsnapshot', VMSnapshotObject);
const DIR = fixtures.dir;
const crd = fixtures.crd;
const manifest = fixtures.manifest;
const stored = (object: Json, t: Test): Json => fixtures.stored(object, t);

function normalized(object: Json): CanonicalSnapshot {
  const result = normalizeVMSnapshot(object['spec'] as VMSnapshotSpec);
  if (!result.ok) throw new Error(result.problem);
  return result.value;
}

const meaning = ({ shape: _shape, ...rest }: CanonicalSnapshot) => rest;

const files = readdirSync(DIR).filter((name) => name.endsWith('.upstream.yaml'));
t.ok(files.length >= 5, 'the upstream-shaped fixtures are here');
for (const file of files) {
  const twin = file.replace('.upstream.yaml', '.seed.yaml');
  const paired = readdirSync(DIR).includes(twin);
  t.test(`vmsnapshot/${file} is accepted and normalizes${paired ? ' like its seed-shaped twin' : ''}`, async (t) => {
    const upstream = normalized(stored(manifest(file), t));
    if (!paired) return;
    t.equal(upstream.shape, 'upstream');
    const seed = normalized(stored(manifest(twin), t));
    t.equal(seed.shape, 'seed');
    t.same(meaning(upstream), meaning(seed), 'both shapes mean the same');
  });
}

t.test('the canonical snapshot of the upstream-shaped pre-release snapshot', async (t) => {
  t.same(normalized(stored(manifest('retained.upstream.yaml'), t)), {
    shape: 'upstream',
    vm: 'web',
    description: 'pre-release: Before release 2.4',
    includeMemory: false,
    quiesce: true,
    retention: { maxAgeMs: 168 * 3_600_000, graceMs: 24 * 3_600_000, pinned: false, deleteOnVMDelete: true },
  });
});

t.test('the canonical snapshot of the v1alpha1-shaped maintenance snapshot', async (t) => {
  t.same(normalized(stored(manifest('v1alpha1.upstream.yaml'), t)), {
    // description is the seeds' spelling too: the object counts as the seeds', whose quiesce default is false.
    shape: 'seed',
    vm: 'web',
    description: 'maintenance-backup: Backup before the maintenance window',
    includeMemory: true,
    quiesce: false,
    retention: { maxAgeMs: 30 * 86_400_000, graceMs: 0, pinned: false, deleteOnVMDelete: false },
  });
});

const spec = (rest: Json = {}): VMSnapshotSpec => ({ vmRef: { name: 'web' }, ...rest }) as VMSnapshotSpec;

const rows: { name: string; spec: VMSnapshotSpec; expect: Json; absent?: string[] }[] = [
  {
    name: 'vmRef alone is the seeds\': no memory, no quiesce, kept for ever',
    spec: spec(),
    expect: { shape: 'seed', includeMemory: false, quiesce: false, retention: { graceMs: 0, pinned: false, deleteOnVMDelete: false } },
    absent: ['description'],
  },
  { name: 'a seed field makes it the seeds\': quiesce defaults to false', spec: spec({ description: 'x' }), expect: { shape: 'seed', quiesce: false, description: 'x' } },
  { name: 'an empty snapshotConfig asks for upstream\'s defaults: quiesce true', spec: spec({ snapshotConfig: {} }), expect: { shape: 'upstream', quiesce: true, includeMemory: false } },
  { name: 'retentionPolicy alone is upstream\'s: quiesce true, deleteOnVMDelete true', spec: spec({ retentionPolicy: {} }), expect: { shape: 'upstream', quiesce: true, retention: { deleteOnVMDelete: true } } },
  { name: 'metadata alone is upstream\'s', spec: spec({ metadata: { purpose: 'backup' } }), expect: { shape: 'upstream', quiesce: true } },
  { name: 'upstream quiesce false is kept', spec: spec({ snapshotConfig: { quiesce: false } }), expect: { quiesce: false } },
  { name: 'the seeds\' quiesce true is kept', spec: spec({ quiesce: true }), expect: { quiesce: true } },
  { name: 'type Crash does not quiesce', spec: spec({ snapshotConfig: { type: 'Crash' } }), expect: { quiesce: false } },
  { name: 'consistencyLevel CrashConsistent does not quiesce', spec: spec({ snapshotConfig: { consistencyLevel: 'CrashConsistent' } }), expect: { quiesce: false } },
  {
    name: 'consistencyLevel FilesystemConsistent quiesces, whatever the shape',
    spec: spec({ description: 'x', snapshotConfig: { consistencyLevel: 'FilesystemConsistent' } }),
    expect: { shape: 'seed', quiesce: true },
  },
  { name: 'type Standard changes nothing', spec: spec({ snapshotConfig: { type: 'Standard', quiesce: false } }), expect: { quiesce: false } },
  { name: 'memory (v1alpha1) is includeMemory', spec: spec({ memory: true }), expect: { includeMemory: true, shape: 'upstream' } },
  { name: 'snapshotConfig.includeMemory', spec: spec({ snapshotConfig: { includeMemory: true } }), expect: { includeMemory: true } },
  { name: 'a name alone is the description', spec: spec({ snapshotConfig: { name: 'pre-upgrade' } }), expect: { description: 'pre-upgrade' } },
  { name: 'nameHint heads the seeds\' description', spec: spec({ nameHint: 'nightly', description: 'every night' }), expect: { description: 'nightly: every night' } },
  { name: 'maxAge in days and hours', spec: spec({ retentionPolicy: { maxAge: '1d12h', gracePeriod: '30m' } }), expect: { retention: { maxAgeMs: 36 * 3_600_000, graceMs: 1_800_000 } } },
  { name: 'deleteOnVMDelete false is kept', spec: spec({ retentionPolicy: { deleteOnVMDelete: false } }), expect: { retention: { deleteOnVMDelete: false } } },
  { name: 'pinned is preserved by default', spec: spec({ metadata: { pinned: true }, retentionPolicy: { maxAge: '1h' } }), expect: { retention: { pinned: true } } },
  { name: 'pinned without preservePinned expires', spec: spec({ metadata: { pinned: true }, retentionPolicy: { maxAge: '1h', preservePinned: false } }), expect: { retention: { pinned: false } } },
];

for (const row of rows) {
  t.test(`normalize: ${row.name}`, async (t) => {
    const result = normalizeVMSnapshot(row.spec);
    if (!result.ok) return t.fail(result.problem);
    t.match(result.value, row.expect);
    for (const key of row.absent ?? []) t.notOk(key in result.value, `no ${key}`);
  });
}

const problems: { name: string; spec: VMSnapshotSpec; problem: RegExp }[] = [
  { name: 'quiesce true with type Crash', spec: spec({ snapshotConfig: { type: 'Crash', quiesce: true } }), problem: /^spec.snapshotConfig.quiesce: true contradicts a crash-consistent snapshot \(spec.snapshotConfig.type Crash\)$/ },
  { name: 'the seeds\' quiesce true with CrashConsistent', spec: spec({ quiesce: true, snapshotConfig: { consistencyLevel: 'CrashConsistent' } }), problem: /^spec.quiesce: true contradicts a crash-consistent snapshot \(spec.snapshotConfig.consistencyLevel CrashConsistent\)$/ },
  { name: 'quiesce false with FilesystemConsistent', spec: spec({ snapshotConfig: { quiesce: false, consistencyLevel: 'FilesystemConsistent' } }), problem: /^spec.snapshotConfig.quiesce: false contradicts spec.snapshotConfig.consistencyLevel FilesystemConsistent$/ },
  { name: 'type Crash with FilesystemConsistent', spec: spec({ snapshotConfig: { type: 'Crash', consistencyLevel: 'FilesystemConsistent' } }), problem: /^spec.snapshotConfig.type Crash contradicts spec.snapshotConfig.consistencyLevel FilesystemConsistent$/ },
  { name: 'type Application with CrashConsistent', spec: spec({ snapshotConfig: { type: 'Application', consistencyLevel: 'CrashConsistent' } }), problem: /^spec.snapshotConfig.type Application contradicts/ },
  { name: 'a maxAge that is no duration', spec: spec({ retentionPolicy: { maxAge: '7 days' } }), problem: /^spec.retentionPolicy.maxAge 7 days is not a duration/ },
  { name: 'a gracePeriod that is no duration', spec: spec({ retentionPolicy: { gracePeriod: 'soon' } }), problem: /^spec.retentionPolicy.gracePeriod soon is not a duration/ },
];

for (const row of problems) {
  t.test(`normalize refuses ${row.name}, naming the field`, async (t) => {
    const result = normalizeVMSnapshot(row.spec);
    t.notOk(result.ok);
    if (!result.ok) t.match(result.problem, row.problem);
  });
}

t.test('retention durations: Go durations and days', async (t) => {
  t.equal(parseRetentionDuration('30d'), 30 * 86_400_000);
  t.equal(parseRetentionDuration('1d2h30m'), 26.5 * 3_600_000);
  t.equal(parseRetentionDuration('168h'), 168 * 3_600_000);
  t.equal(parseRetentionDuration('0'), 0);
  t.equal(parseRetentionDuration('1.5d'), 36 * 3_600_000);
  for (const bad of ['', 'd', '7 d', '1w', 'x1d']) t.equal(parseRetentionDuration(bad), undefined, bad);
});

t.test('a snapshot expires maxAge after it was taken and is deleted gracePeriod later; pinned ones never', async (t) => {
  const at = Date.parse('2026-01-01T00:00:00Z');
  const of = (rest: Json) => {
    const result = normalizeVMSnapshot(spec(rest));
    if (!result.ok) throw new Error(result.problem);
    return result.value;
  };
  t.same(snapshotExpiry(of({ retentionPolicy: { maxAge: '2h', gracePeriod: '1h' } }), at), { expiresAt: at + 7_200_000, deleteAt: at + 10_800_000 });
  t.equal(snapshotExpiry(of({ retentionPolicy: { deleteOnVMDelete: true } }), at), undefined, 'no maxAge');
  t.equal(snapshotExpiry(of({ retentionPolicy: { maxAge: '2h' }, metadata: { pinned: true } }), at), undefined, 'pinned');
  t.equal(snapshotExpiry(of({ retentionPolicy: { maxAge: '2h' } }), Number.NaN), undefined, 'no creation time');
});

t.test('which shape an object is in', async (t) => {
  t.equal(snapshotShape(spec()), 'seed');
  t.equal(snapshotShape(spec({ includeMemory: true, retentionPolicy: {} })), 'seed', 'a seed field wins');
  t.equal(snapshotShape(spec({ schedule: { enabled: false } })), 'upstream');
  t.equal(snapshotShape(spec({ nameHint: 'x' })), 'upstream');
});

const base = (rest: Json): Json => ({ apiVersion: 'infra.virtrigaud.io/v1beta1', kind: 'VMSnapshot', metadata: { name: 'snap', namespace: 'default' }, spec: { vmRef: { name: 'web' }, ...rest } });
const upstream = base({ snapshotConfig: { description: 'x', includeMemory: true }, retentionPolicy: { maxAge: '7d' }, metadata: { purpose: 'backup', pinned: false } });
const issues = (object: Json, old?: Json) => crd.validate(object, old).map((issue) => `${issue.path}: ${issue.message}`);

const refusals: { name: string; object: Json; old?: Json; issue: RegExp }[] = [
  { name: 'description both ways', object: base({ description: 'a', snapshotConfig: { description: 'b' } }), issue: /^spec: set description or snapshotConfig.description, not both$/ },
  { name: 'quiesce both ways', object: base({ quiesce: true, snapshotConfig: { quiesce: true } }), issue: /^spec: set quiesce or snapshotConfig.quiesce, not both$/ },
  { name: 'includeMemory and snapshotConfig.includeMemory', object: base({ includeMemory: true, snapshotConfig: { includeMemory: true } }), issue: /^spec: set one of includeMemory, memory and snapshotConfig.includeMemory$/ },
  { name: 'includeMemory and memory', object: base({ includeMemory: true, memory: true }), issue: /^spec: set one of includeMemory, memory and snapshotConfig.includeMemory$/ },
  { name: 'nameHint and snapshotConfig.name', object: base({ nameHint: 'a', snapshotConfig: { name: 'b' } }), issue: /^spec: set nameHint or snapshotConfig.name, not both$/ },
  { name: 'an unknown field', object: base({ snapshotConfig: { level: 'x' } }), issue: /^spec.snapshotConfig.level: unknown field/ },
  { name: 'an unknown snapshot type', object: base({ snapshotConfig: { type: 'Quick' } }), issue: /^spec.snapshotConfig.type: Unsupported value/ },
  { name: 'a name with a space', object: base({ snapshotConfig: { name: 'a b' } }), issue: /^spec.snapshotConfig.name: Invalid value/ },
  { name: 'a maxAge that is no duration', object: base({ retentionPolicy: { maxAge: '30 days' } }), issue: /^spec.retentionPolicy.maxAge: Invalid value/ },
  { name: 'a maxCount of 0', object: base({ retentionPolicy: { maxCount: 0 } }), issue: /^spec.retentionPolicy.maxCount: Invalid value/ },
  { name: 'a cron expression upstream refuses', object: base({ schedule: { cronSpec: 'every night' } }), issue: /^spec.schedule.cronSpec: Invalid value/ },
  { name: 'a change of snapshotConfig', old: upstream, object: { ...upstream, spec: { ...(upstream['spec'] as Json), snapshotConfig: { description: 'y' } } }, issue: /^spec: a VMSnapshot spec is immutable/ },
  { name: 'a retentionPolicy added later', old: base({ description: 'x' }), object: base({ description: 'x', retentionPolicy: { maxAge: '1h' } }), issue: /^spec: a VMSnapshot spec is immutable/ },
  { name: 'a change of vmRef', old: upstream, object: { ...upstream, spec: { ...(upstream['spec'] as Json), vmRef: { name: 'db' } } }, issue: /^spec: a VMSnapshot spec is immutable/ },
  { name: 'a seed description removed', old: base({ description: 'x' }), object: base({}), issue: /^spec: a VMSnapshot spec is immutable/ },
];

for (const row of refusals) {
  t.test(`the CRD refuses ${row.name}`, async (t) => {
    const found = issues(row.object, row.old);
    t.ok(found.some((issue) => row.issue.test(issue)), `expected ${String(row.issue)}, got ${JSON.stringify(found)}`);
  });
}

t.test('metadata may change (pinning a snapshot keeps it), and no default is stored for a two-spelling field', async (t) => {
  const pinned = { ...upstream, spec: { ...(upstream['spec'] as Json), metadata: { purpose: 'backup', pinned: true, tags: { keep: 'yes' } } } };
  t.same(issues(pinned, upstream), []);
  t.same((crd.prune(base({})) as Json)['spec'], { vmRef: { name: 'web' } }, 'neither quiesce nor includeMemory is stored');
  t.same((crd.prune(base({ snapshotConfig: {} })) as Json)['spec'], { vmRef: { name: 'web' }, snapshotConfig: {} });
});

t.test('the seeds\' VMSnapshots are still accepted', async (t) => {
  for (const name of ['001-vmsnapshot-before-upgrade.yaml', '001-vmsnapshot-before-upgrade-plain.yaml']) {
    const object = parse(readFileSync(new URL(`../fixtures/seeds/${name}`, import.meta.url), 'utf8')) as Json;
    t.same(issues(object), [], name);
    t.ok(normalizeVMSnapshot(object['spec'] as VMSnapshotSpec).ok);
  }
});
