import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { Agent, request } from 'undici';
import { FakePve, type FakePveOptions } from './proxmox/index.js';

const TOKEN = { authorization: 'PVEAPIToken=virtrigaud@pve!vrtg=secret-token' };

interface ApiBody {
  data: unknown;
  errors?: Record<string, string>;
  message?: string;
  total?: number;
}

interface ApiResponse {
  status: number;
  statusText: string;
  body: ApiBody | null;
}

interface CallOptions {
  /** A form body: an object (encoded with URLSearchParams) or a raw string. */
  form?: Record<string, string> | string;
  json?: unknown;
  headers?: Record<string, string>;
  dispatcher?: Agent;
}

async function fakePve(t: Test, options: FakePveOptions = {}): Promise<FakePve> {
  const fake = await FakePve.start({ taskDurationMs: 20, bootMs: 40, authFailureDelayMs: 0, ...options });
  t.teardown(() => fake.close());
  return fake;
}

async function api(fake: FakePve, method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, options: CallOptions = {}): Promise<ApiResponse> {
  const headers: Record<string, string> = { ...TOKEN, ...options.headers };
  let body: string | undefined;
  if (options.form !== undefined) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = typeof options.form === 'string' ? options.form : new URLSearchParams(options.form).toString();
  } else if (options.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.json);
  }
  const res = await request(`${fake.url}/api2/json${path}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body }),
    ...(options.dispatcher ? { dispatcher: options.dispatcher } : {}),
  });
  const text = await res.body.text();
  return { status: res.statusCode, statusText: res.statusText ?? '', body: text === '' ? null : (JSON.parse(text) as ApiBody) };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls a task on the node in its UPID until it stops; returns the status object. */
async function waitTask(fake: FakePve, upid: unknown): Promise<Record<string, unknown>> {
  const node = String(upid).split(':')[1] ?? '';
  for (let i = 0; i < 200; i++) {
    const res = await api(fake, 'GET', `/nodes/${node}/tasks/${encodeURIComponent(String(upid))}/status`);
    const data = res.body?.data as Record<string, unknown>;
    if (data['status'] === 'stopped') return data;
    await sleep(10);
  }
  throw new Error(`task ${String(upid)} did not finish`);
}

async function createVm(fake: FakePve, vmid: number, extra: Record<string, string> = {}): Promise<void> {
  const res = await api(fake, 'POST', '/nodes/pve1/qemu', {
    form: { vmid: String(vmid), name: `vm-${vmid}`, memory: '2048', scsi0: 'local-lvm:8', net0: 'virtio,bridge=vmbr0', agent: '1', ...extra },
  });
  const status = await waitTask(fake, res.body?.data);
  if (status['exitstatus'] !== 'OK') throw new Error(`create failed: ${String(status['exitstatus'])}`);
}

async function startVm(fake: FakePve, vmid: number): Promise<void> {
  const res = await api(fake, 'POST', `/nodes/pve1/qemu/${vmid}/status/start`);
  await waitTask(fake, res.body?.data);
}

t.test('schema refusals', async (t) => {
  const fake = await fakePve(t);

  t.test('an unknown parameter is refused with the schema message', async (t) => {
    const res = await api(fake, 'POST', '/nodes/pve1/qemu', { form: { vmid: '100', foo: 'bar' } });
    t.equal(res.status, 400);
    t.equal(res.statusText, 'Parameter verification failed.');
    t.same(res.body, {
      data: null,
      errors: { foo: 'property is not defined in schema and the schema does not allow additional properties' },
      message: 'Parameter verification failed.\n',
    });
  });

  t.test('a value of the wrong type is refused', async (t) => {
    const res = await api(fake, 'POST', '/nodes/pve1/qemu', { form: { vmid: '100', cores: 'two' } });
    t.equal(res.body?.errors?.['cores'], "type check ('integer') failed - got 'two'");
  });

  t.test('a value outside the enumeration is refused', async (t) => {
    const res = await api(fake, 'POST', '/nodes/pve1/qemu', { form: { vmid: '100', ostype: 'linux' } });
    t.match(res.body?.errors?.['ostype'], /^value 'linux' does not have a value in the enumeration 'other, wxp/);
  });

  t.test('a bad property string is refused per sub-key', async (t) => {
    const res = await api(fake, 'POST', '/nodes/pve1/qemu', { form: { vmid: '100', net0: 'virtio,bridge=vm br0' } });
    t.equal(res.body?.errors?.['net0'], "invalid format - format error\nnet0.bridge: invalid format - invalid bridge ID 'vm br0'\n\n");
    const tag = await api(fake, 'POST', '/nodes/pve1/qemu', { form: { vmid: '100', net0: 'virtio,bridge=vmbr0,tag=0' } });
    t.equal(tag.body?.errors?.['net0'], 'invalid format - format error\nnet0.tag: value must have a minimum value of 1\n');
  });

  t.test('an indexed parameter beyond the schema range is not defined', async (t) => {
    const res = await api(fake, 'POST', '/nodes/pve1/qemu', { form: { vmid: '100', scsi31: 'local-lvm:1' } });
    t.match(res.body?.errors?.['scsi31'], /property is not defined in schema/);
  });

  t.test('a parameter given twice is refused', async (t) => {
    const res = await api(fake, 'POST', '/nodes/pve1/qemu', { form: 'vmid=100&cores=1&cores=2' });
    t.equal(res.status, 400);
    t.ok(res.body?.errors?.['cores']);
  });

  t.test('a missing required parameter is refused', async (t) => {
    const res = await api(fake, 'POST', '/nodes/pve1/qemu', { form: { name: 'x' } });
    t.equal(res.body?.errors?.['vmid'], 'property is missing and it is not optional');
  });

  t.test('a form boolean must be 0 or 1 while JSON true is accepted', async (t) => {
    const form = await api(fake, 'GET', '/nodes/pve1/qemu?full=true');
    t.equal(form.body?.errors?.['full'], "type check ('boolean') failed - got 'true'");
    const json = await api(fake, 'POST', '/nodes/pve1/qemu/9000/clone', { json: { newid: 150, full: true } });
    t.equal(json.status, 200);
  });

  t.test('path parameters are verified too', async (t) => {
    const res = await api(fake, 'GET', '/nodes/pve1/qemu/abc/config');
    t.equal(res.body?.errors?.['vmid'], "type check ('integer') failed - got 'abc'");
  });
});

t.test('an unknown path or method is 501 with the PVE text', async (t) => {
  const fake = await fakePve(t);
  const res = await api(fake, 'GET', '/nodes/pve1/qemu/9000/nonexistent');
  t.equal(res.status, 501);
  t.same(res.body, { data: null, message: "Method 'GET /nodes/pve1/qemu/9000/nonexistent' not implemented" });
  const put = await api(fake, 'PUT', '/version');
  t.equal(put.statusText, "Method 'PUT /version' not implemented");
});

t.test('a GET with a body is refused with 501', async (t) => {
  const fake = await fakePve(t);
  const res = await request(`${fake.url}/api2/json/version`, { method: 'GET', headers: { ...TOKEN, 'content-length': '3' }, body: 'a=b' });
  await res.body.text();
  t.equal(res.statusCode, 501);
});

t.test('a ; in a form body separates parameters unless sent as %3B', async (t) => {
  const fake = await fakePve(t);
  await createVm(fake, 100);
  const cut = await api(fake, 'PUT', '/nodes/pve1/qemu/100/config', { form: 'tags=alpha;beta' });
  t.equal(cut.body?.errors?.['beta'], 'property is not defined in schema and the schema does not allow additional properties');
  const ok = await api(fake, 'PUT', '/nodes/pve1/qemu/100/config', { form: { tags: 'alpha;beta' } });
  t.equal(ok.status, 200);
  const config = await api(fake, 'GET', '/nodes/pve1/qemu/100/config');
  t.equal((config.body?.data as Record<string, unknown>)['tags'], 'alpha;beta');
});

t.test('an unencoded = in a form value cuts it at the second =', async (t) => {
  const fake = await fakePve(t);
  await createVm(fake, 100);
  const res = await api(fake, 'PUT', '/nodes/pve1/qemu/100/config', { form: 'net1=virtio,bridge=vmbr1' });
  t.equal(res.body?.errors?.['net1'], 'invalid format - duplicate key in comma-separated list property: model\n');
});

t.test('authentication', async (t) => {
  const fake = await fakePve(t);

  t.test('no credentials get 401 No ticket with an empty body', async (t) => {
    const res = await request(`${fake.url}/api2/json/version`);
    t.equal(res.statusCode, 401);
    t.equal(res.statusText, 'No ticket');
    t.equal(await res.body.text(), '');
  });

  t.test('an API token works without CSRF and a wrong secret is refused', async (t) => {
    t.equal((await api(fake, 'POST', '/nodes/pve1/qemu/9000/status/stop')).status, 200);
    const wrong = await api(fake, 'GET', '/version', { headers: { authorization: 'PVEAPIToken=virtrigaud@pve!vrtg=nope' } });
    t.equal(wrong.status, 401);
  });

  t.test('a ticket needs the CSRF token on a POST', async (t) => {
    const login = await api(fake, 'POST', '/access/ticket', { headers: { authorization: '' }, form: { username: 'root@pam', password: 'root-password' } });
    const data = login.body?.data as Record<string, string>;
    t.match(data, { username: 'root@pam', ticket: /^PVE:root@pam:[0-9A-F]{8}::/, CSRFPreventionToken: /^[0-9A-F]{8}:/, clustername: 'pve-cluster' });
    const cookie = { authorization: '', cookie: `PVEAuthCookie=${encodeURIComponent(data['ticket'] ?? '')}` };
    t.equal((await api(fake, 'GET', '/version', { headers: cookie })).status, 200);
    const noCsrf = await api(fake, 'POST', '/nodes/pve1/qemu/9000/status/stop', { headers: cookie });
    t.equal(noCsrf.status, 401);
    t.equal(noCsrf.statusText, 'Permission denied - invalid csrf token');
    const withCsrf = await api(fake, 'POST', '/nodes/pve1/qemu/9000/status/stop', {
      headers: { ...cookie, CSRFPreventionToken: data['CSRFPreventionToken'] ?? '' },
    });
    t.equal(withCsrf.status, 200);
  });

  t.test('a wrong password is 401 authentication failure', async (t) => {
    const res = await api(fake, 'POST', '/access/ticket', { headers: { authorization: '' }, form: { username: 'root@pam', password: 'x' } });
    t.equal(res.status, 401);
    t.equal(res.body?.message, 'authentication failure\n');
  });

  t.test('a token cannot ask for a ticket', async (t) => {
    const res = await api(fake, 'POST', '/access/ticket', { form: { username: 'root@pam', password: 'root-password' } });
    t.equal(res.status, 403);
    t.equal(res.statusText, "URI '/access/ticket' not available with API token, need proper ticket.");
  });
});

t.test('a ticket expires and is renewed with itself as password', async (t) => {
  const fake = await fakePve(t, { ticketLifetimeMs: 150 });
  const login = await api(fake, 'POST', '/access/ticket', { headers: { authorization: '' }, form: { username: 'root@pam', password: 'root-password' } });
  const ticket = (login.body?.data as Record<string, string>)['ticket'] ?? '';
  const renewed = await api(fake, 'POST', '/access/ticket', { headers: { authorization: '' }, form: { username: 'root@pam', password: ticket } });
  t.equal(renewed.status, 200);
  await sleep(200);
  const expired = await api(fake, 'GET', '/version', { headers: { authorization: '', cookie: `PVEAuthCookie=${ticket}` } });
  t.equal(expired.status, 401);
});

t.test('nextid is a JSON string and ?vmid refuses a used id', async (t) => {
  const fake = await fakePve(t);
  t.same((await api(fake, 'GET', '/cluster/nextid')).body, { data: '100' });
  t.same((await api(fake, 'GET', '/cluster/nextid?vmid=150')).body, { data: '150' });
  const used = await api(fake, 'GET', '/cluster/nextid?vmid=9000');
  t.equal(used.status, 400);
  t.same(used.body?.errors, { vmid: 'VM 9000 already exists' });
});

t.test('create writes lock: create before its task ends', async (t) => {
  const fake = await fakePve(t, { taskDurations: { qmcreate: 400 } });
  const res = await api(fake, 'POST', '/nodes/pve1/qemu', { form: { vmid: '100', name: 'web', scsi0: 'local-lvm:32', net0: 'virtio,bridge=vmbr0' } });
  t.match(res.body?.data, /^UPID:pve1:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:qmcreate:100:virtrigaud@pve!vrtg:$/);
  const during = await api(fake, 'GET', '/nodes/pve1/qemu/100/config');
  t.match(during.body?.data, { lock: 'create' });
  t.equal((await api(fake, 'GET', '/cluster/nextid')).body?.data, '101');
  const again = await api(fake, 'POST', '/nodes/pve1/qemu', { form: { vmid: '100' } });
  t.equal(again.status, 500);
  t.equal(again.statusText, "unable to create VM 100 - VM 100 already exists on node 'pve1'");
  await waitTask(fake, res.body?.data);
  const config = (await api(fake, 'GET', '/nodes/pve1/qemu/100/config')).body?.data as Record<string, unknown>;
  t.equal(config['lock'], undefined);
  t.match(config, { scsi0: 'local-lvm:vm-100-disk-0,size=32G', net0: /^virtio=BC:24:11:[0-9A-F:]{8},bridge=vmbr0$/, digest: /^[0-9a-f]{40}$/ });
});

t.test('a VM asked on the wrong node does not exist there', async (t) => {
  const fake = await fakePve(t);
  const res = await api(fake, 'GET', '/nodes/pve2/qemu/9000/config');
  t.equal(res.status, 500);
  t.equal(res.body?.message, "Configuration file 'nodes/pve2/qemu-server/9000.conf' does not exist\n");
});

t.test('clone', async (t) => {
  const fake = await fakePve(t, { taskDurations: { qmclone: 900 } });

  t.test('locks the target, names the source in the UPID and writes name and description', async (t) => {
    const res = await api(fake, 'POST', '/nodes/pve1/qemu/9000/clone', { form: { newid: '120', name: 'web-1', description: 'owner=uid-1' } });
    t.match(res.body?.data, /:qmclone:9000:virtrigaud@pve!vrtg:$/);
    const early = (await api(fake, 'GET', '/cluster/resources?type=vm')).body?.data as Record<string, unknown>[];
    t.match(early.find((row) => row['vmid'] === 120), { lock: 'clone', node: 'pve1', name: 'VM 120' });
    const temporary = (await api(fake, 'GET', '/nodes/pve1/qemu/120/config')).body?.data as Record<string, unknown>;
    t.match(temporary, { lock: 'clone', description: 'qmclone temporary file' }, 'qemu-server writes a temporary config first');
    await sleep(400);
    const mid = (await api(fake, 'GET', '/nodes/pve1/qemu/120/config')).body?.data as Record<string, unknown>;
    t.match(mid, { lock: 'clone', name: 'web-1', description: 'owner=uid-1' });
    await waitTask(fake, res.body?.data);
    const done = (await api(fake, 'GET', '/nodes/pve1/qemu/120/config')).body?.data as Record<string, unknown>;
    t.equal(done['lock'], undefined);
    t.equal(done['scsi0'], 'local-lvm:base-9000-disk-0/vm-120-disk-0,discard=on,iothread=1,size=10G');
    const source = (await api(fake, 'GET', '/nodes/pve1/qemu/9000/config')).body?.data as Record<string, unknown>;
    t.not(done['net0'], source['net0'], 'clones get new MACs');
  });

  t.test('a linked clone of a VM that is no template is refused', async (t) => {
    await createVm(fake, 130);
    const res = await api(fake, 'POST', '/nodes/pve1/qemu/130/clone', { form: { newid: '131', full: '0' } });
    t.equal(res.status, 500);
    t.equal(res.statusText, "Linked clone feature is not supported for 'local-lvm:vm-130-disk-0' (scsi0)");
  });

  t.test('storage is not allowed for a linked clone', async (t) => {
    const res = await api(fake, 'POST', '/nodes/pve1/qemu/9000/clone', { form: { newid: '132', storage: 'local-lvm' } });
    t.equal(res.statusText, "parameter 'storage' not allowed for linked clones");
  });

  t.test('an id someone else takes after nextid makes the clone fail', async (t) => {
    fake.takeNextId(133);
    t.equal((await api(fake, 'GET', '/cluster/nextid?vmid=133')).body?.data, '133');
    const res = await api(fake, 'POST', '/nodes/pve1/qemu/9000/clone', { form: { newid: '133' } });
    const status = await waitTask(fake, res.body?.data);
    t.equal(status['exitstatus'], 'unable to create VM 133: config file already exists');
    t.equal(fake.vm(133)?.name, 'taken-133');
  });
});

t.test('config changes on a running VM: hotplug or pending', async (t) => {
  const fake = await fakePve(t);
  await createVm(fake, 100, { cores: '2' });
  await startVm(fake, 100);
  await api(fake, 'PUT', '/nodes/pve1/qemu/100/config', { form: { cores: '4', name: 'renamed', memory: '4096' } });
  const current = (await api(fake, 'GET', '/nodes/pve1/qemu/100/config?current=1')).body?.data as Record<string, unknown>;
  t.match(current, { cores: 2, name: 'renamed', memory: '2048' }, 'cores and memory wait; the name changes at once');
  const withPending = (await api(fake, 'GET', '/nodes/pve1/qemu/100/config')).body?.data as Record<string, unknown>;
  t.match(withPending, { cores: 4, memory: '4096' });
  const pending = (await api(fake, 'GET', '/nodes/pve1/qemu/100/pending')).body?.data as Record<string, unknown>[];
  t.match(pending.find((row) => row['key'] === 'cores'), { value: 2, pending: 4 });

  await api(fake, 'PUT', '/nodes/pve1/qemu/100/config', { form: { revert: 'memory' } });
  const upid = (await api(fake, 'POST', '/nodes/pve1/qemu/100/status/reboot')).body?.data;
  await waitTask(fake, upid);
  t.match(fake.vm(100), { config: { cores: 4, memory: '2048' }, pending: {} }, 'a reboot applies pending changes');
});

t.test('memory hotplugs live when hotplug has memory and numa is on', async (t) => {
  const fake = await fakePve(t);
  await createVm(fake, 100, { hotplug: 'network,disk,usb,memory,cpu', numa: '1', cores: '4', vcpus: '2' });
  await startVm(fake, 100);
  const res = await api(fake, 'PUT', '/nodes/pve1/qemu/100/config', { form: { memory: '4096', vcpus: '4' } });
  t.equal(res.status, 200);
  t.match(fake.vm(100)?.config, { memory: '4096', vcpus: 4 });
});

t.test('POST config is a qmconfig task; a stale digest is refused before forking', async (t) => {
  const fake = await fakePve(t);
  await createVm(fake, 100);
  const { digest } = (await api(fake, 'GET', '/nodes/pve1/qemu/100/config')).body?.data as Record<string, string>;
  const upid = (await api(fake, 'POST', '/nodes/pve1/qemu/100/config', { form: { cores: '3', digest: digest ?? '' } })).body?.data;
  t.match(upid, /:qmconfig:100:/);
  await waitTask(fake, upid);
  t.equal(fake.vm(100)?.config['cores'], 3);
  const stale = await api(fake, 'POST', '/nodes/pve1/qemu/100/config', { form: { cores: '5', digest: digest ?? '' } });
  t.equal(stale.status, 500);
  t.equal(stale.statusText, 'checksum mismatch (file change by other user?)');
  const delayed = await api(fake, 'POST', '/nodes/pve1/qemu/100/config', { form: { cores: '6', background_delay: '5' } });
  t.same(delayed.body, { data: null }, 'background_delay waits and answers null');
});

t.test('resizing to a smaller size fails the resize task', async (t) => {
  const fake = await fakePve(t);
  await createVm(fake, 100);
  const shrink = await api(fake, 'PUT', '/nodes/pve1/qemu/100/resize', { form: { disk: 'scsi0', size: '4G' } });
  t.match(shrink.body?.data, /:resize:100:/);
  t.equal((await waitTask(fake, shrink.body?.data))['exitstatus'], 'shrinking disks is not supported');
  const grow = await api(fake, 'PUT', '/nodes/pve1/qemu/100/resize', { form: { disk: 'scsi0', size: '+2G' } });
  t.equal((await waitTask(fake, grow.body?.data))['exitstatus'], 'OK');
  t.equal(fake.vm(100)?.config['scsi0'], 'local-lvm:vm-100-disk-0,size=10G');
  const unencodedPlus = await api(fake, 'PUT', '/nodes/pve1/qemu/100/resize', { form: 'disk=scsi0&size=+2G' });
  t.equal(unencodedPlus.body?.errors?.['size'], 'value does not match the regex pattern', 'a raw + decodes to a space');
});

t.test('snapshots', async (t) => {
  const fake = await fakePve(t);
  await createVm(fake, 100);

  t.test('vmstate on a stopped VM is dropped: the snapshot has no RAM', async (t) => {
    const res = await api(fake, 'POST', '/nodes/pve1/qemu/100/snapshot', { form: { snapname: 'cold', vmstate: '1' } });
    await waitTask(fake, res.body?.data);
    const list = (await api(fake, 'GET', '/nodes/pve1/qemu/100/snapshot')).body?.data as Record<string, unknown>[];
    t.match(list.find((row) => row['name'] === 'cold'), { vmstate: 0 });
    t.match(list.find((row) => row['name'] === 'current'), { parent: 'cold', description: 'You are here!', running: 0 });
  });

  t.test('a running VM saves its RAM and a rollback resumes it', async (t) => {
    await startVm(fake, 100);
    const res = await api(fake, 'POST', '/nodes/pve1/qemu/100/snapshot', { form: { snapname: 'warm', vmstate: '1', description: 'with RAM' } });
    await waitTask(fake, res.body?.data);
    t.match(fake.vm(100)?.snapshots.find((snap) => snap.name === 'warm'), { vmstate: true, parent: 'cold', description: 'with RAM' });
    await waitTask(fake, (await api(fake, 'POST', '/nodes/pve1/qemu/100/status/stop')).body?.data);
    await waitTask(fake, (await api(fake, 'POST', '/nodes/pve1/qemu/100/snapshot/warm/rollback')).body?.data);
    t.equal(fake.vm(100)?.status, 'running');
  });

  t.test('a reserved or invalid snapshot name is refused', async (t) => {
    t.equal((await api(fake, 'POST', '/nodes/pve1/qemu/100/snapshot', { form: { snapname: 'current' } })).statusText, "unable to use snapshot name 'current' (reserved name)");
    t.match((await api(fake, 'POST', '/nodes/pve1/qemu/100/snapshot', { form: { snapname: '1st' } })).body?.errors?.['snapname'], /invalid configuration ID '1st'/);
  });

  t.test('deleting a snapshot relinks its children', async (t) => {
    await waitTask(fake, (await api(fake, 'DELETE', '/nodes/pve1/qemu/100/snapshot/cold')).body?.data);
    t.same(fake.vm(100)?.snapshots.map((snap) => [snap.name, snap.parent ?? null]), [['warm', null]]);
  });
});

t.test('the guest agent reports addresses after boot, with lo and link-local ones', async (t) => {
  const fake = await fakePve(t, { bootMs: 100 });
  await createVm(fake, 100, { net1: 'virtio,bridge=vmbr1', ipconfig0: 'ip=192.168.10.5/24,gw=192.168.10.1' });
  const stopped = await api(fake, 'GET', '/nodes/pve1/qemu/100/agent/network-get-interfaces');
  t.equal(stopped.statusText, 'VM 100 is not running');
  await startVm(fake, 100);
  t.equal((await api(fake, 'GET', '/nodes/pve1/qemu/100/agent/network-get-interfaces')).statusText, 'QEMU guest agent is not running');
  await sleep(120);
  const res = await api(fake, 'GET', '/nodes/pve1/qemu/100/agent/network-get-interfaces');
  const result = (res.body?.data as { result: { name: string; 'ip-addresses': { 'ip-address': string; prefix: number }[] }[] }).result;
  const addresses = (name: string): string[] => (result.find((nic) => nic.name === name)?.['ip-addresses'] ?? []).map((ip) => `${ip['ip-address']}/${ip.prefix}`);
  t.same(addresses('lo'), ['127.0.0.1/8', '::1/128']);
  t.equal(addresses('eth0')[0], '192.168.10.5/24');
  t.equal(addresses('eth1')[0], '10.0.100.101/24', 'DHCP leases are deterministic');
  t.match(addresses('eth1')[1], /^fe80::/);
  fake.setGuestAgent(100, false);
  t.equal((await api(fake, 'GET', '/nodes/pve1/qemu/100/agent/ping')).status, 501, 'ping is a POST');
  t.equal((await api(fake, 'POST', '/nodes/pve1/qemu/100/agent/ping')).statusText, 'QEMU guest agent is not running');
});

t.test('an agent call on a VM without agent=1 says no agent is configured', async (t) => {
  const fake = await fakePve(t);
  await createVm(fake, 100, { agent: '0' });
  await startVm(fake, 100);
  t.equal((await api(fake, 'POST', '/nodes/pve1/qemu/100/agent/ping')).statusText, 'No QEMU guest agent configured');
});

t.test('a snapshot without RAM freezes the filesystems through an answering agent, as qemu-server does', async (t) => {
  const fake = await fakePve(t, { bootMs: 0 });
  await createVm(fake, 100);
  await createVm(fake, 101, { agent: '1,freeze-fs=0' });
  await startVm(fake, 100);
  await startVm(fake, 101);
  const info = (await api(fake, 'GET', '/nodes/pve1/qemu/100/agent/info')).body?.data as { result: { supported_commands: { name: string; enabled: boolean }[] } };
  t.match(info.result.supported_commands, [{ name: 'guest-ping', enabled: true }]);
  t.ok(info.result.supported_commands.some((command) => command.name === 'guest-fsfreeze-freeze' && command.enabled));
  const snapshot = async (vmid: number, snapname: string, extra: Record<string, string> = {}): Promise<void> => {
    await waitTask(fake, (await api(fake, 'POST', `/nodes/pve1/qemu/${vmid}/snapshot`, { form: { snapname, ...extra } })).body?.data);
  };
  await snapshot(100, 'frozen');
  await snapshot(100, 'withram', { vmstate: '1' });
  await snapshot(101, 'optedout');
  fake.setGuestFsFreeze(100, false);
  t.notOk(((await api(fake, 'GET', '/nodes/pve1/qemu/100/agent/info')).body?.data as typeof info).result.supported_commands.some((command) => command.name === 'guest-fsfreeze-freeze' && command.enabled));
  await snapshot(100, 'refused');
  fake.setGuestFsFreeze(100, true);
  fake.setGuestAgent(100, false);
  await snapshot(100, 'silent');
  const frozen = (vmid: number): Record<string, boolean> => Object.fromEntries((fake.vm(vmid)?.snapshots ?? []).map((snap) => [snap.name, snap.frozen]));
  t.same(frozen(100), { frozen: true, withram: false, refused: false, silent: false });
  t.same(frozen(101), { optedout: false }, 'freeze-fs=0 (PVE 9)');
});

t.test('a failed task reports its error in status and log', async (t) => {
  const fake = await fakePve(t);
  await createVm(fake, 100, { net0: 'virtio,bridge=vmbr9' });
  const upid = (await api(fake, 'POST', '/nodes/pve1/qemu/100/status/start')).body?.data;
  const status = await waitTask(fake, upid);
  t.match(status, { status: 'stopped', exitstatus: "bridge 'vmbr9' does not exist", type: 'qmstart', id: '100', user: 'virtrigaud@pve', tokenid: 'vrtg' });
  const log = await api(fake, 'GET', `/nodes/pve1/tasks/${encodeURIComponent(String(upid))}/log`);
  t.same(log.body, { data: [{ n: 1, t: "TASK ERROR: bridge 'vmbr9' does not exist" }], total: 1 });
  const unknown = await api(fake, 'GET', `/nodes/pve2/tasks/${encodeURIComponent(String(upid))}/status`);
  t.same(unknown.body?.errors, { upid: 'no such task' });
  const list = await api(fake, 'GET', '/nodes/pve1/tasks?errors=1');
  t.match(list.body, { total: 1, data: [{ upid, status: "bridge 'vmbr9' does not exist" }] });
});

/** A one-file HTTP server, as the driver's migration file server is to PVE. */
async function fileServer(t: Test, body: Buffer): Promise<string> {
  const { createServer } = await import('node:http');
  const server = createServer((req, res) => {
    if (req.url !== '/disk.raw') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address();
  return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
}

t.test('download-url fetches the URL, checks its checksum and names, and makes an import volume that import-from copies', async (t) => {
  const fake = await fakePve(t);
  const bytes = Buffer.alloc(2 * 1024 * 1024, 7);
  const sha256 = (await import('node:crypto')).createHash('sha256').update(bytes).digest('hex');
  const base = await fileServer(t, bytes);
  const download = (form: Record<string, string>) =>
    api(fake, 'POST', '/nodes/pve1/storage/local/download-url', { form: { content: 'import', filename: 'disk.raw', url: `${base}/disk.raw`, ...form } });

  t.match((await download({ url: 'ftp://x/disk.raw' })).body?.errors, { url: /does not match the regex pattern/ });
  t.match((await download({ checksum: sha256 })).body?.errors, { 'checksum-algorithm': /missing property/ });
  t.match((await download({ filename: 'disk.iso' })).body?.errors, { filename: 'invalid filename or wrong extension' });
  t.match((await api(fake, 'POST', '/nodes/pve1/storage/local-lvm/download-url', { form: { content: 'import', filename: 'disk.raw', url: `${base}/disk.raw` } })).statusText, /not a file based storage/);

  const failed = await waitTask(fake, (await download({ url: `${base}/other.raw` })).body?.data);
  t.match(failed, { type: 'download', id: 'disk.raw', exitstatus: /^download failed: command 'wget .*other\.raw' failed/ });
  const mismatch = await waitTask(fake, (await download({ checksum: 'ab'.repeat(32), 'checksum-algorithm': 'sha256' })).body?.data);
  t.match(mismatch, { exitstatus: `checksum mismatch: got '${sha256}' != expect '${'ab'.repeat(32)}'` });
  t.same(fake.volumes('import'), []);

  const ok = await waitTask(fake, (await download({ checksum: sha256, 'checksum-algorithm': 'sha256' })).body?.data);
  t.equal(ok['exitstatus'], 'OK');
  t.match(fake.volumes('import'), [{ volid: 'local:import/disk.raw', node: 'pve1', size: bytes.length, sha256 }]);
  const again = await waitTask(fake, (await download({ checksum: sha256, 'checksum-algorithm': 'sha256' })).body?.data);
  t.equal(again['exitstatus'], 'OK', 'the file is there already: nothing to download');
  const listed = await api(fake, 'GET', '/nodes/pve1/storage/local/content?content=import');
  t.match(listed.body?.data, [{ volid: 'local:import/disk.raw', content: 'import', format: 'raw', size: bytes.length }]);

  await createVm(fake, 100, { scsi0: 'local-lvm:0,import-from=local:import/disk.raw' });
  t.match(fake.vm(100)?.config['scsi0'], /^local-lvm:vm-100-disk-0,.*size=2M/);
  const otherNode = await api(fake, 'POST', '/nodes/pve2/qemu', { form: { vmid: '101', scsi0: 'local-lvm:0,import-from=local:import/disk.raw' } });
  t.match(await waitTask(fake, otherNode.body?.data), { exitstatus: /could not get size of local:import\/disk\.raw/ }, 'a local storage holds it on its node only');

  const removed = await api(fake, 'DELETE', `/nodes/pve1/storage/local/content/${encodeURIComponent('local:import/disk.raw')}`);
  t.match(await waitTask(fake, removed.body?.data), { type: 'imgdel', exitstatus: 'OK' });
  t.same(fake.volumes('import'), []);
  t.equal(fake.vm(100)?.vmid, 100, 'the VM keeps its copy');
});

t.test('destroying a running VM fails', async (t) => {
  const fake = await fakePve(t);
  await createVm(fake, 100);
  await startVm(fake, 100);
  const res = await api(fake, 'DELETE', '/nodes/pve1/qemu/100');
  t.equal(res.status, 500);
  t.equal(res.body?.message, 'VM 100 is running - destroy failed\n');
  await waitTask(fake, (await api(fake, 'POST', '/nodes/pve1/qemu/100/status/stop')).body?.data);
  await waitTask(fake, (await api(fake, 'DELETE', '/nodes/pve1/qemu/100?purge=1&destroy-unreferenced-disks=1')).body?.data);
  t.equal(fake.vm(100), undefined);
});

t.test('a shutdown the guest ignores times out unless forceStop is set', async (t) => {
  const fake = await fakePve(t);
  await createVm(fake, 100);
  await startVm(fake, 100);
  fake.setGuestIgnoresShutdown(100, true);
  const soft = await api(fake, 'POST', '/nodes/pve1/qemu/100/status/shutdown', { form: { timeout: '0' } });
  t.equal((await waitTask(fake, soft.body?.data))['exitstatus'], 'VM quit/powerdown failed - got timeout');
  t.equal(fake.vm(100)?.status, 'running');
  const forced = await api(fake, 'POST', '/nodes/pve1/qemu/100/status/shutdown', { form: { timeout: '0', forceStop: '1' } });
  t.equal((await waitTask(fake, forced.body?.data))['exitstatus'], 'OK');
  t.equal(fake.vm(100)?.status, 'stopped');
});

t.test('sshkeys: the URL-encoded value is form-encoded once more and read back single-encoded', async (t) => {
  const fake = await fakePve(t);
  await createVm(fake, 100);
  const keys = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq0b3BlcmF0b3I operator@k8s\n';
  const single = encodeURIComponent(keys);
  const body = `sshkeys=${encodeURIComponent(single)}`;
  t.equal((await api(fake, 'PUT', '/nodes/pve1/qemu/100/config', { form: body })).status, 200);
  const config = (await api(fake, 'GET', '/nodes/pve1/qemu/100/config')).body?.data as Record<string, unknown>;
  t.equal(config['sshkeys'], single);
  const once = await api(fake, 'PUT', '/nodes/pve1/qemu/100/config', { form: `sshkeys=${single}` });
  t.match(once.body?.errors?.['sshkeys'], /^invalid format - invalid urlencoded string: ssh-ed25519 AAAA/);
});

t.test('cicustom snippets must exist when the VM starts', async (t) => {
  const fake = await fakePve(t);
  await createVm(fake, 100, { cicustom: 'user=local:snippets/user.yaml' });
  const missing = await waitTask(fake, (await api(fake, 'POST', '/nodes/pve1/qemu/100/status/start')).body?.data);
  t.equal(missing['exitstatus'], "volume 'local:snippets/user.yaml' does not exist");
  fake.addSnippet('local', 'user.yaml', '#cloud-config\n');
  t.equal(fake.snippet('local', 'user.yaml'), '#cloud-config\n');
  const started = await waitTask(fake, (await api(fake, 'POST', '/nodes/pve1/qemu/100/status/start')).body?.data);
  t.equal(started['exitstatus'], 'OK');
});

t.test('faults', async (t) => {
  t.test('lockTimeout answers with the flock timeout of the VM', async (t) => {
    const fake = await fakePve(t);
    fake.injectFault({ kind: 'lockTimeout', path: /\/config$/ });
    const res = await api(fake, 'PUT', '/nodes/pve1/qemu/9000/config', { form: { description: 'x' } });
    t.equal(res.status, 500);
    t.equal(res.body?.message, "can't lock file '/var/lock/qemu-server/lock-9000.conf' - got timeout\n");
    t.equal((await api(fake, 'PUT', '/nodes/pve1/qemu/9000/config', { form: { description: 'x' } })).status, 200, 'used up after one hit');
  });

  t.test('vmLocked answers VM is locked (backup)', async (t) => {
    const fake = await fakePve(t);
    fake.injectFault({ kind: 'vmLocked', times: 2 });
    t.equal((await api(fake, 'POST', '/nodes/pve1/qemu/9000/status/start')).statusText, 'VM is locked (backup)');
    t.equal((await api(fake, 'GET', '/nodes/pve1/qemu/9000/config')).status, 200, 'reads take no lock');
  });

  t.test('status answers 595 with an empty body or the given code', async (t) => {
    const fake = await fakePve(t);
    fake.injectFault({ kind: 'status', code: 595, path: /^\/nodes\/pve2\// });
    fake.injectFault({ kind: 'status', code: 403, method: 'DELETE', message: 'Permission check failed (/vms/9000, VM.Allocate)' });
    const unreachable = await api(fake, 'GET', '/nodes/pve2/qemu');
    t.match(unreachable, { status: 595, statusText: 'Connection refused', body: null });
    const forbidden = await api(fake, 'DELETE', '/nodes/pve1/qemu/9000');
    t.match(forbidden, { status: 403, body: { message: 'Permission check failed (/vms/9000, VM.Allocate)\n' } });
  });

  t.test('hang never answers until the client gives up', async (t) => {
    const fake = await fakePve(t);
    fake.injectFault({ kind: 'hang', path: /^\/version$/ });
    const started = Date.now();
    await t.rejects(request(`${fake.url}/api2/json/version`, { headers: TOKEN, headersTimeout: 150 }));
    t.ok(Date.now() - started >= 140);
  });

  t.test('slow delays the answer', async (t) => {
    const fake = await fakePve(t);
    fake.injectFault({ kind: 'slow', ms: 150 });
    const started = Date.now();
    t.equal((await api(fake, 'GET', '/version')).status, 200);
    t.ok(Date.now() - started >= 140);
  });

  t.test('failTask ends the next task of that type with the message', async (t) => {
    const fake = await fakePve(t);
    fake.injectFault({ kind: 'failTask', type: 'qmclone', message: 'clone failed: storage full' });
    const upid = (await api(fake, 'POST', '/nodes/pve1/qemu/9000/clone', { form: { newid: '120' } })).body?.data;
    t.equal((await waitTask(fake, upid))['exitstatus'], 'clone failed: storage full');
    const log = (await api(fake, 'GET', `/nodes/pve1/tasks/${encodeURIComponent(String(upid))}/log`)).body?.data as { t: string }[];
    t.equal(log.at(-1)?.t, 'TASK ERROR: clone failed: storage full');
    t.equal(fake.vm(120), undefined, 'the failed clone leaves no target behind');
  });

  t.test('dropResponse performs the request and closes the connection', async (t) => {
    const fake = await fakePve(t, { taskDurations: { qmclone: 1000 } });
    fake.injectFault({ kind: 'dropResponse', method: 'POST', path: /\/clone$/ });
    await t.rejects(api(fake, 'POST', '/nodes/pve1/qemu/9000/clone', { form: { newid: '120' } }));
    t.match(fake.vm(120), { lock: 'clone' }, 'the clone started anyway');
  });
});

t.test('close() ends hanging requests so the process can exit', async (t) => {
  const fake = await FakePve.start();
  fake.injectFault({ kind: 'hang' });
  const pending = request(`${fake.url}/api2/json/version`, { headers: TOKEN }).then(
    () => 'answered',
    () => 'aborted',
  );
  await sleep(50);
  await fake.close();
  t.equal(await pending, 'aborted');
});

t.test('the fake serves HTTPS with the given certificate', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fake-pve-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  } catch {
    t.pass('openssl is not available: TLS not exercised');
    return;
  }
  const cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
  const fake = await fakePve(t, { tls: { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert } });
  t.match(fake.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  await t.rejects(api(fake, 'GET', '/version'), 'an unknown CA is refused');
  const trusting = new Agent({ connect: { ca: cert } });
  t.teardown(() => trusting.close());
  t.equal((await api(fake, 'GET', '/version', { dispatcher: trusting })).status, 200);
});

t.test('every request is recorded for assertions', async (t) => {
  const fake = await fakePve(t);
  await api(fake, 'GET', '/cluster/resources?type=vm');
  t.match(fake.requests.at(-1), { method: 'GET', path: '/cluster/resources', params: { type: 'vm' }, status: 200 });
});
