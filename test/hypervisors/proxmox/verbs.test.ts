import t from 'tap';
import type { VMRef } from '../../../src/contracts/driver.js';
import { GiB, MiB } from '../../../src/contracts/quantity.js';
import { snapshotName } from '../../../src/hypervisors/proxmox/snapshots.js';
import { OWNER, TEMPLATE, miniPve, ownedVM } from './mini-pve.js';
import { pveError, recorded, recordedData } from './pve-stub.js';

const REF: VMRef = { id: '120', owner: OWNER };
const RUNNING = { status: { status: 'running', qmpstatus: 'running' } };

t.test('every change to a VM without our marker is refused with Conflict and sends nothing', async (t) => {
  const foreign = { vmid: 101, node: 'pve1', name: 'test-qemu', config: recordedData('qemu-config.vm-cloudinit.pve6') as Record<string, unknown>, status: { status: 'running' } };
  const { driver, stub } = await miniPve(t, [foreign]);
  const ref = { id: '101', owner: OWNER };
  for (const call of [
    () => driver.delete(ref),
    () => driver.power(ref, 'off'),
    () => driver.reconfigure(ref, { cpus: 8 }),
    () => driver.resizeDisk(ref, 'root', 100 * GiB),
    () => driver.snapshotCreate(ref, { name: 'x', memory: false, quiesce: false }),
    () => driver.snapshotRevert(ref, 'x'),
    () => driver.clone(ref, { name: 'copy', owner: OWNER, linked: false }),
  ]) {
    await t.rejects(call(), { code: 'Conflict', message: 'VM 101 is not owned by apps/web' });
  }
  t.equal(stub.requests.filter((request) => request.method !== 'GET').length, 0);
});

t.test("a VM of another owner is not ours either", async (t) => {
  const { driver } = await miniPve(t, [ownedVM(120)]);
  await t.rejects(driver.power({ id: '120', owner: { uid: 'someone-else', namespace: 'apps', name: 'web' } }, 'on'), { code: 'Conflict' });
});

t.test('a locked VM is Busy', async (t) => {
  const { driver } = await miniPve(t, [ownedVM(120, { lock: 'backup' })]);
  await t.rejects(driver.power(REF, 'on'), { code: 'Busy', message: 'VM 120 is locked (backup)' });
  await t.rejects(driver.delete(REF), { code: 'Busy' });
});

t.test('power on starts a stopped VM and returns the task; a running VM needs nothing', async (t) => {
  const { driver, stub, vms } = await miniPve(t, [ownedVM(120)]);
  const { task } = await driver.power(REF, 'on');
  t.match(task, /:qmstart:120:/);
  t.equal(stub.calls('POST', '/nodes/pve1/qemu/120/status/start').length, 1);
  const vm = vms.get(120);
  if (vm) vm.status = RUNNING.status;
  t.same(await driver.power(REF, 'on'), {});
});

t.test('power off is a hard stop that overrules a running guest shutdown', async (t) => {
  const { driver, stub } = await miniPve(t, [ownedVM(120, RUNNING)]);
  const { task } = await driver.power(REF, 'off');
  t.match(task, /:qmstop:120:/);
  t.equal(stub.calls('POST', '/nodes/pve1/qemu/120/status/stop')[0]?.form.get('overrule-shutdown'), '1');
});

t.test('power off falls back to a plain stop on servers without overrule-shutdown', async (t) => {
  const { driver, stub, routes } = await miniPve(t, [ownedVM(120, RUNNING)]);
  routes.set('POST /nodes/pve1/qemu/120/status/stop', (request) =>
    request.form.has('overrule-shutdown')
      ? pveError(400, 'Parameter verification failed.', { 'overrule-shutdown': 'property is not defined in schema and the schema does not allow additional properties' })
      : { data: 'UPID:pve1:0003A46C:01C3B6B8:67F0C230:qmstop:120:root@pam:' },
  );
  t.match((await driver.power(REF, 'off')).task, /qmstop/);
  t.equal(stub.calls('POST', '/nodes/pve1/qemu/120/status/stop').length, 2);
});

t.test('shutdown asks the guest with a timeout and without forceStop', async (t) => {
  const { driver, stub } = await miniPve(t, [ownedVM(120, RUNNING)]);
  await driver.power(REF, 'shutdown');
  const form = stub.calls('POST', '/nodes/pve1/qemu/120/status/shutdown')[0]?.form;
  t.equal(form?.get('timeout'), '300');
  t.equal(form?.get('forceStop'), null);
});

t.test('reboot of a stopped VM is a Conflict', async (t) => {
  const { driver } = await miniPve(t, [ownedVM(120)]);
  await t.rejects(driver.power(REF, 'reboot'), { code: 'Conflict', message: 'VM 120 is not running' });
});

t.test('a paused VM is resumed by power on', async (t) => {
  const { driver, stub } = await miniPve(t, [ownedVM(120, { status: { status: 'running', qmpstatus: 'paused' } })]);
  await driver.power(REF, 'on');
  t.equal(stub.calls('POST', '/nodes/pve1/qemu/120/status/resume').length, 1);
});

t.test('delete stops a running VM first and returns the stop task', async (t) => {
  const { driver, stub } = await miniPve(t, [ownedVM(120, RUNNING)]);
  t.match((await driver.delete(REF)).task, /:qmstop:120:/);
  t.equal(stub.calls('DELETE', '/nodes/pve1/qemu/120').length, 0);
});

t.test('delete destroys a stopped VM with purge and its unreferenced disks', async (t) => {
  const { driver, stub } = await miniPve(t, [ownedVM(120)]);
  t.match((await driver.delete(REF)).task, /:qmdestroy:120:/);
  t.equal(stub.calls('DELETE', '/nodes/pve1/qemu/120')[0]?.query.toString(), 'purge=1&destroy-unreferenced-disks=1');
});

t.test('delete of a hibernated VM destroys it as it is on PVE 7.4 and later', async (t) => {
  const { driver, stub } = await miniPve(t, [ownedVM(120, { lock: 'suspended' })]);
  t.match((await driver.delete(REF)).task, /:qmdestroy:120:/);
  t.equal(stub.calls('POST', /\/status\//).length, 0);
  t.notOk(stub.calls('DELETE', '/nodes/pve1/qemu/120')[0]?.query.has('skiplock'));
});

t.test('delete of a hibernated VM on PVE 7.2, whose destroy refuses the lock, resumes it first; stop and destroy follow', async (t) => {
  const { driver, stub, routes, vms } = await miniPve(t, [ownedVM(120, { lock: 'suspended' })]);
  routes.set('GET /version', { data: { version: '7.2-3', release: '7.2', repoid: 'c743d6c1' } });
  t.match((await driver.delete(REF)).task, /:qmstart:120:/, 'resumed: the only way to drop the lock without root');
  const vm = vms.get(120);
  if (vm) {
    delete vm.lock;
    vm.status = RUNNING.status;
  }
  t.match((await driver.delete(REF)).task, /:qmstop:120:/);
  if (vm) vm.status = { status: 'stopped' };
  t.match((await driver.delete(REF)).task, /:qmdestroy:120:/);
  t.equal(stub.calls('GET', '/version').length, 1, 'the version is asked once');
});

t.test('delete of a VM that is gone is NotFound', async (t) => {
  const { driver } = await miniPve(t, []);
  await t.rejects(driver.delete(REF), { code: 'NotFound' });
});

t.test('reconfigure posts cores and memory in MiB and returns the config task', async (t) => {
  const { driver, stub } = await miniPve(t, [ownedVM(120)]);
  const { task } = await driver.reconfigure(REF, { cpus: 4, memoryBytes: 8 * GiB });
  t.match(task, /:qmconfig:120:/);
  const form = stub.calls('POST', '/nodes/pve1/qemu/120/config')[0]?.form;
  t.equal(form?.get('cores'), '4');
  t.equal(form?.get('memory'), '8192');
});

t.test('reconfigure with CPU hot-plug changes vcpus within cores×sockets', async (t) => {
  const vm = ownedVM(120, RUNNING);
  vm.config = { ...vm.config, cores: 16, vcpus: 2, hotplug: 'network,disk,usb,cpu', numa: 1 };
  const { driver, stub } = await miniPve(t, [vm]);
  await driver.reconfigure(REF, { cpus: 6 });
  const form = stub.calls('POST', '/nodes/pve1/qemu/120/config')[0]?.form;
  t.equal(form?.get('vcpus'), '6');
  t.equal(form?.get('cores'), null);
});

t.test('reconfigure to the current values sends nothing', async (t) => {
  const { driver, stub } = await miniPve(t, [ownedVM(120)]);
  t.same(await driver.reconfigure(REF, { cpus: 2, memoryBytes: 4096 * MiB }), {});
  t.equal(stub.calls('POST', '/nodes/pve1/qemu/120/config').length, 0);
});

t.test('reconfigure sends nothing when the values asked for are already pending', async (t) => {
  const vm = ownedVM(120, {
    ...RUNNING,
    pending: [
      { key: 'cores', value: 2, pending: 4 },
      { key: 'memory', value: '4096', pending: '8192' },
      { key: 'sockets', value: 1 },
    ],
  });
  const { driver, stub } = await miniPve(t, [vm]);
  t.same(await driver.reconfigure(REF, { cpus: 4, memoryBytes: 8 * GiB }), {});
  t.equal(stub.calls('GET', '/nodes/pve1/qemu/120/pending').length, 1);
  t.equal(stub.calls('POST', '/nodes/pve1/qemu/120/config').length, 0);
  await driver.reconfigure(REF, { cpus: 6 });
  t.equal(stub.calls('POST', '/nodes/pve1/qemu/120/config')[0]?.form.get('cores'), '6', 'a different value is sent');
});

t.test('resizeDisk rounds a size that is not a whole MiB up to one', async (t) => {
  const { driver, stub } = await miniPve(t, [ownedVM(120)]);
  await driver.resizeDisk(REF, 'root', 22 * GiB + 1);
  t.equal(stub.calls('PUT', '/nodes/pve1/qemu/120/resize')[0]?.body, 'disk=scsi0&size=22529M');
});

t.test('resizeDisk grows to an absolute size', async (t) => {
  const { driver, stub } = await miniPve(t, [ownedVM(120)]);
  t.match((await driver.resizeDisk(REF, 'root', 22 * GiB)).task, /:resize:120:/);
  t.equal(stub.calls('PUT', '/nodes/pve1/qemu/120/resize')[0]?.body, 'disk=scsi0&size=22G');
});

t.test('resizeDisk never shrinks and never sends a smaller size', async (t) => {
  const { driver, stub } = await miniPve(t, [ownedVM(120)]);
  await t.rejects(driver.resizeDisk(REF, 'root', 10 * GiB), { code: 'InvalidSpec', message: 'disk root cannot shrink from 20Gi to 10Gi' });
  t.same(await driver.resizeDisk(REF, 'root', 20 * GiB), {});
  await t.rejects(driver.resizeDisk(REF, 'data', 30 * GiB), { code: 'InvalidSpec', message: "VM 120 has no disk 'data'" });
  t.equal(stub.calls('PUT', /resize/).length, 0);
});

t.test('resizeDisk on PVE 7 finishes within the call (no task)', async (t) => {
  const { driver, routes } = await miniPve(t, [ownedVM(120)]);
  routes.set('PUT /nodes/pve1/qemu/120/resize', { body: recorded('qemu-resize.null.pve7') });
  t.same(await driver.resizeDisk(REF, 'root', 30 * GiB), {});
});

t.test('snapshot names are sanitized to what PVE accepts', async (t) => {
  t.equal(snapshotName('before-upgrade'), 'before-upgrade');
  t.equal(snapshotName('Before Upgrade.2024'), 'before-upgrade-2024');
  t.equal(snapshotName('2024-01-01'), 's-2024-01-01');
  t.equal(snapshotName('current'), 'current-snapshot');
  t.equal(snapshotName('x'.repeat(60)).length, 40);
  for (const name of ['a', '_', 'Ü']) t.match(snapshotName(name), /^[a-z][a-z0-9_-]{1,39}$/, name);
});

t.test('a memory snapshot of a running VM saves its state; of a stopped VM only the disks', async (t) => {
  const { driver, stub, vms } = await miniPve(t, [ownedVM(120, RUNNING)]);
  const lastSnapshot = (): URLSearchParams | undefined => stub.calls('POST', '/nodes/pve1/qemu/120/snapshot').at(-1)?.form;
  const created = await driver.snapshotCreate(REF, { name: 'Before Upgrade', description: 'pre-maintenance', memory: true, quiesce: false });
  t.equal(created.id, 'before-upgrade', 'the sanitized name is the ID');
  t.match(created.task, /:qmsnapshot:120:/);
  t.equal(lastSnapshot()?.get('snapname'), 'before-upgrade');
  t.equal(lastSnapshot()?.get('vmstate'), '1');
  t.equal(lastSnapshot()?.get('description'), 'pre-maintenance');
  const vm = vms.get(120);
  if (vm) vm.status = { status: 'stopped' };
  await driver.snapshotCreate(REF, { name: 'cold', memory: true, quiesce: false });
  t.equal(lastSnapshot()?.get('vmstate'), null);
});

t.test('a second snapshot of the same name is a Conflict', async (t) => {
  const { driver, routes } = await miniPve(t, [ownedVM(120)]);
  routes.set('POST /nodes/pve1/qemu/120/snapshot', pveError(500, "snapshot name 'before' already used"));
  await t.rejects(driver.snapshotCreate(REF, { name: 'before', memory: false, quiesce: false }), { code: 'Conflict' });
});

t.test('a quiesced snapshot of a running VM whose agent PVE finds not running is Unsupported, and nothing is taken', async (t) => {
  const { driver, stub, routes } = await miniPve(t, [ownedVM(120, RUNNING)]);
  routes.set('POST /nodes/pve1/qemu/120/agent/ping', pveError(500, 'QEMU guest agent is not running'));
  await t.rejects(driver.snapshotCreate(REF, { name: 'q', memory: false, quiesce: true }), { code: 'Unsupported', message: 'VM 120 cannot be snapshotted quiesced: its guest agent does not answer (QEMU guest agent is not running)' });
  t.equal(stub.calls('POST', /\/snapshot$/).length, 0);
});

t.test('the snapshot list leaves out the "current" pseudo-entry and dates from snaptime', async (t) => {
  const { driver, routes } = await miniPve(t, [ownedVM(120)]);
  routes.set('GET /nodes/pve1/qemu/120/snapshot', { body: recorded('qemu-snapshot-list') });
  const list = await driver.snapshotList(REF);
  t.equal(list.length, 7);
  t.notOk(list.some((snapshot) => snapshot.name === 'current'));
  t.same(list[0], { id: 'machine_version_5_1', name: 'machine_version_5_1', createdAt: new Date(1736939109 * 1000).toISOString(), memory: false });
});

t.test('revert of a disk-only snapshot restarts a running VM; a missing snapshot is NotFound', async (t) => {
  const { driver, stub, routes } = await miniPve(t, [ownedVM(120, RUNNING)]);
  routes.set('GET /nodes/pve1/qemu/120/snapshot', { body: recorded('qemu-snapshot-list') });
  routes.set('POST /nodes/pve1/qemu/120/snapshot/static-network/rollback', { body: recorded('qemu-snapshot-rollback.upid') });
  t.match((await driver.snapshotRevert(REF, 'static-network')).task, /qmrollback/);
  t.equal(stub.calls('POST', '/nodes/pve1/qemu/120/snapshot/static-network/rollback')[0]?.form.get('start'), '1');
  await t.rejects(driver.snapshotRevert(REF, 'nope'), { code: 'NotFound' });
});

t.test('snapshot delete of a missing snapshot is NotFound', async (t) => {
  const { driver, routes } = await miniPve(t, [ownedVM(120)]);
  routes.set('DELETE /nodes/pve1/qemu/120/snapshot/gone', pveError(500, "snapshot 'gone' does not exist"));
  await t.rejects(driver.snapshotDelete(REF, 'gone'), { code: 'NotFound' });
});

t.test('clone copies an owned VM under a placeholder name, with a fresh marker for the new owner', async (t) => {
  const { driver, stub } = await miniPve(t, [ownedVM(120)]);
  const target = { uid: 'clone-owner-uid', namespace: 'apps', name: 'copy' };
  const { id, task } = await driver.clone(REF, { name: 'copy', owner: target, linked: false });
  t.equal(id, '100');
  t.match(task, /qmclone/);
  const form = stub.calls('POST', '/nodes/pve1/qemu/120/clone')[0]?.form;
  t.equal(form?.get('name'), 'vr-clone-owner-uid');
  t.equal(form?.get('full'), '1');
  t.match(form?.get('description'), /"uid":"clone-owner-uid".*"state":"configuring"/);
  await t.rejects(driver.clone(REF, { name: 'copy', owner: target, linked: true }), { code: 'InvalidSpec', message: /linked clones only of templates/ });
});

t.test('task status: running, OK, WARNINGS and failures with the log tail', async (t) => {
  const { driver, routes, stub } = await miniPve(t, []);
  const ok = (recordedData('task-status.ok') as { upid: string }).upid;
  const failed = (recordedData('task-status.error') as { upid: string }).upid;
  const warned = (recordedData('task-status.warnings') as { upid: string }).upid;
  routes.set(`GET /nodes/pve1/tasks/${ok}/status`, { body: recorded('task-status.ok') });
  routes.set(`GET /nodes/pve1/tasks/${warned}/status`, { body: recorded('task-status.warnings') });
  routes.set(`GET /nodes/pve1/tasks/${failed}/status`, { body: recorded('task-status.error') });
  routes.set(`GET /nodes/pve1/tasks/${failed}/log`, {
    body: {
      data: [
        { n: 1, t: 'update VM 122: -cipassword $5$abc -sshkeys ssh-ed25519%20AAAA' },
        { n: 2, t: 'kvm: -drive file=/dev/pve/vm-122-disk-0: Could not open: No such file' },
        { n: 3, t: 'TASK ERROR: start failed: QEMU exited with code 1' },
      ],
      total: 3,
    },
  });
  t.same(await driver.taskStatus(ok), { state: 'succeeded', progress: 100 });
  t.same(await driver.taskStatus(warned), { state: 'succeeded', progress: 100 });
  const status = await driver.taskStatus(failed);
  t.equal(status.state, 'failed');
  t.equal(status.errorCode, 'HypervisorError', 'an exit status no rule knows is retryable');
  t.equal(
    status.error,
    'update VM 122: -cipassword <hidden> -sshkeys <hidden>; kvm: -drive file=/dev/pve/vm-122-disk-0: Could not open: No such file; start failed: QEMU exited with code 1',
  );
  t.ok(stub.requests.some((request) => request.path === `/nodes/pve1/tasks/${ok}/status`), 'asked on the node of the UPID');
});

t.test('the UPID is URL-encoded in the request path', async (t) => {
  const { driver, stub, routes } = await miniPve(t, []);
  const upid = (recordedData('task-status.running') as { upid: string }).upid;
  routes.set(`GET /nodes/pve1/tasks/${upid}/status`, { body: recorded('task-status.running') });
  t.same(await driver.taskStatus(upid), { state: 'running' });
  t.equal(stub.requests[0]?.rawPath, `/api2/json/nodes/pve1/tasks/${encodeURIComponent(upid)}/status`);
  t.match(stub.requests[0]?.rawPath, /UPID%3Apve1%3A.*%3Aroot%40pam%3A\/status$/);
});

t.test('a long task log is read again from its end', async (t) => {
  const { driver, routes, stub } = await miniPve(t, []);
  const upid = (recordedData('task-status.error') as { upid: string }).upid;
  routes.set(`GET /nodes/pve1/tasks/${upid}/status`, { body: recorded('task-status.error') });
  routes.set(`GET /nodes/pve1/tasks/${upid}/log`, (request) => {
    const start = Number(request.query.get('start'));
    const limit = Number(request.query.get('limit'));
    const lines = Array.from({ length: 120 }, (_, index) => ({ n: index + 1, t: index === 119 ? 'TASK ERROR: clone failed: out of space' : `transferred ${index}` }));
    return { body: { data: lines.slice(start, start + limit), total: 120 } };
  });
  const status = await driver.taskStatus(upid);
  t.match(status.error, /transferred 118; clone failed: out of space$/);
  t.equal(stub.requests.filter((request) => request.path.endsWith('/log')).length, 2);
});

t.test('a failed task locked out by another is classified Busy', async (t) => {
  const { driver, routes } = await miniPve(t, []);
  const upid = (recordedData('task-status.locked') as { upid: string }).upid;
  routes.set(`GET /nodes/pve1/tasks/${upid}/status`, { body: recorded('task-status.locked') });
  routes.set(`GET /nodes/pve1/tasks/${upid}/log`, { body: { data: [{ n: 1, t: 'TASK ERROR: VM is locked (clone)' }], total: 1 } });
  t.same(await driver.taskStatus(upid), { state: 'failed', error: 'VM is locked (clone)', errorCode: 'Busy' });
});

t.test('an unknown or malformed UPID is NotFound', async (t) => {
  const { driver, routes } = await miniPve(t, []);
  const upid = 'UPID:pve1:0003A2F1:01C3B2A4:67F0C1A0:qmclone:9000:root@pam:';
  routes.set(`GET /nodes/pve1/tasks/${upid}/status`, pveError(400, 'Parameter verification failed.', { upid: 'no such task' }));
  await t.rejects(driver.taskStatus(upid), { code: 'NotFound' });
  await t.rejects(driver.taskStatus('sim-task-1'), { code: 'NotFound' });
});

t.test('probe answers the PVE version', async (t) => {
  const { driver } = await miniPve(t, []);
  t.same(await driver.probe(), { version: '9.1.9' });
});

t.test('inventory sums VMs per node, storages per ID, and lists bridges', async (t) => {
  const { driver } = await miniPve(t, [TEMPLATE, ownedVM(120), ownedVM(121, { node: 'pve2' })]);
  const inventory = await driver.inventory();
  t.same(inventory.hosts.map((host) => [host.name, host.vms, host.cpusAllocated, host.memoryAllocatedBytes]), [
    ['pve1', 1, 2, 4 * GiB],
    ['pve2', 1, 2, 4 * GiB],
  ]);
  t.same(inventory.datastores, [
    { name: 'ceph', capacityBytes: 1000 * GiB, usedBytes: 100 * GiB },
    { name: 'local-lvm', capacityBytes: 200 * GiB, usedBytes: 20 * GiB },
  ]);
  t.same(inventory.networks, ['vmbr0', 'vmbr1', 'vmbr2']);
});

t.test('inventory from a recorded PVE 8 cluster list', async (t) => {
  const { driver, routes } = await miniPve(t, []);
  routes.set('GET /cluster/resources', { body: recorded('cluster-resources.pve8') });
  const inventory = await driver.inventory();
  t.same(inventory.hosts.map((host) => host.name), ['node1', 'node2', 'node3', 'node4']);
  t.same(inventory.datastores.map((datastore) => datastore.name), ['local-zfs']);
});

t.test('the driver says honestly what PVE and it can do', async (t) => {
  const { driver } = await miniPve(t, []);
  t.match(driver.capabilities, { thickProvisioning: false, memoryHotRemove: false, imageImport: true, quiescedSnapshots: true, isoInstall: true, cloudInit: true, linkedClones: true, snapshots: true });
});
