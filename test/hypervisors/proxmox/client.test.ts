import t, { type Test } from 'tap';
import { UnauthorizedError, UnreachableError } from '../../../src/contracts/driver.js';
import { ProxmoxClient, encodeParams } from '../../../src/hypervisors/proxmox/client.js';
import { proxmoxConfigFromEnv } from '../../../src/hypervisors/proxmox/config.js';
import { TOKEN_ENV, recorded, routes, startStub, stubConfig, type Stub } from './pve-stub.js';

const LOGIN = { PVE_USERNAME: 'root@pam', PVE_PASSWORD: 'root-password' };
const TICKET = recorded('access-ticket.pve8');

async function stub(t: Test, table: Parameters<typeof routes>[0]): Promise<Stub> {
  const server = await startStub(routes(table));
  t.teardown(server.close);
  return server;
}

function client(t: Test, server: Stub, env: Record<string, string> = {}, options: ConstructorParameters<typeof ProxmoxClient>[1] = {}): ProxmoxClient {
  const created = new ProxmoxClient(proxmoxConfigFromEnv({ PVE_ENDPOINT: server.url, ...env }), options);
  t.teardown(() => created.close());
  return created;
}

t.test('a token goes in the Authorization header of every request, without a CSRF token', async (t) => {
  const server = await stub(t, { 'GET /version': { body: recorded('version.pve9') }, 'POST /nodes/pve1/qemu/120/status/start': { body: recorded('qemu-start.upid') } });
  const pve = client(t, server, TOKEN_ENV);
  t.same(await pve.get('/version'), recorded('version.pve9')['data']);
  await pve.post('/nodes/pve1/qemu/120/status/start');
  for (const request of server.requests) {
    t.equal(request.headers['authorization'], 'PVEAPIToken=virtrigaud@pve!vrtg=secret-token');
    t.equal(request.headers['csrfpreventiontoken'], undefined);
    t.equal(request.headers['cookie'], undefined);
  }
});

t.test('a password logs in once and sends the ticket cookie, with the CSRF token on writes only', async (t) => {
  const server = await stub(t, {
    'POST /access/ticket': { body: TICKET },
    'GET /version': { body: recorded('version.pve9') },
    'POST /nodes/pve1/qemu/120/status/start': { body: recorded('qemu-start.upid') },
  });
  const pve = client(t, server, LOGIN);
  await Promise.all([pve.get('/version'), pve.get('/version')]);
  await pve.post('/nodes/pve1/qemu/120/status/start');
  const [login, ...rest] = server.requests;
  t.equal(server.calls('POST', '/access/ticket').length, 1, 'one login for concurrent requests');
  t.equal(login?.form.get('username'), 'root@pam');
  t.equal(login?.form.get('password'), 'root-password');
  const data = TICKET['data'] as Record<string, string>;
  for (const request of rest) {
    t.equal(request.headers['cookie'], `PVEAuthCookie=${data['ticket'] ?? ''}`);
    t.equal(request.headers['authorization'], undefined);
  }
  t.equal(rest[0]?.headers['csrfpreventiontoken'], undefined, 'no CSRF token on GET');
  t.equal(rest[2]?.headers['csrfpreventiontoken'], data['CSRFPreventionToken'], 'CSRF token on POST');
});

t.test('a ticket is renewed with the old ticket as password before its two hours end', async (t) => {
  let now = 1_000_000;
  let issued = 0;
  const server = await stub(t, {
    'POST /access/ticket': () => {
      issued += 1;
      return { data: { ticket: `PVE:root@pam:T${issued}::sig`, CSRFPreventionToken: `csrf${issued}`, username: 'root@pam' } };
    },
    'GET /version': { body: recorded('version.pve9') },
  });
  const pve = client(t, server, LOGIN, { now: () => now });
  await pve.get('/version');
  now += 89 * 60_000;
  await pve.get('/version');
  t.equal(server.calls('POST', '/access/ticket').length, 1, 'still the first ticket at 89 minutes');
  now += 2 * 60_000;
  await pve.get('/version');
  const logins = server.calls('POST', '/access/ticket');
  t.equal(logins.length, 2);
  t.equal(logins[1]?.form.get('password'), 'PVE:root@pam:T1::sig', 'renewal posts the old ticket');
  t.equal(server.requests.at(-1)?.headers['cookie'], 'PVEAuthCookie=PVE:root@pam:T2::sig');
});

t.test('a 401 on a ticket triggers one fresh login and one retry', async (t) => {
  let issued = 0;
  const server = await stub(t, {
    'POST /access/ticket': () => {
      issued += 1;
      return { data: { ticket: `PVE:root@pam:T${issued}::sig`, CSRFPreventionToken: 'csrf', username: 'root@pam' } };
    },
    'GET /version': (request) =>
      request.headers['cookie'] === 'PVEAuthCookie=PVE:root@pam:T1::sig' ? { status: 401, reason: 'No ticket', body: '' } : { body: recorded('version.pve9') },
  });
  const pve = client(t, server, LOGIN);
  t.same(await pve.get('/version'), recorded('version.pve9')['data']);
  t.equal(server.calls('POST', '/access/ticket').length, 2);
  t.equal(server.calls('GET', '/version').length, 2);
});

t.test('a refused login says "authentication failed: invalid credentials" and never echoes the password', async (t) => {
  const server = await stub(t, { 'POST /access/ticket': { status: 401, reason: 'authentication failure', body: '' } });
  const pve = client(t, server, LOGIN);
  const error = await pve.get('/version').catch((caught: unknown) => caught);
  t.ok(error instanceof UnauthorizedError);
  t.equal((error as Error).message, 'authentication failed: invalid credentials');
  t.notMatch(String(error), /root-password/);
});

t.test('a token refused with 401 is Unauthorized, without retrying', async (t) => {
  const server = await stub(t, { 'GET /version': { status: 401, reason: 'authentication failure', body: '' } });
  const error = await client(t, server, TOKEN_ENV).get('/version').catch((caught: unknown) => caught);
  t.ok(error instanceof UnauthorizedError);
  t.notMatch(String(error), /secret-token/);
  t.equal(server.requests.length, 1);
});

t.test('URLSearchParams encodes ; and + so PVE does not split or space them', async (t) => {
  t.equal(encodeParams({ boot: 'order=scsi0;ide2', size: '+10G', tags: 'a;b' }).toString(), 'boot=order%3Dscsi0%3Bide2&size=%2B10G&tags=a%3Bb');
});

t.test('booleans go as 1/0, arrays as repeated keys, undefined not at all', async (t) => {
  t.equal(encodeParams({ full: true, purge: false, command: ['ls', '-l'], skip: undefined }).toString(), 'full=1&purge=0&command=ls&command=-l');
});

t.test('GET and DELETE parameters go in the query, POST and PUT in a form body', async (t) => {
  const server = await stub(t, {
    'GET /cluster/resources': { data: [] },
    'DELETE /nodes/pve1/qemu/120': { body: recorded('qemu-delete.upid') },
    'POST /nodes/pve1/qemu/120/config': { body: recorded('qemu-config-post.upid') },
    'PUT /nodes/pve1/qemu/120/resize': { body: recorded('qemu-resize.upid.pve8') },
  });
  const pve = client(t, server, TOKEN_ENV);
  await pve.get('/cluster/resources', { type: 'vm' });
  await pve.delete('/nodes/pve1/qemu/120', { purge: true, 'destroy-unreferenced-disks': true });
  await pve.post('/nodes/pve1/qemu/120/config', { boot: 'order=scsi0;ide2' });
  await pve.put('/nodes/pve1/qemu/120/resize', { disk: 'scsi0', size: '+2G' });
  const [get, del, post, put] = server.requests;
  t.equal(get?.query.toString(), 'type=vm');
  t.equal(get?.body, '');
  t.equal(del?.query.toString(), 'purge=1&destroy-unreferenced-disks=1');
  t.equal(del?.body, '');
  t.equal(post?.headers['content-type'], 'application/x-www-form-urlencoded');
  t.equal(post?.body, 'boot=order%3Dscsi0%3Bide2', 'the exact bytes on the wire');
  t.equal(put?.body, 'disk=scsi0&size=%2B2G');
});

t.test('an abort signal cuts a slow call short as Unreachable', async (t) => {
  const server = await stub(t, { 'GET /version': { body: recorded('version.pve9'), delayMs: 2000 } });
  const pve = client(t, server, TOKEN_ENV);
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 50);
  const error = await pve.get('/version', undefined, { signal: controller.signal }).catch((caught: unknown) => caught);
  t.ok(error instanceof UnreachableError);
  t.match((error as Error).message, /aborted/);
});

t.test('an already aborted signal sends nothing', async (t) => {
  const server = await stub(t, {});
  const controller = new AbortController();
  controller.abort();
  const error = await client(t, server, TOKEN_ENV).get('/version', undefined, { signal: controller.signal }).catch((caught: unknown) => caught);
  t.ok(error instanceof UnreachableError);
  t.equal(server.requests.length, 0);
});

t.test('a refused connection is Unreachable', async (t) => {
  const server = await startStub(routes({}));
  const config = stubConfig(server);
  await server.close();
  const pve = new ProxmoxClient(config);
  t.teardown(() => pve.close());
  const error = await pve.get('/version').catch((caught: unknown) => caught);
  t.ok(error instanceof UnreachableError);
  t.match((error as Error).message, /ECONNREFUSED/);
});

t.test('a request that outlives the timeout is Unreachable', async (t) => {
  const server = await stub(t, { 'GET /version': { body: recorded('version.pve9'), delayMs: 1500 } });
  const error = await client(t, server, TOKEN_ENV, { requestTimeoutMs: 200 }).get('/version').catch((caught: unknown) => caught);
  t.ok(error instanceof UnreachableError);
  t.match((error as Error).message, /timed out/);
});

t.test('at most the configured number of writes per node run at once', async (t) => {
  let active = 0;
  let peak = 0;
  const server = await stub(t, {
    'POST /nodes/pve1/qemu/120/config': async () => {
      active += 1;
      peak = Math.max(peak, active);
      await new Promise((resolve) => setTimeout(resolve, 30));
      active -= 1;
      return { body: recorded('qemu-config-post.upid') };
    },
  });
  const pve = client(t, server, TOKEN_ENV, { mutationsPerNode: 2 });
  await Promise.all(Array.from({ length: 6 }, () => pve.post('/nodes/pve1/qemu/120/config', { cores: 2 })));
  t.equal(peak, 2);
});
