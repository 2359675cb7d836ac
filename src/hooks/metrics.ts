// Prometheus metrics of the hook server, in a registry of its own (one per server instance, so
// tests can build many servers).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

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

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'virtrigaud_' });
  }

  taskStarted(provider: string, task: string): void {
    const tasks = this.#tasks.get(provider) ?? new Set<string>();
    tasks.add(task);
    this.#tasks.set(provider, tasks);
    this.tasksInFlight.set({ provider }, tasks.size);
  }

  taskFinished(provider: string, task: string): void {
    const tasks = this.#tasks.get(provider);
    if (!tasks?.delete(task)) return;
    this.tasksInFlight.set({ provider }, tasks.size);
  }
}
