// What the fake PVE does with the parameters a Machine's create uses, as qemu-server and
// pve-storage do: volume formats a storage cannot hold, a new CD drive next to a new boot order in
// one update, and the destroy of a protected VM. Raw requests, every one through the schema check.

import t, { type Test } from 'tap';
import { request } from 'undici';
import { FakeClock } from '../../helpers/clock.js';
import { FakePve } from './index.js';

const TOKEN = { authorization: 'PVEAPIToken=virtrigaud@pve!vrtg=secret-token' };
const GiB = 1024 ** 3;

async function fakePve(t: Test): Promise<{ fake: FakePve; clock: FakeClock }> {
  const clock = new FakeClock();
  const fake = await FakePve.start({
    clock,
    taskDurationMs: 1000,
    authFailureDelayMs: 0,
    storages: [
      { id: 'local-lvm', type: 'lvmthin', content: ['images', 'rootdir'], capacityBytes: 512 * GiB },
      { id: 'local', type: 'dir', content: ['iso', 'images'], capacityBytes: 100 * GiB },
    ],
  });
  t.teardown(() => fake.close());
  return { fake, clock };
}

async function api(fake: FakePve, method: string, path: string, form?: Record<string, string>): Promise<{ status: number; data: unknown; message?: string }> {
  const res = await request(`${fake.url}/api2/json${path}`, {
    method: method as 'GET',
    headers: { ...TOKEN, ...(form === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' }) },
    ...(form === undefined ? {} : { body: new URLSearchParams(form).toString() }),
  });
  const text = await res.body.text();
  const body = text === '' ? {} : (JSON.parse(text) as { data?: unknown; message?: string });
  return { status: res.statusCode, data: body.data ?? null, ...(body.message === undefined ? {} : { message: body.message }) };
}

async function exitOf(fake: FakePve, clock: FakeClock, upid: unknown): Promise<string> {
  for (let step = 0; step < 100; step += 1) {
    const task = fake.tasks().find((candidate) => candidate.upid === upid);
    if (task?.status === 'stopped') return task.exitstatus ?? '';
    clock.advance(500);
  }
  throw new Error('the task did not stop');
}

t.test('a create asking a format the storage cannot hold fails in its task, as the storage plugin dies, and leaves nothing', async (t) => {
  const { fake, clock } = await fakePve(t);
  const lvm = await api(fake, 'POST', '/nodes/pve1/qemu', { vmid: '300', scsi0: 'local-lvm:1,format=qcow2' });
  t.equal(lvm.status, 200, 'create_and_lock_config answers first');
  t.equal(await exitOf(fake, clock, lvm.data), "unable to create VM 300 - unsupported format 'qcow2'");
  t.equal(fake.vm(300), undefined);
  const dir = await api(fake, 'POST', '/nodes/pve1/qemu', { vmid: '301', virtio0: 'local:2,format=vmdk,cache=writeback' });
  t.equal(await exitOf(fake, clock, dir.data), 'OK');
  t.equal(fake.vm(301)?.config['virtio0'], 'local:301/vm-301-disk-0.vmdk,cache=writeback,size=2G', 'format= is not kept: the file name says it');
  t.equal(fake.volumes('images').filter((volume) => volume.volid.includes('-300-')).length, 0);
});

t.test('a full clone silently takes the storage default for a format the storage cannot hold', async (t) => {
  const { fake, clock } = await fakePve(t);
  const clone = await api(fake, 'POST', '/nodes/pve1/qemu/9000/clone', { newid: '310', full: '1', format: 'qcow2' });
  t.equal(await exitOf(fake, clock, clone.data), 'OK');
  t.match(fake.vm(310)?.config['scsi0'], /^local-lvm:vm-310-disk-0,/, 'raw on LVM-thin (resolve_dst_disk_format)');
  const toDir = await api(fake, 'POST', '/nodes/pve1/qemu/9000/clone', { newid: '311', full: '1', format: 'qcow2', storage: 'local' });
  t.equal(await exitOf(fake, clock, toDir.data), 'OK');
  t.match(fake.vm(311)?.config['scsi0'], /^local:311\/vm-311-disk-0\.qcow2,/);
});

t.test('a new CD drive sent with a new boot order ends up appended to the old order, which replaces the new one', async (t) => {
  const { fake } = await fakePve(t);
  t.equal(fake.vm(9001)?.config['boot'], 'order=virtio0;net0');
  const together = await api(fake, 'PUT', '/nodes/pve1/qemu/9001/config', { boot: 'order=ide0;virtio0', ide0: 'none,media=cdrom' });
  t.equal(together.status, 200);
  t.equal(fake.vm(9001)?.config['boot'], 'order=virtio0;net0;ide0', 'the losing order of update_vm_api\'s hash walk');
  const alone = await api(fake, 'PUT', '/nodes/pve1/qemu/9001/config', { boot: 'order=ide0;virtio0' });
  t.equal(alone.status, 200);
  t.equal(fake.vm(9001)?.config['boot'], 'order=ide0;virtio0', 'sent once the drive exists, the order is kept');
});

t.test('a protected VM is refused by destroy before any task, with qemu-server\'s words', async (t) => {
  const { fake } = await fakePve(t);
  const vmid = fake.addForeignVm({ name: 'guarded', running: true });
  t.equal((await api(fake, 'PUT', `/nodes/pve1/qemu/${vmid}/config`, { protection: '1' })).status, 200);
  t.equal(fake.vm(vmid)?.config['protection'], 1, 'changed on the running VM at once');
  const destroy = await api(fake, 'DELETE', `/nodes/pve1/qemu/${vmid}`);
  t.equal(destroy.status, 500);
  t.equal(destroy.message, `can't remove VM ${vmid} - protection mode enabled\n`);
  t.equal(fake.tasks().filter((task) => task.type === 'qmdestroy').length, 0);
});
