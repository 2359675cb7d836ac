// An in-memory stand-in for the Kubernetes API server: just enough object semantics (uid,
// generation, resourceVersion, finalizers, garbage collection, watch events) for the
// Metacontroller stand-in to behave like the real thing against it.
import { randomUUID } from 'node:crypto';
import type { Clock } from '../../src/contracts/clock.js';

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    generation?: number;
    resourceVersion?: string;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    deletionGracePeriodSeconds?: number;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    finalizers?: string[];
    ownerReferences?: OwnerReference[];
    [field: string]: unknown;
  };
  [field: string]: unknown;
}

/** Issues with a write; a non-empty list refuses it. */
export type ObjectValidator = (object: KubeObject, old: KubeObject | undefined) => string[];
/** What the apiserver would store, e.g. with unknown status fields pruned. */
export type StatusPruner = (object: KubeObject) => KubeObject;

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  object: KubeObject;
  /** The object before a MODIFIED event. */
  oldObject?: KubeObject;
}
export type WatchListener = (event: WatchEvent) => void;

export class ApiError extends Error {
  constructor(
    readonly reason: 'AlreadyExists' | 'NotFound' | 'Invalid' | 'Forbidden',
    message: string,
  ) {
    super(`${reason}: ${message}`);
    this.name = 'ApiError';
  }
}

export type JsonObject = Record<string, unknown>;

export function isPlainObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((item, i) => deepEqual(item, b[i]));
  }
  if (!isPlainObject(a) || !isPlainObject(b)) return false;
  const keys = Object.keys(a).filter((k) => a[k] !== undefined);
  if (keys.length !== Object.keys(b).filter((k) => b[k] !== undefined).length) return false;
  return keys.every((k) => deepEqual(a[k], b[k]));
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isPlainObject(patch)) return structuredClone(patch);
  const result: JsonObject = isPlainObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

/** RFC 3339 with whole seconds, as Kubernetes writes timestamps. */
export function rfc3339(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

export function objectRef(object: KubeObject): string {
  const { namespace, name } = object.metadata;
  return `${object.kind} ${namespace ? `${namespace}/` : ''}${name}`;
}

/** Everything but metadata and status: a change here bumps metadata.generation. */
function specish(object: KubeObject): JsonObject {
  const { metadata: _m, status: _s, ...rest } = object;
  return rest;
}

const SERVER_FIELDS = ['uid', 'generation', 'resourceVersion', 'creationTimestamp', 'deletionTimestamp'] as const;

export class FakeCluster {
  readonly #clock: Clock;
  readonly #validators: Map<string, ObjectValidator>;
  readonly #pruners: Map<string, StatusPruner>;
  readonly #objects = new Map<string, KubeObject>();
  readonly #listeners = new Set<WatchListener>();
  #resourceVersion = 1000;

  constructor(options: { clock: Clock; validators?: Map<string, ObjectValidator>; pruners?: Map<string, StatusPruner> }) {
    this.#clock = options.clock;
    this.#validators = options.validators ?? new Map();
    this.#pruners = options.pruners ?? new Map();
  }

  create(object: KubeObject): KubeObject {
    const key = storageKey(object.apiVersion, object.kind, object.metadata.namespace, object.metadata.name);
    if (this.#objects.has(key)) throw new ApiError('AlreadyExists', `${objectRef(object)} already exists`);
    const stored = structuredClone(object);
    for (const field of SERVER_FIELDS) delete stored.metadata[field];
    stored.metadata.uid = randomUUID();
    stored.metadata.generation = 1;
    stored.metadata.creationTimestamp = rfc3339(this.#clock.now());
    this.#validate(stored, undefined);
    this.#store(key, stored, 'ADDED', undefined);
    return structuredClone(stored);
  }

  get(apiVersion: string, kind: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const found = this.#objects.get(storageKey(apiVersion, kind, namespace, name));
    return found && structuredClone(found);
  }

  list(apiVersion: string, kind: string, namespace?: string): KubeObject[] {
    return [...this.#objects.values()]
      .filter((o) => o.apiVersion === apiVersion && o.kind === kind)
      .filter((o) => namespace === undefined || o.metadata.namespace === namespace)
      .map((o) => structuredClone(o));
  }

  /** Replaces everything but status and server-set metadata. */
  update(object: KubeObject): KubeObject {
    const { key, old } = this.#existing(object.apiVersion, object.kind, object.metadata.namespace, object.metadata.name);
    const next = structuredClone(object);
    const metadata: Record<string, unknown> = next.metadata;
    for (const field of SERVER_FIELDS) {
      if (old.metadata[field] === undefined) delete metadata[field];
      else metadata[field] = old.metadata[field];
    }
    if ('status' in old) next.status = structuredClone(old.status);
    else delete next.status;
    if (old.metadata.deletionTimestamp) {
      const added = (next.metadata.finalizers ?? []).filter((f) => !(old.metadata.finalizers ?? []).includes(f));
      if (added.length > 0) {
        throw new ApiError('Forbidden', `${objectRef(old)}: no new finalizers can be added if the object is being deleted`);
      }
    }
    if (!deepEqual(specish(old), specish(next))) next.metadata.generation = (old.metadata.generation ?? 1) + 1;
    this.#validate(next, old);
    return this.#write(key, next, old);
  }

  patchSpec(apiVersion: string, kind: string, namespace: string | undefined, name: string, patch: JsonObject): KubeObject {
    const { old } = this.#existing(apiVersion, kind, namespace, name);
    return this.update({ ...old, spec: mergePatch(old.spec, patch) });
  }

  setAnnotation(apiVersion: string, kind: string, namespace: string | undefined, name: string, key: string, value: string | undefined): KubeObject {
    return this.#editMetadataMap('annotations', apiVersion, kind, namespace, name, key, value);
  }

  setLabel(apiVersion: string, kind: string, namespace: string | undefined, name: string, key: string, value: string | undefined): KubeObject {
    return this.#editMetadataMap('labels', apiVersion, kind, namespace, name, key, value);
  }

  /** The /status subresource: replaces status only; validated as a whole object, then pruned. */
  updateStatus(apiVersion: string, kind: string, namespace: string | undefined, name: string, status: unknown): KubeObject {
    const { key, old } = this.#existing(apiVersion, kind, namespace, name);
    const next: KubeObject = { ...structuredClone(old), status: structuredClone(status) };
    this.#validate(next, old);
    const pruner = this.#pruners.get(kind);
    return this.#write(key, pruner ? pruner(next) : next, old);
  }

  /** Simulates a status lost e.g. to a backup restore. */
  wipeStatus(apiVersion: string, kind: string, namespace: string | undefined, name: string): KubeObject {
    const { key, old } = this.#existing(apiVersion, kind, namespace, name);
    const next = structuredClone(old);
    delete next.status;
    return this.#write(key, next, old);
  }

  /**
   * With finalizers: marks the object deleting and bumps its generation (kube-apiserver does
   * both; captured-v4.11.10 call 10). Without: removes it and garbage-collects its dependents.
   */
  delete(apiVersion: string, kind: string, namespace: string | undefined, name: string): void {
    const { key, old } = this.#existing(apiVersion, kind, namespace, name);
    if ((old.metadata.finalizers ?? []).length === 0) {
      this.#remove(key, old);
      return;
    }
    if (old.metadata.deletionTimestamp) return;
    const next = structuredClone(old);
    next.metadata.deletionTimestamp = rfc3339(this.#clock.now());
    next.metadata.deletionGracePeriodSeconds = 0;
    next.metadata.generation = (old.metadata.generation ?? 1) + 1;
    this.#write(key, next, old);
  }

  removeFinalizer(apiVersion: string, kind: string, namespace: string | undefined, name: string, finalizer: string): void {
    const { old } = this.#existing(apiVersion, kind, namespace, name);
    const finalizers = (old.metadata.finalizers ?? []).filter((f) => f !== finalizer);
    if (finalizers.length === (old.metadata.finalizers ?? []).length) return;
    this.update({ ...old, metadata: { ...old.metadata, finalizers } });
  }

  watch(listener: WatchListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #editMetadataMap(
    field: 'labels' | 'annotations',
    apiVersion: string,
    kind: string,
    namespace: string | undefined,
    name: string,
    key: string,
    value: string | undefined,
  ): KubeObject {
    const { old } = this.#existing(apiVersion, kind, namespace, name);
    const map = { ...(old.metadata[field] ?? {}) };
    if (value === undefined) delete map[key];
    else map[key] = value;
    return this.update({ ...old, metadata: { ...old.metadata, [field]: map } });
  }

  #existing(apiVersion: string, kind: string, namespace: string | undefined, name: string): { key: string; old: KubeObject } {
    const key = storageKey(apiVersion, kind, namespace, name);
    const old = this.#objects.get(key);
    if (!old) throw new ApiError('NotFound', `${kind} ${namespace ? `${namespace}/` : ''}${name} not found`);
    return { key, old: structuredClone(old) };
  }

  #validate(object: KubeObject, old: KubeObject | undefined): void {
    const issues = this.#validators.get(object.kind)?.(object, old) ?? [];
    if (issues.length > 0) throw new ApiError('Invalid', `${objectRef(object)} is invalid: ${issues.join('; ')}`);
  }

  /** A write that changes nothing is a no-op, as in etcd: no new resourceVersion, no event. */
  #write(key: string, next: KubeObject, old: KubeObject): KubeObject {
    const comparable = { ...next, metadata: { ...next.metadata, resourceVersion: old.metadata.resourceVersion } };
    if (deepEqual(comparable, old)) return structuredClone(old);
    if (old.metadata.deletionTimestamp && (next.metadata.finalizers ?? []).length === 0) {
      this.#remove(key, old);
      return structuredClone(next);
    }
    this.#store(key, next, 'MODIFIED', old);
    return structuredClone(next);
  }

  #store(key: string, object: KubeObject, type: 'ADDED' | 'MODIFIED', old: KubeObject | undefined): void {
    object.metadata.resourceVersion = String(++this.#resourceVersion);
    this.#objects.set(key, object);
    this.#emit({ type, object: structuredClone(object), ...(old ? { oldObject: structuredClone(old) } : {}) });
  }

  /** Removes the object, then does what the garbage collector does to its dependents. */
  #remove(key: string, object: KubeObject): void {
    this.#objects.delete(key);
    this.#emit({ type: 'DELETED', object: structuredClone(object) });
    const uid = object.metadata.uid;
    const dependents = [...this.#objects.values()].filter((o) =>
      (o.metadata.ownerReferences ?? []).some((ref) => ref.controller === true && ref.uid === uid),
    );
    for (const dependent of dependents) {
      const { apiVersion, kind, metadata } = dependent;
      if (this.#objects.has(storageKey(apiVersion, kind, metadata.namespace, metadata.name))) {
        this.delete(apiVersion, kind, metadata.namespace, metadata.name);
      }
    }
  }

  #emit(event: WatchEvent): void {
    for (const listener of [...this.#listeners]) listener(event);
  }
}

function storageKey(apiVersion: string, kind: string, namespace: string | undefined, name: string): string {
  return `${apiVersion}|${kind}|${namespace ?? ''}|${name}`;
}
