// A single-flight, short-lived cache of one list call: concurrent syncs share one request, and
// a change this driver makes invalidates it so the next read sees the change.

export class SnapshotCache<T> {
  readonly #load: (signal?: AbortSignal) => Promise<T>;
  readonly #ttlMs: number;
  readonly #now: () => number;
  #value: { at: number; data: T } | undefined;
  #pending: Promise<T> | undefined;
  #generation = 0;

  constructor(load: (signal?: AbortSignal) => Promise<T>, options: { ttlMs?: number; now?: () => number } = {}) {
    this.#load = load;
    this.#ttlMs = options.ttlMs ?? 2_000;
    this.#now = options.now ?? Date.now;
  }

  async current(signal?: AbortSignal): Promise<T> {
    if (this.#value !== undefined && this.#now() - this.#value.at < this.#ttlMs) return this.#value.data;
    return this.fresh(signal);
  }

  /** A new load (shared with any load already running that started after the last invalidation). */
  fresh(signal?: AbortSignal): Promise<T> {
    if (this.#pending === undefined) {
      const generation = this.#generation;
      const at = this.#now();
      const pending = this.#load(signal).then(
        (data) => {
          if (generation === this.#generation) this.#value = { at, data };
          return data;
        },
      );
      this.#pending = pending;
      void pending.finally(() => {
        if (this.#pending === pending) this.#pending = undefined;
      }).catch(() => undefined);
    }
    return this.#pending;
  }

  invalidate(): void {
    this.#generation += 1;
    this.#value = undefined;
    this.#pending = undefined;
  }
}
