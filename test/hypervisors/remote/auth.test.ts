import t from 'tap';
import { RemoteDriver } from '../../../src/hypervisors/remote/index.js';
import { TOKEN, simulatorSpec, startRuntime } from './helpers.js';

const owner = { uid: '0a1b2c3d-0000-4000-8000-000000000001', namespace: 'default', name: 'web' };
const createBody = { spec: simulatorSpec('web', owner) };

t.test('a request without a token gets 401 and never reaches the driver', async (t) => {
  const runtime = await startRuntime();
  t.teardown(() => runtime.close());
  const response = await runtime.app.inject({ method: 'POST', url: '/v1/create', payload: createBody });
  t.equal(response.statusCode, 401);
  t.equal(response.body, 'missing or wrong bearer token');
  t.equal(runtime.hypervisor.callCount('create'), 0);
  t.equal(runtime.hypervisor.listVMs().length, 0);
});

t.test('a request with a wrong token gets 401 and never reaches the driver', async (t) => {
  const runtime = await startRuntime();
  t.teardown(() => runtime.close());
  for (const authorization of [`Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(0, -1)}`, TOKEN, `Basic ${TOKEN}`, 'Bearer ']) {
    const response = await runtime.app.inject({ method: 'POST', url: '/v1/create', headers: { authorization }, payload: createBody });
    t.equal(response.statusCode, 401, authorization);
  }
  t.equal(runtime.hypervisor.callCount('create'), 0);
});

t.test('the right token reaches the driver', async (t) => {
  const runtime = await startRuntime();
  t.teardown(() => runtime.close());
  const response = await runtime.app.inject({ method: 'POST', url: '/v1/create', headers: { authorization: `Bearer ${TOKEN}` }, payload: createBody });
  t.equal(response.statusCode, 200);
  t.equal(runtime.hypervisor.callCount('create'), 1);
});

t.test('unknown paths need the token too', async (t) => {
  const runtime = await startRuntime();
  t.teardown(() => runtime.close());
  t.equal((await runtime.app.inject({ method: 'POST', url: '/v1/nothing', payload: {} })).statusCode, 401);
  t.equal((await runtime.app.inject({ method: 'GET', url: '/V1/capabilities' })).statusCode, 401);
  const known = await runtime.app.inject({ method: 'POST', url: '/v1/nothing', headers: { authorization: `Bearer ${TOKEN}` }, payload: {} });
  t.equal(known.statusCode, 404);
});

t.test('a RemoteDriver with a wrong token cannot connect: UnauthorizedError', async (t) => {
  const runtime = await startRuntime();
  t.teardown(() => runtime.close());
  await t.rejects(RemoteDriver.connect(runtime.url, 'not-the-token'), { code: 'Unauthorized', message: /refused the token \(401\)/ });
});

t.test('health and metrics need no token', async (t) => {
  const runtime = await startRuntime();
  t.teardown(() => runtime.close());
  await runtime.app.inject({ method: 'POST', url: '/v1/create', payload: createBody });
  await runtime.app.inject({ method: 'POST', url: '/v1/describe', headers: { authorization: `Bearer ${TOKEN}` }, payload: { id: '404' } });
  t.equal((await runtime.app.inject('/healthz')).statusCode, 200);
  const metrics = await runtime.app.inject('/metrics');
  t.equal(metrics.statusCode, 200);
  t.match(metrics.body, /virtrigaud_provider_calls_total\{method="create",outcome="tokenRejected"\} 1/);
  t.match(metrics.body, /virtrigaud_provider_calls_total\{method="describe",outcome="NotFound"\} 1/);
  t.match(metrics.body, /virtrigaud_provider_call_duration_seconds_count\{method="describe",outcome="NotFound"\} 1/);
});

t.test('readiness follows the probe', async (t) => {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const runtime = await startRuntime({ readiness: { now: () => now, refreshMs: 0 } });
  t.teardown(() => runtime.close());
  runtime.hypervisor.injectFault('probe', { kind: 'unreachable', message: 'connect ECONNREFUSED 10.0.0.1:8006' });
  const down = await runtime.app.inject('/readyz');
  t.equal(down.statusCode, 503);
  t.equal(down.body, 'the hypervisor probe failed: connect ECONNREFUSED 10.0.0.1:8006');
  t.equal((await runtime.app.inject('/readyz')).statusCode, 200, 'ready once a probe succeeds');
  const probes = runtime.hypervisor.callCount('probe');
  t.equal(probes, 2, 'readiness probes without a token');

  runtime.hypervisor.injectFault('probe', { kind: 'busy', times: 10 });
  now += 30_000;
  t.equal((await runtime.app.inject('/readyz')).statusCode, 200, 'a failed probe within the minute after a success keeps it ready');
  now += 31_000;
  const stale = await runtime.app.inject('/readyz');
  t.equal(stale.statusCode, 503, 'no success in the last minute');
  t.match(stale.body, /^the hypervisor probe failed: /);
  t.notMatch(stale.body, '\n');
});

t.test('readiness gives up on a probe that does not answer and says so', async (t) => {
  const runtime = await startRuntime({ readiness: { probeTimeoutMs: 50, waitMs: 1000 } });
  t.teardown(() => runtime.close());
  runtime.hypervisor.injectFault('probe', { kind: 'timeout' });
  const response = await runtime.app.inject('/readyz');
  t.equal(response.statusCode, 503);
  t.equal(response.body, 'the hypervisor probe did not answer within 50 ms');
});

t.test('neither the token nor user-data reach the log', async (t) => {
  const runtime = await startRuntime();
  t.teardown(() => runtime.close());
  const userData = '#cloud-config\npassword: hunter2-user-data';
  const headers = { authorization: `Bearer ${TOKEN}` };
  runtime.hypervisor.injectFault('create', { kind: 'invalid' });
  await runtime.app.inject({ method: 'POST', url: '/v1/create', headers, payload: { spec: { ...createBody.spec, userData } } });
  await runtime.app.inject({ method: 'POST', url: '/v1/create', headers, payload: { spec: { ...createBody.spec, userData, extra: 1 } } });
  await runtime.app.inject({ method: 'POST', url: '/v1/create', headers: { authorization: `Bearer ${TOKEN}-wrong` }, payload: {} });
  t.ok(runtime.logs.length > 0, 'something was logged');
  const log = runtime.logs.join('');
  t.notMatch(log, 'hunter2');
  t.notMatch(log, TOKEN);
});
