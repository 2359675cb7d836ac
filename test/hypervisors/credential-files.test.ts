// A rotated credential takes effect without a restart: the runtime reads the mounted Secret's
// files again when the hypervisor refuses the old one.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { UnauthorizedError } from '../../src/contracts/driver.js';
import { CredentialReloadingDriver, readCredentialFiles } from '../../src/hypervisors/common/credential-files.js';
import type { Env } from '../../src/hypervisors/common/env.js';
import { SimulatedHypervisor, SimulatorDriver } from '../../src/hypervisors/simulator/index.js';

/** A simulator that accepts one token only, the one it was built with being checked against `valid`. */
class TokenDriver extends SimulatorDriver {
  constructor(
    readonly token: string | undefined,
    private readonly valid: () => string,
  ) {
    super(new SimulatedHypervisor());
  }

  override probe(): Promise<{ version: string }> {
    if (this.token !== this.valid()) return Promise.reject(new UnauthorizedError('authentication failure: token revoked'));
    return Promise.resolve({ version: `token ${this.token}` });
  }
}

t.test('<NAME>_FILE is read into <NAME>; a missing optional key stays unset', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vr-credentials-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'token_secret'), 's3cret');
  const first = readCredentialFiles({ PVE_TOKEN_SECRET_FILE: join(dir, 'token_secret'), PVE_CA_BUNDLE_FILE: join(dir, 'ca.crt'), PVE_ENDPOINT: 'https://pve:8006' });
  t.equal(first.env['PVE_TOKEN_SECRET'], 's3cret');
  t.notOk('PVE_CA_BUNDLE' in first.env);
  t.equal(first.env['PVE_ENDPOINT'], 'https://pve:8006');
  writeFileSync(join(dir, 'token_secret'), 'rotated');
  t.not(readCredentialFiles({ PVE_TOKEN_SECRET_FILE: join(dir, 'token_secret') }).fingerprint, first.fingerprint);
});

t.test('after a rotation, the call refused with the old credential is made again with the new one', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vr-credentials-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'token_secret');
  writeFileSync(file, 'old');
  let valid = 'old';
  let builds = 0;
  const driver = new CredentialReloadingDriver({ PVE_TOKEN_SECRET_FILE: file }, (env: Env) => (builds++, new TokenDriver(env['PVE_TOKEN_SECRET'], () => valid)));
  t.match(await driver.probe(), { version: 'token old' });

  // The admin rotates: the old token is revoked, the Secret (the file) holds the new one.
  valid = 'new';
  writeFileSync(file, 'new');
  t.match(await driver.probe(), { version: 'token new' }, 'no restart needed');
  t.equal(builds, 2);

  // Revoked without a new one on disk: refused, and nothing is rebuilt in a loop.
  valid = 'newer';
  await t.rejects(driver.probe(), { code: 'Unauthorized' });
  await t.rejects(driver.probe(), { code: 'Unauthorized' });
  t.equal(builds, 2);
});
