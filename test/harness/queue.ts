// client-go's rate-limited delaying work queue, reduced to what one sequential worker needs:
// a key is queued at most once, delayed adds keep the earliest due time, failures back off
// exponentially per key (5 ms doubling, capped at 1000 s: DefaultControllerRateLimiter).
const BACKOFF_BASE_MS = 5;
const BACKOFF_MAX_MS = 1000 * 1000;

export class WorkQueue<Item> {
  readonly #ready = new Map<string, Item>();
  readonly #waiting = new Map<string, { item: Item; due: number }>();
  readonly #failures = new Map<string, number>();

  get busy(): boolean {
    return this.#ready.size > 0;
  }

  add(key: string, item: Item, now: number, delayMs = 0): void {
    if (delayMs <= 0) {
      if (!this.#ready.has(key)) this.#ready.set(key, item);
      return;
    }
    const due = now + delayMs;
    const waiting = this.#waiting.get(key);
    if (!waiting || waiting.due > due) this.#waiting.set(key, { item, due });
  }

  /** The back-off the next failure of this key would get. */
  backoffMs(key: string): number {
    return Math.min(BACKOFF_BASE_MS * 2 ** (this.#failures.get(key) ?? 0), BACKOFF_MAX_MS);
  }

  addRateLimited(key: string, item: Item, now: number): void {
    const delay = this.backoffMs(key);
    this.#failures.set(key, (this.#failures.get(key) ?? 0) + 1);
    this.add(key, item, now, delay);
  }

  forget(key: string): void {
    this.#failures.delete(key);
  }

  /** Moves delayed items whose time has come to the ready queue, earliest first. */
  promote(now: number): void {
    const due = [...this.#waiting].filter(([, w]) => w.due <= now).sort((a, b) => a[1].due - b[1].due);
    for (const [key, { item }] of due) {
      this.#waiting.delete(key);
      this.add(key, item, now);
    }
  }

  pop(): [string, Item] | undefined {
    const first = this.#ready.entries().next();
    if (first.done) return undefined;
    this.#ready.delete(first.value[0]);
    return first.value;
  }

  nextDue(): number | undefined {
    let next: number | undefined;
    for (const { due } of this.#waiting.values()) if (next === undefined || due < next) next = due;
    return next;
  }
}
