// The in-memory API server behaves like kube-apiserver where the Metacontroller stand-in and the
// lifecycle tests depend on it.
import t from 'tap';
import { FakeClock } from '../helpers/clock.js';
import { FakeCluster, type KubeObject, type WatchEvent } from './index.js';

const API_VERSION = 'toy.example.io/v1';

function widget(name: string, extra: Partial<KubeObject['metadata']> = {}): KubeObject {
  return { apiVersion: API_VERSION, kind: 'Widget', metadata: { name, namespace: 'team-a', ...extra }, spec: { size: 1 } };
}

function recorded(cluster: FakeCluster): WatchEvent['type'][] {
  const types: WatchEvent['type'][] = [];
  cluster.watch((event) => types.push(event.type));
  return types;
}

t.test('create assigns identity, generation 1 and a creation time from the clock, and refuses duplicates', async (t) => {
  const cluster = new FakeCluster({ clock: new FakeClock(Date.parse('2026-03-04T05:06:07.890Z')) });
  const created = cluster.create(widget('w', { uid: 'mine', generation: 7 }));
  t.match(created.metadata, { generation: 1, creationTimestamp: '2026-03-04T05:06:07Z', resourceVersion: /^\d+$/ });
  t.not(created.metadata.uid, 'mine');
  t.throws(() => cluster.create(widget('w')), /AlreadyExists/);
});

t.test('get returns copies that do not change the stored object', async (t) => {
  const cluster = new FakeCluster({ clock: new FakeClock() });
  cluster.create(widget('w'));
  const copy = cluster.get(API_VERSION, 'Widget', 'team-a', 'w');
  if (copy) copy.spec = { size: 99 };
  t.same(cluster.get(API_VERSION, 'Widget', 'team-a', 'w')?.spec, { size: 1 });
});

t.test('generation moves on spec changes, not on metadata or status changes', async (t) => {
  const cluster = new FakeCluster({ clock: new FakeClock() });
  cluster.create(widget('w'));
  cluster.setLabel(API_VERSION, 'Widget', 'team-a', 'w', 'tier', 'gold');
  cluster.updateStatus(API_VERSION, 'Widget', 'team-a', 'w', { phase: 'Ready' });
  t.equal(cluster.get(API_VERSION, 'Widget', 'team-a', 'w')?.metadata.generation, 1);
  const patched = cluster.patchSpec(API_VERSION, 'Widget', 'team-a', 'w', { size: null, color: 'red' });
  t.same(patched.spec, { color: 'red' }, 'JSON merge patch: null deletes');
  t.equal(patched.metadata.generation, 2);
  t.same(patched.status, { phase: 'Ready' }, 'update keeps status');
});

t.test('a write that changes nothing emits no event', async (t) => {
  const cluster = new FakeCluster({ clock: new FakeClock() });
  cluster.create(widget('w'));
  const events = recorded(cluster);
  cluster.updateStatus(API_VERSION, 'Widget', 'team-a', 'w', { phase: 'Ready' });
  cluster.updateStatus(API_VERSION, 'Widget', 'team-a', 'w', { phase: 'Ready' });
  t.same(events, ['MODIFIED']);
});

t.test('updateStatus validates the whole object and stores what the pruner keeps', async (t) => {
  const cluster = new FakeCluster({
    clock: new FakeClock(),
    validators: new Map([['Widget', (o: KubeObject) => ('bad' in ((o.status as object | undefined) ?? {}) ? ['status.bad: not allowed'] : [])]]),
    pruners: new Map([['Widget', (o: KubeObject) => ({ ...o, status: { phase: (o.status as { phase?: string }).phase } })]]),
  });
  cluster.create(widget('w'));
  t.throws(() => cluster.updateStatus(API_VERSION, 'Widget', 'team-a', 'w', { bad: 1 }), /Invalid.*status\.bad: not allowed/);
  const stored = cluster.updateStatus(API_VERSION, 'Widget', 'team-a', 'w', { phase: 'Ready', extra: true });
  t.strictSame(stored.status, { phase: 'Ready' });
});

t.test('delete with finalizers marks the object deleting and bumps its generation', async (t) => {
  const cluster = new FakeCluster({ clock: new FakeClock() });
  cluster.create(widget('w', { finalizers: ['example.io/keep'] }));
  cluster.delete(API_VERSION, 'Widget', 'team-a', 'w');
  const deleting = cluster.get(API_VERSION, 'Widget', 'team-a', 'w');
  t.ok(deleting?.metadata.deletionTimestamp);
  t.equal(deleting?.metadata.generation, 2);
  t.throws(
    () => cluster.update({ ...deleting!, metadata: { ...deleting!.metadata, finalizers: ['example.io/keep', 'example.io/new'] } }),
    /Forbidden/,
  );
  cluster.removeFinalizer(API_VERSION, 'Widget', 'team-a', 'w', 'example.io/keep');
  t.equal(cluster.get(API_VERSION, 'Widget', 'team-a', 'w'), undefined);
});

t.test('removing an object garbage-collects what it controls', async (t) => {
  const cluster = new FakeCluster({ clock: new FakeClock() });
  const owner = cluster.create(widget('w'));
  const ref = { apiVersion: API_VERSION, kind: 'Widget', name: 'w', uid: String(owner.metadata.uid), controller: true };
  cluster.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'owned', namespace: 'team-a', ownerReferences: [ref] } });
  cluster.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'free', namespace: 'team-a' } });
  cluster.delete(API_VERSION, 'Widget', 'team-a', 'w');
  t.same(cluster.list('v1', 'ConfigMap').map((c) => c.metadata.name), ['free']);
});

t.test('wipeStatus removes the status entirely', async (t) => {
  const cluster = new FakeCluster({ clock: new FakeClock() });
  cluster.create(widget('w'));
  cluster.updateStatus(API_VERSION, 'Widget', 'team-a', 'w', { phase: 'Ready' });
  t.notOk('status' in cluster.wipeStatus(API_VERSION, 'Widget', 'team-a', 'w'));
});
