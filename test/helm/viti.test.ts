// The Viti Proxmox Operator's API in the chart: off by default; viti.enabled renders its CRDs and
// controllers and tells the hook server where cluster runtimes run. The seed chart's top-level
// parameters (replicaCount, resources, nodeSelector, tolerations, affinity) take hooks.*'s place.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { SKIP_HELM, ofKind, one, renderChart, type Json } from './render.js';

const skip = SKIP_HELM;
const VITI_CRDS = ['machines.vitistack.io', 'proxmoxclusters.vitistack.io', 'proxmoxnodes.vitistack.io'];
const VITI_CONTROLLERS = ['virtrigaud-machine', 'virtrigaud-proxmoxcluster', 'virtrigaud-proxmoxnode'];

const names = (objects: Json[]) => objects.map((object) => String(object['metadata']['name']));
const envOf = (deployment: Json): Record<string, string> =>
  Object.fromEntries(((deployment['spec']['template']['spec']['containers'][0]['env'] ?? []) as Json[]).map((e) => [e['name'], e['value']]));

t.test('by default the Viti API is not installed', { skip }, async (t) => {
  const objects = renderChart({});
  for (const crd of VITI_CRDS) t.notOk(names(ofKind(objects, 'CustomResourceDefinition')).includes(crd), crd);
  for (const controller of VITI_CONTROLLERS) t.notOk(names(ofKind(objects, 'CompositeController')).includes(controller), controller);
  t.notOk('VITI_NAMESPACE' in envOf(one(objects, 'Deployment')));
});

t.test('viti.enabled installs its three CRDs and controllers, and the hook server learns its namespace, interval and default cluster', { skip }, async (t) => {
  const objects = renderChart({ namespace: 'pve-operator', set: ['viti.enabled=true', 'viti.defaultCluster=pve-prod', 'viti.reconcileInterval=45s'] });
  for (const crd of VITI_CRDS) t.ok(names(ofKind(objects, 'CustomResourceDefinition')).includes(crd), crd);
  const controllers = ofKind(objects, 'CompositeController');
  for (const name of VITI_CONTROLLERS) {
    const controller = controllers.find((candidate) => candidate['metadata']['name'] === name);
    t.ok(controller, name);
    t.equal(controller?.['spec']['hooks']['sync']['webhook']['authorization']['type'], 'Bearer', `${name} sends the hook token`);
  }
  t.match(envOf(one(objects, 'Deployment')), { VITI_NAMESPACE: 'pve-operator', PROXMOX_DEFAULT_CLUSTER: 'pve-prod', RECONCILE_INTERVAL: '45s' });
});

t.test('the seed chart\'s top-level parameters replace the hook server\'s', { skip }, async (t) => {
  // The seed's table, as a values file (the renderer's --set takes no list indexes).
  const dir = mkdtempSync(join(tmpdir(), 'viti-values-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const values = join(dir, 'values.yaml');
  writeFileSync(
    values,
    [
      'replicaCount: 3',
      'resources: {limits: {cpu: 200m, memory: 256Mi}}',
      'nodeSelector: {disk: ssd}',
      'tolerations: [{key: dedicated, operator: Exists}]',
      'affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: zone, operator: Exists}]}]}}}',
    ].join('\n'),
  );
  const deployment = one(renderChart({ args: ['-f', values] }), 'Deployment');
  const pod = deployment['spec']['template']['spec'];
  t.equal(deployment['spec']['replicas'], 3);
  t.same(pod['containers'][0]['resources'], { limits: { cpu: '200m', memory: '256Mi' } });
  t.same(pod['nodeSelector'], { disk: 'ssd' });
  t.same(pod['tolerations'], [{ key: 'dedicated', operator: 'Exists' }]);
  t.ok(pod['affinity']['nodeAffinity'], 'affinity');
  const defaults = one(renderChart({}), 'Deployment');
  t.equal(defaults['spec']['replicas'], 1, 'unset: hooks.replicaCount');
  t.same(defaults['spec']['template']['spec']['containers'][0]['resources'], { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } });
});

t.test('with viti.enabled, the release namespace (where ProxmoxCluster runtimes run) gets the runtime NetworkPolicy and is scraped, whatever providers.namespaces says', { skip }, async (t) => {
  const objects = renderChart({ namespace: 'ops', set: ['viti.enabled=true', 'providers.namespaces={team-a}', 'metrics.serviceMonitor.enabled=true'] });
  const policies = ofKind(objects, 'NetworkPolicy').filter((policy) => String(policy['metadata']['name']).endsWith('-provider-runtimes'));
  t.same(policies.map((policy) => policy['metadata']['namespace']).sort(), ['ops', 'team-a']);
  const monitor = ofKind(objects, 'ServiceMonitor').find((candidate) => String(candidate['metadata']['name']).endsWith('-provider-runtimes'));
  t.same([...(monitor?.['spec']['namespaceSelector']['matchNames'] as string[])].sort(), ['ops', 'team-a']);
});
