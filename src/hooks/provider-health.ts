// spec.healthCheck's thresholds: how many probes in a row must fail before Ready turns False, and
// succeed before it turns True again. Pure: the previous counts (status.health) and this probe's
// result in, the new counts out.
//
// A probe counts once per interval: Metacontroller syncs again after every status write (and on
// every watch event), so consecutive results of the same kind less than an interval apart are the
// same observation. A result of the other kind counts at once (it ends the streak).
import { Value } from '@sinclair/typebox/value';
import { ProviderStatus } from '../contracts/crds/provider.js';
import type { HealthCheckSettings } from '../contracts/normalize/provider.js';
import { rfc3339 } from './time.js';

export interface HealthState {
  healthy: boolean;
  consecutiveFailures: number;
  consecutiveSuccesses: number;
  lastCountedTime?: string;
}

/** status.health of the previous answer, when it is one of ours. */
export function previousHealth(status: Record<string, unknown> | undefined): HealthState | undefined {
  const health = status?.['health'];
  return Value.Check(ProviderStatus.properties.health, health) ? health : undefined;
}

// rfc3339 keeps whole seconds, and a resync comes when it is due, not after it.
const TOLERANCE_MS = 1000;

/** The counts after a probe that succeeded (`ok`) or failed, `now`. */
export function countProbe(previous: HealthState | undefined, ok: boolean, settings: HealthCheckSettings, now: number): HealthState {
  const base: HealthState = previous ?? { healthy: false, consecutiveFailures: 0, consecutiveSuccesses: 0 };
  const interval = settings.intervalMs ?? 0;
  const counted = base.lastCountedTime === undefined ? undefined : Date.parse(base.lastCountedTime);
  const due = counted === undefined || Number.isNaN(counted) || now - counted >= interval - TOLERANCE_MS;
  const sameStreak = ok ? base.consecutiveSuccesses > 0 : base.consecutiveFailures > 0;
  if (sameStreak && !due) return base;

  const next: HealthState = ok
    ? { healthy: false, consecutiveFailures: 0, consecutiveSuccesses: Math.min(base.consecutiveSuccesses + 1, settings.successThreshold) }
    : { healthy: false, consecutiveFailures: Math.min(base.consecutiveFailures + 1, settings.failureThreshold), consecutiveSuccesses: 0 };
  next.healthy = ok
    ? base.healthy || next.consecutiveSuccesses >= settings.successThreshold
    : base.healthy && next.consecutiveFailures < settings.failureThreshold;
  const changed =
    next.healthy !== base.healthy ||
    next.consecutiveFailures !== base.consecutiveFailures ||
    next.consecutiveSuccesses !== base.consecutiveSuccesses;
  // A steady state writes nothing new: the time moves only when a count does.
  const time = changed ? rfc3339(now) : base.lastCountedTime;
  if (time !== undefined) next.lastCountedTime = time;
  return next;
}

/** Seconds until the next probe counts: what is left of the interval since the last count, else a whole interval. */
export function secondsUntilDue(state: HealthState, settings: HealthCheckSettings, now: number): number {
  const interval = settings.intervalMs ?? 0;
  const counted = state.lastCountedTime === undefined ? Number.NaN : Date.parse(state.lastCountedTime);
  const remaining = counted + interval - now;
  const wait = Number.isNaN(remaining) || remaining <= TOLERANCE_MS || remaining > interval ? interval : remaining;
  return Math.max(1, Math.ceil(wait / 1000));
}
