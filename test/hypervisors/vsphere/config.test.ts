import { inspect } from 'node:util';
import t from 'tap';
import { describeConfig, normalizeEndpoint, vsphereConfigFromEnv } from '../../../src/hypervisors/vsphere/index.js';

const BASE = { VSPHERE_ENDPOINT: 'https://vc.example.com', VSPHERE_USERNAME: 'svc@vsphere.local', VSPHERE_PASSWORD: 'hunter2-secret' };

t.test('the endpoint is accepted with or without /sdk', async (t) => {
  t.same(normalizeEndpoint('https://vc.example.com:443'), { origin: 'https://vc.example.com', sdkPath: '/sdk' });
  t.same(normalizeEndpoint('https://vc.example.com/sdk/'), { origin: 'https://vc.example.com', sdkPath: '/sdk' });
  t.same(normalizeEndpoint('https://proxy.example.com:8443/vc1/sdk'), { origin: 'https://proxy.example.com:8443', sdkPath: '/vc1/sdk' });
});

t.test('a full environment gives credentials, TLS settings and placement defaults', async (t) => {
  const config = vsphereConfigFromEnv({
    ...BASE,
    VSPHERE_DATACENTER: 'DC1',
    VSPHERE_FOLDER: 'team-a',
    VSPHERE_CLUSTER: 'C1',
    VSPHERE_RESOURCE_POOL: 'pool-a',
    VSPHERE_DATASTORE: 'ds1',
    VSPHERE_HOST: 'esx1',
  });
  t.equal(config.username, 'svc@vsphere.local');
  t.equal(config.password.reveal(), 'hunter2-secret');
  t.equal(config.insecureSkipVerify, false, 'TLS is verified by default');
  t.same(config.defaults, { datacenter: 'DC1', folder: 'team-a', cluster: 'C1', resourcePool: 'pool-a', datastore: 'ds1', host: 'esx1' });
});

t.test('the password never shows in JSON, inspect or the log line', async (t) => {
  const config = vsphereConfigFromEnv(BASE);
  t.notMatch(JSON.stringify(config), 'hunter2');
  t.notMatch(inspect(config, { depth: 5 }), 'hunter2');
  t.equal(describeConfig(config), 'vSphere at https://vc.example.com/sdk as svc@vsphere.local (TLS verified)');
  t.match(describeConfig(vsphereConfigFromEnv({ ...BASE, VSPHERE_INSECURE_SKIP_VERIFY: 'true' })), 'TLS unverified');
});

t.test('configuration errors name the variable, never a secret value', async (t) => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ ...BASE, VSPHERE_ENDPOINT: '' }, /VSPHERE_ENDPOINT is required/],
    [{ ...BASE, VSPHERE_ENDPOINT: 'ftp://vc' }, /VSPHERE_ENDPOINT must be an http\(s\) URL/],
    [{ ...BASE, VSPHERE_ENDPOINT: 'https://user:hunter2-secret@vc' }, /must not carry credentials/],
    [{ ...BASE, VSPHERE_USERNAME: '' }, /VSPHERE_USERNAME is required/],
    [{ ...BASE, VSPHERE_PASSWORD: '' }, /VSPHERE_PASSWORD is required/],
    [{ ...BASE, VSPHERE_INSECURE_SKIP_VERIFY: 'perhaps' }, /VSPHERE_INSECURE_SKIP_VERIFY must be true or false/],
    [{ ...BASE, VSPHERE_CA_BUNDLE: 'hunter2-secret' }, /VSPHERE_CA_BUNDLE must hold PEM certificates/],
  ];
  for (const [env, message] of cases) {
    try {
      vsphereConfigFromEnv(env);
      t.fail(`accepted ${String(message)}`);
    } catch (error) {
      t.match(error, { code: 'InvalidSpec', message });
      t.notMatch((error as Error).message, 'hunter2');
    }
  }
});
