// Restarted and replicated provider runtimes: consecutive calls served by different ProxmoxDriver
// instances against one fake PVE. Whatever one instance started must be found, waited on and
// continued by another; nothing may be made twice or left behind.

import t from 'tap';
import { GiB } from '../../../src/contracts/quantity.js';
import { basicSpec } from '../../conformance/driver-suite.js';
import { HOUR, MINUTE, createVM, fakeCluster, owner } from './fake-pve.js';

const CLONE_MS = 3 * HOUR;

t.test('a restarted runtime neither answers "no VM" nor clones again while the first one\'s clone runs, then continues that VM', async (t) => {
  // One template drive and a cloud-init drive: qemu-server copies the first at a third of the clone.
  const cluster = await fakeCluster(t, { taskDurations: { qmclone: CLONE_MS } });
  const web = owner('a1');
  const spec = basicSpec('web', web);
  const a = cluster.driver();
  const startedAt = cluster.clock.now();
  const created = await a.create(spec);
  t.ok(created.task, 'the clone runs as a task');
  await a.close();

  const b = cluster.driver();
  t.equal(cluster.fake.vm(Number(created.id))?.lock, 'clone');
  const target = await b.describe(created.id);
  t.equal(target.lock, 'clone', 'describe shows the clone lock');
  t.equal(target.owner, undefined, 'and no owner: PVE has not written the marker yet');

  // For the first hour the target holds only "qmclone temporary file" and the lock.
  const before = cluster.calls().length;
  let lookups = 0;
  while (cluster.clock.now() < startedAt + CLONE_MS / 3 - MINUTE) {
    await t.rejects(b.findByIdentity(web.uid), { code: 'Busy', message: new RegExp(`VM ${created.id} on node 'pve1' is being created by this provider`) });
    await t.rejects(b.create(spec), { code: 'Busy' });
    lookups += 1;
    cluster.clock.advance(MINUTE);
  }
  t.ok(lookups >= 58, `${lookups} lookups over an hour of fake time`);
  t.equal(cluster.calls('POST', /\/clone$/).length, 1, 'exactly one clone');
  const perLookup = (cluster.calls().length - before) / lookups;
  t.ok(perLookup <= 8, `${perLookup} PVE calls per findByIdentity + create pair`);

  // The first drive is copied: the marker names the owner while the lock stays.
  cluster.clock.advance(2 * MINUTE);
  const found = await b.findByIdentity(web.uid);
  t.equal(found?.id, created.id);
  t.equal(found?.lock, 'clone');
  t.same(found?.owner, web);
  t.same(await b.create(spec), { id: created.id, task: created.task }, "B waits on A's clone task, found on PVE");

  await cluster.finish(b, created.task, 'clone', MINUTE, CLONE_MS);
  t.equal((await b.describe(created.id)).incomplete, true);
  const configured = await b.create(spec);
  t.equal(configured.id, created.id);
  t.match(configured.task, /:qmconfig:/);
  await cluster.finish(b, configured.task, 'configure');
  const vm = await b.describe(created.id);
  t.equal(vm.name, 'web');
  t.notOk(vm.incomplete);
  t.equal(cluster.calls('POST', /\/clone$/).length, 1);
  t.equal(cluster.fake.vms().filter((entry) => entry.config['template'] === undefined).length, 1, 'one VM on PVE');
});

t.test('two live runtimes serving alternate calls create, continue and delete one VM', async (t) => {
  const cluster = await fakeCluster(t, { taskDurations: { qmclone: 10 * MINUTE } });
  const web = owner('a2');
  const spec = basicSpec('web', web, { disks: [{ name: 'root', sizeBytes: 12 * GiB, root: true }] });
  const replicas = [cluster.driver(), cluster.driver()];
  const next = (() => {
    let turn = 0;
    return () => replicas[turn++ % 2]!;
  })();

  // Create: each sync on the other replica, a minute apart, as Metacontroller's resyncs would.
  let id: string | undefined;
  for (let sync = 0; sync < 30; sync += 1) {
    const driver = next();
    const found = await driver.findByIdentity(web.uid).catch((error: { code?: string }) => (error.code === 'Busy' ? 'busy' : Promise.reject(error)));
    if (found === undefined || (found !== 'busy' && found.incomplete === true)) {
      const created = await driver.create(spec).catch((error: { code?: string }) => (error.code === 'Busy' ? undefined : Promise.reject(error)));
      id = created?.id ?? id;
    } else if (found !== 'busy' && found.lock === undefined) {
      id = found.id;
      break;
    }
    cluster.clock.advance(MINUTE);
  }
  t.ok(id, 'created');
  t.equal(cluster.calls('POST', /\/clone$/).length, 1, 'one clone');
  t.equal(cluster.calls('POST', /\/qemu\/\d+\/config$/).length, 1, 'one configuration');
  const ref = { id: id ?? '', owner: web };
  t.equal((await next().describe(ref.id)).name, 'web');

  const on = await next().power(ref, 'on');
  await cluster.finish(next(), on.task, 'start');
  t.equal((await next().describe(ref.id)).powerState, 'On');

  // Delete, alternating: stop on one replica, destroy on the other, "gone" seen by both.
  const stop = await next().delete(ref);
  t.match(stop.task, /:qmstop:/);
  await cluster.finish(next(), stop.task, 'stop');
  const destroy = await next().delete(ref);
  t.match(destroy.task, /:qmdestroy:/);
  await cluster.finish(next(), destroy.task, 'destroy');
  for (const driver of replicas) {
    await t.rejects(driver.describe(ref.id), { code: 'NotFound' });
    t.equal(await driver.findByIdentity(web.uid), undefined);
  }
  t.equal(cluster.fake.vm(Number(ref.id)), undefined);
});

t.test('a VM created by a runtime that restarted between the steps is continued by the next, not cloned again', async (t) => {
  const cluster = await fakeCluster(t);
  const web = owner('a3');
  const spec = basicSpec('web', web);
  const first = cluster.driver();
  const created = await first.create(spec);
  await cluster.finish(first, created.task, 'clone');
  await first.close();
  const id = await createVM(cluster, cluster.driver(), spec);
  t.equal(id, created.id);
  t.equal(cluster.calls('POST', /\/clone$/).length, 1);
});
