// TypeBox schema → structural CRD schema (apiextensions.k8s.io/v1).
//
// Structural schemas forbid `additionalProperties: false`, `const` and `anyOf` without a type, so
// the conversion drops the first (the apiserver prunes unknown fields instead) and turns literals
// into one-value enums. Everything else in our schemas is already structural.
import type { TSchema } from '@sinclair/typebox';
import { apiOf, type KindDefinition } from '../contracts/crds/common.js';

type JsonSchema = Record<string, unknown>;

const PASSTHROUGH = [
  'type',
  'description',
  'format',
  'pattern',
  'minLength',
  'maxLength',
  'minimum',
  'maximum',
  'minItems',
  'maxItems',
  'enum',
  'default',
  'x-kubernetes-validations',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-int-or-string',
  'maxProperties',
  'minProperties',
];

export function structuralSchema(schema: TSchema | JsonSchema): JsonSchema {
  const source = schema as JsonSchema;
  const out: JsonSchema = {};
  for (const key of PASSTHROUGH) {
    if (key in source) out[key] = source[key];
  }
  // Int-or-string nodes carry the apiserver's anyOf of the two types (as controller-gen writes them).
  if (source['x-kubernetes-int-or-string'] === true && Array.isArray(source['anyOf'])) out['anyOf'] = source['anyOf'];
  if ('const' in source) {
    out['type'] = typeof source['const'];
    out['enum'] = [source['const']];
  }
  if (source['type'] === 'object') {
    const properties = source['properties'] as Record<string, JsonSchema> | undefined;
    if (properties && Object.keys(properties).length > 0) {
      out['properties'] = Object.fromEntries(
        Object.entries(properties).map(([name, child]) => [name, structuralSchema(child)]),
      );
      const required = source['required'] as string[] | undefined;
      if (required && required.length > 0) out['required'] = required;
    }
    const additional = source['additionalProperties'];
    const patterns = source['patternProperties'] as Record<string, JsonSchema> | undefined;
    if (typeof additional === 'object' && additional !== null) {
      out['additionalProperties'] = structuralSchema(additional as JsonSchema);
    } else if (patterns) {
      // TypeBox writes Record<string, T> as a catch-all pattern property.
      const [only] = Object.values(patterns);
      if (only) out['additionalProperties'] = structuralSchema(only);
    }
  }
  if (source['type'] === 'array' && source['items']) {
    out['items'] = structuralSchema(source['items'] as JsonSchema);
  }
  return out;
}

export function customResourceDefinition(kind: KindDefinition): JsonSchema {
  const root: JsonSchema = {
    type: 'object',
    description: kind.description,
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      spec: structuralSchema(kind.spec),
      status: structuralSchema(kind.status),
    },
    required: ['spec'],
  };
  if (kind.rootRules && kind.rootRules.length > 0) root['x-kubernetes-validations'] = kind.rootRules;
  const api = apiOf(kind);
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${kind.plural}.${api.group}`,
      labels: { 'app.kubernetes.io/part-of': 'virtrigaud' },
    },
    spec: {
      group: api.group,
      scope: api.scope,
      names: {
        kind: kind.kind,
        listKind: `${kind.kind}List`,
        plural: kind.plural,
        singular: kind.singular,
        shortNames: kind.shortNames,
        categories: [api.category],
      },
      versions: [
        {
          name: api.version,
          served: true,
          storage: true,
          subresources: kind.scale ? { status: {}, scale: kind.scale } : { status: {} },
          additionalPrinterColumns: kind.printerColumns,
          schema: { openAPIV3Schema: root },
        },
      ],
    },
  };
}

