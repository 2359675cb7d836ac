// LIBVIRT_* environment → configuration; errors name the variable and never show a secret.
import { inspect } from 'node:util';
import t from 'tap';
import { describeConfig, libvirtConfigFromEnv, libvirtDriverFromEnv, parseLibvirtUri } from '../../../src/hypervisors/libvirt/index.js';

const KEY = '-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END OPENSSH PRIVATE KEY-----\n';
const KNOWN = '[kvm1.example.com]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleHostKey';
const base = { LIBVIRT_URI: 'qemu+ssh://root@kvm1.example.com:2222/system', LIBVIRT_SSH_PRIVATE_KEY: KEY, LIBVIRT_KNOWN_HOSTS: KNOWN };

t.test('the URI gives the SSH endpoint and the host-side libvirt URI', async (t) => {
  t.same(parseLibvirtUri('qemu+ssh://root@kvm1.example.com:2222/system'), { host: 'kvm1.example.com', port: 2222, username: 'root', libvirtUri: 'qemu:///system' });
  t.same(parseLibvirtUri('qemu+ssh://kvm1/system'), { host: 'kvm1', port: 22, libvirtUri: 'qemu:///system' });
  t.same(parseLibvirtUri('qemu+ssh://[::1]:2222/session').host, '::1');
});

t.test('defaults', async (t) => {
  const config = libvirtConfigFromEnv(base);
  t.equal(config.storagePool, 'default');
  t.equal(config.domainType, 'kvm');
  t.equal(config.vncListen, '127.0.0.1');
  t.equal(config.defaultNetwork, 'default');
  t.equal(config.vlanNetwork, undefined, 'VLAN NICs join the default network unless a VLAN network is named');
  t.equal(libvirtConfigFromEnv({ ...base, LIBVIRT_VLAN_NETWORK: 'ovs-trunk' }).vlanNetwork, 'ovs-trunk');
  t.equal(config.ssh.maxChannels, 4);
  t.equal(config.ssh.trustOnFirstUse, false);
  t.equal(config.shutdownTimeoutMs, 120_000);
});

t.test('every config error names its variable', async (t) => {
  const bad: [Record<string, string>, RegExp][] = [
    [{ ...base, LIBVIRT_URI: '' }, /LIBVIRT_URI is required/],
    [{ ...base, LIBVIRT_URI: 'https://kvm1/system' }, /LIBVIRT_URI must use the qemu\+ssh/],
    [{ ...base, LIBVIRT_URI: 'qemu+ssh://kvm1/system' }, /LIBVIRT_USERNAME/],
    [{ ...base, LIBVIRT_URI: 'qemu+ssh://root@kvm1/system?keyfile=/x' }, /LIBVIRT_URI must not have query/],
    [{ ...base, LIBVIRT_SSH_PRIVATE_KEY: '' }, /LIBVIRT_SSH_PRIVATE_KEY .*or LIBVIRT_PASSWORD/],
    [{ ...base, LIBVIRT_SSH_PRIVATE_KEY: 'not a key' }, /LIBVIRT_SSH_PRIVATE_KEY must hold/],
    [{ ...base, LIBVIRT_KNOWN_HOSTS: '' }, /LIBVIRT_KNOWN_HOSTS is required.*LIBVIRT_TRUST_ON_FIRST_USE/],
    [{ ...base, LIBVIRT_DOMAIN_TYPE: 'xen' }, /LIBVIRT_DOMAIN_TYPE must be kvm or qemu/],
    [{ ...base, LIBVIRT_STORAGE_POOL: 'a pool; rm' }, /LIBVIRT_STORAGE_POOL/],
    [{ ...base, LIBVIRT_VLAN_NETWORK: '../ovs' }, /LIBVIRT_VLAN_NETWORK is not a valid network name/],
    [{ ...base, LIBVIRT_MAX_CHANNELS: '0' }, /LIBVIRT_MAX_CHANNELS/],
    [{ ...base, LIBVIRT_TRUST_ON_FIRST_USE: 'maybe' }, /LIBVIRT_TRUST_ON_FIRST_USE must be true or false/],
    [{ ...base, LIBVIRT_USERNAME: 'admin' }, /LIBVIRT_USERNAME differs/],
  ];
  for (const [env, message] of bad) t.throws(() => libvirtConfigFromEnv(env), { code: 'InvalidSpec', message }, String(message));
});

t.test('trust on first use replaces the known_hosts entry only when asked explicitly', async (t) => {
  const config = libvirtConfigFromEnv({ ...base, LIBVIRT_KNOWN_HOSTS: '', LIBVIRT_TRUST_ON_FIRST_USE: 'true' });
  t.equal(config.ssh.trustOnFirstUse, true);
  t.equal(config.ssh.knownHosts, undefined);
});

t.test('secrets never show in errors, JSON, inspect or the log line', async (t) => {
  const password = 'pa55-w0rd-secret';
  const config = libvirtConfigFromEnv({ ...base, LIBVIRT_SSH_PRIVATE_KEY: '', LIBVIRT_PASSWORD: password });
  t.equal(config.ssh.password?.reveal(), password);
  for (const text of [JSON.stringify(config), inspect(config, { depth: 10 }), describeConfig(config), String(config.ssh.password)]) {
    t.notMatch(text, password);
  }
  const keyed = libvirtConfigFromEnv(base);
  t.notMatch(JSON.stringify(keyed), 'c2VjcmV0LWtleS1tYXRlcmlhbA');
  t.notMatch(inspect(keyed, { depth: 10 }), 'c2VjcmV0LWtleS1tYXRlcmlhbA');
  try {
    libvirtConfigFromEnv({ ...base, LIBVIRT_SSH_PRIVATE_KEY: 'hunter2-not-a-key' });
    t.fail('should throw');
  } catch (error) {
    t.notMatch((error as Error).message, 'hunter2');
  }
});

t.test('libvirtDriverFromEnv builds a driver without connecting', async (t) => {
  const driver = libvirtDriverFromEnv(base);
  t.equal(driver.type, 'libvirt');
  await driver.close();
});
