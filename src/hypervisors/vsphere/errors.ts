// vim25 faults → the Driver's typed errors. A SOAP fault is HTTP 500 with
// `<detail><XxxFault xsi:type="Xxx">` (NOTES "SOAP gotchas"); a failed task carries the same
// fault types in `info.error.fault`. Hooks branch on the class; the message is shown to users, so
// it says what vSphere said and never a credential or a user-data value.

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
import { child, textAt, typeName, type XmlElement } from './xml.js';

const CODES: Record<string, DriverErrorCode> = {
  NotAuthenticated: 'Unauthorized',
  InvalidLogin: 'Unauthorized',
  NoPermission: 'Unauthorized',
  NotAuthorized: 'Unauthorized',
  ManagedObjectNotFound: 'NotFound',
  TaskInProgress: 'Busy',
  ConcurrentAccess: 'Busy',
  ResourceInUse: 'Busy',
  FileLocked: 'Busy',
  DuplicateName: 'Conflict',
  FileAlreadyExists: 'Conflict',
  AlreadyExists: 'Conflict',
  InvalidPowerState: 'Conflict',
  InvalidState: 'Conflict',
  InvalidHostState: 'Conflict',
  ToolsUnavailable: 'Conflict',
  MethodNotFound: 'Unsupported',
  NotSupported: 'Unsupported',
  NotImplemented: 'Unsupported',
  HostNotConnected: 'Unreachable',
  HostCommunication: 'Unreachable',
  RequestCanceled: 'Unreachable',
  InsufficientResourcesFault: 'InvalidSpec',
  NoDiskSpace: 'InvalidSpec',
};

/** The typed class of a vim25 fault type name; InvalidSpec for anything the server refused as asked. */
export function codeOfFault(faultType: string | undefined): DriverErrorCode {
  if (faultType === undefined) return 'InvalidSpec';
  return CODES[faultType] ?? 'InvalidSpec';
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

/** A fault as read from a SOAP Fault or a TaskInfo error. */
export interface VimFault {
  type: string | undefined;
  message: string;
}

/** The fault type of a `<detail>` child or `<fault>` element: its xsi:type, else its name minus `Fault`. */
function faultType(element: XmlElement | undefined): string | undefined {
  if (element === undefined) return undefined;
  return typeName(element) ?? element.name.replace(/Fault$/, '');
}

// Go type names (`*types.InvalidPowerState`) are what vcsim puts into localizedMessage: no help to a reader.
function meaningful(text: string | undefined): string | undefined {
  const trimmed = text?.trim();
  if (trimmed === undefined || trimmed === '' || /^\*?types\.\w+$/.test(trimmed)) return undefined;
  return trimmed;
}

/** Details worth naming for a fault with no message of its own. */
function detailOf(type: string | undefined, fault: XmlElement | undefined): string {
  if (fault === undefined) return '';
  switch (type) {
    case 'ManagedObjectNotFound': {
      const obj = child(fault, 'obj');
      return obj ? `: ${obj.attributes['type'] ?? 'object'} ${obj.text}` : '';
    }
    case 'InvalidPowerState': {
      const existing = textAt(fault, 'existingState');
      return existing ? `: the VM is ${existing}` : '';
    }
    case 'InvalidArgument':
    case 'InvalidProperty': {
      const property = textAt(fault, 'invalidProperty') ?? textAt(fault, 'name');
      return property ? `: ${property}` : '';
    }
    case 'InvalidVmConfig':
      return textAt(fault, 'property') ? `: ${textAt(fault, 'property') ?? ''}` : '';
    case 'DuplicateName':
      return textAt(fault, 'name') ? `: ${textAt(fault, 'name') ?? ''}` : '';
    default:
      return '';
  }
}

/** A SOAP Fault element → fault type and message. */
export function readSoapFault(fault: XmlElement): VimFault {
  const detail = child(fault, 'detail')?.children[0];
  const type = faultType(detail);
  const message = meaningful(textAt(fault, 'faultstring')) ?? `vSphere fault ${type ?? 'unknown'}${detailOf(type, detail)}`;
  return { type, message };
}

/** A TaskInfo `error` (LocalizedMethodFault) → fault type and message. */
export function readTaskError(error: XmlElement | undefined): VimFault {
  const fault = child(error, 'fault');
  const type = faultType(fault);
  const message = meaningful(textAt(error, 'localizedMessage')) ?? `vSphere fault ${type ?? 'unknown'}${detailOf(type, fault)}`;
  return { type, message };
}

export function errorFromFault(fault: VimFault, context?: string): DriverError {
  return errorOfCode(codeOfFault(fault.type), context === undefined ? fault.message : `${context}: ${fault.message}`);
}

/** A fault that is not (yet) a Driver error: the client needs the type to decide on re-login. */
export class SoapFault extends Error {
  constructor(readonly fault: VimFault) {
    super(fault.message);
    this.name = 'SoapFault';
  }
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

function codeOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** A request that got no HTTP answer: it may or may not have reached vSphere, so always retryable. */
export function errorFromTransport(error: unknown, host: string): DriverError {
  if (error instanceof UnreachableError) return error;
  const cause = typeof error === 'object' && error !== null && 'cause' in error ? (error as { cause: unknown }).cause : undefined;
  const code = codeOf(error) ?? codeOf(cause);
  const name = error instanceof Error ? error.name : '';
  if (name === 'AbortError' || code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR') return new UnreachableError(`request to ${host} aborted`);
  if (code !== undefined && TLS_CODES.has(code)) {
    return new UnreachableError(
      `TLS certificate of ${host} is not trusted (${code}): set VSPHERE_CA_BUNDLE, or VSPHERE_INSECURE_SKIP_VERIFY=true for testing only`,
    );
  }
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT') {
    return new UnreachableError(`request to ${host} timed out (${code})`);
  }
  return new UnreachableError(`cannot reach ${host}: ${code ?? (error instanceof Error ? error.message : 'unknown error')}`);
}
