// virsh failures → the Driver's typed errors. Hooks branch on the class, users read the message,
// so the message is virsh's own first error line (libvirt never echoes XML or stdin into it).

import {
  BusyError,
  ConflictError,
  InvalidSpecError,
  NotFoundError,
  UnauthorizedError,
  UnreachableError,
  UnsupportedError,
  type DriverError,
} from '../../contracts/driver.js';

/** The first `error: …` line of virsh's stderr, without the prefix; else the first non-empty line. */
export function virshMessage(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
  const errorLines = lines.filter((line) => line.startsWith('error:')).map((line) => line.slice('error:'.length).trim());
  // virsh 9 prints "failed to get domain 'x'" and then the cause on a second error line.
  const text = errorLines.length > 0 ? errorLines.join(': ') : (lines[0] ?? '');
  return text.length > 500 ? `${text.slice(0, 500)}…` : text;
}

const NOT_FOUND = [
  /failed to get domain/i,
  /Domain not found/i,
  /Storage volume not found/i,
  /failed to get vol/i,
  /Storage pool not found/i,
  /failed to get pool/i,
  /Domain snapshot not found/i,
  /snapshot not found/i,
  /Network not found/i,
  /failed to get network/i,
];
const BUSY = [
  /cannot acquire state change lock/i,
  /Timed out during operation/i,
  /Failed to get "write" lock/i,
  /is locked/i,
  /job .* is active/i,
  /another migration job/i,
];
const CONFLICT = [/already exists/i, /domain is already running/i, /domain is not running/i, /only on stopped domains/i, /already in use/i];
const UNREACHABLE = [/failed to connect to the hypervisor/i, /Cannot recv data/i, /End of file while reading data/i, /client socket is closed/i];
const UNAUTHORIZED = [/authentication failed/i, /access denied/i, /Permission denied/i];
const UNSUPPORTED = [/not supported/i, /unsupported configuration/i, /Operation not supported/i];

/** The typed error for a failed virsh (or host tool) run. */
export function virshError(stderr: string, exitCode: number | null, what: string): DriverError {
  const message = virshMessage(stderr) || `${what} failed with exit code ${exitCode ?? 'unknown'}`;
  const full = `${what}: ${message}`;
  const matches = (patterns: RegExp[]) => patterns.some((pattern) => pattern.test(message));
  if (matches(UNREACHABLE)) return new UnreachableError(full);
  if (matches(NOT_FOUND)) return new NotFoundError(full);
  if (matches(BUSY)) return new BusyError(full);
  if (matches(CONFLICT)) return new ConflictError(full);
  if (matches(UNAUTHORIZED)) return new UnauthorizedError(full);
  if (matches(UNSUPPORTED)) return new UnsupportedError(full);
  // exit 127: the tool is not installed on the host
  if (exitCode === 127) return new UnsupportedError(`${what}: command not found on the host`);
  return new InvalidSpecError(full);
}
