// What the apiserver does to a custom resource value with a structural schema, CEL aside:
// strict field validation (unknown fields), pruning, defaulting, and OpenAPI value validation.
// Messages follow the apiserver's (k8s.io/apiextensions-apiserver, Kubernetes 1.26) wording.
import type { Schema } from './cel.js';

export interface ValidationIssue {
  path: string;
  message: string;
}

export type JsonObject = Record<string, unknown>;

export const isObject = (value: unknown): value is JsonObject =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

export const childPath = (path: string, key: string) => (path === '' ? key : `${path}.${key}`);

const preservesUnknown = (schema: Schema) => schema['x-kubernetes-preserve-unknown-fields'] === true;

/** The schema for `key` of an object: a declared property, or the map value schema. */
export function propertySchema(schema: Schema, key: string): Schema | undefined {
  const additional = schema.additionalProperties;
  return schema.properties?.[key] ?? (typeof additional === 'object' ? additional : undefined);
}

/** Canonical JSON (sorted keys), for equality of decoded values. */
export function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (isObject(value)) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'undefined';
}

/** kubectl's strict field validation: every field the schema does not know is an error. */
export function unknownFields(value: unknown, schema: Schema, path: string, issues: ValidationIssue[]): void {
  if (Array.isArray(value)) {
    const items = schema.items;
    if (items) value.forEach((item, i) => unknownFields(item, items, `${path}[${i}]`, issues));
    return;
  }
  if (!isObject(value) || (schema.type !== 'object' && !preservesUnknown(schema))) return;
  for (const [key, child] of Object.entries(value)) {
    const childSchema = propertySchema(schema, key);
    const where = childPath(path, key);
    if (childSchema) unknownFields(child, childSchema, where, issues);
    else if (!preservesUnknown(schema)) issues.push({ path: where, message: `unknown field "${where}"` });
  }
}

/**
 * Pruning then defaulting, as on every write: unknown fields go, nulls in non-nullable fields go
 * (or take the default), and absent fields with a default get it where their parent exists.
 */
export function pruneAndDefault(value: unknown, schema: Schema): unknown {
  if (Array.isArray(value)) {
    const items = schema.items;
    return items ? value.map((item) => pruneAndDefault(item, items)) : value;
  }
  if (!isObject(value) || (schema.type !== 'object' && !preservesUnknown(schema))) return value;
  const out: JsonObject = {};
  for (const [key, child] of Object.entries(value)) {
    const childSchema = propertySchema(schema, key);
    if (!childSchema) {
      if (preservesUnknown(schema)) out[key] = child;
    } else if (child !== null || childSchema.nullable === true) {
      out[key] = pruneAndDefault(child, childSchema);
    }
  }
  for (const [key, childSchema] of Object.entries(schema.properties ?? {})) {
    if (out[key] === undefined && childSchema.default !== undefined) {
      out[key] = pruneAndDefault(structuredClone(childSchema.default), childSchema);
    }
  }
  return out;
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function hasType(value: unknown, type: string): boolean {
  const actual = typeOf(value);
  return actual === type || (type === 'number' && actual === 'integer');
}

const show = (value: unknown) => (typeof value === 'object' && value !== null ? `"${typeOf(value)}"` : JSON.stringify(value));

const regexCache = new Map<string, RegExp>();
function regex(pattern: string): RegExp {
  let re = regexCache.get(pattern);
  if (!re) regexCache.set(pattern, (re = new RegExp(pattern)));
  return re;
}

// RFC 3339 as strfmt.DateTime accepts it; durations as strfmt.ParseDuration does.
const FORMATS: Record<string, RegExp> = {
  'date-time': /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/,
  date: /^\d{4}-\d{2}-\d{2}$/,
  duration: /^[-+]?(\d+(\.\d+)?\s*(ns|us|µs|ms|s|m|h|d|w)\s*)+$/,
};
const INT_RANGES: Record<string, [number, number]> = {
  int32: [-2147483648, 2147483647],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

/** OpenAPI v3 value validation of a pruned and defaulted value (x-kubernetes-validations aside). */
export function validateValue(value: unknown, schema: Schema, path: string, issues: ValidationIssue[]): void {
  const invalid = (message: string): void => {
    issues.push({ path, message: `Invalid value: ${show(value)}: ${message}` });
  };
  if (value === undefined) return;
  if (value === null) {
    if (schema.nullable !== true && !preservesUnknown(schema)) invalid(`${path} in body must be of type ${schema.type ?? 'object'}`);
    return;
  }
  if (schema['x-kubernetes-int-or-string'] === true) {
    if (!hasType(value, 'string') && !hasType(value, 'integer')) invalid(`${path} in body must be of type integer or string`);
  } else if (schema.type !== undefined && !hasType(value, schema.type)) {
    invalid(`${path} in body must be of type ${schema.type}: "${typeOf(value)}"`);
    return;
  }
  if (schema.enum && !schema.enum.some((option) => canonical(option) === canonical(value))) {
    const supported = schema.enum.map((option) => JSON.stringify(option)).join(', ');
    issues.push({ path, message: `Unsupported value: ${JSON.stringify(value)}: supported values: ${supported}` });
  }
  if (typeof value === 'string') validateString(value, schema, path, invalid);
  else if (typeof value === 'number') validateNumber(value, schema, path, invalid);
  else if (Array.isArray(value)) validateArray(value, schema, path, issues, invalid);
  else if (isObject(value)) validateObject(value, schema, path, issues, invalid);
}

function validateString(value: string, schema: Schema, path: string, invalid: (m: string) => void): void {
  const length = [...value].length;
  if (schema.minLength !== undefined && length < schema.minLength) {
    invalid(`${path} in body should be at least ${schema.minLength} chars long`);
  }
  if (schema.maxLength !== undefined && length > schema.maxLength) {
    invalid(`${path} in body should be at most ${schema.maxLength} chars long`);
  }
  if (schema.pattern !== undefined && !regex(schema.pattern).test(value)) {
    invalid(`${path} in body should match '${schema.pattern}'`);
  }
  const format = schema.format === undefined ? undefined : FORMATS[schema.format];
  if (format && !format.test(value)) invalid(`${path} in body must be of type ${schema.format}: ${JSON.stringify(value)}`);
}

function validateNumber(value: number, schema: Schema, path: string, invalid: (m: string) => void): void {
  const { minimum, maximum } = schema;
  if (minimum !== undefined && (schema.exclusiveMinimum ? value <= minimum : value < minimum)) {
    invalid(`${path} in body should be greater than ${schema.exclusiveMinimum ? '' : 'or equal to '}${minimum}`);
  }
  if (maximum !== undefined && (schema.exclusiveMaximum ? value >= maximum : value > maximum)) {
    invalid(`${path} in body should be less than ${schema.exclusiveMaximum ? '' : 'or equal to '}${maximum}`);
  }
  if (schema.multipleOf !== undefined && !Number.isInteger(value / schema.multipleOf)) {
    invalid(`${path} in body should be a multiple of ${schema.multipleOf}`);
  }
  const range = schema.format === undefined ? undefined : INT_RANGES[schema.format];
  if (range && (value < range[0] || value > range[1])) invalid(`${path} in body must be of type ${schema.format}`);
}

function validateArray(
  value: unknown[],
  schema: Schema,
  path: string,
  issues: ValidationIssue[],
  invalid: (m: string) => void,
): void {
  if (schema.minItems !== undefined && value.length < schema.minItems) {
    invalid(`${path} in body should have at least ${schema.minItems} items`);
  }
  if (schema.maxItems !== undefined && value.length > schema.maxItems) {
    issues.push({ path, message: `Too many: ${value.length}: must have at most ${schema.maxItems} items` });
  }
  const listType = schema['x-kubernetes-list-type'];
  const keys = schema['x-kubernetes-list-map-keys'] ?? [];
  if (listType === 'map' || listType === 'set') {
    const seen = new Set<string>();
    value.forEach((item, i) => {
      const identity =
        listType === 'set' || !isObject(item) ? item : Object.fromEntries(keys.map((k) => [k, item[k]]));
      const key = canonical(identity);
      if (seen.has(key)) issues.push({ path: `${path}[${i}]`, message: `Duplicate value: ${key}` });
      seen.add(key);
    });
  }
  const items = schema.items;
  if (items) value.forEach((item, i) => validateValue(item, items, `${path}[${i}]`, issues));
}

function validateObject(
  value: JsonObject,
  schema: Schema,
  path: string,
  issues: ValidationIssue[],
  invalid: (m: string) => void,
): void {
  for (const name of schema.required ?? []) {
    if (value[name] === undefined) issues.push({ path: childPath(path, name), message: 'Required value' });
  }
  const count = Object.keys(value).length;
  if (schema.minProperties !== undefined && count < schema.minProperties) {
    invalid(`${path} in body should have at least ${schema.minProperties} properties`);
  }
  if (schema.maxProperties !== undefined && count > schema.maxProperties) {
    invalid(`${path} in body should have at most ${schema.maxProperties} properties`);
  }
  for (const [key, child] of Object.entries(value)) {
    const childSchema = propertySchema(schema, key);
    if (childSchema) validateValue(child, childSchema, childPath(path, key), issues);
  }
}
