// A Provider outlives what still needs it. `kubectl delete namespace` deletes a Provider and its
// VirtualMachines at once; a Provider gone first left every VM finalize answering ProviderNotFound
// forever (the namespace stuck Terminating, or the VMs leaked when someone removed finalizers).
// So the Provider's finalize waits until no VirtualMachine and no taken VMSnapshot refers to it,
// keeping its runtime children meanwhile and publishing the runtime pods' addresses, because a
// namespace deletion removes the runtime's Service (and Deployment) at once while its pods drain.
//
// Only a Provider being deleted asks for these related objects (customize answers per generation,
// and deletion bumps it), so steady Provider syncs cost nothing per VM.
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { API_VERSION, ObjectReference } from '../contracts/crds/common.js';
import type { ProviderObject, ProviderStatus } from '../contracts/crds/provider.js';
import { objectsOfKind, type CustomizeResponse, type KubeObject, type ObjectsByType, type RelatedResourceRule } from '../contracts/metacontroller.js';
import { buildConditions, previousConditions } from './conditions.js';
import { runtimeLabels, runtimeSelector } from './provider-runtime.js';
import { providerTarget } from './virtualmachine/resolve.js';

export function isDeleting(provider: ProviderObject): boolean {
  return provider.metadata.deletionTimestamp !== undefined;
}

/** Namespaces whose objects may use this Provider; undefined: all of them ("*"). */
function admittedNamespaces(provider: ProviderObject): string[] | undefined {
  const allowed = provider.spec.allowedNamespaces ?? [];
  if (allowed.includes('*')) return undefined;
  return [...new Set([provider.metadata.namespace ?? '', ...allowed])].sort();
}

export function customizeProvider(provider: ProviderObject): CustomizeResponse {
  const remote = providerTarget(provider).mode === 'Remote';
  // The VMMigrations of its namespace: their PVCs are mounted in its runtime (hooks/vmmigration.ts).
  const migrations: RelatedResourceRule[] = remote ? [{ apiVersion: API_VERSION, resource: 'vmmigrations', namespace: provider.metadata.namespace ?? '', labelSelector: {} }] : [];
  if (!isDeleting(provider)) return { relatedResources: migrations };
  const namespaces = admittedNamespaces(provider);
  const rules: RelatedResourceRule[] = [];
  for (const resource of ['virtualmachines', 'vmsnapshots']) {
    if (namespaces === undefined) rules.push({ apiVersion: API_VERSION, resource, labelSelector: {} });
    else for (const namespace of namespaces) rules.push({ apiVersion: API_VERSION, resource, namespace, labelSelector: {} });
  }
  rules.push(...migrations);
  if (remote) {
    rules.push({ apiVersion: 'v1', resource: 'pods', namespace: provider.metadata.namespace ?? '', labelSelector: { matchLabels: runtimeSelector(provider) } });
  }
  return { relatedResources: rules };
}

/** The parts of related objects the wait reads; anything else on them passes unread. */
const Referrer = Type.Object(
  { metadata: Type.Object({ name: Type.String(), namespace: Type.Optional(Type.String()) }), spec: Type.Object({ providerRef: ObjectReference }) },
  { additionalProperties: true },
);
const TakenSnapshot = Type.Object(
  {
    metadata: Type.Object({ name: Type.String(), namespace: Type.Optional(Type.String()) }),
    status: Type.Object({ vm: Type.Object({ provider: Type.Object({ namespace: Type.String(), name: Type.String() }) }) }),
  },
  { additionalProperties: true },
);
const RuntimePod = Type.Object(
  {
    metadata: Type.Object({ labels: Type.Optional(Type.Record(Type.String(), Type.String())) }),
    status: Type.Object({ podIP: Type.String({ maxLength: 45 }), phase: Type.Optional(Type.String()) }),
  },
  { additionalProperties: true },
);

function named(object: Static<typeof Referrer> | Static<typeof TakenSnapshot>): string {
  return `${object.metadata.namespace ?? ''}/${object.metadata.name}`;
}

/** The VirtualMachines and taken VMSnapshots that still need `provider` to be deleted. */
export function dependents(provider: ProviderObject, related: ObjectsByType | undefined): { vms: string[]; snapshots: string[] } {
  const namespace = provider.metadata.namespace ?? '';
  const name = provider.metadata.name;
  const vms = objectsOfKind(related, API_VERSION, 'VirtualMachine')
    .filter((object): object is KubeObject & Static<typeof Referrer> => Value.Check(Referrer, object))
    .filter((vm) => vm.spec.providerRef.name === name && (vm.spec.providerRef.namespace ?? vm.metadata.namespace) === namespace)
    .map(named);
  const snapshots = objectsOfKind(related, API_VERSION, 'VMSnapshot')
    .filter((object): object is KubeObject & Static<typeof TakenSnapshot> => Value.Check(TakenSnapshot, object))
    .filter((snapshot) => snapshot.status.vm.provider.name === name && snapshot.status.vm.provider.namespace === namespace)
    .map(named);
  return { vms: vms.sort(), snapshots: snapshots.sort() };
}

/** `ip:port` of the runtime pods that still run (a terminating pod keeps serving while it drains). */
export function runtimeEndpoints(provider: ProviderObject, related: ObjectsByType | undefined, port: number): string[] {
  const instance = runtimeLabels(provider)['app.kubernetes.io/instance'];
  return objectsOfKind(related, 'v1', 'Pod')
    .filter((object): object is KubeObject & Static<typeof RuntimePod> => Value.Check(RuntimePod, object))
    .filter((pod) => pod.metadata.namespace === provider.metadata.namespace && pod.metadata.labels?.['app.kubernetes.io/instance'] === instance)
    .filter((pod) => pod.metadata.labels?.['app.kubernetes.io/component'] === 'provider-runtime' && pod.status.phase === 'Running')
    .map((pod) => (pod.status.podIP.includes(':') ? `[${pod.status.podIP}]:${port}` : `${pod.status.podIP}:${port}`))
    .sort()
    .slice(0, 10);
}

function list(kind: string, names: string[]): string {
  const shown = names.slice(0, 5).join(', ');
  return `${names.length} ${kind}${names.length === 1 ? '' : 's'} (${shown}${names.length > 5 ? ', …' : ''})`;
}

export interface DeletionAnswer {
  finalized: boolean;
  status: ProviderStatus;
}

/** Whether the Provider may go now, and the status that says what it waits for. */
export function providerDeletion(provider: ProviderObject, related: ObjectsByType | undefined, now: number, port: number): DeletionAnswer {
  const { vms, snapshots } = dependents(provider, related);
  const previous = previousConditions(provider.status);
  const generation = provider.metadata.generation;
  if (vms.length === 0 && snapshots.length === 0) {
    const conditions = buildConditions(previous, [{ type: 'Ready', status: false, reason: 'Deleted', message: 'nothing refers to this Provider any more' }], now, generation);
    return { finalized: true, status: { conditions } };
  }
  const waiting = [...(vms.length > 0 ? [list('VirtualMachine', vms)] : []), ...(snapshots.length > 0 ? [list('VMSnapshot', snapshots)] : [])].join(' and ');
  const message = `deletion waits for ${waiting} that still need this Provider to delete what they hold on the hypervisor`;
  const status: ProviderStatus = {
    conditions: buildConditions(previous, [{ type: 'Ready', status: false, reason: 'WaitingForDependents', message }], now, generation),
  };
  const endpoints = runtimeEndpoints(provider, related, port);
  if (endpoints.length > 0) status.runtimeEndpoints = endpoints;
  if (generation !== undefined) status.observedGeneration = generation;
  return { finalized: false, status };
}
