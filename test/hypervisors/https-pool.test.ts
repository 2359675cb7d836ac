// A Provider's rateLimit and connectionPooling reach the HTTP client of its vSphere or Proxmox
// runtime: read from the runtime's environment by the driver's config reader, applied by the pool.
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import t, { type Test } from 'tap';
import { TokenBucket } from '../../src/hypervisors/common/https-pool.js';
import { ProxmoxClient } from '../../src/hypervisors/proxmox/client.js';
import { proxmoxConfigFromEnv } from '../../src/hypervisors/proxmox/config.js';
import { vsphereConfigFromEnv } from '../../src/hypervisors/vsphere/config.js';

const TOKEN_ENV = { PVE_TOKEN_ID: 'virtrigaud@pve!vrtg', PVE_TOKEN_SECRET: 'secret-token' };

interface Peer {
  url: string;
  /** When each request arrived (ms since the peer started). */
  arrivals: number[];
  /** The most requests in progress at once, and the most connections open at once. */
  maxInFlight: number;
  maxSockets: number;
  closedSockets: number;
}

/** A PVE-like peer on loopback that answers every GET after `delayMs`. */
async function peer(t: Test, delayMs = 0): Promise<Peer> {
  const started = Date.now();
  const state: Peer = { url: '', arrivals: [], maxInFlight: 0, maxSockets: 0, closedSockets: 0 };
  let inFlight = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((_request, response) => {
    state.arrivals.push(Date.now() - started);
    state.maxInFlight = Math.max(state.maxInFlight, ++inFlight);
    setTimeout(() => {
      inFlight--;
      response.setHeader('content-type', 'application/json');
      response.end(JSON.stringify({ data: { version: '8.2' } }));
    }, delayMs);
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    state.maxSockets = Math.max(state.maxSockets, sockets.size);
    socket.on('close', () => {
      sockets.delete(socket);
      state.closedSockets++;
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return state;
}

function client(t: Test, env: Record<string, string>): ProxmoxClient {
  const created = new ProxmoxClient(proxmoxConfigFromEnv({ ...TOKEN_ENV, ...env }));
  t.teardown(() => created.close());
  return created;
}

t.test('the token bucket lets a burst through, then one request per 1/qps', async (t) => {
  let now = 0;
  const bucket = new TokenBucket(10, 3, () => now);
  t.same([bucket.take(), bucket.take(), bucket.take()], [0, 0, 0], 'the burst');
  t.equal(bucket.take(), 100, 'then 100 ms apart at 10 per second');
  t.equal(bucket.take(), 200, 'in arrival order');
  now = 1000;
  t.equal(bucket.take(), 0, 'refilled after a quiet second (less the two reserved)');
});

t.test('PVE_RATE_LIMIT_QPS/BURST space the requests the driver sends', async (t) => {
  const limited = await peer(t);
  const api = client(t, { PVE_ENDPOINT: limited.url, PVE_RATE_LIMIT_QPS: '20', PVE_RATE_LIMIT_BURST: '2' });
  const started = Date.now();
  await Promise.all(Array.from({ length: 6 }, () => api.get('/version')));
  const elapsed = Date.now() - started;
  t.ok(elapsed >= 190, `6 requests at 20/s after a burst of 2 take at least 200 ms (took ${elapsed})`);
  t.ok((limited.arrivals.at(-1) ?? 0) - (limited.arrivals[0] ?? 0) >= 180, 'the peer saw them spread out');

  const free = await peer(t);
  const unlimited = client(t, { PVE_ENDPOINT: free.url });
  const begun = Date.now();
  await Promise.all(Array.from({ length: 6 }, () => unlimited.get('/version')));
  t.ok(Date.now() - begun < 150, 'without a rate limit they go at once');
});

t.test('PVE_MAX_CONNECTIONS bounds the open connections', async (t) => {
  const one = await peer(t, 20);
  const api = client(t, { PVE_ENDPOINT: one.url, PVE_MAX_CONNECTIONS: '1' });
  await Promise.all(Array.from({ length: 4 }, () => api.get('/version')));
  t.equal(one.maxSockets, 1);
  t.equal(one.maxInFlight, 1);

  const many = await peer(t, 20);
  const defaults = client(t, { PVE_ENDPOINT: many.url });
  await Promise.all(Array.from({ length: 4 }, () => defaults.get('/version')));
  t.ok(many.maxSockets > 1, 'the default allows more');
});

t.test('PVE_IDLE_TIMEOUT closes an unused connection', async (t) => {
  const idle = await peer(t);
  const api = client(t, { PVE_ENDPOINT: idle.url, PVE_IDLE_TIMEOUT: '150ms' });
  await api.get('/version');
  await new Promise((resolve) => setTimeout(resolve, 600));
  t.equal(idle.closedSockets, 1, 'closed by the client after 150 ms idle');
});

t.test('the settings are checked at startup, naming the variable', async (t) => {
  const base = { PVE_ENDPOINT: 'https://pve:8006', ...TOKEN_ENV };
  const cases: [Record<string, string>, RegExp][] = [
    [{ PVE_RATE_LIMIT_QPS: '0' }, /^PVE_RATE_LIMIT_QPS must be a whole number from 1 to 1000$/],
    [{ PVE_RATE_LIMIT_BURST: '5' }, /^PVE_RATE_LIMIT_BURST needs PVE_RATE_LIMIT_QPS$/],
    [{ PVE_MAX_CONNECTIONS: 'many' }, /^PVE_MAX_CONNECTIONS must be a whole number/],
    [{ PVE_CONNECT_TIMEOUT: 'soon' }, /^PVE_CONNECT_TIMEOUT must be a duration/],
  ];
  for (const [env, message] of cases) t.throws(() => proxmoxConfigFromEnv({ ...base, ...env }), { message });
  t.same(proxmoxConfigFromEnv({ ...base, PVE_RATE_LIMIT_QPS: '7' }).http, { rateLimit: { qps: 7, burst: 7 } }, 'burst defaults to qps');
  t.same(
    vsphereConfigFromEnv({ VSPHERE_ENDPOINT: 'https://vc', VSPHERE_USERNAME: 'u', VSPHERE_PASSWORD: 'p', VSPHERE_CONNECT_TIMEOUT: '1.5s', VSPHERE_IDLE_TIMEOUT: '5m' }).http,
    { connectTimeoutMs: 1500, idleTimeoutMs: 300_000 },
  );
  t.equal(vsphereConfigFromEnv({ VSPHERE_ENDPOINT: 'https://vc', VSPHERE_USERNAME: 'u', VSPHERE_PASSWORD: 'p' }).http, undefined);
});
