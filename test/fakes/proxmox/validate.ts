/**
 * Parameter verification as PVE's JSONSchema.pm does it (check_prop, check_type,
 * check_format, parse_property_string), with the same error texts, so a request the
 * real server refuses is refused here with the same `errors` object.
 */
import { FormatError, addError } from './errors.js';
import { NAMED_FORMATS, splitList, type NamedHashFormat } from './formats.js';
import { qemuCreateProperty, resolveProperty, type FormatHash, type MethodInfo, type PropSchema } from './schema.js';

/** A decoded parameter: form/query values are strings, JSON may add booleans, lists and objects. */
export type ParamValue = string | boolean | readonly string[] | { readonly ref: 'HASH' } | null;

export const isNumber = (value: string): boolean => /^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$/.test(value);
export const isInteger = (value: string): boolean => /^[+-]?\d+$/.test(value);

const truthy = (flag: unknown): boolean => flag === true || flag === 1 || flag === '1';

const patternCache = new Map<string, RegExp | null>();

/**
 * A Perl pattern as JS RegExp, anchored like `m/^$pattern$/` (whose `$` also matches before a
 * final newline). `(?^i:…)` has no JS equivalent before Node 23, so it makes the whole match
 * case-insensitive.
 */
export function perlPattern(pattern: string): RegExp | null {
  const cached = patternCache.get(pattern);
  if (cached !== undefined) return cached;
  let flags = '';
  const source = pattern
    .replace(/\(\?\^([a-z]*):/g, (_, modifiers: string) => {
      if (modifiers.includes('i')) flags = 'i';
      return '(?:';
    })
    .replace(/\{,(\d+)\}/g, '{0,$1}');
  let compiled: RegExp | null;
  try {
    compiled = new RegExp(`^(?:${source})\\n?$`, flags);
  } catch {
    compiled = null;
  }
  patternCache.set(pattern, compiled);
  return compiled;
}

function refName(value: ParamValue): string | undefined {
  if (Array.isArray(value)) return 'ARRAY';
  if (typeof value === 'boolean') return 'JSON::PP::Boolean';
  if (typeof value === 'object' && value !== null) return 'HASH';
  return undefined;
}

function checkType(path: string, type: string | undefined, value: ParamValue, errors: Record<string, string>): boolean {
  if (!type || type === 'any') return true;
  if (type === 'array') {
    if (Array.isArray(value)) return true;
    addError(errors, path, `type check ('${type}') failed`);
    return false;
  }
  if (type === 'object') {
    if (refName(value) === 'HASH') return true;
    addError(errors, path, `type check ('${type}') failed`);
    return false;
  }
  const ref = refName(value);
  if (ref !== undefined) {
    if (type === 'boolean' && typeof value === 'boolean') return true;
    addError(errors, path, `type check ('${type}') failed - got ${ref}`);
    return false;
  }
  const text = value as string;
  const ok =
    type === 'boolean' ? text === '1' || text === '0' : type === 'integer' ? isInteger(text) : type === 'number' ? isNumber(text) : true;
  if (!ok) addError(errors, path, `type check ('${type}') failed - got '${text}'`);
  return ok;
}

export function checkProp(
  value: ParamValue | undefined,
  schema: PropSchema,
  path: string,
  errors: Record<string, string>,
): void {
  if (schema.oneOf && schema.oneOf.length > 0) {
    // Only non-VM endpoints (SDN, HA rules) use oneOf; accept what any alternative accepts.
    const attempts = schema.oneOf.map((alternative) => {
      const inner: Record<string, string> = {};
      checkProp(value, alternative, path, inner);
      return inner;
    });
    if (attempts.some((inner) => Object.keys(inner).length === 0)) return;
    for (const [key, message] of Object.entries(attempts[0] ?? {})) addError(errors, key, message);
    return;
  }
  if (value === undefined || value === null) {
    if (schema.type === 'null') return;
    if (!truthy(schema.optional) && !schema.alias && !schema.group) {
      addError(errors, path, 'property is missing and it is not optional');
    }
    return;
  }
  if (!checkType(path, schema.type, value, errors)) return;
  if (Array.isArray(value)) {
    const items = schema.items;
    if (items) (value as readonly string[]).forEach((element, index) => checkProp(element, items, `${path}[${index}]`, errors));
    return;
  }
  if (typeof value !== 'string') return;

  if (schema.format !== undefined) {
    try {
      checkFormat(schema.format, value, path);
    } catch (error) {
      if (!(error instanceof FormatError)) throw error;
      addError(errors, path, `invalid format - ${error.toString()}`);
      return;
    }
  }
  if (schema.pattern !== undefined) {
    const regex = perlPattern(schema.pattern);
    if (regex && !regex.test(value)) {
      addError(errors, path, 'value does not match the regex pattern');
      return;
    }
  }
  if (schema.maxLength !== undefined && [...value].length > Number(schema.maxLength)) {
    addError(errors, path, `value may only be ${schema.maxLength} characters long`);
    return;
  }
  if (schema.minLength !== undefined && [...value].length < Number(schema.minLength)) {
    addError(errors, path, `value must be at least ${schema.minLength} characters long`);
    return;
  }
  if (isNumber(value)) {
    if (schema.maximum !== undefined && Number(value) > Number(schema.maximum)) {
      addError(errors, path, `value must have a maximum value of ${schema.maximum}`);
      return;
    }
    if (schema.minimum !== undefined && Number(value) < Number(schema.minimum)) {
      addError(errors, path, `value must have a minimum value of ${schema.minimum}`);
      return;
    }
  }
  if (schema.enum && !schema.enum.some((allowed) => String(allowed) === value)) {
    addError(errors, path, `value '${value}' does not have a value in the enumeration '${schema.enum.join(', ')}'`);
  }
}

/** `check_object` over the declared properties, additional keys and `requires`. */
export function checkObject(
  path: string,
  properties: Record<string, PropSchema>,
  value: ReadonlyMap<string, ParamValue>,
  additionalProperties: unknown,
  errors: Record<string, string>,
): void {
  const join = (key: string): string => (path === '' ? key : `${path}.${key}`);
  for (const [key, schema] of Object.entries(properties)) {
    if (key.endsWith('[n]')) continue;
    checkProp(value.get(key), schema, join(key), errors);
  }
  for (const [key, item] of value) {
    const resolved = resolveProperty(properties, key);
    if (resolved) {
      if (resolved.indexed) checkProp(item, resolved.schema, join(key), errors);
      const requires = resolved.schema.requires;
      if (typeof requires === 'string' && (value.get(requires) === undefined || value.get(requires) === null)) {
        addError(errors, join(requires), `missing property - '${join(key)}' requires this property`);
      }
      continue;
    }
    if (additionalProperties !== undefined && !truthy(additionalProperties)) {
      addError(errors, join(key), 'property is not defined in schema and the schema does not allow additional properties');
    }
  }
}

/** Verifies a request's parameters against its method; returns `errors` (empty when valid). */
export function verifyParameters(info: MethodInfo, params: ReadonlyMap<string, ParamValue>): Record<string, string> {
  const errors: Record<string, string> = {};
  checkObject('', info.parameters?.properties ?? {}, params, info.parameters?.additionalProperties, errors);
  return errors;
}

function namedHash(name: string): NamedHashFormat | undefined {
  const registered = NAMED_FORMATS.get(name);
  if (registered && typeof registered !== 'function') return registered;
  if (name === 'pve-qm-ide') {
    const ide = qemuCreateProperty('ide2')?.format;
    if (ide && typeof ide === 'object') return { hash: ide };
  }
  return undefined;
}

/** `check_format`: hash formats parse as property strings, `-list`/`-opt` suffixes wrap validators. */
export function checkFormat(format: string | FormatHash, value: string, path: string): void {
  if (typeof format !== 'string') {
    parsePropertyString(format, value, path);
    return;
  }
  if (format === 'regex') return;
  if (namedHash(format)) {
    parsePropertyString(format, value, path);
    return;
  }
  const match = /^(.*?)(?:-(list|opt))?$/.exec(format);
  const name = match?.[1] ?? format;
  const kind = match?.[2];
  const validator = NAMED_FORMATS.get(name);
  if (typeof validator !== 'function') return; // not modelled: accepted
  if (kind === 'list') splitList(value).forEach((item) => validator(item));
  else if (kind === 'opt') {
    if (value !== '' && value !== '0') validator(value);
  } else validator(value);
}

const parseBoolean = (value: string): string | undefined =>
  /^(1|on|yes|true)$/i.test(value) ? '1' : /^(0|off|no|false)$/i.test(value) ? '0' : undefined;

/** `parse_property_string`: `key=value,…` with default key, aliases and key aliases. */
export function parsePropertyString(format: string | FormatHash, data: string, path = ''): Record<string, string> {
  let hash: FormatHash;
  let validator: NamedHashFormat['validator'];
  if (typeof format === 'string') {
    const named = namedHash(format);
    if (!named) throw new FormatError(`unknown format: ${format}\n`);
    hash = named.hash;
    validator = named.validator;
  } else {
    hash = format;
  }

  const result = new Map<string, string>();
  let defaultKey: string | undefined;
  for (const part of data.split(',')) {
    if (/^\s*$/.test(part)) continue;
    const pair = /^([^=]+)=([^\n]+)\n?$/.exec(part);
    if (pair) {
      let key = pair[1] ?? '';
      let text = pair[2] ?? '';
      if (result.has(key)) throw new FormatError(`duplicate key in comma-separated list property: ${key}\n`);
      let schema = hash[key];
      if (schema?.alias) {
        if (schema.keyAlias) {
          if (result.has(schema.keyAlias)) throw new FormatError(`key alias '${schema.keyAlias}' is already defined\n`);
          result.set(schema.keyAlias, key);
        }
        key = schema.alias;
        schema = hash[key];
      }
      if (!schema) throw new FormatError(`invalid key in comma-separated list property: ${key}\n`);
      if (schema.type === 'boolean') text = parseBoolean(text) ?? text;
      result.set(key, text);
    } else if (!part.includes('=')) {
      if (defaultKey !== undefined) throw new FormatError(`duplicate key in comma-separated list property: ${defaultKey}\n`);
      defaultKey = Object.keys(hash).find((key) => truthy(hash[key]?.default_key));
      if (defaultKey === undefined) throw new FormatError('value without key, but schema does not define a default key\n');
      if (result.has(defaultKey)) throw new FormatError(`duplicate key in comma-separated list property: ${defaultKey}\n`);
      result.set(defaultKey, part);
    } else {
      throw new FormatError('missing key in comma-separated list property\n');
    }
  }

  const errors: Record<string, string> = {};
  checkObject(path, hash, result, 0, errors);
  if (Object.keys(errors).length > 0) throw new FormatError('format error\n', errors);
  const parsed = Object.fromEntries(result);
  validator?.(parsed);
  return parsed;
}

/** PVE's `format_size`: the largest unit that divides the byte count. */
export function formatSize(bytes: number): string {
  const size = Math.floor(bytes);
  const kb = Math.floor(size / 1024);
  if (kb * 1024 !== size) return String(size);
  const mb = Math.floor(kb / 1024);
  if (mb * 1024 !== kb) return `${kb}K`;
  const gb = Math.floor(mb / 1024);
  if (gb * 1024 !== mb) return `${mb}M`;
  const tb = Math.floor(gb / 1024);
  if (tb * 1024 !== gb) return `${gb}G`;
  return `${tb}T`;
}

/** PVE's `parse_size`; undefined for anything that is not `<number>[KMGT]`. */
export function parseSize(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)([KMGT])?$/.exec(text);
  if (!match) return undefined;
  const unit = { K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[match[2] as 'K' | 'M' | 'G' | 'T'] ?? 1;
  return Math.floor(Number(match[1]) * unit);
}

/** `print_property_string`: default key (with its key alias) first, then required, then sorted keys. */
export function printPropertyString(data: Record<string, string>, hash: FormatHash): string {
  const defaultKey = Object.keys(hash).find((key) => truthy(hash[key]?.default_key));
  const keyAliasOf = new Map<string, string>();
  for (const schema of Object.values(hash)) {
    if (schema.keyAlias && schema.alias) keyAliasOf.set(schema.keyAlias, schema.alias);
  }
  const parts: string[] = [];
  const done = new Set<string>();
  const render = (key: string, text: string): string => {
    const subformat = hash[key]?.format;
    if (subformat === 'disk-size' && /^\d+$/.test(text)) return formatSize(Number(text));
    return text;
  };
  const add = (key: string, isDefault: boolean): void => {
    if (done.has(key)) return;
    done.add(key);
    const text = data[key];
    if (text === undefined) return;
    const combine = keyAliasOf.get(key);
    const combined = combine === undefined ? undefined : data[combine];
    if (combine !== undefined && combined !== undefined) {
      parts.push(`${text}=${render(combine, combined)}`);
      done.add(combine);
      return;
    }
    parts.push(isDefault ? render(key, text) : `${key}=${render(key, text)}`);
  };
  if (defaultKey !== undefined) add(defaultKey, true);
  const keys = Object.keys(data).sort();
  for (const key of keys) if (hash[key] && !truthy(hash[key]?.optional)) add(key, false);
  for (const key of keys) add(key, false);
  return parts.join(',');
}
