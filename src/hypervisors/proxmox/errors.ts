// PVE answers → the Driver's typed errors. Hooks branch on the class, users read the message, so
// messages carry PVE's own words (first choice: the body's `message`, else the reason phrase,
// which is PVE's error text: NOTES §1) and never a credential or a user-data value.

import {
  BusyError,
  ConflictError,
  InvalidSpecError,
  NotFoundError,
  UnauthorizedError,
  UnreachableError,
  UnsupportedError,
  type DriverError,
  type DriverErrorCode,
} from '../../contracts/driver.js';
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

export function errorOfCode(code: DriverErrorCode, message: string): DriverError {
  switch (code) {
    case 'NotFound':
      return new NotFoundError(message);
    case 'Busy':
      return new BusyError(message);
    case 'Conflict':
      return new ConflictError(message);
    case 'InvalidSpec':
      return new InvalidSpecError(message);
    case 'Unauthorized':
      return new UnauthorizedError(message);
    case 'Unreachable':
      return new UnreachableError(message);
    case 'Unsupported':
      return new UnsupportedError(message);
  }
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
  if (code !== undefined) return errorOfCode(code, message);
  if (status >= 500 && status !== 500) return new UnreachableError(message);
  return new InvalidSpecError(message);
}

const TLS_CODES = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function errorCode(error: unknown): string | undefined {
  if (!isRow(error)) return undefined;
  return str(error['code']);
}

/**
 * The error for a request that got no HTTP answer: refused, reset, timed out, aborted, or a TLS
 * peer we do not trust. Each may or may not have reached PVE, so all are Unreachable (retryable).
 */
export function errorFromTransport(error: unknown, host: string): DriverError {
  if (error instanceof UnreachableError) return error;
  const cause = isRow(error) && 'cause' in error ? error['cause'] : undefined;
  const code = errorCode(error) ?? errorCode(cause);
  const name = error instanceof Error ? error.name : '';
  if (name === 'AbortError' || code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR') {
    return new UnreachableError(`request to ${host} aborted`);
  }
  if (code !== undefined && TLS_CODES.has(code)) {
    return new UnreachableError(
      `TLS certificate of ${host} is not trusted (${code}): set PVE_CA_BUNDLE, or PVE_INSECURE_SKIP_VERIFY=true for testing only`,
    );
  }
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT') {
    return new UnreachableError(`request to ${host} timed out (${code})`);
  }
  const detail = code ?? (error instanceof Error ? error.message : 'unknown error');
  return new UnreachableError(`cannot reach ${host}: ${detail}`);
}
