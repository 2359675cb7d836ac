import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { VsphereClient, vsphereConfigFromEnv } from '../../../src/hypervisors/vsphere/index.js';
import { startFakeVim } from '../../helpers/vcsim.js';

function throwAwayCertificate(): { key: string; cert: string } | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'vc-tls-'));
  try {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')],
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
const skip = pair === undefined ? 'openssl is not available to make a throw-away certificate' : false;

async function serviceContent(t: Test, env: Record<string, string>) {
  if (pair === undefined) throw new Error('no certificate');
  const fake = await startFakeVim(t, () => undefined, pair);
  const client = new VsphereClient(vsphereConfigFromEnv({ VSPHERE_ENDPOINT: fake.url, VSPHERE_USERNAME: 'svc', VSPHERE_PASSWORD: 'pw', ...env }));
  t.teardown(() => client.close());
  return client.serviceContent();
}

t.test('an untrusted certificate is refused by default, with advice', { skip }, async (t) => {
  await t.rejects(serviceContent(t, {}), { code: 'Unreachable', message: /TLS certificate of 127\.0\.0\.1:\d+ is not trusted .*VSPHERE_CA_BUNDLE/ });
});

t.test('a CA bundle makes the certificate trusted', { skip }, async (t) => {
  t.equal((await serviceContent(t, { VSPHERE_CA_BUNDLE: pair?.cert ?? '' })).about.apiVersion, '6.5');
});

t.test('VSPHERE_INSECURE_SKIP_VERIFY=true is the explicit opt-out', { skip }, async (t) => {
  t.equal((await serviceContent(t, { VSPHERE_INSECURE_SKIP_VERIFY: 'true' })).about.apiVersion, '6.5');
});
