// virsh's own failure texts (libvirt 9.0 on the CI peer, NOTES §3, and the messages the driver's
// host scripts print) → typed errors. What no rule knows is retryable: InvalidSpec only when the
// message says the request itself is wrong.
import t from 'tap';
import { virshError, virshMessage } from '../../../src/hypervisors/libvirt/errors.js';

const cases: [string, string][] = [
  // the object a command names does not exist
  ["error: failed to get domain 'nosuch'\n", 'NotFound'],
  ["error: failed to get domain 'x'\nerror: Domain not found: no domain with matching name 'x'\n", 'NotFound'],
  ["error: failed to get vol 'nosuch'\nerror: Storage volume not found: no storage vol with matching path 'nosuch'\n", 'NotFound'],
  ["error: failed to get pool 'nosuchpool'\nerror: Storage pool not found: no storage pool with matching name 'nosuchpool'\n", 'NotFound'],
  ["error: Domain snapshot not found: no domain snapshot with matching name 'nosnap'\n", 'NotFound'],
  // ... but something it refers to: the domain is there
  ["error: Failed to start domain 'exp-net'\nerror: Network not found: no network with matching name 'nosuchnet'\n", 'InvalidSpec'],
  ["error: Failed to create domain from /dev/stdin\nerror: Cannot access storage file '/nonexistent/x.qcow2': No such file or directory\n", 'HypervisorError'],
  // cannot see: never "gone"
  ['error: failed to connect to the hypervisor\nerror: Cannot recv data: Connection reset by peer\n', 'Unreachable'],
  ['error: failed to connect to the hypervisor\nerror: internal error: Unable to get system bus connection: Could not connect: No such file or directory\n', 'Unreachable'],
  ["error: pool 'exp-pool' is not active\n", 'Unreachable'],
  ["error: Failed to create vol b\nerror: Requested operation is not valid: storage pool 'exp-pool' is not active\n", 'Unreachable'],
  // held by another operation
  ['error: Timed out during operation: cannot acquire state change lock (held by monitor=remoteDispatchDomainCreate)\n', 'Busy'],
  ['error: internal error: qemu-img: Could not open \'x.qcow2\': Failed to get "write" lock\n', 'Busy'],
  ["error: Failed to delete vol virtrigaud-u1-root.qcow2\nerror: Requested operation is not valid: volume 'virtrigaud-u1-root.qcow2' is still being allocated.\n", 'Busy'],
  // the state forbids it now
  ["error: operation failed: domain 'vm1' already exists with uuid 1234\n", 'Conflict'],
  ["error: Failed to create vol tinyvm-base.qcow2\nerror: storage volume 'tinyvm-base.qcow2' exists already\n", 'Conflict'],
  ['error: Requested operation is not valid: domain is already running\n', 'Conflict'],
  ['error: Requested operation is not valid: Storage volume deletion is supported only on stopped domains\n', 'Conflict'],
  ['error: Requested operation is not valid: cannot delete inactive domain with 2 snapshots\n', 'Conflict'],
  // the request itself is wrong
  ['error: XML error: invalid memory value\n', 'InvalidSpec'],
  ['error: Failed to define domain from /dev/stdin\nerror: XML error: No PCI buses available\n', 'InvalidSpec'],
  ["error: Failed to define domain from /dev/stdin\nerror: (domain_definition):2: Couldn't find end of Start Tag domain line 1\n", 'InvalidSpec'],
  ["error: Malformed size 1Z\nerror: invalid argument: unknown suffix 'Z'\n", 'InvalidSpec'],
  ["error: Failed to change size of volume 'v' to 1M\nerror: invalid argument: can't shrink capacity below existing allocation\n", 'InvalidSpec'],
  ['error: image checksum mismatch: expected sha256:00, got sha256:ab\n', 'InvalidSpec'],
  ['error: the root disk (1048576 bytes) cannot be smaller than the image (33554432 bytes)\n', 'InvalidSpec'],
  ['error: the image URL could not be downloaded: curl: (22) The requested URL returned error: 404\n', 'InvalidSpec'],
  ['error: unsupported configuration: revert to external snapshot not supported yet\n', 'Unsupported'],
  ['error: authentication unavailable: no polkit agent available to authenticate action \'org.libvirt.unix.manage\'\n', 'Unauthorized'],
  // nobody has classified these: retried with back-off, never the user's mistake
  ["error: Failed to start domain 'web'\nerror: internal error: process exited while connecting to monitor: qemu-system-x86_64: -blockdev {}: Could not open '/pool/x.qcow2': Permission denied\n", 'HypervisorError'],
  ["error: Failed to start domain 'web'\nerror: internal error: qemu unexpectedly closed the monitor: 2024-01-01T00:00:00.000000Z qemu-system-x86_64: cannot set up guest memory 'pc.ram': Cannot allocate memory\n", 'HypervisorError'],
  ["error: operation failed: guest CPU doesn't match specification: missing features: svm\n", 'HypervisorError'],
  ['error: the image URL could not be downloaded: curl: (6) Could not resolve host: images.example.com\n', 'HypervisorError'],
  ['error: the image URL could not be downloaded: curl: (22) The requested URL returned error: 503\n', 'HypervisorError'],
  ['error: internal error: End of file from qemu monitor\n', 'HypervisorError'],
  ['something nobody has seen\n', 'HypervisorError'],
];

t.test('virsh errors map to the typed Driver errors', async (t) => {
  for (const [stderr, code] of cases) t.equal(virshError(stderr, 1, 'virsh x').code, code, stderr.trim());
});

t.test('an unknown failure is retryable', async (t) => {
  const error = virshError("error: internal error: process exited while connecting to monitor: boom\n", 1, 'virsh start');
  t.equal(error.retryable, true);
  t.equal(error.name, 'HypervisorError');
});

t.test('a missing host tool (exit 127) is Unsupported', async (t) => {
  t.equal(virshError('sh: 1: genisoimage: not found\n', 127, 'genisoimage').code, 'Unsupported');
});

t.test('the message is virsh error text, joined, without the error: prefixes', async (t) => {
  t.equal(virshMessage("error: failed to get domain 'x'\nerror: Domain not found\n"), "failed to get domain 'x': Domain not found");
  t.match(virshError("error: failed to get domain 'x'\n", 1, 'virsh dominfo').message, /^virsh dominfo: failed to get domain 'x'$/);
});
