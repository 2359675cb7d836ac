// vim25 tasks: TaskInfo → TaskStatus, the tasks vCenter is running (TaskManager.recentTask), and
// the one look a verb takes at a task it just started. No verb waits for a task: the hook's budget
// is a few seconds, and work still running when it ends must already be answered (the task) or
// findable (Driver contract, "Rules every driver keeps"). vcsim completes tasks synchronously
// (NOTES), so the queued/running path is covered by unit tests on recorded TaskInfo bodies and by
// a proxy that holds vcsim's tasks running.

import { NotFoundError, UnreachableError, type TaskStatus } from '../../contracts/driver.js';
import { codeOfFault, errorFromFault, readTaskError } from './errors.js';
import { morefOf } from './client.js';
import { retrieve, objectSpec, propertySpec, type ObjectContent } from './property-collector.js';
import { el, moref, typed, type MoRef } from './soap.js';
import { child, intAt, textAt, type XmlElement } from './xml.js';
import type { VsphereContext } from './vm.js';

export interface TaskInfo {
  state: 'queued' | 'running' | 'success' | 'error';
  progress: number | undefined;
  result: MoRef | undefined;
  entity: MoRef | undefined;
  entityName: string | undefined;
  descriptionId: string | undefined;
  /** Links the task to the events it posts (vim.event.TaskEvent); 0 or absent when none. */
  eventChainId: number | undefined;
  /** When vCenter queued it, by vCenter's clock. */
  queueTime: string | undefined;
  error: XmlElement | undefined;
}

function stateOf(text: string | undefined): TaskInfo['state'] {
  return text === 'queued' || text === 'running' || text === 'success' || text === 'error' ? text : 'running';
}

export function readTaskInfo(info: XmlElement | undefined): TaskInfo {
  return {
    state: stateOf(textAt(info, 'state')),
    progress: intAt(info, 'progress'),
    result: morefOf(child(info, 'result')),
    entity: morefOf(child(info, 'entity')),
    entityName: textAt(info, 'entityName'),
    descriptionId: textAt(info, 'descriptionId'),
    eventChainId: intAt(info, 'eventChainId'),
    queueTime: textAt(info, 'queueTime'),
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
  let objects: ObjectContent[];
  try {
    objects = await retrieve(ctx.client, [propertySpec('Task', ['info'])], ids.map(objectSpec), signal);
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
    // One vanished task makes the whole call fail with ManagedObjectNotFound: the others are read
    // one by one, so a forgotten task does not hide a running one.
    if (ids.length === 1) return result;
    for (const id of ids) for (const [key, info] of await readTasks(ctx, [id], signal)) result.set(key, info);
    return result;
  }
  for (const object of objects) {
    const info = object.props.get('info');
    if (info !== undefined) result.set(object.ref.value, readTaskInfo(info));
    // Listed but unreadable (a missingSet fault): the task exists, so it is not "not found".
    else if (object.missing.has('info')) throw new UnreachableError(`task ${object.ref.value} cannot be read: vSphere says ${object.missing.get('info') ?? 'unknown'}`);
  }
  return result;
}

const RECENT_PATHS = ['info.state', 'info.descriptionId', 'info.entity', 'info.entityName', 'info.eventChainId', 'info.queueTime'] as const;

/**
 * The tasks vCenter lists as recent, running or queued (TaskManager.recentTask: every session's
 * tasks, so another runtime's too), in one call that reads only what a lookup needs.
 */
export async function recentTasks(ctx: VsphereContext, signal?: AbortSignal): Promise<(TaskInfo & { task: MoRef })[]> {
  const { taskManager } = await ctx.client.serviceContent(signal);
  if (taskManager === undefined) return [];
  const objectSet = el('objectSet', [
    moref('obj', taskManager),
    el('skip', true),
    typed('selectSet', 'TraversalSpec', [el('name', 'recentTask'), el('type', 'TaskManager'), el('path', 'recentTask'), el('skip', false)]),
  ]);
  const objects = await retrieve(ctx.client, [propertySpec('Task', RECENT_PATHS)], [objectSet], signal);
  return objects.map((object) => ({
    task: object.ref,
    state: stateOf(textAt(object.props.get('info.state'))),
    progress: undefined,
    result: undefined,
    entity: morefOf(object.props.get('info.entity')),
    entityName: textAt(object.props.get('info.entityName')),
    descriptionId: textAt(object.props.get('info.descriptionId')),
    eventChainId: intAt(object.props.get('info.eventChainId')),
    queueTime: textAt(object.props.get('info.queueTime')),
    error: undefined,
  }));
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
 * One look at a task a verb just started, never a wait: its info when it has already succeeded,
 * undefined while it runs (or when the look itself fails: the caller answers the task, which the
 * next call follows); its fault as a typed error when it failed.
 */
export async function settledNow(ctx: VsphereContext, task: MoRef, what: string, signal?: AbortSignal): Promise<TaskInfo | undefined> {
  const info = await readTask(ctx, task.value, signal).catch(() => undefined);
  if (info?.state === 'success') return info;
  if (info?.state === 'error') throw errorFromFault(readTaskError(info.error), what);
  return undefined;
}
