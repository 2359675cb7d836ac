// What a Provider's upstream fields do: the runtime Deployment carries every scheduling and pod
// field as written (our security defaults where it sets nothing), TLS verification is off only
// for the Provider that says so, and said; credentials of another namespace and types without a
// driver are refused before anything is deployed or called; fields its type cannot honour are
// named; spec.healthCheck paces the probes and Ready.
import { readFileSync } from 'node:fs';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import t from 'tap';
import { parse } from 'yaml';
import { UnreachableError, type Driver, type DriverRegistry, type ProviderTarget } from '../../src/contracts/driver.js';
import { runtimeChildren } from '../../src/hooks/provider-runtime.js';
import { textLine, textLogStream } from '../../src/http/log-format.js';
import { proxmoxConfigFromEnv } from '../../src/hypervisors/proxmox/config.js';
import { vsphereConfigFromEnv } from '../../src/hypervisors/vsphere/config.js';
import { exampleBody } from '../helpers/bodies.js';
import { FakeClock } from '../helpers/clock.js';
import { testServer } from '../helpers/server.js';
import { Writable } from 'node:stream';
import { ProviderRuntimeMetrics, buildProviderRuntime } from '../../src/hypervisors/remote/index.js';
import { SimulatedHypervisor, SimulatorDriver } from '../../src/hypervisors/simulator/index.js';

type Json = Record<string, any>;
const RUNTIME = { defaultImage: 'ghcr.io/example/virtrigaud:0.1.0', tokenSecret: 'master-secret-for-tests' };
const FIXTURES = new URL('../fixtures/upstream-shaped/provider/', import.meta.url);

function fixture(name: string): Json {
  const object = parse(readFileSync(new URL(name, FIXTURES), 'utf8'), { version: '1.1' }) as Json;
  object['metadata']['uid'] = `uid-${object['metadata']['name']}`;
  object['metadata']['generation'] = 1;
  return object;
}

function body(parent: Json, children: Json = {}): Json {
  return { ...exampleBody('provider-sync'), parent, children };
}

async function sync(app: ReturnType<typeof testServer>['app'], payload: Json): Promise<Json> {
  const response = await app.inject({ method: 'POST', url: '/hooks/provider/sync', payload });
  t.equal(response.statusCode, 200, response.statusCode === 200 ? 'answered' : response.body);
  return response.json() as Json;
}

const deploymentOf = (children: Json[]) => children.find((child) => child['kind'] === 'Deployment') as Json;
const conditionOf = (json: Json, type: string) => (json['status']['conditions'] as Json[]).find((c) => c['type'] === type);
const envOf = (deployment: Json): Record<string, Json> =>
  Object.fromEntries((deployment['spec']['template']['spec']['containers'][0]['env'] as Json[]).map((entry) => [entry['name'], entry]));

/** A Deployment that has an available pod of its current spec, as Metacontroller would send it back. */
function availableRuntime(provider: Json): Json {
  const name = `virtrigaud-provider-${provider['metadata']['name']}`;
  const deployment = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: provider['metadata']['namespace'], generation: 1 }, status: { observedGeneration: 1, availableReplicas: 1 } };
  return { 'Deployment.apps/v1': { [`${provider['metadata']['namespace']}/${name}`]: deployment } };
}

/** A registry that counts what it is asked and answers with `driver`. */
function countingRegistry(driver?: Driver): DriverRegistry & { asked: ProviderTarget[] } {
  const asked: ProviderTarget[] = [];
  return {
    asked,
    async driverFor(target) {
      asked.push(target);
      if (!driver) throw new Error('no driver in this test');
      return driver;
    },
  };
}

t.test('the runtime Deployment of an upstream-shaped Provider carries every scheduling and pod field as written', async (t) => {
  const provider = fixture('runtime-everything.upstream.yaml');
  const runtime = provider['spec']['runtime'];
  const deployment = deploymentOf(runtimeChildren(provider as never, RUNTIME) as Json[]);
  const pod = deployment['spec']['template']['spec'];
  const container = pod['containers'][0];

  t.doesNotThrow(() => new Deployment(deployment as never).validate(), 'a valid apps/v1 Deployment');
  t.equal(deployment['spec']['replicas'], 3);
  t.same(pod['nodeSelector'], runtime['nodeSelector']);
  t.same(pod['tolerations'], runtime['tolerations']);
  t.same(pod['affinity'], runtime['affinity']);
  t.same(pod['imagePullSecrets'], runtime['imagePullSecrets']);
  t.equal(container['image'], runtime['image']);
  t.equal(container['imagePullPolicy'], 'Always');
  t.same(container['resources'], { limits: runtime['resources']['limits'], requests: runtime['resources']['requests'] });
  t.same(container['livenessProbe'], runtime['livenessProbe'], 'a probe with a handler is taken as written');
  t.same(container['readinessProbe'], { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 5, timeoutSeconds: 2 }, 'a probe without one keeps ours, with its timing');

  const env = envOf(deployment);
  for (const entry of runtime['env'] as Json[]) t.same(env[entry['name']], entry, `env ${entry['name']} as written`);
  t.same([env['LOG_LEVEL']?.['value'], env['LOG_FORMAT']?.['value']], ['warn', 'json'], 'logLevel and logFormat reach the runtime\'s logger');
  t.equal(env['PORT']?.['value'], '9443');

  t.same(
    container['securityContext'],
    { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] }, runAsUser: 10001, runAsGroup: 10001, seccompProfile: { type: 'RuntimeDefault' } },
    'the Provider\'s securityContext over ours',
  );
  t.match(pod['securityContext'], { runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } }, 'the pod\'s stays ours');
  t.equal(pod['automountServiceAccountToken'], false);
});

t.test('a Provider that sets nothing gets our security defaults, resources and probes', async (t) => {
  const provider = fixture('libvirt.seed.yaml');
  const deployment = deploymentOf(runtimeChildren(provider as never, RUNTIME) as Json[]);
  const pod = deployment['spec']['template']['spec'];
  const container = pod['containers'][0];
  t.doesNotThrow(() => new Deployment(deployment as never).validate());
  t.same(container['securityContext'], { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  t.same(pod['securityContext'], { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } });
  t.same(container['resources'], { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } });
  t.same(container['readinessProbe'], { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 10 });
  t.same(container['livenessProbe'], { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 20 });
  for (const field of ['nodeSelector', 'tolerations', 'affinity', 'imagePullSecrets']) t.notOk(field in pod, `no ${field}`);
  t.notOk('imagePullPolicy' in container);
  const env = envOf(deployment);
  t.same([env['LOG_LEVEL']?.['value'], env['LOG_FORMAT']?.['value']], ['debug', 'text'], 'the seeds\' spelling of the log settings reaches the runtime too');
});

t.test('our security defaults give way only where Kubernetes would refuse the pair', async (t) => {
  const context = (securityContext: Json) => {
    const provider = fixture('libvirt.seed.yaml');
    provider['spec']['runtime']['securityContext'] = securityContext;
    const deployment = deploymentOf(runtimeChildren(provider as never, RUNTIME) as Json[]);
    t.doesNotThrow(() => new Deployment(deployment as never).validate());
    return deployment['spec']['template']['spec']['containers'][0]['securityContext'] as Json;
  };
  t.notOk('allowPrivilegeEscalation' in context({ privileged: true }), 'privileged: no allowPrivilegeEscalation false');
  t.same(context({ capabilities: { add: ['SYS_ADMIN'] } }), { readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'], add: ['SYS_ADMIN'] } });
  t.match(context({ runAsUser: 0 }), { runAsUser: 0, runAsNonRoot: false, allowPrivilegeEscalation: false }, 'root as asked, not stopped by the pod\'s runAsNonRoot');
  t.match(context({ readOnlyRootFilesystem: false }), { readOnlyRootFilesystem: false, allowPrivilegeEscalation: false });
});

t.test('resource claims are not put into the pod (it declares none), limits and requests are', async (t) => {
  const provider = fixture('runtime-everything.upstream.yaml');
  provider['spec']['runtime']['resources']['claims'] = [{ name: 'gpu' }];
  const container = deploymentOf(runtimeChildren(provider as never, RUNTIME) as Json[])['spec']['template']['spec']['containers'][0];
  t.notOk('claims' in container['resources']);
  t.ok(container['resources']['limits']);
});

/** The driver configuration a runtime would read from its Deployment's environment, with credentials from its Secret. */
function runtimeEnv(deployment: Json, credentials: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = { ...credentials };
  for (const [name, entry] of Object.entries(envOf(deployment))) if (typeof entry['value'] === 'string') env[name] = entry['value'];
  return env;
}

t.test('insecureSkipVerify reaches the driver configuration of that Provider only', async (t) => {
  const pveCredentials = { PVE_TOKEN_ID: 'virtrigaud@pve!op', PVE_TOKEN_SECRET: 'not-a-real-secret' };
  const insecure = fixture('proxmox.upstream.yaml');
  const other = fixture('proxmox.upstream.yaml');
  other['metadata']['name'] = 'pve-prod';
  delete other['spec']['insecureSkipVerify'];
  const insecureConfig = proxmoxConfigFromEnv(runtimeEnv(deploymentOf(runtimeChildren(insecure as never, RUNTIME) as Json[]), pveCredentials));
  const otherConfig = proxmoxConfigFromEnv(runtimeEnv(deploymentOf(runtimeChildren(other as never, RUNTIME) as Json[]), pveCredentials));
  t.equal(insecureConfig.insecureSkipVerify, true);
  t.equal(otherConfig.insecureSkipVerify, false, 'verification stays on for the Provider that does not say otherwise');
  const seedTwin = proxmoxConfigFromEnv(runtimeEnv(deploymentOf(runtimeChildren(fixture('proxmox.seed.yaml') as never, RUNTIME) as Json[]), pveCredentials));
  t.equal(seedTwin.insecureSkipVerify, true, 'the seeds\' spelling means the same');

  const vsphere = fixture('vsphere.upstream.yaml');
  const vsphereConfig = vsphereConfigFromEnv(runtimeEnv(deploymentOf(runtimeChildren(vsphere as never, RUNTIME) as Json[]), { VSPHERE_USERNAME: 'op', VSPHERE_PASSWORD: 'x' }));
  t.equal(vsphereConfig.insecureSkipVerify, true);
  t.same(vsphereConfig.http, { rateLimit: { qps: 25, burst: 50 }, maxConnections: 6, connectTimeoutMs: 15_000, idleTimeoutMs: 120_000 }, 'rateLimit and connectionPooling reach the HTTP client\'s settings');
  t.equal(otherConfig.http, undefined, 'without them, the client keeps its own');
});

t.test('libvirt: no TLS variable is written; the field is named Unsupported', async (t) => {
  const { app } = testServer({ runtime: RUNTIME });
  t.teardown(() => app.close());
  const provider = fixture('libvirt.upstream.yaml');
  provider['spec']['insecureSkipVerify'] = true;
  provider['spec']['rateLimit'] = { qps: 5 };
  const json = await sync(app, body(provider));
  const env = envOf(deploymentOf(json['children']));
  t.notOk(Object.keys(env).some((name) => /INSECURE|RATE_LIMIT/.test(name)));
  t.match(conditionOf(json, 'Supported'), { status: 'False', reason: 'Unsupported', message: /spec\.insecureSkipVerify \(libvirt is reached over SSH.*spec\.rateLimit/ });
  t.notOk(conditionOf(json, 'TLSVerified'), 'libvirt verifies host keys; no TLS condition');
  t.match(conditionOf(json, 'Ready'), { status: 'False', reason: 'RuntimeCreating' }, 'an unhonoured field does not stop the Provider');
});

t.test('TLS verification off is published, whichever spelling said it; on is said too', async (t) => {
  const { app } = testServer({ runtime: RUNTIME });
  t.teardown(() => app.close());
  for (const file of ['proxmox.upstream.yaml', 'proxmox.seed.yaml']) {
    const json = await sync(app, body(fixture(file)));
    t.match(conditionOf(json, 'TLSVerified'), { status: 'False', reason: 'InsecureSkipVerify', message: /not verified/ }, file);
  }
  const verified = fixture('proxmox.upstream.yaml');
  delete verified['spec']['insecureSkipVerify'];
  t.match(conditionOf(await sync(app, body(verified)), 'TLSVerified'), { status: 'True', reason: 'Verified' });
});

t.test('credentials in another namespace: refused, nothing deployed, no driver asked', async (t) => {
  const registry = countingRegistry();
  const { app } = testServer({ runtime: RUNTIME, registry: () => registry });
  t.teardown(() => app.close());
  const json = await sync(app, body(fixture('credentials-elsewhere.upstream.yaml')));
  t.same(json['children'], [], 'no runtime: its pod could not mount that Secret');
  t.match(conditionOf(json, 'Ready'), {
    status: 'False',
    reason: 'CredentialsNotAllowed',
    message: /credentialSecretRef\.namespace platform-secrets is not this Provider's namespace team-a.*Create Secret vcenter-login in team-a/,
  });
  t.same(registry.asked, []);

  const same = fixture('credentials-elsewhere.upstream.yaml');
  same['spec']['credentialSecretRef']['namespace'] = 'team-a';
  const allowed = await sync(app, body(same));
  t.match(conditionOf(allowed, 'Ready'), { reason: 'RuntimeCreating' }, 'its own namespace, spelled out, is fine');
  t.match(deploymentOf(allowed['children'])['spec']['template']['spec']['volumes'], [{}, {}, { secret: { secretName: 'vcenter-login' } }]);
});

t.test('firecracker and qemu: accepted, Unsupported naming the type, nothing deployed or called', async (t) => {
  const registry = countingRegistry();
  const { app } = testServer({ runtime: RUNTIME, registry: () => registry });
  t.teardown(() => app.close());
  for (const type of ['firecracker', 'qemu']) {
    const provider = fixture('firecracker.upstream.yaml');
    provider['spec']['type'] = type;
    const json = await sync(app, body(provider));
    t.same(json['children'], []);
    t.match(conditionOf(json, 'Ready'), { status: 'False', reason: 'Unsupported', message: new RegExp(`^spec\\.type ${type}: no driver serves this hypervisor`) });
    t.match(conditionOf(json, 'Supported'), { status: 'False', message: new RegExp(`spec\\.type=${type} \\(no driver serves this hypervisor\\)`) });
  }
  t.same(registry.asked, []);

  const finalize = await app.inject({ method: 'POST', url: '/hooks/provider/finalize', payload: { ...body(fixture('firecracker.upstream.yaml')), finalizing: true } });
  t.same((finalize.json() as Json)['children'], [], 'nor when it is deleted');
});

function simulatorProvider(spec: Json = {}): Json {
  const parent = exampleBody('provider-sync').parent;
  parent['spec'] = { type: 'simulator', runtime: { mode: 'InProcess' }, ...spec };
  return parent;
}

t.test('Supported: capability rules wait for the driver, then name what it lacks', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const folder = await sync(app, body(simulatorProvider({ defaults: { folder: 'vms', datastore: 'local' } })));
  t.match(conditionOf(folder, 'Supported'), { status: 'False', reason: 'Unsupported', message: /simulator provider cannot honour spec\.defaults\.folder$/ });
  t.match(conditionOf(folder, 'Ready'), { status: 'True' });
  const datastore = await sync(app, body(simulatorProvider({ defaults: { datastore: 'local', network: 'lan' } })));
  t.match(conditionOf(datastore, 'Supported'), { status: 'True', reason: 'Supported' });

  const remote = testServer({ runtime: RUNTIME });
  t.teardown(() => remote.app.close());
  const pending = fixture('vsphere.upstream.yaml');
  delete pending['spec']['defaults']['storagePod'];
  const waiting = await sync(remote.app, body(pending));
  t.match(conditionOf(waiting, 'Supported'), { status: 'Unknown', reason: 'WaitingForDriver', message: /spec\.defaults\.folder \(placementFolder\)/ });
  pending['spec']['defaults']['storagePod'] = 'gold';
  const storagePod = await sync(remote.app, body(pending));
  t.match(conditionOf(storagePod, 'Supported'), { status: 'False', message: /spec\.defaults\.storagePod \(no driver picks a datastore/ }, 'a rule no driver honours is known at once');
});

t.test('runtime.mode InProcess names the runtime fields it has no Deployment for', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const json = await sync(app, body(simulatorProvider({ runtime: { mode: 'InProcess', nodeSelector: { zone: 'a' } } })));
  t.match(conditionOf(json, 'Supported'), { status: 'False', message: /spec\.runtime\.nodeSelector \(runtime\.mode InProcess/ });
});

t.test('healthCheck: Ready turns False after failureThreshold failed probes an interval apart, and back after a success', async (t) => {
  const clock = new FakeClock();
  const { app, world } = testServer({ clock });
  t.teardown(() => app.close());
  const parent = simulatorProvider({ healthCheck: { interval: '30s', failureThreshold: 2 } });
  const step = async (advanceMs: number) => {
    clock.advance(advanceMs);
    const json = await sync(app, body(parent));
    parent['status'] = json['status'];
    return json;
  };

  const first = await step(0);
  t.match(conditionOf(first, 'Ready'), { status: 'True', reason: 'Connected' });
  t.match(first['status']['health'], { healthy: true, consecutiveFailures: 0, consecutiveSuccesses: 1 });
  t.equal(first['resyncAfterSeconds'], 30, 'the next probe an interval later');

  world.injectFault('probe', { kind: 'unreachable', times: Infinity });
  const failedOnce = await step(30_000);
  t.match(conditionOf(failedOnce, 'Ready'), { status: 'True', message: /^1 of 2 failed probes allowed/ }, 'one failure is allowed');
  t.match(conditionOf(failedOnce, 'Connected'), { status: 'False' }, 'the latest probe is shown as it is');

  const echo = await step(1_000);
  t.same(echo['status']['health'], failedOnce['status']['health'], 'a sync after our own status write is not a second failure');
  t.match(conditionOf(echo, 'Ready'), { status: 'True' });
  t.equal(echo['resyncAfterSeconds'], 29, 'the rest of the interval');

  const failedTwice = await step(29_000);
  t.match(conditionOf(failedTwice, 'Ready'), { status: 'False', reason: 'HypervisorUnreachable' });
  t.match(failedTwice['status']['health'], { healthy: false, consecutiveFailures: 2 });

  const steady = await step(30_000);
  t.same(steady['status'], failedTwice['status'], 'a steady failure writes nothing new');

  world.clearFaults();
  const back = await step(30_000);
  t.match(conditionOf(back, 'Ready'), { status: 'True', reason: 'Connected' }, 'successThreshold 1: back at once');
});

t.test('healthCheck: successThreshold holds Ready until that many successes', async (t) => {
  const clock = new FakeClock();
  const { app } = testServer({ clock });
  t.teardown(() => app.close());
  const parent = simulatorProvider({ healthCheck: { successThreshold: 2 } });
  const first = await sync(app, body(parent));
  t.match(conditionOf(first, 'Ready'), { status: 'False', reason: 'HealthCheckPending', message: /^1 of 2 successful probes/ });
  parent['status'] = first['status'];
  clock.advance(30_000);
  t.match(conditionOf(await sync(app, body(parent)), 'Ready'), { status: 'True' });
});

t.test('healthCheck.enabled false: the hypervisor is not probed, Ready follows the runtime', async (t) => {
  const { app, world } = testServer();
  t.teardown(() => app.close());
  const json = await sync(app, body(simulatorProvider({ healthCheck: { enabled: false } })));
  t.equal(world.callCount('probe') + world.callCount('inventory'), 0);
  t.match(conditionOf(json, 'Ready'), { status: 'True', reason: 'HealthCheckDisabled' });
  t.match(conditionOf(json, 'Connected'), { status: 'Unknown', reason: 'HealthCheckDisabled' });
});

t.test('healthCheck.timeout bounds a probe that hangs', async (t) => {
  const hanging = Object.assign(Object.create(new SimulatorDriver(new SimulatedHypervisor())) as Driver, {
    probe: (options?: { signal?: AbortSignal }) =>
      new Promise<never>((_resolve, reject) => options?.signal?.addEventListener('abort', () => reject(new UnreachableError('the probe was cut off')))),
  });
  const { app } = testServer({ budgetMs: 5_000, registry: () => countingRegistry(hanging) });
  t.teardown(() => app.close());
  const started = Date.now();
  const json = await sync(app, body(simulatorProvider({ healthCheck: { timeout: '300ms' } })));
  t.ok(Date.now() - started < 2_000, `answered after ${Date.now() - started} ms, not the 5 s budget`);
  t.match(conditionOf(json, 'Connected'), { status: 'False', message: /cut off/ });
});

t.test('logFormat text: the runtime writes text lines, still redacted', async (t) => {
  const lines: string[] = [];
  const out = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  const app = buildProviderRuntime({
    driver: new SimulatorDriver(new SimulatedHypervisor()),
    token: 'runtime-token-canary',
    logger: { level: 'debug', stream: textLogStream(out) },
    metrics: new ProviderRuntimeMetrics({ processMetrics: false }),
  });
  t.teardown(() => app.close());
  await app.ready();
  app.log.info({ headers: { authorization: 'Bearer runtime-token-canary' }, provider: 'pve prod' }, 'a call with a token');
  app.log.warn({ err: new Error('first line\nsecond line') }, 'an error');
  t.equal(lines.length, 2);
  t.match(lines[0], / INFO a call with a token headers=\{"authorization":"\[redacted\]"\} provider="pve prod"\n$/);
  for (const line of lines) {
    t.match(line, /^\d{4}-\d\d-\d\dT[\d:.]+Z (TRACE|DEBUG|INFO|WARN|ERROR|FATAL) /, 'time, level, message');
    t.notMatch(line, /^\{/, 'not JSON');
    t.notMatch(line, /runtime-token-canary/, 'the token stays redacted');
    t.equal(line.split('\n').filter(Boolean).length, 1, 'one line per entry');
  }
  t.equal(textLine('{"level":30,"time":0,"msg":"two\\nlines","v":"a b"}'), '1970-01-01T00:00:00.000Z INFO "two\\nlines" v="a b"', 'values that are not plain words are quoted');
});
