// Nothing from a request body or an Authorization header reaches a log line, at any level, on
// either server: valid calls, refused calls, malformed HTTP (whose error carries the raw bytes),
// oversized headers, slow requests cut off, and driver failures.
import { Writable } from 'node:stream';
import t from 'tap';
import type { FastifyInstance } from 'fastify';
import { buildServer } from '../../src/hooks/server.js';
import { ProviderRegistry } from '../../src/hypervisors/registry.js';
import { buildProviderRuntime, ProviderRuntimeMetrics } from '../../src/hypervisors/remote/index.js';
import { SimulatedHypervisor, SimulatorDriver } from '../../src/hypervisors/simulator/index.js';
import { exampleBody, secret } from '../helpers/bodies.js';
import { FakeClock } from '../helpers/clock.js';
import { openSocket, postRaw, rawRequest } from '../helpers/raw-http.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;
const BODY_CANARY = 'BODYCANARY4711';
const TOKEN_CANARY = 'TOKENCANARY0815';
const SECRET_CANARY = 'SECRETCANARY1234';

function capture(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  return { lines, stream };
}

async function listen(app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Requests of every kind, each carrying the canaries in its body or headers. */
async function hostileTraffic(port: number, path: string, validBody: object): Promise<void> {
  const auth = { Authorization: `Bearer ${TOKEN_CANARY}` };
  await postRaw(port, path, validBody, auth);
  await postRaw(port, path, validBody, { Authorization: `Bearer wrong-${TOKEN_CANARY}` });
  await postRaw(port, path, { parent: { spec: BODY_CANARY } }, auth);
  const head = (length: number, extra = '') =>
    `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN_CANARY}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n${extra}Connection: close\r\n\r\n`;
  const broken = `{"x": "${BODY_CANARY}" nope`;
  await rawRequest(port, head(broken.length) + broken);
  const invalidUtf8 = Buffer.concat([Buffer.from(`{"x": "${BODY_CANARY}`), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]);
  await rawRequest(port, Buffer.concat([Buffer.from(head(invalidUtf8.length)), invalidUtf8]));
  await rawRequest(port, head(20, 'Content-Type: text/plain\r\n') + `${BODY_CANARY}xxxxxx`);
  // Malformed HTTP: Node's parser error carries these bytes as rawPacket.
  await rawRequest(port, `POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN_CANARY}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n${BODY_CANARY}`);
  await rawRequest(port, `BROKEN ${BODY_CANARY}\r\nAuthorization: Bearer ${TOKEN_CANARY}\r\n\r\n`);
  await rawRequest(port, `GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN_CANARY}\r\nX-Big: ${BODY_CANARY.repeat(2000)}\r\n\r\n`);
  await rawRequest(port, head(30) + `{"__proto__": "${BODY_CANARY}"}`);
  await rawRequest(port, `POST /nowhere/${BODY_CANARY} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN_CANARY}\r\nConnection: close\r\n\r\n`);
  // A body that never completes is cut off by the request timeout.
  const slow = await openSocket(port);
  await new Promise<void>((resolve) => {
    slow.on('close', () => resolve());
    slow.on('error', () => resolve());
    slow.resume();
    slow.write(head(10_000) + `{"x": "${BODY_CANARY}`);
  });
}

t.test('the hook server logs no body and no token at any level', async (t) => {
  for (const level of LEVELS) {
    const { lines, stream } = capture();
    const world = new SimulatedHypervisor({ clock: new FakeClock() });
    world.injectFault('create', { kind: 'invalid', message: 'refused', times: 100 });
    const app = buildServer({ registry: new ProviderRegistry(() => world), hookToken: TOKEN_CANARY, logger: { level, stream }, requestTimeoutMs: 400 });
    const port = await listen(app);
    const body = exampleBody('virtualmachine-sync');
    body.parent.spec['userData'] = { cloudInit: { secretRef: { name: 'web-cloudinit' } } };
    body.related['Secret.v1'] = { 'default/web-cloudinit': { ...secret('default', 'web-cloudinit', { userdata: `#cloud-config\npassword: ${SECRET_CANARY}\n` }), stringData: { userdata: SECRET_CANARY } } };
    await hostileTraffic(port, '/hooks/virtualmachine/sync', body);
    await app.close();
    const text = lines.join('');
    if (level === 'trace') t.ok(lines.length > 5, `trace logged ${lines.length} lines`);
    for (const canary of [BODY_CANARY, TOKEN_CANARY, SECRET_CANARY, Buffer.from(SECRET_CANARY).toString('base64').slice(0, 12)]) {
      t.notMatch(text, canary, `${level}: ${canary} never logged`);
    }
    t.notMatch(text, 'rawPacket', `${level}: no raw packet`);
  }
});

t.test('the provider runtime logs no body and no token at any level', async (t) => {
  for (const level of LEVELS) {
    const { lines, stream } = capture();
    const world = new SimulatedHypervisor({ clock: new FakeClock() });
    world.injectFault('describe', { kind: 'invalid', message: 'refused', times: 100 });
    const app = buildProviderRuntime({
      driver: new SimulatorDriver(world),
      token: TOKEN_CANARY,
      logger: { level, stream },
      metrics: new ProviderRuntimeMetrics({ processMetrics: false }),
      requestTimeoutMs: 400,
    });
    const port = await listen(app);
    await hostileTraffic(port, '/v1/describe', { id: BODY_CANARY });
    await app.close();
    const text = lines.join('');
    for (const canary of [BODY_CANARY, TOKEN_CANARY]) t.notMatch(text, canary, `${level}: ${canary} never logged`);
    t.notMatch(text, 'rawPacket', `${level}: no raw packet`);
  }
});
