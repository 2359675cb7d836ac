// Operations that may outlast a hook's deadline (deleting a VM, snapshot revert, copying disks)
// run inside this process and are followed through taskStatus. One operation per domain at a
// time: starting the same again while it runs returns the running one's ID, and describe reports it as
// the VM's lock; another kind of operation meanwhile is Busy. A task is lost with the process: taskStatus then answers NotFound, and the
// controller re-observes the VM, which is the truth anyway.

import { randomUUID } from 'node:crypto';
import { BusyError, NotFoundError, isDriverError, type TaskStatus } from '../../contracts/driver.js';

const KEEP_FINISHED_MS = 30 * 60_000;

interface Entry {
  kind: string;
  domain: string;
  status: TaskStatus;
  finishedAt?: number;
}

export class TaskRegistry {
  readonly #tasks = new Map<string, Entry>();

  /** Starts `work` for `domain`; the same kind already running there answers its ID, another kind is Busy. */
  start(domain: string, kind: string, work: () => Promise<void>): string {
    const running = this.#running(domain);
    if (running && running[1].kind === kind) return running[0];
    if (running) throw new BusyError(`a ${running[1].kind} is running on this VM`);
    const id = `libvirt-${kind}-${randomUUID()}`;
    const entry: Entry = { kind, domain, status: { state: 'running' } };
    this.#tasks.set(id, entry);
    work().then(
      () => {
        entry.status = { state: 'succeeded' };
        entry.finishedAt = Date.now();
      },
      (error: unknown) => {
        entry.status = { state: 'failed', error: error instanceof Error ? error.message : String(error) };
        if (isDriverError(error)) entry.status.errorCode = error.code;
        entry.finishedAt = Date.now();
      },
    );
    this.#prune();
    return id;
  }

  status(id: string): TaskStatus {
    const entry = this.#tasks.get(id);
    if (!entry) throw new NotFoundError(`no task ${id}`);
    return { ...entry.status };
  }

  /** The kind of the task running on this domain, if any. */
  lock(domain: string): string | undefined {
    return this.#running(domain)?.[1].kind;
  }

  #running(domain: string): [string, Entry] | undefined {
    for (const pair of this.#tasks) if (pair[1].domain === domain && pair[1].status.state === 'running') return pair;
    return undefined;
  }

  #prune(): void {
    const cutoff = Date.now() - KEEP_FINISHED_MS;
    for (const [id, entry] of this.#tasks) if (entry.finishedAt !== undefined && entry.finishedAt < cutoff) this.#tasks.delete(id);
  }
}
