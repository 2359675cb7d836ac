/**
 * Request decoding like pve-http-server: `decode_urlencoded` (where `+` is a space and `;`
 * separates parameters just like `&`), JSON bodies, query parameters winning over the body.
 */
import { PveError } from './errors.js';
import type { MethodInfo } from './schema.js';
import type { ParamValue } from './validate.js';

/** One decoded `key=value` occurrence; `value` is undefined for `key` or `key=` (Perl's split drops it). */
export interface RawPair {
  key: string;
  value: string | undefined;
}

/** Bytes of a latin1 string after `+` → space and `%XX` → byte, read as UTF-8. */
function unescape(text: string, utf8: boolean): string {
  const bytes = Buffer.from(
    text.replace(/\+/g, ' ').replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16))),
    'latin1',
  );
  return utf8 ? bytes.toString('utf8') : bytes.toString('latin1');
}

/** PVE's decode_urlencoded: `split(/[\&\;]/)`, then `my ($k, $v) = split(/=/, $kv)`. */
export function decodeUrlencoded(data: string): RawPair[] {
  const pairs: RawPair[] = [];
  for (const kv of data.split(/[&;]/)) {
    if (kv === '') continue;
    const fields = kv.split('=');
    while (fields.length > 0 && fields[fields.length - 1] === '') fields.pop();
    const key = fields[0];
    if (key === undefined) continue;
    const value = fields[1];
    pairs.push({ key: unescape(key, false), value: value === undefined ? undefined : unescape(value, true) });
  }
  return pairs;
}

export type JsonBody = Map<string, ParamValue>;

/** A JSON body as Perl's decode_json leaves it: scalars stringified, booleans kept, lists and hashes as refs. */
export function decodeJsonBody(text: string): JsonBody {
  if (text.trim() === '') return new Map();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new PveError(501, `malformed JSON string: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new PveError(501, 'Not a HASH reference');
  const result: JsonBody = new Map();
  for (const [key, value] of Object.entries(parsed)) result.set(key, jsonValue(value));
  return result;
}

function scalar(value: unknown): string {
  return typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value);
}

function jsonValue(value: unknown): ParamValue {
  if (value === null || value === undefined) return null;
  if (typeof value === 'boolean') return value;
  if (Array.isArray(value)) return value.map(scalar);
  if (typeof value === 'object') return { ref: 'HASH' };
  return scalar(value);
}

const isArrayParam = (info: MethodInfo, key: string): boolean => info.parameters?.properties?.[key]?.type === 'array';

/**
 * Turns decoded pairs into parameters: repeated keys make a list for array parameters and
 * an error otherwise (PVE 9 refuses a parameter given twice).
 */
export function collectPairs(pairs: RawPair[], info: MethodInfo, errors: Record<string, string>): Map<string, ParamValue> {
  const grouped = new Map<string, (string | undefined)[]>();
  for (const pair of pairs) grouped.set(pair.key, [...(grouped.get(pair.key) ?? []), pair.value]);
  const result = new Map<string, ParamValue>();
  for (const [key, values] of grouped) {
    const defined = values.filter((value): value is string => value !== undefined);
    if (isArrayParam(info, key)) {
      result.set(key, defined);
    } else if (values.length > 1) {
      errors[key] = 'duplicate parameter (not allowed)';
      result.set(key, defined[0] ?? null);
    } else {
      result.set(key, defined[0] ?? null);
    }
  }
  return result;
}

/** A single string for an array parameter becomes a one-element list. */
export function normalizeArrays(params: Map<string, ParamValue>, info: MethodInfo): void {
  for (const [key, value] of params) if (isArrayParam(info, key) && typeof value === 'string') params.set(key, [value]);
}
