// Operations that may outlast a hook's deadline (deleting a VM, snapshots, copying or downloading
// disks, following a guest shutdown) run on the libvirt host as detached processes and are
// recorded there (task-scripts.ts), not in this process: any runtime replica, or a restarted
// runtime, finds a task, its outcome and the locks it holds. One task per lock key (a domain
// UUID) at a time: starting the same kind again while it runs returns the running task's ID,
// another kind is Busy, and describe reports the kind as the VM's lock. A disk transfer's bytes
// flow through the runtime itself: its task is a leased one (vr_lease, transfers.ts), recorded
// and locked on the host like the others while the runtime doing it keeps renewing it.

import { randomUUID } from 'node:crypto';
import { BusyError, HypervisorError, InvalidSpecError, NotFoundError, type DriverErrorCode, type TaskStatus } from '../../contracts/driver.js';
import { virshError } from './errors.js';
import { commandLine } from './shell.js';
import { FINISH_SCRIPT, LOCKS_SCRIPT, RENEW_SCRIPT, RUNNER_SCRIPT, START_SCRIPT, STATUS_SCRIPT, STEP_LIB } from './task-scripts.js';
import type { LibvirtHost } from './virsh.js';

/** A lock a task holds while it runs, and the kind describe reports for it. */
export interface TaskLock {
  key: string;
  kind: string;
}

/** One command of a task: an argument vector, or a call of a STEP_LIB function (`vr_…`). */
export type TaskStep = readonly string[];

const KEY = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const KIND = /^[a-z][a-z-]{0,31}$/;
const TASK_ID = /^libvirt-[a-z][a-z-]{0,31}-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** "a delete", "an export": a task kind in a message. */
export function taskNoun(kind: string): string {
  return `${/^[aeiou]/.test(kind) ? 'an' : 'a'} ${kind}`;
}

export function isTaskId(id: string): boolean {
  return TASK_ID.test(id);
}

/** The script a task runs: the step functions, then one quoted command line per step. */
export function taskScript(steps: readonly TaskStep[]): string {
  return `${STEP_LIB}\n${steps.map((step) => commandLine(step)).join('\n')}\n`;
}

const ERROR_CODES: readonly DriverErrorCode[] = ['NotFound', 'Busy', 'Conflict', 'InvalidSpec', 'Unauthorized', 'Unreachable', 'Unsupported', 'HypervisorError'];

/** The line a leased task's outcome carries when the runtime classified its failure itself. */
export const ERROR_CODE_LINE = 'virtrigaud-error-code';

function declaredCode(text: string): { code?: DriverErrorCode; rest: string } {
  const match = new RegExp(`^${ERROR_CODE_LINE} (\\w+)$`, 'm').exec(text);
  const code = ERROR_CODES.find((candidate) => candidate === match?.[1]);
  return code === undefined || match === null ? { rest: text } : { code, rest: text.replace(match[0], '') };
}

/** What STATUS_SCRIPT printed → the Driver's TaskStatus; NotFound for a task the host does not know. */
export function parseTaskStatus(id: string, out: string): TaskStatus {
  const newline = out.indexOf('\n');
  const state = (newline < 0 ? out : out.slice(0, newline)).trim();
  const rest = newline < 0 ? '' : out.slice(newline + 1);
  if (state === 'running') {
    // A leased task's progress, as its runtime last reported it.
    const progress = /^(\d{1,3})\s*$/m.exec(rest)?.[1];
    return progress === undefined ? { state: 'running' } : { state: 'running', progress: Math.min(100, Number(progress)) };
  }
  if (state === 'missing') throw new NotFoundError(`no task ${id} on the libvirt host`);
  if (state === 'vanished') {
    return {
      state: 'failed',
      error: `task ${id} ended without an exit status (its process on the libvirt host was killed, or the host restarted)`,
      errorCode: 'HypervisorError',
    };
  }
  const code = /^done (\d+)$/.exec(state)?.[1];
  if (code === undefined) throw new HypervisorError(`unexpected task state from the libvirt host: ${state.slice(0, 100)}`);
  if (code === '0') return { state: 'succeeded' };
  const kind = /^libvirt-([a-z-]+)-[0-9a-f]{8}-/.exec(id)?.[1] ?? 'task';
  const declared = declaredCode(rest);
  const error = virshError(declared.rest, Number(code), kind);
  const errorCode = declared.code ?? error.code;
  // Something a step looked up was missing (a source volume, say): the task failed, its VM is not gone.
  return { state: 'failed', error: error.message, errorCode: errorCode === 'NotFound' ? 'HypervisorError' : errorCode };
}

/** A task start: its ID, and whether this call started it (or found the same kind running). */
export interface TaskBegun {
  id: string;
  started: boolean;
}

export class HostTasks {
  constructor(
    readonly host: LibvirtHost,
    /** The state directory on the host; '' lets the host pick (see task-scripts.ts). */
    readonly directory: string,
  ) {}

  /**
   * Starts `steps` holding `locks` (the first names the task's kind), or answers the ID of the
   * task of the same kind already holding them; BusyError when another kind holds one.
   */
  async start(locks: readonly TaskLock[], steps: readonly TaskStep[], signal?: AbortSignal): Promise<string> {
    return (await this.begin(locks, steps, signal)).id;
  }

  /** Like start, telling whether this call started the task: a leased task's work is then this caller's. */
  async begin(locks: readonly TaskLock[], steps: readonly TaskStep[], signal?: AbortSignal): Promise<TaskBegun> {
    const kind = locks[0]?.kind;
    if (kind === undefined) throw new InvalidSpecError('a task needs a lock');
    for (const lock of locks) {
      if (!KEY.test(lock.key) || !KIND.test(lock.kind)) throw new InvalidSpecError(`invalid task lock ${lock.key}=${lock.kind}`);
    }
    const id = `libvirt-${kind}-${randomUUID()}`;
    const out = await this.host.exec(['sh', '-c', START_SCRIPT, 'sh', this.directory, id, RUNNER_SCRIPT, ...locks.map((lock) => `${lock.key}=${lock.kind}`)], {
      stdin: taskScript(steps),
      signal,
      what: `starting a ${kind} task`,
    });
    const [word, value = ''] = out.trim().split(/\s+/);
    if (word === 'started' || word === 'running') return { id: value, started: word === 'started' };
    if (word === 'busy') throw new BusyError(`${taskNoun(value)} is running on this VM`);
    throw new HypervisorError(`unexpected answer from the libvirt host when starting a task: ${out.trim().slice(0, 100)}`);
  }

  async status(id: string, signal?: AbortSignal): Promise<TaskStatus> {
    if (!isTaskId(id)) throw new NotFoundError(`no task ${id}`);
    const out = await this.host.exec(['sh', '-c', STATUS_SCRIPT, 'sh', this.directory, id], { signal, what: 'reading a task' });
    return parseTaskStatus(id, out);
  }

  /** Renews a leased task's lease with its progress; false when the task no longer runs. */
  async renew(id: string, percent: number, signal?: AbortSignal): Promise<boolean> {
    const out = await this.host.exec(['sh', '-c', RENEW_SCRIPT, 'sh', this.directory, id, String(Math.floor(percent))], { signal, what: 'renewing a task' });
    return out.trim() === 'ok';
  }

  /** Ends a leased task: succeeded, or failed with the error (its class kept for taskStatus). */
  async finish(id: string, failure: { message: string; code: DriverErrorCode } | undefined, signal?: AbortSignal): Promise<void> {
    const outcome = failure === undefined ? '0\n' : `1\nerror: ${failure.message.replace(/\s+/g, ' ')}\n${ERROR_CODE_LINE} ${failure.code}\n`;
    await this.host.exec(['sh', '-c', FINISH_SCRIPT, 'sh', this.directory, id], { stdin: outcome, signal, what: 'ending a task' });
  }

  /** The running tasks holding these keys. */
  async holders(keys: readonly string[], signal?: AbortSignal): Promise<Map<string, { kind: string; id: string }>> {
    const held = new Map<string, { kind: string; id: string }>();
    const valid = keys.filter((key) => KEY.test(key));
    if (valid.length === 0) return held;
    const out = await this.host.exec(['sh', '-c', LOCKS_SCRIPT, 'sh', this.directory, ...valid], { signal, what: 'reading task locks' });
    for (const line of out.split('\n')) {
      const [key, kind, id] = line.trim().split(' ');
      if (key !== undefined && kind !== undefined && id !== undefined) held.set(key, { kind, id });
    }
    return held;
  }

  /** The running task holding `key`. */
  async holder(key: string, signal?: AbortSignal): Promise<{ kind: string; id: string } | undefined> {
    return (await this.holders([key], signal)).get(key);
  }

  /** The kind of the running task holding `key`: what describe reports as the VM's lock. */
  async lock(key: string, signal?: AbortSignal): Promise<string | undefined> {
    return (await this.holder(key, signal))?.kind;
  }
}
