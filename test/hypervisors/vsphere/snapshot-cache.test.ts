import t from 'tap';
import { SnapshotCache } from '../../../src/hypervisors/vsphere/snapshot-cache.js';

function counting() {
  let now = 0;
  let loads = 0;
  let release: (() => void) | undefined;
  const cache = new SnapshotCache(
    async () => {
      loads += 1;
      const mine = loads;
      await new Promise<void>((done) => {
        release = done;
      });
      return mine;
    },
    { ttlMs: 1_000, now: () => now },
  );
  return {
    cache,
    loads: () => loads,
    finish: () => release?.(),
    advance: (ms: number) => {
      now += ms;
    },
  };
}

t.test('concurrent readers share one list call', async (t) => {
  const c = counting();
  const a = c.cache.current();
  const b = c.cache.current();
  c.finish();
  t.same(await Promise.all([a, b]), [1, 1]);
  t.equal(c.loads(), 1);
});

t.test('a list serves until its time is up, then the next read loads again', async (t) => {
  const c = counting();
  const first = c.cache.current();
  c.finish();
  t.equal(await first, 1);
  c.advance(999);
  t.equal(await c.cache.current(), 1);
  c.advance(1);
  const second = c.cache.current();
  c.finish();
  t.equal(await second, 2);
});

t.test('invalidate forgets the list, and a load started before it is not kept', async (t) => {
  const c = counting();
  const early = c.cache.current();
  c.cache.invalidate();
  const release = c.finish;
  release();
  t.equal(await early, 1, 'the early reader still gets its answer');
  const late = c.cache.current();
  c.finish();
  t.equal(await late, 2, 'a list loaded before the change is not served after it');
});

t.test('a failed load is not cached', async (t) => {
  let calls = 0;
  const cache = new SnapshotCache(async () => {
    calls += 1;
    if (calls === 1) throw new Error('down');
    return 'up';
  });
  await t.rejects(cache.current(), /down/);
  t.equal(await cache.current(), 'up');
});
