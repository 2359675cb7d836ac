// Nodes that stay down or hang, against the fake PVE: one bad node must not stop creates, lookups
// or the inventory elsewhere in the cluster, and a VM that is the owner's but cannot be read is
// "unknown", never "gone".

import t from 'tap';
import { basicSpec } from '../../conformance/driver-suite.js';
import { HOUR, MINUTE, createVM, fakeCluster, owner } from './fake-pve.js';

// Real milliseconds: the per-node bound is a timer of its own, not the fake clock.
const NODE_TIMEOUT_MS = 150;

t.test('a stale create lock on a node that stays down stops no create or lookup on the others', async (t) => {
  const cluster = await fakeCluster(t);
  const debug: string[] = [];
  const driver = cluster.driver({ debug: (line) => debug.push(line) });
  const stale = cluster.fake.addForeignVm({ name: 'crashed', node: 'pve2' });
  cluster.fake.setLock(stale, 'create');
  cluster.fake.nodeDown('pve2');

  for (let hour = 0; hour < 3; hour += 1) {
    const web = owner(`c1${hour}`);
    const before = cluster.calls().length;
    t.equal(await driver.findByIdentity(web.uid), undefined, `hour ${hour}: nothing ties the unreadable VM to this owner`);
    const id = await createVM(cluster, driver, basicSpec('web', web));
    t.equal(cluster.fake.vm(Number(id))?.node, 'pve1');
    t.ok(cluster.calls().length - before < 40, 'a bounded number of PVE calls per VM');
    cluster.clock.advance(HOUR);
  }
  t.match(debug.join('\n'), new RegExp(`skipped VM ${stale} on node 'pve2': node unreachable`));
  t.equal(cluster.calls('GET', new RegExp(`/qemu/${stale}/config$`)).every((request) => request.status === 595), true);
});

t.test("the owner's VM on a node that is down is Unreachable, never gone, for as long as the node stays down", async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const web = owner('c2');
  const id = await createVM(cluster, driver, basicSpec('web', web));
  cluster.fake.nodeDown('pve1', { forMs: 2 * HOUR });
  cluster.clock.advance(MINUTE);
  for (let elapsed = MINUTE; elapsed < 2 * HOUR; elapsed += 10 * MINUTE) {
    await t.rejects(driver.findByIdentity(web.uid), { code: 'Unreachable', message: new RegExp(`VM ${id} on node 'pve1' bears this owner's marks`) });
    await t.rejects(driver.describe(id), { code: 'Unreachable' });
    await t.rejects(driver.create(basicSpec('web', web)), { code: 'Unreachable' });
    cluster.clock.advance(10 * MINUTE);
  }
  t.equal(cluster.calls('POST', /\/clone$/).length, 1, 'never a second clone');
  cluster.clock.advance(MINUTE);
  t.equal((await driver.findByIdentity(web.uid))?.id, id, 'found again once the node is back');
});

t.test('a candidate on a node whose API hangs is skipped after the per-node bound', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver({ nodeTimeoutMs: NODE_TIMEOUT_MS });
  const stale = cluster.fake.addForeignVm({ name: 'crashed', node: 'pve2' });
  cluster.fake.setLock(stale, 'clone');
  cluster.fake.injectFault({ kind: 'hang', path: /^\/nodes\/pve2\//, times: 'always' });
  for (let round = 0; round < 3; round += 1) {
    t.equal(await driver.findByIdentity(owner('c3').uid), undefined);
    cluster.clock.advance(MINUTE);
  }
});

t.test('inventory leaves out a node that corosync lists online but whose API hangs', async (t) => {
  const cluster = await fakeCluster(t);
  const debug: string[] = [];
  const driver = cluster.driver({ nodeTimeoutMs: NODE_TIMEOUT_MS, debug: (line) => debug.push(line) });
  const fault = cluster.fake.injectFault({ kind: 'hang', path: /^\/nodes\/pve2\//, times: 'always' });
  for (let round = 0; round < 3; round += 1) {
    const inventory = await driver.inventory();
    t.same(inventory.hosts.map((host) => host.name), ['pve1']);
    t.same(inventory.networks, ['vmbr0', 'vmbr1', 'vmbr2']);
    t.ok(inventory.datastores.length > 0);
    cluster.clock.advance(MINUTE);
  }
  t.match(debug.join('\n'), /inventory left out node 'pve2'/);
  fault.clear();
  t.same((await driver.inventory()).hosts.map((host) => host.name), ['pve1', 'pve2']);
});

t.test('inventory leaves out a node that is down, and fails only when no node answers', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver({ nodeTimeoutMs: NODE_TIMEOUT_MS });
  cluster.fake.nodeDown('pve2');
  t.same((await driver.inventory()).hosts.map((host) => host.name), ['pve1'], 'offline in the resource list');
  cluster.fake.nodeUp('pve2');
  cluster.fake.injectFault({ kind: 'status', code: 595, path: /^\/nodes\/pve2\//, times: 'always' });
  t.same((await driver.inventory()).hosts.map((host) => host.name), ['pve1'], 'listed online, answering 595');
  cluster.fake.injectFault({ kind: 'hang', path: /^\/nodes\/pve1\//, times: 'always' });
  await t.rejects(driver.inventory(), { code: 'Unreachable' });
});
