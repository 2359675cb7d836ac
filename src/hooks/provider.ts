// The Provider sync hook: for a Remote Provider, the runtime that holds its credentials (children);
// then a probe of the hypervisor through the Provider's driver, published as status.
import type { Clock } from '../contracts/clock.js';
import type { ProviderObject, ProviderStatus } from '../contracts/crds/provider.js';
import { CAPABILITIES, isDriverError, type Driver, type DriverRegistry } from '../contracts/driver.js';
import { DeploymentObject } from '../contracts/kube.js';
import type { KubeObject, SyncRequestBody, SyncResponse } from '../contracts/metacontroller.js';
import { providerRuntimeName } from '../contracts/provider-token.js';
import { formatBytes } from '../contracts/quantity.js';
import { buildConditions, previousConditions, type ConditionUpdate } from './conditions.js';
import { DriverCalls } from './driver-calls.js';
import { reportDriverError, retryDelaySeconds } from './driver-errors.js';
import type { HookMetrics } from './metrics.js';
import { checkedChildren } from './objects.js';
import { providerDeletion } from './provider-deletion.js';
import { runtimeChildren, type RuntimeSettings } from './provider-runtime.js';
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
function runtimeAvailability(provider: ProviderObject, children: SyncRequestBody<ProviderObject>['children']): ConditionUpdate {
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

export async function syncProvider(
  request: SyncRequestBody<ProviderObject>,
  deps: ProviderHookDeps,
  signal: AbortSignal = AbortSignal.timeout(deps.budgetMs),
): Promise<SyncResponse> {
  const provider = request.parent;
  const now = deps.clock.now();
  const previous = previousConditions(provider.status);
  const target = providerTarget(provider);
  let children: KubeObject[] = [];
  const runtime: ConditionUpdate[] = [];
  const respond = (status: ProviderStatus, updates: ConditionUpdate[], resyncAfterSeconds: number): SyncResponse => {
    const all = [...runtime, ...updates];
    const failing = all.find((update) => update.status !== true);
    const ready = failing
      ? condition('Ready', false, failing.reason, failing.message)
      : condition('Ready', true, 'Connected', String(all.find((update) => update.type === 'Connected')?.message ?? 'connected'));
    status.conditions = buildConditions(previous, [ready, ...all], now, provider.metadata.generation);
    if (provider.metadata.generation !== undefined) status.observedGeneration = provider.metadata.generation;
    return { status: status as Record<string, unknown>, children, resyncAfterSeconds };
  };

  if (target.mode === 'Remote') {
    if (!deps.runtime) {
      const message = 'this hook server has no provider token secret (PROVIDER_TOKEN_SECRET_FILE), so it cannot run provider runtimes';
      return respond({}, [condition('Connected', false, 'RuntimeNotConfigured', message)], deps.steadyResyncSeconds);
    }
    children = runtimeChildren(provider, deps.runtime);
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

  const calls = new DriverCalls(driver, `${target.namespace}/${target.name}`, deps.metrics, signal);
  const capabilities = CAPABILITIES.filter((capability) => driver.capabilities[capability]);
  try {
    const { version } = await calls.call('probe', (options) => driver.probe(options));
    const inventory = await calls.call('inventory', (options) => driver.inventory(options));
    const status: ProviderStatus = {
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
    return respond(
      status,
      [condition('Connected', true, 'Connected', connected), condition('Authenticated', true, 'Authenticated', connected)],
      deps.steadyResyncSeconds,
    );
  } catch (error) {
    const failure = reportDriverError(error, 'probing the hypervisor');
    const updates = isDriverError(error) && error.code === 'Unauthorized'
      ? [condition('Connected', true, 'Reachable', 'the hypervisor answered'), condition('Authenticated', false, 'AuthenticationFailed', failure.message)]
      : [condition('Connected', false, failure.reason, failure.message), condition('Authenticated', 'Unknown', failure.reason, 'not reached')];
    return respond({ capabilities }, updates, retryDelaySeconds(previous, now, failure.retryable));
  }
}

/**
 * Deleting a Provider: it goes once nothing refers to it any more (provider-deletion.ts); until
 * then its runtime stays (its children are still answered) so the VMs can still be deleted.
 */
export function finalizeProvider(request: SyncRequestBody<ProviderObject>, deps: ProviderHookDeps): SyncResponse {
  const provider = request.parent;
  const target = providerTarget(provider);
  const answer = providerDeletion(provider, request.related, deps.clock.now(), target.port ?? 9090);
  const keepRuntime = !answer.finalized && target.mode === 'Remote' && deps.runtime !== undefined;
  return {
    status: answer.status as Record<string, unknown>,
    children: keepRuntime && deps.runtime ? runtimeChildren(provider, deps.runtime) : [],
    resyncAfterSeconds: answer.finalized ? 0 : 10,
    finalized: answer.finalized,
  };
}
