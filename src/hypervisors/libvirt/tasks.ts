// Operations that may outlast a hook's deadline (deleting a VM, snapshots, copying or downloading
// disks, following a guest shutdown) run on the libvirt host as detached processes and are
// recorded there (task-scripts.ts), not in this process: any runtime replica, or a restarted
// runtime, finds a task, its outcome and the locks it holds. One task per lock key (a domain
// UUID) at a time: starting the same kind again while it runs returns the running task's ID,
// another kind is Busy, and describe reports the kind as the VM's lock.

import { randomUUID } from 'node:crypto';
import { BusyError, HypervisorError, InvalidSpecError, NotFoundError, type TaskStatus } from '../../contracts/driver.js';
import { virshError } from './errors.js';
import { commandLine } from './shell.js';
import { LOCKS_SCRIPT, RUNNER_SCRIPT, START_SCRIPT, STATUS_SCRIPT, STEP_LIB } from './task-scripts.js';
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

export function isTaskId(id: string): boolean {
  return TASK_ID.test(id);
}

/** The script a task runs: the step functions, then one quoted command line per step. */
export function taskScript(steps: readonly TaskStep[]): string {
  return `${STEP_LIB}\n${steps.map((step) => commandLine(step)).join('\n')}\n`;
}

/** What STATUS_SCRIPT printed → the Driver's TaskStatus; NotFound for a task the host does not know. */
export function parseTaskStatus(id: string, out: string): TaskStatus {
  const newline = out.indexOf('\n');
  const state = (newline < 0 ? out : out.slice(0, newline)).trim();
  const rest = newline < 0 ? '' : out.slice(newline + 1);
  if (state === 'running') return { state: 'running' };
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
  const error = virshError(rest, Number(code), kind);
  // Something a step looked up was missing (a source volume, say): the task failed, its VM is not gone.
  return { state: 'failed', error: error.message, errorCode: error.code === 'NotFound' ? 'HypervisorError' : error.code };
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
    if (word === 'started' || word === 'running') return value;
    if (word === 'busy') throw new BusyError(`a ${value} is running on this VM`);
    throw new HypervisorError(`unexpected answer from the libvirt host when starting a task: ${out.trim().slice(0, 100)}`);
  }

  async status(id: string, signal?: AbortSignal): Promise<TaskStatus> {
    if (!isTaskId(id)) throw new NotFoundError(`no task ${id}`);
    const out = await this.host.exec(['sh', '-c', STATUS_SCRIPT, 'sh', this.directory, id], { signal, what: 'reading a task' });
    return parseTaskStatus(id, out);
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
