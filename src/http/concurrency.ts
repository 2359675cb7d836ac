// A bound on concurrent work in one process (MAX_CONCURRENT_RECONCILES for the Viti controllers):
// past the limit a call waits its turn for a while, then is refused, so Metacontroller retries it
// later instead of the process taking on more than it was sized for.
export class ConcurrencyGate {
  #active = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(readonly limit: number) {}

  get active(): number {
    return this.#active;
  }

  /** `work`'s result, or `undefined` when no slot freed up within `waitMs`. */
  async run<T>(waitMs: number, work: () => Promise<T>): Promise<T | undefined> {
    if (!(await this.#enter(waitMs))) return undefined;
    try {
      return await work();
    } finally {
      this.#leave();
    }
  }

  #enter(waitMs: number): Promise<boolean> {
    if (this.#active < this.limit) {
      this.#active += 1;
      return Promise.resolve(true);
    }
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#active += 1;
        resolve(true);
      };
      const timer = setTimeout(() => {
        const index = this.#waiting.indexOf(wake);
        if (index >= 0) this.#waiting.splice(index, 1);
        resolve(false);
      }, waitMs);
      this.#waiting.push(wake);
    });
  }

  #leave(): void {
    this.#active -= 1;
    this.#waiting.shift()?.();
  }
}
