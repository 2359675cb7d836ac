// The provider runtime's endpoints, read from its route table, get the hook server's treatment
// (test/fuzz/kit.ts): malformed requests refused with a 4xx and one plain line, generated bodies
// never a 5xx or a hang, answers that fit the contract, no secret in any answer or log line. And
// its door: every route refuses every token that is not its own (none, another Provider's, its
// Provider's previous incarnation's, one from a rotated hook secret, a malformed one, one in the
// wrong header or scheme) with 401, and the simulator behind it receives no call at all.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import { Value } from '@sinclair/typebox/value';
import type { Identity } from '../../src/contracts/driver.js';
import { providerRuntimeToken } from '../../src/contracts/provider-token.js';
import { DRIVER_ERROR_STATUS, ErrorEnvelope, REMOTE_METHOD_NAMES, REMOTE_METHODS, remotePath, type RemoteMethod } from '../../src/contracts/remote.js';
import { MAX_MESSAGE_CHARS } from '../../src/http/hardening.js';
import { buildProviderRuntime, ProviderRuntimeMetrics } from '../../src/hypervisors/remote/index.js';
import { SimulatedHypervisor, SimulatorDriver } from '../../src/hypervisors/simulator/index.js';
import { basicSpec } from '../conformance/driver-suite.js';
import { FakeClock } from '../helpers/clock.js';
import {
  CANARY,
  Generator,
  KIB,
  MIB,
  dotted,
  getAt,
  malformedCases,
  prototypePolluted,
  rawExchange,
  recordBodySchemas,
  refusalProblem,
  schemaFacts,
  Sender,
  servedRoutes,
  textWithRaw,
  withValue,
  without,
  type Answer,
  type Json,
  type SchemaNode,
} from './kit.js';

const SEED = Number(process.env['VIRTRIGAUD_FUZZ_SEED'] ?? 20_261_217) + 1;
/** Generated bodies for the driver-call routes (one class), spread over them. */
const BODIES = 400;
const DEADLINE_MS = 5000;

const HOOK_SECRET = 'fuzz-hook-secret-0123456789abcdef';
const PROVIDER = { namespace: 'default', name: 'sim', uid: '5e1f0000-0000-4000-8000-000000000001' };
const TOKEN = providerRuntimeToken(HOOK_SECRET, PROVIDER);

interface Runtime {
  hypervisor: SimulatedHypervisor;
  bodyLimit: number;
  sender: Sender;
  port: number;
  logs: string[];
  schemas: Map<string, SchemaNode>;
  routes: { method: string; path: string }[];
  close(): Promise<void>;
}

/** A runtime for the Provider default/sim with a simulator behind it, on loopback; the caller closes it. */
async function startRuntime(): Promise<Runtime> {
  const migrationDir = await mkdtemp(join(tmpdir(), 'virtrigaud-fuzz-runtime-'));
  // Tasks end at once, so that a VM is not busy for the next call: the calls reach the simulator's logic.
  const durations = { create: 0, clone: 0, powerOn: 0, powerOff: 0, shutdown: 0, reboot: 0, reconfigure: 0, resizeDisk: 0, delete: 0, snapshot: 0, boot: 0 };
  const hypervisor = new SimulatedHypervisor({ clock: new FakeClock(), migrationDir, durations });
  const logs: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(chunk.toString('utf8'));
      done();
    },
  });
  const app = buildProviderRuntime({
    driver: new SimulatorDriver(hypervisor),
    token: TOKEN,
    logger: { level: 'debug', stream },
    metrics: new ProviderRuntimeMetrics({ processMetrics: false }),
  });
  const schemas = recordBodySchemas(app);
  const origin = await app.listen({ host: '127.0.0.1', port: 0 });
  const sender = new Sender(origin, DEADLINE_MS);
  const routes = servedRoutes(app).filter((route) => route.path.startsWith('/v1/'));
  return {
    hypervisor,
    bodyLimit: app.initialConfig.bodyLimit ?? MIB,
    sender,
    port: Number(new URL(origin).port),
    logs,
    schemas,
    routes,
    async close() {
      await sender.close();
      await app.close();
      await rm(migrationDir, { recursive: true, force: true });
    },
  };
}

const OWNER = { uid: '0a1b2c3d-0000-4000-8000-0000000000f1', namespace: 'default', name: 'fuzz' };
const OTHER = { uid: '0a1b2c3d-0000-4000-8000-0000000000f2', namespace: 'default', name: 'fuzz-copy' };

/** A valid body for each driver call, against the VM `id` (made by the sample create). */
function samples(id: string, snapshotId: string, task: string): Record<RemoteMethod, Json> {
  const ref = { id, owner: OWNER };
  const file = (path: string) => ({ path, format: 'qcow2' });
  return {
    probe: {},
    inventory: {},
    describe: { id },
    findByIdentity: { uid: OWNER.uid },
    create: { spec: { ...basicSpec('fuzz', OWNER), userData: `#cloud-config\npassword: ${CANARY}\n` } as unknown as Json },
    delete: { ref },
    power: { ref, operation: 'on' },
    reconfigure: { ref, change: { cpus: 2, memoryBytes: 2 * 1024 ** 3 } },
    resizeDisk: { ref, disk: 'root', sizeBytes: 64 * 1024 ** 3 },
    snapshotCreate: { ref, request: { name: 'fuzz', description: 'before the fuzz', memory: false, quiesce: false } },
    snapshotDelete: { ref, snapshotId },
    snapshotRevert: { ref, snapshotId },
    snapshotList: { ref },
    clone: { ref, target: { name: OTHER.name, owner: OTHER, linked: false } },
    taskStatus: { task },
    exportDisk: { ref, request: { disk: 'root', file: file('fuzz/root.qcow2') } },
    importDisk: { owner: OTHER, request: { name: 'imported', file: file('fuzz/root.qcow2') } },
    deleteImportedDisk: { owner: OTHER, name: 'imported' },
    migrationVolume: { volume: 'migration' },
    removeMigrationFiles: { dir: 'fuzz/old' },
  };
}

/** A driver's message in an error envelope: one line, bounded, no secret (any Unicode may stay: it is JSON). */
function messageProblem(message: string): string | undefined {
  if (/[\p{Cc}\u2028\u2029]/u.test(message)) return `a line break or control character in ${JSON.stringify(message.slice(0, 120))}`;
  if (message.length > MAX_MESSAGE_CHARS + 1) return `a ${message.length}-character message`;
  if (message.includes(CANARY) || message.includes(TOKEN)) return 'the message quotes a secret';
  return undefined;
}

const methodOf = (path: string) => path.slice('/v1/'.length) as RemoteMethod;

/** What is wrong with an answer: a refusal must be proper, an acceptance must fit the method's contract, a driver error its envelope. */
function answerProblem(path: string, answer: Answer | string, strict: boolean): string | undefined {
  if (typeof answer === 'string') return answer;
  if (answer.body.includes(TOKEN)) return 'the answer quotes the token';
  if (strict || (answer.status !== 200 && answer.status !== DRIVER_ERROR_STATUS)) return refusalProblem(answer);
  let json: unknown;
  try {
    json = JSON.parse(answer.body);
  } catch {
    return `a ${answer.status} whose body is not JSON`;
  }
  if (answer.status === DRIVER_ERROR_STATUS) {
    if (!Value.Check(ErrorEnvelope, json)) return 'a driver error that does not fit the error envelope';
    const problem = messageProblem(json.error.message);
    return problem === undefined ? undefined : `driver error message: ${problem}`;
  }
  const contract = REMOTE_METHODS[methodOf(path)];
  if (contract && !Value.Check(contract.response, json)) return `a 200 that does not fit the ${methodOf(path)} response`;
  if (answer.body.includes(CANARY)) return 'the answer quotes user-data';
  return undefined;
}

async function call(runtime: Runtime, path: string, payload: string | Buffer | undefined, headers: Record<string, string>): Promise<Answer | string> {
  try {
    return await runtime.sender.send('POST', path, payload, headers);
  } catch (error) {
    return `no answer within ${DEADLINE_MS} ms (${error instanceof Error ? error.message : String(error)})`;
  }
}

const AUTHORIZED = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };

t.test('every route refuses every token but its own with 401, and nothing reaches the simulator', async (t) => {
  const runtime = await startRuntime();
  t.teardown(() => runtime.close());
  const other = (provider: typeof PROVIDER, secret = HOOK_SECRET) => providerRuntimeToken(secret, provider);
  const wrong: [string, Record<string, string>][] = [
    ['no token', {}],
    ['another Provider\'s runtime token', { authorization: `Bearer ${other({ ...PROVIDER, name: 'other' })}` }],
    ['a same-named Provider\'s in another namespace', { authorization: `Bearer ${other({ ...PROVIDER, namespace: 'team-b' })}` }],
    ['the token of this Provider\'s previous incarnation (deleted and re-created: another UID)', { authorization: `Bearer ${other({ ...PROVIDER, uid: '5e1f0000-0000-4000-8000-000000000000' })}` }],
    ['a token from the hook secret before it was rotated', { authorization: `Bearer ${other(PROVIDER, `${HOOK_SECRET}-old`)}` }],
    ['a token without the UID', { authorization: `Bearer ${other({ namespace: PROVIDER.namespace, name: PROVIDER.name, uid: '' })}` }],
    ['the HMAC secret itself', { authorization: `Bearer ${HOOK_SECRET}` }],
    ['empty bearer', { authorization: 'Bearer ' }],
    ['scheme only', { authorization: 'Bearer' }],
    ['truncated', { authorization: `Bearer ${TOKEN.slice(0, -1)}` }],
    ['one character more', { authorization: `Bearer ${TOKEN}0` }],
    ['upper-case hex', { authorization: `Bearer ${TOKEN.toUpperCase()}` }],
    ['base64 of the token', { authorization: `Bearer ${Buffer.from(TOKEN).toString('base64')}` }],
    ['a JWT-shaped token', { authorization: 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJzaW0ifQ.' }],
    ['8 KiB of token', { authorization: `Bearer ${'a'.repeat(8 * KIB)}` }],
    ['two tokens in one header', { authorization: `Bearer ${TOKEN}, Bearer ${TOKEN}` }],
    ['two spaces after the scheme', { authorization: `Bearer  ${TOKEN}` }],
    ['a tab after the scheme', { authorization: `Bearer\t${TOKEN}` }],
    ['no scheme', { authorization: TOKEN }],
    ['Token scheme', { authorization: `Token ${TOKEN}` }],
    ['Basic scheme', { authorization: `Basic ${Buffer.from(`runtime:${TOKEN}`).toString('base64')}` }],
    ['Digest scheme', { authorization: `Digest username="runtime", response="${TOKEN}"` }],
    ['Proxy-Authorization', { 'proxy-authorization': `Bearer ${TOKEN}` }],
    ['X-Auth-Token', { 'x-auth-token': TOKEN }],
    ['X-Api-Key', { 'x-api-key': TOKEN }],
    ['a cookie', { cookie: `token=${TOKEN}` }],
    ['X-Forwarded-Authorization', { 'x-forwarded-authorization': `Bearer ${TOKEN}` }],
  ];
  const problems: string[] = [];
  const bodies = samples('100', 's1', 'task-1');
  let tried = 0;
  for (const route of runtime.routes) {
    const payload = route.method === 'POST' ? JSON.stringify(bodies[methodOf(route.path)] ?? {}) : undefined;
    const asQuery = [`${route.path}?token=${TOKEN}`, `${route.path}?access_token=${TOKEN}`];
    for (const [name, headers] of [...wrong, ...asQuery.map((path): [string, Record<string, string>] => [`in the query: ${path}`, {}])]) {
      const path = name.startsWith('in the query: ') ? name.slice('in the query: '.length) : route.path;
      let answer: Answer | string;
      try {
        answer = await runtime.sender.send(route.method, path, payload, { ...(payload === undefined ? {} : { 'content-type': 'application/json' }), ...headers });
      } catch (error) {
        answer = `no answer (${error instanceof Error ? error.message : String(error)})`;
      }
      tried++;
      const problem = typeof answer === 'string' ? answer : answer.status !== 401 ? `status ${answer.status}` : refusalProblem(answer);
      if (problem) problems.push(`${route.method} ${route.path} [${name}]: ${problem}`);
    }
    // The token in the body instead of a header.
    if (payload !== undefined) {
      const answer = await call(runtime, route.path, JSON.stringify({ ...(JSON.parse(payload) as object), token: TOKEN }), { 'content-type': 'application/json' });
      if (typeof answer === 'string' || answer.status !== 401) problems.push(`${route.path} [token in the body]: ${typeof answer === 'string' ? answer : answer.status}`);
    }
  }
  t.same(problems, [], `${tried} requests to ${runtime.routes.length} routes`);
  t.equal(runtime.hypervisor.totalCalls(), 0, 'the simulator received no call');
  t.equal(runtime.hypervisor.listVMs().length, 0, 'and holds no VM');
  const log = runtime.logs.join('');
  t.notMatch(log, TOKEN, 'no token in the log');
  t.notMatch(log, HOOK_SECRET, 'no secret in the log');

  const allowed = await call(runtime, '/v1/describe', JSON.stringify({ id: '100' }), AUTHORIZED);
  t.equal(typeof allowed === 'string' ? allowed : allowed.status, DRIVER_ERROR_STATUS, 'its own token reaches the driver (which knows no VM 100)');
  t.equal(runtime.hypervisor.callCount('describe'), 1);
});

t.test(`driver-call routes refuse malformed requests and survive ${BODIES} generated bodies (seed ${SEED})`, async (t) => {
  const runtime = await startRuntime();
  t.teardown(() => runtime.close());
  const posts = runtime.routes.filter((route) => route.method === 'POST').map((route) => route.path);
  t.same([...posts].sort(), REMOTE_METHOD_NAMES.map((method) => remotePath(method)).sort(), 'every driver call has its route, and there is no other');

  // A VM, a snapshot and a task to aim the samples at.
  const created = await call(runtime, '/v1/create', JSON.stringify(samples('', '', '')['create']), AUTHORIZED);
  const id = typeof created === 'string' ? '' : (JSON.parse(created.body) as { id: string }).id;
  t.not(id, '', 'the sample create made a VM');
  const snapshot = await call(runtime, '/v1/snapshotCreate', JSON.stringify(samples(id, '', '')['snapshotCreate']), AUTHORIZED);
  const started = typeof snapshot === 'string' ? { id: '' } : (JSON.parse(snapshot.body) as { id: string; task?: string });
  const valid = samples(id, started.id, ('task' in started ? started.task : undefined) ?? 'task-1');
  const bodyFor = (path: string): Json => valid[methodOf(path)] ?? {};

  const problems: string[] = [];
  for (const path of posts) {
    const answer = await call(runtime, path, JSON.stringify(bodyFor(path)), AUTHORIZED);
    if (typeof answer === 'string' || answer.status === 400) problems.push(`${path}: its sample was refused: ${typeof answer === 'string' ? answer : answer.body}`);
    if (!runtime.schemas.has(path)) problems.push(`${path}: no body schema seen`);
  }
  t.same(problems, [], 'every sample passes validation');

  // Fixed cases: the kit's malformed requests, each required field missing, a wrong type at each typed place.
  let cases = 0;
  for (const path of posts) {
    const sample = bodyFor(path);
    const schema = runtime.schemas.get(path) ?? {};
    const { typed, required } = schemaFacts(sample, schema);
    const generator = new Generator(SEED ^ path.length);
    const requests = [
      ...malformedCases(sample),
      ...required.map((field) => ({ name: `missing ${dotted(field)}`, payload: JSON.stringify(without(sample, field)), contentType: 'application/json' })),
      ...typed.map((entry) => {
        const value = generator.wrongType(entry.type);
        return { name: `${JSON.stringify(value)} at ${dotted(entry.path)}`, payload: JSON.stringify(withValue(sample, entry.path, value)), contentType: 'application/json' };
      }),
      { name: 'an unknown field', payload: JSON.stringify({ ...(sample as object), unexpected: true }), contentType: 'application/json' },
    ];
    for (const request of requests) {
      const headers: Record<string, string> = { authorization: AUTHORIZED.authorization, ...(request.contentType === undefined ? {} : { 'content-type': request.contentType }) };
      const answer = await call(runtime, path, request.payload, headers);
      cases++;
      const problem = answerProblem(path, answer, true);
      if (problem) problems.push(`${path} [${request.name}]: ${problem}`);
    }
  }
  t.same(problems, [], `${cases} fixed cases`);

  // Generated: the same mutations as the hooks get, over the driver-call routes.
  const generator = new Generator(SEED);
  const tally: Record<string, number> = {};
  for (let index = 0; index < BODIES; index++) {
    const path = posts[index % posts.length] as string;
    const sample = bodyFor(path);
    const { typed, required } = schemaFacts(sample, runtime.schemas.get(path) ?? {});
    const strings = typed.filter((entry) => entry.type === 'string');
    let text: string;
    let what: string;
    let strict = true;
    const slot = index % 8;
    const entry = generator.pick(typed.length > 1 ? typed.slice(1) : typed);
    if (slot < 3 && entry) {
      const value = generator.wrongType(entry.type);
      text = JSON.stringify(withValue(sample, entry.path, value));
      what = `${JSON.stringify(value)} at ${dotted(entry.path)}`;
    } else if (slot === 3 && required.length > 0) {
      const field = generator.pick(required);
      text = JSON.stringify(without(sample, field));
      what = `missing ${dotted(field)}`;
    } else if (slot === 4 && strings.length > 0) {
      const target = generator.pick(strings);
      text = textWithRaw(sample, target.path, JSON.stringify(generator.hugeString()));
      what = `1 MiB string at ${dotted(target.path)}`;
      strict = false;
    } else if (slot === 5 && entry) {
      const collections = typed.filter((item) => item.type === 'array' || item.type === 'object');
      const target = generator.pick(collections.length > 0 ? collections : typed);
      text = target.type === 'array' || target.type === 'object' ? textWithRaw(sample, target.path, generator.hugeCollectionText(getAt(sample, target.path))) : JSON.stringify(sample);
      what = `huge ${target.type} at ${dotted(target.path)}`;
      strict = target.path.length === 0 && target.type === 'object';
    } else if (slot === 6 && strings.length > 0) {
      const target = generator.pick(strings);
      const value = generator.hostileText();
      text = JSON.stringify(withValue(sample, target.path, value));
      what = `${JSON.stringify(value).slice(0, 60)} at ${dotted(target.path)}`;
      strict = false;
    } else {
      text = textWithRaw(sample, entry?.path ?? [], `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`);
      what = `10 000 levels at ${dotted(entry?.path ?? [])}`;
    }
    const answer = await call(runtime, path, text, AUTHORIZED);
    if (typeof answer !== 'string') tally[answer.status] = (tally[answer.status] ?? 0) + 1;
    const problem = answerProblem(path, answer, strict);
    if (problem) problems.push(`${path} case ${index} [${what}]: ${problem}`);
  }
  t.same(problems, [], `outcomes ${JSON.stringify(tally)}`);

  // Oversized: announced past the limit, only a little sent.
  for (const path of posts) {
    const head = `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: ${runtime.bodyLimit + 1}\r\n\r\n`;
    const answer = await rawExchange(runtime.port, head, Buffer.from('{"spec":"'), DEADLINE_MS);
    if (answer.status !== 413 || refusalProblem(answer)) problems.push(`${path} oversized: ${answer.status} ${answer.body.slice(0, 100)}`);
  }
  t.same(problems, [], 'oversized bodies: 413 before they are read');

  const capabilities = await runtime.sender.send('GET', '/v1/capabilities', 'garbage \u0000 body', { authorization: AUTHORIZED.authorization, 'content-type': 'application/json' });
  t.ok(capabilities.status === 200 || refusalProblem(capabilities) === undefined, `GET /v1/capabilities with a garbage body: ${capabilities.status}`);
  t.equal((await runtime.sender.send('GET', '/healthz', undefined)).status, 200, 'still healthy');
  // The fuzz may have deleted the sample VM: a new one shows the runtime still serves driver calls.
  const after: Identity = { uid: '0a1b2c3d-0000-4000-8000-0000000000f3', namespace: 'default', name: 'after' };
  const again = await call(runtime, '/v1/create', JSON.stringify({ spec: basicSpec('after', after) }), AUTHORIZED);
  t.equal(typeof again === 'string' ? again : again.status, 200, 'and still serving driver calls');
  const log = runtime.logs.join('');
  t.notMatch(log, CANARY, 'no user-data in the log');
  t.notMatch(log, TOKEN, 'no token in the log');
  t.notMatch(log, '"driver call failed"', 'no driver call failed unexpectedly');
  t.notOk(prototypePolluted(), 'Object.prototype is untouched');
});

t.test('a driver error that quotes a multi-line, megabyte request value comes back as one bounded line', async (t) => {
  const runtime = await startRuntime();
  t.teardown(() => runtime.close());
  const id = `line one\r\nline two\u2028${'x'.repeat(MIB)}`;
  const answer = await call(runtime, '/v1/describe', JSON.stringify({ id }), AUTHORIZED);
  if (typeof answer === 'string') return t.fail(answer);
  t.equal(answer.status, DRIVER_ERROR_STATUS);
  const { error } = JSON.parse(answer.body) as ErrorEnvelope;
  t.equal(error.code, 'NotFound', 'the typed error is kept');
  t.match(error.message, /^VM line one line two xxx/, 'line breaks became spaces');
  t.equal(error.message.length, MAX_MESSAGE_CHARS + 1, 'cut at the bound, with an ellipsis');
  t.ok(error.message.endsWith('…'));
  t.equal(messageProblem(error.message), undefined);
});
