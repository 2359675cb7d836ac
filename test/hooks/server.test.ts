import t, { type Test } from 'tap';
import { readdirSync } from 'node:fs';
import { Value } from '@sinclair/typebox/value';
import { Type } from '@sinclair/typebox';
import { VirtualMachineStatus } from '../../src/contracts/crds/virtualmachine.js';
import { ProviderStatus } from '../../src/contracts/crds/provider.js';
import { CustomizeResponse, KubeObject, SyncRequest, SyncResponse } from '../../src/contracts/metacontroller.js';
import { capturedBody, exampleBody, secret } from '../helpers/bodies.js';
import { testServer } from '../helpers/server.js';

type Json = Record<string, any>;

async function post(app: ReturnType<typeof testServer>['app'], url: string, payload: unknown) {
  const response = await app.inject({ method: 'POST', url, payload: payload as object });
  return { status: response.statusCode, body: response.body, json: () => response.json() as Json };
}

function syncResponseIsComplete(t: Test, json: Json) {
  t.ok(Value.Check(SyncResponse, json), `strict v2 response shape: ${[...Value.Errors(SyncResponse, json)].map((e) => e.path + ' ' + e.message).join('; ')}`);
  t.ok(Value.Check(VirtualMachineStatus, json['status']), `status fits the CRD: ${[...Value.Errors(VirtualMachineStatus, json['status'])].map((e) => e.path + ' ' + e.message).join('; ')}`);
  t.same(json['children'], []);
}

t.test('health, readiness and metrics answer', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  t.equal((await app.inject('/healthz')).statusCode, 200);
  t.equal((await app.inject('/readyz')).statusCode, 200);
  await post(app, '/hooks/virtualmachine/sync', exampleBody('virtualmachine-sync'));
  const metrics = await app.inject('/metrics');
  t.equal(metrics.statusCode, 200);
  for (const name of [
    'virtrigaud_hook_duration_seconds',
    'virtrigaud_driver_calls_total',
    'virtrigaud_tasks_in_flight',
    'virtrigaud_vm_create_to_ready_seconds',
  ]) {
    t.match(metrics.body, name, `exposes ${name}`);
  }
  t.match(metrics.body, /virtrigaud_driver_calls_total\{provider="default\/sim",operation="create",outcome="ok"\} 1/);
});

t.test('malformed JSON is a 400 with one plain line', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const response = await app.inject({
    method: 'POST',
    url: '/hooks/virtualmachine/sync',
    headers: { 'content-type': 'application/json' },
    payload: '{"parent": ',
  });
  t.equal(response.statusCode, 400);
  t.notMatch(response.body, '\n');
  t.ok(response.body.length > 0 && response.body.length <= 500);
});

t.test('a body without parent is a 400 naming what is missing', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const response = await post(app, '/hooks/virtualmachine/sync', { controller: {}, children: {} });
  t.equal(response.status, 400);
  t.match(response.body, 'parent');
});

t.test('a spec the schema refuses is a 422 naming the field', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const body = exampleBody('virtualmachine-sync');
  body.parent.spec['powerState'] = 'Paused';
  const response = await post(app, '/hooks/virtualmachine/sync', body);
  t.equal(response.status, 422);
  t.match(response.body, 'powerState');
  t.notMatch(response.body, '\n');
});

t.test('an unknown spec field is refused, not silently ignored', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const body = exampleBody('virtualmachine-sync');
  body.parent.spec['cpuLimit'] = 3;
  const response = await post(app, '/hooks/virtualmachine/sync', body);
  t.equal(response.status, 422);
});

t.test('customize asks for the Provider, VMClass, VMImage, attachments and user-data Secret by name', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const body = exampleBody('virtualmachine-customize');
  body.parent.spec['networks'] = [{ name: 'lan', networkRef: { name: 'app-net' } }, { name: 'dmz', networkRef: { name: 'app-net' } }];
  body.parent.spec['userData'] = { cloudInit: { secretRef: { name: 'web-cloudinit' } } };
  const response = await post(app, '/hooks/virtualmachine/customize', body);
  t.equal(response.status, 200);
  const json = response.json();
  t.ok(Value.Check(CustomizeResponse, json));
  t.same(json['relatedResources'], [
    { apiVersion: 'infra.virtrigaud.io/v1beta1', resource: 'providers', namespace: 'default', names: ['sim'] },
    { apiVersion: 'infra.virtrigaud.io/v1beta1', resource: 'vmclasses', namespace: 'default', names: ['small'] },
    { apiVersion: 'infra.virtrigaud.io/v1beta1', resource: 'vmimages', namespace: 'default', names: ['ubuntu-22'] },
    { apiVersion: 'infra.virtrigaud.io/v1beta1', resource: 'vmnetworkattachments', namespace: 'default', names: ['app-net'] },
    { apiVersion: 'v1', resource: 'secrets', namespace: 'default', names: ['web-cloudinit'] },
    // A VMMigration may hold the VM off (source.powerOffBeforeMigration).
    { apiVersion: 'infra.virtrigaud.io/v1beta1', resource: 'vmmigrations', namespace: 'default', labelSelector: {} },
  ]);
});

t.test('the README example sync starts creating the VM and answers a complete body', async (t) => {
  const { app, world } = testServer();
  t.teardown(() => app.close());
  const response = await post(app, '/hooks/virtualmachine/sync', exampleBody('virtualmachine-sync'));
  t.equal(response.status, 200);
  const json = response.json();
  syncResponseIsComplete(t, json);
  t.equal(json['status']['phase'], 'Provisioning');
  t.equal(json['status']['task']['operation'], 'Create');
  t.ok(json['status']['providerID']);
  t.ok(json['resyncAfterSeconds'] > 0);
  t.equal(world.listVMs().length, 1);
});

t.test('map keys are never parsed: bare-name keys (Metacontroller before 4.15) work the same', async (t) => {
  const { app, world } = testServer();
  t.teardown(() => app.close());
  const body = exampleBody('virtualmachine-sync');
  body.related = Object.fromEntries(
    Object.entries(body.related).map(([type, objects]) => [
      type,
      Object.fromEntries(Object.values(objects).map((object) => [String((object['metadata'] as Json)['name']), object])),
    ]),
  );
  const response = await post(app, '/hooks/virtualmachine/sync', body);
  t.equal(response.status, 200);
  t.equal(response.json()['status']['task']['operation'], 'Create');
  t.equal(world.listVMs().length, 1);
});

t.test('related objects of other namespaces or kinds are not mistaken for ours', async (t) => {
  const { app, world } = testServer();
  t.teardown(() => app.close());
  const body = exampleBody('virtualmachine-sync');
  const provider = body.related['Provider.infra.virtrigaud.io/v1beta1']!['default/sim']!;
  body.related['Provider.infra.virtrigaud.io/v1beta1'] = {
    'other/sim': { ...provider, metadata: { ...(provider['metadata'] as Json), namespace: 'other' } },
  };
  const response = await post(app, '/hooks/virtualmachine/sync', body);
  const json = response.json();
  t.equal(response.status, 200);
  syncResponseIsComplete(t, json);
  const ready = json['status']['conditions'].find((c: Json) => c.type === 'Ready');
  t.equal(ready.reason, 'ProviderNotFound');
  t.equal(world.listVMs().length, 0, 'no hypervisor VM without a resolved provider');
});

t.test('the finalize hook refuses a call that is not finalizing', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const body = exampleBody('virtualmachine-finalize');
  body['finalizing'] = false;
  const response = await post(app, '/hooks/virtualmachine/finalize', body);
  t.equal(response.status, 400);
});

t.test('finalize of a VM that never existed completes at once', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const response = await post(app, '/hooks/virtualmachine/finalize', exampleBody('virtualmachine-finalize'));
  t.equal(response.status, 200);
  const json = response.json();
  syncResponseIsComplete(t, json);
  t.equal(json['finalized'], true);
  t.equal(json['status']['phase'], 'Deleting');
});

t.test('user-data from a Secret reaches the hypervisor but never the response or the logs', async (t) => {
  const { app, world, logs } = testServer();
  t.teardown(() => app.close());
  const body = exampleBody('virtualmachine-sync');
  body.parent.spec['userData'] = { cloudInit: { secretRef: { name: 'web-cloudinit' } } };
  body.related['Secret.v1'] = { 'default/web-cloudinit': secret('default', 'web-cloudinit', { userdata: '#cloud-config\npassword: SUPERSECRET-42\n' }) };
  const response = await post(app, '/hooks/virtualmachine/sync', body);
  t.equal(response.status, 200);
  t.notMatch(response.body, 'SUPERSECRET');
  t.notMatch(logs.join(''), 'SUPERSECRET');
  t.equal(world.listVMs().length, 1);
  t.notMatch(JSON.stringify(world.listVMs()), 'SUPERSECRET', 'describe never returns user-data');
});

t.test('a missing user-data Secret key is a condition, not a create', async (t) => {
  const { app, world } = testServer();
  t.teardown(() => app.close());
  const body = exampleBody('virtualmachine-sync');
  body.parent.spec['userData'] = { cloudInit: { secretRef: { name: 'web-cloudinit', key: 'user-data' } } };
  body.related['Secret.v1'] = { 'default/web-cloudinit': secret('default', 'web-cloudinit', { userdata: 'x' }) };
  const json = (await post(app, '/hooks/virtualmachine/sync', body)).json();
  const ready = json['status']['conditions'].find((c: Json) => c.type === 'Ready');
  t.equal(ready.reason, 'SecretKeyNotFound');
  t.notMatch(JSON.stringify(json), 'x"', 'no secret data echoed');
  t.equal(world.listVMs().length, 0);
});

t.test('an unreachable hypervisor is a 200 with a condition, and the VM is not forgotten', async (t) => {
  const { app, world } = testServer();
  t.teardown(() => app.close());
  const body = exampleBody('virtualmachine-sync');
  const first = (await post(app, '/hooks/virtualmachine/sync', body)).json();
  body.parent.status = first['status'];
  world.injectFault('describe', { kind: 'unreachable', message: 'dial tcp: no route to host' });
  const response = await post(app, '/hooks/virtualmachine/sync', body);
  t.equal(response.status, 200);
  const json = response.json();
  syncResponseIsComplete(t, json);
  t.equal(json['status']['providerID'], first['status']['providerID']);
  t.same(json['status']['task'], first['status']['task'], 'the task in flight is kept');
  t.equal(json['status']['powerState'], 'Unknown');
  const ready = json['status']['conditions'].find((c: Json) => c.type === 'Ready');
  t.equal(ready.reason, 'HypervisorUnreachable');
  t.match(ready.message, 'no route to host');
  t.ok(json['resyncAfterSeconds'] >= 5);
});

t.test('a hypervisor call that outlives the hook budget still gets an answer in time', async (t) => {
  const server = testServer({ budgetMs: 200 });
  t.teardown(() => server.app.close());
  server.world.injectFault('findByIdentity', { kind: 'timeout' });
  const started = Date.now();
  const response = await post(server.app, '/hooks/virtualmachine/sync', exampleBody('virtualmachine-sync'));
  t.ok(Date.now() - started < 5000, 'answered before the webhook timeout');
  t.equal(response.status, 200);
  const ready = response.json()['status']['conditions'].find((c: Json) => c.type === 'Ready');
  t.equal(ready.reason, 'HypervisorUnreachable');
  t.equal(server.world.listVMs().length, 0);
});

t.test('a steady sync answers byte-identical statuses', async (t) => {
  const { app, clock } = testServer({ simulator: { durations: { create: 0, powerOn: 0, boot: 0 } } });
  t.teardown(() => app.close());
  const body = exampleBody('virtualmachine-sync');
  let last = '';
  for (let i = 0; i < 6; i++) {
    const json = (await post(app, '/hooks/virtualmachine/sync', body)).json();
    body.parent.status = json['status'];
    last = JSON.stringify(json['status']);
    clock.advance(1000);
  }
  clock.advance(60_000);
  const again = (await post(app, '/hooks/virtualmachine/sync', body)).json();
  t.equal(JSON.stringify(again['status']), last);
  t.equal(again['status']['phase'], 'Running');
});

t.test('the Provider hook reports version, capabilities and hosts of the simulator', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const response = await post(app, '/hooks/provider/sync', exampleBody('provider-sync'));
  t.equal(response.status, 200);
  const json = response.json();
  t.ok(Value.Check(SyncResponse, json));
  t.ok(Value.Check(ProviderStatus, json['status']));
  t.match(json['status'], { version: /simulator/, conditions: [{ type: 'Ready', status: 'True' }] });
  t.ok(json['status']['capabilities'].includes('snapshots'));
  t.ok(json['status']['hosts'].length > 0);
});

t.test('a Provider whose driver is not in this server says so', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const body = exampleBody('provider-sync');
  body.parent.spec = { type: 'proxmox', endpoint: 'https://pve.example.com:8006', runtime: { mode: 'InProcess' } };
  const json = (await post(app, '/hooks/provider/sync', body)).json();
  t.match(json['status']['conditions'][0], { type: 'Ready', status: 'False', reason: 'ProviderUnavailable' });
  t.same(json['children'], []);
});

t.test('a Remote Provider needs the runtime token secret, and says so', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const body = exampleBody('provider-sync');
  body.parent.spec = { type: 'proxmox', endpoint: 'https://pve.example.com:8006', runtime: { mode: 'Remote' } };
  const json = (await post(app, '/hooks/provider/sync', body)).json();
  t.match(json['status']['conditions'][0], { type: 'Ready', status: 'False', reason: 'RuntimeNotConfigured' });
});

t.test('VMClass, VMImage and VMNetworkAttachment hooks publish Ready', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const controller = { metadata: { name: 'x' } };
  const object = (kind: string, spec: Json) => ({
    controller,
    parent: { apiVersion: 'infra.virtrigaud.io/v1beta1', kind, metadata: { name: 'a', namespace: 'default', generation: 3 }, spec },
    children: {},
    related: {},
    finalizing: false,
  });
  const cases: [string, string, Json, string][] = [
    ['/hooks/vmclass/sync', 'VMClass', { cpus: 2, memory: '4Gi' }, 'True'],
    ['/hooks/vmclass/sync', 'VMClass', { cpus: 2, memory: '1000k' }, 'False'],
    ['/hooks/vmimage/sync', 'VMImage', { source: 'ubuntu-22-template' }, 'True'],
    ['/hooks/vmimage/sync', 'VMImage', { source: 'a', url: { url: 'https://example.com/a.qcow2' } }, 'False'],
    ['/hooks/vmnetworkattachment/sync', 'VMNetworkAttachment', { bridge: 'vmbr0', vlan: 100 }, 'True'],
    ['/hooks/vmnetworkattachment/sync', 'VMNetworkAttachment', { bridge: 'vmbr0', network: 'lan' }, 'False'],
  ];
  for (const [url, kind, spec, ready] of cases) {
    const response = await post(app, url, object(kind, spec));
    t.equal(response.status, 200, `${kind} ${JSON.stringify(spec)}`);
    t.match(response.json(), { status: { observedGeneration: 3, conditions: [{ type: 'Ready', status: ready, observedGeneration: 3 }] }, children: [] });
  }
});

t.test('every captured Metacontroller v4.11.10 request fits the request envelope', async (t) => {
  const envelope = SyncRequest(KubeObject);
  const files = readdirSync(new URL('../fixtures/metacontroller/captured-v4.11.10/', import.meta.url)).filter((f) => f.endsWith('.request.json'));
  t.equal(files.length, 37);
  for (const file of files) {
    const body = capturedBody(file);
    t.ok(Value.Check(envelope, body), file);
  }
});

t.test('a captured v4.11.10 sync of a foreign API group is refused with a 400, not crashed on', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const response = await post(app, '/hooks/virtualmachine/sync', capturedBody('02-sync-web-1-create-first-no-children.request.json'));
  t.equal(response.status, 400);
  t.match(response.body, 'apiVersion');
});

t.test('a captured v4.11.10 body carrying our VirtualMachine syncs with its bare-name keys', async (t) => {
  const { app, world } = testServer();
  t.teardown(() => app.close());
  // The real request's envelope, metadata, managedFields and bare-name related keys, with our
  // group and a spec of ours in place of the capture's demo CRD.
  const body = JSON.parse(
    JSON.stringify(capturedBody('02-sync-web-1-create-first-no-children.request.json')).replaceAll('infra.example.io', 'infra.virtrigaud.io'),
  ) as Json;
  body['parent']['spec'] = { providerRef: { name: 'sim' }, classRef: { name: 'small' }, imageRef: { name: 'ubuntu-22' } };
  const example = exampleBody('virtualmachine-sync');
  const sim = body['related']['Provider.infra.virtrigaud.io/v1beta1']['sim'];
  sim['spec'] = { type: 'simulator' };
  sim['status'] = example.related['Provider.infra.virtrigaud.io/v1beta1']!['default/sim']!['status'];
  for (const kind of ['VMClass', 'VMImage']) {
    const [object] = Object.values(example.related[`${kind}.infra.virtrigaud.io/v1beta1`]!);
    body['related'][`${kind}.infra.virtrigaud.io/v1beta1`] = {
      [String((object!['metadata'] as Json)['name'])]: { ...object, metadata: { ...(object!['metadata'] as Json), namespace: 'team-a' } },
    };
  }
  const response = await post(app, '/hooks/virtualmachine/sync', body);
  t.equal(response.status, 200, response.body);
  syncResponseIsComplete(t, response.json());
  t.equal(world.listVMs().length, 1);
  t.equal(world.listVMs()[0]?.owner?.uid, body['parent']['metadata']['uid']);
});

t.test('every example body in examples/hooks fits its route schema', async (t) => {
  const envelope = Type.Object({ controller: Type.Object({}), parent: KubeObject });
  for (const name of ['virtualmachine-customize', 'virtualmachine-sync', 'virtualmachine-finalize', 'provider-sync']) {
    t.ok(Value.Check(envelope, exampleBody(name)), name);
  }
});

t.test('the status does not change while a task runs, so status writes do not cause a sync loop', async (t) => {
  const { app, clock } = testServer();
  t.teardown(() => app.close());
  const body = exampleBody('virtualmachine-sync');
  const first = (await post(app, '/hooks/virtualmachine/sync', body)).json();
  body.parent.status = first['status'];
  clock.advance(300);
  const second = (await post(app, '/hooks/virtualmachine/sync', body)).json();
  body.parent.status = second['status'];
  clock.advance(700);
  const third = (await post(app, '/hooks/virtualmachine/sync', body)).json();
  t.equal(second['status']['task']['operation'], 'Create', 'still creating');
  t.equal(JSON.stringify(third['status']), JSON.stringify(second['status']));
});
