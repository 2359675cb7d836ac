// Prometheus metrics of the hook server, in a registry of its own (one per server instance, so
// tests can build many servers).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const MAX_PROVIDER_LABELS = 200;
export const OTHER_PROVIDERS = 'other';
const MAX_TRACKED_TASKS = 5000;

export class HookMetrics {
  readonly registry = new Registry();

  readonly hookDuration = new Histogram({
    name: 'virtrigaud_hook_duration_seconds',
    help: 'Time to answer a Metacontroller hook call.',
    labelNames: ['controller', 'hook', 'outcome'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly driverCalls = new Counter({
    name: 'virtrigaud_driver_calls_total',
    help: 'Driver calls by provider, operation and outcome (ok or the typed error code).',
    labelNames: ['provider', 'operation', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly tasksInFlight = new Gauge({
    name: 'virtrigaud_tasks_in_flight',
    help: 'Hypervisor tasks started by hooks and not yet seen finished.',
    labelNames: ['provider'] as const,
    registers: [this.registry],
  });

  readonly createToReady = new Histogram({
    name: 'virtrigaud_vm_create_to_ready_seconds',
    help: 'Time from a VirtualMachine object\'s creation to its first Ready=True.',
    buckets: [1, 5, 10, 30, 60, 120, 300, 600, 1800],
    registers: [this.registry],
  });

  // Task IDs per provider, so the gauge counts each task once however often it is polled.
  readonly #tasks = new Map<string, Set<string>>();
  // Provider label values seen; past the bound, new ones share one series.
  readonly #providers = new Set<string>();

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'virtrigaud_' });
  }

  /**
   * Label values come from objects in requests: however many Providers a caller names, the series
   * stay bounded (the first MAX_PROVIDER_LABELS names keep their own, the rest share `other`).
   */
  providerLabel(provider: string): string {
    if (this.#providers.has(provider)) return provider;
    if (this.#providers.size >= MAX_PROVIDER_LABELS) return OTHER_PROVIDERS;
    this.#providers.add(provider);
    return provider;
  }

  driverCall(provider: string, operation: string, outcome: string): void {
    this.driverCalls.inc({ provider: this.providerLabel(provider), operation, outcome });
  }

  taskStarted(provider: string, task: string): void {
    const label = this.providerLabel(provider);
    const tasks = this.#tasks.get(label) ?? new Set<string>();
    tasks.add(task);
    // A task whose VM went away is never seen finished: the oldest are forgotten past the bound.
    for (const oldest of tasks) {
      if (tasks.size <= MAX_TRACKED_TASKS) break;
      tasks.delete(oldest);
    }
    this.#tasks.set(label, tasks);
    this.tasksInFlight.set({ provider: label }, tasks.size);
  }

  taskFinished(provider: string, task: string): void {
    const label = this.providerLabel(provider);
    const tasks = this.#tasks.get(label);
    if (!tasks?.delete(task)) return;
    this.tasksInFlight.set({ provider: label }, tasks.size);
  }
}
