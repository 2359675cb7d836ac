// The bearer token guards every route the router can match, whatever the request target looks
// like: tried over a real socket, because inject() normalizes what a hostile client would not.
import t from 'tap';
import type { FastifyInstance } from 'fastify';
import { DRIVER_ERROR_STATUS } from '../../src/contracts/remote.js';
import { buildProviderRuntime, ProviderRuntimeMetrics } from '../../src/hypervisors/remote/index.js';
import { SimulatedHypervisor, SimulatorDriver } from '../../src/hypervisors/simulator/index.js';
import { exampleBody } from '../helpers/bodies.js';
import { pathSpellings, postRaw, rawRequest, totalCalls } from '../helpers/raw-http.js';
import { testServer } from '../helpers/server.js';

const HOOK_TOKEN = 'hook-token-0123456789abcdef';
const RUNTIME_TOKEN = 'runtime-token-0123456789abcdef';

const HOOK_ROUTES = [
  '/hooks/virtualmachine/customize',
  '/hooks/virtualmachine/sync',
  '/hooks/virtualmachine/finalize',
  '/hooks/vmclass/sync',
  '/hooks/vmimage/sync',
  '/hooks/vmnetworkattachment/sync',
  '/hooks/provider/customize',
  '/hooks/provider/sync',
  '/hooks/provider/finalize',
  '/hooks/vmsnapshot/customize',
  '/hooks/vmsnapshot/sync',
  '/hooks/vmsnapshot/finalize',
  '/hooks/vmsnapshotschedule/customize',
  '/hooks/vmsnapshotschedule/sync',
  '/hooks/vmclone/customize',
  '/hooks/vmclone/sync',
];

const RUNTIME_ROUTES = [
  '/v1/probe', '/v1/inventory', '/v1/describe', '/v1/findByIdentity', '/v1/create', '/v1/delete', '/v1/power', '/v1/reconfigure',
  '/v1/resizeDisk', '/v1/snapshotCreate', '/v1/snapshotDelete', '/v1/snapshotRevert', '/v1/snapshotList', '/v1/clone', '/v1/taskStatus',
];

async function listen(app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

const WRONG_AUTHORIZATIONS = (token: string) => [
  undefined,
  'Bearer',
  'Bearer ',
  `Bearer ${token}x`,
  `Bearer ${token.slice(0, -1)}`,
  `Bearer  ${token}`,
  token,
  `Basic ${Buffer.from(`x:${token}`).toString('base64')}`,
  `Token ${token}`,
];

t.test('no spelling of a hook path reaches a hook without the token', async (t) => {
  const { app, world } = testServer({ hookToken: HOOK_TOKEN });
  t.teardown(() => app.close());
  const port = await listen(app);
  const body = exampleBody('virtualmachine-sync');
  let tried = 0;
  for (const route of HOOK_ROUTES) {
    for (const target of pathSpellings(route, port)) {
      for (const authorization of [undefined, `Bearer ${HOOK_TOKEN}x`]) {
        const answer = await postRaw(port, target, body, authorization === undefined ? {} : { Authorization: authorization });
        // 400 is Node refusing a target it cannot parse at all; anything parsed must be refused for want of the token.
        t.ok(answer.status === 401 || answer.status === 400, `${target} (${authorization ?? 'no token'}): ${answer.status}`);
        tried++;
      }
    }
  }
  t.ok(tried > 800, `${tried} requests tried`);
  t.equal(totalCalls(world), 0, 'no driver call was made');
  t.equal(world.listVMs().length, 0, 'no VM was created');
});

t.test('the absolute-form finalize of the report cannot delete a VM without the token', async (t) => {
  const { app, world } = testServer({ hookToken: HOOK_TOKEN, simulator: { durations: { create: 0, powerOn: 0, boot: 0 } } });
  t.teardown(() => app.close());
  const port = await listen(app);
  const authorization = { Authorization: `Bearer ${HOOK_TOKEN}` };
  const created = await postRaw(port, '/hooks/virtualmachine/sync', exampleBody('virtualmachine-sync'), authorization);
  t.equal(created.status, 200);
  t.equal(world.listVMs().length, 1);
  const before = totalCalls(world);
  for (const target of [`http://127.0.0.1:${port}/hooks/virtualmachine/finalize`, `http://127.0.0.1:${port}/%68ooks/virtualmachine/finalize`, '/%68ooks/virtualmachine/finalize']) {
    const answer = await postRaw(port, target, exampleBody('virtualmachine-finalize'));
    t.equal(answer.status, 401, target);
  }
  t.equal(totalCalls(world), before, 'no driver call');
  t.equal(world.listVMs().length, 1, 'the VM is still there');
});

t.test('every wrong Authorization header is refused; the right one, in any scheme case, is let in', async (t) => {
  const { app, world } = testServer({ hookToken: HOOK_TOKEN });
  t.teardown(() => app.close());
  const port = await listen(app);
  for (const authorization of WRONG_AUTHORIZATIONS(HOOK_TOKEN)) {
    const answer = await postRaw(port, '/hooks/virtualmachine/sync', exampleBody('virtualmachine-sync'), authorization === undefined ? {} : { Authorization: authorization });
    t.equal(answer.status, 401, String(authorization));
    t.equal(answer.body, 'missing or wrong bearer token');
  }
  t.equal(world.listVMs().length, 0);
  const answer = await postRaw(port, '/hooks/virtualmachine/sync', exampleBody('virtualmachine-sync'), { Authorization: `bearer ${HOOK_TOKEN}` });
  t.equal(answer.status, 200);
  t.equal(world.listVMs().length, 1);
});

t.test('health, readiness and metrics stay public, in any spelling the router matches', async (t) => {
  const { app } = testServer({ hookToken: HOOK_TOKEN });
  t.teardown(() => app.close());
  const port = await listen(app);
  for (const target of ['/healthz', '/readyz', '/metrics', `http://127.0.0.1:${port}/healthz`, '/%68ealthz', '/metrics?x=1']) {
    const answer = await rawRequest(port, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    t.equal(answer.status, 200, target);
  }
  const unknown = await rawRequest(port, 'GET /nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  t.equal(unknown.status, 401, 'an unknown path needs the token too (deny by default)');
});

t.test('no spelling of a provider-runtime path reaches the driver without the token', async (t) => {
  const hypervisor = new SimulatedHypervisor();
  const app = buildProviderRuntime({
    driver: new SimulatorDriver(hypervisor),
    token: RUNTIME_TOKEN,
    logger: false,
    metrics: new ProviderRuntimeMetrics({ processMetrics: false }),
  });
  t.teardown(() => app.close());
  const port = await listen(app);
  const body = { id: '100', uid: 'x', spec: {}, ref: { id: '100', owner: { uid: 'u', namespace: 'default', name: 'web' } }, task: 't' };
  let tried = 0;
  for (const route of RUNTIME_ROUTES) {
    for (const target of pathSpellings(route, port)) {
      for (const authorization of WRONG_AUTHORIZATIONS(RUNTIME_TOKEN).slice(0, 4)) {
        const answer = await postRaw(port, target, body, authorization === undefined ? {} : { Authorization: authorization });
        t.ok(answer.status === 401 || answer.status === 400, `${target} (${authorization ?? 'no token'}): ${answer.status}`);
        tried++;
      }
    }
  }
  for (const target of pathSpellings('/v1/capabilities', port)) {
    const answer = await rawRequest(port, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    t.ok(answer.status === 401 || answer.status === 400, `GET ${target}: ${answer.status}`);
  }
  t.ok(tried > 1500, `${tried} requests tried`);
  t.equal(totalCalls(hypervisor), 0, 'no driver call was made');
  const allowed = await postRaw(port, '/v1/describe', { id: '100' }, { Authorization: `Bearer ${RUNTIME_TOKEN}` });
  t.equal(allowed.status, DRIVER_ERROR_STATUS, 'the right token reaches the driver (which answers NotFound)');
  t.equal(hypervisor.callCount('describe'), 1);
});
