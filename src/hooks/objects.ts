// Related and child objects as Metacontroller sends them are only envelope-checked (apiVersion,
// kind, metadata); before a hook reads anything else from one, it is checked against its kind's
// contract here. An invalid related object becomes a condition naming the object and the field;
// an invalid child is refused (422), because answering without it would delete it and answering
// with it would echo data nobody checked.
import type { Static, TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { findObject, objectsOfKind, type KubeObject, type ObjectsByType } from '../contracts/metacontroller.js';
import { firstSchemaProblem } from '../http/messages.js';

export type Checked<T> = { found: false } | { found: true; problem: string } | { found: true; object: T; problem?: undefined };

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  namespace: string | undefined;
  name: string;
}

function describe(ref: { kind: string; namespace?: string | undefined; name: string }): string {
  return `${ref.kind} ${ref.namespace === undefined ? '' : `${ref.namespace}/`}${ref.name}`;
}

/** One related object, checked against `schema` (a whole-object contract: apiVersion, kind, metadata, spec…). */
export function checkedObject<S extends TSchema>(map: ObjectsByType | undefined, ref: ObjectRef, schema: S): Checked<Static<S>> {
  const object = findObject(map, ref);
  if (!object) return { found: false };
  const problem = firstSchemaProblem(schema, object, '');
  if (problem !== undefined) return { found: true, problem: `${describe(ref)} is invalid: ${problem}` };
  return { found: true, object: object as Static<S> };
}

/** A child object that does not fit its contract; the hook answers 422 and Metacontroller changes nothing. */
export class InvalidChildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidChildError';
  }
}

/** Every child of a kind, each checked against `schema`; the first invalid one stops the hook. */
export function checkedChildren<S extends TSchema>(map: ObjectsByType | undefined, apiVersion: string, kind: string, schema: S): Static<S>[] {
  return objectsOfKind(map, apiVersion, kind).map((child: KubeObject) => {
    const candidate: unknown = child;
    if (Value.Check(schema, candidate)) return candidate;
    const problem = firstSchemaProblem(schema, child, '') ?? 'does not fit its contract';
    throw new InvalidChildError(`child ${describe({ kind, namespace: child.metadata.namespace, name: child.metadata.name })} is invalid: ${problem}`);
  });
}
