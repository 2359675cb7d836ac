// `serve` as an operator starts it: where it listens with and without a hook token, what it says
// about it, and how it stops (SIGTERM to `npm start` stops the server after its in-flight calls).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { exampleBody } from './helpers/bodies.js';
import { openSocket, parseAnswer, postRaw } from './helpers/raw-http.js';

const ROOT = new URL('../', import.meta.url);

interface Started {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function start(command: string[], env: Record<string, string>): Started {
  const child = spawn(command[0]!, command.slice(1), {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => (clearTimeout(timer), resolve(code))));
  return { child, stdout: () => stdout, stderr: () => stderr, exited };
}

const serve = (env: Record<string, string>, flags: string[] = []) => start([process.execPath, '--import', 'tsx', 'src/main.ts', 'serve', ...flags], env);

/** The addresses the server logged it listens on, once it has. */
async function listening(started: Started, t: Test): Promise<{ host: string; port: number }[]> {
  for (let waited = 0; waited < 40_000; waited += 100) {
    const found = [...started.stdout().matchAll(/Server listening at http:\/\/([^"]+):(\d+)"/g)].map((match) => ({ host: match[1]!, port: Number(match[2]) }));
    if (found.length > 0) return found;
    if (started.child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  t.fail(`the server did not start: ${started.stderr()}`);
  return [];
}

function tokenFile(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'virtrigaud-serve-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'token');
  writeFileSync(file, 'the-hook-token\n');
  return file;
}

t.test('without a hook token, serve listens on loopback only and warns that the hooks are open', async (t) => {
  const started = serve({});
  t.teardown(() => started.child.kill('SIGKILL'));
  const addresses = await listening(started, t);
  t.same(addresses.map((address) => address.host), ['127.0.0.1']);
  t.match(started.stdout(), /"level":40,.*"msg":"hooks are open to local callers \(no HOOK_TOKEN_FILE\); listening on loopback only"/);
  started.child.kill('SIGTERM');
  t.equal(await started.exited, 0);
});

t.test('without a hook token, a non-loopback HOST is refused unless --insecure says so', async (t) => {
  const refused = serve({ HOST: '0.0.0.0' });
  t.equal(await refused.exited, 2);
  t.equal(refused.stderr(), 'HOST=0.0.0.0 without HOOK_TOKEN_FILE would open the hooks to the network: set HOOK_TOKEN_FILE, or pass --insecure to accept that\n');

  const insecure = serve({}, ['--insecure']);
  t.teardown(() => insecure.child.kill('SIGKILL'));
  const addresses = await listening(insecure, t);
  t.ok(addresses.length > 0);
  t.match(insecure.stdout(), /"level":40,.*"insecure":true,.*"msg":"hooks are open to anyone who can reach this address/);
  insecure.child.kill('SIGTERM');
  t.equal(await insecure.exited, 0);
});

t.test('with a hook token, serve listens on every address and refuses callers without it', async (t) => {
  const started = serve({ HOOK_TOKEN_FILE: tokenFile(t) });
  t.teardown(() => started.child.kill('SIGKILL'));
  const [address] = await listening(started, t);
  t.notMatch(started.stdout(), 'hooks are open');
  const refused = await postRaw(address!.port, '/hooks/virtualmachine/sync', exampleBody('virtualmachine-sync'));
  t.equal(refused.status, 401);
  const allowed = await postRaw(address!.port, '/hooks/virtualmachine/sync', exampleBody('virtualmachine-sync'), { Authorization: 'Bearer the-hook-token' });
  t.equal(allowed.status, 200);
  started.child.kill('SIGTERM');
  t.equal(await started.exited, 0);
});

t.test('an unknown flag is a usage error', async (t) => {
  const started = serve({}, ['--nope']);
  t.equal(await started.exited, 2);
  t.match(started.stderr(), /^usage: /);
});

t.test('SIGTERM to npm start stops the server, after the request in flight is answered', async (t) => {
  const started = start(['npm', 'start', '--silent'], {});
  t.teardown(() => started.child.kill('SIGKILL'));
  const [address] = await listening(started, t);
  const port = address!.port;
  const body = JSON.stringify(exampleBody('virtualmachine-sync'));
  const socket = await openSocket(port);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk) => chunks.push(chunk));
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  socket.write(`POST /hooks/virtualmachine/sync HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 100)}`);
  await new Promise((resolve) => setTimeout(resolve, 300));
  started.child.kill('SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 300));
  socket.write(body.slice(100));
  await closed;
  t.equal(parseAnswer(Buffer.concat(chunks).toString('utf8')).status, 200, 'the request in flight was answered');
  t.equal(await started.exited, 0, 'npm exits once the server has stopped');
  t.match(started.stdout(), /"reason":"SIGTERM","msg":"shutting down/);
  const stillThere = await openSocket(port).then(
    (leftover) => (leftover.destroy(), true),
    () => false,
  );
  t.notOk(stillThere, 'nothing listens on the port any more');
});

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

async function getUntilAnswered(url: string): Promise<{ status: number; body: string }> {
  for (let waited = 0; waited < 20_000; waited += 100) {
    try {
      const answer = await fetch(url);
      return { status: answer.status, body: await answer.text() };
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`${url} never answered`);
}

t.test('METRICS_BIND_ADDRESS and HEALTH_PROBE_BIND_ADDRESS open listeners of their own, each serving only its paths', async (t) => {
  const [metricsPort, healthPort] = [await freePort(), await freePort()];
  const started = serve({ METRICS_BIND_ADDRESS: `127.0.0.1:${metricsPort}`, HEALTH_PROBE_BIND_ADDRESS: `127.0.0.1:${healthPort}` });
  t.teardown(() => started.child.kill('SIGKILL'));
  await listening(started, t);
  const metrics = await getUntilAnswered(`http://127.0.0.1:${metricsPort}/metrics`);
  t.equal(metrics.status, 200);
  t.match(metrics.body, /# TYPE proxmox_operator_reconciliation_duration_seconds histogram/);
  t.equal((await getUntilAnswered(`http://127.0.0.1:${metricsPort}/healthz`)).status, 404, 'the metrics listener serves /metrics only');
  t.match(await getUntilAnswered(`http://127.0.0.1:${healthPort}/healthz`), { status: 200, body: /ok/ });
  t.match(await getUntilAnswered(`http://127.0.0.1:${healthPort}/readyz`), { status: 200 });
  t.equal((await getUntilAnswered(`http://127.0.0.1:${healthPort}/metrics`)).status, 404, 'the probe listener serves the probes only');
  t.equal((await getUntilAnswered(`http://127.0.0.1:${healthPort}/hooks/virtualmachine/sync`)).status, 404, 'no hooks there');
  started.child.kill('SIGTERM');
  t.equal(await started.exited, 0, 'stops cleanly with its side listeners');
});

for (const [variable, value, message] of [
  ['RECONCILE_INTERVAL', 'fast', /RECONCILE_INTERVAL must be a duration from 1s to 24h/],
  ['MAX_CONCURRENT_RECONCILES', '0', /MAX_CONCURRENT_RECONCILES must be a whole number from 1 to 1000/],
  ['METRICS_BIND_ADDRESS', 'localhost', /METRICS_BIND_ADDRESS must look like :8080/],
] as const) {
  t.test(`serve refuses ${variable}=${value} with one line`, async (t) => {
    const started = serve({ [variable]: value });
    t.equal(await started.exited, 2);
    t.match(started.stderr(), message);
  });
}
