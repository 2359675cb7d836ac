// The chart under other values: each value set still renders valid objects, and each option does
// what values.yaml says.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { objectIssues, type Expectations } from './objects.js';
import { ROOT, SKIP_HELM, chartArgs, ofKind, one, renderChart, renderError, runRenderer, selects, type Json, type RenderOptions, type RenderedObject } from './render.js';

const skip = SKIP_HELM;

const container = (objects: RenderedObject[]): Json => one(objects, 'Deployment')['spec']['template']['spec']['containers'][0] as Json;
const envOf = (objects: RenderedObject[]): Record<string, unknown> =>
  Object.fromEntries(((container(objects)['env'] ?? []) as Json[]).map((e) => [e['name'], e['value']]));
const podOf = (objects: RenderedObject[]): Json => one(objects, 'Deployment')['spec']['template'] as Json;

const VALUE_SETS: [string, RenderOptions, Partial<Expectations>][] = [
  ['default values', {}, {}],
  ['TLS on', { set: ['hooks.tls.enabled=true', 'hooks.tls.secretName=hooks-tls'] }, {}],
  ['existing Secrets', { set: ['hooks.auth.existingSecret=mc-token', 'providers.tokenSecret.existingSecret=runtime-hmac'] }, {}],
  ['ServiceMonitor on, with TLS and a metrics peer', {
    set: ['metrics.serviceMonitor.enabled=true', 'metrics.serviceMonitor.labels.release=prom', 'hooks.tls.enabled=true', 'hooks.tls.secretName=hooks-tls'],
    args: ['-f', join(ROOT, 'test/helm/values/metrics-from.yaml')],
  }, {}],
  ['a custom release and namespace', { release: 'lab', namespace: 'vm-operators' }, { release: 'lab', namespace: 'vm-operators' }],
  ['name overrides', { release: 'r1', set: ['nameOverride=vr', 'fullnameOverride=vr-prod'] }, { release: 'r1', name: 'vr' }],
  ['a PodDisruptionBudget and two replicas', { set: ['hooks.podDisruptionBudget.enabled=true', 'hooks.replicaCount=2'] }, {}],
  ['Providers in other namespaces with egress', {
    set: ['providers.namespaces={infra,lab,infra}', 'providers.egressCIDRs={192.0.2.0/24,198.51.100.7/32}'],
    args: ['-f', join(ROOT, 'test/helm/values/egress-ports.yaml')],
  }, { providerNamespaces: ['infra', 'lab'] }],
  ['NetworkPolicies off', { set: ['networkPolicy.enabled=false'] }, {}],
  // The seed README's install line, with the other providers.* values still set.
  ['the seed\'s install flags', {
    set: ['providers.vsphere.enabled=false', 'providers.libvirt.enabled=false', 'providers.proxmox.enabled=false', 'providers.egressCIDRs={192.0.2.0/24}', 'providers.runtimeImage=registry.example/runtime:1'],
  }, {}],
  ['CRD upgrades off', { set: ['crdUpgrade.enabled=false'] }, {}],
  ['common labels, pod labels, annotations and extra env', {
    set: ['commonLabels.team=vm', 'hooks.podLabels.tier=control', 'hooks.podAnnotations.example\\.com/owner=ops'],
    args: ['-f', join(ROOT, 'test/helm/values/extra-env.yaml')],
  }, {}],
];

const rendered = new Map<string, RenderedObject[]>();
for (const [label, options] of VALUE_SETS) rendered.set(label, skip ? [] : renderChart({ ...options, args: [...(options.args ?? []), '--include-crds'] }));
const get = (label: string): RenderedObject[] => rendered.get(label) ?? [];

for (const [label, options, expected] of VALUE_SETS) {
  t.test(`with ${label}, every object validates against its schema, sits in its namespace and carries the chart labels`, { skip }, async (t) => {
    const expectations: Expectations = { release: options.release ?? 'virtrigaud', namespace: options.namespace ?? 'virtrigaud-system', ...expected };
    for (const object of get(label)) {
      t.same(objectIssues(object, expectations), [], `${object['kind']} ${object['metadata']?.['name']}`);
    }
  });
}

t.test('the hook token cannot be turned off: hooks.auth.enabled is refused at render time', { skip }, async (t) => {
  for (const value of ['false', 'true']) {
    t.match(renderError({ set: [`hooks.auth.enabled=${value}`] }), 'hooks.auth.enabled is gone: the hook server always requires the bearer token');
  }
  const objects = get('default values');
  t.ok(ofKind(objects, 'Secret').some((s) => s['metadata']['name'] === 'virtrigaud-hook-token'));
  t.equal(envOf(objects)['HOOK_TOKEN_FILE'], '/var/run/virtrigaud/hook-token/token');
});

t.test('with TLS on, the hook server gets the certificate and key, and probes and Metacontroller use https', { skip }, async (t) => {
  const objects = get('TLS on');
  const pod = podOf(objects);
  const volume = (pod['spec']['volumes'] as Json[]).find((v) => v['secret']?.['secretName'] === 'hooks-tls');
  t.same(volume?.['secret']['items'], [
    { key: 'tls.crt', path: 'tls.crt' },
    { key: 'tls.key', path: 'tls.key' },
  ]);
  const mount = (container(objects)['volumeMounts'] as Json[]).find((m) => m['name'] === volume?.['name']);
  t.equal(mount?.['readOnly'], true);
  const env = envOf(objects);
  t.equal(env['TLS_CERT_FILE'], `${mount?.['mountPath']}/tls.crt`);
  t.equal(env['TLS_KEY_FILE'], `${mount?.['mountPath']}/tls.key`);
  t.equal(container(objects)['readinessProbe']['httpGet']['scheme'], 'HTTPS');
  t.equal(container(objects)['livenessProbe']['httpGet']['scheme'], 'HTTPS');
  for (const controller of ofKind(objects, 'CompositeController')) {
    for (const hook of Object.values(controller['spec']['hooks'] as Record<string, Json>)) t.equal(hook['webhook']['service']['protocol'], 'https');
  }
});

t.test('TLS without a certificate Secret is refused with a message naming the value', { skip }, async (t) => {
  t.match(renderError({ set: ['hooks.tls.enabled=true'] }), /hooks\.tls\.secretName is required when hooks\.tls\.enabled is true/);
});

t.test('metacontroller.install is refused: Metacontroller is a prerequisite, not a dependency', { skip }, async (t) => {
  t.match(renderError({ set: ['metacontroller.install=true'] }), /install it first/);
});

t.test('the seed\'s providers.{vsphere,libvirt,proxmox}.enabled flags render when false (their default), and the other providers values keep working', { skip }, async (t) => {
  const objects = get('the seed\'s install flags');
  const names = (list: RenderedObject[]) => list.map((o) => `${o['kind']}/${o['metadata']['name']}`).sort();
  t.same(names(objects), names(get('default values')), 'the same objects as the defaults');
  t.equal(envOf(objects)['RUNTIME_IMAGE'], 'registry.example/runtime:1');
  t.same(one(objects, 'NetworkPolicy', 'virtrigaud-provider-runtimes')['spec']['egress'][0]['to'], [{ ipBlock: { cidr: '192.0.2.0/24' } }]);
  t.notOk(ofKind(objects, 'Deployment').some((d) => d['metadata']['name'] !== 'virtrigaud-hooks'), 'no provider Deployment: Provider CRs get theirs from Metacontroller');
});

t.test('providers.*.enabled=true fails the render with one message: Provider CRs deploy provider runtimes, the chart never does', { skip }, async (t) => {
  const message = /this chart never deploys a provider itself, Provider CRs deploy provider runtimes\. Leave providers\.\*\.enabled false \(the default\) and create a Provider CR \(apiVersion infra\.virtrigaud\.io\/v1beta1, kind Provider, spec\.type /;
  for (const type of ['vsphere', 'libvirt', 'proxmox']) {
    const error = renderError({ set: [`providers.${type}.enabled=true`] });
    t.match(error, new RegExp(`providers\\.${type}\\.enabled=true is not supported: `), type);
    t.match(error, message, type);
    t.match(error, `spec.type ${type})`, type);
    t.equal(error.trim().split('\n').length, 1, `${type}: one message`);
    t.match(renderError({ args: ['--set-string', `providers.${type}.enabled=true`] }), message, `${type} as a string`);
  }
  const all = renderError({ set: ['providers.vsphere.enabled=true', 'providers.libvirt.enabled=true', 'providers.proxmox.enabled=true'] });
  t.match(all, /providers\.libvirt\.enabled=true, providers\.proxmox\.enabled=true, providers\.vsphere\.enabled=true are not supported: /);
  t.equal(all.match(/never deploys a provider itself/g)?.length, 1, 'one message for all three');
  t.ok(renderChart({ args: ['--set-string', 'providers.vsphere.enabled=false'] }).length > 0, '"false" as a string renders too');
});

t.test('with existing Secrets, the chart renders no Secret and mounts the given ones', { skip }, async (t) => {
  const objects = get('existing Secrets');
  t.same(ofKind(objects, 'Secret'), []);
  const secrets = (podOf(objects)['spec']['volumes'] as Json[]).filter((v) => v['secret']).map((v) => v['secret']['secretName']);
  t.same(secrets.sort(), ['mc-token', 'runtime-hmac']);
  t.notOk(podOf(objects)['metadata']['annotations'], 'no checksum of a secret the chart does not know');
  for (const controller of ofKind(objects, 'CompositeController')) t.notOk(controller['metadata']['annotations']);
});

t.test('the ServiceMonitor scrapes /metrics on the hook Service\'s port, over https with the TLS CA', { skip }, async (t) => {
  const objects = get('ServiceMonitor on, with TLS and a metrics peer');
  const monitor = one(objects, 'ServiceMonitor', 'virtrigaud-hooks');
  const service = one(objects, 'Service');
  t.ok(selects(monitor['spec']['selector']['matchLabels'], service['metadata']['labels']), 'it selects the hook Service');
  t.same(monitor['spec']['namespaceSelector'], { matchNames: ['virtrigaud-system'] });
  t.equal(monitor['metadata']['labels']['release'], 'prom', 'with the labels Prometheus selects by');
  const [endpoint] = monitor['spec']['endpoints'] as Json[];
  t.ok((service['spec']['ports'] as Json[]).some((p) => p['name'] === endpoint?.['port']), 'the endpoint port names a Service port');
  t.match(endpoint, { path: '/metrics', scheme: 'https', tlsConfig: { serverName: 'virtrigaud-hooks.virtrigaud-system.svc', ca: { secret: { name: 'hooks-tls', key: 'ca.crt' } } } });
  t.notOk(ofKind(get('default values'), 'ServiceMonitor').length, 'no ServiceMonitor by default');
});

t.test('a second ServiceMonitor scrapes the provider runtimes\' /metrics, which metricsFrom may reach', { skip }, async (t) => {
  const objects = get('ServiceMonitor on, with TLS and a metrics peer');
  const monitor = one(objects, 'ServiceMonitor', 'virtrigaud-provider-runtimes');
  const runtimeLabels = { 'app.kubernetes.io/name': 'virtrigaud-provider', 'app.kubernetes.io/instance': 'x', 'app.kubernetes.io/component': 'provider-runtime', 'app.kubernetes.io/part-of': 'virtrigaud' };
  t.ok(selects(monitor['spec']['selector']['matchLabels'], runtimeLabels), 'it selects runtime Services (src/hooks/provider-runtime.ts runtimeLabels)');
  t.match(monitor['spec']['endpoints'], [{ port: 'http', path: '/metrics', scheme: 'http' }]);
  const policy = one(objects, 'NetworkPolicy', 'virtrigaud-provider-runtimes');
  t.same((policy['spec']['ingress'] as Json[])[1], { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }], ports: [{ port: 'http', protocol: 'TCP' }] });
});

t.test('networkPolicy.metricsFrom admits Prometheus to the hook server port; without it the notes warn', { skip }, async (t) => {
  const policy = one(get('ServiceMonitor on, with TLS and a metrics peer'), 'NetworkPolicy', 'virtrigaud-hooks');
  const rules = policy['spec']['ingress'] as Json[];
  t.equal(rules.length, 2);
  t.same(rules[1], { from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }], ports: [{ port: 'http', protocol: 'TCP' }] });
  const notes = runRenderer([...chartArgs({ set: ['metrics.serviceMonitor.enabled=true'] }), '--notes']);
  t.match(notes.stdout, /networkPolicy\.metricsFrom is empty/);
});

t.test('a custom release and namespace name everything after the release and point the webhooks there', { skip }, async (t) => {
  const objects = get('a custom release and namespace');
  t.equal(one(objects, 'Service')['metadata']['name'], 'lab-virtrigaud-hooks');
  t.equal(one(objects, 'Deployment')['metadata']['name'], 'lab-virtrigaud-hooks');
  for (const controller of ofKind(objects, 'CompositeController')) {
    t.equal(controller['spec']['hooks']['sync']['webhook']['service']['namespace'], 'vm-operators');
    t.equal(controller['spec']['hooks']['sync']['webhook']['authorization']['secretRef']['name'], 'lab-virtrigaud-hook-token');
  }
  const runtimePolicy = one(objects, 'NetworkPolicy', 'lab-virtrigaud-provider-runtimes');
  t.equal(runtimePolicy['metadata']['namespace'], 'vm-operators');
  t.same(runtimePolicy['spec']['ingress'][0]['from'][0]['namespaceSelector'], { matchLabels: { 'kubernetes.io/metadata.name': 'vm-operators' } });
});

t.test('nameOverride and fullnameOverride rename objects and labels consistently', { skip }, async (t) => {
  const objects = get('name overrides');
  t.equal(one(objects, 'Service')['metadata']['name'], 'vr-prod-hooks');
  t.ok(selects(one(objects, 'Service')['spec']['selector'], podOf(objects)['metadata']['labels']));
  t.equal(podOf(objects)['metadata']['labels']['app.kubernetes.io/name'], 'vr');
});

t.test('the PodDisruptionBudget keeps a hook server pod available', { skip }, async (t) => {
  const objects = get('a PodDisruptionBudget and two replicas');
  const budget = one(objects, 'PodDisruptionBudget');
  t.equal(budget['spec']['minAvailable'], 1);
  t.ok(selects(budget['spec']['selector']['matchLabels'], podOf(objects)['metadata']['labels']));
  t.equal(one(objects, 'Deployment')['spec']['replicas'], 2);
  t.same(ofKind(get('default values'), 'PodDisruptionBudget'), [], 'none by default');
});

t.test('a runtime NetworkPolicy goes to each Provider namespace once, with egress only to the CIDRs (on the given ports) and DNS', { skip }, async (t) => {
  const policies = ofKind(get('Providers in other namespaces with egress'), 'NetworkPolicy').filter((p) => p['metadata']['name'] === 'virtrigaud-provider-runtimes');
  t.same(policies.map((p) => p['metadata']['namespace']), ['infra', 'lab']);
  for (const policy of policies) {
    const [hypervisors, dns, ...rest] = policy['spec']['egress'] as Json[];
    t.same(rest, []);
    t.same(hypervisors, { to: [{ ipBlock: { cidr: '192.0.2.0/24' } }, { ipBlock: { cidr: '198.51.100.7/32' } }], ports: [{ port: 8006, protocol: 'TCP' }] });
    t.same(dns?.['ports'], [{ port: 53, protocol: 'UDP' }, { port: 53, protocol: 'TCP' }]);
    t.same(policy['spec']['ingress'][0]['from'][0]['namespaceSelector'], { matchLabels: { 'kubernetes.io/metadata.name': 'virtrigaud-system' } }, 'from the hook server in the release namespace');
  }
});

t.test('networkPolicy.enabled=false renders no NetworkPolicy', { skip }, async (t) => {
  t.same(ofKind(get('NetworkPolicies off'), 'NetworkPolicy'), []);
});

t.test('Metacontroller\'s namespace and pod labels from values are the hook server\'s only ingress peer', { skip }, async (t) => {
  const objects = renderChart({ set: ['metacontroller.namespace=mc', 'metacontroller.podLabels.app\\.kubernetes\\.io/name=metacontroller-helm'] });
  const [peer] = one(objects, 'NetworkPolicy', 'virtrigaud-hooks')['spec']['ingress'][0]['from'] as Json[];
  t.same(peer, { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'mc' } }, podSelector: { matchLabels: { 'app.kubernetes.io/name': 'metacontroller-helm' } } });
});

t.test('common labels reach every object; pod labels and annotations reach the pods; extra env is appended', { skip }, async (t) => {
  const objects = get('common labels, pod labels, annotations and extra env');
  t.ok(ofKind(objects, 'CustomResourceDefinition').length > 0, 'the CRDs are among them');
  for (const object of objects) t.equal(object['metadata']['labels']['team'], 'vm', `${object['kind']} ${object['metadata']['name']}`);
  const pod = podOf(objects);
  t.equal(pod['metadata']['labels']['tier'], 'control');
  t.equal(pod['metadata']['annotations']['example.com/owner'], 'ops');
  t.match(pod['metadata']['annotations'], { 'checksum/hook-token': /^[0-9a-f]{64}$/ }, 'user annotations do not replace the checksums');
  t.equal(envOf(objects)['PVE_DEBUG'], 'false');
  t.equal(envOf(objects)['PORT'], '8080');
});

t.test('the image is repository:tag, the app version by default, and a digest wins over the tag', { skip }, async (t) => {
  t.equal(container(renderChart({ set: ['image.tag=0.2.0-rc.1'] }))['image'], 'ghcr.io/virtrigaud/virtrigaud-ts:0.2.0-rc.1');
  const digest = `sha256:${createHash('sha256').update('x').digest('hex')}`;
  const objects = renderChart({ set: ['image.tag=ignored', `image.digest=${digest}`, 'image.repository=registry.example/vr'] });
  t.equal(container(objects)['image'], `registry.example/vr@${digest}`);
  t.equal(envOf(objects)['RUNTIME_IMAGE'], `registry.example/vr@${digest}`, 'runtimes follow the image');
  t.equal(envOf(renderChart({ set: ['providers.runtimeImage=registry.example/runtime:1'] }))['RUNTIME_IMAGE'], 'registry.example/runtime:1');
});

/** Every string in src/, to find where an environment variable is read. */
function sourceText(dir: string): string {
  return readdirSync(dir)
    .map((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? sourceText(path) : name.endsWith('.ts') ? readFileSync(path, 'utf8') : '';
    })
    .join('\n');
}

const chartEnv = skip ? [] : Object.keys(envOf(get('TLS on')));
t.test('the hook server reads every environment variable the chart sets (src/main.ts)', { skip }, async (t) => {
  const source = sourceText(join(ROOT, 'src'));
  const unread = chartEnv.filter((name) => !source.includes(`'${name}'`) && !source.includes(`"${name}"`));
  t.same(unread, [], 'each name is read in src/ (or rename it in templates/deployment.yaml)');
  t.ok(chartEnv.includes('HOOK_TOKEN_FILE') && chartEnv.includes('TLS_CERT_FILE'), 'the TLS render sets the token and TLS variables');
});
