// Cron schedules for snapshot policies: standard 5-field cron plus macros, evaluated in UTC.
// Pure and stateless, so a webhook can ask "next fire after T" or "latest fire at or before T"
// without remembering anything between calls.

const MINUTE_MS = 60_000;
const MAX_LENGTH = 256;
const HORIZON_YEARS = 5;

export interface CalendarRule {
  readonly kind: 'calendar';
  /** Each list is ascending and without duplicates. */
  readonly minutes: readonly number[];
  readonly hours: readonly number[];
  readonly daysOfMonth: readonly number[];
  /** 1-12. */
  readonly months: readonly number[];
  /** 0-6, Sunday is 0 (a 7 in the expression is folded into 0). */
  readonly daysOfWeek: readonly number[];
  /** False when the field was `*` or `?`; with both day fields restricted a day matches either (Vixie cron). */
  readonly daysOfMonthRestricted: boolean;
  readonly daysOfWeekRestricted: boolean;
  /** False for dates that never exist ("0 0 30 2 *"), so searches give up at once instead of scanning. */
  readonly canFire: boolean;
}

/** `@every`: fires at multiples of the interval counted from the Unix epoch, so no start time is needed. */
export interface IntervalRule {
  readonly kind: 'interval';
  readonly everyMs: number;
}

export interface CronSchedule {
  /** As given, with surrounding whitespace trimmed. */
  readonly expression: string;
  readonly rule: CalendarRule | IntervalRule;
}

export type CronParseResult = { ok: true; schedule: CronSchedule } | { ok: false; problem: string };

interface FieldSpec {
  readonly label: string;
  readonly min: number;
  readonly max: number;
  /** Names for min, min+1, … */
  readonly names?: readonly string[];
  readonly allowsQuestionMark?: boolean;
}

const MINUTE: FieldSpec = { label: 'minute', min: 0, max: 59 };
const HOUR: FieldSpec = { label: 'hour', min: 0, max: 23 };
const DAY_OF_MONTH: FieldSpec = { label: 'day-of-month', min: 1, max: 31, allowsQuestionMark: true };
const MONTH: FieldSpec = {
  label: 'month',
  min: 1,
  max: 12,
  names: ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'],
};
const DAY_OF_WEEK: FieldSpec = {
  label: 'day-of-week',
  min: 0,
  max: 7,
  names: ['SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT'],
  allowsQuestionMark: true,
};
const FIELD_NAMES = 'minute hour day-of-month month day-of-week';

const MACROS = new Map([
  ['@yearly', '0 0 1 1 *'],
  ['@annually', '0 0 1 1 *'],
  ['@monthly', '0 0 1 * *'],
  ['@weekly', '0 0 * * 0'],
  ['@daily', '0 0 * * *'],
  ['@midnight', '0 0 * * *'],
  ['@hourly', '0 * * * *'],
]);

// Leap years included: a day that exists in some year can fire (Feb 29 does, every 4 to 8 years).
const LONGEST_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

class CronProblem extends Error {}

function fail(problem: string): never {
  throw new CronProblem(problem);
}

/** Parses a cron expression. Never throws: a bad one comes back as a one-line problem naming the field. */
export function parseCron(expression: string): CronParseResult {
  try {
    if (typeof expression !== 'string') fail('expression is not a string');
    const text = expression.trim();
    if (text === '') fail('expression is empty');
    if (text.length > MAX_LENGTH) fail(`expression is longer than ${MAX_LENGTH} characters`);
    const rule = text.startsWith('@') ? parseMacro(text) : parseFields(text);
    return { ok: true, schedule: { expression: text, rule } };
  } catch (error) {
    if (error instanceof CronProblem) return { ok: false, problem: error.message };
    throw error;
  }
}

function parseMacro(text: string): CalendarRule | IntervalRule {
  const [name = '', ...args] = text.split(/\s+/);
  const macro = name.toLowerCase();
  if (macro === '@every') {
    const [duration, ...extra] = args;
    if (duration === undefined || extra.length > 0) fail(`@every takes one duration, e.g. '@every 1h30m'`);
    return { kind: 'interval', everyMs: parseEvery(duration) };
  }
  const fields = MACROS.get(macro);
  if (fields === undefined) {
    fail(`unknown macro '${name}'; expected one of ${[...MACROS.keys()].join(', ')} or @every <duration>`);
  }
  if (args.length > 0) fail(`macro '${name}' takes no arguments`);
  return parseFields(fields);
}

const GO_DURATION = /^(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/;
const GO_DURATION_PART = /(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g;
const GO_UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: MINUTE_MS, h: 60 * MINUTE_MS };

function parseEvery(duration: string): number {
  if (!GO_DURATION.test(duration)) fail(`@every duration '${duration}' is not a duration like 30m, 1h30m or 90s`);
  let total = 0;
  for (const [, amount = '0', unit = 's'] of duration.matchAll(GO_DURATION_PART)) {
    total += Number(amount) * (GO_UNIT_MS[unit] ?? 0);
  }
  // Rounding absorbs float noise from fractions such as "0.1h"; sub-second parts are then refused.
  const everyMs = Math.round(total);
  if (!Number.isSafeInteger(everyMs)) fail(`@every duration '${duration}' is too long`);
  if (everyMs < MINUTE_MS) fail(`@every duration '${duration}' is shorter than the 1m minimum`);
  if (everyMs % 1000 !== 0) fail(`@every duration '${duration}' is not a whole number of seconds`);
  return everyMs;
}

function parseFields(text: string): CalendarRule {
  const parts = text.split(/\s+/);
  if (parts.length === 6) fail(`expected 5 fields (${FIELD_NAMES}) but got 6; a seconds field is not supported`);
  if (parts.length !== 5) fail(`expected 5 fields (${FIELD_NAMES}) but got ${parts.length}`);
  const [minuteText = '', hourText = '', domText = '', monthText = '', dowText = ''] = parts;
  const minutes = parseField(minuteText, MINUTE);
  const hours = parseField(hourText, HOUR);
  const daysOfMonth = parseField(domText, DAY_OF_MONTH);
  const months = parseField(monthText, MONTH);
  const daysOfWeek = parseField(dowText, DAY_OF_WEEK);
  const firstDay = daysOfMonth.values[0] ?? DAY_OF_MONTH.max;
  return {
    kind: 'calendar',
    minutes: minutes.values,
    hours: hours.values,
    daysOfMonth: daysOfMonth.values,
    months: months.values,
    daysOfWeek: [...new Set(daysOfWeek.values.map((day) => day % 7))].sort((a, b) => a - b),
    daysOfMonthRestricted: daysOfMonth.restricted,
    daysOfWeekRestricted: daysOfWeek.restricted,
    // Every month has every weekday, so a weekday restriction (alone or OR'ed) always finds a day.
    canFire: daysOfWeek.restricted || months.values.some((month) => firstDay <= (LONGEST_MONTH[month - 1] ?? 0)),
  };
}

function parseField(text: string, spec: FieldSpec): { values: number[]; restricted: boolean } {
  const values = new Set<number>();
  // As robfig/cron (Kubernetes CronJob) decides it: only a plain `*` or `?` leaves a day field
  // unrestricted; `*/2` restricts it.
  let restricted = true;
  for (const item of text.split(',')) {
    if (item === '') fail(`${spec.label} field '${text}' has an empty list item`);
    const { start, end, step, wildcard } = parseItem(item, spec);
    if (wildcard && step === 1) restricted = false;
    for (let value = start; value <= end; value += step) values.add(value);
  }
  return { values: [...values].sort((a, b) => a - b), restricted };
}

function parseItem(item: string, spec: FieldSpec): { start: number; end: number; step: number; wildcard: boolean } {
  const where = `${spec.label} field '${item}'`;
  const [range = '', stepText, extra] = item.split('/');
  if (extra !== undefined) fail(`${where} has more than one '/'`);
  let step = 1;
  if (stepText !== undefined) {
    if (!/^\d+$/.test(stepText)) fail(`${where} has a step that is not a whole number`);
    step = Number(stepText);
    if (step === 0) fail(`${where} has step 0`);
  }
  if (range === '*' || range === '?') {
    if (range === '?' && !spec.allowsQuestionMark) fail(`${where}: '?' is only allowed in the day fields`);
    return { start: spec.min, end: spec.max, step, wildcard: true };
  }
  const [startText = '', endText, more] = range.split('-');
  if (more !== undefined) fail(`${where} has more than one '-'`);
  const start = parseValue(startText, item, spec);
  // "a/n" runs from a to the field's maximum, as in Vixie cron and robfig/cron.
  const end = endText !== undefined ? parseValue(endText, item, spec) : stepText !== undefined ? spec.max : start;
  if (start > end) fail(`${where} is a reversed range (${start} > ${end})`);
  return { start, end, step, wildcard: false };
}

function parseValue(text: string, item: string, spec: FieldSpec): number {
  const subject = text === item ? `${spec.label} field '${item}'` : `${spec.label} field '${item}': '${text}'`;
  if (text === '') fail(`${spec.label} field '${item}' is missing a number`);
  let value: number;
  if (/^\d+$/.test(text)) {
    value = Number(text);
  } else {
    const index = spec.names?.indexOf(text.toUpperCase()) ?? -1;
    if (index < 0) {
      const names = spec.names ? ` or one of ${spec.names[0]}-${spec.names.at(-1)}` : '';
      fail(`${subject} is not a number${names}`);
    }
    value = spec.min + index;
  }
  if (value < spec.min || value > spec.max) fail(`${subject} is out of range ${spec.min}-${spec.max}`);
  return value;
}

/** The first fire time strictly after `afterMs` (epoch ms, UTC), or undefined if none within 5 years. */
export function nextFire(schedule: CronSchedule, afterMs: number): number | undefined {
  if (!Number.isFinite(afterMs)) return undefined;
  const horizon = addYears(afterMs, HORIZON_YEARS);
  const { rule } = schedule;
  const fire = rule.kind === 'interval' ? (Math.floor(afterMs / rule.everyMs) + 1) * rule.everyMs : nextCalendarFire(rule, afterMs, horizon);
  return fire !== undefined && fire <= horizon ? fire : undefined;
}

/** The latest fire time at or before `atMs`, not earlier than `notBeforeMs`; undefined when there is none in that window. */
export function lastFireAtOrBefore(schedule: CronSchedule, atMs: number, notBeforeMs: number): number | undefined {
  if (!Number.isFinite(atMs) || Number.isNaN(notBeforeMs)) return undefined;
  const { rule } = schedule;
  const fire = rule.kind === 'interval' ? Math.floor(atMs / rule.everyMs) * rule.everyMs : lastCalendarFire(rule, atMs, notBeforeMs);
  return fire !== undefined && fire >= notBeforeMs ? fire : undefined;
}

// Both searches skip a whole month, day or hour when that unit cannot match, so a yearly or
// leap-day schedule costs a few hundred steps, not millions of minutes.
function nextCalendarFire(rule: CalendarRule, afterMs: number, horizon: number): number | undefined {
  if (!rule.canFire) return undefined;
  let t = Math.floor(afterMs / MINUTE_MS) * MINUTE_MS + MINUTE_MS;
  while (t <= horizon) {
    const date = new Date(t);
    const [year, month, day, hour, minute] = parts(date);
    if (!rule.months.includes(month + 1)) {
      t = Date.UTC(year, month + 1, 1);
      continue;
    }
    const h = rule.hours.find((candidate) => candidate >= hour);
    if (!dayMatches(rule, day, date.getUTCDay()) || h === undefined) {
      t = Date.UTC(year, month, day + 1);
      continue;
    }
    const m = h > hour ? rule.minutes[0] : rule.minutes.find((candidate) => candidate >= minute);
    if (m === undefined) {
      t = Date.UTC(year, month, day, hour + 1);
      continue;
    }
    return Date.UTC(year, month, day, h, m);
  }
  return undefined;
}

// Ends without a horizon: canFire guarantees a fire at most 8 years back (Feb 29 across 2100).
function lastCalendarFire(rule: CalendarRule, atMs: number, notBeforeMs: number): number | undefined {
  if (!rule.canFire) return undefined;
  let t = Math.floor(atMs / MINUTE_MS) * MINUTE_MS;
  while (t >= notBeforeMs) {
    const date = new Date(t);
    const [year, month, day, hour, minute] = parts(date);
    if (!rule.months.includes(month + 1)) {
      t = Date.UTC(year, month, 1) - MINUTE_MS;
      continue;
    }
    const h = rule.hours.findLast((candidate) => candidate <= hour);
    if (!dayMatches(rule, day, date.getUTCDay()) || h === undefined) {
      t = Date.UTC(year, month, day) - MINUTE_MS;
      continue;
    }
    const m = h < hour ? rule.minutes.at(-1) : rule.minutes.findLast((candidate) => candidate <= minute);
    if (m === undefined) {
      t = Date.UTC(year, month, day, hour) - MINUTE_MS;
      continue;
    }
    return Date.UTC(year, month, day, h, m);
  }
  return undefined;
}

function dayMatches(rule: CalendarRule, dayOfMonth: number, dayOfWeek: number): boolean {
  const domMatches = rule.daysOfMonth.includes(dayOfMonth);
  const dowMatches = rule.daysOfWeek.includes(dayOfWeek);
  if (rule.daysOfMonthRestricted && rule.daysOfWeekRestricted) return domMatches || dowMatches;
  return domMatches && dowMatches;
}

function parts(date: Date): [year: number, month: number, day: number, hour: number, minute: number] {
  return [date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate(), date.getUTCHours(), date.getUTCMinutes()];
}

function addYears(ms: number, years: number): number {
  const date = new Date(ms);
  date.setUTCFullYear(date.getUTCFullYear() + years);
  return date.getTime();
}
