// A Driver that records every call, answers those given a handler and refuses the others: for hook
// tests that must prove what was (or was not) asked of a hypervisor.
import { CAPABILITIES, UnreachableError, type Capabilities, type Capability, type Driver, type DriverRegistry } from '../../src/contracts/driver.js';
import type { VMHookDeps } from '../../src/hooks/virtualmachine/context.js';
import { HookMetrics } from '../../src/hooks/metrics.js';
import { FakeClock } from './clock.js';

type Handlers = Partial<Record<Exclude<keyof Driver, 'type' | 'capabilities'>, (...args: never[]) => unknown>>;

export interface FakeDriver {
  registry: DriverRegistry;
  /** Every driver method called, with its arguments, in order. */
  calls: { method: string; args: unknown[] }[];
  capabilities: Capabilities;
}

/** All capabilities but those given as false. */
export function capabilitiesWith(overrides: Partial<Record<Capability, boolean>> = {}): Capabilities {
  return Object.fromEntries(CAPABILITIES.map((capability) => [capability, overrides[capability] ?? true])) as Capabilities;
}

export function fakeDriver(type: string, capabilities: Capabilities = capabilitiesWith(), handlers: Handlers = {}): FakeDriver {
  const calls: FakeDriver['calls'] = [];
  const driver = new Proxy({} as Driver, {
    get(_target, property) {
      if (property === 'type') return type;
      if (property === 'capabilities') return capabilities;
      // Not a thenable: `await registry.driverFor()` must resolve to the driver itself.
      if (typeof property !== 'string' || property === 'then') return undefined;
      return async (...args: unknown[]) => {
        calls.push({ method: property, args });
        const handler = (handlers as Record<string, ((...args: unknown[]) => unknown) | undefined>)[property];
        if (!handler) throw new UnreachableError(`${property} is not expected in this test`);
        return handler(...args);
      };
    },
  });
  return { registry: { driverFor: async () => driver }, calls, capabilities };
}

export function hookDeps(registry: DriverRegistry, clock = new FakeClock()): VMHookDeps {
  return { registry, clock, metrics: new HookMetrics({ processMetrics: false }), budgetMs: 2000, steadyResyncSeconds: 60 };
}
