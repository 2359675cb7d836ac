// Provider in both shapes: upstream VirtRigaud's v1beta1 (with its core/v1 subtrees) and the
// seeds'. Each upstream-shaped fixture is accepted by the generated CRD as kubectl sends it (YAML
// 1.1) and normalizes like its seed-shaped twin; bad core/v1 values are refused at apply time; the
// fields a Provider's type cannot honour are named by the support table.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { parse } from 'yaml';
import { ProviderObject, type ProviderSpec } from '../../src/contracts/crds/provider.js';
import { PROVIDER_FIELDS, PROVIDER_TYPE_RULES, normalizeProvider, providerDefaults, providerTypeUses } from '../../src/contracts/normalize/provider.js';
import { fieldUses } from '../../src/contracts/support.js';
import { upstreamFixtures } from '../helpers/upstream-fixtures.js';
import { loadCrdValidators, type ValidationIssue } from '../helpers/crd-validator.js';

type Json = Record<string, any>;

const upstream = upstreamFixtures('Provider', 'provider', ProviderObject);
const FIXTURES = upstream.dir;
const SEEDS = new URL('../fixtures/seeds/', import.meta.url);
const validators = loadCrdValidators(fileURLToPath(new URL('../../manifests/crds', import.meta.url)));
const crd = upstream.crd;
const manifest = (name: string): Json => upstream.manifest(name);
const stored = (object: Json, t: Test): Json => upstream.stored(object, t);

const normalize = (object: Json) => normalizeProvider(object['spec'] as ProviderSpec, object['metadata']?.['namespace']);

const fixtures = readdirSync(FIXTURES).filter((name) => name.endsWith('.upstream.yaml'));

t.test('there is an upstream-shaped Provider for each hypervisor and one with every runtime field', async (t) => {
  t.same(fixtures.sort(), [
    'credentials-elsewhere.upstream.yaml',
    'firecracker.upstream.yaml',
    'libvirt.upstream.yaml',
    'proxmox.upstream.yaml',
    'runtime-everything.upstream.yaml',
    'vsphere.upstream.yaml',
  ]);
});

for (const file of fixtures) {
  t.test(`provider/${file} applies and normalizes, like its seed-shaped twin`, async (t) => {
    const upstream = normalize(stored(manifest(file), t));
    t.ok(upstream.ok, upstream.ok ? 'normalizes' : upstream.problem);
    const twin = file.replace('.upstream.yaml', '.seed.yaml');
    if (!readdirSync(FIXTURES).includes(twin)) return;
    const seed = normalize(stored(manifest(twin), t));
    t.ok(seed.ok, seed.ok ? 'its seed-shaped twin normalizes' : seed.problem);
    t.same(upstream, seed, 'both shapes mean the same');
  });
}

for (const file of readdirSync(SEEDS).filter((name) => name.includes('-provider-'))) {
  t.test(`the seed ${file} normalizes to our defaults`, async (t) => {
    const object = crd.prune(parse(readFileSync(new URL(file, SEEDS), 'utf8'))) as Json;
    const result = normalize(object);
    if (!result.ok) return t.fail(result.problem);
    t.match(result.value, { mode: 'Remote', tlsVerification: 'on', defaults: {}, http: {}, log: {} });
    t.same(result.value.health, { enabled: true, failureThreshold: 1, successThreshold: 1 }, 'no healthCheck: Ready follows each probe, as before');
  });
}

t.test('the canonical vSphere Provider', async (t) => {
  const result = normalize(stored(manifest('vsphere.upstream.yaml'), t));
  if (!result.ok) return t.fail(result.problem);
  t.same(result.value, {
    type: 'vsphere',
    mode: 'Remote',
    endpoint: 'https://vcenter.lab.example.net:443',
    credentials: { name: 'vcenter-lab-login', namespace: 'infra' },
    tlsVerification: 'off',
    defaults: { datastore: 'nvme-ds01', cluster: 'compute-a', folder: 'virtrigaud/vms', resourcePool: 'tenants', network: 'vm-lan' },
    http: { rateLimit: { qps: 25, burst: 50 }, maxConnections: 6, connectionTimeout: '15s', idleTimeout: '2m' },
    health: { enabled: true, intervalMs: 60_000, timeoutMs: 5_000, failureThreshold: 2, successThreshold: 1 },
    log: {},
  });
});

const spec = (extra: Json = {}): ProviderSpec => ({ type: 'proxmox', endpoint: 'https://pve:8006', ...extra }) as ProviderSpec;

t.test('normalize: each upstream-only block takes upstream\'s defaults when written, ours when not', async (t) => {
  const cases: [string, ProviderSpec, Json][] = [
    ['no healthCheck', spec(), { health: { enabled: true, failureThreshold: 1, successThreshold: 1 } }],
    ['healthCheck {}', spec({ healthCheck: {} }), { health: { enabled: true, intervalMs: 30_000, timeoutMs: 10_000, failureThreshold: 3, successThreshold: 1 } }],
    ['healthCheck disabled', spec({ healthCheck: { enabled: false } }), { health: { enabled: false } }],
    ['rateLimit {}', spec({ rateLimit: {} }), { http: { rateLimit: { qps: 10, burst: 20 } } }],
    ['rateLimit qps only', spec({ rateLimit: { qps: 3 } }), { http: { rateLimit: { qps: 3, burst: 20 } } }],
    ['connectionPooling {}', spec({ connectionPooling: {} }), { http: { maxConnections: 10, connectionTimeout: '30s', idleTimeout: '5m' } }],
    ['no blocks', spec(), { http: {} }],
    ['simulator', { type: 'simulator' } as ProviderSpec, { mode: 'InProcess' }],
    ['simulator run Remote', { type: 'simulator', runtime: { mode: 'Remote' } } as ProviderSpec, { mode: 'Remote' }],
    ['libvirt', spec({ type: 'libvirt' }), { mode: 'Remote' }],
  ];
  for (const [name, input, expected] of cases) {
    const result = normalizeProvider(input);
    t.ok(result.ok, name);
    if (result.ok) t.match(result.value, expected, name);
  }
});

t.test('normalize: TLS verification is on unless either spelling turns it off', async (t) => {
  const env = (name: string, value: string) => ({ runtime: { env: [{ name, value }] } });
  const cases: [string, ProviderSpec, string][] = [
    ['nothing said', spec(), 'on'],
    ['insecureSkipVerify false', spec({ insecureSkipVerify: false }), 'on'],
    ['insecureSkipVerify true', spec({ insecureSkipVerify: true }), 'off'],
    ['PVE_INSECURE_SKIP_VERIFY "true"', spec(env('PVE_INSECURE_SKIP_VERIFY', 'true')), 'off'],
    ['PVE_INSECURE_SKIP_VERIFY "YES"', spec(env('PVE_INSECURE_SKIP_VERIFY', 'YES')), 'off'],
    ['PVE_INSECURE_SKIP_VERIFY "false"', spec(env('PVE_INSECURE_SKIP_VERIFY', 'false')), 'on'],
    ['VSPHERE_INSECURE_SKIP_VERIFY on vSphere', spec({ type: 'vsphere', ...env('VSPHERE_INSECURE_SKIP_VERIFY', '1') }), 'off'],
    ['PVE_ variable on vSphere: not read by its runtime', spec({ type: 'vsphere', ...env('PVE_INSECURE_SKIP_VERIFY', 'true') }), 'on'],
    [
      'valueFrom: decided where the hook cannot see',
      spec({ runtime: { env: [{ name: 'PVE_INSECURE_SKIP_VERIFY', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }] } }),
      'unknown',
    ],
  ];
  for (const [name, input, expected] of cases) {
    const result = normalizeProvider(input);
    t.equal(result.ok && result.value.tlsVerification, expected, name);
  }
});

t.test('normalize: a value the runtime would refuse at start is a problem naming the field', async (t) => {
  const cases: [ProviderSpec, RegExp][] = [
    [spec({ runtime: { env: [{ name: 'PVE_INSECURE_SKIP_VERIFY', value: 'maybe' }] } }), /^spec\.runtime\.env PVE_INSECURE_SKIP_VERIFY must be true or false$/],
    [spec({ runtime: { env: [{ name: 'LOG_LEVEL', value: 'verbose' }] } }), /^spec\.runtime\.env LOG_LEVEL must be one of/],
    [spec({ runtime: { env: [{ name: 'LOG_FORMAT', value: 'xml' }] } }), /^spec\.runtime\.env LOG_FORMAT must be one of json, text$/],
    [spec({ healthCheck: { interval: '500ms' } }), /^spec\.healthCheck\.interval 500ms is shorter than 1s$/],
    [spec({ healthCheck: { timeout: '0' } }), /^spec\.healthCheck\.timeout 0 is not a duration/],
    [spec({ connectionPooling: { idleTimeout: '0' } }), /^spec\.connectionPooling\.idleTimeout 0 is not a duration/],
  ];
  for (const [input, message] of cases) {
    const result = normalizeProvider(input);
    t.notOk(result.ok);
    if (!result.ok) t.match(result.problem, message);
  }
});

t.test('normalize: the Secret\'s namespace is the Provider\'s own unless written', async (t) => {
  const own = normalizeProvider(spec({ credentialSecretRef: { name: 'pve' } }), 'infra');
  t.same(own.ok && own.value.credentials, { name: 'pve', namespace: 'infra' });
  const other = normalizeProvider(spec({ credentialSecretRef: { name: 'pve', namespace: 'vault' } }), 'infra');
  t.same(other.ok && other.value.credentials, { name: 'pve', namespace: 'vault' });
});

t.test('providerDefaults: the placement defaults a VM without its own gets; storagePod has no driver', async (t) => {
  t.same(providerDefaults(spec()), {});
  t.same(
    providerDefaults(spec({ defaults: { datastore: 'ds1', storagePod: 'pod1', cluster: '', folder: 'f', resourcePool: 'rp', network: 'lan' } })),
    { datastore: 'ds1', folder: 'f', resourcePool: 'rp', network: 'lan' },
    'empty strings set nothing; storagePod is not a default any driver applies',
  );
});

t.test('every PROVIDER_FIELDS rule names its field when set', async (t) => {
  for (const rule of PROVIDER_FIELDS) {
    for (const value of rule.values ?? [rule.example]) {
      t.not(value, undefined, `${rule.path} has values or an example`);
      const object: Json = { spec: { type: 'vsphere' } };
      const steps = rule.path.split('.').slice(1);
      let node = object['spec'];
      for (const step of steps.slice(0, -1)) node = node[step] ??= {};
      node[steps.at(-1)!] = value;
      const uses = fieldUses('Provider', object);
      const named = uses.find((use) => use.path.split('=')[0] === rule.path);
      t.ok(named, `${rule.path}=${JSON.stringify(value)} is named`);
      if (named) t.same([named.capability, named.why], [rule.capability, rule.why]);
    }
  }
});

t.test('the per-type table: each type names what it cannot honour, the others nothing', async (t) => {
  for (const rule of PROVIDER_TYPE_RULES) {
    const value = rule.values?.[0] ?? rule.example;
    for (const type of ['vsphere', 'libvirt', 'proxmox', 'simulator'] as const) {
      const provider: Json = { spec: { type, runtime: { mode: 'Remote' } } };
      const steps = rule.path.split('.').slice(1);
      let node = provider['spec'];
      for (const step of steps.slice(0, -1)) node = node[step] ??= {};
      node[steps.at(-1)!] = value;
      const uses = providerTypeUses(provider as { spec: ProviderSpec });
      const why = rule.unsupportedOn[type];
      if (why === undefined) t.same(uses, [], `${type} honours ${rule.path}`);
      else t.same(uses, [{ path: rule.path, why }], `${type} cannot honour ${rule.path}`);
    }
  }
});

t.test('libvirt: insecureSkipVerify and the HTTP tuning are named with why; false is not a use', async (t) => {
  const uses = providerTypeUses({ spec: { type: 'libvirt', insecureSkipVerify: true, rateLimit: { qps: 5 }, connectionPooling: { maxConnections: 2 } } as ProviderSpec });
  t.same(
    uses.map((use) => use.path),
    ['spec.insecureSkipVerify', 'spec.rateLimit', 'spec.connectionPooling.maxConnections'],
  );
  t.match(uses[0]?.why, /host key is always verified/);
  t.same(providerTypeUses({ spec: { type: 'libvirt', insecureSkipVerify: false } as ProviderSpec }), []);
});

t.test('runtime.mode InProcess: the runtime\'s pod fields have nowhere to go', async (t) => {
  const uses = providerTypeUses({
    spec: { type: 'simulator', runtime: { mode: 'InProcess', replicas: 1, nodeSelector: { a: 'b' }, logLevel: 'debug', env: [] } } as ProviderSpec,
  });
  t.same(uses.map((use) => use.path), ['spec.runtime.nodeSelector', 'spec.runtime.logLevel'], 'replicas 1 is the stored default; an empty list sets nothing');
  t.same(providerTypeUses({ spec: { type: 'simulator', runtime: { mode: 'Remote', nodeSelector: { a: 'b' } } } as ProviderSpec }), []);
});

/** The spec of an object with one change, as `kubectl apply` would send it. */
function withSpec(change: (spec: Json) => void): Json {
  const object = manifest('runtime-everything.upstream.yaml');
  change(object['spec']);
  return object;
}

function refused(t: Test, object: Json, path: string, message: RegExp): void {
  const issues: ValidationIssue[] = crd!.validate(object);
  t.ok(
    issues.some((issue) => issue.path === path && message.test(issue.message)),
    `refused at ${path} (${message}); got ${JSON.stringify(issues)}`,
  );
}

t.test('the CRD refuses what the apiserver would refuse in the runtime\'s pod, at apply time', async (t) => {
  const rt = 'spec.runtime';
  const cases: [string, (spec: Json) => void, string, RegExp][] = [
    ['an unknown affinity field', (s) => (s.runtime.affinity.nodeAffinity.requiredDuringScheduling = {}), `${rt}.affinity.nodeAffinity.requiredDuringScheduling`, /unknown field/],
    ['a node selector operator In without values', (s) => delete s.runtime.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values, `${rt}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0]`, /In and NotIn need at least one value/],
    ['Gt with a word', (s) => (s.runtime.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].values = ['three']), `${rt}.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0]`, /Gt and Lt exactly one integer/],
    ['a weight of 0', (s) => (s.runtime.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight = 0), `${rt}.affinity.podAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight`, /should be greater than or equal to 1|minimum/],
    ['a pod affinity term without topologyKey', (s) => delete s.runtime.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey, `${rt}.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey`, /Required/i],
    ['a toleration operator Exists with a value', (s) => (s.runtime.tolerations[1].value = 'x'), `${rt}.tolerations[1]`, /operator Exists takes no value/],
    ['tolerationSeconds without NoExecute', (s) => (s.runtime.tolerations[0].tolerationSeconds = 30), `${rt}.tolerations[0]`, /tolerationSeconds needs effect NoExecute/],
    ['a toleration effect that is not one', (s) => (s.runtime.tolerations[0].effect = 'NoWay'), `${rt}.tolerations[0].effect`, /Unsupported value|supported values/i],
    ['an empty toleration key with Equal', (s) => (s.runtime.tolerations[0].key = ''), `${rt}.tolerations[0]`, /an empty key needs operator Exists/],
    ['privileged with allowPrivilegeEscalation false', (s) => Object.assign(s.runtime.securityContext, { privileged: true, allowPrivilegeEscalation: false }), `${rt}.securityContext`, /privileged container/],
    ['seccomp Localhost without a profile', (s) => (s.runtime.securityContext.seccompProfile.type = 'Localhost'), `${rt}.securityContext.seccompProfile`, /localhostProfile is required/],
    ['a negative runAsUser', (s) => (s.runtime.securityContext.runAsUser = -1), `${rt}.securityContext.runAsUser`, /greater than or equal to 0|minimum/],
    ['a probe with two handlers', (s) => (s.runtime.livenessProbe.tcpSocket = { port: 9443 }), `${rt}.livenessProbe`, /at most one of exec, httpGet, tcpSocket and grpc/],
    ['a liveness successThreshold of 2', (s) => (s.runtime.livenessProbe.successThreshold = 2), `${rt}.livenessProbe`, /successThreshold must be 1/],
    ['a probe port name that cannot be one', (s) => (s.runtime.livenessProbe.httpGet.port = 'Not_A_Port'), `${rt}.livenessProbe.httpGet.port`, /should match|pattern/],
    ['an env value and valueFrom', (s) => (s.runtime.env[1].value = 'x'), `${rt}.env[1]`, /set value or valueFrom, not both/],
    ['valueFrom with two sources', (s) => (s.runtime.env[1].valueFrom.secretKeyRef = { name: 's', key: 'k' }), `${rt}.env[1].valueFrom`, /exactly one of/],
    ['valueFrom with none', (s) => (s.runtime.env[1].valueFrom = {}), `${rt}.env[1].valueFrom`, /exactly one of/],
    ['a fieldRef the downward API has not', (s) => (s.runtime.env[1].valueFrom.fieldRef.fieldPath = 'spec.containers'), `${rt}.env[1].valueFrom.fieldRef.fieldPath`, /should match|pattern/],
    ['a resource quantity that is not one', (s) => (s.runtime.resources.limits.memory = 'lots'), `${rt}.resources.limits.memory`, /should match|pattern/],
    ['an imagePullPolicy that is not one', (s) => (s.runtime.imagePullPolicy = 'Sometimes'), `${rt}.imagePullPolicy`, /Unsupported value|supported values/i],
    ['more than 20 tolerations', (s) => (s.runtime.tolerations = Array.from({ length: 21 }, () => ({ operator: 'Exists' }))), `${rt}.tolerations`, /Too many|at most 20|maxItems/i],
    ['a log level upstream does not have', (s) => (s.runtime.logLevel = 'trace'), `${rt}.logLevel`, /Unsupported value|supported values/i],
    ['a type no one knows', (s) => (s.type = 'xen'), 'spec.type', /Unsupported value|supported values/i],
    ['a rate of 0', (s) => (s.rateLimit = { qps: 0 }), 'spec.rateLimit.qps', /greater than or equal to 1|minimum/],
    ['a health interval that is not a duration', (s) => (s.healthCheck = { interval: 'soon' }), 'spec.healthCheck.interval', /should match|pattern/],
  ];
  for (const [name, change, path, message] of cases) t.test(name, async (t) => refused(t, withSpec(change), path, message));
});

t.test('the CRD refuses both spellings of one setting', async (t) => {
  const cases: [string, (spec: Json) => void, string, RegExp][] = [
    ['insecureSkipVerify and PVE_INSECURE_SKIP_VERIFY', (s) => { s.insecureSkipVerify = true; s.runtime.env.push({ name: 'PVE_INSECURE_SKIP_VERIFY', value: 'true' }); }, 'spec', /insecureSkipVerify or runtime\.env PVE_INSECURE_SKIP_VERIFY/],
    ['insecureSkipVerify false and VSPHERE_INSECURE_SKIP_VERIFY', (s) => { s.insecureSkipVerify = false; s.runtime.env.push({ name: 'VSPHERE_INSECURE_SKIP_VERIFY', value: 'true' }); }, 'spec', /not both/],
    ['logLevel and LOG_LEVEL', (s) => s.runtime.env.push({ name: 'LOG_LEVEL', value: 'debug' }), 'spec.runtime', /set logLevel or env LOG_LEVEL, not both/],
    ['logFormat and LOG_FORMAT', (s) => s.runtime.env.push({ name: 'LOG_FORMAT', value: 'text' }), 'spec.runtime', /set logFormat or env LOG_FORMAT, not both/],
    ['rateLimit and PVE_RATE_LIMIT_QPS', (s) => { s.rateLimit = { qps: 5 }; s.runtime.env.push({ name: 'PVE_RATE_LIMIT_QPS', value: '5' }); }, 'spec', /set rateLimit or runtime\.env/],
    ['connectionPooling and VSPHERE_IDLE_TIMEOUT', (s) => { s.connectionPooling = {}; s.runtime.env.push({ name: 'VSPHERE_IDLE_TIMEOUT', value: '1m' }); }, 'spec', /set connectionPooling or runtime\.env/],
  ];
  for (const [name, change, path, message] of cases) t.test(name, async (t) => refused(t, withSpec(change), path, message));
});

t.test('upstream\'s types and tuning blocks apply; seeds keep applying as they are', async (t) => {
  const object = withSpec((s) => {
    s.type = 'qemu';
    s.healthCheck = {};
    s.connectionPooling = {};
    s.runtime.resources.claims = [{ name: 'gpu', request: 'one' }];
    s.runtime.service.tls = { enabled: true, secretRef: { name: 'runtime-tls' } };
  });
  t.same(crd.validate(object), []);
  const kept = crd.prune(object) as Json;
  t.same(kept['spec']['healthCheck'], { enabled: true, interval: '30s', timeout: '10s', failureThreshold: 3, successThreshold: 1 }, 'upstream\'s defaults are stored');
  t.same(kept['spec']['connectionPooling'], { maxConnections: 10, connectionTimeout: '30s', idleTimeout: '5m' }, 'no maxIdleConnections default: it would be named Unsupported on every object');
  t.notOk('insecureSkipVerify' in kept['spec'], 'no stored insecureSkipVerify: a default would trip the "not both" rule for the seeds\' spelling');
});
