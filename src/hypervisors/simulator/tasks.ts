// Time in the simulator: a queue of effects due at given instants, and the task log that callers
// poll. Nothing runs on timers; the world drains what is due whenever it is asked something, so a
// FakeClock decides exactly when each effect lands.

import type { TaskStatus } from '../../contracts/driver.js';
import type { TaskFailure } from './model.js';

export interface TimelineEvent {
  readonly at: number;
  readonly seq: number;
  readonly run: (at: number) => void;
  cancelled: boolean;
}

/** A binary min-heap ordered by (at, seq): effects due at the same instant land in the order they were scheduled. */
export class Timeline {
  #heap: TimelineEvent[] = [];
  #seq = 0;

  schedule(at: number, run: (at: number) => void): TimelineEvent {
    const event: TimelineEvent = { at, seq: this.#seq++, run, cancelled: false };
    this.#heap.push(event);
    this.#siftUp(this.#heap.length - 1);
    return event;
  }

  /** Runs every event due at or before `now`, including ones that due events schedule. */
  runDue(now: number): void {
    for (let next = this.#heap[0]; next !== undefined && next.at <= now; next = this.#heap[0]) {
      this.#pop();
      if (!next.cancelled) next.run(next.at);
    }
  }

  #pop(): void {
    const last = this.#heap.pop();
    if (last === undefined || this.#heap.length === 0) return;
    this.#heap[0] = last;
    this.#siftDown(0);
  }

  #before(a: TimelineEvent, b: TimelineEvent): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  #siftUp(index: number): void {
    const heap = this.#heap;
    let child = index;
    while (child > 0) {
      const parent = (child - 1) >> 1;
      const [c, p] = [heap[child], heap[parent]];
      if (c === undefined || p === undefined || !this.#before(c, p)) return;
      [heap[child], heap[parent]] = [p, c];
      child = parent;
    }
  }

  #siftDown(index: number): void {
    const heap = this.#heap;
    let parent = index;
    for (;;) {
      let smallest = parent;
      for (const child of [2 * parent + 1, 2 * parent + 2]) {
        const [c, s] = [heap[child], heap[smallest]];
        if (c !== undefined && s !== undefined && this.#before(c, s)) smallest = child;
      }
      if (smallest === parent) return;
      const [a, b] = [heap[parent], heap[smallest]];
      if (a === undefined || b === undefined) return;
      [heap[parent], heap[smallest]] = [b, a];
      parent = smallest;
    }
  }
}

export interface TaskRecord {
  readonly id: string;
  readonly startedAt: number;
  readonly duration: number;
  state: 'running' | 'succeeded' | 'failed';
  failure?: TaskFailure;
}

// Like the PVE task index, the log forgets the oldest finished tasks, so a long-running embedded
// simulator does not grow without bound. Ten thousand is far more than any caller polls.
const FINISHED_TASKS_KEPT = 10_000;

export class TaskLog {
  #tasks = new Map<string, TaskRecord>();
  #finished: string[] = [];
  #finishedHead = 0;
  #sequence = 0;

  /** UPID-like and opaque: callers must not parse it. */
  open(host: string, kind: string, startedAt: number, duration: number): TaskRecord {
    this.#sequence += 1;
    const id = `UPID:${host}:${this.#sequence.toString(16).toUpperCase().padStart(8, '0')}:${kind}`;
    const task: TaskRecord = { id, startedAt, duration, state: 'running' };
    this.#tasks.set(id, task);
    return task;
  }

  get(id: string): TaskRecord | undefined {
    return this.#tasks.get(id);
  }

  finish(task: TaskRecord, failure?: TaskFailure): void {
    task.state = failure === undefined ? 'succeeded' : 'failed';
    if (failure !== undefined) task.failure = failure;
    this.#finished.push(task.id);
    if (this.#finished.length - this.#finishedHead > FINISHED_TASKS_KEPT) {
      const oldest = this.#finished[this.#finishedHead++];
      if (oldest !== undefined) this.#tasks.delete(oldest);
      if (this.#finishedHead > FINISHED_TASKS_KEPT) {
        this.#finished = this.#finished.slice(this.#finishedHead);
        this.#finishedHead = 0;
      }
    }
  }
}

export function taskStatus(task: TaskRecord, now: number): TaskStatus {
  if (task.state === 'running') {
    // A task past its duration can still be running (a URL image still downloading): never claim 100.
    const fraction = task.duration > 0 ? (now - task.startedAt) / task.duration : 1;
    return { state: 'running', progress: Math.max(0, Math.min(99, Math.floor(fraction * 100))) };
  }
  if (task.state === 'succeeded') return { state: 'succeeded', progress: 100 };
  const status: TaskStatus = { state: 'failed', error: task.failure?.message ?? 'task failed' };
  if (task.failure?.code !== undefined) status.errorCode = task.failure.code;
  return status;
}
