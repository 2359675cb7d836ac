// virsh's own failure texts (from libvirt 9.0 on the CI peer, NOTES §3) → typed errors.
import t from 'tap';
import { virshError, virshMessage } from '../../../src/hypervisors/libvirt/errors.js';

const cases: [string, string][] = [
  ["error: failed to get domain 'nosuch'\n", 'NotFound'],
  ["error: failed to get domain 'x'\nerror: Domain not found: no domain with matching name 'x'\n", 'NotFound'],
  ["error: Storage volume not found: no storage vol with matching name 'v'\n", 'NotFound'],
  ["error: Domain snapshot not found: no domain snapshot with matching name 's1'\n", 'NotFound'],
  ['error: Timed out during operation: cannot acquire state change lock (held by monitor=remoteDispatchDomainCreate)\n', 'Busy'],
  ['error: internal error: qemu-img: Could not open \'x.qcow2\': Failed to get "write" lock\n', 'Busy'],
  ["error: operation failed: domain 'vm1' already exists with uuid 1234\n", 'Conflict'],
  ['error: Requested operation is not valid: domain is already running\n', 'Conflict'],
  ['error: Requested operation is not valid: Storage volume deletion is supported only on stopped domains\n', 'Conflict'],
  ['error: failed to connect to the hypervisor\nerror: Cannot recv data: Connection reset by peer\n', 'Unreachable'],
  ['error: unsupported configuration: revert to external snapshot not supported yet\n', 'Unsupported'],
  ['error: XML error: invalid memory value\n', 'InvalidSpec'],
];

t.test('virsh errors map to the typed Driver errors', async (t) => {
  for (const [stderr, code] of cases) t.equal(virshError(stderr, 1, 'virsh x').code, code, stderr.trim());
});

t.test('a missing host tool (exit 127) is Unsupported', async (t) => {
  t.equal(virshError('sh: 1: genisoimage: not found\n', 127, 'genisoimage').code, 'Unsupported');
});

t.test('the message is virsh error text, joined, without the error: prefixes', async (t) => {
  t.equal(virshMessage("error: failed to get domain 'x'\nerror: Domain not found\n"), "failed to get domain 'x': Domain not found");
  t.match(virshError("error: failed to get domain 'x'\n", 1, 'virsh dominfo').message, /^virsh dominfo: failed to get domain 'x'$/);
});
