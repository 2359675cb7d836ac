// A request must arrive whole within the request timeout (30 s by default; shortened here): a
// client trickling its body, or sending nothing, is cut off; a hook that takes long to answer is not.
import t from 'tap';
import type { FastifyInstance } from 'fastify';
import { buildProviderRuntime, ProviderRuntimeMetrics } from '../../src/hypervisors/remote/index.js';
import { SimulatedHypervisor, SimulatorDriver } from '../../src/hypervisors/simulator/index.js';
import { exampleBody } from '../helpers/bodies.js';
import { openSocket, parseAnswer, postRaw } from '../helpers/raw-http.js';
import { testServer } from '../helpers/server.js';

async function listen(app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Sends `head` and then one byte of `body` every `everyMs`; resolves with what came back once the server closes. */
async function trickle(port: number, head: string, body: string, everyMs: number): Promise<{ answer: string; bytesSent: number }> {
  const socket = await openSocket(port);
  const chunks: Buffer[] = [];
  let sent = 0;
  socket.write(head);
  const timer = setInterval(() => {
    if (sent < body.length && socket.writable) socket.write(body[sent++]!);
  }, everyMs);
  socket.on('data', (chunk) => chunks.push(chunk));
  await new Promise<void>((resolve) => {
    socket.on('close', () => resolve());
    socket.on('error', () => resolve());
  });
  clearInterval(timer);
  return { answer: Buffer.concat(chunks).toString('utf8'), bytesSent: sent };
}

const body = JSON.stringify(exampleBody('virtualmachine-sync'));
const head = (path: string) => `POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;

t.test('a body sent a byte at a time is cut off with a 408, and the hook never runs', async (t) => {
  const { app, world } = testServer({ requestTimeoutMs: 800 });
  t.teardown(() => app.close());
  const port = await listen(app);
  const { answer, bytesSent } = await trickle(port, head('/hooks/virtualmachine/sync'), body, 50);
  t.equal(parseAnswer(answer).status, 408);
  t.equal(parseAnswer(answer).body, 'the request did not arrive in time');
  t.ok(bytesSent < body.length, `closed after ${bytesSent} of ${body.length} bytes`);
  t.equal(world.listVMs().length, 0);
  t.equal((await app.inject('/healthz')).statusCode, 200);
});

t.test('a connection that never sends its headers is closed', async (t) => {
  const { app } = testServer({ requestTimeoutMs: 800 });
  t.teardown(() => app.close());
  const port = await listen(app);
  const { answer } = await trickle(port, 'POST /hooks/virtualmachine/sync HTTP/1.1\r\nHost: x\r\n', 'X-Slow: a\r\n'.repeat(1000), 50);
  t.equal(parseAnswer(answer).status, 408);
});

t.test('a hook that takes longer than the request timeout to answer still answers', async (t) => {
  const { app, world } = testServer({ requestTimeoutMs: 300, budgetMs: 1200 });
  t.teardown(() => app.close());
  const port = await listen(app);
  world.injectFault('findByIdentity', { kind: 'timeout' });
  const answer = await postRaw(port, '/hooks/virtualmachine/sync', exampleBody('virtualmachine-sync'));
  t.equal(answer.status, 200, 'the deadline bounds receiving the request, not answering it');
});

t.test('the provider runtime cuts off slow clients the same way', async (t) => {
  const app = buildProviderRuntime({
    driver: new SimulatorDriver(new SimulatedHypervisor()),
    token: 'slow-runtime-token',
    logger: false,
    metrics: new ProviderRuntimeMetrics({ processMetrics: false }),
    requestTimeoutMs: 800,
  });
  t.teardown(() => app.close());
  const port = await listen(app);
  const payload = JSON.stringify({ id: '100' });
  const { answer } = await trickle(
    port,
    `POST /v1/describe HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer slow-runtime-token\r\nContent-Type: application/json\r\nContent-Length: ${payload.length + 1000}\r\n\r\n`,
    payload + ' '.repeat(1000),
    50,
  );
  t.equal(parseAnswer(answer).status, 408);
});
