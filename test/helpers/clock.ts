import type { Clock } from '../../src/contracts/clock.js';

/** A clock that only moves when a test moves it. */
export class FakeClock implements Clock {
  #now: number;

  constructor(start = Date.parse('2026-01-01T00:00:00Z')) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  advance(ms: number): void {
    if (ms < 0) throw new Error('a clock does not go back');
    this.#now += ms;
  }

  set(ms: number): void {
    if (ms < this.#now) throw new Error('a clock does not go back');
    this.#now = ms;
  }
}
