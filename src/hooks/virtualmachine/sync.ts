// The VirtualMachine sync hook: resolve → observe → plan → act → report (DESIGN.md §4).
import type { VirtualMachineObject } from '../../contracts/crds/virtualmachine.js';
import { isDriverError } from '../../contracts/driver.js';
import type { SyncRequestBody, SyncResponse } from '../../contracts/metacontroller.js';
import { fieldUses } from '../../contracts/support.js';
import { rfc3339 } from '../time.js';
import { readyFrom, type ConditionUpdate } from '../conditions.js';
import { reportDriverError, type FailureReport } from '../driver-errors.js';
import { act, type ActResult } from './act.js';
import { observe, recordedTaskRuns, type Observation } from './observe.js';
import { RESYNC, operationOf, planNextAction, type Action, type Plan } from './plan.js';
import { backingOff, backoffSeconds, currentFailure, describeBackoff, recordFailure } from './retry.js';
import { resolve, resolveProvider, resolveReferences, unsupportedMessage, type References, type ResolvedVM } from './resolve.js';
import type { DriverCalls } from '../driver-calls.js';
import { VMHookContext, type VMHookDeps } from './context.js';
import {
  UNSCHEDULABLE_RETRY_SECONDS,
  placementLedgerOf,
  placementStep,
  type PlacementContext,
  type PlacementOutcome,
  type SyncState,
} from '../placement/vm.js';

export const PAUSED_ANNOTATION = 'virtrigaud.io/paused';

export function isPaused(vm: Pick<VirtualMachineObject, 'metadata'>): boolean {
  return vm.metadata.annotations?.[PAUSED_ANNOTATION] === 'true';
}

export async function syncVirtualMachine(
  request: SyncRequestBody<VirtualMachineObject>,
  deps: VMHookDeps,
  signal?: AbortSignal,
): Promise<SyncResponse> {
  const context = new VMHookContext(request.parent, deps, signal);
  const vm = request.parent;
  const { previous } = context;

  const providerResult = resolveProvider(vm, request.related);
  if (!providerResult.ok) return context.unobserved(providerResult.reason, providerResult.message);
  const driver = await context.driverFor(providerResult.provider);
  if (!driver.ok) return context.unobserved(driver.reason, driver.message);
  const calls = context.calls(driver.driver, providerResult.provider);

  // What the spec asks of the driver is known before any hypervisor call: a field it cannot
  // honour stops everything here, named, rather than half-applied or ignored.
  const references = resolveReferences(vm, request.related, providerResult.provider);
  // A reference that does not resolve still leaves the VM's own fields to judge: what no driver
  // (or not this one) honours is said first, as fixing the reference would not help.
  const unsupported = references.ok
    ? unsupportedMessage(references.references, driver.driver.type, driver.driver.capabilities)
    : references.reason === 'Unsupported'
      ? references.message
      : unsupportedMessage({ uses: [{ owner: 'VirtualMachine', uses: fieldUses('VirtualMachine', vm) }] }, driver.driver.type, driver.driver.capabilities);
  if (unsupported !== undefined && !isPaused(vm)) return context.unobserved('Unsupported', unsupported, false, 'observe');

  let observation: Observation;
  try {
    observation = await observe(calls, context.identity, previous);
  } catch (error) {
    const failure = reportDriverError(error, 'looking up the VM');
    // The hypervisor cannot tell our VM apart yet (a clone still making it): while the task the
    // status recorded still runs, it is followed at the task's pace, not the back-off's.
    const followTask = isDriverError(error) && error.code === 'Busy' && (await recordedTaskRuns(calls, previous.task));
    return context.unobserved(failure.reason, failure.message, failure.retryable, 'observe', followTask ? RESYNC.task : undefined);
  }
  context.trackTask(providerResult.provider, observation);

  const resolution = references.ok
    ? resolve(vm, request.related, providerResult.provider, references.references, {
        vmExists: observation.vm !== undefined,
        defaults: providerResult.defaults,
        capabilities: driver.driver.capabilities,
      })
    : references;
  if (!resolution.ok) {
    const resolved = condition('ReferencesResolved', false, resolution.reason, resolution.message);
    const updates = [resolved, ...observedOnly(observation, 'references are not resolved')];
    // A task already running is still followed, so it is not lost while references are fixed.
    const inFlight = observation.task?.status?.state === 'running' || observation.task?.status?.state === 'queued';
    return context.respond(observation.vm, [condition('Ready', false, resolution.reason, resolution.message), ...updates], {
      resyncAfterSeconds: inFlight ? RESYNC.task : deps.steadyResyncSeconds,
      task: inFlight ? observation.task?.ref : undefined,
      failure: previous.failure,
      gracefulShutdown: previous.gracefulShutdown,
      lockHeld: previous.lockHeld,
    });
  }
  const policy = references.ok ? references.references.placement : undefined;
  return planAndAct(context, deps, calls, observation, resolution.vm, policy);
}

/**
 * Steps 3–5 for a desired VM, whichever front-end resolved it (a VirtualMachine here, a Machine in
 * hooks/viti): plan the next action, place, act, report.
 */
export async function planAndAct(
  context: VMHookContext,
  deps: VMHookDeps,
  calls: DriverCalls,
  observation: Observation,
  desired: ResolvedVM,
  policy?: References['placement'],
): Promise<SyncResponse> {
  const { vm, previous } = context;
  const driver = { driver: calls.driver };
  const plan = planNextAction({
    desired,
    observed: observation.vm,
    hadProviderID: previous.providerID !== undefined,
    task: observation.task,
    capabilities: driver.driver.capabilities,
    restartHandled: previous.restartHandled,
    revertHandled: previous.revert,
    failure: previous.failure,
    gracefulShutdown: previous.gracefulShutdown,
    lockHeld: previous.lockHeld,
    generation: vm.metadata.generation,
    now: context.now,
  });

  const blocked: FailureReport | undefined = isPaused(vm)
    ? { reason: 'Paused', message: `reconciliation is paused by the ${PAUSED_ANNOTATION} annotation`, retryable: false }
    : undefined;

  // Placement (spec.placementRef): the host is chosen before create and verified before the VM
  // first starts; see hooks/placement/vm.ts.
  const labels = vm.metadata.labels ?? {};
  // Every VM's labels are recorded where the driver can (a policy's anti-affinity counts VMs
  // without one too), but a VM without a policy never fails for it: a large label set is left out.
  if (plan.action.kind === 'create' && !observation.vm && !desired.clone && driver.driver.capabilities.placementPolicy && labelBytes(labels) <= UNPOLICED_LABEL_BYTES) {
    desired.create.placementRecord = { labels: { ...labels }, order: context.now };
  }
  let placement: PlacementOutcome | undefined;
  if (policy && !blocked && !context.deleting) {
    const placementContext: PlacementContext = {
      calls,
      ledger: placementLedgerOf(deps),
      provider: calls.provider,
      policy,
      identity: context.identity,
      labels,
      now: context.now,
      budgetMs: deps.budgetMs,
    };
    const task = observation.task?.status?.state;
    const state: SyncState = {
      creating: plan.action.kind === 'create' && !desired.clone,
      create: desired.create,
      vm: observation.vm,
      previous: previous.placement,
      previousConditions: previous.conditions,
      busy: task === 'queued' || task === 'running' || observation.vm?.lock !== undefined || observation.vm?.incomplete === true,
    };
    let step: Awaited<ReturnType<typeof placementStep>>;
    try {
      step = await placementStep(placementContext, state);
    } catch (error) {
      const failure = reportDriverError(error, 'reading the inventory for placement');
      return context.unobserved(failure.reason, failure.message, failure.retryable, 'observe');
    }
    if (step?.kind === 'unschedulable') return unschedulable(context, step.why, deps);
    placement = step;
  }

  let action = plan.action;
  if (placement?.kind === 'hold' && action.kind !== 'create') action = { kind: 'none' };
  let result: ActResult = {};
  let failure: FailureReport | undefined;
  let failureRecord = plan.failure;
  const operation = operationOf(action);
  // The plan knows nothing of this delete: its failure record is read from the status directly.
  const lastRelease = placement?.kind === 'release' ? currentFailure(previous.failure, vm.metadata.generation) : undefined;
  const releaseWait = backingOff(lastRelease, 'Delete', context.now);
  if (releaseWait && lastRelease) {
    // The last delete failed: not asked again before its back-off has passed.
    failure = { reason: lastRelease.reason, message: describeBackoff(lastRelease, releaseWait.until), retryable: lastRelease.retryable };
    failureRecord = lastRelease;
  } else if (placement?.kind === 'release' && observation.vm) {
    try {
      const ref = { id: observation.vm.id, owner: desired.identity };
      const started = await calls.call('delete', (options) => calls.driver.delete(ref, options));
      // Followed like any task, so the delete is asked for once, not again at every sync.
      if (started.task) result = { task: { id: started.task, operation: 'Delete', startedAt: rfc3339(context.now) } };
    } catch (error) {
      failure = reportDriverError(error, 'deleting the VM that lost its placement', 'NotOwned');
      // A delete that keeps failing backs off like any operation, rather than every 2 s.
      failureRecord = recordFailure(lastRelease, { operation: 'Delete', ...failure }, context.now, vm.metadata.generation);
    }
  } else if (!blocked && action.kind !== 'none' && operation !== undefined) {
    try {
      result = await act(calls, action, desired, observation.vm, context.now);
    } catch (error) {
      // A clone's Conflict is about its source (not ours, or in a state that cannot be cloned), not a taken name.
      const conflict = action.kind !== 'create' ? 'NotOwned' : desired.clone && !observation.vm ? 'CloneSourceConflict' : 'NameConflict';
      failure = reportDriverError(error, describeAction(action), conflict);
      failureRecord = recordFailure(plan.failure, { operation, ...failure }, context.now, vm.metadata.generation);
    }
  }
  if (result.task?.id) deps.metrics.taskStarted(calls.provider, result.task.id);

  const updates = [...conditionsFor(plan, blocked, failure, placement), ...(placement?.conditions ?? [])];
  const task = result.task ?? (plan.keepTask ? previous.task : undefined);
  const planResync = plan.resyncAfterSeconds || deps.steadyResyncSeconds;
  const resync = releaseWait
    ? Math.max(1, Math.ceil((releaseWait.until - context.now) / 1000))
    : failure && failureRecord
    ? backoffSeconds(failureRecord)
    : blocked
      ? deps.steadyResyncSeconds
      : placement?.kind === 'hold'
        ? Math.min(planResync, placement.resyncAfterSeconds)
        : placement?.kind === 'release'
          ? RESYNC.task
          : planResync;
  return context.respond(observation.vm, updates, {
    resyncAfterSeconds: resync,
    task,
    providerID: result.providerID,
    restartHandled: blocked ? previous.restartHandled : plan.restartHandled,
    revert: result.revert,
    clonedFrom: result.clonedFrom,
    failure: blocked ? previous.failure : failureRecord,
    gracefulShutdown: blocked ? previous.gracefulShutdown : plan.gracefulShutdown,
    lockHeld: plan.lockHeld,
    // A VM whose policy reference went away keeps no placement record.
    placement: placement ? placement.record : policy ? undefined : null,
  });
}

/** The most label bytes recorded for a VM without a policy (Proxmox keeps them in an 8 KiB description). */
const UNPOLICED_LABEL_BYTES = 2048;

function labelBytes(labels: Readonly<Record<string, string>>): number {
  return Object.entries(labels).reduce((sum, [key, value]) => sum + Buffer.byteLength(key) + Buffer.byteLength(value), 0);
}

/** No host fits: nothing is created; the reason names each host's, and the VM tries again. */
function unschedulable(context: VMHookContext, why: string, deps: VMHookDeps): SyncResponse {
  const message = `no host fits: ${why}`;
  return context.respond(
    undefined,
    [
      condition('Ready', false, 'Unschedulable', message),
      RESOLVED,
      condition('Provisioned', false, 'Unschedulable', message),
      condition('Configured', 'Unknown', 'NotCreated', 'the VM does not exist yet'),
      condition('PowerSynced', 'Unknown', 'NotCreated', 'the VM does not exist yet'),
      condition('Placed', false, 'Unschedulable', message),
    ],
    {
      resyncAfterSeconds: Math.min(UNSCHEDULABLE_RETRY_SECONDS, deps.steadyResyncSeconds),
      task: undefined,
      failure: undefined,
      placement: null,
    },
  );
}

function condition(type: string, status: boolean | 'Unknown', reason: string, message: string): ConditionUpdate {
  return { type, status, reason, message };
}

const RESOLVED = condition('ReferencesResolved', true, 'Resolved', 'provider, class, image, networks and user-data resolved');

function observedOnly(observation: Observation, why: string): ConditionUpdate[] {
  const vm = observation.vm;
  return [
    vm
      ? condition('Provisioned', true, 'Created', `VM ${vm.id}${vm.host ? ` on ${vm.host}` : ''}`)
      : condition('Provisioned', false, 'NotCreated', `the VM does not exist; ${why}`),
    condition('Configured', 'Unknown', 'NotResolved', why),
    condition('PowerSynced', 'Unknown', 'NotResolved', why),
  ];
}

function conditionsFor(plan: Plan, blocked: FailureReport | undefined, failure: FailureReport | undefined, placement?: PlacementOutcome): ConditionUpdate[] {
  let { provisioned, configured, power } = plan;
  if (placement?.kind === 'hold' && plan.action.kind !== 'create' && plan.action.kind !== 'none') {
    power = condition('PowerSynced', 'Unknown', 'PlacementVerifying', 'the VM starts once its placement is verified');
  }
  if (placement?.kind === 'release') {
    provisioned = condition('Provisioned', false, 'Releasing', 'the VM lost its host to a VM placed before it and is deleted to be placed again');
  }
  if (blocked && plan.action.kind === 'create') {
    provisioned = condition('Provisioned', false, 'NotCreated', `the VM does not exist; ${blocked.message}`);
  }
  if (blocked?.reason === 'Unsupported') configured = condition('Configured', false, blocked.reason, blocked.message);
  if (failure && placement?.kind === 'release') {
    provisioned = condition('Provisioned', false, failure.reason, failure.message);
  } else if (failure) {
    const slot = plan.action.kind === 'create' ? 'provisioned' : plan.action.kind === 'power' ? 'power' : 'configured';
    const failed = condition(slot === 'provisioned' ? 'Provisioned' : slot === 'power' ? 'PowerSynced' : 'Configured', false, failure.reason, failure.message);
    if (slot === 'provisioned') provisioned = failed;
    else if (slot === 'power') power = failed;
    else configured = failed;
  }
  const others = [RESOLVED, provisioned, configured, power];
  const first = blocked ?? failure;
  const ready = first
    ? condition('Ready', false, first.reason, first.message)
    : readyFrom(others, 'Ready', power.reason === 'PoweredOff' ? 'the VM exists, matches its spec and is off' : 'the VM exists, matches its spec and is on');
  return [ready, ...others];
}

function describeAction(action: Action): string {
  switch (action.kind) {
    case 'create':
      return 'creating the VM';
    case 'power':
      return `power ${action.operation}`;
    case 'reconfigure':
      return 'reconfiguring';
    case 'resizeDisk':
      return `resizing disk ${action.disk}`;
    case 'revert':
      return `reverting to VMSnapshot ${action.snapshot}`;
    case 'none':
      return 'nothing';
  }
}

