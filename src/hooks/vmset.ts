// The VMSet controller: its children are VirtualMachines `<set>-<ordinal>`, each labelled with the
// set and the revision (a hash of the template) it was made or last updated from. One pure sync
// decides, from the children as they are, which VMs to create, which to move to the template in
// place (CPU, memory, class, disk growth, power, tags, labels, placement policy) and which to replace
// (anything else: image, networks, guest data, placement…), within maxSurge/maxUnavailable and only as VMs
// already changed are Ready at their new generation for minReadySeconds. Metacontroller applies
// the answer (children InPlace: an unchanged child is left alone) and deletes what it leaves out;
// each VM's finalizer deletes its hypervisor VM. Metacontroller's own Rolling* strategies are not
// used (they stalled in a real test: shared/metacontroller CONTRACT.md §8).
import { createHash } from 'node:crypto';
import { Value } from '@sinclair/typebox/value';
import { API_VERSION } from '../contracts/crds/common.js';
import { VirtualMachineObject, VirtualMachineSpec } from '../contracts/crds/virtualmachine.js';
import { VMSetStatus, type VMSetObject } from '../contracts/crds/vmset.js';
import type { KubeObject, SyncRequestBody, SyncResponse } from '../contracts/metacontroller.js';
import { normalizeVirtualMachine } from '../contracts/normalize/virtualmachine.js';
import { normalizeVMSet, type CanonicalSet } from '../contracts/normalize/vmset.js';
import { fieldUses } from '../contracts/support.js';
import { buildConditions, previousConditions, type ConditionUpdate } from './conditions.js';
import { checkedChildren } from './objects.js';
import { rfc3339 } from './time.js';
import { PAUSED_ANNOTATION } from './virtualmachine/sync.js';

export const SET_LABEL = 'virtrigaud.io/vmset';
export const REVISION_LABEL = 'virtrigaud.io/vmset-revision';
/** Labels and annotations that belong to Metacontroller or kubectl, never echoed back. */
const FOREIGN_KEYS = /^(controller-uid$|metacontroller\.k8s\.io\/|kubectl\.kubernetes\.io\/)/;
/** How long to look again while a rollout waits for VMs (they also trigger syncs when they change). */
const WAIT_RESYNC_SECONDS = 30;

type VMStatusEntry = { name: string; phase?: string; ready: boolean; revision?: string; message?: string; generation?: number; readySince?: string };

export interface Member {
  name: string;
  ordinal: number;
  object: VirtualMachineObject;
  revision: string | undefined;
  terminating: boolean;
  ready: boolean;
  /** Ready for minReadySeconds at its current generation. */
  available: boolean;
  /** When it became (or will become) available, for the resync. */
  availableAt?: number;
  readySince?: string;
  /** Why it cannot become Ready without someone fixing something (a failed operation, a bad reference). */
  failure?: string;
  message?: string;
  createdAt: number;
}

/** A VM spec with the CRD's defaults filled in, as the apiserver stores it: written or defaulted, one spec. */
function defaulted(spec: VirtualMachineSpec): VirtualMachineSpec {
  return Value.Default(VirtualMachineSpec, Value.Clone(spec)) as VirtualMachineSpec;
}

/** The template's revision: a hash of what the VMs are made from, stable across key order and defaulting. */
export function templateRevision(template: VMSetObject['spec']['template']): string {
  return createHash('sha256').update(canonicalJSON({ ...template, spec: defaulted(template.spec) })).digest('hex').slice(0, 10);
}

function canonicalJSON(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJSON).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJSON(item)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** The ordinal of `<set>-<n>`; children named otherwise (none of ours) sort last. */
function ordinalOf(set: string, name: string): number {
  const suffix = name.startsWith(`${set}-`) ? name.slice(set.length + 1) : '';
  return /^(0|[1-9][0-9]{0,6})$/.test(suffix) ? Number(suffix) : Number.MAX_SAFE_INTEGER;
}

/** Spec keys the VM controller changes on a VM in place; a change to any other key needs a new VM. */
// placementRef too: a placed VM is never moved; it reports whether the new policy holds (PlacementViolated).
const IN_PLACE_KEYS = new Set(['resources', 'classRef', 'powerState', 'lifecycle', 'tags', 'disks', 'deletionPolicy', 'snapshot', 'placementRef']);

/**
 * Whether a VM of spec `current` reaches `wanted` in place: only in-place keys differ, and its
 * disks only grow (same disks, none smaller).
 */
export function changesInPlace(written: VirtualMachineSpec, template: VirtualMachineSpec): boolean {
  const current = defaulted(written);
  const wanted = defaulted(template);
  const keys = new Set([...Object.keys(current), ...Object.keys(wanted)]) as Set<keyof VirtualMachineSpec>;
  for (const key of keys) {
    if (canonicalJSON(current[key]) === canonicalJSON(wanted[key])) continue;
    if (!IN_PLACE_KEYS.has(key)) return false;
  }
  const from = normalizeVirtualMachine(current);
  const to = normalizeVirtualMachine(wanted);
  if (!from.ok || !to.ok) return false;
  if (from.value.disks.length !== to.value.disks.length) return false;
  return to.value.disks.every((disk) => {
    const before = from.value.disks.find((candidate) => candidate.name === disk.name);
    return before !== undefined && disk.sizeBytes >= before.sizeBytes;
  });
}

/** `status.selector`: the spec's selector as a string, or the set label every VM carries. */
export function selectorString(set: VMSetObject): string {
  const selector = set.spec.selector;
  const parts: string[] = [];
  for (const [key, value] of Object.entries(selector?.matchLabels ?? {})) parts.push(`${key}=${value}`);
  for (const requirement of selector?.matchExpressions ?? []) {
    const values = (requirement.values ?? []).join(',');
    if (requirement.operator === 'In') parts.push(`${requirement.key} in (${values})`);
    else if (requirement.operator === 'NotIn') parts.push(`${requirement.key} notin (${values})`);
    else if (requirement.operator === 'Exists') parts.push(requirement.key);
    else parts.push(`!${requirement.key}`);
  }
  return parts.length > 0 ? parts.join(',') : `${SET_LABEL}=${setLabelValue(set.metadata.name)}`;
}

function setLabelValue(name: string): string {
  return name.length <= 63 ? name : `${name.slice(0, 52)}-${createHash('sha256').update(name).digest('hex').slice(0, 10)}`;
}

/** Why the template's labels do not match the selector, or undefined when they do. */
function selectorMismatch(set: VMSetObject): string | undefined {
  const labels = set.spec.template.metadata?.labels ?? {};
  const selector = set.spec.selector;
  for (const [key, value] of Object.entries(selector?.matchLabels ?? {})) {
    if (labels[key] !== value) return `spec.selector.matchLabels ${key}=${value} is not among spec.template.metadata.labels`;
  }
  for (const requirement of selector?.matchExpressions ?? []) {
    const value = labels[requirement.key];
    const values = requirement.values ?? [];
    const holds =
      requirement.operator === 'In'
        ? value !== undefined && values.includes(value)
        : requirement.operator === 'NotIn'
          ? value === undefined || !values.includes(value)
          : requirement.operator === 'Exists'
            ? value !== undefined
            : value === undefined;
    if (!holds) return `spec.selector.matchExpressions ${requirement.key} ${requirement.operator} does not hold for spec.template.metadata.labels`;
  }
  return undefined;
}

const FAILURE_CONDITION_REASONS = new Set(['Unsupported', 'InvalidSpec']);

function member(set: VMSetObject, object: VirtualMachineObject, previous: Map<string, VMStatusEntry>, minReadyMs: number, now: number): Member {
  const status = object.status ?? {};
  const conditions = previousConditions(status);
  const readyCondition = conditions.find((condition) => condition.type === 'Ready');
  const generation = object.metadata.generation;
  const atGeneration = readyCondition?.observedGeneration === undefined || generation === undefined || readyCondition.observedGeneration === generation;
  const ready = readyCondition?.status === 'True' && atGeneration;
  const entry: Member = {
    name: object.metadata.name,
    ordinal: ordinalOf(set.metadata.name, object.metadata.name),
    object,
    revision: object.metadata.labels?.[REVISION_LABEL],
    terminating: object.metadata.deletionTimestamp !== undefined,
    ready,
    available: false,
    createdAt: Date.parse(String(object.metadata.creationTimestamp ?? '')) || 0,
  };
  if (ready) {
    // Ready since the first sync that saw it Ready at this generation (kept in status.vmStatus).
    const before = previous.get(entry.name);
    const since = before?.readySince !== undefined && before.generation === generation ? before.readySince : rfc3339(now);
    entry.readySince = since;
    entry.availableAt = Date.parse(since) + minReadyMs;
    entry.available = entry.availableAt <= now;
  } else if (readyCondition !== undefined) {
    entry.message = `${readyCondition.reason}: ${readyCondition.message}`.slice(0, 1024);
  }
  const failure = status['failure'];
  const resolved = conditions.find((condition) => condition.type === 'ReferencesResolved');
  if (failure !== null && typeof failure === 'object' && typeof (failure as { reason?: unknown }).reason === 'string') {
    const { reason, message } = failure as { reason: string; message?: unknown };
    entry.failure = `${reason}: ${typeof message === 'string' ? message : ''}`;
  } else if (resolved?.status === 'False' && resolved.reason !== 'ProviderNotReady') {
    entry.failure = `${resolved.reason}: ${resolved.message}`;
  } else if (readyCondition?.status === 'False' && FAILURE_CONDITION_REASONS.has(readyCondition.reason)) {
    entry.failure = `${readyCondition.reason}: ${readyCondition.message}`;
  }
  return entry;
}

/** Scale-down order: VMs that are not Ready first, then the newest. */
function scaleDownOrder(a: Member, b: Member): number {
  if (a.ready !== b.ready) return a.ready ? 1 : -1;
  return b.createdAt - a.createdAt || b.ordinal - a.ordinal;
}

/** Update order: VMs that are not available first (they cost no availability), then the highest ordinal. */
function updateOrder(a: Member, b: Member): number {
  if (a.available !== b.available) return a.available ? 1 : -1;
  return b.ordinal - a.ordinal;
}

interface Plan {
  /** Members kept, with the spec they get: their own, or the template. */
  keep: Map<string, 'own' | 'template'>;
  create: number;
  deleted: string[];
  /** Members still to move to the template after this step (those this step moves excluded). */
  pending: number;
}

/**
 * One step of scaling and rolling out. `live`: the set's VMs not being deleted; `terminating`:
 * those being deleted (still on the hypervisor, so they count against maxSurge).
 */
export function planStep(set: CanonicalSet, revision: string, live: Member[], terminating: Member[], classify: (member: Member) => 'inPlace' | 'replace'): Plan {
  const keep = new Map<string, 'own' | 'template'>();
  const current: Member[] = [];
  const inPlace: Member[] = [];
  const replace: Member[] = [];
  const kept: Member[] = [];
  for (const vm of live) {
    if (vm.revision === revision) current.push(vm);
    else if (set.strategy === 'OnDelete' || vm.ordinal < set.partition) kept.push(vm);
    else if (classify(vm) === 'inPlace') inPlace.push(vm);
    else replace.push(vm);
  }
  const deleted: string[] = [];

  // Scaling down: the members beyond replicas go at once (not Ready first, then the newest).
  let members = [...current, ...inPlace, ...kept];
  const excess = members.length - set.replicas;
  if (excess > 0) {
    const gone = new Set([...members].sort(scaleDownOrder).slice(0, excess).map((vm) => vm.name));
    deleted.push(...gone);
    members = members.filter((vm) => !gone.has(vm.name));
  }
  const survivors = new Set(members.map((vm) => vm.name));

  // Creating: what replicas miss, within maxSurge while VMs are replaced (VMs still being deleted count).
  const replacing = replace.length > 0 || terminating.some((vm) => vm.revision !== revision);
  const total = members.length + replace.length + (replacing ? terminating.length : 0);
  const maxTotal = set.replicas + (replacing ? set.maxSurge : 0);
  let create = Math.max(0, Math.min(set.replicas - members.length, maxTotal - total));
  if (set.orderedReady && create > 0) create = live.every((vm) => vm.ready) && terminating.length === 0 ? 1 : 0;

  // Deleting replaced VMs and updating in place, within maxUnavailable: a VM that is not
  // available costs nothing; an available one only while enough others are available.
  const minAvailable = Math.max(0, set.replicas - set.maxUnavailable);
  let budget = live.filter((vm) => vm.available && (survivors.has(vm.name) || replace.includes(vm))).length - minAvailable;
  for (const vm of [...replace].sort(updateOrder)) {
    if (!vm.available) deleted.push(vm.name);
    else if (budget > 0) {
      deleted.push(vm.name);
      budget -= 1;
    }
  }
  let pending = 0;
  for (const vm of [...inPlace].filter((candidate) => survivors.has(candidate.name)).sort(updateOrder)) {
    if (!vm.available) keep.set(vm.name, 'template');
    else if (budget > 0) {
      keep.set(vm.name, 'template');
      budget -= 1;
    } else pending += 1;
  }
  for (const vm of members) if (!keep.has(vm.name)) keep.set(vm.name, vm.revision === revision ? 'template' : 'own');
  for (const vm of replace) if (!deleted.includes(vm.name)) keep.set(vm.name, 'own');
  pending += replace.filter((vm) => keep.has(vm.name)).length;
  return { keep, create, deleted, pending };
}

function ownMetadata(object: VirtualMachineObject): { labels?: Record<string, string>; annotations?: Record<string, string> } {
  const pick = (map: Record<string, string> | undefined) => {
    const entries = Object.entries(map ?? {}).filter(([key]) => !FOREIGN_KEYS.test(key));
    return entries.length > 0 ? Object.fromEntries(entries) : undefined;
  };
  const labels = pick(object.metadata.labels);
  const annotations = pick(object.metadata.annotations);
  return { ...(labels ? { labels } : {}), ...(annotations ? { annotations } : {}) };
}

function templateChild(set: VMSetObject, name: string, revision: string): KubeObject {
  const template = set.spec.template;
  const labels = { ...(template.metadata?.labels ?? {}), [SET_LABEL]: setLabelValue(set.metadata.name), [REVISION_LABEL]: revision };
  const annotations = template.metadata?.annotations;
  return {
    apiVersion: API_VERSION,
    kind: 'VirtualMachine',
    metadata: { name, labels, ...(annotations && Object.keys(annotations).length > 0 ? { annotations: { ...annotations } } : {}) },
    spec: Value.Clone(template.spec) as Record<string, unknown>,
  };
}

function ownChild(vm: Member): KubeObject {
  return { apiVersion: API_VERSION, kind: 'VirtualMachine', metadata: { name: vm.name, ...ownMetadata(vm.object) }, spec: Value.Clone(vm.object.spec) as Record<string, unknown> };
}

/** The lowest free ordinals from `start`, skipping every name a VM of the set still has. */
function freeNames(set: string, start: number, taken: Set<string>, count: number): string[] {
  const names: string[] = [];
  for (let ordinal = start; names.length < count; ordinal += 1) {
    const name = `${set}-${ordinal}`;
    if (!taken.has(name)) names.push(name);
  }
  return names;
}

function previousVMStatus(set: VMSetObject): Map<string, VMStatusEntry> {
  const recorded = set.status?.['vmStatus'];
  const entries = Value.Check(VMSetStatus.properties.vmStatus, recorded) ? recorded : [];
  return new Map(entries.map((entry) => [entry.name, entry]));
}

export function syncVMSet(request: SyncRequestBody<VMSetObject>, now: number): SyncResponse {
  const set = request.parent;
  const status = set.status ?? {};
  const generation = set.metadata.generation;
  const previous = previousVMStatus(set);
  const normalized = normalizeVMSet(set.spec);
  const minReadyMs = normalized.ok ? normalized.value.minReadyMs : 0;
  const members = checkedChildren(request.children, API_VERSION, 'VirtualMachine', VirtualMachineObject)
    .map((object) => member(set, object, previous, minReadyMs, now))
    .sort((a, b) => a.ordinal - b.ordinal || a.name.localeCompare(b.name));
  const live = members.filter((vm) => !vm.terminating);
  const terminating = members.filter((vm) => vm.terminating);
  const revision = templateRevision(set.spec.template);

  const updates: ConditionUpdate[] = [];
  let children: KubeObject[];
  let resyncAfterSeconds: number | undefined;
  let pending = 0;
  // The VMSet's own rules have no capability (no driver is involved): every use is a refusal.
  const unsupported = fieldUses('VMSet', set).map((use) => `${use.path} (${use.why ?? ''})`);
  const mismatch = selectorMismatch(set);
  const refusal = !normalized.ok
    ? { reason: 'InvalidSpec', message: normalized.problem }
    : unsupported.length > 0
      ? { reason: 'Unsupported', message: `VMSet ${set.metadata.name}: cannot honour ${unsupported.join(', ')}` }
      : mismatch !== undefined
        ? { reason: 'InvalidSpec', message: mismatch }
        : undefined;
  const paused = set.metadata.annotations?.[PAUSED_ANNOTATION] === 'true';
  if (refusal !== undefined || paused || !normalized.ok) {
    // Nothing is created, deleted or changed: every VM stays as it is.
    children = live.map(ownChild);
    const why = refusal ?? { reason: 'Paused', message: `annotation ${PAUSED_ANNOTATION} is "true": no VM is created, deleted or updated` };
    updates.push({ type: 'Progressing', status: refusal ? false : 'Unknown', reason: why.reason, message: why.message });
    if (refusal) updates.push({ type: 'Ready', status: false, reason: refusal.reason, message: refusal.message });
  } else {
    const canonical = normalized.value;
    const classify = (vm: Member): 'inPlace' | 'replace' => (changesInPlace(vm.object.spec, set.spec.template.spec) ? 'inPlace' : 'replace');
    const plan = planStep(canonical, revision, live, terminating, classify);
    pending = plan.pending;
    const taken = new Set(members.map((vm) => vm.name));
    const created = freeNames(set.metadata.name, canonical.ordinalStart, taken, plan.create);
    children = [
      ...live.flatMap((vm) => {
        const how = plan.keep.get(vm.name);
        if (how === undefined) return [];
        return [how === 'template' ? templateChild(set, vm.name, revision) : ownChild(vm)];
      }),
      ...created.map((name) => templateChild(set, name, revision)),
    ];
    const waiting = live.flatMap((vm) => (vm.ready && !vm.available && vm.availableAt !== undefined ? [vm.availableAt] : []));
    if (waiting.length > 0) resyncAfterSeconds = Math.max(1, Math.ceil((Math.min(...waiting) - now) / 1000));
    const settled = plan.create === 0 && plan.deleted.length === 0 && pending === 0 && live.length === canonical.replicas && live.every((vm) => vm.available);
    if (!settled) resyncAfterSeconds = Math.min(resyncAfterSeconds ?? WAIT_RESYNC_SECONDS, WAIT_RESYNC_SECONDS);
    updates.push(...rolloutConditions(set, canonical, live, revision, pending));
  }

  const failed = live.filter((vm) => vm.failure !== undefined);
  updates.push(
    failed.length > 0
      ? { type: 'ReplicaFailure', status: true, reason: 'VMFailed', message: failed.map((vm) => `VirtualMachine ${vm.name}: ${vm.failure ?? ''}`).join('; ').slice(0, 2048) }
      : { type: 'ReplicaFailure', status: false, reason: 'NoFailure', message: 'no VM of the set has failed' },
  );

  const updated = live.filter((vm) => vm.revision === revision).length;
  const recordedCurrent = typeof status['currentRevision'] === 'string' ? status['currentRevision'] : undefined;
  const replicas = normalized.ok ? normalized.value.replicas : set.spec.replicas ?? 1;
  const currentRevision = updated === live.length && live.length === replicas ? revision : (recordedCurrent ?? revision);
  const newStatus: Record<string, unknown> = {
    replicas: live.length,
    readyReplicas: live.filter((vm) => vm.ready).length,
    availableReplicas: live.filter((vm) => vm.available).length,
    updatedReplicas: updated,
    currentReplicas: live.filter((vm) => vm.revision === currentRevision).length,
    currentRevision,
    updateRevision: revision,
    selector: selectorString(set),
    vmStatus: members.map(vmStatus),
  };
  const progress = progressRecord(set, newStatus, now);
  newStatus['progress'] = progress;
  const deadline = normalized.ok ? normalized.value.progressDeadlineMs : 0;
  const stuck = updates.find((update) => update.type === 'Progressing' && update.status === true && update.reason !== 'NewRevisionAvailable');
  if (stuck && now - Date.parse(progress.since) > deadline) {
    stuck.status = false;
    stuck.reason = 'ProgressDeadlineExceeded';
    stuck.message = `no progress for ${Math.round((now - Date.parse(progress.since)) / 1000)} s (progressDeadlineSeconds): ${stuck.message}`;
  }
  newStatus['conditions'] = buildConditions(previousConditions(status), updates, now, generation);
  if (generation !== undefined) newStatus['observedGeneration'] = generation;
  return { status: newStatus, children, ...(resyncAfterSeconds !== undefined ? { resyncAfterSeconds } : {}) };
}

function vmStatus(vm: Member): VMStatusEntry {
  const phase = vm.object.status?.['phase'];
  const entry: VMStatusEntry = { name: vm.name, ready: vm.ready };
  if (typeof phase === 'string') entry.phase = vm.terminating ? 'Deleting' : phase.slice(0, 32);
  else if (vm.terminating) entry.phase = 'Deleting';
  if (vm.revision !== undefined) entry.revision = vm.revision.slice(0, 63);
  if (!vm.ready && (vm.failure ?? vm.message) !== undefined) entry.message = (vm.failure ?? vm.message ?? '').slice(0, 1024);
  if (vm.object.metadata.generation !== undefined) entry.generation = vm.object.metadata.generation;
  if (vm.readySince !== undefined) entry.readySince = vm.readySince;
  return entry;
}

/** Since when the counts have not moved: the progress deadline's clock, kept in status. */
function progressRecord(set: VMSetObject, status: Record<string, unknown>, now: number): { since: string; signature: string } {
  const signature = ['updateRevision', 'replicas', 'readyReplicas', 'availableReplicas', 'updatedReplicas'].map((key) => String(status[key])).join('/');
  const recorded = set.status?.['progress'];
  const before = Value.Check(VMSetStatus.properties.progress, recorded) ? recorded : undefined;
  return before?.signature === signature ? before : { since: rfc3339(now), signature };
}

function rolloutConditions(set: VMSetObject, canonical: CanonicalSet, live: Member[], revision: string, pending: number): ConditionUpdate[] {
  const replicas = canonical.replicas;
  const available = live.filter((vm) => vm.available).length;
  const updated = live.filter((vm) => vm.revision === revision).length;
  const heldBack = live.filter((vm) => vm.revision !== revision && (canonical.strategy === 'OnDelete' || vm.ordinal < canonical.partition)).length;
  const counts = `${live.length}/${replicas} VMs, ${updated} at revision ${revision}, ${available} available`;
  const done = live.length === replicas && available === replicas && updated + heldBack === replicas && pending === 0;
  if (done) {
    const held = heldBack > 0 ? `; ${heldBack} kept at older revisions (${canonical.strategy === 'OnDelete' ? 'OnDelete' : `partition ${canonical.partition}`})` : '';
    return [
      { type: 'Progressing', status: true, reason: 'NewRevisionAvailable', message: `${counts}${held}` },
      { type: 'Ready', status: true, reason: 'AllAvailable', message: `all ${replicas} VMs available` },
    ];
  }
  const reason = live.length !== replicas ? 'Scaling' : 'RollingUpdate';
  const notReady = live.filter((vm) => !vm.available).map((vm) => vm.name);
  const waiting = notReady.length > 0 ? `; waiting for ${notReady.slice(0, 5).join(', ')}${notReady.length > 5 ? ` and ${notReady.length - 5} more` : ''}` : '';
  return [
    { type: 'Progressing', status: true, reason, message: `${counts}${waiting}` },
    { type: 'Ready', status: false, reason, message: `${counts} (set ${set.metadata.name} wants ${replicas})` },
  ];
}
