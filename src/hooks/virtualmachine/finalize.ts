// The VirtualMachine finalize hook: destroy our VM (never one we do not own), and only answer
// finalized once the hypervisor confirms it is gone. Any doubt keeps the finalizer.
import type { VirtualMachineObject } from '../../contracts/crds/virtualmachine.js';
import type { SyncRequestBody, SyncResponse } from '../../contracts/metacontroller.js';
import type { ConditionUpdate } from '../conditions.js';
import { reportDriverError } from '../driver-errors.js';
import { rfc3339 } from '../time.js';
import { VMHookContext, type VMHookDeps } from './context.js';
import { observe } from './observe.js';
import { resolveProvider } from './resolve.js';
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
  const { vm, previous } = context;
  const keep = { task: previous.task, providerID: previous.providerID, finalized: false };

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
  const driver = await context.driverFor(provider.provider);
  if (!driver.ok) {
    return context.respond(undefined, deletingConditions(driver.reason, `cannot delete the VM: ${driver.message}`), { ...keep, resyncAfterSeconds: 60 }, false);
  }
  const calls = context.calls(driver.driver, provider.provider);
  try {
    const observation = await observe(calls, context.identity, previous);
    context.trackTask(provider.provider, observation);
    const found = observation.vm;
    if (!found) {
      return context.respond(undefined, deletingConditions('Deleted', 'the VM is gone from the hypervisor'), {
        task: undefined,
        providerID: undefined,
        resyncAfterSeconds: 0,
        finalized: true,
      });
    }
    const task = observation.task;
    const deleteRunning = task?.ref.operation === 'Delete' && (task.status?.state === 'running' || task.status?.state === 'queued');
    if (deleteRunning || found.lock) {
      const message = deleteRunning ? `deleting VM ${found.id}` : `waiting for "${found.lock}" on VM ${found.id} to end`;
      return context.respond(found, deletingConditions('Deleting', message), { task: task?.ref, providerID: found.id, resyncAfterSeconds: 2, finalized: false });
    }
    const started = await calls.call('delete', (options) => driver.driver.delete({ id: found.id, owner: context.identity }, options));
    const deleteTask = started.task ? { id: started.task, operation: 'Delete' as const, startedAt: rfc3339(context.now) } : undefined;
    if (started.task) deps.metrics.taskStarted(calls.provider, started.task);
    return context.respond(found, deletingConditions('Deleting', `deleting VM ${found.id}`), {
      task: deleteTask,
      providerID: found.id,
      resyncAfterSeconds: 2,
      finalized: false,
    });
  } catch (error) {
    const failure = reportDriverError(error, 'deleting the VM', 'NotOwned');
    return context.respond(undefined, deletingConditions(failure.reason, failure.message), {
      ...keep,
      resyncAfterSeconds: failure.retryable ? 10 : 60,
    }, false);
  }
}
