// Related and child objects are checked against their kinds' contracts before any hook reads them:
// an invalid related object is a condition naming it and the field, an invalid child a short 422,
// and nothing unchecked is ever echoed back.
import t from 'tap';
import type { FastifyInstance } from 'fastify';
import { exampleBody } from '../helpers/bodies.js';
import { byType, hookBody as body, object, VM_SPEC as vmSpec } from '../helpers/hook-bodies.js';
import { testServer } from '../helpers/server.js';

type Json = Record<string, any>;
const RUNTIME = { defaultImage: 'ghcr.io/example/virtrigaud:0.1.0', tokenSecret: 'master-secret-for-tests' };

async function post(app: FastifyInstance, url: string, payload: Json) {
  const started = Date.now();
  const response = await app.inject({ method: 'POST', url, payload });
  return { status: response.statusCode, body: response.body, ms: Date.now() - started, json: () => response.json() as Json };
}

const ready = (json: Json) => json['status']['conditions'].find((condition: Json) => condition.type === 'Ready');
const snapshot = object('VMSnapshot', 'snap', { spec: { vmRef: { name: 'web' } } });
const clone = object('VMClone', 'copy', { spec: { sourceVMRef: { name: 'web' }, target: { name: 'web-copy' } } });

t.test('a VMSnapshot whose VirtualMachine has no spec waits with a condition naming it, not a 500', async (t) => {
  const { app, world } = testServer();
  t.teardown(() => app.close());
  const vm = object('VirtualMachine', 'web', { status: { providerID: '100' } });
  const response = await post(app, '/hooks/vmsnapshot/sync', body(snapshot, [vm]));
  t.equal(response.status, 200, response.body);
  t.match(ready(response.json()), { status: 'False', reason: 'VMInvalid', message: 'VirtualMachine default/web is invalid: spec is required' });
  const noProvider = object('VirtualMachine', 'web', { spec: { classRef: { name: 'small' } } });
  const second = await post(app, '/hooks/vmsnapshot/sync', body(snapshot, [noProvider]));
  t.match(ready(second.json()), { reason: 'VMInvalid', message: 'VirtualMachine default/web is invalid: spec.providerRef is required' });
  const finalize = await post(app, '/hooks/vmsnapshot/finalize', body({ ...snapshot, metadata: { ...snapshot['metadata'], deletionTimestamp: '2026-01-01T00:00:00Z' } }, [vm], [], true));
  t.equal(finalize.status, 200);
  t.equal(finalize.json()['finalized'], true, 'nothing was ever taken: nothing to delete');
  t.equal(world.listVMs().length, 0);
});

t.test('a VMClone whose source has no spec says so and makes no child', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const response = await post(app, '/hooks/vmclone/sync', body(clone, [object('VirtualMachine', 'web')]));
  t.equal(response.status, 200, response.body);
  const json = response.json();
  t.same(json['children'], []);
  t.match(ready(json), { status: 'False', reason: 'SourceInvalid', message: 'VirtualMachine default/web is invalid: spec is required' });
  t.equal(json['status']['phase'], 'Pending');
});

t.test('a VMClone child that does not fit the VirtualMachine contract is a short 422, never echoed', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const source = object('VirtualMachine', 'web', { spec: vmSpec });
  const cases: [string, unknown][] = [
    ['a string spec', 'abcdefgh'],
    ['a 1 MiB string', { ...vmSpec, userData: { cloudInit: { inline: 'x'.repeat(1024 * 1024) } } }],
    ['a huge array', { ...vmSpec, networks: Array.from({ length: 50_000 }, (_, index) => ({ name: `n${index}` })) }],
    ['an unknown field', { ...vmSpec, extra: 'y'.repeat(1000) }],
  ];
  for (const [what, spec] of cases) {
    const child = object('VirtualMachine', 'web-copy', { spec });
    const response = await post(app, '/hooks/vmclone/sync', body(clone, [source], [child]));
    t.equal(response.status, 422, what);
    t.match(response.body, /^child VirtualMachine default\/web-copy is invalid: /, what);
    t.ok(response.body.length < 400, `${what}: ${response.body.length} bytes`);
  }
  const child = object('VirtualMachine', 'web-copy', { spec: { ...vmSpec, powerState: 'Off' } });
  const valid = await post(app, '/hooks/vmclone/sync', body(clone, [source], [child]));
  t.equal(valid.status, 200);
  t.same(valid.json()['children'][0]['spec'], { ...vmSpec, powerState: 'Off' }, 'a valid child is kept as it is');
});

t.test('condition messages stay bounded whatever a related object says', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const source = object('VirtualMachine', 'web', { spec: vmSpec });
  const conditions = [{ type: 'Ready', status: 'False', reason: 'Creating', message: 'm'.repeat(32_000), lastTransitionTime: '2026-01-01T00:00:00Z' }];
  const child = object('VirtualMachine', 'web-copy', { spec: vmSpec, status: { conditions } });
  const response = await post(app, '/hooks/vmclone/sync', body(clone, [source], [child]));
  t.equal(response.status, 200);
  t.ok(ready(response.json()).message.length <= 2048);
  t.ok(response.body.length < 4096, `${response.body.length} bytes`);
});

t.test('a VirtualMachine\'s previous status is not echoed beyond its schema', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const request = exampleBody('virtualmachine-sync');
  request.parent.status = {
    providerID: 'p'.repeat(100_000),
    hardware: { cpus: 2, memory: 'x'.repeat(1024 * 1024), disks: [], nics: [], features: [] },
    ips: Array.from({ length: 100_000 }, () => '10.0.0.1'),
    consoleURL: 'u'.repeat(100_000),
    restartRequest: 'r'.repeat(100_000),
  };
  // The simulator is made unreachable so that the answer is built from what the status knew.
  const server = testServer();
  t.teardown(() => server.app.close());
  server.world.injectFault('findByIdentity', { kind: 'unreachable', times: 5 });
  const response = await post(server.app, '/hooks/virtualmachine/sync', request);
  t.equal(response.status, 200);
  t.ok(response.body.length < 8192, `${response.body.length} bytes`);
  const own = await post(app, '/hooks/virtualmachine/sync', request);
  t.ok(own.body.length < 8192, `${own.body.length} bytes when observed`);
});

t.test('a VMSnapshot\'s previous status is not echoed beyond its schema', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const parent = { ...snapshot, status: { snapshotID: 's'.repeat(1024 * 1024), size: 'z'.repeat(100_000), creationTime: 'not a time' } };
  const response = await post(app, '/hooks/vmsnapshot/sync', body(parent, []));
  t.equal(response.status, 200);
  t.ok(response.body.length < 4096, `${response.body.length} bytes`);
});

t.test('a VMSnapshotSchedule describes its children from its own spec, never from theirs', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const schedule = object('VMSnapshotSchedule', 'nightly', { spec: { vmRef: { name: 'web' }, schedule: '0 2 * * *' } });
  const vm = object('VirtualMachine', 'web', { spec: vmSpec });
  const child = object('VMSnapshot', 'nightly-202601010200', { spec: 'q'.repeat(1024 * 1024) });
  const response = await post(app, '/hooks/vmsnapshotschedule/sync', body(schedule, [vm], [child]));
  t.equal(response.status, 200);
  t.ok(response.body.length < 8192, `${response.body.length} bytes`);
  t.same(response.json()['children'].find((c: Json) => c.metadata.name === 'nightly-202601010200')['spec'], {
    vmRef: { name: 'web' },
    description: 'scheduled by VMSnapshotSchedule nightly',
  });
});

t.test('a runtime Deployment child with a malformed status is a 422, not a crash', async (t) => {
  const { app } = testServer({ runtime: RUNTIME });
  t.teardown(() => app.close());
  const request = exampleBody('provider-sync');
  request.parent.spec = { type: 'proxmox', endpoint: 'https://pve.example.com:8006', runtime: { mode: 'Remote' } };
  const deployment = object('Deployment', 'virtrigaud-provider-sim', { status: { availableReplicas: 1, conditions: 'not a list' } }, 'apps/v1');
  request['children'] = byType([deployment]);
  const response = await post(app, '/hooks/provider/sync', request);
  t.equal(response.status, 422, response.body);
  t.equal(response.body, 'child Deployment default/virtrigaud-provider-sim is invalid: status.conditions: expected array');
});
