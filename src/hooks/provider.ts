// The Provider sync hook: for a Remote Provider, the runtime that holds its credentials (children);
// then a probe of the hypervisor through the Provider's driver, published as status. Before any
// of that, what the Provider cannot be (a type no driver serves, credentials of another
// namespace) and which of its fields its type cannot honour (the Supported condition).
import type { Clock } from '../contracts/clock.js';
import { HTTP_DRIVER_ENV_PREFIX, SERVED_PROVIDER_TYPES, type ProviderObject, type ProviderStatus } from '../contracts/crds/provider.js';
import { CAPABILITIES, isDriverError, type Capabilities, type Driver, type DriverRegistry } from '../contracts/driver.js';
import { DeploymentObject } from '../contracts/kube.js';
import type { KubeObject, SyncRequestBody, SyncResponse } from '../contracts/metacontroller.js';
import { describeUnsupported, unsupportedUses } from '../contracts/normalize/common.js';
import { normalizeProvider, providerTypeUses, type CanonicalProvider, type HealthCheckSettings } from '../contracts/normalize/provider.js';
import { providerRuntimeName } from '../contracts/provider-token.js';
import { formatBytes } from '../contracts/quantity.js';
import { fieldUses } from '../contracts/support.js';
import { buildConditions, previousConditions, type ConditionUpdate } from './conditions.js';
import { DriverCalls } from './driver-calls.js';
import { reportDriverError, retryDelaySeconds, type FailureReport } from './driver-errors.js';
import type { HookMetrics } from './metrics.js';
import { checkedChildren } from './objects.js';
import { providerDeletion } from './provider-deletion.js';
import { countProbe, previousHealth, secondsUntilDue, type HealthState } from './provider-health.js';
import { runtimeChildren, type RuntimeOptions, type RuntimeSettings } from './provider-runtime.js';
import { migrationVolumes } from './vmmigration.js';
import { providerTarget } from './virtualmachine/resolve.js';

export interface ProviderHookDeps {
  registry: DriverRegistry;
  clock: Clock;
  metrics: HookMetrics;
  budgetMs: number;
  steadyResyncSeconds: number;
  /** What Remote Providers' runtimes are made of; without it, Remote Providers cannot be served. */
  runtime?: RuntimeSettings;
}

const RUNTIME_STARTING_RESYNC = 10;

function condition(type: string, status: boolean | 'Unknown', reason: string, message: string): ConditionUpdate {
  return { type, status, reason, message };
}

/** Whether the runtime Deployment has an available pod of its current spec. */
export function runtimeAvailability(provider: ProviderObject, children: SyncRequestBody<ProviderObject>['children']): ConditionUpdate {
  const name = providerRuntimeName(provider.metadata);
  const deployment = checkedChildren(children, 'apps/v1', 'Deployment', DeploymentObject).find((object) => object.metadata.name === name);
  if (!deployment) return condition('RuntimeAvailable', false, 'RuntimeCreating', `creating Deployment ${name}`);
  const status = deployment.status ?? {};
  const generation = deployment.metadata.generation ?? 0;
  if ((status.availableReplicas ?? 0) >= 1 && (status.observedGeneration ?? 0) >= generation) {
    return condition('RuntimeAvailable', true, 'Available', `Deployment ${name} has ${status.availableReplicas} available pod(s)`);
  }
  const stuck = status.conditions?.find((c) => c.status === 'False' && c.message);
  return condition('RuntimeAvailable', false, 'RuntimeStarting', stuck?.message ?? `waiting for Deployment ${name} to have an available pod`);
}

/**
 * Why this Provider cannot be served at all, before anything is deployed or called: a type no
 * driver serves, or credentials in another namespace (a pod mounts only Secrets of its own).
 */
export function providerRefusal(provider: ProviderObject, canonical: CanonicalProvider): ConditionUpdate | undefined {
  const spec = provider.spec;
  if (!(SERVED_PROVIDER_TYPES as readonly string[]).includes(spec.type)) {
    return condition(
      'Ready',
      false,
      'Unsupported',
      `spec.type ${spec.type}: no driver serves this hypervisor (served: ${SERVED_PROVIDER_TYPES.join(', ')}); nothing is deployed`,
    );
  }
  const own = provider.metadata.namespace ?? '';
  const secretNamespace = canonical.credentials?.namespace;
  if (secretNamespace !== undefined && secretNamespace !== own) {
    return condition(
      'Ready',
      false,
      'CredentialsNotAllowed',
      `spec.credentialSecretRef.namespace ${secretNamespace} is not this Provider's namespace ${own}: the runtime pod can mount only ` +
        `a Secret of its own namespace. Create Secret ${canonical.credentials?.name ?? ''} in ${own} and drop credentialSecretRef.namespace`,
    );
  }
  return undefined;
}

/**
 * Supported: the fields this Provider sets that its type cannot honour (PROVIDER_FIELDS through
 * fieldUses, and the per-type table), named before the runtime is deployed or the hypervisor
 * called. Rules that need a driver capability are decided once the driver is known. It never
 * turns Ready False: a field that is not honoured leaves the Provider usable, and this says so.
 */
export function supportCondition(provider: ProviderObject, capabilities: Capabilities | undefined): ConditionUpdate {
  const uses = [...fieldUses('Provider', provider), ...providerTypeUses(provider)];
  const needCapability = uses.filter((use) => use.capability !== undefined);
  const unsupported = capabilities === undefined ? uses.filter((use) => use.capability === undefined) : unsupportedUses(uses, capabilities);
  const owner = `Provider ${provider.metadata.name}`;
  if (unsupported.length > 0) return condition('Supported', false, 'Unsupported', describeUnsupported(owner, provider.spec.type, unsupported));
  if (capabilities === undefined && needCapability.length > 0) {
    const fields = needCapability.map((use) => `${use.path} (${use.capability ?? ''})`).join(', ');
    return condition('Supported', 'Unknown', 'WaitingForDriver', `known once the driver reports its capabilities: ${fields}`);
  }
  return condition('Supported', true, 'Supported', 'every field set is honoured');
}

/** TLSVerified, for the drivers that speak TLS to their hypervisor: off only when the Provider says so, and then said. */
function tlsCondition(provider: ProviderObject, canonical: CanonicalProvider): ConditionUpdate | undefined {
  const type = provider.spec.type;
  if (type !== 'vsphere' && type !== 'proxmox') return undefined;
  const spelling = provider.spec.insecureSkipVerify !== undefined ? 'spec.insecureSkipVerify' : `runtime.env ${HTTP_DRIVER_ENV_PREFIX[type]}_INSECURE_SKIP_VERIFY`;
  if (canonical.tlsVerification === 'off') {
    return condition('TLSVerified', false, 'InsecureSkipVerify', `the hypervisor's TLS certificate is not verified (${spelling} is true): anyone on the path can impersonate it`);
  }
  if (canonical.tlsVerification === 'unknown') {
    return condition('TLSVerified', 'Unknown', 'FromEnvironment', `${spelling} takes its value from valueFrom, which the hook does not read`);
  }
  if (provider.spec.endpoint?.startsWith('http:')) return condition('TLSVerified', false, 'PlainHTTP', 'the endpoint is plain HTTP: there is no certificate to verify');
  return condition('TLSVerified', true, 'Verified', "the hypervisor's TLS certificate is verified");
}

export async function syncProvider(
  request: SyncRequestBody<ProviderObject>,
  deps: ProviderHookDeps,
  signal: AbortSignal = AbortSignal.timeout(deps.budgetMs),
  runtimeOptions: RuntimeOptions = {},
): Promise<SyncResponse> {
  const provider = request.parent;
  const now = deps.clock.now();
  const previous = previousConditions(provider.status);
  let children: KubeObject[] = [];
  const runtime: ConditionUpdate[] = [];
  // Conditions that inform but do not make Ready: Supported, TLSVerified.
  const notes: ConditionUpdate[] = [];
  const respond = (status: ProviderStatus, updates: ConditionUpdate[], resyncAfterSeconds: number, ready?: ConditionUpdate): SyncResponse => {
    const all = [...runtime, ...updates];
    const failing = all.find((update) => update.status !== true);
    const summary =
      ready ??
      (failing
        ? condition('Ready', false, failing.reason, failing.message)
        : condition('Ready', true, 'Connected', String(all.find((update) => update.type === 'Connected')?.message ?? 'connected')));
    status.conditions = buildConditions(previous, [summary, ...all, ...notes], now, provider.metadata.generation);
    if (provider.metadata.generation !== undefined) status.observedGeneration = provider.metadata.generation;
    return { status: status as Record<string, unknown>, children, resyncAfterSeconds };
  };

  const normalized = normalizeProvider(provider.spec, provider.metadata.namespace);
  if (!normalized.ok) return respond({}, [], deps.steadyResyncSeconds, condition('Ready', false, 'InvalidSpec', normalized.problem));
  const canonical = normalized.value;
  notes.push(supportCondition(provider, undefined));
  const refusal = providerRefusal(provider, canonical);
  if (refusal) return respond({}, [], deps.steadyResyncSeconds, refusal);
  const tls = tlsCondition(provider, canonical);
  if (tls) notes.push(tls);

  const target = providerTarget(provider);
  if (target.mode === 'Remote') {
    if (!deps.runtime) {
      const message = 'this hook server has no provider token secret (PROVIDER_TOKEN_SECRET_FILE), so it cannot run provider runtimes';
      return respond({}, [condition('Connected', false, 'RuntimeNotConfigured', message)], deps.steadyResyncSeconds);
    }
    children = runtimeChildren(provider, deps.runtime, canonical, migrationVolumes(provider, request.related), runtimeOptions);
    const available = runtimeAvailability(provider, request.children);
    runtime.push(available);
    if (available.status !== true) {
      return respond({}, [condition('Connected', 'Unknown', available.reason, 'the provider runtime is not available yet')], RUNTIME_STARTING_RESYNC);
    }
  }

  let driver: Driver;
  try {
    driver = await deps.registry.driverFor(target);
  } catch (error) {
    if (!isDriverError(error)) throw error;
    const failure = reportDriverError(error, 'reaching the provider runtime');
    const reason = error.code === 'Unsupported' ? 'ProviderUnavailable' : failure.reason;
    return respond({}, [condition('Connected', false, reason, error.message)], retryDelaySeconds(previous, now, failure.retryable));
  }
  notes[0] = supportCondition(provider, driver.capabilities);
  const capabilities = CAPABILITIES.filter((capability) => driver.capabilities[capability]);

  const health = canonical.health;
  if (!health.enabled) {
    const message = 'health checks are off (spec.healthCheck.enabled: false): the hypervisor is not probed';
    return respond(
      { capabilities },
      [condition('Connected', 'Unknown', 'HealthCheckDisabled', message)],
      deps.steadyResyncSeconds,
      runtime.every((update) => update.status === true) ? condition('Ready', true, 'HealthCheckDisabled', message) : undefined,
    );
  }

  // spec.healthCheck.timeout bounds the probe; the hook's own deadline still applies.
  const probeSignal = health.timeoutMs === undefined ? signal : AbortSignal.any([signal, AbortSignal.timeout(health.timeoutMs)]);
  const calls = new DriverCalls(driver, `${target.namespace}/${target.name}`, deps.metrics, probeSignal);
  let status: ProviderStatus;
  let updates: ConditionUpdate[];
  let failure: FailureReport | undefined;
  try {
    const { version } = await calls.call('probe', (options) => driver.probe(options));
    const inventory = await calls.call('inventory', (options) => driver.inventory(options));
    status = {
      version,
      capabilities,
      hosts: inventory.hosts.map((host) => ({
        name: host.name,
        cpus: host.cpus,
        cpusAllocated: host.cpusAllocated,
        memory: formatBytes(host.memoryBytes),
        memoryAllocated: formatBytes(host.memoryAllocatedBytes),
        vms: host.vms,
      })),
      datastores: inventory.datastores.map((datastore) => ({
        name: datastore.name,
        capacity: formatBytes(datastore.capacityBytes),
        used: formatBytes(datastore.usedBytes),
      })),
    };
    const connected = `${driver.type} ${version}`;
    updates = [condition('Connected', true, 'Connected', connected), condition('Authenticated', true, 'Authenticated', connected)];
  } catch (error) {
    failure = reportDriverError(error, 'probing the hypervisor');
    status = { capabilities };
    updates = isDriverError(error) && error.code === 'Unauthorized'
      ? [condition('Connected', true, 'Reachable', 'the hypervisor answered'), condition('Authenticated', false, 'AuthenticationFailed', failure.message)]
      : [condition('Connected', false, failure.reason, failure.message), condition('Authenticated', 'Unknown', failure.reason, 'not reached')];
  }

  // Without spec.healthCheck, Ready follows the latest probe (and a failure backs off).
  if (health.intervalMs === undefined) {
    return respond(status, updates, failure ? retryDelaySeconds(previous, now, failure.retryable) : deps.steadyResyncSeconds);
  }
  const counts = countProbe(previousHealth(provider.status), failure === undefined, health, now);
  status.health = counts;
  return respond(status, updates, secondsUntilDue(counts, health, now), healthReady(counts, health, updates, failure));
}

/** Ready under spec.healthCheck's thresholds: healthy until enough failures in a row, and back after enough successes. */
function healthReady(counts: HealthState, health: HealthCheckSettings, updates: ConditionUpdate[], failure: FailureReport | undefined): ConditionUpdate {
  const connected = String(updates.find((update) => update.type === 'Connected')?.message ?? 'connected');
  if (counts.healthy) {
    if (failure === undefined) return condition('Ready', true, 'Connected', connected);
    return condition(
      'Ready',
      true,
      'Connected',
      `${counts.consecutiveFailures} of ${health.failureThreshold} failed probes allowed before Ready turns False; last: ${failure.message}`,
    );
  }
  if (failure !== undefined) {
    const failing = updates.find((update) => update.status !== true);
    return condition('Ready', false, failing?.reason ?? failure.reason, failing?.message ?? failure.message);
  }
  return condition(
    'Ready',
    false,
    'HealthCheckPending',
    `${counts.consecutiveSuccesses} of ${health.successThreshold} successful probes, an interval apart, before Ready turns True`,
  );
}

/**
 * Deleting a Provider: it goes once nothing refers to it any more (provider-deletion.ts); until
 * then its runtime stays (its children are still answered) so the VMs can still be deleted.
 */
export function finalizeProvider(request: SyncRequestBody<ProviderObject>, deps: ProviderHookDeps): SyncResponse {
  const provider = request.parent;
  const target = providerTarget(provider);
  const answer = providerDeletion(provider, request.related, deps.clock.now(), target.port ?? 9090);
  // A Provider that never had a runtime (a type no driver serves, refused credentials, a spec that means nothing) gets none now.
  const normalized = normalizeProvider(provider.spec, provider.metadata.namespace);
  const runnable = normalized.ok && providerRefusal(provider, normalized.value) === undefined;
  const keepRuntime = !answer.finalized && target.mode === 'Remote' && deps.runtime !== undefined && runnable;
  return {
    status: answer.status as Record<string, unknown>,
    children: keepRuntime && deps.runtime && normalized.ok ? runtimeChildren(provider, deps.runtime, normalized.value, migrationVolumes(provider, request.related)) : [],
    resyncAfterSeconds: answer.finalized ? 0 : 10,
    finalized: answer.finalized,
  };
}
