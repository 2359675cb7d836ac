// Step 4 of a sync: start the planned action. Never waits for a long task; the task is recorded
// in status and polled by later syncs.
import type { CloneRecord, RevertRecord, TaskOperation, TaskStatusRef } from '../../contracts/crds/virtualmachine.js';
import type { ObservedVM, Started, VMRef } from '../../contracts/driver.js';
import type { DriverCalls } from '../driver-calls.js';
import { rfc3339 } from '../time.js';
import type { Action } from './plan.js';
import type { ResolvedVM } from './resolve.js';

export interface ActResult {
  providerID?: string;
  task?: TaskStatusRef;
  clonedFrom?: CloneRecord;
  revert?: RevertRecord;
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
    const source = desired.clone?.source;
    if (source && !observed) return cloneFrom(calls, desired, source, now);
    // Also continues a clone the hypervisor left incomplete (PVE configures it in a second step).
    const created = await calls.call('create', (options) => driver.create(desired.create, options));
    const task = taskRef(created, 'Create', now);
    // An id the hypervisor has not assigned yet ('') is found by identity once the task ends.
    const providerID = created.id === '' ? {} : { providerID: created.id };
    return task ? { ...providerID, task } : providerID;
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
    case 'revert': {
      const started = await calls.call('snapshotRevert', (options) => driver.snapshotRevert(ref, action.snapshotID, options));
      // Acknowledged when started, not when done: a revert throws work away, so a failed one is
      // reported and left to the user, never repeated on its own.
      const revert: RevertRecord = { snapshot: action.snapshot, request: action.request, snapshotID: action.snapshotID, startedAt: rfc3339(now) };
      const task = taskRef(started, 'Revert', now);
      return task ? { task, revert } : { revert };
    }
  }
}

async function cloneFrom(calls: DriverCalls, desired: ResolvedVM, source: VMRef, now: number): Promise<ActResult> {
  const linked = desired.clone?.linked ?? true;
  const target = { name: desired.create.name, owner: desired.identity, linked };
  const cloned = await calls.call('clone', (options) => calls.driver.clone(source, target, options));
  const clonedFrom: CloneRecord = { vm: source.owner.name, providerID: source.id, linked };
  if (cloned.sourceSnapshot !== undefined) clonedFrom.sourceSnapshot = cloned.sourceSnapshot;
  const task = taskRef(cloned, 'Create', now);
  const providerID = cloned.id === '' ? {} : { providerID: cloned.id };
  return task ? { ...providerID, task, clonedFrom } : { ...providerID, clonedFrom };
}
