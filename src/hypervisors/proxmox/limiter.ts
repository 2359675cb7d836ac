// Bounded concurrency per node for calls that change something. PVE takes a per-VM flock with a
// 10 s timeout for every config change, and storage allocations serialize per storage; a burst of
// parallel writes to one node turns into "can't lock file … got timeout" (NOTES §6). Queueing
// them here is cheaper than retrying them.

import { UnreachableError } from '../../contracts/driver.js';

export class KeyedLimiter {
  readonly #limit: number;
  readonly #active = new Map<string, number>();
  readonly #waiting = new Map<string, (() => void)[]>();

  constructor(limit: number) {
    this.#limit = Math.max(1, limit);
  }

  async run<T>(key: string, signal: AbortSignal | undefined, task: () => Promise<T>): Promise<T> {
    await this.#acquire(key, signal);
    try {
      return await task();
    } finally {
      this.#release(key);
    }
  }

  #acquire(key: string, signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted) return Promise.reject(new UnreachableError('aborted while waiting for a free slot'));
    const active = this.#active.get(key) ?? 0;
    if (active < this.#limit) {
      this.#active.set(key, active + 1);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const queue = this.#waiting.get(key) ?? [];
      const onAbort = (): void => {
        const index = queue.indexOf(grant);
        if (index >= 0) queue.splice(index, 1);
        reject(new UnreachableError('aborted while waiting for a free slot'));
      };
      // The slot is handed over by #release, which does not decrement: the count stays right.
      const grant = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      queue.push(grant);
      this.#waiting.set(key, queue);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  #release(key: string): void {
    const queue = this.#waiting.get(key);
    const next = queue?.shift();
    if (queue !== undefined && queue.length === 0) this.#waiting.delete(key);
    if (next !== undefined) {
      next();
      return;
    }
    const active = (this.#active.get(key) ?? 1) - 1;
    if (active <= 0) this.#active.delete(key);
    else this.#active.set(key, active);
  }
}
