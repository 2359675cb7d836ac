// What the hook server refuses, and how: each case of the hardening issue, one test each.
import t from 'tap';
import type { FastifyInstance } from 'fastify';
import { exampleBody, secret } from '../helpers/bodies.js';
import { rawRequest } from '../helpers/raw-http.js';
import { testServer } from '../helpers/server.js';

type Json = Record<string, any>;
const SYNC = '/hooks/virtualmachine/sync';

async function post(app: FastifyInstance, url: string, payload: string | Buffer | object, headers: Record<string, string> = {}) {
  const response = await app.inject({ method: 'POST', url, payload, headers: { 'content-type': 'application/json', ...headers } });
  return { status: response.statusCode, body: response.body, json: () => response.json() as Json };
}

function ready(json: Json): Json {
  return json['status']['conditions'].find((condition: Json) => condition.type === 'Ready');
}

t.test('a body that is not valid UTF-8 is a 400 that says so, not a silently repaired namespace', async (t) => {
  const { app, world } = testServer();
  t.teardown(() => app.close());
  const text = JSON.stringify(exampleBody('virtualmachine-sync')).replace('"namespace":"default"', '"namespace":"de\u0000fault"');
  const bytes = Buffer.from(text);
  bytes[bytes.indexOf(0)] = 0xff;
  const response = await post(app, SYNC, bytes);
  t.equal(response.status, 400);
  t.equal(response.body, 'body is not valid UTF-8');
  t.equal(world.listVMs().length, 0);
});

t.test('a charset other than UTF-8 is a 415', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const body = Buffer.from(JSON.stringify(exampleBody('virtualmachine-sync')), 'utf16le');
  const response = await post(app, SYNC, body, { 'content-type': 'application/json; charset=utf-16' });
  t.equal(response.status, 415);
  t.equal(response.body, 'charset utf-16 is not supported: send the JSON body in UTF-8');
  const utf8 = await post(app, SYNC, exampleBody('virtualmachine-sync'), { 'content-type': 'application/json; charset=UTF-8' });
  t.equal(utf8.status, 200, 'an explicit UTF-8 charset is fine');
});

t.test('text/plain and other media types are a 415, not "body must be object"', async (t) => {
  const { app, world } = testServer();
  t.teardown(() => app.close());
  for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/yaml', 'multipart/form-data; boundary=x']) {
    const response = await post(app, SYNC, JSON.stringify(exampleBody('virtualmachine-sync')), { 'content-type': type });
    t.equal(response.status, 415, type);
    t.equal(response.body, 'content type not supported: send the body as application/json');
  }
  t.equal(world.listVMs().length, 0);
});

t.test('__proto__ and constructor.prototype keys are refused by name, with where they are', async (t) => {
  const { app, world } = testServer();
  t.teardown(() => app.close());
  const text = JSON.stringify(exampleBody('virtualmachine-sync'));
  const proto = await post(app, SYNC, text.replace('"classRef":', '"__proto__":{"polluted":true},"classRef":'));
  t.equal(proto.status, 400);
  t.equal(proto.body, 'body has a forbidden key "__proto__" at parent.spec.__proto__');
  const escaped = await post(app, SYNC, text.replace('"classRef":', '"\\u005f_proto__":{"polluted":true},"classRef":'));
  t.equal(escaped.status, 400, 'an escaped spelling is the same key');
  const constructor = await post(app, SYNC, text.replace('"classRef":', '"constructor":{"prototype":{"x":1}},"classRef":'));
  t.equal(constructor.status, 400);
  t.equal(constructor.body, 'body has a forbidden key "constructor.prototype" at parent.spec.constructor');
  t.equal(({} as Json)['polluted'], undefined);
  t.equal(world.listVMs().length, 0);
});

t.test('a body nested 10 000 levels deep is refused at parse time, and the server keeps answering', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const deep = `{"controller":{},"parent":${'['.repeat(10_000)}${']'.repeat(10_000)}}`;
  const response = await post(app, SYNC, deep);
  t.equal(response.status, 400);
  t.equal(response.body, 'body is nested deeper than 100 levels');
  const inStrings = await post(app, SYNC, JSON.stringify({ ...exampleBody('virtualmachine-sync'), note: '['.repeat(10_000) }));
  t.equal(inStrings.status, 200, 'brackets inside strings do not count');
  t.equal((await app.inject('/healthz')).statusCode, 200);
});

t.test('JSON syntax errors say where, never quote the body', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const response = await post(app, SYNC, '{"parent": {"secret": "CANARY-IN-BODY" oops}}');
  t.equal(response.status, 400);
  t.match(response.body, /^body is not valid JSON( \(at byte \d+\))?$/);
  t.notMatch(response.body, 'CANARY');
  for (const [payload, message] of [
    ['', 'body is empty: a JSON object is expected'],
    ['[1,2]', 'body must be a JSON object'],
    ['"text"', 'body must be a JSON object'],
  ] as const) {
    const answer = await post(app, SYNC, payload);
    t.equal(answer.status, 400, JSON.stringify(payload));
    t.equal(answer.body, message);
  }
});

t.test('a wrong apiVersion or kind is answered with the expected value', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const body = exampleBody('virtualmachine-sync');
  body.parent['apiVersion'] = 'infra.example.io/v1';
  const apiVersion = await post(app, SYNC, body);
  t.equal(apiVersion.status, 400);
  t.equal(apiVersion.body, 'invalid body: parent.apiVersion must be "infra.virtrigaud.io/v1beta1"');
  const other = exampleBody('virtualmachine-sync');
  other.parent['kind'] = 'VMClass';
  const kind = await post(app, SYNC, other);
  t.equal(kind.body, 'invalid body: parent.kind must be "VirtualMachine"');
  const missing = exampleBody('virtualmachine-sync');
  delete missing.parent.spec['classRef'];
  const required = await post(app, SYNC, missing);
  t.equal(required.status, 422);
  t.equal(required.body, 'invalid body: parent.spec is missing the required field "classRef"');
});

t.test('object names and namespaces follow the apiserver\'s rules, so no request can mint metric series or log lines', async (t) => {
  const { app, world } = testServer();
  t.teardown(() => app.close());
  for (const [field, value] of [
    ['namespace', 'default/a\nb'],
    ['namespace', '<script>alert(1)</script>'],
    ['name', 'web server'],
    ['name', 'x'.repeat(254)],
    ['uid', 'a b'],
  ] as const) {
    const body = exampleBody('virtualmachine-sync');
    body.parent.metadata[field] = value;
    const response = await post(app, SYNC, body);
    t.equal(response.status, 400, `${field} ${JSON.stringify(value).slice(0, 40)}`);
    t.match(response.body, new RegExp(`^invalid body: parent\\.metadata\\.${field} must `));
    t.ok(response.body.length < 300);
  }
  const related = exampleBody('virtualmachine-sync');
  const provider = related.related['Provider.infra.virtrigaud.io/v1beta1']!['default/sim']!;
  (provider['metadata'] as Json)['name'] = 'sim\n{evil="1"}';
  const refused = await post(app, SYNC, related);
  t.equal(refused.status, 400, 'related objects too');
  t.equal(world.listVMs().length, 0);
});

t.test('however many Providers requests name, the metric series stay bounded', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  for (let index = 0; index < 400; index++) {
    const body = exampleBody('virtualmachine-sync');
    const name = `sim-${index}`;
    body.parent.metadata['uid'] = `00000000-0000-4000-8000-${String(index).padStart(12, '0')}`;
    body.parent.spec['providerRef'] = { name };
    const provider = body.related['Provider.infra.virtrigaud.io/v1beta1']!['default/sim']!;
    (provider['metadata'] as Json)['name'] = name;
    t.equal((await post(app, SYNC, body)).status, 200);
  }
  const metrics = (await app.inject('/metrics')).body;
  const providers = new Set([...metrics.matchAll(/virtrigaud_driver_calls_total\{provider="([^"]*)"/g)].map((match) => match[1]));
  t.ok(providers.size <= 201, `${providers.size} provider label values`);
  t.ok(providers.has('other'), 'the rest share one series');
});

t.test('an invalid related VMClass is a condition that names the object and the field', async (t) => {
  const { app, world } = testServer();
  t.teardown(() => app.close());
  const body = exampleBody('virtualmachine-sync');
  const vmClass = body.related['VMClass.infra.virtrigaud.io/v1beta1']!['default/small']!;
  (vmClass['spec'] as Json)['cpus'] = 'two';
  const response = await post(app, SYNC, body);
  t.equal(response.status, 200);
  t.match(ready(response.json()), { status: 'False', reason: 'ClassInvalid', message: 'VMClass default/small is invalid: spec.cpus: expected integer' });
  t.equal(world.listVMs().length, 0);
});

t.test('Secret user-data obeys the inline rules: valid base64, UTF-8 text, at most 64 Ki characters', async (t) => {
  const { app, world } = testServer();
  t.teardown(() => app.close());
  const cases: [string, (data: Record<string, string>) => void, RegExp][] = [
    ['not base64', (data) => (data['userdata'] = 'not*base64!'), /key "userdata" is not valid base64$/],
    ['unpadded garbage', (data) => (data['userdata'] = 'abc'), /is not valid base64$/],
    ['binary', (data) => (data['userdata'] = Buffer.from([0xff, 0xfe, 0x00, 0x80]).toString('base64')), /is not UTF-8 text/],
    ['2 MiB', (data) => (data['userdata'] = Buffer.from('#cloud-config\n' + 'a'.repeat(2 * 1024 * 1024)).toString('base64')), /user-data is limited to 65536$/],
  ];
  for (const [what, spoil, message] of cases) {
    const body = exampleBody('virtualmachine-sync');
    body.parent.spec['userData'] = { cloudInit: { secretRef: { name: 'web-cloudinit' } } };
    const object = secret('default', 'web-cloudinit', { userdata: '#cloud-config\n' });
    spoil(object['data'] as Record<string, string>);
    body.related['Secret.v1'] = { 'default/web-cloudinit': object };
    const response = await post(app, SYNC, body);
    t.equal(response.status, 200, what);
    t.match(ready(response.json()), { reason: 'SecretInvalid', message }, what);
    t.ok(response.body.length < 8192, `${what}: nothing of the data is echoed`);
  }
  t.equal(world.listVMs().length, 0, 'no VM boots with garbage user-data');
});

t.test('Fastify\'s own 404 answers one plain line without echoing an 8 KB URL', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const response = await app.inject({ method: 'POST', url: `/hooks/${'x'.repeat(8192)}`, payload: {} });
  t.equal(response.statusCode, 404);
  t.match(response.headers['content-type'], /^text\/plain/);
  t.ok(response.body.length < 150, `${response.body.length} bytes`);
  t.notMatch(response.body, '\n');
});

async function listen(app: FastifyInstance): Promise<number> {
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

t.test('oversized headers (431) and malformed HTTP (400) get the same one-line plain answers', async (t) => {
  const { app } = testServer();
  t.teardown(() => app.close());
  const port = await listen(app);
  const big = await rawRequest(port, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
  t.equal(big.status, 431);
  t.equal(big.body, 'request headers are too large');
  const broken = await rawRequest(port, 'GARBAGE\r\n\r\n');
  t.equal(broken.status, 400);
  t.equal(broken.body, 'malformed HTTP request');
  const badLength = await rawRequest(port, 'POST /hooks/virtualmachine/sync HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}');
  t.equal(badLength.status, 400);
  t.equal((await app.inject('/healthz')).statusCode, 200);
});
