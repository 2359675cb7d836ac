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

// The table names only faults whose meaning is known; anything else (SystemError, RuntimeFault,
// Timedout, CannotAccessFile, HostConnectFault, a fault of a newer API…) is HypervisorError:
// retried with back-off, never reported as the user's mistake (issue 21 item 12).
//
// Conflict means one thing to the hooks: the object exists and is not ours, or a name is taken.
// Faults about a state that forbids the call *now* (a task running on the VM, a power state that a
// pending operation is about to change, Tools not running yet) are Busy: the same call can succeed
// later (issue 21 item 13).
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
  InvalidState: 'Busy',
  InvalidPowerState: 'Busy',
  InvalidHostState: 'Busy',
  ToolsUnavailable: 'Busy',
  DuplicateName: 'Conflict',
  FileAlreadyExists: 'Conflict',
  AlreadyExists: 'Conflict',
  MethodNotFound: 'Unsupported',
  NotSupported: 'Unsupported',
  NotImplemented: 'Unsupported',
  HostNotConnected: 'Unreachable',
  HostCommunication: 'Unreachable',
  RequestCanceled: 'Unreachable',
  // The request itself is wrong: an argument, a name, a path, a device or config the server refuses.
  InvalidArgument: 'InvalidSpec',
  InvalidName: 'InvalidSpec',
  InvalidDatastorePath: 'InvalidSpec',
  InvalidProperty: 'InvalidSpec',
  InvalidVmConfig: 'InvalidSpec',
  VmConfigFault: 'InvalidSpec',
  InvalidDeviceSpec: 'InvalidSpec',
  InvalidDeviceBacking: 'InvalidSpec',
  InvalidController: 'InvalidSpec',
  MissingController: 'InvalidSpec',
  DeviceUnsupportedForVmVersion: 'InvalidSpec',
  InvalidDiskFormat: 'InvalidSpec',
  NotFound: 'InvalidSpec',
  // "No capacity" is InvalidSpec by the Driver contract: the request as asked does not fit.
  InsufficientResourcesFault: 'InvalidSpec',
  NoDiskSpace: 'InvalidSpec',
};

/** The typed class of a vim25 fault type name; HypervisorError for a fault outside the table. */
export function codeOfFault(faultType: string | undefined): DriverErrorCode {
  if (faultType === undefined) return 'HypervisorError';
  return CODES[faultType] ?? 'HypervisorError';
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

// The fault type behind a Driver error, for the driver's own decisions (a guest without Tools);
// the hooks branch on the class only.
const FAULT_TYPES = new WeakMap<object, string>();

export function errorFromFault(fault: VimFault, context?: string): DriverError {
  const error = driverErrorOf(codeOfFault(fault.type), context === undefined ? fault.message : `${context}: ${fault.message}`);
  if (fault.type !== undefined) FAULT_TYPES.set(error, fault.type);
  return error;
}

/** The vim25 fault type a Driver error was made from, if it was made from one. */
export function faultTypeOf(error: unknown): string | undefined {
  return typeof error === 'object' && error !== null ? FAULT_TYPES.get(error) : undefined;
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
