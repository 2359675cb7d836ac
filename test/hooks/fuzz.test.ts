// Generated hostile bodies over every hook route and every provider-runtime route, from a fixed
// seed: never a 5xx, never a hang, always a bounded answer (one plain line when refused, a
// contract-shaped body when accepted), and the server keeps answering.
import t from 'tap';
import { Value } from '@sinclair/typebox/value';
import type { FastifyInstance } from 'fastify';
import { CustomizeResponse, SyncResponse } from '../../src/contracts/metacontroller.js';
import { REMOTE_METHOD_NAMES, remotePath } from '../../src/contracts/remote.js';
import { buildProviderRuntime, ProviderRuntimeMetrics } from '../../src/hypervisors/remote/index.js';
import { SimulatedHypervisor, SimulatorDriver } from '../../src/hypervisors/simulator/index.js';
import { BodyFuzzer, seededRandom } from '../helpers/fuzz.js';
import { routeBodies } from '../helpers/hook-bodies.js';
import { testServer } from '../helpers/server.js';

const SEED = Number(process.env['VIRTRIGAUD_FUZZ_SEED'] ?? 20261207);
const CASES_PER_HOOK_ROUTE = 160;
const CASES_PER_RUNTIME_ROUTE = 40;
/** Well under the apiserver's 1.5 MiB request limit, and under what Metacontroller would mind. */
const MAX_ANSWER_BYTES = 256 * 1024;
const PER_CASE_TIMEOUT_MS = 5000;

async function send(app: FastifyInstance, url: string, payload: string | Buffer, contentType: string, headers: Record<string, string> = {}) {
  const request = app.inject({ method: 'POST', url, payload, headers: { 'content-type': contentType, ...headers } });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${PER_CASE_TIMEOUT_MS} ms`)), PER_CASE_TIMEOUT_MS)));
  try {
    return await Promise.race([request, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function payloadFor(fuzzer: BodyFuzzer, base: unknown): { payload: string | Buffer; contentType: string } {
  if (fuzzer.int(10) === 0) return fuzzer.brokenBytes(base);
  return { payload: JSON.stringify(fuzzer.mutate(base)), contentType: 'application/json' };
}

t.test(`every hook route survives ${CASES_PER_HOOK_ROUTE} generated hostile bodies (seed ${SEED})`, async (t) => {
  const fuzzer = new BodyFuzzer(seededRandom(SEED));
  const { app } = testServer({ simulator: { durations: { create: 0, powerOn: 0, boot: 0 } } });
  t.teardown(() => app.close());
  const tally: Record<string, number> = {};
  let cases = 0;
  for (const [route, base] of Object.entries(routeBodies())) {
    const customize = route.endsWith('/customize');
    for (let index = 0; index < CASES_PER_HOOK_ROUTE; index++) {
      const { payload, contentType } = payloadFor(fuzzer, base);
      const response = await send(app, route, payload, contentType);
      cases++;
      const status = response.statusCode;
      tally[String(status)] = (tally[String(status)] ?? 0) + 1;
      const where = `${route} case ${index}`;
      if (status >= 500) t.fail(`${where}: ${status} ${response.body.slice(0, 200)}`);
      if (response.body.length > MAX_ANSWER_BYTES) t.fail(`${where}: ${response.body.length}-byte answer`);
      if (status === 200) {
        const json: unknown = response.json();
        const schema = customize ? CustomizeResponse : SyncResponse;
        if (!Value.Check(schema, json)) t.fail(`${where}: the answer does not fit the ${customize ? 'customize' : 'sync'} response contract`);
      } else if (response.body.includes('\n') || response.body.length > 600 || !/^text\/plain/.test(String(response.headers['content-type']))) {
        t.fail(`${where}: ${status} is not one plain line: ${response.body.slice(0, 100)}`);
      }
    }
    t.equal((await app.inject('/healthz')).statusCode, 200, `${route}: still healthy`);
  }
  t.ok(cases >= 2000, `${cases} cases`);
  t.ok((tally['200'] ?? 0) > 100 && (tally['400'] ?? 0) > 100 && (tally['422'] ?? 0) > 10, `outcomes ${JSON.stringify(tally)}`);
});

t.test(`every provider-runtime route survives ${CASES_PER_RUNTIME_ROUTE} generated hostile bodies (seed ${SEED})`, async (t) => {
  const fuzzer = new BodyFuzzer(seededRandom(SEED + 1));
  const hypervisor = new SimulatedHypervisor();
  const token = 'fuzz-runtime-token';
  const app = buildProviderRuntime({ driver: new SimulatorDriver(hypervisor), token, logger: false, metrics: new ProviderRuntimeMetrics({ processMetrics: false }) });
  t.teardown(() => app.close());
  const owner = { uid: '0a1b2c3d-0000-4000-8000-000000000009', namespace: 'default', name: 'web' };
  const base = { id: '100', uid: owner.uid, ref: { id: '100', owner }, operation: 'on', change: { cpus: 2 }, disk: 'root', sizeBytes: 1, task: 'UPID:x', snapshotId: 's', request: { name: 's', memory: false, quiesce: false }, target: { name: 'copy', owner, linked: true } };
  let cases = 0;
  for (const method of REMOTE_METHOD_NAMES) {
    for (let index = 0; index < CASES_PER_RUNTIME_ROUTE; index++) {
      const { payload, contentType } = payloadFor(fuzzer, base);
      const response = await send(app, remotePath(method), payload, contentType, { authorization: `Bearer ${token}` });
      cases++;
      if (response.statusCode >= 500) t.fail(`${method} case ${index}: ${response.statusCode} ${response.body.slice(0, 200)}`);
      if (response.body.length > MAX_ANSWER_BYTES) t.fail(`${method} case ${index}: ${response.body.length}-byte answer`);
    }
  }
  t.ok(cases >= 500, `${cases} cases`);
  t.equal((await app.inject('/healthz')).statusCode, 200);
});
