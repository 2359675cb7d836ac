// Validation failures as one line that names the field and says what it must be. Used for Ajv's
// errors (request bodies) and TypeBox's (related and child objects checked inside hooks).
import type { TSchema } from '@sinclair/typebox';
import { Value, ValueErrorType } from '@sinclair/typebox/value';
import { printable } from './json-body.js';

/** `/parent/spec/networks/0/name` → `parent.spec.networks[0].name`. */
export function dottedPath(pointer: string): string {
  let path = '';
  for (const raw of pointer.split('/').slice(1)) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    path += /^\d+$/.test(segment) ? `[${segment}]` : path === '' ? segment : `.${segment}`;
  }
  return printable(path, 200);
}

function join(path: string, key: string): string {
  const safe = printable(key, 100);
  return path === '' ? safe : `${path}.${safe}`;
}

/** The subset of Ajv's ErrorObject the formatter reads. */
export interface SchemaIssue {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string | undefined;
}

/** One Ajv error as `<where>: <what>`, e.g. `parent.apiVersion must be "infra.virtrigaud.io/v1beta1"`. */
export function describeSchemaIssue(issue: SchemaIssue, root: string): string {
  const path = dottedPath(issue.instancePath);
  const where = path === '' ? root : path;
  const params = issue.params;
  switch (issue.keyword) {
    case 'required':
      return `${where} is missing the required field "${join('', String(params['missingProperty']))}"`;
    case 'additionalProperties':
      return `${join(path, String(params['additionalProperty']))} is not a known field`;
    case 'const':
      return `${where} must be ${JSON.stringify(params['allowedValue'])}`;
    case 'enum':
      return `${where} must be one of ${(params['allowedValues'] as unknown[]).map((value) => JSON.stringify(value)).join(', ')}`;
    case 'type':
      return `${where} must be ${String(params['type'])}`;
    default:
      return `${where} ${issue.message ?? 'is invalid'}`;
  }
}

/** The first TypeBox error of `value` against `schema`, in the same words; undefined when it fits. */
export function firstSchemaProblem(schema: TSchema, value: unknown, root: string): string | undefined {
  const first = Value.Errors(schema, value).First();
  if (!first) return undefined;
  const path = dottedPath(first.path);
  const where = path === '' ? root : root === '' ? path : `${root}.${path}`;
  switch (first.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return `${where} is required`;
    case ValueErrorType.ObjectAdditionalProperties:
      return `${where} is not a known field`;
    case ValueErrorType.Literal:
      return `${where} must be ${JSON.stringify((first.schema as { const?: unknown }).const)}`;
    default:
      return `${where}: ${first.message.toLowerCase()}`;
  }
}
