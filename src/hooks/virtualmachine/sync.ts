// The VirtualMachine sync hook: resolve → observe → plan → act → report (DESIGN.md §4).
import type { VirtualMachineObject } from '../../contracts/crds/virtualmachine.js';
import { isDriverError } from '../../contracts/driver.js';
import type { SyncRequestBody, SyncResponse } from '../../contracts/metacontroller.js';
import { readyFrom, type ConditionUpdate } from '../conditions.js';
import { reportDriverError, type FailureReport } from '../driver-errors.js';
import { act, type ActResult } from './act.js';
import { observe, recordedTaskRuns, type Observation } from './observe.js';
import { RESYNC, operationOf, planNextAction, type Action, type Plan } from './plan.js';
import { backoffSeconds, recordFailure } from './retry.js';
import { resolve, resolveProvider, resolveReferences, unsupportedMessage } from './resolve.js';
import { VMHookContext, type VMHookDeps } from './context.js';

export const PAUSED_ANNOTATION = 'virtrigaud.io/paused';

export function isPaused(vm: VirtualMachineObject): boolean {
  return vm.metadata.annotations?.[PAUSED_ANNOTATION] === 'true';
}

export async function syncVirtualMachine(
  request: SyncRequestBody<VirtualMachineObject>,
  deps: VMHookDeps,
  signal?: AbortSignal,
): Promise<SyncResponse> {
  const context = new VMHookContext(request.parent, deps, signal);
  const { vm, previous } = context;

  const providerResult = resolveProvider(vm, request.related);
  if (!providerResult.ok) return context.unobserved(providerResult.reason, providerResult.message);
  const driver = await context.driverFor(providerResult.provider);
  if (!driver.ok) return context.unobserved(driver.reason, driver.message);
  const calls = context.calls(driver.driver, providerResult.provider);

  // What the spec asks of the driver is known before any hypervisor call: a field it cannot
  // honour stops everything here, named, rather than half-applied or ignored.
  const references = resolveReferences(vm, request.related, providerResult.provider);
  const unsupported = references.ok
    ? unsupportedMessage(references.references, driver.driver.type, driver.driver.capabilities)
    : references.reason === 'Unsupported'
      ? references.message
      : undefined;
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
  const desired = resolution.vm;
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

  let result: ActResult = {};
  let failure: FailureReport | undefined;
  let failureRecord = plan.failure;
  const operation = operationOf(plan.action);
  if (!blocked && plan.action.kind !== 'none' && operation !== undefined) {
    try {
      result = await act(calls, plan.action, desired, observation.vm, context.now);
    } catch (error) {
      // A clone's Conflict is about its source (not ours, or in a state that cannot be cloned), not a taken name.
      const conflict = plan.action.kind !== 'create' ? 'NotOwned' : desired.clone && !observation.vm ? 'CloneSourceConflict' : 'NameConflict';
      failure = reportDriverError(error, describeAction(plan.action), conflict);
      failureRecord = recordFailure(plan.failure, { operation, ...failure }, context.now, vm.metadata.generation);
    }
  }
  if (result.task?.id) deps.metrics.taskStarted(calls.provider, result.task.id);

  const updates = conditionsFor(plan, blocked, failure);
  const task = result.task ?? (plan.keepTask ? previous.task : undefined);
  const resync = failure && failureRecord
    ? backoffSeconds(failureRecord)
    : blocked
      ? deps.steadyResyncSeconds
      : plan.resyncAfterSeconds || deps.steadyResyncSeconds;
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
  });
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

function conditionsFor(plan: Plan, blocked: FailureReport | undefined, failure: FailureReport | undefined): ConditionUpdate[] {
  let { provisioned, configured, power } = plan;
  if (blocked && plan.action.kind === 'create') {
    provisioned = condition('Provisioned', false, 'NotCreated', `the VM does not exist; ${blocked.message}`);
  }
  if (blocked?.reason === 'Unsupported') configured = condition('Configured', false, blocked.reason, blocked.message);
  if (failure) {
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

