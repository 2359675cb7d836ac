// The placement record against the fake PVE (schema-checked): written with the identity at create,
// as marker JSON and as tags, kept through every tags write, and listed per node by the inventory
// from the one resource list.

import t, { type Test } from 'tap';
import type { Driver, PlacedVMInfo, PlacementRecord } from '../../../src/contracts/driver.js';
import { GiB } from '../../../src/contracts/quantity.js';
import { ProxmoxClient } from '../../../src/hypervisors/proxmox/client.js';
import { proxmoxConfigFromEnv } from '../../../src/hypervisors/proxmox/config.js';
import { hasTags, ownerFromPlaceholder, ownerFromTags, ownerTag, parseMarker, placeholderName, tagsFor, userTags } from '../../../src/hypervisors/proxmox/identity.js';
import { recordFromTags, recordTags } from '../../../src/hypervisors/proxmox/placement-record.js';
import { basicSpec } from '../../conformance/driver-suite.js';
import type { FakePveOptions } from '../../fakes/proxmox/index.js';
import { MINUTE, TOKEN_ENV, createVM, fakeCluster, owner, type FakeCluster } from './fake-pve.js';

/** The default templates, plus one of the same name on pve2, so a VM can be made on either node. */
const TWO_NODES: FakePveOptions = {
  templates: [
    { vmid: 9000, name: 'ubuntu-22-template', node: 'pve1', diskGiB: 10, bus: 'scsi', cloudInit: true },
    { vmid: 9002, name: 'ubuntu-22-template', node: 'pve2', diskGiB: 10, bus: 'scsi', cloudInit: true },
  ],
};

const LABELS: Record<string, string> = {
  'app.kubernetes.io/name': 'Web-Frontend',
  Tier: 'Gold',
  'example.com/a=b': 'x=y',
  city: 'Zürich/東京 ☃',
  empty: '',
};
const RECORD: PlacementRecord = { labels: LABELS, order: 1_712_345_678_901 };

function pveClient(t: Test, cluster: FakeCluster): ProxmoxClient {
  const client = new ProxmoxClient(proxmoxConfigFromEnv({ PVE_ENDPOINT: cluster.fake.url, ...TOKEN_ENV }));
  t.teardown(() => client.close());
  return client;
}

const sorted = (tags: readonly string[]): string[] => [...tags].sort();

/** The VMs the inventory lists on `node`. */
async function placedOn(driver: Driver, node: string): Promise<PlacedVMInfo[]> {
  const host = (await driver.inventory()).hosts.find((candidate) => candidate.name === node);
  if (host === undefined) throw new Error(`no host ${node}`);
  return host.placed ?? [];
}

t.test('the driver offers placement policies', async (t) => {
  const cluster = await fakeCluster(t);
  t.equal(cluster.driver().capabilities.placementPolicy, true);
});

t.test('a VM created with a placement record is listed on its node with its exact labels, order, owner, CPUs and memory', async (t) => {
  const cluster = await fakeCluster(t, TWO_NODES);
  const driver = cluster.driver();
  const web = owner('b1');
  const spec = basicSpec('web', web, { cpus: 3, memoryBytes: 3 * GiB, placement: { host: 'pve2' }, tags: ['prod'], placementRecord: RECORD });
  const id = await createVM(cluster, driver, spec);
  const vm = cluster.fake.vm(Number(id));
  t.equal(vm?.node, 'pve2');
  t.same(sorted(vm?.tags ?? []), sorted(['virtrigaud', ownerTag(web.uid), 'prod', ...recordTags(RECORD)]), 'the record is tagged next to the identity');
  t.same(parseMarker(vm?.config['description'])?.placement, RECORD, 'and held by the marker');
  t.same((await driver.describe(id)).tags, ['prod'], 'never reported as user tags');

  const inventory = await driver.inventory();
  t.same(inventory.hosts.find((host) => host.name === 'pve1')?.placed, [], 'nothing on pve1 (templates are not VMs)');
  t.same(inventory.hosts.find((host) => host.name === 'pve2')?.placed, [{ name: 'web', owner: web.uid, labels: LABELS, order: RECORD.order, cpus: 3, memoryBytes: 3 * GiB }]);
});

t.test('a VM created without a placement record is tagged as before and listed with no labels and no order', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const web = owner('b2');
  const id = await createVM(cluster, driver, basicSpec('web', web));
  const vm = cluster.fake.vm(Number(id));
  t.same(sorted(vm?.tags ?? []), sorted(['virtrigaud', ownerTag(web.uid)]));
  t.equal(parseMarker(vm?.config['description'])?.placement, undefined);
  t.same(await placedOn(driver, 'pve1'), [{ name: 'web', owner: web.uid, labels: {}, cpus: 2, memoryBytes: 2 * GiB }]);
});

t.test('a foreign VM is listed with no owner and no labels', async (t) => {
  const cluster = await fakeCluster(t, TWO_NODES);
  const driver = cluster.driver();
  await createVM(cluster, driver, basicSpec('web', owner('b3'), { placement: { host: 'pve2' }, placementRecord: RECORD }));
  cluster.fake.addForeignVm({ name: 'legacy-db', node: 'pve2', running: true });
  const placed = await placedOn(driver, 'pve2');
  t.equal(placed.length, 2);
  const foreign = placed.find((vm) => vm.owner === undefined);
  t.same(foreign?.labels, {});
  t.equal(foreign?.order, undefined);
  t.notOk(foreign?.settling);
  t.ok(foreign !== undefined && foreign.cpus > 0 && foreign.memoryBytes > 0, 'its resources count');
});

t.test('a user-tag change keeps the record, and the same change again posts nothing', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const web = owner('b4');
  const id = await createVM(cluster, driver, basicSpec('web', web, { tags: ['prod'], placementRecord: RECORD }));
  const ref = { id, owner: web };
  await cluster.finish(driver, (await driver.power(ref, 'on')).task, 'start');

  await cluster.finish(driver, (await driver.reconfigure(ref, { tags: ['canary', 'team-a'] })).task, 'retag');
  t.same(sorted(cluster.fake.vm(Number(id))?.tags ?? []), sorted(['virtrigaud', ownerTag(web.uid), 'canary', 'team-a', ...recordTags(RECORD)]));
  t.same((await driver.describe(id)).tags, ['canary', 'team-a']);
  t.same(await placedOn(driver, 'pve1'), [{ name: 'web', owner: web.uid, labels: LABELS, order: RECORD.order, cpus: 2, memoryBytes: 2 * GiB }]);

  const writes = cluster.calls().filter((request) => request.method !== 'GET').length;
  cluster.clock.advance(MINUTE);
  t.same(await driver.reconfigure(ref, { tags: ['team-a', 'canary'] }), {}, 'nothing to do');
  t.same(await driver.reconfigure(ref, { tags: ['canary', 'team-a'] }), {}, 'still nothing to do');
  t.equal(cluster.calls().filter((request) => request.method !== 'GET').length, writes, 'no POST or PUT');

  await cluster.finish(driver, (await driver.reconfigure(ref, { tags: [] })).task, 'untag');
  t.same(sorted(cluster.fake.vm(Number(id))?.tags ?? []), sorted(['virtrigaud', ownerTag(web.uid), ...recordTags(RECORD)]), 'every user tag gone, the record kept');
});

t.test('record tags someone removed are written back with the next user-tag change', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const client = pveClient(t, cluster);
  const web = owner('b5');
  const id = await createVM(cluster, driver, basicSpec('web', web, { tags: ['prod'], placementRecord: RECORD }));
  await client.put(`/nodes/pve1/qemu/${id}/config`, { tags: `virtrigaud;${ownerTag(web.uid)};prod` });
  cluster.clock.advance(MINUTE);
  t.same(await placedOn(driver, 'pve1'), [{ name: 'web', owner: web.uid, labels: {}, cpus: 2, memoryBytes: 2 * GiB }], 'the list shows what PVE holds');

  await cluster.finish(driver, (await driver.reconfigure({ id, owner: web }, { tags: ['prod'] })).task, 'restore');
  t.same(sorted(cluster.fake.vm(Number(id))?.tags ?? []), sorted(['virtrigaud', ownerTag(web.uid), 'prod', ...recordTags(RECORD)]), 'restored from the marker');
});

t.test('a clone in flight is settling: locked without tags, then with the copied tags until its configuration step', async (t) => {
  const cluster = await fakeCluster(t, { taskDurations: { qmclone: 10 * MINUTE } });
  const driver = cluster.driver();
  const web = owner('b6');
  const spec = basicSpec('web', web, { placementRecord: RECORD });
  const created = await driver.create(spec);
  t.equal(cluster.fake.vm(Number(created.id))?.lock, 'clone');
  t.same(cluster.fake.vm(Number(created.id))?.tags, [], 'no tags while the clone runs');
  const [during] = await placedOn(driver, 'pve1');
  t.equal(during?.settling, true);
  t.equal(during?.owner, undefined, 'no owner guessed');
  t.same(during?.labels, {});

  await cluster.finish(driver, created.task, 'clone', MINUTE, 20 * MINUTE);
  t.equal((await driver.describe(created.id)).incomplete, true);
  const [cloned] = await placedOn(driver, 'pve1');
  t.match(cloned, { name: placeholderName(web.uid), owner: web.uid, labels: {}, settling: true }, 'cloned, not yet configured: the placeholder name names the owner');
  t.equal(cloned?.order, undefined);

  await cluster.finish(driver, (await driver.create(spec)).task, 'configure');
  t.same(await placedOn(driver, 'pve1'), [{ name: 'web', owner: web.uid, labels: LABELS, order: RECORD.order, cpus: 2, memoryBytes: 2 * GiB }]);
});

t.test("a copy of a VM is settling while it carries its source's tags, then takes its own owner and record", async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const source = owner('b7');
  const id = await createVM(cluster, driver, basicSpec('web', source, { placementRecord: RECORD }));
  const target = owner('b8', 'copy');
  const copy = await driver.clone({ id, owner: source }, { name: 'copy', owner: target, linked: false });
  await cluster.finish(driver, copy.task, 'clone');
  t.same(sorted(cluster.fake.vm(Number(copy.id))?.tags ?? []), sorted(['virtrigaud', ownerTag(source.uid), ...recordTags(RECORD)]), "PVE copied the source's tags");
  const placed = await placedOn(driver, 'pve1');
  t.same(placed.map((vm) => [vm.owner, vm.labels, vm.settling]), [
    [source.uid, LABELS, undefined],
    [target.uid, {}, true],
  ]);

  const own: PlacementRecord = { labels: { app: 'copy' }, order: RECORD.order + 1 };
  await createVM(cluster, driver, basicSpec('copy', target, { placementRecord: own }));
  const after = await placedOn(driver, 'pve1');
  t.same(after.map((vm) => [vm.owner, vm.labels, vm.order, vm.settling]), [
    [source.uid, LABELS, RECORD.order, undefined],
    [target.uid, { app: 'copy' }, own.order, undefined],
  ]);
});

t.test('record tags that do not decode are ignored, and the owner still comes from its tag', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const client = pveClient(t, cluster);
  const web = owner('b9');
  const record: PlacementRecord = { labels: { app: 'web', k: 'v1' }, order: 42 };
  const id = await createVM(cluster, driver, basicSpec('web', web, { tags: ['prod'], placementRecord: record }));
  const malformed = [
    'vr-l-zz-00', // not hex
    'vr-l-6162', // no value part
    'vr-l-ff-00', // not UTF-8
    'vr-l-616-62', // odd length
    'vr-l-6b-7632', // a second value for `k`
    'vr-lollipop',
    'vr-o-soon',
    'vr-o-12.',
    'VR-L-6170702d6e616d65-',
  ];
  const tags = [...(cluster.fake.vm(Number(id))?.tags ?? []), ...malformed];
  await client.put(`/nodes/pve1/qemu/${id}/config`, { tags: tags.join(';') });
  cluster.clock.advance(MINUTE);

  const [placed] = await placedOn(driver, 'pve1');
  t.equal(placed?.owner, web.uid);
  t.same(placed?.labels, { app: 'web', 'app-name': '' }, '`k` is tagged twice and left out; a re-cased tag still decodes');
  t.equal(placed?.order, 42);
  t.same((await driver.describe(id)).tags, ['prod'], 'none of them is a user tag');
  t.equal((await driver.findByIdentity(web.uid))?.id, id);
});

t.test('inventory reads one resource list and one bridge list per node, however many VMs there are', async (t) => {
  const cluster = await fakeCluster(t, TWO_NODES);
  const driver = cluster.driver();
  for (const [index, host] of ['pve1', 'pve2', 'pve2', 'pve1'].entries()) {
    await createVM(cluster, driver, basicSpec(`vm${index}`, owner(`c${index}`), { placement: { host }, placementRecord: { labels: { i: String(index) }, order: index } }));
  }
  cluster.fake.addForeignVm({ name: 'legacy', node: 'pve1' });
  cluster.clock.advance(MINUTE);
  const before = cluster.calls().length;
  const inventory = await driver.inventory();
  const calls = cluster.calls().slice(before);
  t.same(sorted(calls.map((call) => `${call.method} ${call.path}`)), ['GET /cluster/resources', 'GET /nodes/pve1/network', 'GET /nodes/pve2/network']);
  t.same(
    inventory.hosts.map((host) => [host.name, host.vms, (host.placed ?? []).map((vm) => vm.labels['i'] ?? '-').sort()]),
    [
      ['pve1', 3, ['-', '0', '3']],
      ['pve2', 2, ['1', '2']],
    ],
  );
});

t.test('a record that cannot be kept is refused before anything is cloned', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const before = cluster.calls().length;
  for (const order of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
    await t.rejects(driver.create(basicSpec('web', owner('d1'), { placementRecord: { labels: {}, order } })), { code: 'InvalidSpec', message: /placement order/ });
  }
  t.equal(cluster.calls().length, before, 'PVE was not asked anything');

  const labels = Object.fromEntries(Array.from({ length: 100 }, (_, index) => [`example.com/label-${index}`, 'v'.repeat(63)]));
  await t.rejects(driver.create(basicSpec('web', owner('d2'), { placementRecord: { labels, order: 1 } })), { code: 'InvalidSpec', message: /labels are too large/ });
  t.equal(cluster.calls('POST', /\/clone$/).length, 0, 'nothing cloned');
});

t.test('a large record that fits the description is kept whole, in the marker and in the tags', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const web = owner('d3');
  const labels = Object.fromEntries(Array.from({ length: 40 }, (_, index) => [`example.com/label-${index}`, `V${index}`.padEnd(63, 'v')]));
  const id = await createVM(cluster, driver, basicSpec('web', web, { placementRecord: { labels, order: 5 } }));
  t.same(parseMarker(cluster.fake.vm(Number(id))?.config['description'])?.placement, { labels, order: 5 });
  t.same(await placedOn(driver, 'pve1'), [{ name: 'web', owner: web.uid, labels, order: 5, cpus: 2, memoryBytes: 2 * GiB }]);
});

t.test('the record encodes into PVE tags and reads back exactly', async (t) => {
  const record: PlacementRecord = { labels: { ...LABELS, '': 'no key', __proto__x: 'p' }, order: 1.5 };
  const tags = recordTags(record);
  t.ok(tags.every((tag) => /^[a-z0-9_][a-z0-9_\-+.]*$/.test(tag)), 'every tag is a pve-tag, lower case');
  t.same(recordFromTags(tags), record);
  t.same(recordFromTags([...tags].reverse()), record, 'in any order');
  t.same(recordFromTags(recordTags({ labels: {}, order: 0 })), { labels: {}, order: 0 });
  t.same(recordFromTags(recordTags({ labels: {}, order: 1e-7 })), { labels: {}, order: 1e-7 });
  t.same(recordFromTags(['vr-o-1', 'vr-o-2']), { labels: {} }, 'two orders: none');
  t.same(recordFromTags(['prod', 'virtrigaud', 'vr-x']), { labels: {} });
  const proto = recordFromTags(recordTags({ labels: JSON.parse('{"__proto__":"x"}') as Record<string, string>, order: 1 })).labels;
  t.same(Object.keys(proto), ['__proto__'], 'a key named __proto__ is a label like any other');
  t.equal(Object.getPrototypeOf(proto), Object.prototype);
});

t.test('tags with a record are compared as sets, and the owner is read from the tags beside it', async (t) => {
  const uid = owner('e1').uid;
  const record: PlacementRecord = { labels: { app: 'web' }, order: 7 };
  const value = tagsFor(uid, ['prod'], record);
  t.same(parseTagsOf(value), ['virtrigaud', ownerTag(uid), ...recordTags(record), 'prod']);
  t.ok(hasTags(parseTagsOf(value).reverse().join(';'), uid, ['prod'], record));
  t.notOk(hasTags(tagsFor(uid, ['prod']), uid, ['prod'], record), 'the record tags are missing');
  t.notOk(hasTags(value, uid, ['prod']), 'record tags nobody asked for');
  t.same(userTags(value), ['prod']);
  t.equal(ownerFromTags(parseTagsOf(value)), uid);
  t.equal(ownerFromTags(['virtrigaud', 'vr-other-owner-uid', 'vr-o-3']), 'other-owner-uid', 'an owner tag starting with o is still one');
  t.equal(ownerFromTags(['virtrigaud', ...recordTags(record)]), undefined, 'the record alone names no owner');
  t.equal(ownerFromTags(['vr-a', 'vr-b']), undefined, 'two owner tags: the list cannot tell');
  t.equal(ownerFromPlaceholder(placeholderName(uid)), uid, 'a placeholder name names its owner');
  t.equal(ownerFromPlaceholder('vr-web'), undefined, 'an ordinary name that starts like one does not');
  t.equal(ownerFromTags([ownerTag(uid), 'vr-lollipop']), uid, 'next to a tag added by hand, the one naming a Kubernetes UID');
  t.equal(ownerFromTags([ownerTag(uid), ownerTag(owner('e2').uid)]), undefined, 'two Kubernetes UIDs: the list cannot tell');
});

function parseTagsOf(value: string): string[] {
  return value.split(';');
}

t.test('PVE_NODE_SELECTOR is the outer bound of placement: nodes outside it are listed but not selectable', async (t) => {
  const cluster = await fakeCluster(t);
  const inventory = await cluster.driver({}, { PVE_NODE_SELECTOR: 'pve2' }).inventory();
  t.same(
    inventory.hosts.map((host) => [host.name, host.selectable]),
    [
      ['pve1', false],
      ['pve2', undefined],
    ],
  );
  const open = await cluster.driver().inventory();
  t.ok(open.hosts.every((host) => host.selectable === undefined), 'without a selector every node is selectable');
});
