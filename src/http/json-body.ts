// Request bodies as both servers (hooks, provider runtime) accept them: UTF-8 JSON objects of
// bounded depth, without the keys that pollute prototypes when merged. Every refusal is a 4xx
// whose one-line message says what is wrong and never quotes the body (it may carry Secrets).

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
  checkDepth(text, maxDepth);
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
  checkKeys(value);
  return value;
}

/** Refuses nesting deeper than `maxDepth` before anything recursive touches the text. */
function checkDepth(text: string, maxDepth: number): void {
  let depth = 0;
  let inString = false;
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    if (inString) {
      if (code === 0x5c) index++;
      else if (code === 0x22) inString = false;
      continue;
    }
    if (code === 0x22) inString = true;
    else if (code === 0x7b || code === 0x5b) {
      if (++depth > maxDepth) throw new RequestInputError(400, `body is nested deeper than ${maxDepth} levels`);
    } else if (code === 0x7d || code === 0x5d) depth--;
  }
}

/**
 * `__proto__` (and `constructor.prototype`) keys are own properties after JSON.parse, but become
 * prototype writes the moment anything copies them with assignment; no Kubernetes object needs them.
 */
function checkKeys(root: object): void {
  const stack: { value: object; path: string }[] = [{ value: root, path: '' }];
  while (stack.length > 0) {
    const { value, path } = stack.pop()!;
    for (const key of Object.keys(value)) {
      const child = (value as Record<string, unknown>)[key];
      const at = Array.isArray(value) ? `${path}[${key}]` : path === '' ? key : `${path}.${key}`;
      if (key === FORBIDDEN_KEY) throw new RequestInputError(400, `body has a forbidden key "__proto__" at ${printable(at, 200)}`);
      if (key === 'constructor' && typeof child === 'object' && child !== null && Object.hasOwn(child, 'prototype')) {
        throw new RequestInputError(400, `body has a forbidden key "constructor.prototype" at ${printable(at, 200)}`);
      }
      if (typeof child === 'object' && child !== null) stack.push({ value: child, path: at });
    }
  }
}

/** Text from a request, made safe for a one-line message: printable ASCII, at most `max` characters. */
export function printable(text: string, max: number): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}
