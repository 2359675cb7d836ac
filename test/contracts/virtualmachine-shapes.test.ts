// VirtualMachine and VMClass in both shapes: upstream VirtRigaud's v1beta1 and the seeds'. Each
// upstream-shaped fixture is accepted by the generated CRD as kubectl sends it (YAML 1.1), and
// normalizes to the same canonical spec as its seed-shaped twin; the spellings cannot be mixed.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Value } from '@sinclair/typebox/value';
import t, { type Test } from 'tap';
import { parse } from 'yaml';
import { VirtualMachineObject, type VirtualMachineSpec } from '../../src/contracts/crds/virtualmachine.js';
import { VMClassObject, type VMClassSpec } from '../../src/contracts/crds/vmclass.js';
import { normalizeVirtualMachine } from '../../src/contracts/normalize/virtualmachine.js';
import { normalizeVMClass } from '../../src/contracts/normalize/vmclass.js';
import { GiB, MiB } from '../../src/contracts/quantity.js';
import { fieldUses } from '../../src/contracts/support.js';
import { loadCrdValidators } from '../helpers/crd-validator.js';

type Json = Record<string, unknown>;

const FIXTURES = new URL('../fixtures/upstream-shaped/', import.meta.url);
const validators = loadCrdValidators(fileURLToPath(new URL('../../manifests/crds', import.meta.url)));

/** A manifest as kubectl reads it: YAML 1.1 (an unquoted On is true). */
function manifest(dir: string, name: string): Json {
  return parse(readFileSync(new URL(`${dir}/${name}`, FIXTURES), 'utf8'), { version: '1.1' }) as Json;
}

/** As the apiserver stores it: validated, pruned, defaulted. */
function stored(object: Json, t: Test): Json {
  const validator = validators.get(String(object['kind']));
  if (!validator) throw new Error(`no CRD for ${String(object['kind'])}`);
  t.same(validator.validate(object), [], 'the CRD accepts it as written');
  return validator.prune(object) as Json;
}

const normalizers = {
  virtualmachine: (object: Json, t: Test) => {
    t.ok(Value.Check(VirtualMachineObject, object), 'the TypeBox schema accepts it');
    return normalizeVirtualMachine(object['spec'] as VirtualMachineSpec);
  },
  vmclass: (object: Json, t: Test) => {
    t.ok(Value.Check(VMClassObject, object), 'the TypeBox schema accepts it');
    return normalizeVMClass(object['spec'] as VMClassSpec);
  },
};

for (const [dir, normalize] of Object.entries(normalizers)) {
  const files = readdirSync(new URL(`${dir}/`, FIXTURES)).filter((name) => name.endsWith('.upstream.yaml'));
  for (const file of files) {
    t.test(`${dir}/${file}`, async (t) => {
      const upstream = normalize(stored(manifest(dir, file), t), t);
      t.ok(upstream.ok, upstream.ok ? 'normalizes' : upstream.problem);
      const twin = file.replace('.upstream.yaml', '.seed.yaml');
      if (!readdirSync(new URL(`${dir}/`, FIXTURES)).includes(twin)) return;
      const seed = normalize(stored(manifest(dir, twin), t), t);
      t.ok(seed.ok, seed.ok ? 'its seed-shaped twin normalizes' : seed.problem);
      t.same(upstream, seed, 'both shapes mean the same');
    });
  }
}

t.test('the canonical VirtualMachine of the upstream-shaped web server', async (t) => {
  const result = normalizeVirtualMachine(stored(manifest('virtualmachine', 'web.upstream.yaml'), t)['spec'] as VirtualMachineSpec);
  if (!result.ok) return t.fail(result.problem);
  t.match(result.value, {
    powerState: 'On',
    networks: [{ name: 'lan', mac: '52:54:00:aa:bb:cc', staticIP: { address: '192.168.1.10/24', gateway: '192.168.1.1', dns: ['1.1.1.1', '9.9.9.9'] } }],
    disks: [
      { name: 'root', sizeBytes: 40 * GiB, provisioning: 'thin', expandPolicy: 'Online' },
      { name: 'data', sizeBytes: 100 * GiB, provisioning: 'thin', expandPolicy: 'Offline' },
    ],
    resources: { cpus: 4, memoryBytes: 8192 * MiB },
    shutdownTimeoutMs: 120_000,
    deletionPolicy: 'Delete',
  });
});

t.test('powerState: YAML 1.1 booleans are On and Off, strings are checked', async (t) => {
  const vm = validators.get('VirtualMachine');
  if (!vm) return t.fail('no VirtualMachine CRD');
  const base = manifest('virtualmachine', 'revert.upstream.yaml');
  t.equal((base['spec'] as Json)['powerState'], false, 'kubectl sends an unquoted Off as false');
  for (const [value, canonical] of [[true, 'On'], [false, 'Off'], ['On', 'On'], ['Off', 'Off'], ['OffGraceful', 'OffGraceful']] as const) {
    const object = { ...base, spec: { ...(base['spec'] as Json), powerState: value } };
    t.same(vm.validate(object), [], `${String(value)} is accepted`);
    const result = normalizeVirtualMachine(object.spec as VirtualMachineSpec);
    t.equal(result.ok && result.value.powerState, canonical, `${String(value)} means ${canonical}`);
  }
  for (const value of ['on', 'Running', 1, 'true']) {
    const object = { ...base, spec: { ...(base['spec'] as Json), powerState: value } };
    t.match(vm.validate(object), [{ path: 'spec.powerState' }], `${JSON.stringify(value)} is refused`);
  }
  const unset = { ...base, spec: { ...(base['spec'] as Json) } };
  delete (unset.spec as Json)['powerState'];
  t.equal((vm.prune(unset) as { spec: Json }).spec['powerState'], 'On', 'the default is On');
});

t.test('the CRD refuses both spellings of one thing', async (t) => {
  const vm = validators.get('VirtualMachine');
  const vmClass = validators.get('VMClass');
  if (!vm || !vmClass) return t.fail('no CRDs');
  const web = manifest('virtualmachine', 'web.seed.yaml');
  const spec = web['spec'] as Json;
  const nic = (spec['networks'] as Json[])[0] ?? {};
  const cases: [string, Json, RegExp][] = [
    ['mac and macAddress', { ...web, spec: { ...spec, networks: [{ ...nic, macAddress: '52:54:00:aa:bb:cc' }] } }, /mac or macAddress/],
    ['staticIP and ipAddress', { ...web, spec: { ...spec, networks: [{ ...nic, ipAddress: '192.168.1.10', prefix: 24 }] } }, /staticIP or ipAddress/],
    ['prefix without ipAddress', { ...web, spec: { ...spec, networks: [{ name: 'lan', prefix: 24 }] } }, /go with ipAddress/],
    ['size and sizeGiB', { ...web, spec: { ...spec, disks: [{ name: 'root', size: '40Gi', sizeGiB: 40 }] } }, /exactly one of size and sizeGiB/],
    ['neither size nor sizeGiB', { ...web, spec: { ...spec, disks: [{ name: 'root' }] } }, /exactly one of size and sizeGiB/],
    [
      'revertToRef and revertRequest',
      { ...web, spec: { ...spec, snapshot: { revertToRef: { name: 'a' } }, lifecycle: { revertRequest: { snapshotRef: { name: 'a' }, request: '1' } } } },
      /revertToRef or lifecycle.revertRequest/,
    ],
    ['imageRef and importedDisk', { ...web, spec: { ...spec, importedDisk: { diskID: 'd' } } }, /exactly one source/],
    ['cloudInit and ignition', { ...web, spec: { ...spec, userData: { cloudInit: { inline: 'x' }, ignition: { inline: '{}' } } } }, /cloudInit or ignition/],
    [
      'two lifecycle actions',
      { ...web, spec: { ...spec, lifecycle: { preStop: { exec: { command: ['a'] }, snapshot: { name: 'b' } } } } },
      /exactly one of exec, httpGet and snapshot/,
    ],
  ];
  for (const [name, object, message] of cases) {
    t.match(vm.validate(object).map((issue) => issue.message).join('; '), message, name);
  }
  const small = manifest('vmclass', 'small.seed.yaml');
  const classSpec = small['spec'] as Json;
  t.match(vmClass.validate({ ...small, spec: { ...classSpec, cpu: 2 } }).map((i) => i.message).join(), /exactly one of cpus and cpu/);
  t.match(vmClass.validate({ ...small, spec: { ...classSpec, firmware: 'UEFI' } }).map((i) => i.message).join(), /firmware or spec.bios/);
  t.match(
    vmClass.validate({ ...small, spec: { ...classSpec, diskDefaults: { type: 'thin' } } }).map((i) => i.message).join(),
    /storage.type or diskDefaults.type/,
  );
});

t.test('disks only grow, across spellings', async (t) => {
  const vm = validators.get('VirtualMachine');
  if (!vm) return t.fail('no VirtualMachine CRD');
  const web = manifest('virtualmachine', 'web.seed.yaml');
  const withRoot = (root: Json) => ({ ...web, spec: { ...(web['spec'] as Json), disks: [{ name: 'root', ...root }] } });
  const old = withRoot({ size: '40Gi' });
  t.same(vm.validate(withRoot({ sizeGiB: 41 }), old), [], '40Gi → 41 GiB');
  t.same(vm.validate(withRoot({ sizeGiB: 40 }), old), [], '40Gi → 40 GiB');
  t.match(vm.validate(withRoot({ sizeGiB: 39 }), old), [{ message: /only grow/ }], '40Gi → 39 GiB');
  t.match(vm.validate(withRoot({ size: '40G' }), withRoot({ sizeGiB: 40 })), [{ message: /only grow/ }], '40 GiB → 40G (smaller)');
});

t.test('what normalize refuses, naming the field', async (t) => {
  const spec = manifest('virtualmachine', 'web.upstream.yaml')['spec'] as Json;
  const nic = { name: 'lan', ipAddress: '192.168.1.10' };
  const cases: [string, Json, string][] = [
    ['ipAddress without prefix', { ...spec, networks: [nic] }, 'spec.networks[0].prefix is required with ipAddress'],
    ['a DNS name', { ...spec, networks: [{ ...nic, prefix: 24, dns: '1.1.1.1,dns.example' }] }, 'spec.networks[0].dns: "dns.example" is not an IP address'],
    ['five DNS servers', { ...spec, networks: [{ ...nic, prefix: 24, dns: '1.1.1.1,1.0.0.1,8.8.8.8,8.8.4.4,9.9.9.9' }] }, 'at most 4'],
  ];
  for (const [name, written, problem] of cases) {
    const result = normalizeVirtualMachine(written as VirtualMachineSpec);
    t.match(result, { ok: false, problem }, name);
  }
});

t.test('upstream-shaped defaults follow the shape: disks in sizeGiB grow offline, in size online', async (t) => {
  const base = manifest('virtualmachine', 'revert.upstream.yaml')['spec'] as Json;
  const upstream = normalizeVirtualMachine({ ...base, disks: [{ name: 'root', sizeGiB: 40 }] } as VirtualMachineSpec);
  const seed = normalizeVirtualMachine({ ...base, disks: [{ name: 'root', size: '40Gi' }] } as VirtualMachineSpec);
  t.match(upstream, { ok: true, value: { disks: [{ expandPolicy: 'Offline' }] } });
  t.match(seed, { ok: true, value: { disks: [{ expandPolicy: 'Online' }] } });
});

t.test('snapshot.revertToRef reverts once per snapshot named', async (t) => {
  const result = normalizeVirtualMachine(manifest('virtualmachine', 'revert.upstream.yaml')['spec'] as VirtualMachineSpec);
  t.match(result, { ok: true, value: { revert: { snapshot: 'before-upgrade', request: 'before-upgrade' } } });
});

t.test('the upstream fields no driver honours are all named by fieldUses', async (t) => {
  const everything = stored(manifest('virtualmachine', 'everything.upstream.yaml'), t);
  const uses = fieldUses('VirtualMachine', everything).map((use) => use.path);
  for (const path of [
    'spec.importedDisk',
    'spec.disks[].storageClass',
    'spec.disks[].scsi',
    'spec.userData.ignition',
    'spec.metaData.cloudInit',
    'spec.placement.storagePod',
    'spec.placementRef',
    'spec.tags',
    'spec.resources.gpu',
    'spec.lifecycle.preStop',
    'spec.lifecycle.postStart',
  ]) {
    t.ok(uses.includes(path), path);
  }
  const tuned = stored(manifest('vmclass', 'tuned.upstream.yaml'), t);
  t.same(
    fieldUses('VMClass', tuned).filter((use) => use.capability === undefined).map((use) => use.path).sort(),
    [
      'spec.diskDefaults.iops',
      'spec.diskDefaults.type=eagerzeroedthick',
      'spec.performanceProfile.hyperThreadingPolicy=avoid',
      'spec.performanceProfile.latencySensitivity=high',
      'spec.performanceProfile.virtualizationBasedSecurity',
      'spec.securityProfile.encryptionPolicy.enabled',
      'spec.securityProfile.encryptionPolicy.requireEncryption',
      'spec.securityProfile.tpmVersion=1.2',
      'spec.securityProfile.vtdEnabled',
    ],
  );
  // Honoured by the drivers with the capability (vSphere for most of them), Unsupported elsewhere.
  const byCapability = fieldUses('VMClass', tuned).flatMap((use) => (use.capability === undefined ? [] : [`${use.path} ${use.capability}`]));
  for (const expected of [
    'spec.extraConfig extraConfig',
    'spec.guestToolsPolicy=install cloudInit',
    'spec.resourceLimits.cpuLimit resourceLimits',
    'spec.resourceLimits.cpuReservation resourceLimits',
    'spec.resourceLimits.cpuShares cpuShares',
    'spec.resourceLimits.memoryLimit resourceLimits',
    'spec.resourceLimits.memoryReservation resourceLimits',
  ]) {
    t.ok(byCapability.includes(expected), expected);
  }
});
