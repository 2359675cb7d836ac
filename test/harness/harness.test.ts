// The Metacontroller stand-in against a toy hook server: each test pins one behaviour of a
// healthy sync loop that lifecycle tests rely on (CONTRACT.md §2, §3).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parse } from 'yaml';
import { FakeClock } from '../helpers/clock.js';
import { FakeCluster, MetacontrollerStandIn } from './index.js';
import { API_VERSION, FINALIZER, getWidget, setup, syncOk, widget, widgetController, type HookRequest } from './toy.js';

t.test('status replaces the whole status and gets observedGeneration', async (t) => {
  const seen: HookRequest[] = [];
  const { cluster, mc } = await setup(t, (_hook, request) => {
    seen.push(request);
    return syncOk({ phase: 'Ready' });
  });
  cluster.create(widget('w'));
  await mc.runDue();
  t.notOk('status' in (seen[0]?.parent ?? {}), 'no status key before the first write');
  t.same(getWidget(cluster, 'w')?.status, { phase: 'Ready', observedGeneration: 1 });

  cluster.updateStatus(API_VERSION, 'Widget', 'team-a', 'w', { phase: 'Ready', stale: true, observedGeneration: 1 });
  await mc.runDue();
  t.strictSame(getWidget(cluster, 'w')?.status, { phase: 'Ready', observedGeneration: 1 }, 'unknown fields are gone');
  t.same(seen.at(-1)?.parent.status, { phase: 'Ready', observedGeneration: 1 });
});

t.test('an unchanged status is not written again, so syncing stops', async (t) => {
  const { cluster, mc } = await setup(t, () => syncOk({ phase: 'Ready' }));
  cluster.create(widget('w'));
  t.equal(await mc.runDue(), 2, 'one sync, one more for its own status write');
  t.equal(await mc.runDue(), 0);
});

t.test('a hot loop from a non-deterministic status shows up as many calls', async (t) => {
  let counter = 0;
  const { cluster, mc } = await setup(t, () => syncOk({ counter: counter++ }));
  cluster.create(widget('w'));
  t.equal(await mc.runDue({ maxSyncs: 25 }), 25);
  await t.rejects(mc.settle(() => true, { maxSyncs: 50 }), /hot loop/);
});

t.test('resyncAfterSeconds is honoured in fake time', async (t) => {
  const { clock, cluster, mc } = await setup(t, () => ({ body: { status: {}, children: [], resyncAfterSeconds: 30 } }));
  const start = clock.now();
  cluster.create(widget('w'));
  await mc.runDue();
  const before = mc.calls.length;
  await mc.advance(29_999);
  t.equal(mc.calls.length, before, 'nothing before 30 s');
  await mc.advance(1);
  t.equal(mc.calls.length, before + 1);
  t.equal(mc.calls.at(-1)?.at, start + 30_000);
});

t.test('resyncPeriodSeconds re-syncs every parent', async (t) => {
  const { cluster, mc } = await setup(t, () => syncOk(), { controller: widgetController({ resyncPeriodSeconds: 60 }) });
  cluster.create(widget('a'));
  cluster.create(widget('b'));
  await mc.runDue();
  const before = mc.calls.length;
  await mc.advance(60_000);
  t.same(mc.calls.slice(before).map((c) => c.parent.name).sort(), ['a', 'b']);
});

t.test('finalize runs until finalized, then the object is gone', async (t) => {
  let finalizeCalls = 0;
  const { cluster, mc } = await setup(
    t,
    (hook, request) => {
      if (hook !== 'finalize') return syncOk();
      t.equal(request.finalizing, true);
      finalizeCalls++;
      return { body: { status: {}, children: [], finalized: finalizeCalls >= 3, resyncAfterSeconds: 5 } };
    },
    { controller: widgetController({}, ['sync', 'finalize']) },
  );
  cluster.create(widget('w'));
  await mc.runDue();
  t.same(getWidget(cluster, 'w')?.metadata.finalizers, [FINALIZER]);
  t.same((mc.calls[0]?.request as HookRequest).parent.metadata.finalizers, [FINALIZER], 'added before the first call');
  cluster.delete(API_VERSION, 'Widget', 'team-a', 'w');
  await mc.settle(() => getWidget(cluster, 'w') === undefined);
  t.equal(finalizeCalls, 3);
});

t.test('deleting bumps generation and calls customize again', async (t) => {
  const { cluster, mc } = await setup(
    t,
    (hook) =>
      hook === 'customize' ? { body: { relatedResources: [] } } : { body: { status: {}, children: [], finalized: hook === 'finalize' } },
    { controller: widgetController({}, ['customize', 'sync', 'finalize']) },
  );
  cluster.create(widget('w'));
  await mc.runDue();
  cluster.delete(API_VERSION, 'Widget', 'team-a', 'w');
  await mc.settle(() => getWidget(cluster, 'w') === undefined);
  const customize = mc.calls.filter((c) => c.hook === 'customize').map((c) => (c.request as HookRequest).parent.metadata);
  t.same(customize.map((m) => m.generation), [1, 2]);
  t.ok(customize[1]?.deletionTimestamp);
});

t.test('customize is cached per generation', async (t) => {
  const { cluster, mc } = await setup(
    t,
    (hook) => (hook === 'customize' ? { body: { relatedResources: [] } } : syncOk()),
    { controller: widgetController({}, ['customize', 'sync']) },
  );
  const customizeCalls = () => mc.calls.filter((c) => c.hook === 'customize').length;
  cluster.create(widget('w', { size: 1 }));
  await mc.runDue();
  cluster.setAnnotation(API_VERSION, 'Widget', 'team-a', 'w', 'note', 'x');
  await mc.runDue();
  t.equal(customizeCalls(), 1, 'metadata changes keep the cached answer');
  cluster.patchSpec(API_VERSION, 'Widget', 'team-a', 'w', { size: 2 });
  await mc.runDue();
  t.equal(customizeCalls(), 2);
});

const relatedRules = {
  relatedResources: [
    { apiVersion: 'v1', resource: 'secrets', namespace: 'vault', names: ['creds'] },
    { apiVersion: 'v1', resource: 'configmaps', labelSelector: { matchLabels: { app: 'none' } } },
  ],
};

for (const [keyStyle, key] of [
  ['v1', 'creds'],
  ['v2', 'vault/creds'],
] as const) {
  t.test(`related objects arrive keyed ${keyStyle === 'v1' ? 'by bare name' : 'by namespace/name'} with keyStyle ${keyStyle}, and every rule's type key is present`, async (t) => {
    const syncs: HookRequest[] = [];
    const { cluster, mc } = await setup(
      t,
      (hook, request) => {
        if (hook === 'customize') return { body: relatedRules };
        syncs.push(request);
        return syncOk();
      },
      { controller: widgetController({}, ['customize', 'sync']), keyStyle },
    );
    cluster.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'creds', namespace: 'vault' }, data: { a: 'Yg==' } });
    cluster.create(widget('w'));
    await mc.runDue();
    t.same(Object.keys(syncs[0]?.related ?? {}).sort(), ['ConfigMap.v1', 'Secret.v1']);
    t.same(syncs[0]?.related?.['ConfigMap.v1'], {});
    t.same(Object.keys(syncs[0]?.related?.['Secret.v1'] ?? {}), [key]);
  });
}

t.test('a related object change re-syncs the parent without calling customize', async (t) => {
  const { cluster, mc } = await setup(
    t,
    (hook) => (hook === 'customize' ? { body: relatedRules } : syncOk()),
    { controller: widgetController({}, ['customize', 'sync']) },
  );
  cluster.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'creds', namespace: 'vault' } });
  cluster.create(widget('w'));
  await mc.runDue();
  const before = mc.calls.length;
  cluster.setLabel('v1', 'Secret', 'vault', 'creds', 'rotated', 'yes');
  cluster.create({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'unrelated', namespace: 'vault' } });
  await mc.runDue();
  t.same(mc.calls.slice(before).map((c) => c.hook), ['sync']);
});

t.test('children are created with controller-uid label and ownerReference, and deleted when dropped', async (t) => {
  const childSeen: HookRequest[] = [];
  const { cluster, mc } = await setup(
    t,
    (_hook, request) => {
      childSeen.push(request);
      const count = Number(request.parent.spec?.['count' as keyof object] ?? 0);
      const children = Array.from({ length: count }, (_, i) => ({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: `${request.parent.metadata.name}-${i}` },
        data: { index: String(i) },
      }));
      return { body: { status: {}, children } };
    },
    { controller: widgetController({ childResources: [{ apiVersion: 'v1', resource: 'configmaps', updateStrategy: { method: 'InPlace' } }] }) },
  );
  const uid = cluster.create(widget('w', { count: 2 })).metadata.uid;
  await mc.runDue();
  const children = cluster.list('v1', 'ConfigMap', 'team-a');
  t.same(children.map((c) => c.metadata.name).sort(), ['w-0', 'w-1']);
  for (const child of children) {
    t.equal(child.metadata.labels?.['controller-uid'], uid);
    t.match(child.metadata.ownerReferences, [{ kind: 'Widget', name: 'w', uid, controller: true, blockOwnerDeletion: true }]);
  }
  t.same(Object.keys(childSeen.at(-1)?.children?.['ConfigMap.v1'] ?? {}).sort(), ['team-a/w-0', 'team-a/w-1']);
  cluster.patchSpec(API_VERSION, 'Widget', 'team-a', 'w', { count: 1 });
  await mc.runDue();
  t.same(cluster.list('v1', 'ConfigMap', 'team-a').map((c) => c.metadata.name), ['w-0']);
});

t.test('children maps have one key per childResources entry even when empty', async (t) => {
  const seen: HookRequest[] = [];
  const { cluster, mc } = await setup(
    t,
    (_hook, request) => {
      seen.push(request);
      return syncOk();
    },
    { controller: widgetController({ childResources: [{ apiVersion: 'v1', resource: 'configmaps' }, { apiVersion: 'v1', resource: 'secrets' }] }) },
  );
  cluster.create(widget('w'));
  await mc.runDue();
  t.same(seen[0]?.children, { 'ConfigMap.v1': {}, 'Secret.v1': {} });
  t.same(Object.keys(mc.calls[0]?.request as object), ['controller', 'parent', 'children', 'related', 'finalizing']);
});

t.test('InPlace children are updated in place and OnDelete children are left alone', async (t) => {
  for (const method of ['InPlace', 'OnDelete'] as const) {
    const { cluster, mc } = await setup(
      t,
      (_hook, request) => ({
        body: { status: {}, children: [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg' }, data: request.parent.spec }] },
      }),
      { controller: widgetController({ childResources: [{ apiVersion: 'v1', resource: 'configmaps', updateStrategy: { method } }] }) },
    );
    cluster.create(widget('w', { size: '1' }));
    await mc.runDue();
    cluster.patchSpec(API_VERSION, 'Widget', 'team-a', 'w', { size: '2' });
    await mc.runDue();
    const data = cluster.get('v1', 'ConfigMap', 'team-a', 'cfg')?.data;
    t.same(data, { size: method === 'InPlace' ? '2' : '1' }, method);
  }
});
t.test('a deleting parent without a finalize hook is synced with finalizing false and its children are left alone', async (t) => {
  const seen: HookRequest[] = [];
  const { cluster, mc } = await setup(
    t,
    (_hook, request) => {
      seen.push(request);
      const children = request.parent.metadata.deletionTimestamp ? [] : [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cfg' } }];
      return { body: { status: {}, children } };
    },
    { controller: widgetController({ childResources: [{ apiVersion: 'v1', resource: 'configmaps', updateStrategy: { method: 'InPlace' } }] }) },
  );
  cluster.create({ ...widget('w'), metadata: { name: 'w', namespace: 'team-a', finalizers: ['example.io/hold'] } });
  await mc.runDue();
  cluster.delete(API_VERSION, 'Widget', 'team-a', 'w');
  await mc.runDue();
  t.ok(seen.at(-1)?.parent.metadata.deletionTimestamp);
  t.equal(seen.at(-1)?.finalizing, false);
  t.equal(mc.calls.filter((c) => c.hook === 'finalize').length, 0);
  t.ok(cluster.get('v1', 'ConfigMap', 'team-a', 'cfg'), 'child kept');
});

t.test('related objects are selected by label expressions across namespaces', async (t) => {
  const seen: HookRequest[] = [];
  const rules = {
    relatedResources: [
      {
        apiVersion: 'v1',
        resource: 'configmaps',
        labelSelector: { matchExpressions: [{ key: 'tier', operator: 'In', values: ['gold', 'silver'] }, { key: 'retired', operator: 'DoesNotExist' }] },
      },
    ],
  };
  const { cluster, mc } = await setup(
    t,
    (hook, request) => {
      if (hook === 'customize') return { body: rules };
      seen.push(request);
      return syncOk();
    },
    { controller: widgetController({}, ['customize', 'sync']) },
  );
  const cm = (namespace: string, name: string, labels: Record<string, string>) =>
    cluster.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace, labels } });
  cm('team-a', 'gold', { tier: 'gold' });
  cm('team-b', 'silver', { tier: 'silver' });
  cm('team-b', 'bronze', { tier: 'bronze' });
  cm('team-b', 'old', { tier: 'gold', retired: 'yes' });
  cluster.create(widget('w'));
  await mc.runDue();
  t.same(Object.keys(seen.at(-1)?.related?.['ConfigMap.v1'] ?? {}).sort(), ['team-a/gold', 'team-b/silver']);
});

t.test("the project's generated controllers and CRDs are accepted", async (t) => {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const load = (dir: string) =>
    readdirSync(join(root, dir))
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => parse(readFileSync(join(root, dir, f), 'utf8')) as object);
  const clock = new FakeClock();
  const mc = new MetacontrollerStandIn({
    cluster: new FakeCluster({ clock }),
    clock,
    baseUrl: 'http://127.0.0.1:9',
    controllers: load('manifests/metacontroller'),
    crds: load('manifests/crds'),
  });
  mc.stop();
  t.pass();
});
