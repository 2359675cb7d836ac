// Waiting on shared work without giving up a caller's AbortSignal (a login or a resources snapshot
// serves many callers, so one caller's abort must not cancel it, only that caller's wait), and
// bounding a call to one node.

import { UnreachableError } from '../../contracts/driver.js';
import { NodeUnreachableError } from './errors.js';

/** Resolves like `promise`, or rejects with UnreachableError when `signal` aborts first. */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) return Promise.reject(new UnreachableError('aborted'));
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(new UnreachableError('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/**
 * Runs `call` with a signal that also aborts after `ms`. When that bound, not the caller's signal,
 * ends the call, the node is reported unreachable: pveproxy forwards a request to a node whose API
 * hangs for as long as that node takes (NOTES §1), and one such node must not hold up calls that
 * can do without it.
 */
export async function withinNodeBound<T>(
  node: string,
  ms: number,
  signal: AbortSignal | undefined,
  call: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const bound = new AbortController();
  const timer = setTimeout(() => bound.abort(), ms);
  try {
    return await call(signal === undefined ? bound.signal : AbortSignal.any([signal, bound.signal]));
  } catch (error) {
    if (bound.signal.aborted && signal?.aborted !== true) throw new NodeUnreachableError(`node '${node}' did not answer within ${ms / 1000} s`);
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
