// What one VirtualMachine hook call carries around: the parent, its previous status, the clock
// reading, a deadline for driver calls, and the assembly of the response.
import type { Clock } from '../../contracts/clock.js';
import type {
  CloneRecord,
  FailureRecord,
  LockRecord,
  PlacementStatus,
  RevertRecord,
  ShutdownRecord,
  TaskStatusRef,
  VirtualMachineObject,
} from '../../contracts/crds/virtualmachine.js';
import { isDriverError, type Driver, type DriverRegistry, type Identity, type ObservedVM, type ProviderTarget } from '../../contracts/driver.js';
import type { SyncResponse } from '../../contracts/metacontroller.js';
import { buildConditions, conditionOf, type ConditionUpdate } from '../conditions.js';
import { DriverCalls } from '../driver-calls.js';
import { retryDelaySeconds } from '../driver-errors.js';
import type { HookMetrics } from '../metrics.js';
import type { Observation } from './observe.js';
import { identityOf } from './resolve.js';
import { buildStatus, readPreviousStatus, type PreviousStatus } from './status.js';

export interface VMHookDeps {
  registry: DriverRegistry;
  clock: Clock;
  metrics: HookMetrics;
  /** Time allowed for all driver calls of one hook call (Metacontroller's webhook timeout is 10 s). */
  budgetMs: number;
  /** Resync interval for a VM with nothing in flight. */
  steadyResyncSeconds: number;
}

export type DriverLookup = { ok: true; driver: Driver } | { ok: false; reason: string; message: string };

/** The Driver serving a Provider, or why there is none (ProviderUnavailable). */
export async function driverForProvider(registry: DriverRegistry, provider: ProviderTarget): Promise<DriverLookup> {
  try {
    return { ok: true, driver: await registry.driverFor(provider) };
  } catch (error) {
    if (!isDriverError(error)) throw error;
    return { ok: false, reason: 'ProviderUnavailable', message: `Provider ${provider.namespace}/${provider.name}: ${error.message}` };
  }
}

/** Driver calls of one hook call, under its deadline, counted per Provider. */
export function providerCalls(deps: VMHookDeps, driver: Driver, provider: ProviderTarget, signal: AbortSignal): DriverCalls {
  return new DriverCalls(driver, `${provider.namespace}/${provider.name}`, deps.metrics, signal);
}

export interface Respond {
  resyncAfterSeconds: number;
  task: TaskStatusRef | undefined;
  providerID?: string | undefined;
  restartHandled?: string | undefined;
  /** A revert or clone started by this sync; otherwise the previous status's record stays. */
  revert?: RevertRecord | undefined;
  clonedFrom?: CloneRecord | undefined;
  /** The records below are written as given: undefined clears them. */
  failure?: FailureRecord | undefined;
  gracefulShutdown?: ShutdownRecord | undefined;
  lockHeld?: LockRecord | undefined;
  /** Undefined keeps the previous record; null clears it. */
  placement?: PlacementStatus | null;
  finalized?: boolean;
}

/**
 * What the engine reads of the object it serves: its metadata and the VM-shaped status it wrote
 * last time. A VirtualMachine is one; a Machine (hooks/viti) hands over its status.virtualMachine.
 */
export interface EngineSubject {
  metadata: VirtualMachineObject['metadata'];
  status?: Record<string, unknown> | undefined;
}

export class VMHookContext {
  readonly previous: PreviousStatus;
  readonly identity: Identity;
  readonly now: number;
  readonly deleting: boolean;

  constructor(
    readonly vm: EngineSubject,
    private readonly deps: VMHookDeps,
    private readonly signal: AbortSignal = AbortSignal.timeout(deps.budgetMs),
  ) {
    this.previous = readPreviousStatus(vm.status);
    this.identity = identityOf(vm);
    this.now = deps.clock.now();
    this.deleting = vm.metadata.deletionTimestamp !== undefined;
  }

  driverFor(provider: ProviderTarget): Promise<DriverLookup> {
    return driverForProvider(this.deps.registry, provider);
  }

  calls(driver: Driver, provider: ProviderTarget): DriverCalls {
    return providerCalls(this.deps, driver, provider, this.signal);
  }

  /** Counts tasks the previous status recorded that the hypervisor now reports finished or forgot. */
  trackTask(provider: ProviderTarget, observation: Observation): void {
    const task = observation.task;
    if (!task?.ref.id) return;
    const state = task.status?.state;
    if (state !== 'queued' && state !== 'running') {
      this.deps.metrics.taskFinished(`${provider.namespace}/${provider.name}`, task.ref.id);
    }
  }

  /**
   * The hypervisor was not looked at (unresolved Provider, no driver, hypervisor unreachable):
   * what the last status knew stays, including the task in flight, so nothing is ever lost.
   */
  unobserved(reason: string, message: string, retryable = false, stage: 'resolve' | 'observe' = 'resolve', resyncAfterSeconds?: number): SyncResponse {
    const unknown = (type: string) => ({ type, status: 'Unknown' as const, reason, message });
    const updates: ConditionUpdate[] = [
      { type: 'Ready', status: false, reason, message },
      stage === 'resolve'
        ? { type: 'ReferencesResolved', status: false, reason, message }
        : { type: 'ReferencesResolved', status: true, reason: 'Resolved', message: 'provider resolved' },
      unknown('Provisioned'),
      unknown('Configured'),
      unknown('PowerSynced'),
    ];
    return this.respond(undefined, updates, {
      resyncAfterSeconds: resyncAfterSeconds ?? (retryable ? retryDelaySeconds(this.previous.conditions, this.now, true) : this.deps.steadyResyncSeconds),
      task: this.previous.task,
      providerID: this.previous.providerID,
      restartHandled: this.previous.restartHandled,
      // Nothing was learnt about the VM: what the last status recorded stays.
      failure: this.previous.failure,
      gracefulShutdown: this.previous.gracefulShutdown,
      lockHeld: this.previous.lockHeld,
    }, false);
  }

  respond(observed: ObservedVM | undefined, updates: ConditionUpdate[], options: Respond, observedNow = true): SyncResponse {
    const generation = this.vm.metadata.generation;
    const conditions = buildConditions(this.previous.conditions, updates, this.now, generation);
    this.recordCreateToReady(conditions);
    const status = buildStatus({
      previous: this.previous,
      observed,
      observedNow,
      providerID: options.providerID ?? observed?.id ?? (observedNow ? undefined : this.previous.providerID),
      task: options.task,
      restartHandled: options.restartHandled ?? this.previous.restartHandled,
      revert: options.revert ?? this.previous.revert,
      clonedFrom: options.clonedFrom ?? this.previous.clonedFrom,
      failure: options.failure,
      gracefulShutdown: options.gracefulShutdown,
      lockHeld: options.lockHeld,
      placement: options.placement === null ? undefined : (options.placement ?? this.previous.placement),
      conditions,
      deleting: this.deleting,
      generation,
    });
    const response: SyncResponse = { status: status as Record<string, unknown>, children: [], resyncAfterSeconds: options.resyncAfterSeconds };
    if (options.finalized !== undefined) response.finalized = options.finalized;
    return response;
  }

  /** First Ready=True of a VM's bring-up: Ready has been False since before the VM existed. */
  private recordCreateToReady(conditions: ReturnType<typeof buildConditions>): void {
    const ready = conditionOf(conditions, 'Ready');
    const before = conditionOf(this.previous.conditions, 'Ready');
    const provisionedBefore = conditionOf(this.previous.conditions, 'Provisioned');
    const created = this.vm.metadata.creationTimestamp;
    if (ready?.status !== 'True' || before?.status === 'True' || !created) return;
    if (provisionedBefore && before && Date.parse(provisionedBefore.lastTransitionTime) < Date.parse(before.lastTransitionTime)) return;
    this.deps.metrics.createToReady.observe(Math.max(0, (this.now - Date.parse(created)) / 1000));
  }
}
