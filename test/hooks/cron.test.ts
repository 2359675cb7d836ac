// Cron schedules as the snapshot controller reads them: 5-field Vixie/Kubernetes cron in UTC,
// macros, and @every aligned to the Unix epoch.
import t from 'tap';
import { lastFireAtOrBefore, nextFire, parseCron, type CronSchedule } from '../../src/contracts/cron.js';

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

const at = (iso: string): number => Date.parse(iso);
const iso = (ms: number | undefined): string | undefined => (ms === undefined ? undefined : new Date(ms).toISOString());

function schedule(expression: string): CronSchedule {
  const result = parseCron(expression);
  if (!result.ok) throw new Error(`${expression}: ${result.problem}`);
  return result.schedule;
}

function calendar(expression: string) {
  const { rule } = schedule(expression);
  if (rule.kind !== 'calendar') throw new Error(`${expression} is not a calendar schedule`);
  return rule;
}

t.test('parsing accepts the standard forms and expands each field', async (t) => {
  t.same(calendar('*/20 * * * *').minutes, [0, 20, 40]);
  t.same(calendar('10/20 * * * *').minutes, [10, 30, 50], 'a/n runs from a to the maximum');
  t.same(calendar('1-10/3 * * * *').minutes, [1, 4, 7, 10]);
  t.same(calendar('0,5,1-3 * * * *').minutes, [0, 1, 2, 3, 5], 'lists merge and sort');
  t.same(calendar('0 9-17 * * *').hours, [9, 10, 11, 12, 13, 14, 15, 16, 17]);
  t.same(calendar('0 0 * jan,Jul-SEP *').months, [1, 7, 8, 9], 'month names are case-insensitive');
  t.same(calendar('0 0 * * mon-FRI').daysOfWeek, [1, 2, 3, 4, 5]);
  t.same(calendar('0 0 * * 7').daysOfWeek, [0], '7 is Sunday');
  t.same(calendar('0 0 * * 5-7').daysOfWeek, [0, 5, 6]);
  t.same(calendar('0 0 ? * *').daysOfMonth.length, 31, '? is * in the day fields');
  t.equal(calendar('0 0 ? * ?').daysOfWeekRestricted, false);
  t.equal(calendar('0 0 */2 * *').daysOfMonthRestricted, true, 'a stepped * restricts, as in Kubernetes');
  t.same(calendar('@weekly'), calendar('0 0 * * 0'));
  t.same(calendar('@annually'), calendar('@yearly'));
  t.same(calendar('@midnight'), calendar('@daily'));
  t.same(schedule('@every 1h30m').rule, { kind: 'interval', everyMs: 90 * MINUTE });
  t.same(schedule('@every 90s').rule, { kind: 'interval', everyMs: 90_000 });
  t.same(schedule('@every 1.5h').rule, { kind: 'interval', everyMs: 90 * MINUTE });
  t.equal(schedule('  5   4\t* *  *  ').expression, '5   4\t* *  *', 'surrounding whitespace is trimmed');
  t.same(calendar('5   4 * * *').minutes, [5], 'several spaces separate fields');
});

t.test('parsing rejects bad expressions with one line that names the field', async (t) => {
  t.same(parseCron('61 * * * *'), { ok: false, problem: "minute field '61' is out of range 0-59" });
  const cases: Array<[expression: string, mentions: RegExp]> = [
    ['* 24 * * *', /^hour field '24' is out of range 0-23/],
    ['* * 0 * *', /^day-of-month field '0' is out of range 1-31/],
    ['* * 32 * *', /^day-of-month field/],
    ['* * * 13 *', /^month field '13' is out of range 1-12/],
    ['* * * * 8', /^day-of-week field '8' is out of range 0-7/],
    ['1-61 * * * *', /^minute field '1-61': '61' is out of range/],
    ['* 17-9 * * *', /^hour field '17-9' is a reversed range/],
    ['* * * * SAT-SUN', /^day-of-week field 'SAT-SUN' is a reversed range/],
    ['*/0 * * * *', /^minute field '\*\/0' has step 0/],
    ['1-5/0 * * * *', /^minute field .* step 0/],
    ['*/x * * * *', /^minute field .* step that is not a whole number/],
    ['1/2/3 * * * *', /^minute field .* more than one '\/'/],
    ['* * * * 1-2-3', /^day-of-week field .* more than one '-'/],
    ['-5 * * * *', /^minute field '-5' is missing a number/],
    ['1,,2 * * * *', /^minute field '1,,2' has an empty list item/],
    ['5x * * * *', /^minute field '5x' is not a number$/],
    ['JAN * * * *', /^minute field 'JAN' is not a number$/],
    ['? * * * *', /^minute field '\?'.*only allowed in the day fields/],
    ['* * L * *', /^day-of-month field 'L' is not a number/],
    ['* * * FOO *', /^month field 'FOO' is not a number or one of JAN-DEC/],
    ['* * * JAN-JUNE *', /^month field 'JAN-JUNE': 'JUNE' is not a number/],
    ['* * * * MON#2', /^day-of-week field 'MON#2' is not a number or one of SUN-SAT/],
    ['* * * *', /expected 5 fields .* got 4/],
    ['0 * * * * *', /got 6; a seconds field is not supported/],
    ['* * * * * * *', /got 7/],
    ['', /empty/],
    ['   ', /empty/],
    [`* * * * ${'1,'.repeat(130)}1`, /longer than 256 characters/],
    ['@fortnightly', /^unknown macro '@fortnightly'/],
    ['@daily 5', /^macro '@daily' takes no arguments/],
    ['@every', /^@every takes one duration/],
    ['@every 1h 2m', /^@every takes one duration/],
    ['@every 1x', /^@every duration '1x' is not a duration/],
    ['@every 30s', /^@every duration '30s' is shorter than the 1m minimum/],
    ['@every 1m0.5s', /^@every duration '1m0.5s' is not a whole number of seconds/],
  ];
  for (const [expression, mentions] of cases) {
    const result = parseCron(expression);
    if (result.ok) {
      t.fail(`'${expression}' should not parse`);
      continue;
    }
    t.match(result.problem, mentions, expression);
    t.notOk(result.problem.includes('\n'), `${expression}: one line`);
  }
});

t.test('parsing never throws, whatever the input', async (t) => {
  const random = seededRandom(7);
  const alphabet = '0123456789*/,-?@ \tJANmonSUNeveryhms.#L';
  const thrown: string[] = [];
  for (let i = 0; i < 2000; i++) {
    let text = '';
    const length = Math.floor(random() * 30);
    for (let j = 0; j < length; j++) text += alphabet[Math.floor(random() * alphabet.length)];
    try {
      parseCron(text);
    } catch (error) {
      thrown.push(`${JSON.stringify(text)}: ${String(error)}`);
    }
  }
  t.same(thrown, []);
  t.equal(parseCron(undefined as unknown as string).ok, false, 'a non-string from untyped JSON is a problem, not a crash');
});

t.test('nextFire returns the first whole minute strictly after the given time', async (t) => {
  const cases: Array<[expression: string, after: string, expected: string | undefined, why: string]> = [
    ['* * * * *', '2024-05-10T12:34:56.789Z', '2024-05-10T12:35:00.000Z', 'every minute'],
    ['* * * * *', '2024-05-10T12:35:00.000Z', '2024-05-10T12:36:00.000Z', 'strictly after a fire time'],
    ['0 * * * *', '2024-05-10T12:00:00.000Z', '2024-05-10T13:00:00.000Z', 'hourly'],
    ['@hourly', '2024-05-10T12:59:59.999Z', '2024-05-10T13:00:00.000Z', '@hourly'],
    ['30 2 * * *', '2024-05-10T01:00:00.000Z', '2024-05-10T02:30:00.000Z', 'daily at 02:30, later today'],
    ['30 2 * * *', '2024-05-10T02:30:00.000Z', '2024-05-11T02:30:00.000Z', 'daily at 02:30, tomorrow'],
    ['*/15 9-17 * * 1-5', '2024-05-08T09:07:00.000Z', '2024-05-08T09:15:00.000Z', 'weekday, within hours'],
    ['*/15 9-17 * * 1-5', '2024-05-10T17:45:00.000Z', '2024-05-13T09:00:00.000Z', 'Friday evening to Monday'],
    ['*/15 9-17 * * MON-FRI', '2024-05-11T10:00:00.000Z', '2024-05-13T09:00:00.000Z', 'weekday names'],
    ['0 0 1 * *', '2024-04-15T00:00:00.000Z', '2024-05-01T00:00:00.000Z', 'first of the next month'],
    ['0 12 31 * *', '2024-04-01T00:00:00.000Z', '2024-05-31T12:00:00.000Z', 'April has no 31st'],
    ['0 0 * * *', '2024-12-31T23:59:30.000Z', '2025-01-01T00:00:00.000Z', 'Dec 31 to Jan 1'],
    ['59 23 31 12 *', '2024-12-31T23:59:00.000Z', '2025-12-31T23:59:00.000Z', 'last minute of the year'],
    ['@yearly', '2024-06-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z', '@yearly'],
    ['@monthly', '2024-01-31T00:00:00.000Z', '2024-02-01T00:00:00.000Z', '@monthly'],
    ['@weekly', '2024-05-10T00:00:00.000Z', '2024-05-12T00:00:00.000Z', '@weekly is Sunday midnight'],
    ['0 0 29 2 *', '2024-02-29T00:00:00.000Z', '2028-02-29T00:00:00.000Z', 'leap day skips to the next leap year'],
    ['0 0 29 2 *', '2097-03-01T00:00:00.000Z', undefined, '2100 is no leap year; 2104 is past 5 years'],
    ['0 0 13 * 5', '2024-10-11T00:00:00.000Z', '2024-10-13T00:00:00.000Z', 'OR rule: the 13th, a Sunday'],
    ['0 0 13 * 5', '2024-10-13T00:00:00.000Z', '2024-10-18T00:00:00.000Z', 'OR rule: the next Friday'],
    ['0 0 13 * *', '2024-10-11T00:00:00.000Z', '2024-10-13T00:00:00.000Z', 'day of month alone'],
    ['0 0 ? * 5', '2024-10-11T00:00:00.000Z', '2024-10-18T00:00:00.000Z', 'day of week alone when the other is ?'],
    ['0 0 */10 * 1', '2024-10-01T00:00:00.000Z', '2024-10-07T00:00:00.000Z', 'a stepped * takes part in the OR rule'],
    ['0 8 * * 7', '2024-05-10T00:00:00.000Z', '2024-05-12T08:00:00.000Z', '7 is Sunday'],
    ['0 8 * * 0', '2024-05-10T00:00:00.000Z', '2024-05-12T08:00:00.000Z', '0 is Sunday'],
    ['0 9 1 jul *', '2024-01-01T00:00:00.000Z', '2024-07-01T09:00:00.000Z', 'month names'],
    ['@every 90m', '2024-05-10T12:34:00.000Z', '2024-05-10T13:30:00.000Z', '90m divides the day, so fires align to midnight'],
    ['@every 90m', '2024-05-10T13:30:00.000Z', '2024-05-10T15:00:00.000Z', '@every is strictly after too'],
    ['@every 7m', '1970-01-01T00:00:00.000Z', '1970-01-01T00:07:00.000Z', '@every counts from the epoch'],
    ['0 0 30 2 *', '2024-01-01T00:00:00.000Z', undefined, 'February 30th never comes'],
    ['0 0 31 4,6,9,11 *', '2024-01-01T00:00:00.000Z', undefined, 'no 31st in those months'],
  ];
  for (const [expression, after, expected, why] of cases) {
    t.equal(iso(nextFire(schedule(expression), at(after))), expected, `${why}: '${expression}' after ${after}`);
  }
  t.equal(nextFire(schedule('* * * * *'), Number.NaN), undefined, 'no answer for a time that is not one');
});

t.test('lastFireAtOrBefore returns the latest fire in the window, both ends inclusive', async (t) => {
  const cases: Array<[expression: string, atIso: string, notBefore: string, expected: string | undefined, why: string]> = [
    ['30 2 * * *', '2024-05-10T02:30:00.000Z', '2024-05-01T00:00:00.000Z', '2024-05-10T02:30:00.000Z', 'exactly at a fire'],
    ['30 2 * * *', '2024-05-10T02:30:59.999Z', '2024-05-01T00:00:00.000Z', '2024-05-10T02:30:00.000Z', 'within the fire minute'],
    ['30 2 * * *', '2024-05-10T02:29:59.999Z', '2024-05-01T00:00:00.000Z', '2024-05-09T02:30:00.000Z', 'just before a fire'],
    ['30 2 * * *', '2024-05-10T02:29:00.000Z', '2024-05-09T03:00:00.000Z', undefined, 'the last fire is before the window'],
    ['30 2 * * *', '2024-05-10T02:29:00.000Z', '2024-05-09T02:30:00.000Z', '2024-05-09T02:30:00.000Z', 'a fire at notBefore counts'],
    ['30 2 * * *', '2024-05-10T02:30:00.000Z', '2024-05-10T02:30:00.001Z', undefined, 'notBefore after atMs'],
    ['*/15 9-17 * * 1-5', '2024-05-13T08:00:00.000Z', '2024-05-01T00:00:00.000Z', '2024-05-10T17:45:00.000Z', 'Monday morning back to Friday'],
    ['0 0 1 1 *', '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z', 'a one-instant window'],
    ['0 0 29 2 *', '2027-06-01T00:00:00.000Z', '2020-01-01T00:00:00.000Z', '2024-02-29T00:00:00.000Z', 'leap day, years back'],
    ['0 0 13 * 5', '2024-10-17T00:00:00.000Z', '2024-10-01T00:00:00.000Z', '2024-10-13T00:00:00.000Z', 'OR rule backwards'],
    ['0 0 * * *', '2025-01-01T00:00:00.000Z', '2024-01-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z', 'new year inclusive'],
    ['59 23 * * *', '2024-12-31T23:58:59.000Z', '2024-01-01T00:00:00.000Z', '2024-12-30T23:59:00.000Z', 'back across a day'],
    ['@every 90m', '2024-05-10T13:29:59.999Z', '2024-05-10T00:00:00.000Z', '2024-05-10T12:00:00.000Z', '@every backwards'],
    ['@every 90m', '2024-05-10T13:30:00.000Z', '2024-05-10T13:30:00.000Z', '2024-05-10T13:30:00.000Z', '@every exactly at a fire'],
    ['@every 90m', '2024-05-10T13:29:00.000Z', '2024-05-10T12:00:00.001Z', undefined, '@every outside the window'],
    ['0 0 30 2 *', '2024-05-10T00:00:00.000Z', '1970-01-01T00:00:00.000Z', undefined, 'a schedule that never fires'],
  ];
  for (const [expression, atIso, notBefore, expected, why] of cases) {
    t.equal(iso(lastFireAtOrBefore(schedule(expression), at(atIso), at(notBefore))), expected, `${why}: '${expression}' at ${atIso}`);
  }
});

// An independent reading of each expression, minute by minute, to check the skipping search against.
interface Frequent {
  expression: string;
  matches: (d: { minute: number; hour: number; day: number; month: number; weekday: number; ms: number }) => boolean;
}

const FREQUENT: Frequent[] = [
  { expression: '* * * * *', matches: () => true },
  { expression: '*/15 9-17 * * 1-5', matches: (d) => d.minute % 15 === 0 && d.hour >= 9 && d.hour <= 17 && d.weekday >= 1 && d.weekday <= 5 },
  { expression: '30 2 * * *', matches: (d) => d.minute === 30 && d.hour === 2 },
  { expression: '5,35 */3 * * *', matches: (d) => (d.minute === 5 || d.minute === 35) && d.hour % 3 === 0 },
  { expression: '0 0 13 * 5', matches: (d) => d.minute === 0 && d.hour === 0 && (d.day === 13 || d.weekday === 5) },
  { expression: '0 12 */10 * 1', matches: (d) => d.minute === 0 && d.hour === 12 && ((d.day - 1) % 10 === 0 || d.weekday === 1) },
  { expression: '20 4 * * 7', matches: (d) => d.minute === 20 && d.hour === 4 && d.weekday === 0 },
  { expression: '0 6 1,15 * *', matches: (d) => d.minute === 0 && d.hour === 6 && (d.day === 1 || d.day === 15) },
  { expression: '45 23 28-31 * *', matches: (d) => d.minute === 45 && d.hour === 23 && d.day >= 28 },
  { expression: '@every 90m', matches: (d) => d.ms % (90 * MINUTE) === 0 },
];
// Longer than any gap between fires above (28-31 can be 28 days apart, from the 31st to the 28th).
const BRUTE_WINDOW = 32 * DAY;

function bruteMatches(rule: Frequent, ms: number): boolean {
  const date = new Date(ms);
  return rule.matches({
    minute: date.getUTCMinutes(),
    hour: date.getUTCHours(),
    day: date.getUTCDate(),
    month: date.getUTCMonth() + 1,
    weekday: date.getUTCDay(),
    ms,
  });
}

function bruteNext(rule: Frequent, afterMs: number): number | undefined {
  for (let ms = Math.floor(afterMs / MINUTE) * MINUTE + MINUTE; ms <= afterMs + BRUTE_WINDOW; ms += MINUTE) {
    if (bruteMatches(rule, ms)) return ms;
  }
  return undefined;
}

function bruteLast(rule: Frequent, atMs: number): number | undefined {
  for (let ms = Math.floor(atMs / MINUTE) * MINUTE; ms >= atMs - BRUTE_WINDOW; ms -= MINUTE) {
    if (bruteMatches(rule, ms)) return ms;
  }
  return undefined;
}

// mulberry32: small, seeded, and the same sequence on every run.
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let x = state;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/** ~200 times between 2020 and 2030; half of them exactly on a minute, where "strictly after" bites. */
function sampleTimes(seed: number): number[] {
  const random = seededRandom(seed);
  const from = at('2020-01-01T00:00:00.000Z');
  const span = at('2030-01-01T00:00:00.000Z') - from;
  return Array.from({ length: 200 }, (_, i) => {
    const ms = from + Math.floor(random() * span);
    return i % 2 === 0 ? Math.floor(ms / MINUTE) * MINUTE : ms;
  });
}

t.test('nextFire agrees with a minute-by-minute search: later, matching, and nothing matches in between', async (t) => {
  for (const rule of FREQUENT) {
    const cron = schedule(rule.expression);
    const wrong: string[] = [];
    for (const time of sampleTimes(42)) {
      const fire = nextFire(cron, time);
      const expected = bruteNext(rule, time);
      if (fire === undefined || !(fire > time) || !bruteMatches(rule, fire) || fire !== expected) {
        wrong.push(`after ${iso(time)}: got ${iso(fire)}, expected ${iso(expected)}`);
      }
    }
    t.same(wrong, [], rule.expression);
  }
});

t.test('lastFireAtOrBefore agrees with a minute-by-minute search backwards', async (t) => {
  for (const rule of FREQUENT) {
    const cron = schedule(rule.expression);
    const wrong: string[] = [];
    for (const time of sampleTimes(1234)) {
      const fire = lastFireAtOrBefore(cron, time, time - BRUTE_WINDOW);
      const expected = bruteLast(rule, time);
      if (fire !== expected) wrong.push(`at ${iso(time)}: got ${iso(fire)}, expected ${iso(expected)}`);
    }
    t.same(wrong, [], rule.expression);
  }
});

t.test('for rare schedules, nextFire and lastFireAtOrBefore agree that nothing fires in between', async (t) => {
  const rare = ['0 0 29 2 *', '59 23 31 12 *', '0 0 1 1,7 *', '15 10 31 * *', '0 0 13 * FRI', '@yearly'];
  for (const expression of rare) {
    const cron = schedule(expression);
    const wrong: string[] = [];
    for (const time of sampleTimes(99)) {
      const fire = nextFire(cron, time);
      if (fire === undefined || fire <= time || fire % MINUTE !== 0) {
        wrong.push(`after ${iso(time)}: got ${iso(fire)}`);
        continue;
      }
      if (lastFireAtOrBefore(cron, fire, fire) !== fire) wrong.push(`${iso(fire)} is not a fire time`);
      const between = lastFireAtOrBefore(cron, fire - 1, time + 1);
      if (between !== undefined) wrong.push(`after ${iso(time)}: ${iso(between)} fires before ${iso(fire)}`);
    }
    t.same(wrong, [], expression);
  }
});
