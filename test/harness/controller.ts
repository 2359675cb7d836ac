// A CompositeController object as the stand-in uses it (CONTRACT.md §1.1).
import { deepEqual, type JsonObject, type KubeObject } from './cluster.js';
import type { ChildController, ChildType } from './children.js';
import { at, type LabelSelector, type ResourceTypes } from './resources.js';

export type HookName = 'customize' | 'sync' | 'finalize';

export interface Controller extends ChildController {
  /** The object as sent in requests (with `status: {}` like the real one). */
  object: JsonObject;
  finalizer: string;
  parentSelector: LabelSelector | undefined;
  ignoreStatusChanges: boolean;
  resyncPeriodMs: number | undefined;
  /** Request path (and query) of each configured hook; every hook goes to the one base URL. */
  hooks: Partial<Record<HookName, string>>;
}

export function parseController(object: object, types: ResourceTypes): Controller {
  const name = String(at(object, 'metadata', 'name'));
  const parent = types.byResource(
    String(at(object, 'spec', 'parentResource', 'apiVersion')),
    String(at(object, 'spec', 'parentResource', 'resource')),
  );
  // pkg/controller/composite/metacontroller.go ignores controllers whose parent has no status subresource.
  if (!parent.hasStatusSubresource) throw new Error(`${name}: parent ${parent.resource} has no status subresource`);
  const hooks: Partial<Record<HookName, string>> = {};
  for (const hook of ['customize', 'sync', 'finalize'] as const) {
    const webhook = at(object, 'spec', 'hooks', hook, 'webhook');
    if (webhook === undefined) continue;
    const url = at(webhook, 'url');
    hooks[hook] = typeof url === 'string' ? new URL(url).pathname + new URL(url).search : String(at(webhook, 'path') ?? '/');
  }
  if (!hooks.sync) throw new Error(`${name}: no sync hook`);
  const childResources = at(object, 'spec', 'childResources');
  const children = (Array.isArray(childResources) ? childResources : []).map((entry: unknown): ChildType => {
    const method = String(at(entry, 'updateStrategy', 'method') ?? 'OnDelete');
    if (method !== 'OnDelete' && method !== 'InPlace' && method !== 'Recreate') {
      throw new Error(`${name}: update method ${method} is not supported by the stand-in`);
    }
    return { type: types.byResource(String(at(entry, 'apiVersion')), String(at(entry, 'resource'))), method };
  });
  const period = at(object, 'spec', 'resyncPeriodSeconds');
  const copy = structuredClone(object) as JsonObject;
  copy.status ??= {};
  return {
    name,
    finalizer: `metacontroller.io/compositecontroller-${name}`,
    object: copy,
    parent,
    parentSelector: at(object, 'spec', 'parentResource', 'labelSelector') as LabelSelector | undefined,
    children,
    generateSelector: at(object, 'spec', 'generateSelector') === true,
    ignoreStatusChanges: at(object, 'spec', 'parentResource', 'ignoreStatusChanges') === true,
    resyncPeriodMs: typeof period === 'number' && period > 0 ? period * 1000 : undefined,
    hooks,
  };
}

/** What `ignoreStatusChanges` still lets through. */
export function metadataChanged(old: KubeObject, next: KubeObject): boolean {
  const a = old.metadata;
  const b = next.metadata;
  return (
    a.generation !== b.generation ||
    a.deletionTimestamp !== b.deletionTimestamp ||
    !deepEqual(a.labels ?? {}, b.labels ?? {}) ||
    !deepEqual(a.annotations ?? {}, b.annotations ?? {})
  );
}
