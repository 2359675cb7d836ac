// Host tasks and domain listings as the driver reads them back: what the host scripts print →
// TaskStatus, and "cannot read a domain" never read as "no such VM".
import t from 'tap';
import { isTaskId, parseTaskStatus, taskScript } from '../../../src/hypervisors/libvirt/tasks.js';
import { ownerDomain, parseDomainList } from '../../../src/hypervisors/libvirt/observe.js';

const ID = 'libvirt-delete-0f1e2d3c-4b5a-4968-8776-655443322110';

t.test('a task reads as running, succeeded, or failed with virsh classified', async (t) => {
  t.same(parseTaskStatus(ID, 'running\n'), { state: 'running' });
  t.same(parseTaskStatus(ID, 'done 0\n'), { state: 'succeeded' });
  t.same(parseTaskStatus(ID, "done 1\nerror: Failed to delete vol v\nerror: Requested operation is not valid: volume 'v' is still being allocated.\n"), {
    state: 'failed',
    error: "delete: Failed to delete vol v: Requested operation is not valid: volume 'v' is still being allocated.",
    errorCode: 'Busy',
  });
  t.match(parseTaskStatus(ID, 'done 1\nerror: internal error: process exited while connecting to monitor\n'), { state: 'failed', errorCode: 'HypervisorError' });
});

t.test('a leased task reads with the progress its runtime last reported, and fails with the class the runtime gave', async (t) => {
  const EXPORT = ID.replace('delete', 'export');
  t.same(parseTaskStatus(EXPORT, 'running\n42\n'), { state: 'running', progress: 42 });
  t.same(parseTaskStatus(EXPORT, 'running\n'), { state: 'running' }, 'no renewal yet');
  t.same(parseTaskStatus(EXPORT, 'done 1\nerror: disk file /m/x does not match its checksum\nvirtrigaud-error-code Conflict\n'), {
    state: 'failed',
    error: 'export: disk file /m/x does not match its checksum',
    errorCode: 'Conflict',
  });
  t.match(parseTaskStatus(EXPORT, 'done 1\nerror: x\nvirtrigaud-error-code Bogus\n'), { errorCode: 'HypervisorError' }, 'an unknown class is not trusted');
});

t.test('a task whose process vanished without an exit status has failed, retryably', async (t) => {
  t.match(parseTaskStatus(ID, 'vanished\n'), { state: 'failed', errorCode: 'HypervisorError', error: /without an exit status/ });
});

t.test('a task failing on a missing object did not make its VM vanish', async (t) => {
  const status = parseTaskStatus(ID.replace('delete', 'create'), "done 1\nerror: failed to get vol '/x.qcow2'\nerror: Storage volume not found: no storage vol with matching path '/x.qcow2'\n");
  t.equal(status.errorCode, 'HypervisorError');
});

t.test('only a task the host does not know is NotFound', async (t) => {
  t.throws(() => parseTaskStatus(ID, 'missing\n'), { code: 'NotFound' });
  t.throws(() => parseTaskStatus(ID, 'garbage\n'), { code: 'HypervisorError' });
  t.equal(isTaskId(ID), true);
  t.equal(isTaskId('libvirt-delete-../../etc'), false, 'an ID is never a path');
  t.equal(isTaskId('UPID:pve1:0001'), false);
});

t.test('every step of a task is one quoted command line', async (t) => {
  const script = taskScript([['virsh', '-q', 'vol-delete', "it's; rm -rf /"], ['vr_stdin', "<volume><name>a'b</name></volume>", 'virsh', 'vol-create']]);
  const steps = script.slice(script.lastIndexOf('}\n') + 2).trim().split('\n').slice(-2);
  t.same(steps, [`'virsh' '-q' 'vol-delete' 'it'\\''s; rm -rf /'`, `'vr_stdin' '<volume><name>a'\\''b</name></volume>' 'virsh' 'vol-create'`]);
});

const A = '0a0a0a0a-0000-4000-8000-00000000000a';
const B = '0b0b0b0b-0000-4000-8000-00000000000b';
const ours = (uid: string) => `<vm>\n  <owner uid="${uid}" namespace="n" name="m"/>\n</vm>\n`;

t.test('a listing finds the owner, skips foreign domains and names unreadable ones', async (t) => {
  const listing = `\n#virtrigaud-domain ${A}\n${ours('u1')}\n#virtrigaud-domain ${B}\n`;
  const domains = parseDomainList(listing);
  t.same(domains.map((domain) => [domain.uuid, domain.metadata?.owner.uid]), [[A, 'u1'], [B, undefined]]);
  t.equal(ownerDomain(domains, 'u1'), A);
  t.equal(ownerDomain(domains, 'u2'), undefined, 'every domain read: the VM does not exist');
});

t.test('a domain whose metadata cannot be read makes a miss "cannot see", not "does not exist"', async (t) => {
  const listing = `\n#virtrigaud-domain ${A}\n${ours('u1')}\n#virtrigaud-domain ${B}\n#virtrigaud-unreadable error: internal error: cannot parse metadata\n`;
  const domains = parseDomainList(listing);
  t.equal(ownerDomain(domains, 'u1'), A, 'a readable match still answers');
  t.throws(() => ownerDomain(domains, 'u2'), { code: 'Unreachable', message: new RegExp(B) });
  const garbled = parseDomainList(`\n#virtrigaud-domain ${A}\n<vm><owner/></vm>\n`);
  t.throws(() => ownerDomain(garbled, 'u1'), { code: 'Unreachable' }, 'our element without an owner is unreadable');
});
