// The provider runtime's environment → a validated VsphereConfig. Errors name the variable,
// never a secret's value; secrets live in Secret wrappers that print as `[redacted]`.

import { migrationStorage, type MigrationStorage } from '../common/disk-files.js';
import { envBoolean, envValue, httpClientLimitsFromEnv, type Env } from '../common/env.js';
import type { HttpClientLimits } from '../common/https-pool.js';
import { Secret } from '../common/secret.js';
import { InvalidSpecError } from '../../contracts/driver.js';

export class VsphereConfigError extends InvalidSpecError {
  override readonly name = 'VsphereConfigError';
}

export { Secret };

/** Where new VMs go when the VM's spec does not say (the Provider's defaults). */
export interface PlacementDefaults {
  datacenter?: string;
  folder?: string;
  cluster?: string;
  resourcePool?: string;
  datastore?: string;
  host?: string;
}

export interface VsphereConfig {
  /** The migration directory and its mounted volumes (MIGRATION_DIR, MIGRATION_VOLUMES); unset: the default directory. */
  migration?: MigrationStorage;
  /** Scheme, host and port: `https://vcenter.example.com:443`. */
  origin: string;
  /** The SOAP endpoint path, `/sdk`. */
  sdkPath: string;
  username: string;
  password: Secret;
  insecureSkipVerify: boolean;
  caBundle?: string;
  defaults: PlacementDefaults;
  /** The Provider's rateLimit and connectionPooling (VSPHERE_RATE_LIMIT_QPS, VSPHERE_MAX_CONNECTIONS, …); unset: the client's defaults. */
  http?: HttpClientLimits;
}

function fail(message: string): never {
  throw new VsphereConfigError(message);
}

/** Accepts `https://vc:443`, with or without `/sdk`, with or without a trailing slash. */
export function normalizeEndpoint(raw: string | undefined): { origin: string; sdkPath: string } {
  if (raw === undefined) fail('VSPHERE_ENDPOINT is required');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    fail('VSPHERE_ENDPOINT is not a valid URL');
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.hostname === '') fail('VSPHERE_ENDPOINT must be an http(s) URL');
  // Credentials belong in the Secret, not in the URL (where logs and status would show them).
  if (url.username !== '' || url.password !== '') fail('VSPHERE_ENDPOINT must not carry credentials; use VSPHERE_USERNAME and VSPHERE_PASSWORD');
  if (url.search !== '' || url.hash !== '') fail('VSPHERE_ENDPOINT must not have a query or fragment');
  const prefix = url.pathname.replace(/\/+$/, '').replace(/\/sdk$/, '');
  return { origin: url.origin, sdkPath: `${prefix}/sdk` };
}

function parseBoolean(env: Env, name: string, fallback: boolean): boolean {
  return envBoolean(env, name, fallback, fail);
}

export function vsphereConfigFromEnv(env: Env): VsphereConfig {
  const endpoint = normalizeEndpoint(envValue(env, 'VSPHERE_ENDPOINT'));
  const username = envValue(env, 'VSPHERE_USERNAME');
  const password = env['VSPHERE_PASSWORD'];
  if (username === undefined) fail('VSPHERE_USERNAME is required');
  if (password === undefined || password === '') fail('VSPHERE_PASSWORD is required');
  const insecureSkipVerify = parseBoolean(env, 'VSPHERE_INSECURE_SKIP_VERIFY', false);
  const caBundle = envValue(env, 'VSPHERE_CA_BUNDLE');
  if (caBundle !== undefined && !caBundle.includes('-----BEGIN CERTIFICATE-----')) {
    fail('VSPHERE_CA_BUNDLE must hold PEM certificates (-----BEGIN CERTIFICATE-----)');
  }
  const defaults: PlacementDefaults = {};
  const names = [
    ['datacenter', 'VSPHERE_DATACENTER'],
    ['folder', 'VSPHERE_FOLDER'],
    ['cluster', 'VSPHERE_CLUSTER'],
    ['resourcePool', 'VSPHERE_RESOURCE_POOL'],
    ['datastore', 'VSPHERE_DATASTORE'],
    ['host', 'VSPHERE_HOST'],
  ] as const;
  for (const [key, variable] of names) {
    const setting = envValue(env, variable);
    if (setting !== undefined) defaults[key] = setting;
  }
  const config: VsphereConfig = {
    migration: migrationStorage(env),
    ...endpoint,
    username,
    password: new Secret(password),
    insecureSkipVerify,
    defaults,
  };
  if (caBundle !== undefined) config.caBundle = caBundle;
  const http = httpClientLimitsFromEnv(env, 'VSPHERE', fail);
  if (http !== undefined) config.http = http;
  return config;
}

/** One line for logs: where and how, never with what. */
export function describeConfig(config: VsphereConfig): string {
  const tls = config.origin.startsWith('http:')
    ? 'plain HTTP'
    : config.insecureSkipVerify
      ? 'TLS unverified'
      : config.caBundle !== undefined
        ? 'TLS with CA bundle'
        : 'TLS verified';
  return `vSphere at ${config.origin}${config.sdkPath} as ${config.username} (${tls})`;
}
