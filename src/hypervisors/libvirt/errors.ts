// virsh failures → the Driver's typed errors. Hooks branch on the class, users read the message,
// so the message is virsh's own first error line (libvirt never echoes XML or stdin into it).
// What no rule recognises is a HypervisorError (retried with back-off): only messages that say
// the request itself is wrong are InvalidSpec, because InvalidSpec stops the VM for good.

import {
  BusyError,
  ConflictError,
  HypervisorError,
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

// Only a failed lookup of the object a command names says it does not exist. The same words
// after another first line ("Failed to start domain 'x': Network not found…") name something
// the object refers to, and the object itself is there.
const NOT_FOUND = [
  /^failed to get (domain|vol|pool|network)\b/i,
  /^Domain not found/i,
  /^Storage volume not found/i,
  /^Storage pool not found/i,
  /^Domain snapshot not found/i,
  /^Network not found/i,
];
// Connection failures, and storage libvirt cannot look into right now: "cannot see", not "gone".
const UNREACHABLE = [
  /failed to connect to the hypervisor/i,
  /Cannot recv data/i,
  /End of file while reading data/i,
  /client socket is closed/i,
  /pool '[^']*' is not active/i,
  /storage pool '[^']*' is not active/i,
  /task directory .* cannot be read/i,
];
const BUSY = [
  /cannot acquire state change lock/i,
  /Timed out during operation/i,
  /Failed to get "write" lock/i,
  /Failed to get shared "write" lock/i,
  /is locked/i,
  /job .* is active/i,
  /another migration job/i,
  // vol-delete of a volume libvirt is still copying (a vol-create-from whose client went away)
  /is still being allocated/i,
  /timed out waiting for the task state lock/i,
];
const CONFLICT = [
  /already exists/i,
  /exists already/i,
  /domain is already running/i,
  /domain is not running/i,
  /only on stopped domains/i,
  /already in use/i,
  // libvirt's VIR_ERR_OPERATION_INVALID: the object's state forbids the call now
  /Requested operation is not valid/i,
];
// polkit or libvirt ACLs refusing the SSH user; file "Permission denied" is a host problem, not a credential one.
const UNAUTHORIZED = [/authentication failed/i, /access denied/i, /authentication unavailable/i];
const UNSUPPORTED = [/not supported/i, /unsupported configuration/i, /Operation not supported/i];
// The request itself is wrong: a value libvirt refuses, or an image that cannot serve as asked.
const INVALID_SPEC = [
  /XML error/i,
  /invalid argument/i,
  /Malformed/i,
  /\(domain_definition\)/i,
  /unknown OS type/i,
  /^Failed to (start|define|create) domain\b.*: Network not found/i,
  /image checksum mismatch/i,
  /cannot be smaller than the image/i,
  /refers to other files/i,
  /image URL could not be downloaded: curl: \(22\) The requested URL returned error: 4\d\d/i,
  /image URL could not be downloaded: curl: \(3\)/i,
];

/** The typed error for a failed virsh (or host tool) run. */
export function virshError(stderr: string, exitCode: number | null, what: string): DriverError {
  const message = virshMessage(stderr) || `${what} failed with exit code ${exitCode ?? 'unknown'}`;
  const full = `${what}: ${message}`;
  const matches = (patterns: RegExp[]) => patterns.some((pattern) => pattern.test(message));
  if (matches(UNREACHABLE)) return new UnreachableError(full);
  if (matches(NOT_FOUND)) return new NotFoundError(full);
  if (matches(BUSY)) return new BusyError(full);
  if (matches(INVALID_SPEC)) return new InvalidSpecError(full);
  if (matches(CONFLICT)) return new ConflictError(full);
  if (matches(UNAUTHORIZED)) return new UnauthorizedError(full);
  if (matches(UNSUPPORTED)) return new UnsupportedError(full);
  // exit 127: the tool is not installed on the host
  if (exitCode === 127) return new UnsupportedError(`${what}: command not found on the host`);
  return new HypervisorError(full);
}
