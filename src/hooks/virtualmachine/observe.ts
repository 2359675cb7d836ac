// Step 2 of a sync: find our VM on the hypervisor (by ID, then by identity tag) and the state of
// the task recorded in status. Read-only.
import type { TaskStatusRef } from '../../contracts/crds/virtualmachine.js';
import { NotFoundError, type Identity, type ObservedVM, type TaskStatus } from '../../contracts/driver.js';
import type { DriverCalls } from '../driver-calls.js';

export interface Observation {
  vm: ObservedVM | undefined;
  task: { ref: TaskStatusRef; status: TaskStatus | undefined } | undefined;
  /**
   * The VM at status.providerID when it does not carry our identity: a reused ID, or our own VM
   * still being created (a PVE clone target shows only `lock: clone` until its first disk is copied).
   */
  atProviderID?: ObservedVM | undefined;
}

async function orUndefinedIfNotFound<T>(promise: Promise<T>): Promise<T | undefined> {
  try {
    return await promise;
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
}

/** Our VM, found by status.providerID or by identity, and what sits at providerID when it is not ours. */
export async function findOwnedVM(
  calls: DriverCalls,
  owner: Identity,
  providerID: string | undefined,
): Promise<{ vm: ObservedVM | undefined; atProviderID?: ObservedVM }> {
  let atProviderID: ObservedVM | undefined;
  if (providerID) {
    const byID = await orUndefinedIfNotFound(calls.call('describe', (options) => calls.driver.describe(providerID, options)));
    // An ID can be reused by the hypervisor (PVE VMIDs are): only a VM carrying our tag is ours.
    if (byID && byID.owner?.uid === owner.uid) return { vm: byID };
    atProviderID = byID;
  }
  const vm = await calls.call('findByIdentity', (options) => calls.driver.findByIdentity(owner.uid, options));
  return atProviderID === undefined ? { vm } : { vm, atProviderID };
}

export async function observe(
  calls: DriverCalls,
  owner: Identity,
  previous: { providerID: string | undefined; task: TaskStatusRef | undefined },
): Promise<Observation> {
  const { vm, atProviderID } = await findOwnedVM(calls, owner, previous.providerID);
  const ref = previous.task;
  if (!ref) return { vm, task: undefined, atProviderID };
  const status = ref.id
    ? await orUndefinedIfNotFound(calls.call('taskStatus', (options) => calls.driver.taskStatus(ref.id, options)))
    : undefined;
  return { vm, task: { ref, status }, atProviderID };
}

export function taskRunning(task: Observation['task']): boolean {
  return task?.status?.state === 'running' || task?.status?.state === 'queued';
}

/**
 * Our VM may exist although no lookup shows it yet: the Create this status recorded still runs,
 * or the VM at its providerID is unowned and locked for creation (its identity lands later).
 */
export function creationInFlight(observation: Observation): string | undefined {
  const task = observation.task;
  if (task?.ref.operation === 'Create' && taskRunning(task)) return `the creation of the VM still runs (task ${task.ref.id})`;
  const candidate = observation.atProviderID;
  if (task?.ref.operation === 'Create' && candidate && !candidate.owner && candidate.lock) {
    return `VM ${candidate.id} is still being created ("${candidate.lock}")`;
  }
  return undefined;
}

/** Whether the task the status recorded still runs on the hypervisor (false when that cannot be told). */
export async function recordedTaskRuns(calls: DriverCalls, task: TaskStatusRef | undefined): Promise<boolean> {
  if (!task?.id) return false;
  try {
    const status = await calls.call('taskStatus', (options) => calls.driver.taskStatus(task.id, options));
    return status.state === 'running' || status.state === 'queued';
  } catch {
    return false;
  }
}
