// Building blocks shared by every kind of infra.virtrigaud.io/v1beta1.
//
// Schemas here are plain JSON Schema (TypeBox) with the Kubernetes `x-kubernetes-*` extensions
// passed through as options; src/manifests turns them into structural CRD schemas, and the hook
// server validates requests with the very same objects.
import { FormatRegistry, Kind, Type, TypeRegistry, type SchemaOptions, type Static, type TSchema } from '@sinclair/typebox';
import { DURATION_PATTERN } from '../quantity.js';

export const GROUP = 'infra.virtrigaud.io';
export const VERSION = 'v1beta1';
export const API_VERSION = `${GROUP}/${VERSION}`;

// Value.Check (hooks use it on related objects) throws on kinds it does not know, and Type.Unsafe's
// default kind is one of them; give enums a kind of their own and teach Value.Check to check it.
const STRING_ENUM = 'StringEnum';
if (!TypeRegistry.Has(STRING_ENUM)) {
  TypeRegistry.Set<{ enum: string[] }>(STRING_ENUM, (schema, value) => typeof value === 'string' && schema.enum.includes(value));
}

// Value.Check fails every `format` it has no checker for; date-time is the one our schemas use
// (RFC 3339, as the apiserver and Fastify's Ajv check it).
if (!FormatRegistry.Has('date-time')) {
  FormatRegistry.Set('date-time', (value) =>
    /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.test(value),
  );
}

// Kubernetes int-or-string fields (a quantity written as 4096 or "4Gi"): the apiserver's
// x-kubernetes-int-or-string with a pattern for the string form, checked the same by Value.Check.
const INT_OR_STRING = 'IntOrString';
if (!TypeRegistry.Has(INT_OR_STRING)) {
  TypeRegistry.Set<{ pattern?: string }>(INT_OR_STRING, (schema, value) =>
    (typeof value === 'number' && Number.isInteger(value)) || (typeof value === 'string' && (schema.pattern === undefined || new RegExp(schema.pattern).test(value))),
  );
}

/** An integer, or a string matching `pattern` (x-kubernetes-int-or-string). */
export function IntOrString(options: SchemaOptions & { pattern?: string } = {}) {
  return Type.Unsafe<number | string>({
    ...options,
    [Kind]: INT_OR_STRING,
    'x-kubernetes-int-or-string': true,
    anyOf: [{ type: 'integer' }, { type: 'string' }],
  });
}

// A node of no fixed type (x-kubernetes-preserve-unknown-fields without a type): the one way a
// structural schema lets a key hold a string in one spelling and an object in another. The
// apiserver then checks only `enum` on it and CEL cannot see it, so the hook validates its exact
// shape (the schema passed as `shape`, never emitted into the CRD) and answers a condition.
const UNTYPED = 'Untyped';
if (!TypeRegistry.Has(UNTYPED)) {
  TypeRegistry.Set<{ enum?: unknown[] }>(UNTYPED, (schema, value) => schema.enum === undefined || schema.enum.some((option) => option === value));
}

/** A node that holds a string, an object or (with `enum`) one of a few values of any type. */
export function Untyped<T>(options: SchemaOptions & { enum?: unknown[] } = {}) {
  return Type.Unsafe<T>({ ...options, [Kind]: UNTYPED, 'x-kubernetes-preserve-unknown-fields': true });
}

/** A string restricted to a fixed set of values, emitted as `enum` (not `anyOf`) so CRDs stay structural. */
export function StringEnum<const T extends readonly string[]>(values: T, options: SchemaOptions = {}) {
  return Type.Unsafe<T[number]>({ ...options, [Kind]: STRING_ENUM, type: 'string', enum: [...values] });
}

/** A CEL rule at the Kubernetes 1.26 feature level: `rule` and `message` only. */
export interface CelRule {
  rule: string;
  message: string;
}

export function celRules(...rules: CelRule[]): { 'x-kubernetes-validations': CelRule[] } {
  return { 'x-kubernetes-validations': rules };
}

/** A list whose items are identified by `name`; order carries no meaning. */
export function NamedList<T extends TSchema>(item: T, options: SchemaOptions & { maxItems: number }) {
  return Type.Array(item, {
    ...options,
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['name'],
  });
}

const DNS1123_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
const DNS1123_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';

export const ObjectName = Type.String({ minLength: 1, maxLength: 253, pattern: DNS1123_SUBDOMAIN });
export const NamespaceName = Type.String({ minLength: 1, maxLength: 63, pattern: DNS1123_LABEL });
/** Names of things inside an object (disks, NICs): DNS labels. */
export const ItemName = Type.String({ minLength: 1, maxLength: 63, pattern: DNS1123_LABEL });

export const MacAddress = Type.String({ pattern: '^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$', maxLength: 17 });
export const VlanID = Type.Integer({ minimum: 1, maximum: 4094 });
/** Names of hypervisor things (bridges, networks, hosts, datastores). */
export const NetworkName = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][-A-Za-z0-9_.]*$' });

export const LocalObjectReference = Type.Object(
  { name: { ...ObjectName, description: 'The object\'s name.' } },
  { additionalProperties: false, description: 'An object in the same namespace.' },
);
export type LocalObjectReference = Static<typeof LocalObjectReference>;

export const ObjectReference = Type.Object(
  {
    name: { ...ObjectName, description: 'The object\'s name.' },
    namespace: Type.Optional({ ...NamespaceName, description: 'The object\'s namespace; the referrer\'s when unset.' }),
  },
  { additionalProperties: false, description: 'An object by name; namespace defaults to the referrer\'s.' },
);
export type ObjectReference = Static<typeof ObjectReference>;

export const SecretKeyReference = Type.Object(
  {
    name: ObjectName,
    key: Type.Optional(Type.String({ minLength: 1, maxLength: 253, pattern: '^[-._a-zA-Z0-9]+$' })),
  },
  { additionalProperties: false },
);
export type SecretKeyReference = Static<typeof SecretKeyReference>;

/** Kubernetes resource quantity in the forms people write for memory ("4Gi", "512Mi", "2G"). */
export const Quantity = Type.String({
  maxLength: 32,
  pattern: '^[0-9]+(\\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$',
  description: 'A quantity such as 4Gi or 512Mi.',
});

/**
 * Disk sizes: an integer with a unit, narrow enough that CEL at the 1.26 level (no quantity
 * library) can compare two sizes for the grow-only rule without overflowing int64.
 */
export const DiskSize = Type.String({
  maxLength: 12,
  pattern: '^[1-9][0-9]{0,5}(Mi|Gi|Ti|M|G|T)$',
  description: 'Disk size: an integer of at most six digits with Mi, Gi, Ti, M, G or T (e.g. 40Gi).',
});

/** Go duration (metav1.Duration) as Kubernetes users write it ("60s", "2m30s", "1.5h"). */
export const Duration = Type.String({ maxLength: 32, pattern: DURATION_PATTERN, description: 'A duration such as 60s, 2m30s or 1.5h.' });

export const ConditionStatus = StringEnum(['True', 'False', 'Unknown'] as const);
export type ConditionStatus = Static<typeof ConditionStatus>;

export const Condition = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 316, pattern: '^[A-Za-z][A-Za-z0-9]*$', description: 'What the condition is about (Ready, Provisioned…).' }),
    status: { ...ConditionStatus, description: 'True, False or Unknown.' },
    reason: Type.String({
      minLength: 1,
      maxLength: 1024,
      pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$',
      description: 'Why, as one CamelCase word (InvalidSpec, Unsupported…).',
    }),
    message: Type.String({ maxLength: 32768, description: 'Why, in words.' }),
    lastTransitionTime: Type.String({ format: 'date-time', description: 'When the status last changed.' }),
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'The generation of the spec the condition is about.' })),
  },
  { additionalProperties: false, description: 'One observation of the object\'s state.' },
);
export type Condition = Static<typeof Condition>;

export const Conditions = Type.Array(Condition, {
  maxItems: 32,
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['type'],
  description: 'The latest observations of the object\'s state, one per type; Ready sums them up.',
});

/** The status fields every kind carries. */
export const CommonStatusFields = {
  conditions: Type.Optional(Conditions),
  observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'The generation of the spec this status is about.' })),
};

/** The API group, version, scope and category of a kind. */
export function apiOf(kind: Pick<KindDefinition, 'api'>): { group: string; version: string; scope: 'Namespaced' | 'Cluster'; category: string; apiVersion: string } {
  const api = kind.api ?? { group: GROUP, version: VERSION, scope: 'Namespaced' as const, category: 'virtrigaud' };
  return { ...api, apiVersion: `${api.group}/${api.version}` };
}

/** Metadata as hooks receive it. Only what we read is typed; the rest passes through. */
export const ObjectMeta = Type.Object(
  {
    // Names reach metric labels, log lines, condition messages and hypervisor tags: the
    // apiserver's own rules are checked here too, so a hostile request cannot smuggle in others.
    name: ObjectName,
    namespace: Type.Optional(NamespaceName),
    uid: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9][-A-Za-z0-9_.]*$' })),
    generation: Type.Optional(Type.Integer({ minimum: 0 })),
    resourceVersion: Type.Optional(Type.String()),
    creationTimestamp: Type.Optional(Type.String()),
    deletionTimestamp: Type.Optional(Type.String()),
    labels: Type.Optional(Type.Record(Type.String(), Type.String())),
    annotations: Type.Optional(Type.Record(Type.String(), Type.String())),
    finalizers: Type.Optional(Type.Array(Type.String())),
  },
  { additionalProperties: true },
);
export type ObjectMeta = Static<typeof ObjectMeta>;

/**
 * One custom resource: the schema the CRD is generated from (`spec`, `status`) plus what the hook
 * request adds around it (apiVersion, kind, metadata).
 */
/** The Viti Proxmox Operator's API (seeds 003/004), served by the same engine. */
export const VITI_GROUP = 'vitistack.io';
export const VITI_VERSION = 'v1alpha1';
export const VITI_API_VERSION = `${VITI_GROUP}/${VITI_VERSION}`;

export interface KindDefinition<Spec extends TSchema = TSchema, Status extends TSchema = TSchema> {
  /** Default infra.virtrigaud.io / v1beta1, namespaced, category virtrigaud. */
  api?: { group: string; version: string; scope: 'Namespaced' | 'Cluster'; category: string };
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  description: string;
  spec: Spec;
  status: Status;
  /** Rules on the whole object (spec and status together), e.g. transition rules. */
  rootRules?: CelRule[];
  printerColumns: PrinterColumn[];
  /** The scale subresource (`kubectl scale`), for kinds with replicas. */
  scale?: { specReplicasPath: string; statusReplicasPath: string; labelSelectorPath?: string };
}

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
}

export const READY_COLUMN: PrinterColumn = {
  name: 'Ready',
  type: 'string',
  jsonPath: '.status.conditions[?(@.type=="Ready")].status',
};
export const REASON_COLUMN: PrinterColumn = {
  name: 'Reason',
  type: 'string',
  jsonPath: '.status.conditions[?(@.type=="Ready")].reason',
  priority: 1,
};
export const AGE_COLUMN: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

/** The request-side object schema for a kind: typed spec, loosely typed status (it is our own previous answer). */
export function ResourceObject<Spec extends TSchema>(kind: string, spec: Spec, apiVersion: string = API_VERSION) {
  return Type.Object(
    {
      apiVersion: Type.Literal(apiVersion),
      kind: Type.Literal(kind),
      metadata: ObjectMeta,
      spec,
      status: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    },
    { additionalProperties: true },
  );
}
