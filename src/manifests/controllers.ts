// The CompositeController objects that point Metacontroller at the hook Service.
import { API_VERSION, apiOf, type KindDefinition } from '../contracts/crds/common.js';

export interface HookService {
  name: string;
  namespace: string;
  port: number;
}

export const DEFAULT_HOOK_SERVICE: HookService = { name: 'virtrigaud-hooks', namespace: 'virtrigaud-system', port: 80 };

type ChildResource = { apiVersion: string; resource: string; method: 'InPlace' | 'OnDelete' };

/**
 * Children each controller manages. InPlace: Metacontroller updates them when the hook's answer
 * changes; OnDelete: never updated (a VMSnapshot is what it was taken as).
 */
const CHILDREN: Record<string, ChildResource[]> = {
  Provider: [
    { apiVersion: 'apps/v1', resource: 'deployments', method: 'InPlace' },
    { apiVersion: 'v1', resource: 'services', method: 'InPlace' },
    { apiVersion: 'v1', resource: 'serviceaccounts', method: 'InPlace' },
    { apiVersion: 'v1', resource: 'secrets', method: 'InPlace' },
  ],
  VMSnapshotSchedule: [{ apiVersion: API_VERSION, resource: 'vmsnapshots', method: 'OnDelete' }],
  VMClone: [{ apiVersion: API_VERSION, resource: 'virtualmachines', method: 'InPlace' }],
  // The hook decides which VMs move to the template and when (hooks/vmset.ts); Metacontroller's
  // Rolling* strategies are not used.
  VMSet: [{ apiVersion: API_VERSION, resource: 'virtualmachines', method: 'InPlace' }],
  // The staging PVC it creates (never updated: a PVC's spec is what it was made with) and the target VM.
  // Its runtime in the operator's namespace, as a Remote Provider's (plus a Secret for a client key).
  ProxmoxCluster: [
    { apiVersion: 'apps/v1', resource: 'deployments', method: 'InPlace' },
    { apiVersion: 'v1', resource: 'services', method: 'InPlace' },
    { apiVersion: 'v1', resource: 'serviceaccounts', method: 'InPlace' },
    { apiVersion: 'v1', resource: 'secrets', method: 'InPlace' },
  ],
  VMMigration: [
    { apiVersion: 'v1', resource: 'persistentvolumeclaims', method: 'OnDelete' },
    { apiVersion: API_VERSION, resource: 'virtualmachines', method: 'InPlace' },
  ],
};

/** Which hooks each controller has; kinds not listed have a sync hook only. */
const HOOKS: Record<string, { customize: boolean; finalize: boolean }> = {
  // A Provider waits, while being deleted, for what still needs it (hooks/provider-deletion.ts).
  Provider: { customize: true, finalize: true },
  VirtualMachine: { customize: true, finalize: true },
  VMSnapshot: { customize: true, finalize: true },
  VMSnapshotSchedule: { customize: true, finalize: false },
  VMClone: { customize: true, finalize: false },
  // Related: the VirtualMachines of the policy's namespace, to count who uses it (hooks/placement/policy.ts).
  VMPlacementPolicy: { customize: true, finalize: false },
  // Related: the source VM, the Providers, an existing PVC; finalize removes what the migration left (hooks/vmmigration/).
  VMMigration: { customize: true, finalize: true },
  // Related: every Machine (counted for metrics; the cluster's runtime stays until none uses it).
  ProxmoxCluster: { customize: true, finalize: true },
  // Related: its ProxmoxCluster.
  ProxmoxNode: { customize: true, finalize: false },
  // Related: the ProxmoxClusters and ProxmoxNodes; finalize deletes the VM (hooks/viti/machine.ts).
  Machine: { customize: true, finalize: true },
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
      parentResource: { apiVersion: apiOf(kind).apiVersion, resource: kind.plural },
      ...(CHILDREN[kind.kind]
        ? {
            childResources: CHILDREN[kind.kind]?.map(({ method, ...child }) => ({ ...child, updateStrategy: { method } })),
          }
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
