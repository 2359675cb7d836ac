// How the Metacontroller stand-in treats failing or misbehaving hooks (CONTRACT.md §2.1, §2.6, §5).
import t from 'tap';
import type { ObjectValidator } from './index.js';
import { getWidget, setup, syncOk, widget, widgetController } from './toy.js';

t.test('a 500 answer produces a SyncError event and nothing changes', async (t) => {
  const { cluster, mc } = await setup(t, () => ({ status: 500, raw: 'boom: provider unreachable' }));
  cluster.create(widget('w'));
  await mc.runDue();
  t.equal(mc.events.length, 1);
  t.match(mc.events[0], { parent: 'team-a/w', type: 'Warning', reason: 'SyncError', message: /500.*boom: provider unreachable/ });
  t.notOk('status' in (getWidget(cluster, 'w') ?? {}));
  t.equal(mc.calls[0]?.statusCode, 500);
});

t.test('failed calls are retried with exponential back-off in fake time', async (t) => {
  const { clock, cluster, mc } = await setup(t, () => ({ status: 503, raw: 'busy' }));
  const start = clock.now();
  cluster.create(widget('w'));
  await mc.advance(100);
  t.same(mc.calls.map((c) => c.at - start), [0, 5, 15, 35, 75]);
});

t.test('a 429 is retried after Retry-After without a SyncError event', async (t) => {
  let calls = 0;
  const { clock, cluster, mc } = await setup(t, () => (calls++ === 0 ? { status: 429, raw: 'slow down', headers: { 'retry-after': '7' } } : syncOk()));
  const start = clock.now();
  cluster.create(widget('w'));
  await mc.advance(10_000);
  t.same(mc.events, []);
  t.equal(mc.calls[1]?.at, start + 7000);
});

t.test('an extra top-level response field is refused (strict v2)', async (t) => {
  const { cluster, mc } = await setup(t, () => ({ body: { status: { phase: 'Ready' }, children: [], labels: {} } }));
  cluster.create(widget('w'));
  await mc.runDue();
  t.match(mc.events[0]?.message, /strict v2/);
  t.notOk('status' in (getWidget(cluster, 'w') ?? {}));
});

t.test('an invalid JSON body is a hook failure', async (t) => {
  const { cluster, mc } = await setup(t, () => ({ raw: '' }));
  cluster.create(widget('w'));
  await mc.runDue();
  t.match(mc.events[0]?.message, /invalid JSON/);
});

t.test('a hook slower than the timeout is a hook failure', async (t) => {
  const { cluster, mc } = await setup(t, () => ({ ...syncOk(), delayMs: 300 }), { requestTimeoutMs: 50 });
  cluster.create(widget('w'));
  await mc.runDue({ maxSyncs: 1 });
  t.equal(mc.calls[0]?.statusCode, 0);
  t.equal(mc.events.length, 1);
});

t.test('finalized: true outside a finalize call is a protocol violation', async (t) => {
  const { cluster, mc } = await setup(t, () => ({ body: { status: {}, children: [], finalized: true } }), {
    controller: widgetController({}, ['sync', 'finalize']),
  });
  cluster.create(widget('w'));
  await t.rejects(mc.runDue(), /protocol violation.*finalized: true/);
});

t.test('a status the apiserver refuses is a SyncError naming the issue', async (t) => {
  const validators = new Map<string, ObjectValidator>([
    ['Widget', (o) => (typeof (o.status as { phase?: unknown } | undefined)?.phase === 'number' ? ['status.phase: must be a string'] : [])],
  ]);
  const { cluster, mc } = await setup(t, () => syncOk({ phase: 3 }), { validators });
  cluster.create(widget('w'));
  await mc.runDue({ maxSyncs: 1 });
  t.match(mc.events[0]?.message, /status\.phase: must be a string/);
});

t.test('settle fails with a clear message when nothing is left to do', async (t) => {
  const { cluster, mc } = await setup(t, () => syncOk({ phase: 'Pending' }));
  cluster.create(widget('w'));
  await t.rejects(
    mc.settle(() => (getWidget(cluster, 'w')?.status as { phase?: string } | undefined)?.phase === 'Ready'),
    /nothing is queued or scheduled[\s\S]*Pending/,
  );
});
