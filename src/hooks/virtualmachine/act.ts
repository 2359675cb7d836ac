// Step 4 of a sync: start the planned action. Never waits for a long task; the task is recorded
// in status and polled by later syncs.
import type { TaskOperation, TaskStatusRef } from '../../contracts/crds/virtualmachine.js';
import type { ObservedVM, Started, VMRef } from '../../contracts/driver.js';
import type { DriverCalls } from '../driver-calls.js';
import { rfc3339 } from '../time.js';
import type { Action } from './plan.js';
import type { ResolvedVM } from './resolve.js';

export interface ActResult {
  providerID?: string;
  task?: TaskStatusRef;
}

function taskRef(started: Started, operation: TaskOperation, now: number, always = false): TaskStatusRef | undefined {
  if (!started.task && !always) return undefined;
  return { id: started.task ?? '', operation, startedAt: rfc3339(now) };
}

export async function act(
  calls: DriverCalls,
  action: Action,
  desired: ResolvedVM,
  observed: ObservedVM | undefined,
  now: number,
): Promise<ActResult> {
  const driver = calls.driver;
  if (action.kind === 'none') return {};
  if (action.kind === 'create') {
    const created = await calls.call('create', (options) => driver.create(desired.create, options));
    const task = taskRef(created, 'Create', now);
    return task ? { providerID: created.id, task } : { providerID: created.id };
  }
  if (!observed) throw new Error(`${action.kind} planned without a VM`);
  const ref: VMRef = { id: observed.id, owner: desired.identity };
  switch (action.kind) {
    case 'power': {
      const started = await calls.call('power', (options) => driver.power(ref, action.operation, options));
      // A shutdown is tracked even without a hypervisor task: its start time drives the timeout.
      const task = taskRef(started, action.task, now, action.operation === 'shutdown');
      return task ? { task } : {};
    }
    case 'reconfigure': {
      const started = await calls.call('reconfigure', (options) => driver.reconfigure(ref, action.change, options));
      const task = taskRef(started, 'Reconfigure', now);
      return task ? { task } : {};
    }
    case 'resizeDisk': {
      const started = await calls.call('resizeDisk', (options) => driver.resizeDisk(ref, action.disk, action.sizeBytes, options));
      const task = taskRef(started, 'ResizeDisk', now);
      return task ? { task } : {};
    }
  }
}
