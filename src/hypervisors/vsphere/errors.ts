// vim25 faults → the Driver's typed errors. A SOAP fault is HTTP 500 with
// `<detail><XxxFault xsi:type="Xxx">` (NOTES "SOAP gotchas"); a failed task carries the same
// fault types in `info.error.fault`. Hooks branch on the class; the message is shown to users, so
// it says what vSphere said and never a credential or a user-data value.

import {
  type DriverError,
  type DriverErrorCode,
  driverErrorOf,
} from '../../contracts/driver.js';
import { transportError } from '../common/transport-errors.js';
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
  return driverErrorOf(codeOfFault(fault.type), context === undefined ? fault.message : `${context}: ${fault.message}`);
}

/** A fault that is not (yet) a Driver error: the client needs the type to decide on re-login. */
export class SoapFault extends Error {
  constructor(readonly fault: VimFault) {
    super(fault.message);
    this.name = 'SoapFault';
  }
}



export function errorFromTransport(error: unknown, host: string): DriverError {
  return transportError(error, host, 'set VSPHERE_CA_BUNDLE, or VSPHERE_INSECURE_SKIP_VERIFY=true for testing only');
}
