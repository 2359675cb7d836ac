// Request bodies as both servers (hooks, provider runtime) accept them: UTF-8 JSON objects of
// bounded depth, each key once per object, without the keys that pollute prototypes when merged.
// Every refusal is a 4xx whose one-line message says what is wrong and never quotes a value from
// the body (it may carry Secrets).

/** A request refused before it reaches a handler: its status and a message safe to send back. */
export class RequestInputError extends Error {
  constructor(
    readonly statusCode: 400 | 413 | 415,
    message: string,
  ) {
    super(message);
    this.name = 'RequestInputError';
  }
}

/** Kubernetes objects nest a few dozen levels at most; JSON.stringify recurses, so deep bodies must stop here. */
export const MAX_JSON_DEPTH = 100;

const FORBIDDEN_KEY = '__proto__';
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** The charset parameter of a Content-Type header, lower-cased; undefined when absent. */
export function charsetOf(contentType: string | undefined): string | undefined {
  const match = /;\s*charset\s*=\s*"?([^";\s]*)"?/i.exec(contentType ?? '');
  return match?.[1]?.toLowerCase();
}

/** Parses a request body: UTF-8 only, depth at most `maxDepth`, an object at the top. */
export function parseJsonBody(body: Buffer, contentType: string | undefined, maxDepth = MAX_JSON_DEPTH): unknown {
  const charset = charsetOf(contentType);
  if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
    throw new RequestInputError(415, `charset ${printable(charset, 32)} is not supported: send the JSON body in UTF-8`);
  }
  let text: string;
  try {
    text = UTF8.decode(body);
  } catch {
    throw new RequestInputError(400, 'body is not valid UTF-8');
  }
  if (text.trim() === '') throw new RequestInputError(400, 'body is empty: a JSON object is expected');
  const written = scanStructure(text, maxDepth).keys;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    // V8's message quotes the text around the fault; only the position is passed on.
    const position = /position (\d+)/.exec(error instanceof Error ? error.message : '')?.[1];
    throw new RequestInputError(400, `body is not valid JSON${position === undefined ? '' : ` (at byte ${position})`}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RequestInputError(400, 'body must be a JSON object');
  }
  // JSON.parse keeps the last of two equal keys, other parsers the first: a body that means two
  // things to two readers (an admission check, an audit log, this server) is not taken at all.
  if (checkKeys(value) !== written) {
    const duplicate = scanStructure(text, maxDepth, true).duplicate;
    throw new RequestInputError(400, duplicate === undefined ? 'body has a key twice in one object' : `body has the key "${printable(duplicate, 100)}" twice in one object`);
  }
  return value;
}

/**
 * One pass over the text before JSON.parse: nesting deeper than `maxDepth` is refused before
 * anything recursive touches it. Returns how many object keys the text writes; with `duplicates`,
 * also the first key written twice in one object (that pass keeps every key, so it only runs once
 * a duplicate is known to be there).
 */
function scanStructure(text: string, maxDepth: number, duplicates = false): { keys: number; duplicate?: string } {
  // true for an open object, false for an open array; `seen` has the keys of each open object.
  const frames: boolean[] = [];
  const seen: Set<string>[] = [];
  let expectKey = false;
  let keys = 0;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (code === 0x22) {
      const end = stringEnd(text, index);
      if (expectKey) {
        keys++;
        expectKey = false;
        if (duplicates) {
          const key = keyOf(text.slice(index, end + 1));
          const open = seen[seen.length - 1];
          if (open?.has(key)) return { keys, duplicate: key };
          open?.add(key);
        }
      }
      index = end;
    } else if (code === 0x7b || code === 0x5b) {
      frames.push(code === 0x7b);
      if (code === 0x7b && duplicates) seen.push(new Set());
      expectKey = code === 0x7b;
      if (frames.length > maxDepth) throw new RequestInputError(400, `body is nested deeper than ${maxDepth} levels`);
    } else if (code === 0x7d || code === 0x5d) {
      if (frames.pop() === true && duplicates) seen.pop();
      expectKey = false;
    } else if (code === 0x2c) {
      expectKey = frames[frames.length - 1] === true;
    }
  }
  return { keys };
}

/** The index of the quote that closes the string opening at `start` (the last index when none does: JSON.parse reports that). */
function stringEnd(text: string, start: number): number {
  let from = start + 1;
  for (;;) {
    const quote = text.indexOf('"', from);
    if (quote < 0) return text.length - 1;
    let backslashes = 0;
    while (text.charCodeAt(quote - 1 - backslashes) === 0x5c) backslashes++;
    if (backslashes % 2 === 0) return quote;
    from = quote + 1;
  }
}

/** A key as JSON.parse will see it: `"\u0061"` and `"a"` are the same key. */
function keyOf(quoted: string): string {
  if (!quoted.includes('\\')) return quoted.slice(1, -1);
  try {
    return JSON.parse(quoted) as string;
  } catch {
    return quoted;
  }
}

/**
 * `__proto__` (and `constructor.prototype`) keys are own properties after JSON.parse, but become
 * prototype writes the moment anything copies them with assignment; no Kubernetes object needs them.
 * Returns how many object keys the parsed value has.
 */
function checkKeys(root: object): number {
  const stack: { value: object; path: string }[] = [{ value: root, path: '' }];
  let count = 0;
  while (stack.length > 0) {
    const { value, path } = stack.pop()!;
    const keys = Object.keys(value);
    if (!Array.isArray(value)) count += keys.length;
    for (const key of keys) {
      const child = (value as Record<string, unknown>)[key];
      const at = Array.isArray(value) ? `${path}[${key}]` : path === '' ? key : `${path}.${key}`;
      if (key === FORBIDDEN_KEY) throw new RequestInputError(400, `body has a forbidden key "__proto__" at ${printable(at, 200)}`);
      if (key === 'constructor' && typeof child === 'object' && child !== null && Object.hasOwn(child, 'prototype')) {
        throw new RequestInputError(400, `body has a forbidden key "constructor.prototype" at ${printable(at, 200)}`);
      }
      if (typeof child === 'object' && child !== null) stack.push({ value: child, path: at });
    }
  }
  return count;
}

/** Text from a request, made safe for a one-line message: printable ASCII, at most `max` characters. */
export function printable(text: string, max: number): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}
