// ConcurrencyGate (MAX_CONCURRENT_RECONCILES): at most `limit` at once; a call past it waits for a
// slot, and gives up (undefined) when none frees within its wait.
import t from 'tap';
import { ConcurrencyGate } from '../../src/http/concurrency.js';

const later = () => {
  let release!: () => void;
  const done = new Promise<void>((resolve) => (release = resolve));
  return { done, release };
};

t.test('a call past the limit waits for a slot and runs once one frees', async (t) => {
  const gate = new ConcurrencyGate(1);
  const first = later();
  const running = gate.run(1000, () => first.done.then(() => 'first'));
  let secondStarted = false;
  const second = gate.run(1000, async () => ((secondStarted = true), 'second'));
  await new Promise((resolve) => setTimeout(resolve, 20));
  t.equal(gate.active, 1);
  t.notOk(secondStarted, 'the second waits');
  first.release();
  t.equal(await running, 'first');
  t.equal(await second, 'second');
  t.equal(gate.active, 0);
});

t.test('a call that finds no slot within its wait gives up, and takes no slot', async (t) => {
  const gate = new ConcurrencyGate(2);
  const held = later();
  const a = gate.run(1000, () => held.done);
  const b = gate.run(1000, () => held.done);
  t.equal(await gate.run(30, async () => 'never'), undefined);
  held.release();
  await Promise.all([a, b]);
  t.equal(gate.active, 0);
  t.equal(await gate.run(30, async () => 'now'), 'now');
});

t.test('a failing call frees its slot', async (t) => {
  const gate = new ConcurrencyGate(1);
  await t.rejects(gate.run(100, async () => Promise.reject(new Error('boom'))));
  t.equal(await gate.run(10, async () => 'ok'), 'ok');
});
