// Every hook route the server registers (read from its route table, so a new route is fuzzed without
// being listed here) gets malformed requests over a real loopback socket: broken bytes, wrong media
// types, deep nesting, pollution and duplicate keys, missing required fields and wrong types at
// every depth of a valid body, huge strings, arrays and maps, oversized bodies. Each must be
// refused with a 4xx and one short plain line that quotes no secret, within a deadline, and the
// server must keep answering. Hostile but valid values go through the hooks to the simulator and
// arrive there as written. The seed is in the test names; VIRTRIGAUD_FUZZ_SEED replays another.
import t from 'tap';
import { Value } from '@sinclair/typebox/value';
import { KINDS } from '../../src/contracts/crds/index.js';
import { CustomizeResponse, SyncResponse } from '../../src/contracts/metacontroller.js';
import { compositeController } from '../../src/manifests/controllers.js';
import { exampleBody, secret } from '../helpers/bodies.js';
import { hookBody, object, VM_SPEC } from '../helpers/hook-bodies.js';
import { testServer } from '../helpers/server.js';
import {
  CANARY,
  Generator,
  HOSTILE_TEXT,
  MIB,
  clone,
  deepText,
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
  type Path,
} from './kit.js';
import { routeSamples, skeleton } from './route-samples.js';

const SEED = Number(process.env['VIRTRIGAUD_FUZZ_SEED'] ?? 20_261_217);
/** Generated bodies per route class (customize, sync, finalize), spread over the class's routes. */
const BODIES_PER_CLASS = 300;
const DEADLINE_MS = 5000;
/** An accepted answer stays well under what the apiserver takes in one object write. */
const MAX_ANSWER_BYTES = 1 * MIB;

type Body = Record<string, Json>;

const { app, world, logs } = testServer({ simulator: { durations: { create: 0, powerOn: 0, boot: 0 } } });
const schemas = recordBodySchemas(app);
const origin = await app.listen({ host: '127.0.0.1', port: 0 });
const port = Number(new URL(origin).port);
const BODY_LIMIT = app.initialConfig.bodyLimit ?? MIB;
const sender = new Sender(origin, DEADLINE_MS);
t.teardown(async () => {
  await sender.close();
  await app.close();
});

const hookRoutes = servedRoutes(app)
  .filter((route) => route.method === 'POST' && route.path.startsWith('/hooks/'))
  .map((route) => route.path);
const curated = routeSamples();

const samples = new Map<string, Body>();

/** The route's valid body (do not change it), with a secret where secrets travel (a related Secret, user-data). */
function sampleFor(route: string): Body {
  let sample = samples.get(route);
  if (!sample) samples.set(route, (sample = sampleWithSecrets(route)));
  return sample;
}

function sampleWithSecrets(route: string): Body {
  const body = clone((curated[route] ?? skeleton(route)) as Json) as Body;
  if (route.endsWith('/customize')) return body;
  const related = (body['related'] ?? {}) as Record<string, Json>;
  related['Secret.v1'] = { ...((related['Secret.v1'] ?? {}) as Record<string, Json>), 'default/fuzz-canary': secret('default', 'fuzz-canary', { password: CANARY }) as Json };
  body['related'] = related;
  const userData = getAt(body, ['parent', 'spec', 'userData', 'cloudInit']);
  if (userData !== null && typeof userData === 'object' && !Array.isArray(userData)) userData['inline'] = `#cloud-config\npassword: ${CANARY}\n`;
  return body;
}

const factsByRoute = new Map<string, ReturnType<typeof schemaFacts>>();
function factsFor(route: string): ReturnType<typeof schemaFacts> {
  let found = factsByRoute.get(route);
  if (!found) factsByRoute.set(route, (found = schemaFacts(sampleFor(route), schemas.get(route) ?? {})));
  return found;
}

const classOf = (route: string) => route.slice(route.lastIndexOf('/') + 1);

/** A POST with this body and Content-Type (null: none), or what went wrong when no answer came. */
async function post(route: string, payload: string | Buffer | undefined, contentType: string | null = 'application/json'): Promise<Answer | string> {
  try {
    return await sender.send('POST', route, payload, contentType === null ? {} : { 'content-type': contentType });
  } catch (error) {
    return `no answer within ${DEADLINE_MS} ms (${error instanceof Error ? error.message : String(error)})`;
  }
}

/** What is wrong with an answer to a body that may be valid: a refusal must be proper, an acceptance must fit the contract. */
function answerProblem(route: string, answer: Answer | string, strict: boolean, sentBytes: number): string | undefined {
  if (typeof answer === 'string') return answer;
  if (answer.status === 200 && !strict) {
    if (answer.body.length > Math.max(MAX_ANSWER_BYTES, sentBytes)) return `a ${answer.body.length}-byte answer`;
    const schema = classOf(route) === 'customize' ? CustomizeResponse : SyncResponse;
    let json: unknown;
    try {
      json = JSON.parse(answer.body);
    } catch {
      return 'a 200 whose body is not JSON';
    }
    return Value.Check(schema, json) ? undefined : `a 200 that does not fit the ${classOf(route)} response contract`;
  }
  return refusalProblem(answer);
}

/** Whether the route still takes its valid sample (a route fuzzed from a skeleton: still answers it properly). */
async function stillServes(route: string): Promise<string | undefined> {
  const answer = await post(route, JSON.stringify(sampleFor(route)));
  if (typeof answer === 'string') return `${route}: the valid body got ${answer}`;
  if (curated[route] === undefined) return answerProblem(route, answer, false, 0);
  return answer.status === 200 ? undefined : `${route}: the valid body got ${answer.status} ${answer.body.slice(0, 120)}`;
}

t.test('the fuzzed routes are the server\'s own: every path a CompositeController names, and no other', async (t) => {
  const named = KINDS.flatMap((kind) => Object.values(compositeController(kind).spec.hooks).map((hook) => hook.webhook.path));
  t.same([...hookRoutes].sort(), [...named].sort(), 'the route table and the controllers agree');
  t.ok(hookRoutes.length >= 30, `${hookRoutes.length} hook routes`);
  const bare = hookRoutes.filter((route) => curated[route] === undefined);
  if (bare.length > 0) t.comment(`fuzzed from a skeleton only (add a sample to test/fuzz/route-samples.ts): ${bare.join(', ')}`);
});

t.test('every route accepts its valid sample, so mutations start from an accepted body', async (t) => {
  for (const route of hookRoutes) {
    if (curated[route] === undefined) continue;
    t.equal(await stillServes(route), undefined, route);
    t.ok(schemas.has(route), `${route}: its body schema was seen`);
  }
});

t.test('malformed requests to every route are refused with one plain line (fixed cases)', async (t) => {
  const problems: string[] = [];
  let cases = 0;
  for (const route of hookRoutes) {
    const sample = sampleFor(route);
    const schema = schemas.get(route);
    const requests = malformedCases(sample).map((request) => ({ ...request, strict: true }));
    if (schema) {
      // Every required field missing, one at a time, at every depth.
      const { required, typed } = schemaFacts(sample, schema);
      for (const path of required) requests.push({ name: `missing ${dotted(path)}`, payload: JSON.stringify(without(sample, path)), contentType: 'application/json', strict: true });
      // The wrong type at one typed place of each depth (and at the root).
      const byDepth = new Map<number, (typeof typed)[number]>();
      for (const entry of typed) if (!byDepth.has(entry.path.length)) byDepth.set(entry.path.length, entry);
      const generator = new Generator(SEED ^ route.length);
      for (const entry of byDepth.values()) {
        const value = generator.wrongType(entry.type);
        requests.push({ name: `${JSON.stringify(value)} at ${dotted(entry.path)} (a ${entry.type})`, payload: JSON.stringify(withValue(sample, entry.path, value)), contentType: 'application/json', strict: true });
      }
    }
    for (const request of requests) {
      const answer = await post(route, request.payload, request.contentType ?? null);
      cases++;
      const problem = answerProblem(route, answer, request.strict, 0);
      if (problem) problems.push(`${route} [${request.name}]: ${problem}`);
    }
    const serving = await stillServes(route);
    if (serving) problems.push(serving);
  }
  t.same(problems, [], `${cases} requests to ${hookRoutes.length} routes`);
  t.notOk(prototypePolluted(), 'Object.prototype is untouched');
});

t.test(`generated malformed bodies, ${BODIES_PER_CLASS} per route class (seed ${SEED})`, async (t) => {
  const generator = new Generator(SEED);
  const problems: string[] = [];
  const tally: Record<string, number> = {};
  const slowest = { ms: 0, what: '' };
  for (const hookClass of ['customize', 'sync', 'finalize']) {
    const routes = hookRoutes.filter((route) => classOf(route) === hookClass);
    for (let index = 0; index < BODIES_PER_CLASS; index++) {
      const route = routes[index % routes.length] as string;
      const sample = sampleFor(route);
      const facts = factsFor(route);
      const { text, what, strict } = mutation(generator, sample, facts, index);
      const answer = await post(route, text);
      const problem = answerProblem(route, answer, strict, text.length);
      if (problem) problems.push(`${route} case ${index} [${what}]: ${problem}`);
      if (typeof answer !== 'string') {
        tally[answer.status] = (tally[answer.status] ?? 0) + 1;
        if (answer.ms > slowest.ms) Object.assign(slowest, { ms: answer.ms, what: `${route} case ${index} [${what}]` });
      }
    }
    for (const route of routes) {
      const serving = await stillServes(route);
      if (serving) problems.push(serving);
    }
  }
  t.same(problems, [], `outcomes ${JSON.stringify(tally)}; slowest ${slowest.ms.toFixed(0)} ms: ${slowest.what}`);
  t.ok((tally['400'] ?? 0) + (tally['422'] ?? 0) > BODIES_PER_CLASS, 'most bodies were refused');
  t.notOk(prototypePolluted(), 'Object.prototype is untouched');
});

function hasType(value: Json | undefined, type: string): boolean {
  if (value === undefined || value === null) return false;
  if (type === 'array') return Array.isArray(value);
  if (type === 'object') return typeof value === 'object' && !Array.isArray(value);
  if (type === 'integer') return Number.isInteger(value);
  return typeof value === type;
}

/**
 * One generated body. The kinds rotate over 16 slots so that each route class gets each kind in
 * the same share (the expensive huge ones in one slot each); where they apply (wrong types,
 * missing required fields, deep nesting) the depth rotates too, so every depth is hit. Strict:
 * the schema forbids the result, so only a refusal will do.
 */
function mutation(generator: Generator, sample: Body, facts: ReturnType<typeof schemaFacts>, index: number): { text: string; what: string; strict: boolean } {
  const depths = [...new Set(facts.typed.map((entry) => entry.path.length))].sort((a, b) => a - b);
  const atDepth = <T,>(items: T[], pathOf: (item: T) => Path): T | undefined => {
    const depth = depths[Math.floor(index / 16) % depths.length] ?? 0;
    const level = items.filter((item) => pathOf(item).length === depth);
    return generator.pick(level.length > 0 ? level : items);
  };
  const strings = facts.typed.filter((entry) => entry.type === 'string');
  const collections = facts.typed.filter((entry) => entry.type === 'array' || entry.type === 'object');
  const slot = index % 16;
  if (slot < 5) {
    const entry = atDepth(facts.typed, (item) => item.path);
    if (entry) {
      const value = generator.wrongType(entry.type);
      return { text: JSON.stringify(withValue(sample, entry.path, value)), what: `${JSON.stringify(value)} at ${dotted(entry.path)}`, strict: true };
    }
  } else if (slot < 7) {
    const path = atDepth(facts.required, (item) => item);
    if (path) return { text: JSON.stringify(without(sample, path)), what: `missing ${dotted(path)}`, strict: true };
  } else if (slot === 7) {
    const entry = generator.pick(strings.length > 0 ? strings : facts.typed);
    if (entry) return { text: textWithRaw(sample, entry.path, JSON.stringify(generator.hugeString())), what: `1 MiB string at ${dotted(entry.path)}`, strict: false };
  } else if (slot === 8) {
    const entry = generator.pick(collections);
    if (entry) return { text: textWithRaw(sample, entry.path, generator.hugeCollectionText(getAt(sample, entry.path))), what: `huge ${entry.type} at ${dotted(entry.path)}`, strict: false };
  } else if (slot < 11) {
    const entry = atDepth(facts.typed, (item) => item.path);
    if (entry) return { text: textWithRaw(sample, entry.path, deepText(10_000, generator.random() < 0.5)), what: `10 000 levels at ${dotted(entry.path)}`, strict: true };
  } else if (slot < 13) {
    const entry = generator.pick(strings);
    if (entry) {
      const value = generator.hostileText();
      return { text: JSON.stringify(withValue(sample, entry.path, value)), what: `${JSON.stringify(value).slice(0, 60)} at ${dotted(entry.path)}`, strict: false };
    }
  } else {
    // Two or three edits at once: an unknown field, hostile text, a wrong type.
    let body: Json = sample;
    const edits: string[] = [];
    let strict = false;
    for (let count = 2 + generator.int(2); count > 0; count--) {
      const entry = generator.pick(facts.typed);
      // An earlier edit may have replaced what this path leads through.
      if (!entry || !hasType(getAt(body, entry.path), entry.type)) continue;
      const kind = generator.int(3);
      if (kind === 0 && entry.type === 'object') {
        body = withValue(body, [...entry.path, generator.pick(['zz', 'extra', 'status', 'spec', ''])], generator.hostileText());
        edits.push(`extra field in ${dotted(entry.path)}`);
      } else if (kind === 1 && entry.type === 'string') {
        body = withValue(body, entry.path, generator.hostileText());
        edits.push(`hostile text at ${dotted(entry.path)}`);
      } else {
        body = withValue(body, entry.path, generator.wrongType(entry.type));
        edits.push(`wrong type at ${dotted(entry.path)}`);
        strict = true;
      }
    }
    return { text: JSON.stringify(body), what: edits.join(', '), strict };
  }
  return { text: JSON.stringify(sample), what: 'unchanged', strict: false };
}

t.test('oversized bodies are refused with 413 before they are read, on every route', async (t) => {
  const problems: string[] = [];
  for (const route of hookRoutes) {
    // The whole Content-Length is announced but only a little is sent: the answer must not wait for the rest.
    const head = `POST ${route} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${BODY_LIMIT + 1}\r\n\r\n`;
    const answer = await rawExchange(port, head, Buffer.from('{"controller":{},"parent":"'), DEADLINE_MS);
    const problem = answer.status === 0 ? `no answer within ${DEADLINE_MS} ms` : refusalProblem(answer);
    if (problem || answer.status !== 413) problems.push(`${route}: ${answer.status} ${problem ?? answer.body}`);
  }
  t.same(problems, [], `${hookRoutes.length} routes`);

  // Chunked, so no length is announced: the limit is found while reading.
  const route = hookRoutes[0] as string;
  const head = `POST ${route} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n`;
  const chunk = (data: Buffer) => Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from('\r\n')]);
  const chunked = Buffer.concat([
    chunk(Buffer.from('{"x":"')),
    ...Array.from({ length: 17 }, () => chunk(Buffer.alloc(MIB, 'x'))),
    Buffer.from('0\r\n\r\n'),
  ]);
  const answer = await rawExchange(port, head, chunked, DEADLINE_MS);
  t.equal(answer.status, 413, 'a chunked body past the limit');
  t.equal(refusalProblem(answer), undefined, 'as one plain line');
  t.equal(await stillServes(route), undefined, 'and the server still serves');
});

t.test('a key written twice in one object is refused whatever its spelling: two parsers could read two requests', async (t) => {
  const text = JSON.stringify(sampleFor('/hooks/vmclass/sync'));
  const cases: [string, string][] = [
    [`{"controller":"x",${text.slice(1)}`, 'controller'],
    [text.replace('"spec":{', '"spec":{"cpus":64,'), 'cpus'],
    [text.replace('"spec":{', '"spec":{"\\u0063pus":64,'), 'cpus'],
    [text.replace('"metadata":{', '"metadata":{"name":"other",'), 'name'],
  ];
  for (const [payload, key] of cases) {
    const answer = await post('/hooks/vmclass/sync', payload);
    t.equal(typeof answer === 'string' ? answer : `${answer.status} ${answer.body}`, `400 body has the key "${key}" twice in one object`, key);
  }
  const alike = await post('/hooks/vmclass/sync', text.replace('"spec":{', '"spec":{"x":{"cpus":1},"y":{"cpus":1},'));
  t.not(typeof alike === 'string' ? alike : alike.status, 400, 'the same key in two different objects is fine (a schema may still refuse the field)');
});

// ------------------------------------------------------------------ hostile but valid values

const HOSTILE_USER_DATA = ['#cloud-config', ...HOSTILE_TEXT.filter((text) => !text.includes('\ud83d')).map((text, index) => `k${index}: ${JSON.stringify(text)}`), ''].join('\n');
const HOSTILE_LABELS: Record<string, string> = Object.fromEntries(
  HOSTILE_TEXT.filter((text) => text !== '' && !text.includes('\ud83d')).map((text, index) => [`fuzz.example/l${index}`, text]),
);

t.test('hostile user-data, labels and snapshot descriptions reach the simulator as written', async (t) => {
  const body = exampleBody('virtualmachine-sync');
  const vm = body.parent;
  vm.metadata = { ...vm.metadata, name: 'hostile', uid: 'uid-hostile', labels: HOSTILE_LABELS, annotations: { 'fuzz.example/note': HOSTILE_TEXT.join('\n') } };
  vm.spec['userData'] = { cloudInit: { secretRef: { name: 'hostile-user-data' } } };
  body.related['Secret.v1'] = { 'default/hostile-user-data': secret('default', 'hostile-user-data', { userdata: HOSTILE_USER_DATA }) };
  const before = world.listVMs().length;
  const first = await post('/hooks/virtualmachine/sync', JSON.stringify(body));
  t.equal(typeof first === 'string' ? first : first.status, 200, 'the sync is accepted');
  const created = world.listVMs().find((observed) => observed.owner?.uid === 'uid-hostile');
  t.ok(created, 'the VM was created');
  t.equal(world.listVMs().length, before + 1, 'exactly one VM');
  if (!created) return;
  t.equal(world.guestData(created.id).userData, HOSTILE_USER_DATA, 'user-data arrives byte for byte');
  const placed = world.inventory().hosts.flatMap((host) => host.placed ?? []).find((info) => info.name === created.name);
  t.same(placed?.labels, HOSTILE_LABELS, 'labels are recorded as written');
  if (typeof first !== 'string') t.notOk(first.body.includes(HOSTILE_USER_DATA.slice(0, 40)), 'user-data is not echoed in the answer');

  // A snapshot of it, described with every hostile text at once.
  const description = HOSTILE_TEXT.filter((text) => !text.includes('\ud83d')).join(' | ').slice(0, 1000);
  const source = { ...vm, status: { providerID: created.id } };
  const snapshot = object('VMSnapshot', 'hostile-snap', { spec: { vmRef: { name: 'hostile' }, description } });
  const related = Object.values(body.related).flatMap((objects) => Object.values(objects));
  const answer = await post('/hooks/vmsnapshot/sync', JSON.stringify(hookBody(snapshot, [source, ...related])));
  t.equal(typeof answer === 'string' ? answer : answer.status, 200, 'the snapshot sync is accepted');
  const listed = world.snapshotList({ id: created.id, owner: { uid: 'uid-hostile', namespace: 'default', name: 'hostile' } });
  t.equal(listed.length, 1, 'one snapshot');
  t.ok(listed[0]?.description?.includes(description), 'its description holds the text as written');
});

t.test('names with shell and XML metacharacters are refused before any driver call', async (t) => {
  const calls = world.totalCalls();
  for (const name of ['$(reboot)', 'web;rm -rf /', '<domain>', 'a]]>b', 'x&amp;y', "it's", 'a\nb', 'ünï', 'web\u0000']) {
    const vm = object('VirtualMachine', name, { spec: VM_SPEC });
    const answer = await post('/hooks/virtualmachine/sync', JSON.stringify(hookBody(vm)));
    t.equal(typeof answer === 'string' ? answer : refusalProblem(answer), undefined, JSON.stringify(name));
  }
  t.equal(world.totalCalls(), calls, 'the simulator received no call');
});

t.test('after all of it the server is healthy, logged no secret and no internal error', async (t) => {
  t.equal((await sender.send('GET', '/healthz', undefined)).status, 200);
  const log = logs.join('');
  t.notMatch(log, CANARY, 'no secret in the log');
  t.notMatch(log, '"hook failed"', 'no hook failed unexpectedly');
  t.notOk(prototypePolluted());
});
