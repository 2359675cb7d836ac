// VMMigration in both shapes: the seeds' (`target.vmRef`) and upstream VirtRigaud's v1beta1
// (`target.name`, `options`, `metadata`). Each fixture is accepted by the generated CRD as kubectl
// sends it (YAML 1.1) and normalizes like its twin; upstream's fields are read, with its defaults.
import { readdirSync } from 'node:fs';
import t, { type Test } from 'tap';
import { VMMigrationObject } from '../../src/contracts/crds/vmmigration.js';
import { normalizeVMMigration, type CanonicalMigration } from '../../src/contracts/normalize/vmmigration.js';
import { fieldUses } from '../../src/contracts/support.js';
import { upstreamFixtures } from '../helpers/upstream-fixtures.js';

type Json = Record<string, unknown>;

const fixtures = upstreamFixtures('VMMigration', 'vmmigration', VMMigrationObject);
const stored = (object: Json, t: Test): Json => fixtures.stored(object, t);

function normalized(object: Json): CanonicalMigration {
  const result = normalizeVMMigration(object as unknown as VMMigrationObject);
  if (!result.ok) throw new Error(result.problem);
  return result.value;
}

const files = readdirSync(fixtures.dir).filter((name) => name.endsWith('.upstream.yaml'));
t.ok(files.length >= 2, 'the upstream-shaped fixtures are here');
for (const file of files) {
  const twin = file.replace('.upstream.yaml', '.seed.yaml');
  const hasTwin = fixtures.files.includes(twin);
  t.test(`vmmigration/${file} is accepted and normalizes${hasTwin ? ' like its seed-shaped twin' : ''}, using nothing no driver does`, async (t) => {
    const object = stored(fixtures.manifest(file), t);
    const upstream = normalized(object);
    t.same(fieldUses('VMMigration', { spec: object['spec'] }), []);
    if (hasTwin) t.same(upstream, normalized(stored(fixtures.manifest(twin), t)), 'both shapes mean the same');
  });
}

t.test('the defaults of a migration written with nothing but what it must say', async (t) => {
  t.same(normalized(stored(fixtures.manifest('to-kvm.seed.yaml'), t)), {
    sourceVM: 'app',
    targetName: 'app-kvm',
    targetProvider: { name: 'kvm' },
    powerOn: false,
    labels: {},
    annotations: {},
    moved: ['root'],
    createSnapshot: false,
    powerOff: false,
    pvc: { size: '80Gi', sizeBytes: 80 * 1024 ** 3, accessMode: 'ReadWriteMany', storageClassName: 'cephfs' },
    timeoutMs: 4 * 3600_000,
    retry: { max: 3, delayMs: 300_000, multiplier: 2 },
    cleanup: 'OnSuccess',
    checks: { diskSize: true, boot: false, connectivity: false },
  });
});

t.test('every upstream field is read', async (t) => {
  const migration = normalized(stored(fixtures.manifest('everything.upstream.yaml'), t));
  t.match(migration, {
    sourceProvider: { name: 'vcenter' },
    targetName: 'db-pve',
    classRef: 'large',
    networks: [{ name: 'lan', bridge: 'vmbr1' }],
    disks: [{ name: 'root', size: '120Gi' }],
    placementRef: 'spread',
    powerOn: true,
    labels: { app: 'db' },
    annotations: { 'migrated-by': 'platform' },
    createSnapshot: true,
    powerOff: true,
    pvc: { existing: 'scratch' },
    format: 'qcow2',
    timeoutMs: 6 * 3600_000,
    retry: { max: 4, delayMs: 90_000, multiplier: 3 },
    cleanup: 'Always',
    checks: { diskSize: true, boot: true, connectivity: true },
  });
});

t.test('what the hook refuses before anything moves', async (t) => {
  const base = fixtures.manifest('to-kvm.upstream.yaml');
  const spec = base['spec'] as Json;
  const problem = (change: (spec: Json) => void): string | undefined => {
    const copy = structuredClone(base);
    change(copy['spec'] as Json);
    const result = normalizeVMMigration(copy as unknown as VMMigrationObject);
    return result.ok ? undefined : result.problem;
  };
  t.match(problem((s) => ((s['target'] as Json)['name'] = 'app')), /cannot be the source/);
  t.match(problem((s) => ((s['target'] as Json)['namespace'] = 'elsewhere')), /made in the VMMigration's namespace/);
  t.match(problem((s) => (((s['storage'] as Json)['pvc'] as Json)['name'] = 'existing')), /exclude each other/);
  t.match(problem((s) => (s['options'] = { validationChecks: { checkBoot: true } })), /need spec\.target\.powerOn/);
  t.match(problem((s) => (s['options'] = { timeout: '30s' })), /at least 1m/);
  t.ok(spec, 'the base is unchanged');
});
