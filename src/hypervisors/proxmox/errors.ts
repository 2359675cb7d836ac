// PVE answers → the Driver's typed errors. Hooks branch on the class, users read the message, so
// messages carry PVE's own words (first choice: the body's `message`, else the reason phrase,
// which is PVE's error text: NOTES §1) and never a credential or a user-data value.

import {
  ConflictError,
  InvalidSpecError,
  NotFoundError,
  UnauthorizedError,
  UnreachableError,
  UnsupportedError,
  type DriverError,
  type DriverErrorCode,
  driverErrorOf,
} from '../../contracts/driver.js';
import { transportError } from '../common/transport-errors.js';
import { isRow, str } from './values.js';

// Parameters whose values PVE may echo back in a verification error ("invalid urlencoded string:
// <the value>"); only the part before the echoed value is kept.
const SECRET_PARAMS = new Set(['password', 'cipassword', 'sshkeys', 'new-format', 'tfa-challenge', 'otp']);

/** The typed error class for a failure text PVE produced (an HTTP 500 message or a task exitstatus). */
export function classifyFailure(message: string): DriverErrorCode | undefined {
  // pve-common lock_file_full (10 s flock) and AbstractConfig::check_lock: retryable (NOTES §6).
  if (/can't lock file|VM is locked|detected modified configuration/i.test(message)) return 'Busy';
  // A missing VM, or a VM asked on the wrong node (NOTES §1); a missing snapshot (AbstractConfig).
  if (/^Configuration file '[^']*' does not exist/.test(message)) return 'NotFound';
  if (/^snapshot '[^']*' does not exist/.test(message) || /no such task/.test(message)) return 'NotFound';
  // VMID taken between nextid and create/clone; snapshot name taken ("snapshot name 'x' already used").
  if (/already exists|already used/.test(message)) return 'Conflict';
  return undefined;
}


/** `text` without the trailing newline PVE appends to every die() message. */
export function cleanMessage(text: string): string {
  return text.replace(/\s+$/, '');
}

function parameterErrors(errors: Record<string, unknown>): string {
  return Object.entries(errors)
    .map(([name, value]) => {
      let text = cleanMessage(str(value) ?? 'invalid').replace(/\n/g, '; ');
      if (SECRET_PARAMS.has(name)) {
        const colon = text.indexOf(':');
        if (colon >= 0) text = text.slice(0, colon);
      }
      return `${name}: ${text}`;
    })
    .join(', ');
}

/** The error for a non-2xx answer. `reason` is the HTTP reason phrase, which PVE sets to its message. */
export function errorFromResponse(status: number, reason: string, body: unknown): DriverError {
  const envelope = isRow(body) ? body : {};
  const bodyMessage = cleanMessage(str(envelope['message']) ?? '');
  const message = bodyMessage || cleanMessage(reason) || `HTTP ${status}`;
  const errors = envelope['errors'];

  if (status === 401) return new UnauthorizedError(`authentication failed: ${message}`);
  if (status === 403) return new UnauthorizedError(message);
  if (status === 595 || status === 596 || status === 502 || status === 503 || status === 504) {
    // pveproxy could not reach the node that owns the path (NOTES §1): the request never ran.
    return new UnreachableError(`node unreachable: ${message}`);
  }
  if (status === 501) return new UnsupportedError(message);
  if (status === 400 && isRow(errors)) {
    const detail = parameterErrors(errors);
    const texts = Object.values(errors).map((value) => str(value) ?? '');
    if (texts.some((text) => /no such task|unable to parse worker upid/.test(text))) return new NotFoundError(`task not found: ${detail}`);
    if (texts.some((text) => /already exists/.test(text))) return new ConflictError(detail);
    return new InvalidSpecError(`parameter verification failed: ${detail}`);
  }
  const code = classifyFailure(message);
  if (code !== undefined) return driverErrorOf(code, message);
  if (status >= 500 && status !== 500) return new UnreachableError(message);
  return new InvalidSpecError(message);
}



export function errorFromTransport(error: unknown, host: string): DriverError {
  return transportError(error, host, 'set PVE_CA_BUNDLE, or PVE_INSECURE_SKIP_VERIFY=true for testing only');
}
