// The VMClone controller: its one child is a VirtualMachine with `cloneFrom` naming the source, so
// the clone is created, owned and deleted by the VM controller like any other VM. The child's spec
// is taken from the source once, when the child is first made; after that the clone is independent
// of the source (which may change or go away). Both spellings of a VMClone (the seeds' and upstream
// VirtRigaud's) are read through normalizeVMClone; what no driver (or not this Provider's) can do
// is an Unsupported condition before any child exists.
import { Value } from '@sinclair/typebox/value';
import { API_VERSION } from '../contracts/crds/common.js';
import { VirtualMachineObject, type VirtualMachineSpec } from '../contracts/crds/virtualmachine.js';
import type { VMCloneObject } from '../contracts/crds/vmclone.js';
import type { CustomizeResponse, KubeObject, ObjectsByType, RelatedResourceRule, SyncRequestBody, SyncResponse } from '../contracts/metacontroller.js';
import { unsupportedUses, type FieldUse } from '../contracts/normalize/common.js';
import { normalizeVMClone, type CanonicalClone } from '../contracts/normalize/vmclone.js';
import { fieldUses } from '../contracts/support.js';
import { buildConditions, previousConditions, type ConditionUpdate } from './conditions.js';
import { checkedChildren, checkedObject } from './objects.js';
import { driverForProvider, type VMHookDeps } from './virtualmachine/context.js';
import { resolveProviderRef } from './virtualmachine/resolve.js';

/** Reasons of a VMClone that will not become a clone as it is written. */
const FAILED_REASONS = new Set(['Unsupported', 'InvalidSpec', 'CloneTimeout']);
/** A Provider may gain a capability (a new runtime): an Unsupported clone looks again this often. */
const UNSUPPORTED_RESYNC_SECONDS = 300;

export function customizeVMClone(clone: VMCloneObject): CustomizeResponse {
  const namespace = clone.metadata.namespace ?? '';
  const source = clone.spec.sourceVMRef?.name ?? clone.spec.source?.vmRef?.name;
  const relatedResources: RelatedResourceRule[] = [];
  if (source !== undefined) relatedResources.push({ apiVersion: API_VERSION, resource: 'virtualmachines', namespace, names: [source] });
  // The source's Provider (whose driver says what it can do) may live in another namespace, and
  // customize may depend on the spec only: every Provider is sent along (there are few).
  relatedResources.push({ apiVersion: API_VERSION, resource: 'providers', labelSelector: {} });
  return { relatedResources };
}

export async function syncVMClone(request: SyncRequestBody<VMCloneObject>, deps: VMHookDeps): Promise<SyncResponse> {
  const clone = request.parent;
  const now = deps.clock.now();
  const normalized = normalizeVMClone(clone.spec, clone.metadata.name);
  const canonical = normalized.ok ? normalized.value : undefined;
  const targetName = canonical?.targetName ?? clone.spec.target?.name ?? clone.metadata.name;
  const child = checkedChildren(request.children, API_VERSION, 'VirtualMachine', VirtualMachineObject).find((object) => object.metadata.name === targetName);

  let childObject: KubeObject | undefined;
  let ready: ConditionUpdate | undefined;
  if (child) {
    // Checked against the contract above, so what goes back is bounded and well-formed.
    const spec = Value.Clone(child.spec) as Record<string, unknown>;
    const powerState = canonical ? (canonical.power.enforced ? canonical.power.state : undefined) : clone.spec.target?.powerState;
    if (powerState !== undefined) spec['powerState'] = powerState;
    // An invalid spec (labels changed into something Kubernetes refuses) leaves the clone's metadata as it is.
    const metadata = canonical ? childMetadata(targetName, canonical) : { name: targetName, ...definedLabels(child.metadata.labels, child.metadata.annotations) };
    childObject = { apiVersion: API_VERSION, kind: 'VirtualMachine', metadata, spec };
    if (!normalized.ok) ready = { type: 'Ready', status: false, reason: 'InvalidSpec', message: normalized.problem };
  } else if (!normalized.ok) {
    ready = { type: 'Ready', status: false, reason: 'InvalidSpec', message: normalized.problem };
  } else {
    const planned = await planChild(clone, normalized.value, request.related, deps);
    if ('ready' in planned) ready = planned.ready;
    else childObject = { apiVersion: API_VERSION, kind: 'VirtualMachine', metadata: childMetadata(targetName, normalized.value), spec: planned.spec };
  }

  const childStatus = child?.status ?? {};
  const childReady = previousConditions(childStatus).find((condition) => condition.type === 'Ready');
  ready ??= childReady
    ? { type: 'Ready', status: childReady.status === 'True' ? true : childReady.status === 'False' ? false : 'Unknown', reason: childReady.reason, message: `VirtualMachine ${targetName}: ${childReady.message}` }
    : { type: 'Ready', status: 'Unknown', reason: 'Cloning', message: `VirtualMachine ${targetName} is being created` };

  let phase = phaseOf(ready, childStatus, childObject !== undefined);
  let resyncAfterSeconds: number | undefined = ready.reason === 'Unsupported' ? UNSUPPORTED_RESYNC_SECONDS : undefined;
  // options.timeout: how long the VMClone waits before it calls the clone failed (the VM keeps going).
  const created = Date.parse(String(clone.metadata.creationTimestamp ?? ''));
  if (canonical?.timeoutMs !== undefined && !Number.isNaN(created) && phase !== 'Ready' && !FAILED_REASONS.has(ready.reason)) {
    const left = created + canonical.timeoutMs - now;
    if (left <= 0) {
      const waited = `not done ${Math.round((now - created) / 1000)} s after the VMClone was made (options.timeout)`;
      ready = { type: 'Ready', status: false, reason: 'CloneTimeout', message: `${waited}: ${ready.message}` };
      phase = 'Failed';
    } else {
      resyncAfterSeconds = Math.max(1, Math.ceil(left / 1000));
    }
  }

  const clonedFrom = childStatus['clonedFrom'] as { sourceSnapshot?: unknown; linked?: unknown } | undefined;
  const status: Record<string, unknown> = { phase, targetRef: { name: targetName } };
  const sourceName = canonical?.sourceVM;
  if (sourceName !== undefined) status['source'] = sourceName;
  const linked = typeof clonedFrom?.linked === 'boolean' ? clonedFrom.linked : canonical?.linked;
  if (linked !== undefined) status['actualCloneType'] = linked ? 'LinkedClone' : 'FullClone';
  if (typeof clonedFrom?.sourceSnapshot === 'string') status['sourceSnapshot'] = clonedFrom.sourceSnapshot;
  const generation = clone.metadata.generation;
  status['conditions'] = buildConditions(previousConditions(clone.status), [ready], now, generation);
  if (generation !== undefined) status['observedGeneration'] = generation;
  const response: SyncResponse = { status, children: childObject ? [childObject] : [] };
  if (resyncAfterSeconds !== undefined) response.resyncAfterSeconds = resyncAfterSeconds;
  return response;
}

function definedLabels(labels: Record<string, string> | undefined, annotations: Record<string, string> | undefined) {
  return { ...(labels ? { labels } : {}), ...(annotations ? { annotations } : {}) };
}

function childMetadata(name: string, clone: CanonicalClone): KubeObject['metadata'] {
  const labels = Object.keys(clone.labels).length > 0 ? clone.labels : undefined;
  const annotations = Object.keys(clone.annotations).length > 0 ? clone.annotations : undefined;
  return { name, ...definedLabels(labels, annotations) };
}

const unsupported = (message: string): { ready: ConditionUpdate } => ({ ready: { type: 'Ready', status: false, reason: 'Unsupported', message } });

/** The fields of a use list, each once, with the reason no driver honours it where there is one. */
function fieldList(uses: readonly FieldUse[]): string {
  return [...new Set(uses.map((use) => (use.capability === undefined && use.why ? `${use.path} (${use.why})` : use.path)))].join(', ');
}

/**
 * The uses of this VMClone's fields (support.ts): target.namespace and target.providerRef only when
 * they name another namespace or Provider than the clone's own (the source's, once it is known),
 * and the seeds' linked-clone default, which needs linked clones as much as a written one.
 */
export function cloneFieldUses(clone: VMCloneObject, canonical: CanonicalClone, sourceProvider: { name: string; namespace: string } | undefined): FieldUse[] {
  const namespace = clone.metadata.namespace ?? '';
  const target = clone.spec.target;
  const view = { spec: { ...clone.spec, ...(target ? { target: { ...target } } : {}) } };
  const viewTarget = view.spec.target;
  if (viewTarget?.namespace === namespace) delete viewTarget.namespace;
  const named = viewTarget?.providerRef;
  if (named && (sourceProvider === undefined || (named.name === sourceProvider.name && (named.namespace ?? namespace) === sourceProvider.namespace))) {
    delete viewTarget.providerRef;
  }
  const uses = fieldUses('VMClone', view);
  if (canonical.linked && !canonical.linkedWritten) uses.push({ path: 'spec.linkedClone (default true)', capability: 'linkedClones' });
  return uses;
}

/** The child's spec, or why there is none yet (waiting, Unsupported, invalid). No hypervisor call. */
async function planChild(
  clone: VMCloneObject,
  canonical: CanonicalClone,
  related: ObjectsByType | undefined,
  deps: VMHookDeps,
): Promise<{ ready: ConditionUpdate } | { spec: Record<string, unknown> }> {
  const owner = `VMClone ${clone.metadata.name}`;
  const namespace = clone.metadata.namespace;
  let source: VirtualMachineObject | undefined;
  let waiting: ConditionUpdate | undefined;
  const name = canonical.sourceVM;
  if (name !== undefined) {
    const found = checkedObject(related, { apiVersion: API_VERSION, kind: 'VirtualMachine', namespace, name }, VirtualMachineObject);
    if (!found.found) waiting = { type: 'Ready', status: false, reason: 'SourceNotFound', message: `source VirtualMachine ${name} not found` };
    else if (found.problem !== undefined) waiting = { type: 'Ready', status: false, reason: 'SourceInvalid', message: found.problem };
    else if (found.object.metadata.deletionTimestamp !== undefined) {
      waiting = { type: 'Ready', status: false, reason: 'SourceDeleting', message: `source VirtualMachine ${name} is being deleted` };
    } else source = found.object;
  }
  const sourceProvider = source ? { name: source.spec.providerRef.name, namespace: source.spec.providerRef.namespace ?? namespace ?? '' } : undefined;

  const uses = cloneFieldUses(clone, canonical, sourceProvider);
  if (uses.length > 0) {
    // The Provider's driver says what it can do; asking it is no hypervisor call.
    const provider = source ? resolveProviderRef(source.spec.providerRef, namespace, related, { requireReady: false }) : undefined;
    const driver = provider?.ok ? await driverForProvider(deps.registry, provider.provider) : provider;
    if (driver?.ok) {
      const missing = unsupportedUses(uses, driver.driver.capabilities);
      if (missing.length > 0) return unsupported(`${owner}: the ${driver.driver.type} provider cannot honour ${fieldList(missing)}`);
    } else {
      const noDriver = uses.filter((use) => use.capability === undefined);
      if (noDriver.length > 0) return unsupported(`${owner}: no provider can honour ${fieldList(noDriver)}`);
      if (waiting) return { ready: waiting };
      // Only what some drivers can do is asked: wait for the Provider that says whether this one can.
      return { ready: { type: 'Ready', status: false, reason: driver?.reason ?? 'ProviderNotFound', message: driver?.message ?? 'the source has no Provider' } };
    }
  }
  if (waiting) return { ready: waiting };
  if (!source || name === undefined) return { ready: { type: 'Ready', status: false, reason: 'InvalidSpec', message: `${owner} names no VirtualMachine to clone` } };

  const disks = source.spec.disks ?? [];
  for (const [index, disk] of canonical.disks.entries()) {
    if (disk.name !== 'root' && !disks.some((candidate) => candidate.name === disk.name)) {
      const message = `spec.target.disks[${index}]: the source VirtualMachine ${name} has no disk ${disk.name}; a clone's disks are its source's (root, or one of its spec.disks)`;
      return { ready: { type: 'Ready', status: false, reason: 'InvalidSpec', message } };
    }
  }
  return { spec: cloneSpec(source.spec, name, canonical) };
}

/** The source's spec, made from the source VM instead of its image; placement and user-data stay behind. */
function cloneSpec(source: VirtualMachineSpec, sourceName: string, clone: CanonicalClone): Record<string, unknown> {
  const spec: Record<string, unknown> = {
    providerRef: source.providerRef,
    classRef: clone.classRef !== undefined ? { name: clone.classRef } : source.classRef,
    cloneFrom: { vmRef: { name: sourceName }, linkedClone: clone.linked },
    powerState: clone.power.state,
  };
  if (source.networks) spec['networks'] = source.networks;
  const disks = withDiskSizes(source.disks ?? [], clone.disks);
  if (disks.length > 0) spec['disks'] = disks;
  if (source.lifecycle) {
    // A pending revert or restart of the source is not the clone's.
    const { revertRequest: _revert, restartRequest: _restart, ...lifecycle } = source.lifecycle;
    if (Object.keys(lifecycle).length > 0) spec['lifecycle'] = lifecycle;
  }
  if (source.deletionPolicy) spec['deletionPolicy'] = source.deletionPolicy;
  return spec;
}

/** The source's disks with the sizes the VMClone asks for (the VM controller grows them after the copy). */
function withDiskSizes(disks: readonly object[], sizes: CanonicalClone['disks']): Record<string, unknown>[] {
  const out = disks.map((disk) => ({ ...disk }) as Record<string, unknown>);
  for (const { name, sizeGiB } of sizes) {
    const existing = out.find((disk) => disk['name'] === name);
    // Whatever spelling the source's size has, the clone's is this one.
    const sized = { ...Object.fromEntries(Object.entries(existing ?? { name }).filter(([key]) => key !== 'size' && key !== 'sizeGiB')), size: `${sizeGiB}Gi` };
    if (existing) out.splice(out.indexOf(existing), 1, sized);
    else out.push(sized);
  }
  return out;
}

function phaseOf(ready: ConditionUpdate, childStatus: Record<string, unknown>, hasChild: boolean): string {
  if (!hasChild) return FAILED_REASONS.has(ready.reason) ? 'Failed' : 'Pending';
  const phase = childStatus['phase'];
  if (phase === 'Failed') return 'Failed';
  // Cloned once the VM exists and its creation has no steps left, whatever it does next.
  return phase === 'Running' || phase === 'Stopped' || phase === 'Suspended' || phase === 'Reconfiguring' ? 'Ready' : 'Cloning';
}
