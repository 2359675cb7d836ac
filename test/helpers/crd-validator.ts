// An apiserver stand-in for custom resources (Kubernetes 1.26, kubectl's strict field validation):
// what `kubectl apply` of an object would be told, given the CRD that serves its kind.
//
// Not emulated: CEL cost limits, the `timestamp`/`duration` CEL types for format date-time and
// duration strings (rules see them as strings), ObjectMeta validation beyond name, namespace,
// labels and annotations, and the status subresource resetting status on create.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { compileRule, type CompileResult, type Schema, type ValidationRule } from './cel.js';
import {
  canonical,
  childPath,
  isObject,
  propertySchema,
  pruneAndDefault,
  unknownFields,
  validateValue,
  type JsonObject,
  type ValidationIssue,
} from './schema-values.js';

export type { Schema, ValidationRule } from './cel.js';
export type { ValidationIssue } from './schema-values.js';

/** ObjectMeta's fields: metadata is decoded into it, not through the CRD schema. */
const OBJECT_META_FIELDS = new Set([
  'name',
  'generateName',
  'namespace',
  'selfLink',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'labels',
  'annotations',
  'ownerReferences',
  'finalizers',
  'managedFields',
]);
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

interface ServedVersion {
  name: string;
  storage: boolean;
  schema: Schema;
}

function readYamlDocuments(path: string): unknown[] {
  return parseAllDocuments(readFileSync(path, 'utf8')).map((doc) => {
    const [error] = doc.errors;
    if (error) throw new Error(`${path}: ${error.message}`);
    return doc.toJS() as unknown;
  });
}

const isCrd = (doc: unknown): doc is JsonObject =>
  isObject(doc) && doc['apiVersion'] === 'apiextensions.k8s.io/v1' && doc['kind'] === 'CustomResourceDefinition';

export class CrdValidator {
  readonly kind: string;
  readonly plural: string;
  readonly group: string;
  readonly #versions: ServedVersion[];
  readonly #compiled = new Map<Schema, CompileResult[]>();

  static fromFile(path: string): CrdValidator {
    const crd = readYamlDocuments(path).find(isCrd);
    if (!crd) throw new Error(`${path}: no apiextensions.k8s.io/v1 CustomResourceDefinition`);
    return new CrdValidator(crd);
  }

  static fromObject(crd: object): CrdValidator {
    return new CrdValidator(crd);
  }

  private constructor(crd: object) {
    if (!isCrd(crd)) throw new Error('not an apiextensions.k8s.io/v1 CustomResourceDefinition');
    const spec = isObject(crd['spec']) ? crd['spec'] : {};
    const names = isObject(spec['names']) ? spec['names'] : {};
    this.kind = String(names['kind']);
    this.plural = String(names['plural']);
    this.group = String(spec['group']);
    const versions = Array.isArray(spec['versions']) ? spec['versions'].filter(isObject) : [];
    this.#versions = versions
      .filter((v) => v['served'] === true)
      .map((v) => {
        const schema = isObject(v['schema']) ? v['schema']['openAPIV3Schema'] : undefined;
        if (!isObject(schema)) throw new Error(`${this.plural}.${this.group}: version ${String(v['name'])} has no schema`);
        return { name: String(v['name']), storage: v['storage'] === true, schema: schema as Schema };
      });
    if (this.#versions.length === 0) throw new Error(`${this.plural}.${this.group}: no served version`);
  }

  /** Validate a whole object on create (oldObject undefined) or update (transition rules get oldSelf). */
  validate(object: unknown, oldObject?: unknown): ValidationIssue[] {
    if (!isObject(object)) return [{ path: '', message: 'Invalid value: the object must be a JSON object' }];
    const issues: ValidationIssue[] = [];
    const { schema } = this.#version(object, issues);
    const { metadata, ...rest } = object;
    unknownFields(rest, schema, '', issues);
    if (isObject(metadata)) {
      for (const key of Object.keys(metadata)) {
        if (!OBJECT_META_FIELDS.has(key)) issues.push({ path: `metadata.${key}`, message: `unknown field "metadata.${key}"` });
      }
    }
    const current = this.prune(object) as JsonObject;
    validateMetadata(current['metadata'], oldObject === undefined, issues);
    validateValue(current, schema, '', issues);
    const old = oldObject === undefined ? undefined : this.prune(oldObject);
    this.#runRules(current, old, schema, '', issues, true);
    return issues;
  }

  /** What the apiserver stores: unknown fields pruned (everything not in the schema unless x-kubernetes-preserve-unknown-fields), defaults applied. */
  prune(object: unknown): unknown {
    if (!isObject(object)) return object;
    const { metadata, ...rest } = object;
    const pruned = pruneAndDefault(structuredClone(rest), this.#version(object).schema) as JsonObject;
    if (metadata === undefined) return pruned;
    const meta = isObject(metadata)
      ? Object.fromEntries(Object.entries(structuredClone(metadata)).filter(([k]) => OBJECT_META_FIELDS.has(k)))
      : metadata;
    return { ...pruned, metadata: meta };
  }

  #version(object: JsonObject, issues?: ValidationIssue[]): ServedVersion {
    const apiVersion = object['apiVersion'];
    const served = this.#versions.find((v) => apiVersion === `${this.group}/${v.name}`);
    if (!served) {
      const expected = this.#versions.map((v) => `"${this.group}/${v.name}"`).join(', ');
      issues?.push({ path: 'apiVersion', message: `Unsupported value: ${JSON.stringify(apiVersion)}: supported values: ${expected}` });
    }
    if (object['kind'] !== this.kind) {
      issues?.push({ path: 'kind', message: `Unsupported value: ${JSON.stringify(object['kind'])}: supported values: "${this.kind}"` });
    }
    return served ?? this.#versions.find((v) => v.storage) ?? (this.#versions[0] as ServedVersion);
  }

  #rules(schema: Schema, root: boolean): CompileResult[] {
    let rules = this.#compiled.get(schema);
    if (!rules) {
      rules = (schema['x-kubernetes-validations'] ?? []).map((rule) => compileRule(rule, schema, root));
      this.#compiled.set(schema, rules);
    }
    return rules;
  }

  /** x-kubernetes-validations, depth first; old values are correlated by field name and list-map keys. */
  #runRules(value: unknown, old: unknown, schema: Schema, path: string, issues: ValidationIssue[], root = false): void {
    if (value === undefined || value === null) return;
    for (const compiled of this.#rules(schema, root)) {
      if (!compiled.ok) {
        issues.push({ path, message: compiled.error });
      } else if (!compiled.rule.transition || old !== undefined) {
        const failure = compiled.rule.run(value, old);
        if (failure !== undefined) issues.push({ path, message: failure });
      }
    }
    const items = schema.items;
    if (Array.isArray(value) && items) {
      const keys = schema['x-kubernetes-list-type'] === 'map' ? schema['x-kubernetes-list-map-keys'] ?? [] : undefined;
      value.forEach((item, i) => {
        const oldItem =
          keys && Array.isArray(old) && isObject(item)
            ? old.find((o) => isObject(o) && keys.every((k) => canonical(o[k]) === canonical(item[k])))
            : undefined;
        this.#runRules(item, oldItem, items, `${path}[${i}]`, issues);
      });
    } else if (isObject(value)) {
      for (const [key, child] of Object.entries(value)) {
        const childSchema = root && key === 'metadata' ? undefined : propertySchema(schema, key);
        const oldChild = isObject(old) ? old[key] : undefined;
        if (childSchema) this.#runRules(child, oldChild, childSchema, childPath(path, key), issues);
      }
    }
  }
}

function validateMetadata(metadata: unknown, create: boolean, issues: ValidationIssue[]): void {
  if (metadata !== undefined && !isObject(metadata)) {
    issues.push({ path: 'metadata', message: 'Invalid value: metadata must be an object' });
    return;
  }
  const { name, generateName, namespace, labels, annotations } = metadata ?? {};
  if (name === undefined) {
    if (!create || generateName === undefined) {
      issues.push({ path: 'metadata.name', message: 'Required value: name or generateName is required' });
    }
  } else if (typeof name !== 'string' || name.length > 253 || !DNS1123_SUBDOMAIN.test(name)) {
    issues.push({ path: 'metadata.name', message: `Invalid value: ${JSON.stringify(name)}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'` });
  }
  if (namespace !== undefined && (typeof namespace !== 'string' || namespace.length > 63 || !DNS1123_LABEL.test(namespace))) {
    issues.push({ path: 'metadata.namespace', message: `Invalid value: ${JSON.stringify(namespace)}: a lowercase RFC 1123 label` });
  }
  for (const [field, map] of [['labels', labels], ['annotations', annotations]] as const) {
    if (map === undefined) continue;
    if (!isObject(map) || Object.values(map).some((v) => typeof v !== 'string')) {
      issues.push({ path: `metadata.${field}`, message: `Invalid value: ${field} must map strings to strings` });
    }
  }
}

/** Every CRD in `dir` (*.yaml, several documents per file allowed), by kind. */
const loaded = new Map<string, Map<string, CrdValidator>>();

/** The validators of every CRD in `dir`, compiled once per process (they keep no state between calls). */
export function loadCrdValidators(dir: string): Map<string, CrdValidator> {
  const cached = loaded.get(dir);
  if (cached !== undefined) return cached;
  const validators = new Map<string, CrdValidator>();
  loaded.set(dir, validators);
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const doc of readYamlDocuments(join(dir, file)).filter(isCrd)) {
      const validator = CrdValidator.fromObject(doc);
      validators.set(validator.kind, validator);
    }
  }
  return validators;
}

const TYPES = new Set(['object', 'array', 'string', 'integer', 'number', 'boolean']);
const SCALARS = new Set(['string', 'integer', 'number', 'boolean']);
const FORBIDDEN = ['const', 'anyOf', 'oneOf', 'allOf', 'not', '$ref', 'definitions', 'patternProperties', 'dependencies'];

/**
 * The rules the apiserver enforces on a CRD itself (structural schema, 1.26 CEL level, list-map
 * keys, valid defaults), as messages naming the offending node; empty when the CRD would be accepted.
 */
export function structuralIssues(crd: unknown): string[] {
  if (!isCrd(crd)) return ['not an apiextensions.k8s.io/v1 CustomResourceDefinition'];
  const issues: string[] = [];
  const spec = isObject(crd['spec']) ? crd['spec'] : {};
  const versions = Array.isArray(spec['versions']) ? spec['versions'] : [];
  if (versions.length === 0) issues.push('spec.versions: Required value');
  versions.forEach((version: unknown, i) => {
    const at = `spec.versions[${i}]`;
    const v = isObject(version) ? version : {};
    const subresources = v['subresources'];
    if (!isObject(subresources) || !isObject(subresources['status'])) {
      issues.push(`${at}.subresources.status: Required value: Metacontroller writes status through the status subresource`);
    }
    const root = isObject(v['schema']) ? v['schema']['openAPIV3Schema'] : undefined;
    if (!isObject(root)) {
      issues.push(`${at}.schema.openAPIV3Schema: Required value`);
      return;
    }
    const path = `${at}.schema.openAPIV3Schema`;
    if (root['type'] !== 'object') issues.push(`${path}.type: Unsupported value: the root must be an object`);
    const properties = isObject(root['properties']) ? root['properties'] : {};
    const metadata = properties['metadata'];
    if (metadata !== undefined && canonical(metadata) !== canonical({ type: 'object' })) {
      issues.push(`${path}.properties.metadata: Forbidden: must be just {type: object}`);
    }
    for (const field of ['apiVersion', 'kind']) {
      const schema = properties[field];
      if (schema !== undefined && (!isObject(schema) || schema['type'] !== 'string')) {
        issues.push(`${path}.properties.${field}.type: Unsupported value: must be string`);
      }
    }
    checkNode(root as Schema, path, issues, true, true);
  });
  return issues;
}

// The one junctor the apiserver's structural check lets through: int-or-string's two types.
const INT_OR_STRING_ANY_OF = canonical([{ type: 'integer' }, { type: 'string' }]);

function checkNode(schema: Schema, path: string, issues: string[], root: boolean, correlatable: boolean): void {
  for (const key of FORBIDDEN) {
    if (!(key in schema)) continue;
    const intOrString = key === 'anyOf' && schema['x-kubernetes-int-or-string'] === true && canonical((schema as Record<string, unknown>)['anyOf']) === INT_OR_STRING_ANY_OF;
    if (!intOrString) issues.push(`${path}.${key}: Forbidden: not allowed in a structural schema`);
  }
  const intOrString = schema['x-kubernetes-int-or-string'] === true;
  const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true;
  if (schema.type === undefined) {
    if (!intOrString && !preserve) issues.push(`${path}.type: Required value: must not be empty for specified fields`);
  } else if (!TYPES.has(schema.type)) {
    issues.push(`${path}.type: Unsupported value: ${JSON.stringify(schema.type)}`);
  }
  if (schema.additionalProperties === false) issues.push(`${path}.additionalProperties: Forbidden: must not be false`);
  if (schema.additionalProperties !== undefined && schema.properties !== undefined) {
    issues.push(`${path}.additionalProperties: Forbidden: additionalProperties and properties are mutually exclusive`);
  }
  if ((schema.properties !== undefined || schema.additionalProperties !== undefined) && schema.type !== 'object') {
    issues.push(`${path}.properties: Forbidden: only for type object`);
  }
  if (schema.type === 'array' && !isObject(schema.items)) issues.push(`${path}.items: Required value: must be a schema`);
  if (schema.items !== undefined && schema.type !== 'array') issues.push(`${path}.items: Forbidden: only for type array`);
  if (schema.uniqueItems === true) issues.push(`${path}.uniqueItems: Forbidden: uniqueItems cannot be true`);
  checkListType(schema, path, issues);
  (schema['x-kubernetes-validations'] ?? []).forEach((rule: ValidationRule, i) => {
    const at = `${path}.x-kubernetes-validations[${i}]`;
    const extra = Object.keys(rule).filter((k) => k !== 'rule' && k !== 'message');
    if (extra.length > 0) issues.push(`${at}: Forbidden: ${extra.join(', ')} (Kubernetes 1.26 rules have only rule and message)`);
    const compiled = compileRule(rule, schema, root);
    if (!compiled.ok) issues.push(`${at}.rule: ${compiled.error}`);
    else if (compiled.rule.transition && !correlatable) {
      issues.push(`${at}.rule: Forbidden: oldSelf cannot be used on the uncorrelatable portion of the schema`);
    }
  });
  if (schema.default !== undefined) {
    const defaultIssues: ValidationIssue[] = [];
    unknownFields(schema.default, schema, 'default', defaultIssues);
    validateValue(pruneAndDefault(schema.default, schema), schema, 'default', defaultIssues);
    for (const issue of defaultIssues) issues.push(`${path}.default: Invalid value: ${issue.path}: ${issue.message}`);
  }
  for (const [name, child] of Object.entries(schema.properties ?? {})) {
    checkNode(child, `${path}.properties[${name}]`, issues, false, correlatable);
  }
  if (isObject(schema.additionalProperties)) {
    checkNode(schema.additionalProperties as Schema, `${path}.additionalProperties`, issues, false, correlatable);
  }
  if (isObject(schema.items)) {
    const mapList = schema['x-kubernetes-list-type'] === 'map';
    checkNode(schema.items, `${path}.items`, issues, false, correlatable && mapList);
  }
}

function checkListType(schema: Schema, path: string, issues: string[]): void {
  const listType = schema['x-kubernetes-list-type'];
  const keys = schema['x-kubernetes-list-map-keys'];
  if (listType !== undefined && !['atomic', 'set', 'map'].includes(listType)) {
    issues.push(`${path}.x-kubernetes-list-type: Unsupported value: ${JSON.stringify(listType)}`);
  }
  if (listType !== undefined && schema.type !== 'array') issues.push(`${path}.x-kubernetes-list-type: Forbidden: only for arrays`);
  if (keys !== undefined && listType !== 'map') {
    issues.push(`${path}.x-kubernetes-list-map-keys: Forbidden: only with x-kubernetes-list-type: map`);
  }
  if (listType !== 'map') return;
  const items = schema.items;
  if (!items || items.type !== 'object') issues.push(`${path}.items.type: Unsupported value: list-type map items must be objects`);
  if (!keys || keys.length === 0) {
    issues.push(`${path}.x-kubernetes-list-map-keys: Required value: list-type map needs keys`);
    return;
  }
  for (const key of keys) {
    const property = items?.properties?.[key];
    if (!property || property.type === undefined || !SCALARS.has(property.type)) {
      issues.push(`${path}.x-kubernetes-list-map-keys: Invalid value: ${JSON.stringify(key)} must be a scalar property of the items`);
    } else if (!items?.required?.includes(key) && property.default === undefined) {
      issues.push(`${path}.x-kubernetes-list-map-keys: Invalid value: ${JSON.stringify(key)} must be required or have a default`);
    }
  }
}
