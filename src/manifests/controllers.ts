// The CompositeController objects that point Metacontroller at the hook Service.
import { API_VERSION, type KindDefinition } from '../contracts/crds/common.js';

export interface HookService {
  name: string;
  namespace: string;
  port: number;
}

export const DEFAULT_HOOK_SERVICE: HookService = { name: 'virtrigaud-hooks', namespace: 'virtrigaud-system', port: 80 };

/** Children each controller manages; InPlace: Metacontroller updates them when the hook's answer changes. */
const CHILDREN: Record<string, { apiVersion: string; resource: string }[]> = {
  Provider: [
    { apiVersion: 'apps/v1', resource: 'deployments' },
    { apiVersion: 'v1', resource: 'services' },
    { apiVersion: 'v1', resource: 'serviceaccounts' },
    { apiVersion: 'v1', resource: 'secrets' },
  ],
};

/** Which hooks each controller has; kinds not listed have a sync hook only. */
const HOOKS: Record<string, { customize: boolean; finalize: boolean }> = {
  VirtualMachine: { customize: true, finalize: true },
};

export function hookPath(kind: KindDefinition, hook: 'customize' | 'sync' | 'finalize'): string {
  return `/hooks/${kind.singular}/${hook}`;
}

export function compositeController(kind: KindDefinition, service: HookService = DEFAULT_HOOK_SERVICE) {
  const has = HOOKS[kind.kind] ?? { customize: false, finalize: false };
  const webhook = (hook: 'customize' | 'sync' | 'finalize') => ({
    version: 'v2',
    webhook: {
      service: { name: service.name, namespace: service.namespace, port: service.port, protocol: 'http' },
      path: hookPath(kind, hook),
      timeout: '10s',
    },
  });
  return {
    apiVersion: 'metacontroller.k8s.io/v1alpha1',
    kind: 'CompositeController',
    metadata: { name: `virtrigaud-${kind.singular}`, labels: { 'app.kubernetes.io/part-of': 'virtrigaud' } },
    spec: {
      generateSelector: true,
      parentResource: { apiVersion: API_VERSION, resource: kind.plural },
      ...(CHILDREN[kind.kind]
        ? { childResources: CHILDREN[kind.kind]?.map((child) => ({ ...child, updateStrategy: { method: 'InPlace' } })) }
        : {}),
      // A safety net only: hooks ask for their own resync through resyncAfterSeconds.
      resyncPeriodSeconds: 600,
      hooks: {
        ...(has.customize ? { customize: webhook('customize') } : {}),
        sync: webhook('sync'),
        ...(has.finalize ? { finalize: webhook('finalize') } : {}),
      },
    },
  };
}
