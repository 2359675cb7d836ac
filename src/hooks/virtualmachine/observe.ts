// Step 2 of a sync: find our VM on the hypervisor (by ID, then by identity tag) and the state of
// the task recorded in status. Read-only.
import type { TaskStatusRef } from '../../contracts/crds/virtualmachine.js';
import { NotFoundError, type Identity, type ObservedVM, type TaskStatus } from '../../contracts/driver.js';
import type { DriverCalls } from '../driver-calls.js';

export interface Observation {
  vm: ObservedVM | undefined;
  task: { ref: TaskStatusRef; status: TaskStatus | undefined } | undefined;
}

async function orUndefinedIfNotFound<T>(promise: Promise<T>): Promise<T | undefined> {
  try {
    return await promise;
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
}

export async function findOwnedVM(calls: DriverCalls, owner: Identity, providerID: string | undefined): Promise<ObservedVM | undefined> {
  if (providerID) {
    const byID = await orUndefinedIfNotFound(calls.call('describe', (options) => calls.driver.describe(providerID, options)));
    // An ID can be reused by the hypervisor (PVE VMIDs are): only a VM carrying our tag is ours.
    if (byID && byID.owner?.uid === owner.uid) return byID;
  }
  return calls.call('findByIdentity', (options) => calls.driver.findByIdentity(owner.uid, options));
}

export async function observe(
  calls: DriverCalls,
  owner: Identity,
  previous: { providerID: string | undefined; task: TaskStatusRef | undefined },
): Promise<Observation> {
  const vm = await findOwnedVM(calls, owner, previous.providerID);
  const ref = previous.task;
  if (!ref) return { vm, task: undefined };
  const status = ref.id
    ? await orUndefinedIfNotFound(calls.call('taskStatus', (options) => calls.driver.taskStatus(ref.id, options)))
    : undefined;
  return { vm, task: { ref, status } };
}
