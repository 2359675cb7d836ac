// Prometheus metrics of the hook server, in a registry of its own (one per server instance, so
// tests can build many servers).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const MAX_PROVIDER_LABELS = 200;
export const OTHER_PROVIDERS = 'other';
const MAX_TRACKED_TASKS = 5000;
/** How long a cluster's Machine counts stay in proxmox_operator_machines_total without a new sync of it. */
export const VITI_COUNT_TTL_MS = 15 * 60 * 1000;

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

  // The Viti Proxmox Operator's metrics (seed 003, "Prometheus Metrics"), with its names and labels.
  readonly vitiReconcileDuration = new Histogram({
    name: 'proxmox_operator_reconciliation_duration_seconds',
    help: 'Time to answer a hook call of a Viti controller (machine, proxmoxcluster, proxmoxnode).',
    labelNames: ['controller'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly vitiErrors = new Counter({
    name: 'proxmox_operator_errors_total',
    help: 'Failures a Viti controller reported, by condition reason: each failed attempt counts once, not each sync that repeats it.',
    labelNames: ['error_type', 'controller'] as const,
    registers: [this.registry],
  });

  readonly vitiMachines = new Gauge({
    name: 'proxmox_operator_machines_total',
    help: 'Machines by phase and node, as the last sync of each ProxmoxCluster counted them (its Machines are related objects of it).',
    labelNames: ['phase', 'node'] as const,
    registers: [this.registry],
    collect: () => this.#refreshMachines(),
  });

  readonly clusterNodesAvailable = new Gauge({
    name: 'proxmox_cluster_nodes_available',
    help: 'Online nodes of each ProxmoxCluster at its last health check.',
    labelNames: ['cluster'] as const,
    registers: [this.registry],
  });

  readonly clusterConnectionStatus = new Gauge({
    name: 'proxmox_cluster_connection_status',
    help: '1 when the ProxmoxCluster answered its last health check, else 0.',
    labelNames: ['cluster'] as const,
    registers: [this.registry],
  });

  // Per cluster: its Machines' (phase, node) counts and when they were counted; a cluster not synced
  // for VITI_COUNT_TTL_MS (deleted, or synced by another replica) stops being counted here.
  readonly #machineCounts = new Map<string, { counts: Map<string, number>; at: number }>();

  clusterConnection(cluster: string, connected: boolean, nodesAvailable: number): void {
    const label = this.providerLabel(`proxmoxcluster/${cluster}`) === OTHER_PROVIDERS ? OTHER_PROVIDERS : cluster;
    this.clusterConnectionStatus.set({ cluster: label }, connected ? 1 : 0);
    this.clusterNodesAvailable.set({ cluster: label }, nodesAvailable);
  }

  /** The Machines of one cluster, as (phase, node) pairs, replacing what was counted for it before. */
  countMachines(cluster: string, machines: { phase: string; node: string }[]): void {
    const counts = new Map<string, number>();
    for (const machine of machines) {
      const key = `${machine.phase}\0${machine.node}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    // Wall-clock time: the age that matters is the scrape's, not the hook's (fake) clock.
    this.#machineCounts.set(cluster, { counts, at: Date.now() });
    if (this.#machineCounts.size > MAX_PROVIDER_LABELS) this.#machineCounts.delete(this.#machineCounts.keys().next().value ?? '');
  }

  #refreshMachines(): void {
    const now = Date.now();
    const totals = new Map<string, number>();
    for (const [cluster, entry] of this.#machineCounts) {
      if (now - entry.at > VITI_COUNT_TTL_MS) {
        this.#machineCounts.delete(cluster);
        continue;
      }
      for (const [key, count] of entry.counts) totals.set(key, (totals.get(key) ?? 0) + count);
    }
    this.vitiMachines.reset();
    for (const [key, count] of totals) {
      const [phase = '', node = ''] = key.split('\0');
      this.vitiMachines.set({ phase, node }, count);
    }
  }

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
