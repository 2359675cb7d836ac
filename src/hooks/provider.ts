// The Provider sync hook: probe the hypervisor through its driver and publish what it is and has.
import { CAPABILITIES, isDriverError, type DriverRegistry } from '../contracts/driver.js';
import type { ProviderObject, ProviderStatus } from '../contracts/crds/provider.js';
import type { SyncRequestBody, SyncResponse } from '../contracts/metacontroller.js';
import { formatBytes } from '../contracts/quantity.js';
import type { Clock } from '../contracts/clock.js';
import { buildConditions, previousConditions, type ConditionUpdate } from './conditions.js';
import { DriverCalls } from './driver-calls.js';
import { reportDriverError, retryDelaySeconds } from './driver-errors.js';
import type { HookMetrics } from './metrics.js';
import { providerTarget } from './virtualmachine/resolve.js';

export interface ProviderHookDeps {
  registry: DriverRegistry;
  clock: Clock;
  metrics: HookMetrics;
  budgetMs: number;
  steadyResyncSeconds: number;
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
  const label = `${target.namespace}/${target.name}`;
  const respond = (status: ProviderStatus, updates: ConditionUpdate[], resyncAfterSeconds: number): SyncResponse => {
    status.conditions = buildConditions(previous, updates, now, provider.metadata.generation);
    if (provider.metadata.generation !== undefined) status.observedGeneration = provider.metadata.generation;
    return { status: status as Record<string, unknown>, children: [], resyncAfterSeconds };
  };

  let driver;
  try {
    driver = deps.registry.driverFor(target);
  } catch (error) {
    if (!isDriverError(error)) throw error;
    const down = { status: false, reason: 'ProviderUnavailable', message: error.message } as const;
    return respond({}, [{ type: 'Ready', ...down }, { type: 'Connected', ...down }], deps.steadyResyncSeconds);
  }

  const calls = new DriverCalls(driver, label, deps.metrics, signal);
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
    return respond(
      status,
      [
        { type: 'Ready', status: true, reason: 'Connected', message: `${driver.type} ${version}` },
        { type: 'Connected', status: true, reason: 'Connected', message: `${driver.type} ${version}` },
      ],
      deps.steadyResyncSeconds,
    );
  } catch (error) {
    const failure = reportDriverError(error, 'probing the hypervisor');
    const down = { status: false, reason: failure.reason, message: failure.message } as const;
    return respond({ capabilities }, [{ type: 'Ready', ...down }, { type: 'Connected', ...down }], retryDelaySeconds(previous, now, failure.retryable));
  }
}
