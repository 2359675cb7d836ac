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

/**
 * pveproxy answered, but the node owning the path did not (595/596: down, or hanging past the
 * proxy's timeout), or did not answer within the driver's per-node bound. Unlike a transport
 * failure or an aborted call, this says the rest of the cluster is reachable: a lookup may go on
 * without that node when nothing ties what it holds to the caller (observe.ts, inventory.ts).
 */
export class NodeUnreachableError extends UnreachableError {}

/**
 * How PVE's failure texts map to typed errors, first match wins. Only texts naming a parameter or
 * a request that can never succeed as asked are InvalidSpec; everything else that is not a
 * recognised state (Busy, NotFound, Conflict) is retried (HypervisorError), so a cluster without
 * quorum or a storage that is offline for a minute never tells the user their spec is wrong.
 */
const FAILURE_RULES: readonly (readonly [RegExp, DriverErrorCode])[] = [
  // A download whose bytes are not the file asked for (pve-common Tools.pm download_file_from_url):
  // the file changed, or something between PVE and the runtime changed it. Before the resize rule below.
  [/^checksum mismatch: got '[0-9a-f]*' != expect /, 'Conflict'],
  // pve-common lock_file_full (10 s flock), AbstractConfig::check_lock, the digest checks of
  // update_vm_api ("detected modified configuration") and resize_vm ("checksum mismatch"): NOTES §6.
  [/can't lock file|VM is locked|detected modified configuration|checksum mismatch/i, 'Busy'],
  // pve-cluster cfs_lock: "cfs-lock '<id>' error: got lock request timeout" (also "no quorum!"
  // after a lock wait), "'<id>'-locked command timed out - aborting".
  [/cfs-lock '[^']*' error|-locked command timed out/, 'Busy'],
  // Any other wait that ran out: "got timeout" (lock_file, qmshutdown's "VM quit/powerdown
  // failed - got timeout"), QMP "got timeout", "timeout waiting on systemd".
  [/got timeout|timed out|timeout waiting/i, 'Busy'],
  // A missing VM, or a VM asked on the wrong node (NOTES §1; qemu-server check_running says
  // "unable to find configuration file"); a missing snapshot (AbstractConfig); an unknown task.
  [/^Configuration file '[^']*' does not exist|^unable to find configuration file for VM \d+/, 'NotFound'],
  [/^snapshot '[^']*' does not exist|no such task/, 'NotFound'],
  // VMID taken between nextid and create/clone; snapshot name taken ("snapshot name 'x' already used").
  [/already exists|already used/, 'Conflict'],
  // The VM's state forbids the call now: qemu-server destroy ("VM 100 is running - destroy
  // failed"), start, reboot, shutdown of a paused VM, protection mode.
  [/^VM \d+ (is running|already running|not running)|VM is paused|protection mode enabled|cannot clone TPM state while VM is running/, 'Conflict'],
  // The cluster itself is unwell (pve-cluster check_cfs_quorum, pmxcfs down, a storage the
  // node cannot reach: PVE::Storage activate_storage): retried, never the user's fault.
  [/no quorum|cluster not ready|cluster filesystem not online|is not online/i, 'HypervisorError'],
  // Requests that can never succeed as asked, in qemu-server's and pve-storage's words.
  [/^parameter '[^']*' not allowed|invalid format|value does not match the regex pattern|property is not defined in schema|^unable to parse/, 'InvalidSpec'],
  [/^(Linked|Full) clone feature is not supported|can't clone (VM to node|to non-shared storage)|does not support (vm images|content-type|linked clones)/, 'InvalidSpec'],
  [/^(bridge|storage|pool) '[^']*' does not exist|no such cluster node|shrinking disks is not supported|you can't (start a vm if it's a template|convert a|add more vcpus|resize a cdrom|use)/, 'InvalidSpec'],
  [/NUMA needs to be enabled|balloon value too large|invalid bootorder|SSH public key validation error|^no options specified|^disk '[^']*' does not exist/, 'InvalidSpec'],
  // A volume format the storage cannot hold, from the plugin's alloc_image (LVM, LVM-thin, ZFS:
  // "unsupported format 'qcow2' at …"; directory plugins: "unable to parse volume filename"),
  // at create ("unable to create VM <id> - …") or in a configuration task.
  [/unsupported format '[^']*'|unable to parse volume filename/, 'InvalidSpec'],
];

/** The typed error class for a failure text PVE produced (an HTTP 500 message or a task exitstatus). */
export function classifyFailure(message: string): DriverErrorCode {
  for (const [pattern, code] of FAILURE_RULES) if (pattern.test(message)) return code;
  return 'HypervisorError';
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
  // pveproxy could not reach the node that owns the path (NOTES §1): the request never ran.
  if (status === 595 || status === 596) return new NodeUnreachableError(`node unreachable: ${message}`);
  if (status === 502 || status === 503 || status === 504) return new UnreachableError(`node unreachable: ${message}`);
  if (status === 501) return new UnsupportedError(message);
  if (status === 400 && isRow(errors)) {
    const detail = parameterErrors(errors);
    const texts = Object.values(errors).map((value) => str(value) ?? '');
    if (texts.some((text) => /no such task|unable to parse worker upid/.test(text))) return new NotFoundError(`task not found: ${detail}`);
    if (texts.some((text) => /already exists/.test(text))) return new ConflictError(detail);
    return new InvalidSpecError(`parameter verification failed: ${detail}`);
  }
  if (status >= 500 && status !== 500) return new UnreachableError(message);
  const code = classifyFailure(message);
  // Any other 4xx is PVE refusing the request itself (a 400 without per-parameter errors, 413).
  if (code === 'HypervisorError' && status >= 400 && status < 500) return new InvalidSpecError(message);
  return driverErrorOf(code, message);
}

export function errorFromTransport(error: unknown, host: string): DriverError {
  return transportError(error, host, 'set PVE_CA_BUNDLE, or PVE_INSECURE_SKIP_VERIFY=true for testing only');
}
