// Locks against the fake PVE: a hibernated VM (`lock: suspended`) is a state the driver reports and
// acts on, and a lock that never clears (a task that crashed with its node) is reported as it is
// and costs a bounded number of PVE calls, however long it stays.

import t from 'tap';
import { basicSpec } from '../../conformance/driver-suite.js';
import { HOUR, MINUTE, createVM, fakeCluster, owner } from './fake-pve.js';

t.test('a hibernated VM is Suspended, not locked, and power on resumes it', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const web = owner('b1');
  const id = await createVM(cluster, driver, basicSpec('web', web));
  const ref = { id, owner: web };
  await cluster.finish(driver, (await driver.power(ref, 'on')).task, 'start');
  cluster.fake.hibernate(Number(id));
  t.match(cluster.fake.vm(Number(id)), { lock: 'suspended', status: 'stopped', config: { vmstate: /^local-lvm:vm-\d+-state-suspend-/ } });

  const hibernated = await driver.describe(id);
  t.equal(hibernated.powerState, 'Suspended');
  t.equal(hibernated.lock, undefined, 'a state, not an operation anybody waits for');
  t.same(hibernated.owner, web);

  t.same(await driver.power(ref, 'off'), {}, 'nothing runs: nothing to stop');
  t.same(await driver.power(ref, 'shutdown'), {});
  await t.rejects(driver.power(ref, 'reboot'), { code: 'Conflict' });
  const resumed = await driver.power(ref, 'on');
  t.match(resumed.task, /:qmstart:/);
  await cluster.finish(driver, resumed.task, 'resume');
  const vm = await driver.describe(id);
  t.equal(vm.powerState, 'On');
  t.equal(vm.lock, undefined);
  t.equal(cluster.fake.vm(Number(id))?.config['vmstate'], undefined, 'the saved state is freed');
});

t.test('a hibernated VM is destroyed by one delete, without the root-only skiplock', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const web = owner('b2');
  const id = await createVM(cluster, driver, basicSpec('web', web));
  cluster.fake.hibernate(Number(id));
  const deletes = cluster.calls('DELETE').length;
  const started = await driver.delete({ id, owner: web });
  t.match(started.task, /:qmdestroy:/);
  await cluster.finish(driver, started.task, 'destroy');
  await t.rejects(driver.describe(id), { code: 'NotFound' });
  t.equal(cluster.calls('DELETE').length - deletes, 1);
  t.notOk(cluster.fake.requests.some((request) => 'skiplock' in request.params));
});

t.test('a stale backup lock is reported for hours and no call is retried in a loop', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const web = owner('b3');
  const id = await createVM(cluster, driver, basicSpec('web', web));
  const ref = { id, owner: web };
  cluster.fake.setLock(Number(id), 'backup');
  // Seen with the next resources snapshot, at most its TTL (5 s) later.
  cluster.clock.advance(10_000);
  const before = cluster.calls().length;
  let syncs = 0;
  for (let elapsed = 0; elapsed < 3 * HOUR; elapsed += MINUTE, syncs += 1) {
    const vm = await driver.describe(id);
    t.equal(vm.lock, 'backup');
    await t.rejects(driver.power(ref, 'on'), { code: 'Busy', message: `VM ${id} is locked (backup)` });
    await t.rejects(driver.delete(ref), { code: 'Busy' });
    cluster.clock.advance(MINUTE);
  }
  const calls = cluster.calls().slice(before);
  t.equal(calls.filter((request) => request.method !== 'GET').length, 0, 'nothing is sent to a locked VM');
  // describe: the resources list and the VM's config and status (a locked VM is never cached);
  // power and delete: one fresh config read each.
  t.ok(calls.length <= syncs * 5, `${calls.length} PVE calls for ${syncs} rounds`);
  cluster.fake.setLock(Number(id), undefined);
  cluster.clock.advance(10_000);
  t.equal((await driver.describe(id)).lock, undefined, 'seen as soon as someone unlocks it');
});

t.test('a stale clone lock without our marker holds no create up once no clone of ours runs', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const stale = cluster.fake.addForeignVm({ name: 'half-cloned' });
  cluster.fake.setLock(stale, 'clone');
  t.equal(await driver.findByIdentity(owner('b4').uid), undefined);
  const id = await createVM(cluster, driver, basicSpec('web', owner('b4')));
  t.not(id, String(stale));
  t.equal(cluster.fake.vm(stale)?.lock, 'clone', 'never touched');
});
