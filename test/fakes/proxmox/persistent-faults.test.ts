// The fake PVE's persistent fault modes, on a fake clock: faults that never run out, last a span
// of fake time or until cleared, a node that stays down, a lock that never clears, and hibernated
// VMs as qemu-server keeps them. Every request still goes through the schema check.

import t, { type Test } from 'tap';
import { request } from 'undici';
import { FakeClock } from '../../helpers/clock.js';
import { FakePve } from './index.js';

const TOKEN = { authorization: 'PVEAPIToken=virtrigaud@pve!vrtg=secret-token' };
const HOUR = 60 * 60 * 1000;

interface Answer {
  status: number;
  statusText: string;
  data: unknown;
  message?: string;
}

async function fakePve(t: Test): Promise<{ fake: FakePve; clock: FakeClock }> {
  const clock = new FakeClock();
  const fake = await FakePve.start({ clock, taskDurationMs: 1000, bootMs: 2000, authFailureDelayMs: 0 });
  t.teardown(() => fake.close());
  return { fake, clock };
}

async function api(fake: FakePve, method: string, path: string, form?: Record<string, string>): Promise<Answer> {
  const res = await request(`${fake.url}/api2/json${path}`, {
    method: method as 'GET',
    headers: { ...TOKEN, ...(form === undefined ? {} : { 'content-type': 'application/x-www-form-urlencoded' }) },
    ...(form === undefined ? {} : { body: new URLSearchParams(form).toString() }),
  });
  const text = await res.body.text();
  const body = text === '' ? {} : (JSON.parse(text) as { data?: unknown; message?: string });
  return { status: res.statusCode, statusText: res.statusText ?? '', data: body.data ?? null, ...(body.message === undefined ? {} : { message: body.message }) };
}

/** Runs the fake clock until the task stops; its exit status. */
async function finish(fake: FakePve, clock: FakeClock, upid: unknown): Promise<string> {
  const node = String(upid).split(':')[1] ?? '';
  for (let step = 0; step < 100; step += 1) {
    const status = (await api(fake, 'GET', `/nodes/${node}/tasks/${encodeURIComponent(String(upid))}/status`)).data as Record<string, unknown>;
    if (status['status'] === 'stopped') return String(status['exitstatus']);
    clock.advance(500);
  }
  throw new Error(`task ${String(upid)} did not stop`);
}

t.test("a fault with times: 'always' never runs out", async (t) => {
  const { fake } = await fakePve(t);
  fake.injectFault({ kind: 'status', code: 500, path: /^\/version$/, message: 'cluster not ready - no quorum?', times: 'always' });
  for (let attempt = 0; attempt < 20; attempt += 1) t.equal((await api(fake, 'GET', '/version')).statusText, 'cluster not ready - no quorum?');
});

t.test('a fault with forMs lasts that span of fake time, then ends by itself', async (t) => {
  const { fake, clock } = await fakePve(t);
  fake.injectFault({ kind: 'lockTimeout', path: /\/config$/, forMs: 2 * HOUR });
  for (let elapsed = 0; elapsed < 2 * HOUR; elapsed += 10 * 60_000) {
    t.equal((await api(fake, 'PUT', '/nodes/pve1/qemu/9000/config', { description: 'x' })).status, 500);
    clock.advance(10 * 60_000);
  }
  t.equal((await api(fake, 'PUT', '/nodes/pve1/qemu/9000/config', { description: 'x' })).status, 200);
});

t.test('a fault with until ends at that fake-clock instant; a handle clears any fault at once', async (t) => {
  const { fake, clock } = await fakePve(t);
  fake.injectFault({ kind: 'failTask', type: 'qmclone', message: 'clone failed: got timeout', until: clock.now() + HOUR });
  const clone = (await api(fake, 'POST', '/nodes/pve1/qemu/9000/clone', { newid: '120' })).data;
  t.equal(await finish(fake, clock, clone), 'clone failed: got timeout');
  const second = (await api(fake, 'POST', '/nodes/pve1/qemu/9000/clone', { newid: '121' })).data;
  t.equal(await finish(fake, clock, second), 'clone failed: got timeout', 'still within the hour');
  clock.advance(HOUR);
  const third = (await api(fake, 'POST', '/nodes/pve1/qemu/9000/clone', { newid: '122' })).data;
  t.equal(await finish(fake, clock, third), 'OK');

  const handle = fake.injectFault({ kind: 'status', code: 403, method: 'DELETE', times: 'always' });
  t.equal((await api(fake, 'DELETE', '/nodes/pve1/qemu/122')).status, 403);
  handle.clear();
  t.equal((await api(fake, 'DELETE', '/nodes/pve1/qemu/122')).status, 200);
});

t.test('a node that is down answers 595 on every path while the resource list keeps its VMs', async (t) => {
  const { fake, clock } = await fakePve(t);
  const vmid = fake.addForeignVm({ name: 'on-pve2', node: 'pve2', running: true });
  fake.setLock(vmid, 'create');
  fake.nodeDown('pve2', { forMs: 3 * HOUR });
  for (const path of [`/nodes/pve2/qemu/${vmid}/config`, `/nodes/pve2/qemu/${vmid}/status/current`, '/nodes/pve2/network', '/nodes/pve2/status']) {
    t.match(await api(fake, 'GET', path), { status: 595, statusText: 'Connection refused', data: null }, path);
  }
  t.equal((await api(fake, 'POST', `/nodes/pve2/qemu/${vmid}/status/stop`)).status, 595);
  const rows = (await api(fake, 'GET', '/cluster/resources')).data as Record<string, unknown>[];
  t.match(rows.find((row) => row['vmid'] === vmid), { node: 'pve2', name: 'on-pve2', lock: 'create', status: 'unknown' });
  t.match(rows.find((row) => row['id'] === 'node/pve2'), { status: 'offline' });
  t.match(rows.find((row) => row['id'] === 'node/pve1'), { status: 'online' });
  t.equal((await api(fake, 'GET', '/nodes/pve1/network')).status, 200, 'the other node answers');
  clock.advance(3 * HOUR);
  t.equal((await api(fake, 'GET', `/nodes/pve2/qemu/${vmid}/config`)).status, 200, 'back after the span');
  fake.nodeDown('pve2');
  clock.advance(100 * HOUR);
  t.equal((await api(fake, 'GET', '/nodes/pve2/status')).status, 595, 'down until nodeUp');
  fake.nodeUp('pve2');
  t.equal((await api(fake, 'GET', '/nodes/pve2/status')).status, 200);
});

t.test('a lock nobody clears stays for as long as the test runs', async (t) => {
  const { fake, clock } = await fakePve(t);
  const vmid = fake.addForeignVm({ name: 'backed-up' });
  fake.setLock(vmid, 'backup');
  clock.advance(24 * HOUR);
  const start = await api(fake, 'POST', `/nodes/pve1/qemu/${vmid}/status/start`);
  t.equal(await finish(fake, clock, start.data), 'VM is locked (backup)');
  t.equal(fake.vm(vmid)?.lock, 'backup');
  fake.setLock(vmid, undefined);
  t.equal(fake.vm(vmid)?.lock, undefined);
});

t.test('hibernation as qemu-server does it: suspend to disk, start resumes, destroy ignores the lock', async (t) => {
  const { fake, clock } = await fakePve(t);
  const vmid = fake.addForeignVm({ name: 'sleeper', running: true });
  const suspend = await api(fake, 'POST', `/nodes/pve1/qemu/${vmid}/status/suspend`, { todisk: '1' });
  t.equal(await finish(fake, clock, suspend.data), 'OK');
  const state = String(fake.vm(vmid)?.config['vmstate']);
  t.match(fake.vm(vmid), { status: 'stopped', lock: 'suspended', config: { vmstate: /^local-lvm:vm-\d+-state-suspend-\d{14}$/ } });
  const volumes = async (): Promise<string[]> =>
    ((await api(fake, 'GET', '/nodes/pve1/storage/local-lvm/content')).data as { volid: string }[]).map((volume) => volume.volid);
  t.ok((await volumes()).includes(state), 'the RAM is in a volume');

  const config = (await api(fake, 'POST', `/nodes/pve1/qemu/${vmid}/config`, { description: 'x' })).statusText;
  t.equal(config, 'VM is locked (suspended)', 'config changes wait for the resume');
  const start = await api(fake, 'POST', `/nodes/pve1/qemu/${vmid}/status/start`);
  t.equal(await finish(fake, clock, start.data), 'OK');
  t.match(fake.vm(vmid), { status: 'running' });
  t.equal(fake.vm(vmid)?.lock, undefined);
  t.equal(fake.vm(vmid)?.config['vmstate'], undefined);
  t.notOk((await volumes()).includes(state), 'the state volume is freed on resume');

  fake.hibernate(vmid);
  const hibernatedState = String(fake.vm(vmid)?.config['vmstate']);
  const destroy = await api(fake, 'DELETE', `/nodes/pve1/qemu/${vmid}`);
  t.equal(await finish(fake, clock, destroy.data), 'OK', 'qemu-server fix #4358: no skiplock needed');
  t.equal(fake.vm(vmid), undefined);
  t.notOk((await volumes()).includes(hibernatedState), 'its state volume goes with it');
});
