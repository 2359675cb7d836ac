// Back-off across syncs. Every status write makes Metacontroller sync again at once, so a failure
// that is only reported would be retried at the pace of status writes (a clone that always fails
// was POSTed 301 times in ten minutes). The failure is kept in status instead, and the operation
// is not tried again before its back-off has passed: 1 s, 2 s, 4 s … capped at 5 min (the seed's
// curve); a terminal failure waits the cap at once. A spec change starts afresh. Pure.
import type { FailureRecord, TaskOperation } from '../../contracts/crds/virtualmachine.js';
import { rfc3339 } from '../time.js';

export const MAX_BACKOFF_SECONDS = 300;

export function backoffSeconds(record: Pick<FailureRecord, 'count' | 'retryable'>): number {
  if (!record.retryable) return MAX_BACKOFF_SECONDS;
  return Math.min(MAX_BACKOFF_SECONDS, 2 ** Math.min(record.count - 1, 16));
}

/** When the operation of `record` may be tried again (epoch ms). */
export function nextAttemptAt(record: FailureRecord): number {
  return Date.parse(record.lastAttempt) + backoffSeconds(record) * 1000;
}

/** The record after another failure of `operation` at `now`. */
export function recordFailure(
  previous: FailureRecord | undefined,
  failure: { operation: TaskOperation; reason: string; message: string; retryable: boolean },
  now: number,
  generation: number | undefined,
): FailureRecord {
  const same = previous !== undefined && previous.operation === failure.operation;
  const record: FailureRecord = {
    operation: failure.operation,
    reason: failure.reason.slice(0, 128),
    message: failure.message.length > 1024 ? `${failure.message.slice(0, 1023)}…` : failure.message,
    count: same ? Math.min(previous.count + 1, 1_000_000) : 1,
    lastAttempt: rfc3339(now),
    retryable: failure.retryable,
  };
  if (generation !== undefined) record.generation = generation;
  return record;
}

/** The record, unless the spec changed since it was written (the user may have fixed the cause). */
export function currentFailure(record: FailureRecord | undefined, generation: number | undefined): FailureRecord | undefined {
  if (record === undefined) return undefined;
  if (record.generation !== undefined && generation !== undefined && record.generation !== generation) return undefined;
  return record;
}

/** Whether `operation` must wait for its back-off, and until when. */
export function backingOff(record: FailureRecord | undefined, operation: TaskOperation, now: number): { until: number } | undefined {
  if (record === undefined || record.operation !== operation) return undefined;
  const until = nextAttemptAt(record);
  return now < until ? { until } : undefined;
}

export function describeBackoff(record: FailureRecord, until: number): string {
  const times = record.count === 1 ? 'once' : `${record.count} times`;
  return `${record.operation} failed ${times}, last: ${record.message}; next attempt at ${rfc3339(until)}`;
}
