import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { UnreachableError } from '../../../src/contracts/driver.js';
import { ProxmoxClient } from '../../../src/hypervisors/proxmox/client.js';
import { proxmoxConfigFromEnv } from '../../../src/hypervisors/proxmox/config.js';
import { TOKEN_ENV, recorded } from './pve-stub.js';

function throwAwayCertificate(): { key: string; cert: string } | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'pve-tls-'));
  try {
    execFileSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
        '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
        '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    return { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
  } catch {
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const pair = throwAwayCertificate();

async function httpsPve(t: Test, certificate: { key: string; cert: string }): Promise<string> {
  const server = createServer(certificate, (_request, response) => {
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify(recorded('version.pve9')));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function client(t: Test, env: Record<string, string>): ProxmoxClient {
  const created = new ProxmoxClient(proxmoxConfigFromEnv({ ...TOKEN_ENV, ...env }));
  t.teardown(() => created.close());
  return created;
}

const skip = pair === undefined ? 'openssl is not available to make a throw-away certificate' : false;

t.test('an untrusted certificate is refused by default, with advice in the message', { skip }, async (t) => {
  if (pair === undefined) return;
  const endpoint = await httpsPve(t, pair);
  const error = await client(t, { PVE_ENDPOINT: endpoint }).get('/version').catch((caught: unknown) => caught);
  t.ok(error instanceof UnreachableError);
  t.match((error as Error).message, /TLS certificate of 127\.0\.0\.1:\d+ is not trusted .*PVE_CA_BUNDLE.*PVE_INSECURE_SKIP_VERIFY/);
});

t.test('the certificate is accepted when PVE_CA_BUNDLE holds it', { skip }, async (t) => {
  if (pair === undefined) return;
  const endpoint = await httpsPve(t, pair);
  const version = await client(t, { PVE_ENDPOINT: endpoint, PVE_CA_BUNDLE: pair.cert }).get('/version');
  t.same(version, recorded('version.pve9')['data']);
});

t.test('the certificate is accepted unverified when PVE_INSECURE_SKIP_VERIFY is true', { skip }, async (t) => {
  if (pair === undefined) return;
  const endpoint = await httpsPve(t, pair);
  const version = await client(t, { PVE_ENDPOINT: endpoint, PVE_INSECURE_SKIP_VERIFY: 'true' }).get('/version');
  t.same(version, recorded('version.pve9')['data']);
});

t.test('a CA bundle of another authority does not make the certificate trusted', { skip }, async (t) => {
  const other = throwAwayCertificate();
  if (pair === undefined || other === undefined) return;
  const endpoint = await httpsPve(t, pair);
  const error = await client(t, { PVE_ENDPOINT: endpoint, PVE_CA_BUNDLE: other.cert }).get('/version').catch((caught: unknown) => caught);
  t.ok(error instanceof UnreachableError);
});
