// The VMPlacementPolicy hooks: Ready when the rules mean something, and which VMs use the policy
// on which hosts, from the VirtualMachines' own status (no hypervisor call). The policy's sync gets
// the VirtualMachines of its namespace as related objects; a VM's sync never gets other VMs.
import { API_VERSION } from '../../contracts/crds/common.js';
import { PlacementStatus } from '../../contracts/crds/virtualmachine.js';
import type { VMPlacementPolicyObject } from '../../contracts/crds/vmplacementpolicy.js';
import type { CustomizeResponse, ObjectsByType, SyncRequestBody, SyncResponse } from '../../contracts/metacontroller.js';
import { normalizeVMPlacementPolicy } from '../../contracts/normalize/vmplacementpolicy.js';
import { Value } from '@sinclair/typebox/value';
import { buildConditions, previousConditions } from '../conditions.js';

export function customizeVMPlacementPolicy(policy: VMPlacementPolicyObject): CustomizeResponse {
  return { relatedResources: [{ apiVersion: API_VERSION, resource: 'virtualmachines', namespace: policy.metadata.namespace ?? '', labelSelector: {} }] };
}

interface VMView {
  spec?: { placementRef?: { name?: unknown } };
  status?: { host?: unknown; placement?: unknown };
}

/** The VMs referencing `name`, and per host how many of them run there (hosts sorted by name). */
function usage(related: ObjectsByType | undefined, name: string): { vmCount: number; hosts: { name: string; vms: number }[] } {
  const vms = Object.entries(related ?? {})
    .filter(([type]) => type.startsWith('VirtualMachine.'))
    .flatMap(([, objects]) => Object.values(objects)) as VMView[];
  const using = vms.filter((vm) => vm.spec?.placementRef?.name === name);
  const perHost = new Map<string, number>();
  for (const vm of using) {
    const placement = vm.status?.placement;
    const host = Value.Check(PlacementStatus, placement) && placement.policy === name && placement.host !== '' ? placement.host : typeof vm.status?.host === 'string' ? vm.status.host : undefined;
    if (host !== undefined) perHost.set(host, (perHost.get(host) ?? 0) + 1);
  }
  const hosts = [...perHost.entries()].sort(([a], [b]) => a.localeCompare(b)).slice(0, 1024).map(([host, count]) => ({ name: host, vms: count }));
  return { vmCount: using.length, hosts };
}

export function syncVMPlacementPolicy(request: SyncRequestBody<VMPlacementPolicyObject>, now: number): SyncResponse {
  const policy = request.parent;
  const normalized = normalizeVMPlacementPolicy(policy.spec);
  const generation = policy.metadata.generation;
  const ready = normalized.ok
    ? { type: 'Ready', status: true, reason: 'Valid', message: 'the rules are valid; they are enforced when a VM referencing the policy is created' }
    : { type: 'Ready', status: false, reason: 'InvalidSpec', message: normalized.problem };
  const status: Record<string, unknown> = {
    ...usage(request.related, policy.metadata.name),
    conditions: buildConditions(previousConditions(policy.status), [ready], now, generation),
  };
  if (generation !== undefined) status['observedGeneration'] = generation;
  return { status, children: [] };
}
