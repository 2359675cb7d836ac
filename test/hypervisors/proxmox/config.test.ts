import { inspect } from 'node:util';
import t from 'tap';
import { InvalidSpecError } from '../../../src/contracts/driver.js';
import { ProxmoxConfigError, describeConfig, proxmoxConfigFromEnv } from '../../../src/hypervisors/proxmox/config.js';

const TOKEN = { PVE_TOKEN_ID: 'virtrigaud@pve!vrtg-token', PVE_TOKEN_SECRET: 'xxxxxxxx-secret-value' };
const PASSWORD = { PVE_USERNAME: 'root@pam', PVE_PASSWORD: 'secure-password' };

function config(env: Record<string, string | undefined>) {
  return proxmoxConfigFromEnv({ PVE_ENDPOINT: 'https://pve.example.com:8006', ...TOKEN, ...env });
}

t.test('a missing endpoint fails with the guide\'s "endpoint is required"', async (t) => {
  t.throws(() => proxmoxConfigFromEnv({ ...TOKEN }), { message: 'endpoint is required' });
  t.throws(() => proxmoxConfigFromEnv({ PVE_ENDPOINT: '  ', ...TOKEN }), { message: 'endpoint is required' });
});

t.test('an endpoint that is not an http(s) URL fails with "invalid endpoint URL"', async (t) => {
  for (const endpoint of ['pve.example.com:8006', 'ftp://pve.example.com', 'not a url', 'https://user:pw@pve:8006', 'https://pve:8006/?x=1']) {
    t.throws(() => config({ PVE_ENDPOINT: endpoint }), { message: 'invalid endpoint URL' }, endpoint);
  }
});

t.test('configuration errors are InvalidSpec errors of their own class', async (t) => {
  const error = t.throws(() => proxmoxConfigFromEnv({}));
  t.ok(error instanceof ProxmoxConfigError);
  t.ok(error instanceof InvalidSpecError);
});

t.test('the endpoint is accepted with or without /api2, /api2/json and a trailing slash', async (t) => {
  for (const suffix of ['', '/', '/api2', '/api2/', '/api2/json', '/api2/json/']) {
    const parsed = config({ PVE_ENDPOINT: `https://pve.example.com:8006${suffix}` });
    t.equal(parsed.origin, 'https://pve.example.com:8006', suffix);
    t.equal(parsed.apiPath, '/api2/json', suffix);
    t.equal(parsed.uiBase, 'https://pve.example.com:8006', suffix);
  }
});

t.test('a reverse-proxy prefix before /api2 is kept', async (t) => {
  const parsed = config({ PVE_ENDPOINT: 'https://proxy.example.com/pve/api2/json' });
  t.equal(parsed.apiPath, '/pve/api2/json');
  t.equal(parsed.uiBase, 'https://proxy.example.com/pve');
});

t.test('no credentials at all is refused with a message naming both ways', async (t) => {
  t.throws(() => proxmoxConfigFromEnv({ PVE_ENDPOINT: 'https://pve:8006' }), {
    message: /PVE_TOKEN_ID and PVE_TOKEN_SECRET .* or PVE_USERNAME and PVE_PASSWORD/,
  });
});

t.test('half a token or half a password is refused', async (t) => {
  const endpoint = { PVE_ENDPOINT: 'https://pve:8006' };
  t.throws(() => proxmoxConfigFromEnv({ ...endpoint, PVE_TOKEN_ID: TOKEN.PVE_TOKEN_ID }), { message: 'PVE_TOKEN_SECRET is required with PVE_TOKEN_ID' });
  t.throws(() => proxmoxConfigFromEnv({ ...endpoint, PVE_TOKEN_SECRET: 's' }), { message: 'PVE_TOKEN_ID is required with PVE_TOKEN_SECRET' });
  t.throws(() => proxmoxConfigFromEnv({ ...endpoint, PVE_USERNAME: 'root@pam' }), { message: 'PVE_PASSWORD is required with PVE_USERNAME' });
  t.throws(() => proxmoxConfigFromEnv({ ...endpoint, PVE_PASSWORD: 'p' }), { message: 'PVE_USERNAME is required with PVE_PASSWORD' });
});

t.test('a token ID must look like user@realm!tokenid', async (t) => {
  t.throws(() => config({ PVE_TOKEN_ID: 'virtrigaud@pve' }), { message: 'PVE_TOKEN_ID must look like user@realm!tokenid' });
  t.throws(() => config({ PVE_TOKEN_ID: 'vrtg-token' }), { message: 'PVE_TOKEN_ID must look like user@realm!tokenid' });
});

t.test('the token is preferred when both a token and a password are given', async (t) => {
  const parsed = config({ ...PASSWORD });
  t.equal(parsed.auth.kind, 'token');
});

t.test('username and password work without a token', async (t) => {
  const parsed = proxmoxConfigFromEnv({ PVE_ENDPOINT: 'https://pve:8006', ...PASSWORD });
  t.match(parsed.auth, { kind: 'password', username: 'root@pam' });
});

t.test('TLS verification is on unless PVE_INSECURE_SKIP_VERIFY says true', async (t) => {
  t.equal(config({}).insecureSkipVerify, false);
  t.equal(config({ PVE_INSECURE_SKIP_VERIFY: 'true' }).insecureSkipVerify, true);
  t.equal(config({ PVE_INSECURE_SKIP_VERIFY: 'false' }).insecureSkipVerify, false);
  t.throws(() => config({ PVE_INSECURE_SKIP_VERIFY: 'maybe' }), { message: 'PVE_INSECURE_SKIP_VERIFY must be true or false' });
});

t.test('a CA bundle must be PEM text', async (t) => {
  t.throws(() => config({ PVE_CA_BUNDLE: '/etc/ssl/ca.crt' }), { message: /PVE_CA_BUNDLE must hold PEM certificates/ });
  const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
  t.equal(config({ PVE_CA_BUNDLE: pem }).caBundle, pem.trim());
});

t.test('the node selector is a trimmed comma list', async (t) => {
  t.same(config({ PVE_NODE_SELECTOR: ' pve-node-1, pve-node-2 ,,' }).nodeSelector, ['pve-node-1', 'pve-node-2']);
  t.same(config({}).nodeSelector, []);
});

t.test('a VMID range is two ids within 100-999999999, low first', async (t) => {
  t.same(config({ PVE_VMID_RANGE: '10000-99999' }).vmidRange, { min: 10000, max: 99999 });
  for (const bad of ['10000', '99-200', '500-400', 'a-b', '100-1000000000']) {
    t.throws(() => config({ PVE_VMID_RANGE: bad }), { message: /PVE_VMID_RANGE must look like 10000-99999/ }, bad);
  }
});

t.test('the snippets storage and directory come together, the directory absolute', async (t) => {
  t.same(config({ PVE_SNIPPETS_STORAGE: 'nfs-iso', PVE_SNIPPETS_DIR: '/mnt/pve/nfs-iso/snippets' }).snippets, {
    storage: 'nfs-iso',
    dir: '/mnt/pve/nfs-iso/snippets',
  });
  t.throws(() => config({ PVE_SNIPPETS_STORAGE: 'nfs-iso' }), { message: 'PVE_SNIPPETS_STORAGE and PVE_SNIPPETS_DIR must be set together' });
  t.throws(() => config({ PVE_SNIPPETS_STORAGE: 'nfs-iso', PVE_SNIPPETS_DIR: 'snippets' }), { message: 'PVE_SNIPPETS_DIR must be an absolute path' });
  t.throws(() => config({ PVE_SNIPPETS_STORAGE: 'bad storage!', PVE_SNIPPETS_DIR: '/x' }), { message: 'PVE_SNIPPETS_STORAGE is not a valid PVE storage ID' });
});

t.test('the default storage must be a storage ID', async (t) => {
  t.equal(config({ PVE_DEFAULT_STORAGE: 'local-lvm' }).defaultStorage, 'local-lvm');
  t.throws(() => config({ PVE_DEFAULT_STORAGE: 'local lvm' }), { message: 'PVE_DEFAULT_STORAGE is not a valid PVE storage ID' });
});

t.test('the migration file server needs both its listen address and the URL PVE reaches it at', async (t) => {
  t.same(config({ PVE_MIGRATION_LISTEN: '0.0.0.0:8091', PVE_MIGRATION_URL: 'http://10.0.0.5:30891/' }).migrationServer, {
    listen: { host: '0.0.0.0', port: 8091 },
    url: 'http://10.0.0.5:30891',
    insecureSkipVerify: false,
  });
  t.same(config({ PVE_MIGRATION_LISTEN: ':8091', PVE_MIGRATION_URL: 'https://files.example.com/pve', PVE_MIGRATION_INSECURE_SKIP_VERIFY: 'true' }).migrationServer, {
    listen: { host: '0.0.0.0', port: 8091 },
    url: 'https://files.example.com/pve',
    insecureSkipVerify: true,
  });
  t.same(config({ PVE_MIGRATION_LISTEN: '[::]:8091', PVE_MIGRATION_URL: 'http://[fd00::5]:8091' }).migrationServer?.listen, { host: '::', port: 8091 });
  t.equal(config({}).migrationServer, undefined);
  t.throws(() => config({ PVE_MIGRATION_LISTEN: '0.0.0.0:8091' }), { message: 'PVE_MIGRATION_LISTEN and PVE_MIGRATION_URL must be set together' });
  t.throws(() => config({ PVE_MIGRATION_URL: 'http://10.0.0.5:8091' }), { message: 'PVE_MIGRATION_LISTEN and PVE_MIGRATION_URL must be set together' });
  for (const listen of ['8091', '0.0.0.0:0', '0.0.0.0:70000', 'host:port']) {
    t.throws(() => config({ PVE_MIGRATION_LISTEN: listen, PVE_MIGRATION_URL: 'http://x:1' }), { message: /PVE_MIGRATION_LISTEN must look like/ }, listen);
  }
  for (const url of ['ftp://x/', 'not a url', 'http://user:pw@x/', 'http://x/?a=1']) {
    t.throws(() => config({ PVE_MIGRATION_LISTEN: ':8091', PVE_MIGRATION_URL: url }), { message: /PVE_MIGRATION_URL must/ }, url);
  }
});

t.test('the import storage must be a storage ID', async (t) => {
  t.equal(config({ PVE_IMPORT_STORAGE: 'nfs-import' }).importStorage, 'nfs-import');
  t.throws(() => config({ PVE_IMPORT_STORAGE: 'nfs import' }), { message: 'PVE_IMPORT_STORAGE is not a valid PVE storage ID' });
});

t.test('secrets appear neither in JSON, nor in inspect output, nor in the description', async (t) => {
  const withToken = config({});
  const withPassword = proxmoxConfigFromEnv({ PVE_ENDPOINT: 'https://pve:8006', ...PASSWORD });
  for (const parsed of [withToken, withPassword]) {
    const outputs = [JSON.stringify(parsed), inspect(parsed, { depth: 10 }), describeConfig(parsed), String(parsed.auth.kind === 'token' ? parsed.auth.secret : parsed.auth.password)];
    for (const output of outputs) {
      t.notMatch(output, /xxxxxxxx-secret-value|secure-password/);
    }
  }
  t.equal(withToken.auth.kind === 'token' ? withToken.auth.secret.reveal() : '', TOKEN.PVE_TOKEN_SECRET);
  t.match(describeConfig(withToken), /token virtrigaud@pve!vrtg-token/);
});

t.test('a password is never part of an error message', async (t) => {
  const error = t.throws(() => proxmoxConfigFromEnv({ PVE_ENDPOINT: 'https://pve:8006', PVE_USERNAME: 'root', PVE_PASSWORD: 'secure-password' }));
  t.notMatch(String(error), /secure-password/);
});
