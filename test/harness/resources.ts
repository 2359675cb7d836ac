// The parts of Metacontroller's behaviour that are pure functions of objects: resource type
// discovery, label selectors, related-resource rules, map keys and the child apply merge.
import { isPlainObject, type FakeCluster, type JsonObject, type KubeObject } from './cluster.js';

export interface ResourceType {
  apiVersion: string;
  resource: string;
  kind: string;
  namespaced: boolean;
  hasStatusSubresource: boolean;
}

const BUILT_IN: ResourceType[] = [
  { apiVersion: 'v1', resource: 'secrets', kind: 'Secret', namespaced: true, hasStatusSubresource: false },
  { apiVersion: 'v1', resource: 'configmaps', kind: 'ConfigMap', namespaced: true, hasStatusSubresource: false },
  { apiVersion: 'v1', resource: 'namespaces', kind: 'Namespace', namespaced: false, hasStatusSubresource: true },
  { apiVersion: 'v1', resource: 'services', kind: 'Service', namespaced: true, hasStatusSubresource: true },
  { apiVersion: 'v1', resource: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true, hasStatusSubresource: false },
  { apiVersion: 'v1', resource: 'pods', kind: 'Pod', namespaced: true, hasStatusSubresource: true },
  { apiVersion: 'v1', resource: 'persistentvolumeclaims', kind: 'PersistentVolumeClaim', namespaced: true, hasStatusSubresource: true },
  { apiVersion: 'apps/v1', resource: 'deployments', kind: 'Deployment', namespaced: true, hasStatusSubresource: true },
];

/** Plain-data path lookup for objects parsed from YAML. */
export function at(value: unknown, ...path: string[]): unknown {
  let current = value;
  for (const key of path) current = isPlainObject(current) ? current[key] : undefined;
  return current;
}

function text(value: unknown, what: string): string {
  if (typeof value !== 'string' || value === '') throw new Error(`expected a string at ${what}`);
  return value;
}

/** What discovery would tell Metacontroller: plural resource ↔ kind, scope. */
export class ResourceTypes {
  readonly #types: ResourceType[] = [...BUILT_IN];

  constructor(crds: object[]) {
    for (const crd of crds) {
      const group = text(at(crd, 'spec', 'group'), 'CRD spec.group');
      const kind = text(at(crd, 'spec', 'names', 'kind'), 'CRD spec.names.kind');
      const resource = text(at(crd, 'spec', 'names', 'plural'), 'CRD spec.names.plural');
      const versions = at(crd, 'spec', 'versions');
      for (const version of Array.isArray(versions) ? versions : []) {
        this.#types.push({
          apiVersion: `${group}/${text(at(version, 'name'), 'CRD version name')}`,
          resource,
          kind,
          namespaced: at(crd, 'spec', 'scope') === 'Namespaced',
          hasStatusSubresource: isPlainObject(at(version, 'subresources', 'status')),
        });
      }
    }
  }

  byResource(apiVersion: string, resource: string): ResourceType {
    const found = this.#types.find((t) => t.apiVersion === apiVersion && t.resource === resource);
    if (!found) throw new Error(`unknown resource ${resource} in ${apiVersion}`);
    return found;
  }

  byKind(apiVersion: string, kind: string): ResourceType | undefined {
    return this.#types.find((t) => t.apiVersion === apiVersion && t.kind === kind);
  }
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/** Kubernetes label selector semantics; an absent or empty selector selects everything. */
export function selectorMatches(selector: LabelSelector | undefined, labels: Record<string, string> | undefined): boolean {
  const have = labels ?? {};
  for (const [key, value] of Object.entries(selector?.matchLabels ?? {})) {
    if (have[key] !== value) return false;
  }
  for (const { key, operator, values = [] } of selector?.matchExpressions ?? []) {
    const present = Object.hasOwn(have, key);
    const value = have[key];
    switch (operator) {
      case 'In':
        if (!present || value === undefined || !values.includes(value)) return false;
        break;
      case 'NotIn':
        if (present && value !== undefined && values.includes(value)) return false;
        break;
      case 'Exists':
        if (!present) return false;
        break;
      case 'DoesNotExist':
        if (present) return false;
        break;
      default:
        throw new Error(`unknown label selector operator ${operator}`);
    }
  }
  return true;
}

const SELECTOR_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'];

export interface RelatedRule {
  apiVersion: string;
  resource: string;
  labelSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  namespace?: string;
  names?: string[];
}

/** Issues with a rule, as `pkg/controller/common/customize/manager.go` checks them. */
export function ruleIssues(rule: RelatedRule, type: ResourceType): string[] {
  const issues: string[] = [];
  if (rule.names && (rule.labelSelector || rule.namespaceSelector)) {
    issues.push(`${rule.resource}: names cannot be combined with labelSelector or namespaceSelector`);
  }
  if (rule.namespace !== undefined && rule.namespaceSelector) {
    issues.push(`${rule.resource}: namespace cannot be combined with namespaceSelector`);
  }
  if (rule.namespaceSelector && !type.namespaced) {
    issues.push(`${rule.resource}: namespaceSelector on a cluster-scoped resource`);
  }
  for (const selector of [rule.labelSelector, rule.namespaceSelector]) {
    for (const { operator } of selector?.matchExpressions ?? []) {
      if (!SELECTOR_OPERATORS.includes(operator)) issues.push(`${rule.resource}: unknown selector operator ${operator}`);
    }
  }
  return issues;
}

/** Whether a related-resource rule (v2 semantics: any namespace allowed) selects the object. */
export function ruleMatches(
  cluster: FakeCluster,
  type: ResourceType,
  rule: RelatedRule,
  parentNamespace: string | undefined,
  object: KubeObject,
): boolean {
  if (object.apiVersion !== type.apiVersion || object.kind !== type.kind) return false;
  const { name, namespace, labels } = object.metadata;
  if (rule.names) {
    if (!rule.names.includes(name)) return false;
    const wanted = rule.namespace ?? parentNamespace;
    return !type.namespaced || wanted === undefined || namespace === wanted;
  }
  if (type.namespaced && rule.namespace !== undefined && rule.namespace !== '' && namespace !== rule.namespace) return false;
  if (rule.namespaceSelector) {
    const ns = namespace === undefined ? undefined : cluster.get('v1', 'Namespace', undefined, namespace);
    if (!ns || !selectorMatches(rule.namespaceSelector, ns.metadata.labels)) return false;
  }
  return selectorMatches(rule.labelSelector, labels);
}

/** `Kind.version` for core types, `Kind.group/version` otherwise. */
export function typeKey(type: { apiVersion: string; kind: string }): string {
  return `${type.kind}.${type.apiVersion}`;
}

/**
 * Map keys: v2 (Metacontroller ≥ 4.15) uses `namespace/name` for namespaced objects; v1 (and
 * every release before 4.15, whatever the declared version) is relative to the parent.
 */
export function objectKey(style: 'v1' | 'v2', parentNamespaced: boolean, object: KubeObject): string {
  const { namespace, name } = object.metadata;
  if (namespace === undefined || namespace === '') return name;
  if (style === 'v1' && parentNamespaced) return name;
  return `${namespace}/${name}`;
}

export const LAST_APPLIED = 'metacontroller.k8s.io/last-applied-configuration';

/** kubectl-style three-way merge: maps merge, keys dropped since the last apply go, lists replace. */
function merge3(observed: unknown, desired: unknown, last: unknown): unknown {
  if (!isPlainObject(desired) || !isPlainObject(observed)) return structuredClone(desired);
  const result: JsonObject = { ...observed };
  if (isPlainObject(last)) {
    for (const key of Object.keys(last)) if (!(key in desired)) delete result[key];
  }
  for (const [key, value] of Object.entries(desired)) {
    result[key] = merge3(observed[key], value, isPlainObject(last) ? last[key] : undefined);
  }
  return result;
}

function lastApplied(object: KubeObject): JsonObject | undefined {
  const raw = object.metadata.annotations?.[LAST_APPLIED];
  if (raw === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(raw);
    return isPlainObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** The desired child as it is created: with the last-applied annotation the next merge needs. */
export function withLastApplied(desired: KubeObject): KubeObject {
  const { status: _status, ...rest } = structuredClone(desired);
  const annotations = { ...(rest.metadata.annotations ?? {}), [LAST_APPLIED]: JSON.stringify(rest) };
  return { ...rest, metadata: { ...rest.metadata, annotations } };
}

/** The object dynamic-apply would write for `desired` over `observed` (status never touched). */
export function mergeApplied(observed: KubeObject, desired: KubeObject): KubeObject {
  const target = withLastApplied(desired);
  const last = lastApplied(observed);
  const { metadata: om, status, ...observedRest } = observed;
  const { metadata: tm, ...targetRest } = target;
  const { metadata: _lm, status: _ls, ...lastRest } = last ?? { metadata: undefined };
  const body = merge3(observedRest, targetRest, last ? lastRest : undefined) as JsonObject;
  const merged: KubeObject = {
    ...body,
    apiVersion: observed.apiVersion,
    kind: observed.kind,
    metadata: {
      ...om,
      labels: merge3(om.labels ?? {}, tm.labels ?? {}, at(last, 'metadata', 'labels')) as Record<string, string>,
      annotations: merge3(om.annotations ?? {}, tm.annotations ?? {}, at(last, 'metadata', 'annotations')) as Record<string, string>,
      ownerReferences: tm.ownerReferences ?? om.ownerReferences ?? [],
    },
  };
  if (status !== undefined) merged.status = status;
  return merged;
}
