// The conformance cases' own assertions: each check passes (and tells a listener, so a tap
// adapter can show it) or throws a ConformanceFailure whose one-line message is the reason a
// report shows. The first failing check ends its case: a case that has seen its driver misbehave
// stops asking it to do more (a driver that ignored an owner once is not asked to power off).

/** A check of a case failed; the message is one line, fit for a report. */
export class ConformanceFailure extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConformanceFailure';
  }
}

/** The case's capability is off, and the driver refused it as it must: reported "unsupported". */
export class CaseUnsupported extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CaseUnsupported';
  }
}

/** The target lacks what the case needs (a foreign VM, a migration directory): reported "skipped". */
export class CaseSkipped extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CaseSkipped';
  }
}

/** Ends the case as "unsupported" (after it has checked the refusal). */
export function unsupported(reason: string): never {
  throw new CaseUnsupported(reason);
}

/** Ends the case as "skipped": nothing was asked of the driver that this target cannot give. */
export function skipped(reason: string): never {
  throw new CaseSkipped(reason);
}

/** What a refusal must look like: its error code, and text its message contains (or matches). */
export interface ErrorPattern {
  code?: string | RegExp;
  message?: string | RegExp;
}

const SHOWN = 160;

/** A value as one short line for a failure message. */
export function show(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value instanceof RegExp) return String(value);
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  text = text.replace(/\s+/g, ' ');
  return text.length > SHOWN ? `${text.slice(0, SHOWN - 1)}…` : text;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Deep equality of plain data; a key whose value is undefined counts as absent. */
export function sameValue(found: unknown, wanted: unknown): boolean {
  if (Object.is(found, wanted)) return true;
  if (Array.isArray(found) && Array.isArray(wanted)) {
    return found.length === wanted.length && found.every((item, index) => sameValue(item, wanted[index]));
  }
  if (isRecord(found) && isRecord(wanted)) {
    const keys = (record: Record<string, unknown>) => Object.keys(record).filter((key) => record[key] !== undefined).sort();
    const foundKeys = keys(found);
    const wantedKeys = keys(wanted);
    return sameValue(foundKeys, wantedKeys) && foundKeys.every((key) => sameValue(found[key], wanted[key]));
  }
  return false;
}

/** `found` has at least what `pattern` names: a RegExp tests a string, a string is contained in a string. */
export function matches(found: unknown, pattern: unknown): boolean {
  if (pattern instanceof RegExp) return typeof found === 'string' && pattern.test(found);
  if (typeof pattern === 'string' && typeof found === 'string') return found.includes(pattern);
  if (isRecord(pattern)) return isRecord(found) && Object.entries(pattern).every(([key, value]) => matches(found[key], value));
  return sameValue(found, pattern);
}

export class Checks {
  /** `passed` hears every check that held, with its message. */
  constructor(private readonly passed: (message: string) => void = () => undefined) {}

  fail(message: string): never {
    throw new ConformanceFailure(message.replace(/\s*\n\s*/g, ' '));
  }

  pass(message: string): void {
    this.passed(message);
  }

  ok(value: unknown, message: string): void {
    if (!value) this.fail(`${message}: not so (${show(value)})`);
    this.pass(message);
  }

  notOk(value: unknown, message: string): void {
    if (value) this.fail(`${message}: not so (${show(value)})`);
    this.pass(message);
  }

  equal<T>(found: T, wanted: T, message: string): void {
    if (!Object.is(found, wanted)) this.fail(`${message}: found ${show(found)}, wanted ${show(wanted)}`);
    this.pass(message);
  }

  not<T>(found: T, unwanted: T, message: string): void {
    if (Object.is(found, unwanted)) this.fail(`${message}: found ${show(found)}, wanted anything else`);
    this.pass(message);
  }

  same(found: unknown, wanted: unknown, message: string): void {
    if (!sameValue(found, wanted)) this.fail(`${message}: found ${show(found)}, wanted ${show(wanted)}`);
    this.pass(message);
  }

  match(found: unknown, pattern: Record<string, unknown>, message: string): void {
    if (!matches(found, pattern)) this.fail(`${message}: found ${show(found)}, wanted ${show(pattern)}`);
    this.pass(message);
  }

  /** The call must fail with an error like `pattern`; a call that succeeds is a failure. */
  async rejects(attempt: Promise<unknown>, pattern: ErrorPattern, message: string): Promise<void> {
    let refused = false;
    let error: unknown;
    try {
      await attempt;
    } catch (caught) {
      refused = true;
      error = caught;
    }
    const wanted = `${pattern.code === undefined ? 'an' : `a ${pattern.code instanceof RegExp ? pattern.code.source : pattern.code}`} error${pattern.message === undefined ? '' : ` saying ${show(pattern.message)}`}`;
    if (!refused) this.fail(`${message}: the call succeeded, wanted ${wanted}`);
    const code = isRecord(error) || error instanceof Error ? (error as { code?: unknown }).code : undefined;
    const text = error instanceof Error ? error.message : String(error);
    const codeMatches = pattern.code === undefined || (pattern.code instanceof RegExp ? typeof code === 'string' && pattern.code.test(code) : code === pattern.code);
    const textMatches = pattern.message === undefined || matches(text, pattern.message);
    if (!codeMatches || !textMatches) this.fail(`${message}: failed with ${typeof code === 'string' ? code : 'an untyped error'} "${text.split('\n')[0] ?? ''}", wanted ${wanted}`);
    this.pass(message);
  }
}
