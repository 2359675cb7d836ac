// The provider runtime's environment → a validated ProxmoxConfig. Names, defaults and the first
// error messages come from the Proxmox provider guide (seed 001): a provider that cannot work
// must say why at startup. Secrets live in Secret wrappers, so no error, log line, JSON dump or
// util.inspect of the config can show them.

import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { migrationStorage, type MigrationStorage } from '../common/disk-files.js';
import { envBoolean, envValue, httpClientLimitsFromEnv, type Env } from '../common/env.js';
import type { HttpClientLimits } from '../common/https-pool.js';
import { Secret } from '../common/secret.js';
import { InvalidSpecError } from '../../contracts/driver.js';

/** A configuration error; its message names the variable, never its value when that is a secret. */
export class ProxmoxConfigError extends InvalidSpecError {
  override readonly name = 'ProxmoxConfigError';
}

export { Secret };

export type ProxmoxAuth =
  | { kind: 'token'; tokenId: string; secret: Secret }
  | { kind: 'password'; username: string; password: Secret };

export interface ProxmoxConfig {
  /** The migration directory and its mounted volumes (MIGRATION_DIR, MIGRATION_VOLUMES); unset: the default directory. */
  migration?: MigrationStorage;
  /** Scheme, host and port: `https://pve.example.com:8006`. */
  origin: string;
  /** Path of the JSON API below the origin, normally `/api2/json` (a reverse proxy may add a prefix). */
  apiPath: string;
  /** Where the PVE web UI lives, for console links: origin plus any proxy prefix. */
  uiBase: string;
  auth: ProxmoxAuth;
  insecureSkipVerify: boolean;
  caBundle?: string;
  /** Mutual TLS (PVE_CLIENT_CERT, PVE_CLIENT_KEY): presented to an endpoint that demands a client certificate. */
  clientCertificate?: ClientCertificate;
  /** Preferred nodes, in order of preference. */
  nodeSelector: string[];
  /** VMIDs this driver may allocate; undefined: whatever `/cluster/nextid` says. */
  vmidRange?: { min: number; max: number };
  /**
   * A PVE storage with `snippets` content, and the directory where this process writes the files
   * that storage serves (an NFS mount, say). PVE's API cannot upload snippets: its upload takes
   * only iso, vztmpl and import content.
   */
  snippets?: { storage: string; dir: string };
  /** Disk storage for new volumes (EFI vars, TPM state, extra disks) when the spec names none. */
  defaultStorage?: string;
  /** The Provider's rateLimit and connectionPooling (PVE_RATE_LIMIT_QPS, PVE_MAX_CONNECTIONS, …); unset: the client's defaults. */
  http?: HttpClientLimits;
  /** The file server PVE downloads migration files from (file-server.ts); unset: no disk import. */
  migrationServer?: MigrationServerConfig;
  /** The storage (with `import` content) disk imports go to; unset: the first one on the node chosen. */
  importStorage?: string;
}

export interface ClientCertificate {
  /** PEM: the certificate, then any intermediates. */
  cert: string;
  /** PEM, unencrypted. */
  key: Secret;
}

export interface MigrationServerConfig {
  /** PVE_MIGRATION_LISTEN: where the runtime listens (`0.0.0.0:8091`). */
  listen: { host: string; port: number };
  /** PVE_MIGRATION_URL: the base URL PVE reaches that listener at. */
  url: string;
  /** PVE_MIGRATION_INSECURE_SKIP_VERIFY: PVE's download does not check the certificate of an https URL. */
  insecureSkipVerify: boolean;
}

// PVE's `pve-storage-id` format (pve-storage PVE/Storage/Plugin.pm).
const STORAGE_ID = /^[a-z][a-z0-9\-_.]*[a-z0-9]$/i;
// `user@realm!tokenid` (pve-access-control PVE/AccessControl.pm, pve_verify_tokenid).
const TOKEN_ID = /^[^\s@!:]+@[A-Za-z][A-Za-z0-9.\-_]+![A-Za-z][A-Za-z0-9.\-_]+$/;
const USER_ID = /^[^\s@:]+@[A-Za-z][A-Za-z0-9.\-_]+$/;
const VMID_MIN = 100;
const VMID_MAX = 999_999_999;

function fail(message: string): never {
  throw new ProxmoxConfigError(message);
}

/** Accepts `https://host:8006`, with or without `/api2` or `/api2/json`, with or without a trailing slash. */
export function normalizeEndpoint(raw: string | undefined): { origin: string; apiPath: string; uiBase: string } {
  if (raw === undefined) fail('endpoint is required');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    fail('invalid endpoint URL');
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.hostname === '') fail('invalid endpoint URL');
  if (url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== '') fail('invalid endpoint URL');
  const prefix = url.pathname.replace(/\/+$/, '').replace(/\/api2(\/json)?$/, '');
  return { origin: url.origin, apiPath: `${prefix}/api2/json`, uiBase: `${url.origin}${prefix}` };
}

function parseBoolean(env: Env, name: string, fallback: boolean): boolean {
  return envBoolean(env, name, fallback, fail);
}

function parseAuth(env: Env): ProxmoxAuth {
  const tokenId = envValue(env, 'PVE_TOKEN_ID');
  const tokenSecret = envValue(env, 'PVE_TOKEN_SECRET');
  const username = envValue(env, 'PVE_USERNAME');
  const password = env['PVE_PASSWORD'];
  const hasPassword = password !== undefined && password !== '';

  if (tokenId !== undefined || tokenSecret !== undefined) {
    if (tokenId === undefined) fail('PVE_TOKEN_ID is required with PVE_TOKEN_SECRET');
    if (tokenSecret === undefined) fail('PVE_TOKEN_SECRET is required with PVE_TOKEN_ID');
    if (!TOKEN_ID.test(tokenId)) fail('PVE_TOKEN_ID must look like user@realm!tokenid');
    // A token is preferred when both kinds are given: it needs no ticket renewal and no CSRF token.
    return { kind: 'token', tokenId, secret: new Secret(tokenSecret) };
  }
  if (username !== undefined || hasPassword) {
    if (username === undefined) fail('PVE_USERNAME is required with PVE_PASSWORD');
    if (!hasPassword) fail('PVE_PASSWORD is required with PVE_USERNAME');
    if (!USER_ID.test(username)) fail('PVE_USERNAME must look like user@realm (for example root@pam)');
    return { kind: 'password', username, password: new Secret(password) };
  }
  fail('credentials are required: set PVE_TOKEN_ID and PVE_TOKEN_SECRET (recommended), or PVE_USERNAME and PVE_PASSWORD');
}

function parseVmidRange(raw: string | undefined): { min: number; max: number } | undefined {
  if (raw === undefined) return undefined;
  const match = /^(\d+)\s*-\s*(\d+)$/.exec(raw);
  const min = Number(match?.[1]);
  const max = Number(match?.[2]);
  if (!match || min < VMID_MIN || max > VMID_MAX || min > max) {
    fail(`PVE_VMID_RANGE must look like 10000-99999, within ${VMID_MIN}-${VMID_MAX}`);
  }
  return { min, max };
}

function parseStorage(env: Env, name: string): string | undefined {
  const raw = envValue(env, name);
  if (raw !== undefined && !STORAGE_ID.test(raw)) fail(`${name} is not a valid PVE storage ID`);
  return raw;
}

// `host:port`, `[v6]:port` or `:port` (every address).
const LISTEN = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\s]*)):(\d{1,5})$/;

function parseMigrationServer(env: Env): MigrationServerConfig | undefined {
  const listen = envValue(env, 'PVE_MIGRATION_LISTEN');
  const url = envValue(env, 'PVE_MIGRATION_URL');
  if ((listen === undefined) !== (url === undefined)) fail('PVE_MIGRATION_LISTEN and PVE_MIGRATION_URL must be set together');
  if (listen === undefined || url === undefined) return undefined;
  const match = LISTEN.exec(listen);
  const port = Number(match?.[3]);
  if (!match || port < 1 || port > 65535) fail('PVE_MIGRATION_LISTEN must look like 0.0.0.0:8091');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    fail('PVE_MIGRATION_URL must be an http or https URL');
  }
  if ((parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || parsed.hostname === '') fail('PVE_MIGRATION_URL must be an http or https URL');
  if (parsed.username !== '' || parsed.password !== '' || parsed.search !== '' || parsed.hash !== '') {
    fail('PVE_MIGRATION_URL must have no credentials, query or fragment');
  }
  return {
    listen: { host: match[1] ?? (match[2] || '0.0.0.0'), port },
    url: parsed.href.replace(/\/+$/, ''),
    insecureSkipVerify: parseBoolean(env, 'PVE_MIGRATION_INSECURE_SKIP_VERIFY', false),
  };
}

function parseCaBundle(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  if (!raw.includes('-----BEGIN CERTIFICATE-----')) fail('PVE_CA_BUNDLE must hold PEM certificates (-----BEGIN CERTIFICATE-----)');
  return raw;
}

/**
 * PVE_CLIENT_CERT and PVE_CLIENT_KEY, both or neither (each also as `<NAME>_FILE`), checked at
 * startup: a key that does not belong to the certificate would fail every handshake. Errors name
 * the variables; neither value, nor OpenSSL's words about it, ever reach a message.
 */
function parseClientCertificate(env: Env): ClientCertificate | undefined {
  const cert = envValue(env, 'PVE_CLIENT_CERT');
  const key = envValue(env, 'PVE_CLIENT_KEY');
  if (cert === undefined && key === undefined) return undefined;
  if (cert === undefined) fail('PVE_CLIENT_CERT is required with PVE_CLIENT_KEY');
  if (key === undefined) fail('PVE_CLIENT_KEY is required with PVE_CLIENT_CERT');
  // The certificate is not kept as a secret: a key pasted into it would be.
  if (cert.includes('PRIVATE KEY-----')) fail('PVE_CLIENT_CERT holds a private key: put the key in PVE_CLIENT_KEY, the certificate alone in PVE_CLIENT_CERT');
  let certificate: X509Certificate;
  try {
    if (!cert.includes('-----BEGIN CERTIFICATE-----')) throw new Error('not PEM');
    certificate = new X509Certificate(cert);
  } catch {
    fail('PVE_CLIENT_CERT must hold a certificate in PEM');
  }
  // PKCS#8 `ENCRYPTED PRIVATE KEY`, or a traditional key's `Proc-Type: 4,ENCRYPTED` header.
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,ENCRYPTED/.test(key)) fail('PVE_CLIENT_KEY is encrypted: give the key without a passphrase');
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch {
    fail('PVE_CLIENT_KEY must hold a private key in PEM');
  }
  if (!certificate.checkPrivateKey(privateKey)) fail('PVE_CLIENT_KEY is not the key of the certificate in PVE_CLIENT_CERT');
  return { cert, key: new Secret(key) };
}

export function proxmoxConfigFromEnv(env: Env): ProxmoxConfig {
  const endpoint = normalizeEndpoint(envValue(env, 'PVE_ENDPOINT'));
  const config: ProxmoxConfig = {
    migration: migrationStorage(env),
    ...endpoint,
    auth: parseAuth(env),
    insecureSkipVerify: parseBoolean(env, 'PVE_INSECURE_SKIP_VERIFY', false),
    nodeSelector: (envValue(env, 'PVE_NODE_SELECTOR') ?? '')
      .split(',')
      .map((node) => node.trim())
      .filter((node) => node !== ''),
  };
  const caBundle = parseCaBundle(envValue(env, 'PVE_CA_BUNDLE'));
  if (caBundle !== undefined) config.caBundle = caBundle;
  const clientCertificate = parseClientCertificate(env);
  if (clientCertificate !== undefined) config.clientCertificate = clientCertificate;
  const vmidRange = parseVmidRange(envValue(env, 'PVE_VMID_RANGE'));
  if (vmidRange !== undefined) config.vmidRange = vmidRange;

  const snippetsStorage = parseStorage(env, 'PVE_SNIPPETS_STORAGE');
  const snippetsDir = envValue(env, 'PVE_SNIPPETS_DIR');
  if ((snippetsStorage === undefined) !== (snippetsDir === undefined)) {
    fail('PVE_SNIPPETS_STORAGE and PVE_SNIPPETS_DIR must be set together');
  }
  if (snippetsStorage !== undefined && snippetsDir !== undefined) {
    if (!snippetsDir.startsWith('/')) fail('PVE_SNIPPETS_DIR must be an absolute path');
    config.snippets = { storage: snippetsStorage, dir: snippetsDir };
  }
  const defaultStorage = parseStorage(env, 'PVE_DEFAULT_STORAGE');
  if (defaultStorage !== undefined) config.defaultStorage = defaultStorage;
  const http = httpClientLimitsFromEnv(env, 'PVE', fail);
  if (http !== undefined) config.http = http;
  const migrationServer = parseMigrationServer(env);
  if (migrationServer !== undefined) config.migrationServer = migrationServer;
  const importStorage = parseStorage(env, 'PVE_IMPORT_STORAGE');
  if (importStorage !== undefined) config.importStorage = importStorage;
  return config;
}

/** One line for logs: where and how, never with what. */
export function describeConfig(config: ProxmoxConfig): string {
  const who = config.auth.kind === 'token' ? `token ${config.auth.tokenId}` : `user ${config.auth.username}`;
  const tls = config.insecureSkipVerify ? 'TLS unverified' : config.caBundle !== undefined ? 'TLS with CA bundle' : 'TLS verified';
  const mutual = config.clientCertificate === undefined ? '' : ', client certificate';
  return `Proxmox VE at ${config.origin}${config.apiPath} as ${who} (${tls}${mutual})`;
}
