/** Time as milliseconds since the epoch. Hooks and the simulator take one so tests can move time by hand. */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
