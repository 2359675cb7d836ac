import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';

const ROOT = new URL('../../../', import.meta.url);

/** Runs `main.ts provider` with only the given environment; kills it if it has not exited in 20 s. */
function provider(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'provider'], {
      cwd: ROOT,
      env: { PATH: process.env['PATH'] ?? '', HOST: '127.0.0.1', PORT: '0', ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

function tokenFile(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'virtrigaud-provider-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'token');
  writeFileSync(file, 'a-runtime-token\n');
  return file;
}

t.test('the provider command refuses to start without a token file', async (t) => {
  const { code, stderr } = await provider({ PROVIDER_TYPE: 'simulator' });
  t.equal(code, 1);
  t.equal(stderr, 'PROVIDER_TOKEN_FILE is required: the runtime never serves without a token\n');
});

t.test('the provider command refuses to start with a bad PVE_ENDPOINT', async (t) => {
  const { code, stderr } = await provider({
    PROVIDER_TYPE: 'proxmox',
    PROVIDER_TOKEN_FILE: tokenFile(t),
    PVE_ENDPOINT: 'not a url',
    PVE_TOKEN_ID: 'root@pam!virtrigaud',
    PVE_TOKEN_SECRET: 'a-secret-value',
  });
  t.equal(code, 1);
  t.equal(stderr, 'Failed to create PVE client error="invalid endpoint URL"\n');
});

for (const [type, variable, secretVariable] of [
  ['libvirt', 'LIBVIRT_URI', 'LIBVIRT_PASSWORD'],
  ['vsphere', 'VSPHERE_ENDPOINT', 'VSPHERE_PASSWORD'],
] as const) {
  t.test(`the ${type} provider command refuses to start without ${variable}, naming it and no secret`, async (t) => {
    const { code, stderr } = await provider({ PROVIDER_TYPE: type, PROVIDER_TOKEN_FILE: tokenFile(t), [secretVariable]: 'a-secret-value' });
    t.equal(code, 1);
    t.match(stderr, new RegExp(`^Failed to create (libvirt|vSphere) client error=".*${variable}.*"\n$`));
    t.notMatch(stderr, 'a-secret-value');
  });
}

t.test('the provider command refuses an unknown provider type', async (t) => {
  const { code, stderr } = await provider({ PROVIDER_TYPE: 'hyperv', PROVIDER_TOKEN_FILE: tokenFile(t) });
  t.equal(code, 1);
  t.equal(stderr, 'PROVIDER_TYPE must be simulator, proxmox, libvirt, vsphere, not "hyperv"\n');
});

/** A provider runtime process serving a simulator on 127.0.0.1, and its URL once it listens. */
async function runtimeProcess(t: Test, env: Record<string, string> = {}) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'provider'], {
    cwd: ROOT,
    env: { PATH: process.env['PATH'] ?? '', HOST: '127.0.0.1', PORT: '0', PROVIDER_TYPE: 'simulator', PROVIDER_TOKEN_FILE: tokenFile(t), ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  t.teardown(() => clearTimeout(timer));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      const match = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (match?.[1]) resolve(match[1]);
    });
    child.on('close', () => reject(new Error(`exited before listening: ${out}`)));
  });
  return { child, exited, url };
}

t.test('the provider command serves a simulator with the token and stops cleanly on SIGTERM', async (t) => {
  const { child, exited, url } = await runtimeProcess(t, { RUNTIME_DRAIN_IDLE_SECONDS: '0.2' });
  t.equal((await fetch(`${url}/healthz`)).status, 200);
  t.equal((await fetch(`${url}/v1/capabilities`)).status, 401);
  const answer = await fetch(`${url}/v1/capabilities`, { headers: { authorization: 'Bearer a-runtime-token' } });
  t.match(await answer.json(), { type: 'simulator' }, 'the token file is read without its trailing newline');
  child.kill('SIGTERM');
  t.equal(await exited, 0);
});

t.test('after SIGTERM a runtime keeps serving the calls that still come, fails readiness, and stops once they end', async (t) => {
  const { child, exited, url } = await runtimeProcess(t, { RUNTIME_DRAIN_IDLE_SECONDS: '1.5' });
  const call = () => fetch(`${url}/v1/describe`, { method: 'POST', headers: { authorization: 'Bearer a-runtime-token', 'content-type': 'application/json' }, body: '{"id":"404"}' });
  child.kill('SIGTERM');
  let served = 0;
  for (let index = 0; index < 8; index++) {
    await new Promise((resolve) => setTimeout(resolve, 500));
    if ((await call()).status === 409) served++;
  }
  t.equal(served, 8, 'four seconds of calls after SIGTERM, each answered (NotFound) by the driver');
  t.equal((await fetch(`${url}/readyz`)).status, 503, 'not ready: no new traffic through the Service');
  t.equal(await exited, 0, 'and it stops once nobody calls');
});
