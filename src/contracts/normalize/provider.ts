// Provider, either spelling → one model. Pure and table-tested (test/contracts/provider-shapes.test.ts).
//
// The seeds' Provider is a subset of upstream VirtRigaud's, except for one seed spelling: TLS
// verification switched off through runtime.env (PVE_INSECURE_SKIP_VERIFY, VSPHERE_INSECURE_SKIP_VERIFY)
// where upstream writes spec.insecureSkipVerify (the CRD refuses both). The blocks only upstream
// has (healthCheck, rateLimit, connectionPooling) take upstream's defaults when they are written
// and leave our behaviour alone when they are not: the default follows the shape.
import { HTTP_DRIVER_ENV_PREFIX, type ProviderSpec, type ProviderType, type RuntimeMode } from '../crds/provider.js';
import { parseDuration } from '../quantity.js';
import { problem, type FieldRule, type FieldUse, type Normalized } from './common.js';

/**
 * Where a VirtualMachine of this Provider goes when it names no place of its own. Each maps onto
 * one field of the driver's CreateSpec, applied only where the VM (and its class) leave it unset:
 * - datastore    → storage.datastore   (needs placementDatastore)
 * - cluster      → placement.cluster   (needs placementCluster)
 * - folder       → placement.folder    (needs placementFolder)
 * - resourcePool → placement.resourcePool (needs placementResourcePool)
 * - network      → the network of each NIC that resolves to neither a bridge nor a network
 *                  (no networkRef, no bridge); every driver takes a network name
 * storagePod has no driver (PROVIDER_FIELDS) and is not part of the model.
 */
export interface ProviderDefaults {
  datastore?: string;
  cluster?: string;
  folder?: string;
  resourcePool?: string;
  network?: string;
}

/** The capability a default needs of the driver; a driver without it leaves that default unused (the Provider's Supported condition names it). */
export const DEFAULT_CAPABILITIES = {
  datastore: 'placementDatastore',
  cluster: 'placementCluster',
  folder: 'placementFolder',
  resourcePool: 'placementResourcePool',
  network: undefined,
} as const;

export interface HealthCheckSettings {
  /** false: the hypervisor is not probed; Ready follows the runtime alone. */
  enabled: boolean;
  /** Time between probes that count; undefined: the hook server's steady resync. */
  intervalMs?: number;
  /** What one probe may take (the hook's budget bounds it too); undefined: the budget. */
  timeoutMs?: number;
  failureThreshold: number;
  successThreshold: number;
}

/** spec.rateLimit and spec.connectionPooling: what the runtime's HTTPS client of vSphere or Proxmox gets. */
export interface HttpClientSettings {
  rateLimit?: { qps: number; burst: number };
  maxConnections?: number;
  /** As written (a Go duration): the runtime parses it again. */
  connectionTimeout?: string;
  idleTimeout?: string;
}

/**
 * TLS verification of the hypervisor's certificate: on (the default), off (spec.insecureSkipVerify,
 * or the seeds' runtime.env variable), or decided by a runtime.env valueFrom the hook cannot read.
 */
export type TlsVerification = 'on' | 'off' | 'unknown';

export interface CanonicalProvider {
  type: ProviderType;
  mode: RuntimeMode;
  endpoint?: string;
  /** The Secret; namespace: as written, else the Provider's own (when normalize was told it). */
  credentials?: { name: string; namespace?: string };
  tlsVerification: TlsVerification;
  defaults: ProviderDefaults;
  http: HttpClientSettings;
  health: HealthCheckSettings;
  /** spec.runtime.logLevel / logFormat, or the seeds' runtime.env LOG_LEVEL / LOG_FORMAT. */
  log: { level?: string; format?: 'text' | 'json' };
}

// Upstream VirtRigaud's defaults for the blocks only it has, applied when the block is written.
const UPSTREAM_HEALTH = { interval: '30s', timeout: '10s', failureThreshold: 3, successThreshold: 1 };
const UPSTREAM_RATE_LIMIT = { qps: 10, burst: 20 };
const UPSTREAM_POOLING = { maxConnections: 10, connectionTimeout: '30s', idleTimeout: '5m' };

/** A duration of at least one millisecond, or why not. */
function positiveDuration(path: string, value: string): { ok: true; ms: number } | { ok: false; problem: string } {
  const ms = parseDuration(value);
  if (ms === undefined || ms < 1) return { ok: false, problem: `${path} ${value} is not a duration of at least 1ms` };
  return { ok: true, ms };
}

const TRUE_WORDS = ['true', '1', 'yes'];
const FALSE_WORDS = ['false', '0', 'no'];

function tlsVerification(spec: ProviderSpec): Normalized<TlsVerification> {
  if (spec.insecureSkipVerify !== undefined) return { ok: true, value: spec.insecureSkipVerify ? 'off' : 'on' };
  const prefix = spec.type === 'proxmox' || spec.type === 'vsphere' ? HTTP_DRIVER_ENV_PREFIX[spec.type] : undefined;
  const variable = prefix === undefined ? undefined : spec.runtime?.env?.find((entry) => entry.name === `${prefix}_INSECURE_SKIP_VERIFY`);
  if (variable === undefined) return { ok: true, value: 'on' };
  if (variable.valueFrom !== undefined) return { ok: true, value: 'unknown' };
  // The runtime reads the variable as envBoolean does (hypervisors/common/env.ts); unset and empty mean false.
  const word = (variable.value ?? '').trim().toLowerCase();
  if (word === '' || FALSE_WORDS.includes(word)) return { ok: true, value: 'on' };
  if (TRUE_WORDS.includes(word)) return { ok: true, value: 'off' };
  return problem(`spec.runtime.env ${variable.name} must be true or false`);
}

function healthCheck(spec: ProviderSpec): Normalized<HealthCheckSettings> {
  const written = spec.healthCheck;
  if (written === undefined) return { ok: true, value: { enabled: true, failureThreshold: 1, successThreshold: 1 } };
  const interval = positiveDuration('spec.healthCheck.interval', written.interval ?? UPSTREAM_HEALTH.interval);
  if (!interval.ok) return problem(interval.problem);
  if (interval.ms < 1000) return problem(`spec.healthCheck.interval ${written.interval ?? ''} is shorter than 1s`);
  const timeout = positiveDuration('spec.healthCheck.timeout', written.timeout ?? UPSTREAM_HEALTH.timeout);
  if (!timeout.ok) return problem(timeout.problem);
  return {
    ok: true,
    value: {
      enabled: written.enabled ?? true,
      intervalMs: interval.ms,
      timeoutMs: timeout.ms,
      failureThreshold: written.failureThreshold ?? UPSTREAM_HEALTH.failureThreshold,
      successThreshold: written.successThreshold ?? UPSTREAM_HEALTH.successThreshold,
    },
  };
}

function httpClient(spec: ProviderSpec): Normalized<HttpClientSettings> {
  const settings: HttpClientSettings = {};
  if (spec.rateLimit !== undefined) {
    settings.rateLimit = { qps: spec.rateLimit.qps ?? UPSTREAM_RATE_LIMIT.qps, burst: spec.rateLimit.burst ?? UPSTREAM_RATE_LIMIT.burst };
  }
  const pooling = spec.connectionPooling;
  if (pooling !== undefined) {
    settings.maxConnections = pooling.maxConnections ?? UPSTREAM_POOLING.maxConnections;
    for (const key of ['connectionTimeout', 'idleTimeout'] as const) {
      const value = pooling[key] ?? UPSTREAM_POOLING[key];
      const parsed = positiveDuration(`spec.connectionPooling.${key}`, value);
      if (!parsed.ok) return problem(parsed.problem);
      settings[key] = value;
    }
  }
  return { ok: true, value: settings };
}

/** The Provider's placement defaults (see ProviderDefaults for what each one maps onto). */
export function providerDefaults(spec: ProviderSpec): ProviderDefaults {
  const written = spec.defaults ?? {};
  const defaults: ProviderDefaults = {};
  for (const key of ['datastore', 'cluster', 'folder', 'resourcePool', 'network'] as const) {
    const value = written[key];
    if (value !== undefined && value !== '') defaults[key] = value;
  }
  return defaults;
}

// What the runtime's logger accepts (pino's levels; upstream writes four of them).
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
const LOG_FORMATS = ['json', 'text'];

/** The log settings in either spelling; a literal runtime.env value the runtime would refuse is a problem here already. */
function logSettings(spec: ProviderSpec): Normalized<CanonicalProvider['log']> {
  const log: CanonicalProvider['log'] = {};
  const literal = (name: string) => spec.runtime?.env?.find((entry) => entry.name === name && entry.valueFrom === undefined)?.value?.trim();
  const level = spec.runtime?.logLevel ?? literal('LOG_LEVEL');
  if (level !== undefined && level !== '') {
    if (!LOG_LEVELS.includes(level)) return problem(`spec.runtime.env LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`);
    log.level = level;
  }
  const format = spec.runtime?.logFormat ?? literal('LOG_FORMAT');
  if (format !== undefined && format !== '') {
    if (format !== 'json' && format !== 'text') return problem(`spec.runtime.env LOG_FORMAT must be one of ${LOG_FORMATS.join(', ')}`);
    log.format = format;
  }
  return { ok: true, value: log };
}

/** `namespace`: the Provider's own, which an unset credentialSecretRef.namespace means. */
export function normalizeProvider(spec: ProviderSpec, namespace?: string): Normalized<CanonicalProvider> {
  const tls = tlsVerification(spec);
  if (!tls.ok) return tls;
  const health = healthCheck(spec);
  if (!health.ok) return health;
  const http = httpClient(spec);
  if (!http.ok) return http;
  const log = logSettings(spec);
  if (!log.ok) return log;
  const value: CanonicalProvider = {
    type: spec.type,
    mode: spec.runtime?.mode ?? (spec.type === 'simulator' ? 'InProcess' : 'Remote'),
    tlsVerification: tls.value,
    defaults: providerDefaults(spec),
    http: http.value,
    health: health.value,
    log: log.value,
  };
  if (spec.endpoint !== undefined) value.endpoint = spec.endpoint;
  if (spec.credentialSecretRef !== undefined) {
    value.credentials = { name: spec.credentialSecretRef.name };
    const secretNamespace = spec.credentialSecretRef.namespace ?? namespace;
    if (secretNamespace !== undefined) value.credentials.namespace = secretNamespace;
  }
  return { ok: true, value };
}

const RUNTIME_TLS = 'the runtime serves HTTP inside the cluster, each call authenticated by a bearer token of this Provider alone; TLS to it is not implemented';

/** The Provider fields whose meaning needs something of the driver, whatever the Provider's type (support.ts). */
export const PROVIDER_FIELDS: readonly FieldRule[] = [
  { path: 'spec.type', values: ['firecracker', 'qemu'], why: 'no driver serves this hypervisor' },
  { path: 'spec.defaults.datastore', example: 'datastore1', capability: 'placementDatastore' },
  { path: 'spec.defaults.cluster', example: 'cluster1', capability: 'placementCluster' },
  { path: 'spec.defaults.folder', example: 'vms', capability: 'placementFolder' },
  { path: 'spec.defaults.resourcePool', example: 'pool1', capability: 'placementResourcePool' },
  { path: 'spec.defaults.storagePod', example: 'datastore-cluster1', why: 'no driver picks a datastore from a datastore cluster' },
  { path: 'spec.connectionPooling.maxIdleConnections', example: 5, why: 'idle connections close after idleTimeout, never by count' },
  { path: 'spec.runtime.service.tls.enabled', values: [true], why: RUNTIME_TLS },
  { path: 'spec.runtime.service.tls.insecureSkipVerify', values: [true], why: RUNTIME_TLS },
  { path: 'spec.runtime.service.tls.secretRef', example: { name: 'runtime-tls' }, why: RUNTIME_TLS },
  { path: 'spec.runtime.resources.claims', example: [{ name: 'gpu' }], why: "a claim names an entry of the pod's resourceClaims, which a Provider cannot declare" },
];

/**
 * Fields that some provider types honour and others cannot, and why not, per type. FieldRule has
 * no condition on the Provider's own type (besides capabilities, which exist for VM fields), so
 * this small table says it; providerTypeUses reads it. Types not named honour the field.
 * Paths are plain dotted paths below the object (no [] or *).
 */
export interface ProviderTypeRule {
  path: string;
  values?: readonly (string | boolean | number)[];
  /** A value that triggers the rule, for rules without `values`. */
  example?: unknown;
  unsupportedOn: Partial<Record<ProviderType, string>>;
}

const NO_HTTP_LIBVIRT = 'libvirt is driven over one SSH connection (LIBVIRT_MAX_CHANNELS bounds its commands); there is no HTTP client';
const SIMULATOR_IN_MEMORY = 'the simulator is in memory and connects to nothing';

export const PROVIDER_TYPE_RULES: readonly ProviderTypeRule[] = [
  {
    path: 'spec.insecureSkipVerify',
    values: [true],
    unsupportedOn: { libvirt: 'libvirt is reached over SSH and the host key is always verified (known_hosts)', simulator: SIMULATOR_IN_MEMORY },
  },
  { path: 'spec.rateLimit', example: { qps: 5 }, unsupportedOn: { libvirt: NO_HTTP_LIBVIRT, simulator: SIMULATOR_IN_MEMORY } },
  { path: 'spec.connectionPooling.maxConnections', example: 4, unsupportedOn: { libvirt: NO_HTTP_LIBVIRT, simulator: SIMULATOR_IN_MEMORY } },
  { path: 'spec.connectionPooling.connectionTimeout', example: '10s', unsupportedOn: { libvirt: NO_HTTP_LIBVIRT, simulator: SIMULATOR_IN_MEMORY } },
  { path: 'spec.connectionPooling.idleTimeout', example: '1m', unsupportedOn: { libvirt: NO_HTTP_LIBVIRT, simulator: SIMULATOR_IN_MEMORY } },
];

/** Fields of spec.runtime that describe the runtime Deployment, which runtime.mode InProcess does not have. */
export const RUNTIME_DEPLOYMENT_FIELDS: readonly string[] = [
  'image',
  'imagePullPolicy',
  'imagePullSecrets',
  'replicas',
  'resources',
  'service',
  'env',
  'nodeSelector',
  'tolerations',
  'affinity',
  'securityContext',
  'livenessProbe',
  'readinessProbe',
  'logLevel',
  'logFormat',
];
const IN_PROCESS = 'runtime.mode InProcess: the hook server runs the driver itself, there is no runtime Deployment';

function valueAt(root: unknown, path: string): unknown {
  let node = root;
  for (const step of path.split('.')) {
    if (node === null || typeof node !== 'object' || Array.isArray(node)) return undefined;
    node = (node as Record<string, unknown>)[step];
  }
  return node;
}

/** Whether a value sets something (an empty map or list does not). */
function sets(value: unknown): boolean {
  if (value === undefined) return false;
  if (Array.isArray(value)) return value.length > 0;
  if (value !== null && typeof value === 'object') return Object.keys(value).length > 0;
  return true;
}

/**
 * The fields of `provider` (an object with `spec`) that its type or mode cannot honour, by
 * PROVIDER_TYPE_RULES and, for runtime.mode InProcess, RUNTIME_DEPLOYMENT_FIELDS. Always why-uses
 * (no capability): these do not depend on what a driver reports.
 */
export function providerTypeUses(provider: { spec: ProviderSpec }): FieldUse[] {
  const uses: FieldUse[] = [];
  const type = provider.spec.type;
  for (const rule of PROVIDER_TYPE_RULES) {
    const why = rule.unsupportedOn[type];
    if (why === undefined) continue;
    const value = valueAt(provider, rule.path);
    if (rule.values !== undefined ? !rule.values.includes(value as string | boolean | number) : !sets(value)) continue;
    uses.push({ path: rule.values !== undefined && typeof value !== 'boolean' ? `${rule.path}=${String(value)}` : rule.path, why });
  }
  const mode = provider.spec.runtime?.mode ?? (type === 'simulator' ? 'InProcess' : 'Remote');
  if (mode === 'InProcess') {
    for (const field of RUNTIME_DEPLOYMENT_FIELDS) {
      const value = valueAt(provider.spec.runtime, field);
      // replicas: 1 is the schema's default, stored on every runtime block.
      if (sets(value) && !(field === 'replicas' && value === 1)) uses.push({ path: `spec.runtime.${field}`, why: IN_PROCESS });
    }
  }
  return uses;
}

