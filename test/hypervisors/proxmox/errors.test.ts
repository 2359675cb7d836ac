import t from 'tap';
import type { DriverErrorCode } from '../../../src/contracts/driver.js';
import { ProxmoxClient } from '../../../src/hypervisors/proxmox/client.js';
import { classifyFailure, errorFromResponse } from '../../../src/hypervisors/proxmox/errors.js';
import { recorded, startStub, stubConfig } from './pve-stub.js';

// Status, reason phrase and body as PVE sends them (recorded/index.json gives the status of each).
const cases: { name: string; status: number; reason: string; body: unknown; code: DriverErrorCode; message: string | RegExp }[] = [
  {
    name: 'a 400 with parameter errors is InvalidSpec naming each parameter',
    status: 400,
    reason: 'Parameter verification failed.',
    body: recorded('error.400.param-verification'),
    code: 'InvalidSpec',
    message: /^parameter verification failed: .*net0: invalid format - format error; net0\.tag: value must have a minimum value of 1.*foo: property is not defined/,
  },
  {
    name: 'a 400 "already exists" from an old server without a message is a Conflict',
    status: 400,
    reason: 'Parameter verification failed.',
    body: recorded('error.400.param-verification.pre-8.4'),
    code: 'Conflict',
    message: 'vmid: VM 200 already exists',
  },
  { name: 'a 403 is Unauthorized', status: 403, reason: 'Permission check failed (/vms/120, VM.PowerMgmt)', body: recorded('error.403.permission'), code: 'Unauthorized', message: 'Permission check failed (/vms/120, VM.PowerMgmt)' },
  { name: 'a 401 is Unauthorized', status: 401, reason: 'No ticket', body: '', code: 'Unauthorized', message: 'authentication failed: No ticket' },
  { name: "a 500 \"can't lock file\" is Busy", status: 500, reason: "can't lock file '/var/lock/qemu-server/lock-120.conf' - got timeout", body: recorded('error.500.lock-timeout'), code: 'Busy', message: "can't lock file '/var/lock/qemu-server/lock-120.conf' - got timeout" },
  { name: 'a 500 "VM is locked" is Busy', status: 500, reason: 'VM is locked (clone)', body: recorded('error.500.vm-locked'), code: 'Busy', message: 'VM is locked (clone)' },
  { name: 'a 500 "Configuration file … does not exist" is NotFound', status: 500, reason: "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist", body: recorded('error.500.vm-not-found'), code: 'NotFound', message: "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist" },
  { name: 'an unrecognised 500 is a retryable HypervisorError with PVE\'s message', status: 500, reason: 'QEMU guest agent is not running', body: recorded('error.500.agent-not-running'), code: 'HypervisorError', message: 'QEMU guest agent is not running' },
  { name: 'a 500 "already exists" is a Conflict', status: 500, reason: 'unable to create VM 150: config file already exists', body: { data: null }, code: 'Conflict', message: 'unable to create VM 150: config file already exists' },
  { name: 'a 501 is Unsupported', status: 501, reason: "Method 'GET /nodes/pve1/qemu/120/nonexistent' not implemented", body: recorded('error.501.no-such-method'), code: 'Unsupported', message: "Method 'GET /nodes/pve1/qemu/120/nonexistent' not implemented" },
  { name: 'a 595 from pveproxy is Unreachable', status: 595, reason: 'Connection refused', body: '', code: 'Unreachable', message: 'node unreachable: Connection refused' },
  { name: 'a 596 from pveproxy is Unreachable', status: 596, reason: 'Connection timed out', body: '', code: 'Unreachable', message: 'node unreachable: Connection timed out' },
  { name: 'an old server without a body message is read from the reason phrase', status: 500, reason: 'VM is locked (backup)', body: { data: null }, code: 'Busy', message: 'VM is locked (backup)' },
];

for (const example of cases) {
  t.test(example.name, async (t) => {
    const server = await startStub(() => ({ status: example.status, reason: example.reason, body: example.body }));
    t.teardown(server.close);
    const client = new ProxmoxClient(stubConfig(server));
    t.teardown(() => client.close());
    const error = await client.post('/nodes/pve1/qemu/120/config', { cores: 2 }).catch((caught: unknown) => caught);
    t.match(error, { code: example.code });
    if (typeof example.message === 'string') t.equal((error as Error).message, example.message);
    else t.match((error as Error).message, example.message);
    t.notMatch((error as Error).message, /\n$/, 'no trailing newline');
    t.notMatch((error as Error).message, /secret-token/);
  });
}

t.test('a verification error never echoes an sshkeys or cipassword value', async (t) => {
  const error = errorFromResponse(400, 'Parameter verification failed.', {
    data: null,
    errors: { sshkeys: 'invalid format - invalid urlencoded string: ssh-ed25519 AAAA secret@host\n', cipassword: 'value too long: hunter2\n' },
  });
  t.equal(error.message, 'parameter verification failed: sshkeys: invalid format - invalid urlencoded string, cipassword: value too long');
});

t.test('an unknown task UPID is NotFound', async (t) => {
  t.match(errorFromResponse(400, 'Parameter verification failed.', { data: null, errors: { upid: 'no such task\n' } }), { code: 'NotFound' });
});

// HTTP 500 texts as PVE dies with them (source in each comment): transient trouble of the cluster is
// retried, only a request that names a bad parameter or can never succeed is the user's to fix.
const failures: { text: string; code: DriverErrorCode; source: string }[] = [
  { text: 'cluster not ready - no quorum?', code: 'HypervisorError', source: 'pve-cluster Cluster.pm check_cfs_quorum' },
  { text: "cfs-lock 'file-replication_cfg' error: got lock request timeout", code: 'Busy', source: 'pve-cluster cfs_lock' },
  { text: "cfs-lock 'storage-local-lvm' error: no quorum!", code: 'Busy', source: 'pve-cluster cfs_lock' },
  { text: "'storage-ceph'-locked command timed out - aborting", code: 'Busy', source: 'pve-cluster cfs_lock' },
  { text: "storage 'ceph' is not online", code: 'HypervisorError', source: 'pve-storage activate_storage' },
  { text: 'got timeout', code: 'Busy', source: 'pve-common lock_file_full, QMP' },
  { text: "can't lock file '/var/lock/qemu-server/lock-120.conf' - got timeout", code: 'Busy', source: 'pve-common lock_file_full' },
  { text: 'VM is locked (backup)', code: 'Busy', source: 'pve-guest-common check_lock' },
  { text: 'detected modified configuration - file changed by other user? Try again.', code: 'Busy', source: 'pve-common assert_if_modified' },
  { text: 'checksum mismatch (file change by other user?)', code: 'Busy', source: 'qemu-server resize_vm' },
  { text: 'VM quit/powerdown failed - got timeout', code: 'Busy', source: 'qemu-server vm_stop (qmshutdown)' },
  { text: "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist", code: 'NotFound', source: 'pve-guest-common load_config' },
  { text: "unable to find configuration file for VM 999 on node 'pve1'", code: 'NotFound', source: 'qemu-server check_running' },
  { text: 'VM 120 is running - destroy failed', code: 'Conflict', source: 'qemu-server destroy_vm API' },
  { text: "can't remove VM 120 - protection mode enabled", code: 'Conflict', source: 'pve-guest-common check_protection' },
  { text: "parameter 'storage' not allowed for linked clones", code: 'InvalidSpec', source: 'qemu-server clone_vm' },
  { text: "Linked clone feature is not supported for 'local:9000/base-9000-disk-0.raw' (scsi0)", code: 'InvalidSpec', source: 'qemu-server clone_vm' },
  { text: "can't clone VM to node 'pve2' (VM uses local storage)", code: 'InvalidSpec', source: 'qemu-server clone_vm' },
  { text: "storage 'fast' does not exist", code: 'InvalidSpec', source: 'pve-storage storage_config' },
  { text: 'shrinking disks is not supported', code: 'InvalidSpec', source: 'qemu-server resize_vm' },
  { text: 'QEMU guest agent is not running', code: 'HypervisorError', source: 'qemu-server agent (unclassified)' },
  { text: 'unable to create VM 150 - lvcreate: Insufficient free space', code: 'HypervisorError', source: 'pve-storage (unclassified)' },
];

for (const failure of failures) {
  t.test(`HTTP 500 "${failure.text}" is ${failure.code} (${failure.source})`, async (t) => {
    const error = errorFromResponse(500, failure.text, { data: null, message: `${failure.text}\n` });
    t.equal(error.code, failure.code);
    t.equal(error.retryable, failure.code !== 'InvalidSpec' && failure.code !== 'NotFound');
    t.equal(error.message, failure.text);
  });
}

t.test('task failures are classified by their exit status; an unknown one is a HypervisorError', async (t) => {
  t.equal(classifyFailure('VM is locked (clone)'), 'Busy');
  t.equal(classifyFailure("can't lock file '/var/lock/qemu-server/lock-122.conf' - got timeout"), 'Busy');
  t.equal(classifyFailure('start failed: QEMU exited with code 1'), 'HypervisorError');
  t.equal(classifyFailure('unexpected status'), 'HypervisorError');
  t.equal(classifyFailure("clone failed: cfs-lock 'storage-ceph' error: got lock request timeout"), 'Busy');
  t.equal(classifyFailure("clone failed: storage 'ceph' is not online"), 'HypervisorError');
  t.equal(classifyFailure("bridge 'vmbr9' does not exist"), 'InvalidSpec');
  t.equal(classifyFailure("snapshot 'before' does not exist"), 'NotFound');
  t.equal(classifyFailure("storage 'local-lvm' does not exist"), 'InvalidSpec', 'a missing storage is the spec\'s, not a missing VM');
});

t.test('a 400 without per-parameter errors and any other 4xx are InvalidSpec', async (t) => {
  t.match(errorFromResponse(400, 'bad request', { data: null }), { code: 'InvalidSpec' });
  t.match(errorFromResponse(413, 'Request Entity Too Large', undefined), { code: 'InvalidSpec' });
});
