// What PVE keeps differs from what was asked, against the fake PVE: a change left pending on a
// running VM, a disk size PVE rounds, a VM whose owner tag someone removed. Each is asked about
// every sync for an hour of fake time; none may lead to a repeated change or a second VM.

import t, { type Test } from 'tap';
import { GiB, MiB } from '../../../src/contracts/quantity.js';
import { ProxmoxClient } from '../../../src/hypervisors/proxmox/client.js';
import { proxmoxConfigFromEnv } from '../../../src/hypervisors/proxmox/config.js';
import { basicSpec } from '../../conformance/driver-suite.js';
import { HOUR, MINUTE, TOKEN_ENV, createVM, fakeCluster, owner, type FakeCluster } from './fake-pve.js';

function pveClient(t: Test, cluster: FakeCluster): ProxmoxClient {
  const client = new ProxmoxClient(proxmoxConfigFromEnv({ PVE_ENDPOINT: cluster.fake.url, ...TOKEN_ENV }));
  t.teardown(() => client.close());
  return client;
}

t.test('a CPU and memory change left pending on a running VM is posted once, not every sync', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const web = owner('d1');
  const id = await createVM(cluster, driver, basicSpec('web', web));
  const ref = { id, owner: web };
  await cluster.finish(driver, (await driver.power(ref, 'on')).task, 'start');

  const change = { cpus: 4, memoryBytes: 4 * GiB };
  await cluster.finish(driver, (await driver.reconfigure(ref, change)).task, 'reconfigure');
  t.match(cluster.fake.vm(Number(id)), { config: { cores: 2, memory: '2048' }, pending: { cores: 4, memory: '4096' } }, 'no hot-plug: pending');

  const before = cluster.calls().length;
  let syncs = 0;
  for (let elapsed = 0; elapsed < HOUR; elapsed += MINUTE, syncs += 1) {
    const vm = await driver.describe(id);
    t.equal(vm.cpus, 2, 'describe reports what runs');
    t.same(await driver.reconfigure(ref, change), {}, 'already pending: nothing to do');
    cluster.clock.advance(MINUTE);
  }
  const calls = cluster.calls().slice(before);
  t.equal(calls.filter((request) => request.method !== 'GET').length, 0, 'no POST while the change waits for a power cycle');
  // Per sync: the shared resources list, then reconfigure's config and pending reads. describe
  // reads the VM (config, status, guest agent) after the change, then from its cache, which it
  // refreshes once in the hour (DETAILS_TTL_MS).
  t.ok(calls.length <= syncs * 3 + 6, `${calls.length} GETs for ${syncs} syncs`);
  t.equal(cluster.calls('POST', /\/config$/).length, 2, 'the configuration step and the one change');

  const reboot = await driver.power(ref, 'reboot');
  await cluster.finish(driver, reboot.task, 'reboot');
  t.match(await driver.describe(id), { cpus: 4, memoryBytes: 4 * GiB }, 'applied by the reboot');
});

t.test('a disk size that is not a whole MiB is rounded up to one, which PVE stores and describe reads back', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const web = owner('d2');
  const id = await createVM(cluster, driver, basicSpec('web', web));
  const ref = { id, owner: web };
  const asked = 12_000_000_000; // `size: 12G`: not even a whole KiB
  const grown = await driver.resizeDisk(ref, 'root', asked);
  await cluster.finish(driver, grown.task, 'resize');
  t.equal(cluster.calls('PUT', /\/resize$/)[0]?.params['size'], '11445M');
  const stored = (await driver.describe(id)).disks[0]?.sizeBytes ?? 0;
  t.equal(stored, 11445 * MiB);
  t.ok(stored >= asked && stored - asked < MiB, `${stored - asked} bytes more than asked, less than 1 MiB`);
  t.match(cluster.fake.vm(Number(id))?.config['scsi0'], /,size=11445M$/);
  for (let elapsed = 0; elapsed < HOUR; elapsed += 10 * MINUTE) {
    t.same(await driver.resizeDisk(ref, 'root', asked), {}, 'as large as asked: nothing to do');
    cluster.clock.advance(10 * MINUTE);
  }
  t.equal(cluster.calls('PUT', /\/resize$/).length, 1);
  await t.rejects(driver.resizeDisk(ref, 'root', 10 * GiB), { code: 'InvalidSpec', message: /cannot shrink/ });
});

t.test('a VM whose owner tag someone removed is still found: no second VM after a lost status', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const client = pveClient(t, cluster);
  const web = owner('d3');
  const spec = basicSpec('web', web);
  const id = await createVM(cluster, driver, spec);

  await client.put(`/nodes/pve1/qemu/${id}/config`, { tags: 'virtrigaud' });
  cluster.clock.advance(MINUTE);
  t.equal((await driver.findByIdentity(web.uid))?.id, id, 'tagged ours without an owner tag: its marker decides');

  await client.put(`/nodes/pve1/qemu/${id}/config`, { delete: 'tags' });
  cluster.clock.advance(MINUTE);
  t.same(await driver.create(spec), { id }, 'every tag gone: create finds it by its name and marker');
  t.equal(cluster.calls('POST', /\/clone$/).length, 1, 'one clone, ever');
});

t.test('a foreign VM with the spec\'s name is not taken for the owner\'s', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  cluster.fake.addForeignVm({ name: 'web' });
  const id = await createVM(cluster, driver, basicSpec('web', owner('d4')));
  t.equal(cluster.calls('POST', /\/clone$/).length, 1);
  t.same((await driver.describe(id)).owner, owner('d4'));
});
