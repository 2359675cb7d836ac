// The Metacontroller v4 webhook protocol (CompositeController customize / sync / finalize).
//
// Map keys in `children` and `related` are `name` before Metacontroller v4.15 (which ignores the
// declared hook `version: v2`) and `namespace/name` from v4.15 on, so nothing here or in the hooks
// parses them: objects are identified by their own apiVersion, kind and metadata.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { ObjectMeta } from './crds/common.js';

/** Any Kubernetes object as it arrives: identity typed, everything else passed through. */
export const KubeObject = Type.Object(
  {
    apiVersion: Type.String({ minLength: 1 }),
    kind: Type.String({ minLength: 1 }),
    metadata: ObjectMeta,
  },
  { additionalProperties: true },
);
export type KubeObject = Static<typeof KubeObject> & Record<string, unknown>;

/** `{"<Kind>.<apiVersion>": {"<key>": object}}`, keys opaque. */
export const ObjectsByType = Type.Record(Type.String(), Type.Record(Type.String(), KubeObject));
export type ObjectsByType = Static<typeof ObjectsByType>;

/** The CompositeController object; hooks do not depend on its content. */
export const ControllerObject = Type.Object({}, { additionalProperties: true });

export function CustomizeRequest<Parent extends TSchema>(parent: Parent) {
  return Type.Object(
    {
      controller: ControllerObject,
      parent,
    },
    { additionalProperties: true },
  );
}

export function SyncRequest<Parent extends TSchema>(parent: Parent) {
  return Type.Object(
    {
      controller: ControllerObject,
      parent,
      children: Type.Optional(ObjectsByType),
      related: Type.Optional(ObjectsByType),
      finalizing: Type.Optional(Type.Boolean()),
    },
    { additionalProperties: true },
  );
}

export interface SyncRequestBody<Parent> {
  controller: Record<string, unknown>;
  parent: Parent;
  children?: ObjectsByType;
  related?: ObjectsByType;
  finalizing?: boolean;
}

export interface CustomizeRequestBody<Parent> {
  controller: Record<string, unknown>;
  parent: Parent;
}

export const LabelSelector = Type.Object(
  {
    matchLabels: Type.Optional(Type.Record(Type.String(), Type.String())),
    matchExpressions: Type.Optional(
      Type.Array(
        Type.Object(
          {
            key: Type.String(),
            operator: Type.String(),
            values: Type.Optional(Type.Array(Type.String())),
          },
          { additionalProperties: false },
        ),
      ),
    ),
  },
  { additionalProperties: false },
);

export const RelatedResourceRule = Type.Object(
  {
    apiVersion: Type.String({ minLength: 1 }),
    resource: Type.String({ minLength: 1 }),
    labelSelector: Type.Optional(LabelSelector),
    namespaceSelector: Type.Optional(LabelSelector),
    namespace: Type.Optional(Type.String()),
    names: Type.Optional(Type.Array(Type.String())),
  },
  { additionalProperties: false },
);
export type RelatedResourceRule = Static<typeof RelatedResourceRule>;

/** Strict (v2) response shapes: no field beyond these at the top level. */
export const CustomizeResponse = Type.Object(
  { relatedResources: Type.Array(RelatedResourceRule) },
  { additionalProperties: false },
);
export type CustomizeResponse = Static<typeof CustomizeResponse>;

export const SyncResponse = Type.Object(
  {
    status: Type.Record(Type.String(), Type.Unknown()),
    children: Type.Array(KubeObject),
    resyncAfterSeconds: Type.Optional(Type.Number({ minimum: 0 })),
    finalized: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export interface SyncResponse {
  status: Record<string, unknown>;
  children: KubeObject[];
  resyncAfterSeconds?: number;
  finalized?: boolean;
}

/** Every object of one kind found in a request map, whatever its keys look like. */
export function objectsOfKind(map: ObjectsByType | undefined, apiVersion: string, kind: string): KubeObject[] {
  const found: KubeObject[] = [];
  for (const byKey of Object.values(map ?? {})) {
    for (const object of Object.values(byKey)) {
      if (object.kind === kind && object.apiVersion === apiVersion) found.push(object as KubeObject);
    }
  }
  return found;
}

/** One object by kind, namespace and name; related maps can carry other parents' objects too. */
export function findObject(
  map: ObjectsByType | undefined,
  ref: { apiVersion: string; kind: string; namespace: string | undefined; name: string },
): KubeObject | undefined {
  return objectsOfKind(map, ref.apiVersion, ref.kind).find(
    (object) => object.metadata.name === ref.name && (object.metadata.namespace ?? undefined) === ref.namespace,
  );
}
