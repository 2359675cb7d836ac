// What every rendered object must satisfy, whatever the values: it validates against its kind's
// schema (Kubernetes' OpenAPI through kubernetes-models, prometheus-operator's for ServiceMonitor,
// Metacontroller's own CRD for CompositeControllers), sits in the release namespace and carries
// the chart's labels.
import { join } from 'node:path';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { CrdValidator } from '../helpers/crd-validator.js';
import { ROOT, type Json, type RenderedObject } from './render.js';

type ModelClass = new (data: Json) => { validate(): void };

/** Schemas by apiVersion/kind: kubernetes-models compiles Kubernetes' OpenAPI (types, required fields, enums, formats). */
const MODELS: Record<string, ModelClass> = {
  'apps/v1/Deployment': Deployment as unknown as ModelClass,
  'v1/Service': Service as unknown as ModelClass,
  'v1/ServiceAccount': ServiceAccount as unknown as ModelClass,
  'v1/Secret': Secret as unknown as ModelClass,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy as unknown as ModelClass,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget as unknown as ModelClass,
  'apiextensions.k8s.io/v1/CustomResourceDefinition': CustomResourceDefinition as unknown as ModelClass,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor as unknown as ModelClass,
};

export const compositeControllerSchema = CrdValidator.fromFile(
  join(ROOT, 'test/fixtures/metacontroller/compositecontrollers.metacontroller.k8s.io.yaml'),
);

const CLUSTER_SCOPED = new Set(['CompositeController', 'CustomResourceDefinition', 'ClusterRole', 'ClusterRoleBinding', 'Namespace']);

/** Schema violations of one object, as messages; empty when it validates. */
export function schemaIssues(object: Json): string[] {
  const key = `${object['apiVersion']}/${object['kind']}`;
  if (key === 'metacontroller.k8s.io/v1alpha1/CompositeController') {
    return compositeControllerSchema.validate(object).map((issue) => `${issue.path}: ${issue.message}`);
  }
  const Model = MODELS[key];
  if (!Model) return [`no schema known for ${key}: add one to test/helm/objects.ts`];
  try {
    new Model(object).validate();
    return [];
  } catch (error) {
    return [(error as Error).message];
  }
}

export interface Expectations {
  release: string;
  namespace: string;
  /** app.kubernetes.io/name: the chart name or nameOverride. */
  name?: string;
  /** Namespaces besides the release's that may hold provider-runtime NetworkPolicies. */
  providerNamespaces?: string[];
}

/** Every problem of one rendered object, as messages; empty when it is fine. */
export function objectIssues(object: RenderedObject, expected: Expectations): string[] {
  const issues: string[] = [];
  const metadata = (object['metadata'] ?? {}) as Json;
  const what = `${object['kind']} ${metadata['name']} (${object.source})`;
  for (const field of ['apiVersion', 'kind']) {
    if (typeof object[field] !== 'string' || object[field] === '') issues.push(`${what}: no ${field}`);
  }
  if (typeof metadata['name'] !== 'string' || metadata['name'] === '') issues.push(`${what}: no metadata.name`);
  else if (metadata['name'].length > 63 && object['kind'] !== 'CustomResourceDefinition') issues.push(`${what}: name longer than 63`);

  const kind = String(object['kind']);
  if (CLUSTER_SCOPED.has(kind)) {
    if (metadata['namespace'] !== undefined) issues.push(`${what}: cluster-scoped but has namespace ${metadata['namespace']}`);
  } else {
    const runtimePolicy = kind === 'NetworkPolicy' && metadata['labels']?.['app.kubernetes.io/component'] === 'provider-runtime';
    const allowed = [expected.namespace, ...(runtimePolicy ? expected.providerNamespaces ?? [] : [])];
    if (!allowed.includes(metadata['namespace'])) issues.push(`${what}: namespace ${metadata['namespace']}, expected one of ${allowed.join(', ')}`);
  }

  // The CRDs too: they are templates (templates/crds.yaml), owned by the release.
  const labels = (metadata['labels'] ?? {}) as Record<string, string>;
  const wanted: Record<string, string> = {
    'app.kubernetes.io/name': expected.name ?? 'virtrigaud',
    'app.kubernetes.io/instance': expected.release,
    'app.kubernetes.io/managed-by': 'Helm',
    'app.kubernetes.io/part-of': 'virtrigaud',
    'app.kubernetes.io/version': '0.1.0',
    'helm.sh/chart': 'virtrigaud-0.1.0',
  };
  for (const [label, value] of Object.entries(wanted)) {
    if (labels[label] !== value) issues.push(`${what}: label ${label}=${labels[label]}, expected ${value}`);
  }
  issues.push(...schemaIssues(object).map((issue) => `${what}: ${issue}`));
  return issues;
}
