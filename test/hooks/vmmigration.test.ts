// The VMMigration's reach into other controllers: which PVCs a Provider's runtime mounts (and
// when it stops), the Deployment that mounts them, which VM a migration holds off, and what the
// migration asks Metacontroller for.
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import t from 'tap';
import { DEFAULT_MIGRATION_DIR } from '../../src/contracts/driver.js';
import { runtimeChildren } from '../../src/hooks/provider-runtime.js';
import { customizeVMMigration, migrationHolding, migrationVolumes } from '../../src/hooks/vmmigration.js';
import type { ObjectsByType } from '../../src/contracts/metacontroller.js';
import type { ProviderObject } from '../../src/contracts/crds/provider.js';
import type { VMMigrationObject } from '../../src/contracts/crds/vmmigration.js';

type Json = Record<string, any>;
const API = 'infra.virtrigaud.io/v1beta1';
const RUNTIME = { defaultImage: 'ghcr.io/example/virtrigaud:0.1.0', tokenSecret: 'master-secret-for-tests' };

const provider = (name: string, namespace = 'default'): ProviderObject =>
  ({ apiVersion: API, kind: 'Provider', metadata: { name, namespace, uid: `uid-${name}` }, spec: { type: 'libvirt', endpoint: 'qemu+ssh://root@kvm/system' } }) as ProviderObject;

function migration(name: string, target: string, status: Json = {}, spec: Json = {}): Json {
  return {
    apiVersion: API,
    kind: 'VMMigration',
    metadata: { name, namespace: 'default', uid: `uid-${name}` },
    spec: { source: { vmRef: { name: 'web' } }, target: { vmRef: { name: `${name}-vm` }, providerRef: { name: target } }, ...spec },
    status,
  };
}

function related(...migrations: Json[]): ObjectsByType {
  return { [`VMMigration.${API}`]: Object.fromEntries(migrations.map((object) => [`default/${object['metadata']['name']}`, object])) } as unknown as ObjectsByType;
}

t.test('a runtime mounts the PVCs of the migrations from or to its Provider that still need their files', async (t) => {
  const objects = related(
    migration('to-kvm', 'kvm', { phase: 'Exporting', storagePVCName: 'to-kvm-migration', source: { provider: 'default/vsphere', id: 'vm-1', uid: 'u' } }),
    migration('from-kvm', 'pve', { phase: 'Importing', storagePVCName: 'shared', source: { provider: 'default/kvm', id: 'd-1', uid: 'u' } }),
    migration('done', 'kvm', { phase: 'Ready', storagePVCName: 'done-migration', cleanedUp: true }),
    migration('done-dirty', 'kvm', { phase: 'Ready', storagePVCName: 'kept-migration' }),
    migration('failed', 'kvm', { phase: 'Failed', storagePVCName: 'failed-migration' }),
    migration('elsewhere', 'pve', { phase: 'Exporting', storagePVCName: 'not-ours', source: { provider: 'default/vsphere', id: 'x', uid: 'u' } }),
    migration('undecided', 'kvm', {}),
  );
  t.same(migrationVolumes(provider('kvm'), objects), ['failed-migration', 'kept-migration', 'shared', 'to-kvm-migration']);
  t.same(migrationVolumes(provider('kvm', 'other'), objects), [], 'a runtime mounts only PVCs of its own namespace');
  t.same(migrationVolumes(provider('kvm'), undefined), []);
});

t.test('the runtime Deployment mounts each PVC at MIGRATION_DIR/<name> and lists them, and nothing when there is none', async (t) => {
  const deployment = (volumes: string[]) => {
    const found = runtimeChildren(provider('kvm'), RUNTIME, undefined, volumes).find((child) => child.kind === 'Deployment') as Json;
    new Deployment(found as never).validate();
    return found['spec']['template']['spec'];
  };
  const plain = deployment([]);
  const variable = (spec: Json, name: string) => (spec['containers'][0]['env'] as Json[]).find((entry) => entry['name'] === name)?.['value'];
  t.equal(variable(plain, 'MIGRATION_VOLUMES'), '', 'listed, empty: the runtime refuses every volume as not mounted');
  t.equal(variable(plain, 'MIGRATION_DIR'), DEFAULT_MIGRATION_DIR);
  t.notOk(JSON.stringify(plain['volumes']).includes('persistentVolumeClaim'));
  const mounted = deployment(['shared', 'to-kvm-migration']);
  const claims = (mounted['volumes'] as Json[]).filter((volume) => volume['persistentVolumeClaim']);
  t.same(claims.map((volume) => volume['persistentVolumeClaim']['claimName']), ['shared', 'to-kvm-migration']);
  const mounts = (mounted['containers'][0]['volumeMounts'] as Json[]).filter((mount) => String(mount['mountPath']).startsWith(DEFAULT_MIGRATION_DIR));
  t.same(mounts.map((mount) => mount['mountPath']), [`${DEFAULT_MIGRATION_DIR}/shared`, `${DEFAULT_MIGRATION_DIR}/to-kvm-migration`]);
  t.ok(mounts.every((mount) => /^migration-[0-9a-f]{16}$/.test(String(mount['name']))), 'volume names fit a DNS label whatever the PVC name');
  t.equal(variable(mounted, 'MIGRATION_VOLUMES'), 'shared,to-kvm-migration');
});

t.test('a migration with powerOffBeforeMigration holds its source off from StoppingSource on, not before and not once Failed', async (t) => {
  const vm = { metadata: { name: 'web', namespace: 'default' } };
  const holding = (phase: string | undefined, powerOff = true) =>
    migrationHolding(vm, related(migration('m', 'kvm', phase === undefined ? {} : { phase }, { source: { vmRef: { name: 'web' }, powerOffBeforeMigration: powerOff } })));
  t.equal(holding(undefined), undefined);
  t.equal(holding('Validating'), undefined);
  for (const phase of ['StoppingSource', 'Snapshotting', 'Exporting', 'Importing', 'Creating', 'Validating-Target', 'Ready']) t.equal(holding(phase), 'm', phase);
  t.equal(holding('Failed'), undefined);
  t.equal(holding('Exporting', false), undefined, 'without the flag the migration only waits');
  t.equal(migrationHolding({ metadata: { name: 'db', namespace: 'default' } }, related(migration('m', 'kvm', { phase: 'Exporting' }, { source: { vmRef: { name: 'web' }, powerOffBeforeMigration: true } }))), undefined);
});

t.test('customize asks for the source and target VMs, every Provider, and an existing PVC', async (t) => {
  const named = migration('m', 'kvm', {}, { storage: { type: 'pvc', pvc: { name: 'scratch' } } }) as unknown as VMMigrationObject;
  t.same(customizeVMMigration(named).relatedResources, [
    { apiVersion: API, resource: 'virtualmachines', namespace: 'default', names: ['m-vm', 'web'] },
    { apiVersion: API, resource: 'providers', labelSelector: {} },
    { apiVersion: 'v1', resource: 'persistentvolumeclaims', namespace: 'default', names: ['scratch'] },
  ]);
});
