// vim25 tasks: TaskInfo → TaskStatus, and short waits for tasks a verb must see finish before it
// can answer (the clone whose result is the new VM's moid). vcsim completes tasks synchronously
// (NOTES), so the queued/running path is covered by unit tests on recorded TaskInfo bodies.

import { NotFoundError, type TaskStatus } from '../../contracts/driver.js';
import { codeOfFault, errorFromFault, readTaskError } from './errors.js';
import { morefOf } from './client.js';
import { retrieve, objectSpec, propertySpec } from './property-collector.js';
import type { MoRef } from './soap.js';
import { child, intAt, textAt, type XmlElement } from './xml.js';
import type { VsphereContext } from './vm.js';

export interface TaskInfo {
  state: 'queued' | 'running' | 'success' | 'error';
  progress: number | undefined;
  result: MoRef | undefined;
  entity: MoRef | undefined;
  descriptionId: string | undefined;
  error: XmlElement | undefined;
}

export function readTaskInfo(info: XmlElement | undefined): TaskInfo {
  const state = textAt(info, 'state');
  return {
    state: state === 'queued' || state === 'running' || state === 'success' || state === 'error' ? state : 'running',
    progress: intAt(info, 'progress'),
    result: morefOf(child(info, 'result')),
    entity: morefOf(child(info, 'entity')),
    descriptionId: textAt(info, 'descriptionId'),
    error: child(info, 'error'),
  };
}

/** TaskInfo → the Driver's TaskStatus; the error message is vSphere's (never a spec value). */
export function statusOf(info: TaskInfo): TaskStatus {
  switch (info.state) {
    case 'queued':
      return { state: 'queued', ...(info.progress === undefined ? {} : { progress: info.progress }) };
    case 'running':
      return { state: 'running', ...(info.progress === undefined ? {} : { progress: info.progress }) };
    case 'success':
      return { state: 'succeeded', progress: 100 };
    case 'error': {
      const fault = readTaskError(info.error);
      return { state: 'failed', error: fault.message, errorCode: codeOfFault(fault.type) };
    }
  }
}

export function taskRef(id: string): MoRef {
  return { type: 'Task', value: id };
}

/** Several tasks' infos in one call; a task vSphere no longer keeps is left out. */
export async function readTasks(ctx: VsphereContext, ids: readonly MoRef[], signal?: AbortSignal): Promise<Map<string, TaskInfo>> {
  const result = new Map<string, TaskInfo>();
  if (ids.length === 0) return result;
  const objects = await retrieve(ctx.client, [propertySpec('Task', ['info'])], ids.map(objectSpec), signal).catch((error: unknown) => {
    // One vanished task makes the whole call fail with ManagedObjectNotFound.
    if (error instanceof NotFoundError) return [];
    throw error;
  });
  for (const object of objects) {
    const info = object.props.get('info');
    if (info !== undefined) result.set(object.ref.value, readTaskInfo(info));
  }
  return result;
}

export async function readTask(ctx: VsphereContext, id: string, signal?: AbortSignal): Promise<TaskInfo> {
  const info = (await readTasks(ctx, [taskRef(id)], signal)).get(id);
  if (info === undefined) throw new NotFoundError(`task ${id} not found`);
  return info;
}

export async function taskStatus(ctx: VsphereContext, id: string, signal?: AbortSignal): Promise<TaskStatus> {
  const status = statusOf(await readTask(ctx, id, signal));
  // Whatever the task changed shows in the next VM list, not a cached one.
  if (status.state === 'succeeded' || status.state === 'failed') ctx.vmList.invalidate();
  return status;
}

/**
 * Waits up to `timeoutMs` for a task to finish. Answers its info when it succeeded, undefined when
 * it is still running; throws the task's fault as a typed error when it failed.
 */
export async function waitBriefly(ctx: VsphereContext, task: MoRef, timeoutMs: number, what: string, signal?: AbortSignal): Promise<TaskInfo | undefined> {
  const deadline = Date.now() + timeoutMs;
  let delay = 100;
  for (;;) {
    const info = await readTask(ctx, task.value, signal);
    if (info.state === 'success') return info;
    if (info.state === 'error') throw errorFromFault(readTaskError(info.error), what);
    if (Date.now() + delay > deadline) return undefined;
    await ctx.sleep(delay);
    delay = Math.min(delay * 2, 1_000);
  }
}
