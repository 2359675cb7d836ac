// Driver errors as conditions: a specific reason per error class, the driver's (secret-free)
// message, and how soon to try again.
import type { Condition } from '../contracts/crds/common.js';
import { isDriverError, type DriverError } from '../contracts/driver.js';
import { conditionOf } from './conditions.js';

const REASONS: Record<DriverError['code'], string> = {
  NotFound: 'NotFound',
  Busy: 'HypervisorBusy',
  Conflict: 'Conflict',
  InvalidSpec: 'InvalidSpec',
  Unauthorized: 'Unauthorized',
  Unreachable: 'HypervisorUnreachable',
  Unsupported: 'Unsupported',
  HypervisorError: 'HypervisorError',
};

export interface FailureReport {
  reason: string;
  message: string;
  retryable: boolean;
}

/** A driver error as a condition reason; anything else is a bug and is re-thrown. */
export function reportDriverError(error: unknown, during: string, conflictReason = 'Conflict'): FailureReport {
  if (!isDriverError(error)) throw error;
  const reason = error.code === 'Conflict' ? conflictReason : REASONS[error.code];
  return { reason, message: `${during}: ${error.message}`, retryable: error.retryable };
}

/**
 * Back-off without counters in status: the longer Ready has been False, the longer the wait
 * (half the time so far, 5 s to 5 min). Terminal errors wait long; a spec change re-syncs anyway.
 */
export function retryDelaySeconds(previous: Condition[], now: number, retryable: boolean): number {
  if (!retryable) return 300;
  const ready = conditionOf(previous, 'Ready');
  const since = ready && ready.status !== 'True' ? Date.parse(ready.lastTransitionTime) : now;
  const elapsedSeconds = Math.max(0, (now - since) / 1000);
  return Math.round(Math.min(300, Math.max(5, elapsedSeconds / 2)));
}
