// The VMClone controller: its one child is a VirtualMachine with `cloneFrom` naming the source, so
// the clone is created, owned and deleted by the VM controller like any other VM. The child's spec
// is taken from the source once, when the child is first made; after that the clone is independent
// of the source (which may change or go away).
import { Value } from '@sinclair/typebox/value';
import { API_VERSION } from '../contracts/crds/common.js';
import { VirtualMachineObject, type VirtualMachineSpec } from '../contracts/crds/virtualmachine.js';
import type { VMCloneObject } from '../contracts/crds/vmclone.js';
import type { CustomizeResponse, KubeObject, SyncRequestBody, SyncResponse } from '../contracts/metacontroller.js';
import { buildConditions, previousConditions, type ConditionUpdate } from './conditions.js';
import { checkedChildren, checkedObject } from './objects.js';

export function customizeVMClone(clone: VMCloneObject): CustomizeResponse {
  return {
    relatedResources: [
      { apiVersion: API_VERSION, resource: 'virtualmachines', namespace: clone.metadata.namespace ?? '', names: [clone.spec.sourceVMRef.name] },
    ],
  };
}

export function syncVMClone(request: SyncRequestBody<VMCloneObject>, now: number): SyncResponse {
  const clone = request.parent;
  const spec = clone.spec;
  const targetName = spec.target?.name ?? clone.metadata.name;
  const linked = spec.linkedClone ?? true;
  const child = checkedChildren(request.children, API_VERSION, 'VirtualMachine', VirtualMachineObject).find((object) => object.metadata.name === targetName);
  const source = checkedObject(
    request.related,
    { apiVersion: API_VERSION, kind: 'VirtualMachine', namespace: clone.metadata.namespace, name: spec.sourceVMRef.name },
    VirtualMachineObject,
  );

  let childSpec: Record<string, unknown> | undefined;
  let ready: ConditionUpdate | undefined;
  if (child) {
    // Checked against the contract above, so what goes back is bounded and well-formed.
    childSpec = Value.Clone(child.spec) as Record<string, unknown>;
  } else if (!source.found) {
    ready = { type: 'Ready', status: false, reason: 'SourceNotFound', message: `source VirtualMachine ${spec.sourceVMRef.name} not found` };
  } else if (source.problem !== undefined) {
    ready = { type: 'Ready', status: false, reason: 'SourceInvalid', message: source.problem };
  } else if (source.object.metadata.deletionTimestamp !== undefined) {
    ready = { type: 'Ready', status: false, reason: 'SourceDeleting', message: `source VirtualMachine ${spec.sourceVMRef.name} is being deleted` };
  } else {
    childSpec = cloneSpec(source.object.spec, spec.sourceVMRef.name, linked);
  }
  if (childSpec && spec.target?.powerState !== undefined) childSpec['powerState'] = spec.target.powerState;

  const children: KubeObject[] = childSpec
    ? [{ apiVersion: API_VERSION, kind: 'VirtualMachine', metadata: { name: targetName }, spec: childSpec }]
    : [];
  const childStatus = child?.status ?? {};
  const childReady = previousConditions(childStatus).find((condition) => condition.type === 'Ready');
  ready ??= childReady
    ? { type: 'Ready', status: childReady.status === 'True' ? true : childReady.status === 'False' ? false : 'Unknown', reason: childReady.reason, message: `VirtualMachine ${targetName}: ${childReady.message}` }
    : { type: 'Ready', status: 'Unknown', reason: 'Cloning', message: `VirtualMachine ${targetName} is being created` };

  const clonedFrom = childStatus['clonedFrom'] as { sourceSnapshot?: unknown } | undefined;
  const status: Record<string, unknown> = {
    phase: phaseOf(ready, childStatus, children.length > 0),
    targetRef: { name: targetName },
  };
  if (typeof clonedFrom?.sourceSnapshot === 'string') status['sourceSnapshot'] = clonedFrom.sourceSnapshot;
  const generation = clone.metadata.generation;
  status['conditions'] = buildConditions(previousConditions(clone.status), [ready], now, generation);
  if (generation !== undefined) status['observedGeneration'] = generation;
  return { status, children };
}

/** The source's spec, made from the source VM instead of its image; placement and user-data stay behind. */
function cloneSpec(source: VirtualMachineSpec, sourceName: string, linked: boolean): Record<string, unknown> {
  const spec: Record<string, unknown> = {
    providerRef: source.providerRef,
    classRef: source.classRef,
    cloneFrom: { vmRef: { name: sourceName }, linkedClone: linked },
    powerState: 'On',
  };
  if (source.networks) spec['networks'] = source.networks;
  if (source.disks) spec['disks'] = source.disks;
  if (source.lifecycle) {
    // A pending revert or restart of the source is not the clone's.
    const { revertRequest: _revert, restartRequest: _restart, ...lifecycle } = source.lifecycle;
    if (Object.keys(lifecycle).length > 0) spec['lifecycle'] = lifecycle;
  }
  if (source.deletionPolicy) spec['deletionPolicy'] = source.deletionPolicy;
  return spec;
}

function phaseOf(ready: ConditionUpdate, childStatus: Record<string, unknown>, hasChild: boolean): string {
  if (!hasChild) return ready.reason === 'SourceNotFound' || ready.reason === 'SourceDeleting' || ready.reason === 'SourceInvalid' ? 'Pending' : 'Failed';
  const phase = childStatus['phase'];
  if (phase === 'Failed') return 'Failed';
  // Cloned once the VM exists and its creation has no steps left, whatever it does next.
  return phase === 'Running' || phase === 'Stopped' || phase === 'Reconfiguring' ? 'Ready' : 'Cloning';
}
