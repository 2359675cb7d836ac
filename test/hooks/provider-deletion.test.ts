// A Provider being deleted waits for what still needs it, keeping its runtime and naming its pods.
import t from 'tap';
import { customizeProvider, dependents, runtimeEndpoints } from '../../src/hooks/provider-deletion.js';
import { providerTarget } from '../../src/hooks/virtualmachine/resolve.js';
import type { ProviderObject } from '../../src/contracts/crds/provider.js';
import { providerRuntimeToken } from '../../src/contracts/provider-token.js';
import { ProviderRegistry } from '../../src/hypervisors/registry.js';
import { buildProviderRuntime, ProviderRuntimeMetrics } from '../../src/hypervisors/remote/index.js';
import { SimulatedHypervisor, SimulatorDriver } from '../../src/hypervisors/simulator/index.js';
import { byType, hookBody, object } from '../helpers/hook-bodies.js';
import { testServer } from '../helpers/server.js';

type Json = Record<string, any>;
const RUNTIME = { defaultImage: 'ghcr.io/example/virtrigaud:0.1.0', tokenSecret: 'master-secret-for-tests' };

function provider(extra: Json = {}, deleting = true): ProviderObject {
  const base = object('Provider', 'pve', { spec: { type: 'proxmox', endpoint: 'https://pve:8006', ...extra } });
  if (deleting) base['metadata']['deletionTimestamp'] = '2026-01-01T00:00:00Z';
  return base as ProviderObject;
}

const vm = (name: string, namespace = 'default', providerRef: Json = { name: 'pve' }) => ({
  ...object('VirtualMachine', name, { spec: { providerRef, classRef: { name: 'c' }, imageRef: { name: 'i' } } }),
  metadata: { name, namespace, uid: `uid-${name}` },
});
const pod = (ip: string, phase = 'Running', instance = 'pve') => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: `runtime-${ip}`, namespace: 'default', labels: { 'app.kubernetes.io/instance': instance, 'app.kubernetes.io/component': 'provider-runtime' } },
  status: { podIP: ip, phase },
});

t.test('only a Provider being deleted asks for VMs, snapshots and its runtime pods', async (t) => {
  t.same(
    customizeProvider(provider({}, false)).relatedResources.map((rule) => `${rule.resource}@${rule.namespace ?? '*'}`),
    ['vmmigrations@default'],
    'a steady Provider sync costs nothing per VM: only the VMMigrations of its namespace (their PVCs go into its runtime)',
  );
  const rules = customizeProvider(provider({ allowedNamespaces: ['team-a'] })).relatedResources;
  t.same(rules.map((rule) => `${rule.resource}@${rule.namespace ?? '*'}`), [
    'virtualmachines@default', 'virtualmachines@team-a', 'vmsnapshots@default', 'vmsnapshots@team-a', 'vmmigrations@default', 'pods@default',
  ]);
  const everywhere = customizeProvider(provider({ allowedNamespaces: ['*'] })).relatedResources;
  t.ok(everywhere.filter((rule) => rule.resource !== 'pods' && rule.resource !== 'vmmigrations').every((rule) => rule.namespace === undefined), '"*" admits every namespace');
});

t.test('dependents are the VMs naming this Provider and the snapshots taken through it', async (t) => {
  const related = byType([
    vm('web'),
    vm('db', 'team-a', { name: 'pve', namespace: 'default' }),
    vm('other', 'default', { name: 'vsphere' }),
    vm('elsewhere', 'team-a'),
    { ...object('VMSnapshot', 'nightly', { spec: { vmRef: { name: 'web' } }, status: { vm: { name: 'web', uid: 'u', providerID: '100', provider: { namespace: 'default', name: 'pve' } } } }) },
    object('VMSnapshot', 'untaken', { spec: { vmRef: { name: 'web' } } }),
  ]);
  t.same(dependents(provider(), related), { vms: ['default/web', 'team-a/db'], snapshots: ['default/nightly'] });
});

t.test('runtime pods that still run are named by address; others are not', async (t) => {
  const related = byType([pod('10.1.0.7'), pod('fd00::7'), pod('10.1.0.8', 'Succeeded'), pod('10.1.0.9', 'Running', 'other')]);
  t.same(runtimeEndpoints(provider(), related, 9090), ['10.1.0.7:9090', '[fd00::7]:9090']);
});

t.test('while it waits, a Remote Provider keeps its runtime and publishes the pods; VMs then reach a pod, not the Service', async (t) => {
  const { app } = testServer({ runtime: RUNTIME });
  t.teardown(() => app.close());
  const parent = provider({ runtime: { mode: 'Remote' } });
  const response = await app.inject({ method: 'POST', url: '/hooks/provider/finalize', payload: hookBody(parent, [vm('web'), pod('10.1.0.7')], [], true) });
  t.equal(response.statusCode, 200, response.body);
  const json = response.json() as Json;
  t.equal(json['finalized'], false);
  t.same(json['children'].map((child: Json) => child['kind']).sort(), ['Deployment', 'Secret', 'Service', 'ServiceAccount'], 'the runtime is kept');
  t.same(json['status']['runtimeEndpoints'], ['10.1.0.7:9090']);
  t.match(json['status']['conditions'][0], { reason: 'WaitingForDependents', message: 'deletion waits for 1 VirtualMachine (default/web) that still need this Provider to delete what they hold on the hypervisor' });

  const done = await app.inject({ method: 'POST', url: '/hooks/provider/finalize', payload: hookBody(parent, [pod('10.1.0.7')], [], true) });
  t.match(done.json(), { finalized: true, children: [] });

  t.same(providerTarget({ ...parent, status: json['status'] } as ProviderObject).endpoints, ['10.1.0.7:9090']);
  t.equal(providerTarget({ ...parent, metadata: { ...parent.metadata, deletionTimestamp: undefined }, status: json['status'] } as ProviderObject).endpoints, undefined, 'only while deleting');

  // A runtime on loopback plays the pod; the Service name does not resolve, as in a deleted namespace.
  const target = providerTarget(parent);
  const runtime = buildProviderRuntime({
    driver: new SimulatorDriver(new SimulatedHypervisor()),
    token: providerRuntimeToken(RUNTIME.tokenSecret, target),
    logger: false,
    metrics: new ProviderRuntimeMetrics({ processMetrics: false }),
  });
  t.teardown(() => runtime.close());
  const url = new URL(await runtime.listen({ host: '127.0.0.1', port: 0 }));
  const registry = ProviderRegistry.withSimulators({ enabled: false }, { tokenSecret: RUNTIME.tokenSecret, url: () => 'http://service.invalid:1' });
  t.teardown(() => registry.close());
  const driver = await registry.driverFor({ ...target, endpoints: [url.host] });
  t.equal(driver.type, 'simulator', 'reached through the pod address');
});
