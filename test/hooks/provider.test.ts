import t from 'tap';
import { Value } from '@sinclair/typebox/value';
import { SyncResponse } from '../../src/contracts/metacontroller.js';
import { providerRuntimeToken } from '../../src/contracts/provider-token.js';
import { exampleBody } from '../helpers/bodies.js';
import { testServer } from '../helpers/server.js';

type Json = Record<string, any>;
const RUNTIME = { defaultImage: 'ghcr.io/example/virtrigaud:0.1.0', tokenSecret: 'master-secret-for-tests' };

function remoteProvider(extra: Json = {}) {
  const body = exampleBody('provider-sync');
  body.parent.metadata['name'] = 'pve';
  body.parent.metadata['namespace'] = 'infra';
  body.parent.spec = {
    type: 'proxmox',
    endpoint: 'https://pve.example.com:8006',
    credentialSecretRef: { name: 'pve-credentials' },
    runtime: { mode: 'Remote', image: 'registry.example/virtrigaud:1.2.3', service: { port: 9443 }, env: [{ name: 'PVE_NODE_SELECTOR', value: 'pve-1,pve-2' }] },
    ...extra,
  };
  return body;
}

async function sync(app: ReturnType<typeof testServer>['app'], body: unknown): Promise<Json> {
  const response = await app.inject({ method: 'POST', url: '/hooks/provider/sync', payload: body as object });
  t.equal(response.statusCode, 200, response.body);
  return response.json() as Json;
}

t.test('a Remote Provider gets its runtime: ServiceAccount without API access, token Secret, Deployment and Service', async (t) => {
  const { app } = testServer({ runtime: RUNTIME });
  t.teardown(() => app.close());
  const body = remoteProvider();
  const json = await sync(app, body);
  t.ok(Value.Check(SyncResponse, json));
  const byKind = Object.fromEntries((json['children'] as Json[]).map((child) => [child['kind'], child]));
  t.same(Object.keys(byKind).sort(), ['Deployment', 'Secret', 'Service', 'ServiceAccount']);
  t.equal(byKind['ServiceAccount']['automountServiceAccountToken'], false);

  const token = Buffer.from(byKind['Secret']['data']['token'], 'base64').toString();
  t.equal(token, providerRuntimeToken(RUNTIME.tokenSecret, { namespace: 'infra', name: 'pve', uid: body.parent.metadata['uid'] as string }));

  const pod = byKind['Deployment']['spec']['template']['spec'];
  const container = pod['containers'][0];
  t.equal(container['image'], 'registry.example/virtrigaud:1.2.3', 'the image from spec.runtime.image');
  t.same(container['args'], ['provider']);
  t.equal(pod['automountServiceAccountToken'], false);
  t.match(container['securityContext'], { readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
  const env = Object.fromEntries((container['env'] as Json[]).map((entry) => [entry['name'], entry]));
  t.equal(env['PVE_ENDPOINT']['value'], 'https://pve.example.com:8006');
  t.equal(env['PVE_TOKEN_SECRET_FILE']['value'], '/var/run/virtrigaud/credentials/token_secret', 'credentials are files, re-read after a rotation');
  t.notOk(env['PVE_TOKEN_SECRET'], 'never an environment variable');
  const podSpec = byKind['Deployment']['spec']['template']['spec'];
  t.match(podSpec['volumes'], [{}, {}, { name: 'credentials', secret: { secretName: 'pve-credentials', optional: true } }]);
  t.match(podSpec['containers'][0]['volumeMounts'], [{}, {}, { name: 'credentials', mountPath: '/var/run/virtrigaud/credentials', readOnly: true }]);
  t.equal(env['PVE_NODE_SELECTOR']['value'], 'pve-1,pve-2', 'runtime.env is passed on');
  t.equal(env['PORT']['value'], '9443');
  t.equal(byKind['Service']['spec']['ports'][0]['port'], 9443);
  t.notMatch(JSON.stringify(json), 'master-secret-for-tests', 'the master secret never leaves the hook server');
  t.notMatch(JSON.stringify(byKind['Deployment']), token, 'the Deployment carries no token, only its checksum');
  t.match(byKind['Deployment']['spec']['template']['metadata']['annotations'], { 'virtrigaud.io/token-checksum': /^[0-9a-f]{16}$/ });

  t.match(json['status']['conditions'], [{ type: 'Ready', status: 'False', reason: 'RuntimeCreating' }]);
  t.ok(json['resyncAfterSeconds'] > 0);
});

t.test('a changed runtime image changes the Deployment, so Kubernetes rolls it out', async (t) => {
  const { app } = testServer({ runtime: RUNTIME });
  t.teardown(() => app.close());
  const first = await sync(app, remoteProvider());
  const second = await sync(app, remoteProvider({ runtime: { mode: 'Remote', image: 'registry.example/virtrigaud:1.2.4' } }));
  const image = (json: Json) => (json['children'] as Json[]).find((c) => c['kind'] === 'Deployment')?.['spec']['template']['spec']['containers'][0]['image'];
  t.not(image(first), image(second));
});

t.test('until its Deployment has an available pod, the runtime is not probed', async (t) => {
  const { app } = testServer({ runtime: RUNTIME });
  t.teardown(() => app.close());
  const body = remoteProvider();
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'virtrigaud-provider-pve', namespace: 'infra', generation: 1 },
    status: { observedGeneration: 1, availableReplicas: 0, conditions: [{ type: 'Available', status: 'False', message: 'Deployment does not have minimum availability.' }] },
  };
  body['children'] = { 'Deployment.apps/v1': { 'infra/virtrigaud-provider-pve': deployment } };
  const json = await sync(app, body);
  t.match(json['status']['conditions'], [{ type: 'Ready', status: 'False', reason: 'RuntimeStarting', message: 'Deployment does not have minimum availability.' }]);
});

t.test('hooks refuse a call without the bearer token, and change nothing', async (t) => {
  const { app, world } = testServer({ hookToken: 'hook-token-1' });
  t.teardown(() => app.close());
  const payload = exampleBody('virtualmachine-sync');
  const anonymous = await app.inject({ method: 'POST', url: '/hooks/virtualmachine/sync', payload });
  t.equal(anonymous.statusCode, 401);
  const wrong = await app.inject({ method: 'POST', url: '/hooks/virtualmachine/sync', payload, headers: { authorization: 'Bearer nope' } });
  t.equal(wrong.statusCode, 401);
  t.equal(world.callCount('create'), 0);
  t.equal((await app.inject('/healthz')).statusCode, 200, 'health needs no token');
  const right = await app.inject({ method: 'POST', url: '/hooks/virtualmachine/sync', payload, headers: { authorization: 'Bearer hook-token-1' } });
  t.equal(right.statusCode, 200);
  t.equal(world.callCount('create'), 1);
});

t.test('a VirtualMachine may use a Provider of another namespace only when it admits that namespace', async (t) => {
  const { app, world } = testServer();
  t.teardown(() => app.close());
  const body = exampleBody('virtualmachine-sync');
  body.parent.spec['providerRef'] = { name: 'sim', namespace: 'infra' };
  const provider = body.related['Provider.infra.virtrigaud.io/v1beta1']!['default/sim']!;
  (provider['metadata'] as Json)['namespace'] = 'infra';
  body.related['Provider.infra.virtrigaud.io/v1beta1'] = { 'infra/sim': provider };
  const refused = await app.inject({ method: 'POST', url: '/hooks/virtualmachine/sync', payload: body });
  t.match((refused.json() as Json)['status']['conditions'][0], { type: 'Ready', status: 'False', reason: 'ProviderNotAllowed' });
  t.equal(world.callCount('create'), 0, 'no hypervisor call');

  provider['spec'] = { ...(provider['spec'] as Json), allowedNamespaces: ['default'] };
  const admitted = await app.inject({ method: 'POST', url: '/hooks/virtualmachine/sync', payload: body });
  t.equal((admitted.json() as Json)['status']['task']['operation'], 'Create');
});

for (const [type, endpoint, endpointEnv, secrets] of [
  ['vsphere', 'https://vcenter.example.com:443', 'VSPHERE_ENDPOINT', { VSPHERE_USERNAME: 'username', VSPHERE_PASSWORD: 'password', VSPHERE_CA_BUNDLE: 'ca.crt' }],
  [
    'libvirt',
    'qemu+ssh://192.168.1.10/system',
    'LIBVIRT_URI',
    { LIBVIRT_USERNAME: 'username', LIBVIRT_PASSWORD: 'password', LIBVIRT_SSH_PRIVATE_KEY: 'ssh-privatekey', LIBVIRT_KNOWN_HOSTS: 'known_hosts' },
  ],
] as const) {
  t.test(`a ${type} Provider gets a runtime with its endpoint and the seed's credential keys`, async (t) => {
    const { app } = testServer({ runtime: RUNTIME });
    t.teardown(() => app.close());
    const json = await sync(app, remoteProvider({ type, endpoint, credentialSecretRef: { name: `${type}-creds` }, runtime: { mode: 'Remote' } }));
    const deployment = (json['children'] as Json[]).find((child) => child['kind'] === 'Deployment');
    const env = Object.fromEntries((deployment?.['spec']['template']['spec']['containers'][0]['env'] as Json[]).map((entry) => [entry['name'], entry]));
    t.equal(env['PROVIDER_TYPE']['value'], type);
    t.equal(env[endpointEnv]['value'], endpoint);
    for (const [variable, key] of Object.entries(secrets)) {
      t.equal(env[`${variable}_FILE`]['value'], `/var/run/virtrigaud/credentials/${key}`, variable);
    }
  });
}
