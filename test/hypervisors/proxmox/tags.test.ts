// User tags against the fake PVE (schema-checked): written next to the identity tags at creation,
// reported without them, replaced on a running VM without ever losing them.

import t, { type Test } from 'tap';
import { ProxmoxClient } from '../../../src/hypervisors/proxmox/client.js';
import { proxmoxConfigFromEnv } from '../../../src/hypervisors/proxmox/config.js';
import { hasTags, ownerTag, tagsFor, userTags } from '../../../src/hypervisors/proxmox/identity.js';
import { basicSpec } from '../../conformance/driver-suite.js';
import { HOUR, MINUTE, TOKEN_ENV, createVM, fakeCluster, owner, type FakeCluster } from './fake-pve.js';

function pveClient(t: Test, cluster: FakeCluster): ProxmoxClient {
  const client = new ProxmoxClient(proxmoxConfigFromEnv({ PVE_ENDPOINT: cluster.fake.url, ...TOKEN_ENV }));
  t.teardown(() => client.close());
  return client;
}

const sorted = (tags: readonly string[]): string[] => [...tags].sort();

t.test('a VM is created with the user tags next to the identity tags, and describe reports only the user tags', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const web = owner('a1');
  const id = await createVM(cluster, driver, basicSpec('web', web, { tags: ['prod', 'team-a'] }));
  t.same(sorted(cluster.fake.vm(Number(id))?.tags ?? []), sorted(['virtrigaud', ownerTag(web.uid), 'prod', 'team-a']), 'stored in PVE');
  t.same((await driver.describe(id)).tags, ['prod', 'team-a']);
  t.same((await driver.findByIdentity(web.uid))?.tags, ['prod', 'team-a']);
});

t.test('a VM created without user tags reports none', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const id = await createVM(cluster, driver, basicSpec('web', owner('a2')));
  t.same((await driver.describe(id)).tags, []);
  t.same(sorted(cluster.fake.vm(Number(id))?.tags ?? []), sorted(['virtrigaud', ownerTag(owner('a2').uid)]));
});

t.test('the tags of a running VM are replaced at once, the identity tags stay, and the VM stays findable by its owner', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const web = owner('a3');
  const id = await createVM(cluster, driver, basicSpec('web', web, { tags: ['prod', 'team-a'] }));
  const ref = { id, owner: web };
  await cluster.finish(driver, (await driver.power(ref, 'on')).task, 'start');

  const changed = await driver.reconfigure(ref, { tags: ['canary', 'prod'] });
  await cluster.finish(driver, changed.task, 'retag');
  const vm = cluster.fake.vm(Number(id));
  t.same(sorted(vm?.tags ?? []), sorted(['virtrigaud', ownerTag(web.uid), 'canary', 'prod']));
  t.same(vm?.pending, {}, 'applied live, nothing left pending');
  t.equal(vm?.status, 'running');
  t.same((await driver.describe(id)).tags, ['canary', 'prod']);
  const found = await driver.findByIdentity(web.uid);
  t.equal(found?.id, id);
  t.same(found?.tags, ['canary', 'prod']);

  await cluster.finish(driver, (await driver.reconfigure(ref, { tags: [] })).task, 'untag');
  t.same(sorted(cluster.fake.vm(Number(id))?.tags ?? []), sorted(['virtrigaud', ownerTag(web.uid)]), 'every user tag removed, ours kept');
  t.equal((await driver.findByIdentity(web.uid))?.id, id);
});

t.test('tags already as wanted are not posted again, however often a sync asks', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const web = owner('a4');
  const id = await createVM(cluster, driver, basicSpec('web', web, { tags: ['prod'] }));
  const ref = { id, owner: web };
  await cluster.finish(driver, (await driver.power(ref, 'on')).task, 'start');
  const posts = cluster.calls('POST', /\/config$/).length;
  const before = cluster.calls().length;
  let syncs = 0;
  for (let elapsed = 0; elapsed < HOUR; elapsed += MINUTE, syncs += 1) {
    const vm = await driver.describe(id);
    // As the hook does: compare as sets, reconfigure only on a difference. The driver is asked
    // anyway every tenth sync, in another order, and must find nothing to do.
    if (syncs % 10 === 0) t.same(await driver.reconfigure(ref, { tags: ['prod', ...(vm.tags ?? [])].reverse() }), {});
    cluster.clock.advance(MINUTE);
  }
  t.equal(cluster.calls('POST', /\/config$/).length, posts, 'no config POST');
  const calls = cluster.calls().length - before;
  // describe from the cache (a resources list per snapshot TTL, a refresh per DETAILS_TTL_MS),
  // plus a config read per reconfigure.
  t.ok(calls <= syncs * 2 + 12, `${calls} calls for ${syncs} syncs`);
});

t.test('tags changed by someone else show in describe within a resources snapshot, and the next change restores ours', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const client = pveClient(t, cluster);
  const web = owner('a5');
  const id = await createVM(cluster, driver, basicSpec('web', web, { tags: ['prod'] }));
  const ref = { id, owner: web };
  t.same((await driver.describe(id)).tags, ['prod'], 'cached from here on');

  // An admin replaces every tag, ours included (PUT is synchronous: no task the driver could see).
  await client.put(`/nodes/pve1/qemu/${id}/config`, { tags: 'adhoc;prod' });
  cluster.clock.advance(MINUTE);
  t.same((await driver.describe(id)).tags, ['adhoc', 'prod'], 'the row changed: the config is read again');

  await cluster.finish(driver, (await driver.reconfigure(ref, { tags: ['adhoc', 'prod'] })).task, 'restore');
  t.same(sorted(cluster.fake.vm(Number(id))?.tags ?? []), sorted(['virtrigaud', ownerTag(web.uid), 'adhoc', 'prod']), 'identity tags restored');
  t.equal((await driver.findByIdentity(web.uid))?.id, id);
});

t.test('a tag that could pass for an identity tag, or is not a PVE tag, is refused before any call', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const web = owner('a6');
  const id = await createVM(cluster, driver, basicSpec('web', web));
  const ref = { id, owner: web };
  const before = cluster.calls().length;
  for (const tag of ['virtrigaud', 'Virtrigaud', `vr-${owner('a7').uid}`, 'VR-x', 'env:prod', 'team/a', 'me@corp', 'has space', '-lead']) {
    await t.rejects(driver.reconfigure(ref, { tags: ['prod', tag] }), { code: 'InvalidSpec', message: new RegExp(`tag '${tag}'`) }, `reconfigure: ${tag}`);
    await t.rejects(driver.create(basicSpec('other', owner('a8'), { tags: [tag] })), { code: 'InvalidSpec', message: new RegExp(`tag '${tag}'`) }, `create: ${tag}`);
  }
  t.equal(cluster.calls().length, before, 'PVE was not asked anything');
  t.same(sorted(cluster.fake.vm(Number(id))?.tags ?? []), sorted(['virtrigaud', ownerTag(web.uid)]));
});

t.test('a tag keeps its case, and two tags PVE would take for one are refused', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const web = owner('aa');
  const id = await createVM(cluster, driver, basicSpec('web', web, { tags: ['Prod', 'team-a'] }));
  t.same((await driver.describe(id)).tags, ['Prod', 'team-a']);
  t.same(await driver.reconfigure({ id, owner: web }, { tags: ['team-a', 'Prod'] }), {}, 'the same tags: nothing to do');
  await t.rejects(driver.reconfigure({ id, owner: web }, { tags: ['Prod', 'prod'] }), { code: 'InvalidSpec', message: "tags 'Prod' and 'prod' differ only in case, which Proxmox VE takes for one tag" });
});

t.test('tags are compared as sets: PVE order and duplicates do not matter, a missing identity tag does', async (t) => {
  const uid = owner('a9').uid;
  t.equal(tagsFor(uid, ['team-a', 'prod', 'prod']), `virtrigaud;${ownerTag(uid)};prod;team-a`);
  t.ok(hasTags(`prod;${ownerTag(uid)};team-a;virtrigaud`, uid, ['team-a', 'prod']));
  t.ok(hasTags(`team-a,prod ${ownerTag(uid)};virtrigaud`, uid, ['prod', 'team-a']), 'pre-7.3 separators');
  t.notOk(hasTags(`virtrigaud;prod;team-a`, uid, ['prod', 'team-a']), 'the owner tag is missing');
  t.notOk(hasTags(`virtrigaud;${ownerTag(uid)};prod`, uid, ['prod', 'team-a']));
  t.same(userTags(`virtrigaud;${ownerTag(uid)};zeta;alpha;alpha`), ['alpha', 'zeta']);
});
