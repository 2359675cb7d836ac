// The VirtualMachine finalize hook: destroy our VM (never one we do not own), and only answer
// finalized once the hypervisor confirms it is gone. Any doubt keeps the finalizer.
import type { VirtualMachineObject } from '../../contracts/crds/virtualmachine.js';
import { isDriverError } from '../../contracts/driver.js';
import type { SyncRequestBody, SyncResponse } from '../../contracts/metacontroller.js';
import type { ConditionUpdate } from '../conditions.js';
import { reportDriverError } from '../driver-errors.js';
import { rfc3339 } from '../time.js';
import { VMHookContext, type Respond, type VMHookDeps } from './context.js';
import { creationInFlight, observe, recordedTaskRuns, taskRunning, type Observation } from './observe.js';
import { lockWait } from './plan.js';
import { backingOff, backoffSeconds, currentFailure, describeBackoff, recordFailure } from './retry.js';
import { resolveProvider } from './resolve.js';
import type { ProviderTarget } from '../../contracts/driver.js';
import { PAUSED_ANNOTATION, isPaused } from './sync.js';

function deletingConditions(reason: string, message: string, ready = false): ConditionUpdate[] {
  return [
    { type: 'Ready', status: ready, reason, message },
    { type: 'Provisioned', status: false, reason, message },
  ];
}

export async function finalizeVirtualMachine(
  request: SyncRequestBody<VirtualMachineObject>,
  deps: VMHookDeps,
  signal?: AbortSignal,
): Promise<SyncResponse> {
  const context = new VMHookContext(request.parent, deps, signal);
  const vm = request.parent;
  const { previous } = context;
  const keep = { task: previous.task, providerID: previous.providerID, finalized: false, failure: previous.failure, lockHeld: previous.lockHeld };

  if ((vm.spec.deletionPolicy ?? 'Delete') === 'Retain') {
    const message = `deletionPolicy Retain: VM ${previous.providerID ?? '(unknown)'} is left on the hypervisor`;
    return context.respond(undefined, deletingConditions('Retained', message), { ...keep, resyncAfterSeconds: 0, finalized: true }, false);
  }
  if (isPaused(vm)) {
    const message = `deletion waits: reconciliation is paused by the ${PAUSED_ANNOTATION} annotation`;
    return context.respond(undefined, deletingConditions('Paused', message), { ...keep, resyncAfterSeconds: deps.steadyResyncSeconds }, false);
  }

  // Deleting needs the Provider to exist, not to be Ready: a flapping provider must not block cleanup.
  const provider = resolveProvider(vm, request.related, { requireReady: false });
  if (!provider.ok) {
    return context.respond(undefined, deletingConditions(provider.reason, `cannot delete the VM: ${provider.message}`), {
      ...keep,
      resyncAfterSeconds: 30,
    }, false);
  }
  return deleteVM(context, deps, provider.provider);
}

export interface DeleteOptions {
  /** The deletion protection the spec wants (a Machine's spec.protection); undefined: the front-end has no such field. */
  protection?: boolean;
  /** How the spec lifts protection, for the message (e.g. "set spec.protection to false"). */
  liftProtection?: string;
}

/**
 * The delete of a finalizing object's VM, whichever front-end resolved its provider: observe,
 * wait for what runs, delete once, confirm it is gone. A VM with deletion protection on is not
 * asked to go (the hypervisor would refuse): protection the spec no longer wants is lifted first,
 * otherwise the object waits and says how to lift it.
 */
export async function deleteVM(context: VMHookContext, deps: VMHookDeps, provider: ProviderTarget, options: DeleteOptions = {}): Promise<SyncResponse> {
  const { vm, previous } = context;
  const keep = { task: previous.task, providerID: previous.providerID, finalized: false, failure: previous.failure, lockHeld: previous.lockHeld };
  const driver = await context.driverFor(provider);
  if (!driver.ok) {
    return context.respond(undefined, deletingConditions(driver.reason, `cannot delete the VM: ${driver.message}`), { ...keep, resyncAfterSeconds: 60 }, false);
  }
  const calls = context.calls(driver.driver, provider);
  const failure = currentFailure(previous.failure, vm.metadata.generation);
  let observation: Observation;
  try {
    observation = await observe(calls, context.identity, previous);
  } catch (error) {
    // Not seeing the VM is not knowing it is gone: the finalizer stays. The hypervisor may not
    // tell our VM apart while its creation runs (a PVE clone target): then the recorded task says why.
    const reported = reportDriverError(error, 'looking up the VM to delete');
    const creating = isDriverError(error) && error.code === 'Busy' && previous.task?.operation === 'Create' && (await recordedTaskRuns(calls, previous.task));
    if (creating) {
      const message = `deletion waits: the creation of the VM still runs (task ${previous.task?.id}); it is deleted once created`;
      return context.respond(undefined, deletingConditions('WaitingForCreate', message), { ...keep, resyncAfterSeconds: 2 }, false);
    }
    return context.respond(undefined, deletingConditions(reported.reason, reported.message), {
      ...keep,
      resyncAfterSeconds: reported.retryable ? 10 : 60,
    }, false);
  }
  context.trackTask(provider, observation);
  const found = observation.vm;
  const task = observation.task;
  if (!found) {
    const inFlight = creationInFlight(observation);
    if (inFlight !== undefined) {
      // Finalizing now would leave the VM behind once its creation ends (DESIGN §5).
      return context.respond(undefined, deletingConditions('WaitingForCreate', `deletion waits: ${inFlight}; it is deleted once created`), {
        task: task?.ref,
        providerID: previous.providerID,
        resyncAfterSeconds: 2,
        finalized: false,
      });
    }
    return context.respond(undefined, deletingConditions('Deleted', 'the VM is gone from the hypervisor'), {
      task: undefined,
      providerID: undefined,
      resyncAfterSeconds: 0,
      finalized: true,
    });
  }
  const lockHeld = found.lock === undefined ? undefined : previous.lockHeld?.lock === found.lock ? previous.lockHeld : { lock: found.lock, since: rfc3339(context.now) };
  const waiting = (reason: string, message: string, resyncAfterSeconds: number, extra: Partial<Respond> = {}) =>
    context.respond(found, deletingConditions(reason, message), { task: task?.ref, providerID: found.id, resyncAfterSeconds, finalized: false, failure, lockHeld, ...extra });

  if (task?.ref.operation === 'Delete' && taskRunning(task)) return waiting('Deleting', `deleting VM ${found.id}`, 2);
  if (found.lock) {
    const wait = lockWait(found.id, found.lock, lockHeld?.since, context.now);
    return waiting(wait.reason === 'Busy' ? 'Deleting' : wait.reason, `deletion waits: ${wait.message}`, wait.resyncAfterSeconds);
  }
  let record = failure;
  if (task?.ref.operation === 'Delete' && task.status?.state === 'failed') {
    // One failed delete, one report; the next attempt waits its back-off (retry.ts).
    const message = `Delete task failed: ${task.status.error ?? 'no reason given'}`;
    record = recordFailure(failure, { operation: 'Delete', reason: 'DeleteFailed', message, retryable: true }, context.now, vm.metadata.generation);
    return waiting('DeleteFailed', message, backoffSeconds(record), { task: undefined, failure: record });
  }
  const held = backingOff(record, 'Delete', context.now);
  if (record && held) {
    return waiting(record.reason, describeBackoff(record, held.until), Math.max(1, Math.ceil((held.until - context.now) / 1000)), { task: undefined });
  }
  if (found.settings?.protection === true) {
    if (options.protection === false) {
      try {
        const started = await calls.call('reconfigure', (call) => driver.driver.reconfigure({ id: found.id, owner: context.identity }, { settings: { protection: false } }, call));
        if (started.task) deps.metrics.taskStarted(calls.provider, started.task);
        return waiting('Deleting', `lifting the deletion protection of VM ${found.id}, then deleting it`, 2, { task: undefined });
      } catch (error) {
        const reported = reportDriverError(error, 'lifting the deletion protection', 'NotOwned');
        record = recordFailure(record, { operation: 'Delete', ...reported }, context.now, vm.metadata.generation);
        return waiting(reported.reason, reported.message, backoffSeconds(record), { task: undefined, failure: record });
      }
    }
    const how = options.liftProtection ?? 'turn its protection off on the hypervisor';
    return waiting('DeletionProtected', `VM ${found.id} has deletion protection on; to delete it, ${how}`, deps.steadyResyncSeconds, { task: undefined });
  }
  try {
    const started = await calls.call('delete', (options) => driver.driver.delete({ id: found.id, owner: context.identity }, options));
    const deleteTask = started.task ? { id: started.task, operation: 'Delete' as const, startedAt: rfc3339(context.now) } : undefined;
    if (started.task) deps.metrics.taskStarted(calls.provider, started.task);
    return waiting('Deleting', `deleting VM ${found.id}`, 2, { task: deleteTask });
  } catch (error) {
    const reported = reportDriverError(error, 'deleting the VM', 'NotOwned');
    record = recordFailure(record, { operation: 'Delete', ...reported }, context.now, vm.metadata.generation);
    return waiting(reported.reason, reported.message, backoffSeconds(record), { task: undefined, failure: record });
  }
}
