// The provider runtime's environment → a validated LibvirtConfig. A provider that cannot work
// says why at startup, naming the variable; secrets live in Secret wrappers, so no error, log
// line, JSON dump or util.inspect of the config can show them.

import { migrationStorage, type MigrationStorage } from '../common/disk-files.js';
import { envBoolean, envValue, type Env } from '../common/env.js';
import { Secret } from '../common/secret.js';
import { InvalidSpecError } from '../../contracts/driver.js';
import { LibvirtDriver, type LibvirtDriverOptions } from './driver.js';

export class LibvirtConfigError extends InvalidSpecError {
  override readonly name = 'LibvirtConfigError';
}

export { Secret };

export interface LibvirtConfig {
  ssh: {
    host: string;
    port: number;
    username: string;
    privateKey?: Secret;
    password?: Secret;
    knownHosts?: string;
    trustOnFirstUse: boolean;
    maxChannels: number;
  };
  /** The libvirt URI on the host, for `virsh -c`: `qemu:///system`. */
  libvirtUri: string;
  storagePool: string;
  /** The libvirt network a NIC joins when the spec names neither bridge nor network. */
  defaultNetwork: string;
  /**
   * The network such a NIC joins instead when it asks for a VLAN: an Open vSwitch network (the
   * only kind that carries tags). Unset: defaultNetwork, which then must be one.
   */
  vlanNetwork?: string;
  domainType: 'kvm' | 'qemu';
  vncListen: string;
  /** How long a guest shutdown may take before the driver destroys the domain. */
  shutdownTimeoutMs: number;
  /**
   * Where tasks are recorded on the host; '' lets the host pick (/var/lib/virtrigaud/tasks for
   * root, else under $XDG_STATE_HOME). Every runtime serving the host must use the same one.
   */
  taskDirectory: string;
  /** The migration directory (MIGRATION_DIR) and its mounted volumes, local to the runtime: where disks are exported to and imported from. */
  migration: MigrationStorage;
}

function fail(message: string): never {
  throw new LibvirtConfigError(message);
}

function parseBoolean(env: Env, name: string, fallback: boolean): boolean {
  return envBoolean(env, name, fallback, fail);
}

function parseInteger(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = envValue(env, name);
  if (raw === undefined) return fallback;
  const parsed = Number(raw);
  if (!/^\d+$/.test(raw) || parsed < min || parsed > max) fail(`${name} must be an integer from ${min} to ${max}`);
  return parsed;
}

// libvirt object names we put on a command line: pools and networks.
const OBJECT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$/;
const HOSTNAME = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$|^\[[0-9a-fA-F:.]+\]$/;
const USERNAME = /^[a-z_][a-z0-9_.-]{0,31}$/i;

/** `qemu+ssh://user@host:port/system` → SSH endpoint and the host-side URI `qemu:///system`. */
export function parseLibvirtUri(raw: string | undefined): { host: string; port: number; username?: string; libvirtUri: string } {
  if (raw === undefined) fail('LIBVIRT_URI is required (for example qemu+ssh://root@kvm1.example.com/system)');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    fail('LIBVIRT_URI is not a valid URI');
  }
  const match = /^(qemu|test)\+ssh:$/.exec(url.protocol);
  if (!match) fail('LIBVIRT_URI must use the qemu+ssh:// scheme');
  if (url.password !== '') fail('LIBVIRT_URI must not contain a password; use LIBVIRT_PASSWORD');
  if (!HOSTNAME.test(url.hostname)) fail('LIBVIRT_URI has no valid host');
  const path = url.pathname.replace(/\/+$/, '');
  if (path !== '/system' && path !== '/session' && !(match[1] === 'test' && path === '/default')) {
    fail('LIBVIRT_URI path must be /system or /session');
  }
  if (url.search !== '' || url.hash !== '') fail('LIBVIRT_URI must not have query parameters; use the LIBVIRT_* variables');
  const port = url.port === '' ? 22 : Number(url.port);
  const username = decodeURIComponent(url.username);
  const result: { host: string; port: number; username?: string; libvirtUri: string } = {
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port,
    libvirtUri: `${match[1]}://${path}`,
  };
  if (username !== '') result.username = username;
  return result;
}

export function libvirtConfigFromEnv(env: Env): LibvirtConfig {
  const endpoint = parseLibvirtUri(envValue(env, 'LIBVIRT_URI'));
  const envUser = envValue(env, 'LIBVIRT_USERNAME');
  if (endpoint.username !== undefined && envUser !== undefined && endpoint.username !== envUser) {
    fail('LIBVIRT_USERNAME differs from the user in LIBVIRT_URI');
  }
  const username = endpoint.username ?? envUser ?? fail('a user is required: in LIBVIRT_URI (qemu+ssh://user@host/system) or LIBVIRT_USERNAME');
  if (!USERNAME.test(username)) fail('LIBVIRT_USERNAME is not a valid user name');

  const privateKey = env['LIBVIRT_SSH_PRIVATE_KEY'];
  const password = env['LIBVIRT_PASSWORD'];
  const hasKey = privateKey !== undefined && privateKey.trim() !== '';
  const hasPassword = password !== undefined && password !== '';
  if (!hasKey && !hasPassword) fail('credentials are required: set LIBVIRT_SSH_PRIVATE_KEY (recommended) or LIBVIRT_PASSWORD');
  if (hasKey && !/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/.test(privateKey)) {
    fail('LIBVIRT_SSH_PRIVATE_KEY must hold a PEM or OpenSSH private key (-----BEGIN … PRIVATE KEY-----)');
  }

  const knownHosts = envValue(env, 'LIBVIRT_KNOWN_HOSTS');
  const trustOnFirstUse = parseBoolean(env, 'LIBVIRT_TRUST_ON_FIRST_USE', false);
  if (knownHosts === undefined && !trustOnFirstUse) {
    fail('LIBVIRT_KNOWN_HOSTS is required (the host key line); set LIBVIRT_TRUST_ON_FIRST_USE=true to accept an unknown key explicitly');
  }

  const domainType = envValue(env, 'LIBVIRT_DOMAIN_TYPE') ?? 'kvm';
  if (domainType !== 'kvm' && domainType !== 'qemu') fail('LIBVIRT_DOMAIN_TYPE must be kvm or qemu');
  const storagePool = envValue(env, 'LIBVIRT_STORAGE_POOL') ?? 'default';
  if (!OBJECT_NAME.test(storagePool)) fail('LIBVIRT_STORAGE_POOL is not a valid pool name');
  const defaultNetwork = envValue(env, 'LIBVIRT_DEFAULT_NETWORK') ?? 'default';
  if (!OBJECT_NAME.test(defaultNetwork)) fail('LIBVIRT_DEFAULT_NETWORK is not a valid network name');
  const vlanNetwork = envValue(env, 'LIBVIRT_VLAN_NETWORK');
  if (vlanNetwork !== undefined && !OBJECT_NAME.test(vlanNetwork)) fail('LIBVIRT_VLAN_NETWORK is not a valid network name');
  const taskDirectory = envValue(env, 'LIBVIRT_TASK_DIR') ?? '';
  if (taskDirectory !== '' && !/^\/[A-Za-z0-9._/-]*$/.test(taskDirectory)) fail('LIBVIRT_TASK_DIR must be an absolute path of letters, digits, ".", "_", "-" and "/"');
  const vncListen = envValue(env, 'LIBVIRT_VNC_LISTEN') ?? '127.0.0.1';
  if (!/^[0-9a-fA-F:.]+$/.test(vncListen)) fail('LIBVIRT_VNC_LISTEN must be an IP address');

  const config: LibvirtConfig = {
    ssh: {
      host: endpoint.host,
      port: endpoint.port,
      username,
      trustOnFirstUse,
      maxChannels: parseInteger(env, 'LIBVIRT_MAX_CHANNELS', 4, 1, 64),
    },
    libvirtUri: endpoint.libvirtUri,
    storagePool,
    defaultNetwork,
    domainType,
    vncListen,
    shutdownTimeoutMs: parseInteger(env, 'LIBVIRT_SHUTDOWN_TIMEOUT', 120, 1, 3600) * 1000,
    taskDirectory,
    migration: migrationStorage(env),
  };
  if (hasKey) config.ssh.privateKey = new Secret(privateKey);
  if (hasPassword) config.ssh.password = new Secret(password);
  if (knownHosts !== undefined) config.ssh.knownHosts = knownHosts;
  if (vlanNetwork !== undefined) config.vlanNetwork = vlanNetwork;
  return config;
}

/** One line for logs: where and how, never with what. */
export function describeConfig(config: LibvirtConfig): string {
  const auth = config.ssh.privateKey ? 'key' : 'password';
  const hostKey = config.ssh.knownHosts !== undefined ? 'pinned host key' : 'host key trusted on first use';
  return `libvirt ${config.libvirtUri} via SSH ${config.ssh.username}@${config.ssh.host}:${config.ssh.port} (${auth}, ${hostKey}), pool ${config.storagePool}`;
}

/** The driver a provider runtime serves, configured from its environment (LIBVIRT_* variables). */
export function libvirtDriverFromEnv(env: Env, options: LibvirtDriverOptions = {}): LibvirtDriver {
  return new LibvirtDriver(libvirtConfigFromEnv(env), options);
}
