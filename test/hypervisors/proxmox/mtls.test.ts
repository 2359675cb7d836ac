// Mutual TLS to Proxmox VE (the Viti seed's clientCertificate/clientKey): PVE_CLIENT_CERT and
// PVE_CLIENT_KEY are presented to an endpoint that demands a client certificate. Peers: the PVE
// fake over HTTPS with requestCert/rejectUnauthorized (Node's TLS server), `openssl s_server`
// (OpenSSL's, which answers a refused certificate with an alert as nginx and HAProxy do), and an
// nginx-shaped 400 page. The PKI is test/fixtures/tls (its README says how it was made).
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import t, { type Test } from 'tap';
import { UnauthorizedError, UnreachableError, isDriverError } from '../../../src/contracts/driver.js';
import { CredentialReloadingDriver } from '../../../src/hypervisors/common/credential-files.js';
import { ProxmoxConfigError, describeConfig, proxmoxConfigFromEnv } from '../../../src/hypervisors/proxmox/config.js';
import { ProxmoxDriver } from '../../../src/hypervisors/proxmox/driver.js';
import { FakePve } from '../../fakes/proxmox/index.js';
import type { FakeTlsOptions } from '../../fakes/proxmox/server.js';

const TLS_DIR = fileURLToPath(new URL('../../fixtures/tls/', import.meta.url));
const pem = (name: string): string => readFileSync(join(TLS_DIR, name), 'utf8');

const CA = pem('ca.pem');
const OTHER_CA = pem('other-ca.pem');
const SERVER = { key: pem('server.key'), cert: pem('server.pem') };
const CLIENT = { cert: pem('client.pem'), key: pem('client.key') };
const OTHER_CLIENT = { cert: pem('other-client.pem'), key: pem('other-client.key') };
const TOKEN = { PVE_TOKEN_ID: 'virtrigaud@pve!vrtg', PVE_TOKEN_SECRET: 'secret-token' };

/** The base64 lines of a PEM key: none of them may appear anywhere but in the key itself. */
function keyLines(key: string): string[] {
  return key.split('\n').filter((line) => line !== '' && !line.startsWith('-----'));
}
const KEY_MATERIAL = [...keyLines(CLIENT.key), ...keyLines(OTHER_CLIENT.key)];

function assertNoKeyMaterial(t: Test, text: string, what: string): void {
  t.notOk(
    KEY_MATERIAL.some((line) => text.includes(line)),
    `${what} carries no key material`,
  );
  t.notMatch(text, /PRIVATE KEY/, `${what} names no PEM key block`);
}

/** The PVE fake over HTTPS, demanding a client certificate signed by the test CA; stopped by the test. */
async function mutualFake(t: Test): Promise<FakePve> {
  const tls: FakeTlsOptions = { ...SERVER, clientCa: CA };
  const fake = await FakePve.start({ tls, taskDurationMs: 40, bootMs: 80 });
  t.teardown(() => fake.close());
  return fake;
}

function driverFor(t: Test, endpoint: string, env: Record<string, string>): ProxmoxDriver {
  const driver = new ProxmoxDriver(proxmoxConfigFromEnv({ ...TOKEN, PVE_ENDPOINT: endpoint, ...env }));
  t.teardown(() => driver.close());
  return driver;
}

async function failure(promise: Promise<unknown>): Promise<Error> {
  const outcome = await promise.then(
    () => undefined,
    (error: unknown) => error,
  );
  if (!(outcome instanceof Error)) throw new Error('the call was expected to fail, and succeeded');
  return outcome;
}

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'vr-mtls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('the fixtures hold what the tests rely on: distinct keys, and the server certificate for 127.0.0.1', async (t) => {
  t.not(CLIENT.key, OTHER_CLIENT.key);
  t.match(SERVER.cert, /-----BEGIN CERTIFICATE-----/);
  t.ok(KEY_MATERIAL.length >= 4, 'the key lines to look for are not empty');
});

t.test('with the CA bundle and a client certificate of the CA the server trusts, driver calls succeed', async (t) => {
  const fake = await mutualFake(t);
  const driver = driverFor(t, fake.url, { PVE_CA_BUNDLE: CA, PVE_CLIENT_CERT: CLIENT.cert, PVE_CLIENT_KEY: CLIENT.key });
  t.match(await driver.probe(), { version: '9.1' });
  const inventory = await driver.inventory();
  t.ok(inventory.hosts.length > 0, 'the inventory lists the fake nodes');
  t.equal(await driver.findByIdentity('8d3f2a10-1111-4000-8000-00000000c0de'), undefined);
  t.ok(fake.requests.some((request) => request.path === '/version' && request.status === 200), 'the fake served the calls');
});

t.test('without a client certificate the call fails Unauthorized, saying the server demanded one, and nothing crashes', async (t) => {
  const fake = await mutualFake(t);
  const driver = driverFor(t, fake.url, { PVE_CA_BUNDLE: CA });
  for (let attempt = 0; attempt < 2; attempt++) {
    const error = await failure(driver.probe());
    t.ok(error instanceof UnauthorizedError, `attempt ${attempt + 1}: Unauthorized, not ${error.name}`);
    t.match(error.message, /^127\.0\.0\.1:\d+ demanded a client certificate \(ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED\): set PVE_CLIENT_CERT and PVE_CLIENT_KEY$/);
  }
  t.same(fake.requests, [], 'no request got past the handshake');
  // The same runtime goes on serving: a client with the certificate is answered.
  const good = driverFor(t, fake.url, { PVE_CA_BUNDLE: CA, PVE_CLIENT_CERT: CLIENT.cert, PVE_CLIENT_KEY: CLIENT.key });
  t.match(await good.probe(), { version: '9.1' });
});

t.test('a client certificate of another CA is refused, and the request never reaches the API', async (t) => {
  const fake = await mutualFake(t);
  const driver = driverFor(t, fake.url, { PVE_CA_BUNDLE: CA, PVE_CLIENT_CERT: OTHER_CLIENT.cert, PVE_CLIENT_KEY: OTHER_CLIENT.key });
  const error = await failure(driver.probe());
  // Node's TLS server hangs up after the handshake without an alert: all a client can tell is that
  // the connection closed unanswered.
  t.ok(isDriverError(error), 'a typed Driver error');
  t.ok(error instanceof UnreachableError || error instanceof UnauthorizedError, `refused, as ${error.name}`);
  t.match(error.message, /127\.0\.0\.1:\d+/);
  assertNoKeyMaterial(t, `${error.message}\n${error.stack ?? ''}\n${inspect(error)}`, 'the error');
  t.same(fake.requests, [], 'the fake served nothing');
});

t.test('a server certificate outside the CA bundle is the existing "not trusted" error, client certificate or not', async (t) => {
  const fake = await mutualFake(t);
  const driver = driverFor(t, fake.url, { PVE_CA_BUNDLE: OTHER_CA, PVE_CLIENT_CERT: CLIENT.cert, PVE_CLIENT_KEY: CLIENT.key });
  const error = await failure(driver.probe());
  t.ok(error instanceof UnreachableError);
  t.match(error.message, /^TLS certificate of 127\.0\.0\.1:\d+ is not trusted \(\w+\): set PVE_CA_BUNDLE/);
  assertNoKeyMaterial(t, `${error.message}\n${inspect(error)}`, 'the error');
  t.same(fake.requests, []);
});

t.test('PVE_CLIENT_CERT and PVE_CLIENT_KEY go together, are checked at startup, and no error shows either value', async (t) => {
  const base = { ...TOKEN, PVE_ENDPOINT: 'https://pve.example.com:8006' };
  const cases: [env: Record<string, string>, message: RegExp][] = [
    [{ PVE_CLIENT_CERT: CLIENT.cert }, /^PVE_CLIENT_KEY is required with PVE_CLIENT_CERT$/],
    [{ PVE_CLIENT_KEY: CLIENT.key }, /^PVE_CLIENT_CERT is required with PVE_CLIENT_KEY$/],
    [{ PVE_CLIENT_CERT: CLIENT.cert, PVE_CLIENT_KEY: OTHER_CLIENT.key }, /^PVE_CLIENT_KEY is not the key of the certificate in PVE_CLIENT_CERT$/],
    [{ PVE_CLIENT_CERT: 'not a certificate', PVE_CLIENT_KEY: CLIENT.key }, /^PVE_CLIENT_CERT must hold a certificate in PEM$/],
    [{ PVE_CLIENT_CERT: CLIENT.cert, PVE_CLIENT_KEY: CLIENT.cert }, /^PVE_CLIENT_KEY must hold a private key in PEM$/],
    [{ PVE_CLIENT_CERT: CLIENT.key, PVE_CLIENT_KEY: CLIENT.key }, /^PVE_CLIENT_CERT holds a private key/],
    [{ PVE_CLIENT_CERT: `${CLIENT.cert}${CLIENT.key}`, PVE_CLIENT_KEY: CLIENT.key }, /^PVE_CLIENT_CERT holds a private key/],
    [{ PVE_CLIENT_CERT: CLIENT.cert, PVE_CLIENT_KEY: CLIENT.key.replace(/[A-Za-z]{8}/, 'AAAAAAAA') }, /^PVE_CLIENT_KEY (must hold|is not the key)/],
  ];
  for (const [env, message] of cases) {
    let caught: unknown;
    try {
      proxmoxConfigFromEnv({ ...base, ...env });
    } catch (error) {
      caught = error;
    }
    t.ok(caught instanceof ProxmoxConfigError, `refused: ${Object.keys(env).join(' + ')}`);
    const text = caught instanceof Error ? caught.message : '';
    t.match(text, message);
    t.notMatch(text, /BEGIN|END/, 'no PEM quoted');
    assertNoKeyMaterial(t, `${text}\n${inspect(caught)}`, 'the config error');
  }
});

t.test('an encrypted client key is refused with the reason, not the key', async (t) => {
  const { createPrivateKey } = await import('node:crypto');
  const encrypted = createPrivateKey(CLIENT.key).export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pass' }).toString();
  t.throws(
    () => proxmoxConfigFromEnv({ ...TOKEN, PVE_ENDPOINT: 'https://pve:8006', PVE_CLIENT_CERT: CLIENT.cert, PVE_CLIENT_KEY: encrypted }),
    { message: 'PVE_CLIENT_KEY is encrypted: give the key without a passphrase' },
  );
});

t.test('the configuration says "client certificate" in its summary and shows the key nowhere', async (t) => {
  const config = proxmoxConfigFromEnv({ ...TOKEN, PVE_ENDPOINT: 'https://pve:8006', PVE_CA_BUNDLE: CA, PVE_CLIENT_CERT: CLIENT.cert, PVE_CLIENT_KEY: CLIENT.key });
  t.equal(describeConfig(config), 'Proxmox VE at https://pve:8006/api2/json as token virtrigaud@pve!vrtg (TLS with CA bundle, client certificate)');
  t.equal(config.clientCertificate?.key.reveal(), CLIENT.key.trim(), 'the key is kept, behind reveal()');
  assertNoKeyMaterial(t, JSON.stringify(config), 'the config as JSON');
  assertNoKeyMaterial(t, inspect(config, { depth: 10 }), 'the config inspected');
  assertNoKeyMaterial(t, `${String(config.clientCertificate?.key)}`, 'the key as a string');
  const plain = proxmoxConfigFromEnv({ ...TOKEN, PVE_ENDPOINT: 'https://pve:8006' });
  t.equal(describeConfig(plain), 'Proxmox VE at https://pve:8006/api2/json as token virtrigaud@pve!vrtg (TLS verified)');
  t.equal(plain.clientCertificate, undefined);
});

t.test('the certificate and key are read from <NAME>_FILE, and files that appear later are read when the server refuses the call', async (t) => {
  const fake = await mutualFake(t);
  const dir = tempDir(t);
  const env = {
    ...TOKEN,
    PVE_ENDPOINT: fake.url,
    PVE_CA_BUNDLE: CA,
    PVE_CLIENT_CERT_FILE: join(dir, 'tls.crt'),
    PVE_CLIENT_KEY_FILE: join(dir, 'tls.key'),
  };
  let builds = 0;
  const driver = new CredentialReloadingDriver(env, (resolved) => (builds++, new ProxmoxDriver(proxmoxConfigFromEnv(resolved))));
  t.teardown(() => driver.close());
  // The Secret's keys are not there yet: no certificate, and the server demands one.
  await t.rejects(driver.probe(), UnauthorizedError);
  writeFileSync(join(dir, 'tls.crt'), CLIENT.cert);
  writeFileSync(join(dir, 'tls.key'), CLIENT.key);
  t.match(await driver.probe(), { version: '9.1' }, 'the same driver, rebuilt from the files, without a restart');
  t.equal(builds, 2);
});

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const noOpenssl = hasOpenssl() ? false : 'the openssl command is not available to play a TLS terminator';

/** `openssl s_server` demanding a client certificate of the test CA and refusing others with an alert; serves files below `root`. */
async function opensslServer(t: Test, root: string, extra: string[] = []): Promise<string> {
  const child = spawn(
    'openssl',
    [
      's_server', '-accept', '127.0.0.1:0', '-WWW',
      '-cert', join(TLS_DIR, 'server.pem'), '-key', join(TLS_DIR, 'server.key'),
      '-CAfile', join(TLS_DIR, 'ca.pem'), '-Verify', '1', '-verify_return_error',
      ...extra,
    ],
    { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  t.teardown(async () => {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    await exited;
  });
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error('openssl s_server did not start listening within 5 s')), 5000);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      const port = /ACCEPT 127\.0\.0\.1:(\d+)/.exec(output)?.[1];
      if (port === undefined) return;
      clearTimeout(timer);
      resolve(`https://127.0.0.1:${port}`);
    });
  });
}

/** A directory s_server -WWW serves PVE's /version from. */
function versionRoot(t: Test): string {
  const root = tempDir(t);
  mkdirSync(join(root, 'api2', 'json'), { recursive: true });
  writeFileSync(join(root, 'api2', 'json', 'version'), JSON.stringify({ data: { release: '9.1', version: '9.1.9' } }));
  return root;
}

t.test('a TLS terminator that refuses the client certificate with an alert gives Unauthorized; the rotated certificate is then used', { skip: noOpenssl }, async (t) => {
  const root = versionRoot(t);
  const endpoint = await opensslServer(t, root);
  const dir = tempDir(t);
  writeFileSync(join(dir, 'tls.crt'), OTHER_CLIENT.cert);
  writeFileSync(join(dir, 'tls.key'), OTHER_CLIENT.key);
  const env = { ...TOKEN, PVE_ENDPOINT: endpoint, PVE_CA_BUNDLE: CA, PVE_CLIENT_CERT_FILE: join(dir, 'tls.crt'), PVE_CLIENT_KEY_FILE: join(dir, 'tls.key') };
  const driver = new CredentialReloadingDriver(env, (resolved) => new ProxmoxDriver(proxmoxConfigFromEnv(resolved)));
  t.teardown(() => driver.close());

  const refused = await failure(driver.probe());
  t.ok(refused instanceof UnauthorizedError, `Unauthorized, not ${refused.name}`);
  t.match(refused.message, /^127\.0\.0\.1:\d+ refused the client certificate in PVE_CLIENT_CERT \(ERR_SSL_TLSV1_ALERT_UNKNOWN_CA\)$/);
  assertNoKeyMaterial(t, `${refused.message}\n${inspect(refused)}`, 'the refusal');

  // The certificate is rotated on disk (cert-manager renewing the Secret): the next call uses it.
  writeFileSync(join(dir, 'tls.crt'), CLIENT.cert);
  writeFileSync(join(dir, 'tls.key'), CLIENT.key);
  t.match(await driver.probe(), { version: '9.1.9' });
});

t.test('a TLS 1.2 server refusing a connection without a client certificate says it may demand one', { skip: noOpenssl }, async (t) => {
  const root = versionRoot(t);
  const endpoint = await opensslServer(t, root, ['-tls1_2']);
  const error = await failure(driverFor(t, endpoint, { PVE_CA_BUNDLE: CA }).probe());
  t.ok(error instanceof UnreachableError, 'a handshake failure alone may be a cipher mismatch: retried, not a credential');
  t.match(error.message, /^TLS handshake with 127\.0\.0\.1:\d+ failed \(ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE\); if it demands a client certificate, set PVE_CLIENT_CERT and PVE_CLIENT_KEY$/);
});

for (const [page, expected] of [
  ['No required SSL certificate was sent', /^127\.0\.0\.1:\d+ demanded a client certificate \(its TLS proxy answered "No required SSL certificate was sent"\): set PVE_CLIENT_CERT and PVE_CLIENT_KEY$/],
  ['The SSL certificate error', /^127\.0\.0\.1:\d+ refused the client certificate in PVE_CLIENT_CERT \(its TLS proxy answered "The SSL certificate error"\)$/],
] as const) {
  t.test(`nginx's "400 ${page}" page is Unauthorized, not an invalid request`, async (t) => {
    const body = `<html>\r\n<head><title>400 ${page}</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>${page}</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n`;
    const server = createServer(SERVER, (_request, response) => {
      response.writeHead(400, 'Bad Request', { 'content-type': 'text/html', server: 'nginx' });
      response.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.teardown(
      () =>
        new Promise<void>((resolve) => {
          server.closeAllConnections();
          server.close(() => resolve());
        }),
    );
    const endpoint = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const error = await failure(driverFor(t, endpoint, { PVE_CA_BUNDLE: CA }).probe());
    t.ok(error instanceof UnauthorizedError, `Unauthorized, not ${error.name}`);
    t.match(error.message, expected);
  });
}
