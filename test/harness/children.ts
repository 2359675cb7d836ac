// Steps 8 and 9 of a Composite sync (CONTRACT.md §3.1, §3.4): decorate and check the desired
// children, then create, update and delete children so the cluster matches them.
import { ApiError, deepEqual, objectRef, type FakeCluster, type KubeObject } from './cluster.js';
import { SyncFailure } from './webhook.js';
import {
  at,
  mergeApplied,
  selectorMatches,
  withLastApplied,
  type LabelSelector,
  type ResourceType,
  type ResourceTypes,
} from './resources.js';

export interface ChildType {
  type: ResourceType;
  method: 'OnDelete' | 'InPlace' | 'Recreate';
}

export interface ChildController {
  name: string;
  parent: ResourceType;
  children: ChildType[];
  generateSelector: boolean;
}

export interface DesiredChild {
  childType: ChildType;
  object: KubeObject;
}

function identity(o: KubeObject): string {
  return `${o.apiVersion}|${o.kind}|${o.metadata.namespace ?? ''}|${o.metadata.name}`;
}

/**
 * Step 8: adds namespace, `controller-uid` label (generateSelector) and the controller
 * ownerReference, and checks each child; any error fails the whole sync before anything is written.
 */
export function prepareChildren(
  types: ResourceTypes,
  c: ChildController,
  parent: KubeObject,
  desired: KubeObject[],
  violations: string[],
): DesiredChild[] {
  const uid = String(parent.metadata.uid);
  const selector = c.generateSelector
    ? { matchLabels: { 'controller-uid': uid } }
    : (at(parent, 'spec', 'selector') as LabelSelector | undefined);
  const prepared: DesiredChild[] = [];
  for (const child of desired) {
    const type = types.byKind(child.apiVersion, child.kind);
    if (!type) throw new SyncFailure(`can't find resource for ${child.kind} in ${child.apiVersion}`);
    const childType = c.children.find((t) => t.type === type);
    if (!childType) {
      // Metacontroller creates it once and never looks at it again.
      violations.push(`${c.name}: desired child ${objectRef(child)} is of a type not listed in childResources`);
      continue;
    }
    const object = structuredClone(child);
    delete object.status;
    if (type.namespaced) {
      object.metadata.namespace ??= parent.metadata.namespace;
      if (object.metadata.namespace === undefined) throw new SyncFailure(`child ${objectRef(child)} needs a namespace`);
      if (c.parent.namespaced && object.metadata.namespace !== parent.metadata.namespace) {
        throw new SyncFailure(`child ${objectRef(object)} is not in its parent's namespace ${parent.metadata.namespace}`);
      }
    } else {
      delete object.metadata.namespace;
    }
    if (c.generateSelector) object.metadata.labels = { ...(object.metadata.labels ?? {}), 'controller-uid': uid };
    if (!selector || !selectorMatches(selector, object.metadata.labels)) {
      throw new SyncFailure(`labels on desired child ${objectRef(object)} don't match parent selector`);
    }
    object.metadata.ownerReferences = [
      { apiVersion: parent.apiVersion, kind: parent.kind, name: parent.metadata.name, uid, controller: true, blockOwnerDeletion: true },
    ];
    prepared.push({ childType, object });
  }
  return prepared;
}

/** Step 9: create missing, update differing (per updateStrategy), delete undesired owned children. */
export function applyChildren(
  cluster: FakeCluster,
  c: ChildController,
  observed: Map<ResourceType, KubeObject[]>,
  desired: DesiredChild[],
): void {
  const errors: string[] = [];
  const attempt = (what: () => void) => {
    try {
      what();
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      errors.push(error.message);
    }
  };
  const wanted = new Set(desired.map((d) => identity(d.object)));
  for (const { type } of c.children) {
    for (const child of observed.get(type) ?? []) {
      if (wanted.has(identity(child)) || child.metadata.deletionTimestamp !== undefined) continue;
      attempt(() => cluster.delete(child.apiVersion, child.kind, child.metadata.namespace, child.metadata.name));
    }
  }
  for (const { childType, object } of desired) {
    const existing = (observed.get(childType.type) ?? []).find((o) => identity(o) === identity(object));
    if (!existing) {
      attempt(() => cluster.create(withLastApplied(object)));
      continue;
    }
    if (existing.metadata.deletionTimestamp !== undefined || childType.method === 'OnDelete') continue;
    const merged = mergeApplied(existing, object);
    if (deepEqual(merged, existing)) continue;
    if (childType.method === 'InPlace') attempt(() => cluster.update(merged));
    else attempt(() => cluster.delete(existing.apiVersion, existing.kind, existing.metadata.namespace, existing.metadata.name));
  }
  if (errors.length > 0) throw new SyncFailure(`managing children failed: ${errors.join('; ')}`);
}
