// Waiting on shared work without giving up a caller's AbortSignal: a login or a resources snapshot
// serves many callers, so one caller's abort must not cancel it, only that caller's wait.

import { UnreachableError } from '../../contracts/driver.js';

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
