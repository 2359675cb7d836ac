// Seeded generation of hostile request bodies: a valid body, then a few mutations at random
// places (wrong types at every depth, missing and unknown fields, huge strings and arrays, deep
// nesting, shell and XML metacharacters), and sometimes bytes that are not even JSON.

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let value = state;
    value = Math.imul(value ^ (value >>> 15), value | 1);
    value ^= value + Math.imul(value ^ (value >>> 7), value | 61);
    return ((value ^ (value >>> 14)) >>> 0) / 4294967296;
  };
}

type Json = unknown;

const HOSTILE_STRINGS = [
  '',
  ' ',
  '$(reboot)',
  '`id`',
  "'; DROP TABLE vms; --",
  '"><script>alert(1)</script>',
  '<![CDATA[x]]>',
  '&lt;&amp;',
  '../../etc/passwd',
  'a\nb',
  'a\u0000b',
  '\u202e\u0000\uffff',
  'vr-3f1c6f0e;virtrigaud',
  '100',
  '-1',
  'On',
  'infra.virtrigaud.io/v1beta1',
  'default/sim',
  '🙂'.repeat(40),
];

export class BodyFuzzer {
  constructor(private readonly random: () => number) {}

  int(max: number): number {
    return Math.floor(this.random() * max);
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  /** A value of a random shape, now and then a very large one. */
  value(depth = 0): Json {
    const roll = this.int(100);
    if (roll < 12) return null;
    if (roll < 22) return this.pick([0, -1, 1.5, 2 ** 53, -(2 ** 63), 1e308]);
    if (roll < 30) return this.random() < 0.5;
    if (roll < 55) return this.pick(HOSTILE_STRINGS);
    if (roll < 57) return 'x'.repeat(1 + this.int(2 * 1024 * 1024));
    if (roll < 59) return Array.from({ length: 1 + this.int(20_000) }, (_, index) => ({ name: `n${index}` }));
    if (roll < 61) return this.nested(50 + this.int(200));
    if (roll < 80 && depth < 3) return Array.from({ length: this.int(4) }, () => this.value(depth + 1));
    if (depth < 3) return Object.fromEntries(Array.from({ length: this.int(4) }, () => [this.pick(['name', 'spec', 'x', 'metadata', 'status', '']), this.value(depth + 1)]));
    return {};
  }

  nested(depth: number): Json {
    let value: Json = 'bottom';
    for (let level = 0; level < depth; level++) value = this.random() < 0.5 ? [value] : { a: value };
    return value;
  }

  /** Every path to a value inside `root` (objects and arrays), the root included as []. */
  paths(root: Json): (string | number)[][] {
    const found: (string | number)[][] = [[]];
    const walk = (value: Json, path: (string | number)[]) => {
      if (Array.isArray(value)) value.forEach((item, index) => (found.push([...path, index]), walk(item, [...path, index])));
      else if (typeof value === 'object' && value !== null) {
        for (const [key, item] of Object.entries(value)) {
          found.push([...path, key]);
          walk(item, [...path, key]);
        }
      }
    };
    walk(root, []);
    return found;
  }

  /** One to three mutations of a deep copy of `body`. */
  mutate(body: Json): Json {
    let root = structuredClone(body) as Json;
    const count = 1 + this.int(3);
    for (let index = 0; index < count; index++) {
      const paths = this.paths(root);
      const path = this.pick(paths);
      const kind = this.int(4);
      if (path.length === 0) {
        if (kind === 0) root = this.value();
        continue;
      }
      const parent = path.slice(0, -1).reduce<Json>((node, key) => (node as Record<string | number, Json>)[key], root);
      const key = path[path.length - 1]!;
      const container = parent as Record<string | number, Json>;
      if (kind === 0 && !Array.isArray(parent)) delete container[key];
      else if (kind === 1 && typeof container[key] === 'object' && container[key] !== null && !Array.isArray(container[key])) {
        (container[key] as Record<string, Json>)[this.pick(['extra', 'spec', 'apiVersion', 'zz', 'status'])] = this.value();
      } else container[key] = this.value();
    }
    return root;
  }

  /** Bytes that are not a well-formed UTF-8 JSON object: truncated, invalid UTF-8, other encodings. */
  brokenBytes(body: Json): { payload: Buffer; contentType: string } {
    const text = JSON.stringify(body);
    switch (this.int(6)) {
      case 0:
        return { payload: Buffer.from(text.slice(0, this.int(text.length))), contentType: 'application/json' };
      case 1: {
        const bytes = Buffer.from(text);
        bytes[this.int(bytes.length)] = 0xff;
        return { payload: bytes, contentType: 'application/json' };
      }
      case 2:
        return { payload: Buffer.from(text, 'utf16le'), contentType: 'application/json; charset=utf-16' };
      case 3:
        return { payload: Buffer.from(text), contentType: this.pick(['text/plain', 'application/xml', 'application/x-www-form-urlencoded', 'application/jsonx']) };
      case 4:
        return { payload: Buffer.from(`{"a":${'['.repeat(5000)}`), contentType: 'application/json' };
      default:
        return { payload: Buffer.from(text.replace('"spec"', '"__proto__":{"x":1},"spec"')), contentType: 'application/json' };
    }
  }
}
