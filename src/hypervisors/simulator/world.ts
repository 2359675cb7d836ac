// The simulator's state and the rules every verb shares: indexes, ownership checks, locks, the
// task runner and fault bookkeeping. The verbs (lifecycle.ts, power.ts, snapshots.ts) change it.

import { migrationStorage, type MigrationStorage } from '../common/disk-files.js';
import { systemClock, type Clock } from '../../contracts/clock.js';
import {
  BusyError,
  ConflictError,
  InvalidSpecError,
  NotFoundError,
  UnsupportedError,
  type Capabilities,
  type Capability,
  type VMRef,
} from '../../contracts/driver.js';
import { formatBytes } from '../../contracts/quantity.js';
import { ImageCache } from './image.js';
import {
  DEFAULT_DATASTORES,
  DEFAULT_DURATIONS,
  DEFAULT_FETCH_TIMEOUT_MS,
  DEFAULT_HOSTS,
  DEFAULT_MAX_IMAGE_BYTES,
  DEFAULT_NETWORKS,
  DEFAULT_TEMPLATES,
  DEFAULT_VERSION,
  allCapabilities,
  type SimDatastore,
  type SimFault,
  type SimHost,
  type SimOperation,
  type SimTemplate,
  type SimulatorDurations,
  type SimulatorOptions,
  type TaskFailure,
  type VMRecord,
} from './model.js';
import { TaskLog, Timeline, type TaskRecord } from './tasks.js';

export interface TaskPlan {
  vm: VMRecord;
  /** Short task type, as in a PVE UPID (qmcreate, qmstart…). */
  kind: string;
  /** What describe() shows as the VM's lock while the task runs. */
  lock: string;
  duration: number;
  /** Set by an injected taskFailure fault: the task runs, then fails with this message and no effect. */
  failWith?: string;
  /** Something outside the clock the task must wait for (an image download); resolves to a failure or nothing. */
  waitFor?: Promise<TaskFailure | undefined>;
  /** The effect, at the instant the task ends; a returned failure fails the task instead. */
  onSuccess: (at: number) => TaskFailure | undefined;
  /** Undo what the start of the task did (a VM being created disappears). */
  onFailure?: (at: number) => void;
}

export interface HostUsage {
  cpus: number;
  memoryBytes: number;
  vms: number;
}

export class SimWorld {
  readonly clock: Clock;
  readonly durations: SimulatorDurations;
  readonly migrationDir: string;
  /** The migration directory and, in a provider runtime, the PVCs mounted below it (MIGRATION_VOLUMES). */
  readonly migration: MigrationStorage;
  readonly capabilities: Capabilities;
  readonly hosts: readonly SimHost[];
  readonly datastores: readonly SimDatastore[];
  readonly networks: ReadonlySet<string>;
  readonly uniqueNames: boolean;
  readonly version: string;
  readonly images: ImageCache;
  readonly timeline = new Timeline();
  readonly tasks = new TaskLog();
  readonly vms = new Map<string, VMRecord>();
  readonly #templates = new Map<string, SimTemplate>();
  readonly #byOwner = new Map<string, Set<string>>();
  readonly #byName = new Map<string, Set<string>>();
  readonly #faults = new Map<SimOperation, { fault: SimFault; remaining: number }[]>();
  readonly #calls = new Map<SimOperation, number>();
  readonly #waiting = new Set<Promise<void>>();
  #nextId = 100;
  #nextSnapshot = 1;

  constructor(options: SimulatorOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.durations = { ...DEFAULT_DURATIONS, ...options.durations };
    const fromEnv = migrationStorage(process.env);
    this.migrationDir = options.migrationDir ?? fromEnv.root;
    this.migration = options.migrationDir !== undefined ? { root: options.migrationDir } : fromEnv;
    this.capabilities = allCapabilities(options.capabilities);
    this.hosts = (options.hosts ?? DEFAULT_HOSTS).map((host) => ({ ...host }));
    this.datastores = (options.datastores ?? DEFAULT_DATASTORES).map((datastore) => ({ ...datastore }));
    this.networks = new Set(options.networks ?? DEFAULT_NETWORKS);
    this.uniqueNames = options.uniqueNames ?? true;
    this.version = options.version ?? DEFAULT_VERSION;
    this.images = new ImageCache({
      timeoutMs: options.fetchTimeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS,
      maxBytes: options.maxImageBytes ?? DEFAULT_MAX_IMAGE_BYTES,
    });
    for (const template of options.templates ?? DEFAULT_TEMPLATES) this.addTemplate(template);
    if (this.hosts.length === 0) throw new Error('the simulator needs at least one host');
    if (this.datastores.length === 0) throw new Error('the simulator needs at least one datastore');
  }

  /** Lands every effect that is due; cheap when nothing is. */
  advance(): void {
    this.timeline.runDue(this.clock.now());
  }

  addTemplate(template: SimTemplate): void {
    this.#templates.set(template.name, { ...template });
  }

  templateNames(): string[] {
    return [...this.#templates.keys()];
  }

  removeTemplate(name: string): void {
    this.#templates.delete(name);
  }

  /** By name or by ID, as both PVE (VMID) and vSphere (name) users refer to templates. */
  template(ref: string): SimTemplate | undefined {
    const byName = this.#templates.get(ref);
    if (byName !== undefined) return byName;
    for (const template of this.#templates.values()) if (template.id === ref) return template;
    return undefined;
  }

  // IDs grow like PVE VMIDs and are never reused, so a stale providerID can never name a new VM.
  allocateId(): string {
    return String(this.#nextId++);
  }

  allocateSnapshotId(): string {
    return `snap-${this.#nextSnapshot++}`;
  }

  addVM(vm: VMRecord): void {
    this.vms.set(vm.id, vm);
    indexAdd(this.#byName, vm.name, vm.id);
    if (vm.owner !== undefined) indexAdd(this.#byOwner, vm.owner.uid, vm.id);
  }

  removeVM(vm: VMRecord): void {
    if (this.vms.get(vm.id) !== vm) return;
    this.vms.delete(vm.id);
    indexRemove(this.#byName, vm.name, vm.id);
    if (vm.owner !== undefined) indexRemove(this.#byOwner, vm.owner.uid, vm.id);
    if (vm.shutdownEvent !== undefined) vm.shutdownEvent.cancelled = true;
  }

  /** The oldest VM carrying this owner UID: nothing stops a careless client from tagging two. */
  findByOwner(uid: string): VMRecord | undefined {
    const ids = this.#byOwner.get(uid);
    if (ids === undefined) return undefined;
    for (const id of ids) return this.vms.get(id);
    return undefined;
  }

  refuseTakenName(name: string): void {
    if (!this.uniqueNames) return;
    const ids = this.#byName.get(name);
    if (ids === undefined) return;
    for (const id of ids) throw new ConflictError(`a VM named '${name}' already exists (id ${id})`);
  }

  requireVM(id: string): VMRecord {
    const vm = this.vms.get(id);
    if (vm === undefined) throw new NotFoundError(`VM ${id} not found`);
    return vm;
  }

  /** The VM the ref names, refused unless its identity tag names the ref's owner. */
  requireOwned(ref: VMRef): VMRecord {
    const vm = this.requireVM(ref.id);
    if (vm.owner?.uid !== ref.owner.uid) {
      throw new ConflictError(`VM ${vm.id} is not owned by ${ref.owner.namespace}/${ref.owner.name}`);
    }
    return vm;
  }

  /** requireOwned, and refused while a task holds the VM (PVE "can't lock file", vSphere TaskInProgress). */
  requireIdle(ref: VMRef): VMRecord {
    const vm = this.requireOwned(ref);
    if (vm.lock !== undefined) throw new BusyError(`VM ${vm.id} is locked (${vm.lock.name})`);
    return vm;
  }

  requireCapability(capability: Capability, feature: string): void {
    if (!this.capabilities[capability]) {
      throw new UnsupportedError(`this hypervisor does not support ${feature} (capability '${capability}')`);
    }
  }

  hostUsage(host: string): HostUsage {
    const usage: HostUsage = { cpus: 0, memoryBytes: 0, vms: 0 };
    for (const vm of this.vms.values()) {
      if (vm.host !== host) continue;
      usage.cpus += vm.cpus;
      usage.memoryBytes += vm.memoryBytes;
      usage.vms += 1;
    }
    return usage;
  }

  freeMemory(host: SimHost): number {
    return host.memoryBytes - this.hostUsage(host.name).memoryBytes;
  }

  /** The named host, or the one with most free memory; refused when it cannot hold `memoryBytes` more. */
  placeMemory(memoryBytes: number, hostName?: string): SimHost {
    let host: SimHost | undefined;
    let free = -Infinity;
    for (const candidate of this.hosts) {
      if (hostName !== undefined && candidate.name !== hostName) continue;
      const candidateFree = this.freeMemory(candidate);
      if (candidateFree > free) [host, free] = [candidate, candidateFree];
    }
    if (host === undefined) throw new InvalidSpecError(`host '${hostName ?? ''}' not found`);
    if (free < memoryBytes) {
      throw new InvalidSpecError(
        `not enough memory on host '${host.name}': ${formatBytes(Math.max(0, free))} free, ${formatBytes(memoryBytes)} needed`,
      );
    }
    return host;
  }

  /** A task effect that lands only if the VM still exists (an admin may have removed it meanwhile). */
  whileExists(vm: VMRecord, effect: (at: number) => void): (at: number) => TaskFailure | undefined {
    return (at) => {
      if (this.vms.get(vm.id) !== vm) return { message: `VM ${vm.id} no longer exists`, code: 'NotFound' };
      effect(at);
      return undefined;
    };
  }

  /** Starts a task holding `plan.vm`; its effect lands when the clock passes its duration. */
  startTask(plan: TaskPlan): TaskRecord {
    const startedAt = this.clock.now();
    const task = this.tasks.open(plan.vm.host, plan.kind, startedAt, plan.duration);
    plan.vm.lock = { name: plan.lock, task: task.id };
    let waiting = plan.waitFor !== undefined;
    let overdue = false;
    let waitFailure: TaskFailure | undefined;

    const finish = (at: number): void => {
      if (task.state !== 'running') return;
      if (waiting) {
        overdue = true;
        return;
      }
      if (plan.vm.lock?.task === task.id) delete plan.vm.lock;
      let failure = waitFailure ?? (plan.failWith === undefined ? undefined : { message: plan.failWith });
      if (failure === undefined) failure = plan.onSuccess(at);
      if (failure !== undefined) plan.onFailure?.(at);
      this.tasks.finish(task, failure);
    };

    this.timeline.schedule(startedAt + plan.duration, finish);
    if (plan.waitFor !== undefined) {
      const settled = plan.waitFor
        .catch((): TaskFailure => ({ message: 'the task failed unexpectedly' }))
        .then((failure) => {
          waiting = false;
          waitFailure = failure;
          // A failure ends the task at once; a success waits for the task's own duration.
          if (failure !== undefined || overdue) this.timeline.schedule(this.clock.now(), finish);
        });
      this.#waiting.add(settled);
      void settled.finally(() => this.#waiting.delete(settled));
    }
    return task;
  }

  /** Resolves once nothing a task waits for (image downloads) is still in flight. */
  async settled(): Promise<void> {
    while (this.#waiting.size > 0) await Promise.all(this.#waiting);
  }

  injectFault(operation: SimOperation, fault: SimFault): void {
    const times = fault.times ?? 1;
    if (times <= 0) return;
    const queue = this.#faults.get(operation) ?? [];
    queue.push({ fault: { ...fault }, remaining: times });
    this.#faults.set(operation, queue);
  }

  clearFaults(): void {
    this.#faults.clear();
  }

  /** Counts a call and hands out the fault it should suffer, if any. */
  receiveCall(operation: SimOperation): SimFault | undefined {
    this.#calls.set(operation, (this.#calls.get(operation) ?? 0) + 1);
    const queue = this.#faults.get(operation);
    if (queue === undefined) return undefined;
    const now = this.clock.now();
    while (queue[0] !== undefined && queue[0].fault.until !== undefined && queue[0].fault.until <= now) queue.shift();
    const head = queue[0];
    if (head === undefined) return undefined;
    head.remaining -= 1;
    if (head.remaining <= 0) queue.shift();
    return head.fault;
  }

  callCount(operation: SimOperation): number {
    return this.#calls.get(operation) ?? 0;
  }

  /** Calls of every operation but those named (a Provider's probes, say). */
  totalCalls(except: readonly SimOperation[] = []): number {
    let total = 0;
    for (const [operation, count] of this.#calls) if (!except.includes(operation)) total += count;
    return total;
  }
}

function indexAdd(index: Map<string, Set<string>>, key: string, id: string): void {
  const ids = index.get(key);
  if (ids === undefined) index.set(key, new Set([id]));
  else ids.add(id);
}

function indexRemove(index: Map<string, Set<string>>, key: string, id: string): void {
  const ids = index.get(key);
  if (ids === undefined) return;
  ids.delete(id);
  if (ids.size === 0) index.delete(key);
}
