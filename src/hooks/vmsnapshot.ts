// The VMSnapshot controller: one snapshot on the hypervisor per object, named after the object's
// UID so that a lost answer is found again instead of taken twice; deleted with the object, or when
// it expires (retentionPolicy.maxAge), after which the object stays as a record. Both spellings of
// a VMSnapshot (the seeds' and upstream VirtRigaud's) are read through normalizeVMSnapshot; what no
// driver can do is an Unsupported condition before anything is taken.
import { Value } from '@sinclair/typebox/value';
import { API_VERSION, type Condition } from '../contracts/crds/common.js';
import { VirtualMachineObject } from '../contracts/crds/virtualmachine.js';
import type { Static } from '@sinclair/typebox';
import {
  VMSnapshotStatus,
  type SnapshotTask,
  type SnapshotVMRecord,
  type SnapshotPhase,
  type VMSnapshotObject,
} from '../contracts/crds/vmsnapshot.js';
import { NotFoundError, ConflictError, type Capabilities, type SnapshotInfo, type VMRef } from '../contracts/driver.js';
import type { CustomizeResponse, ObjectsByType, SyncRequestBody, SyncResponse } from '../contracts/metacontroller.js';
import { describeUnsupported, unsupportedUses } from '../contracts/normalize/common.js';
import { normalizeVMSnapshot, snapshotExpiry, type CanonicalSnapshot } from '../contracts/normalize/vmsnapshot.js';
import { formatBytes } from '../contracts/quantity.js';
import { fieldUses } from '../contracts/support.js';
import { buildConditions, previousConditions, type ConditionUpdate } from './conditions.js';
import { reportDriverError, retryDelaySeconds } from './driver-errors.js';
import { rfc3339 } from './time.js';
import type { DriverCalls } from './driver-calls.js';
import { checkedObject, type Checked } from './objects.js';
import { driverForProvider, providerCalls, type VMHookDeps } from './virtualmachine/context.js';
import { resolveProviderRef } from './virtualmachine/resolve.js';

/** The snapshot's name on the hypervisor: a letter, then the UID's 32 hex digits (PVE allows 40 characters). */
export function hypervisorSnapshotName(uid: string): string {
  return `vr${uid.replace(/-/g, '').toLowerCase()}`;
}

export function customizeVMSnapshot(snapshot: VMSnapshotObject): CustomizeResponse {
  return {
    relatedResources: [
      { apiVersion: API_VERSION, resource: 'virtualmachines', namespace: snapshot.metadata.namespace ?? '', names: [snapshot.spec.vmRef.name] },
      // The VM's Provider may live in another namespace, and customize may depend on the spec
      // only, so every Provider is sent along (there are few); finalize also needs the one the
      // status recorded after the VM itself is gone.
      { apiVersion: API_VERSION, resource: 'providers', labelSelector: {} },
    ],
  };
}

// A Ready snapshot only needs checking that it is still there: a list call per snapshot every ten
// minutes, not every steady VM resync.
const RESYNC = { task: 2, waiting: 15, ready: 600 } as const;

interface Previous {
  phase: SnapshotPhase | undefined;
  snapshotID: string | undefined;
  vm: SnapshotVMRecord | undefined;
  task: SnapshotTask | undefined;
  creationTime: string | undefined;
  size: string | undefined;
  memoryIncluded: boolean | undefined;
  conditions: Condition[];
}

/** Our own last answer, as Metacontroller hands it back: each field is checked against its schema before use. */
function readPrevious(status: Record<string, unknown> | undefined): Previous {
  const raw = status ?? {};
  const field = <K extends keyof typeof VMSnapshotStatus.properties>(key: K): Static<(typeof VMSnapshotStatus.properties)[K]> | undefined =>
    Value.Check(VMSnapshotStatus.properties[key], raw[key]) ? (raw[key] as Static<(typeof VMSnapshotStatus.properties)[K]>) : undefined;
  return {
    phase: field('phase'),
    snapshotID: field('snapshotID'),
    vm: field('vm'),
    task: field('task'),
    creationTime: field('creationTime'),
    size: field('size'),
    memoryIncluded: field('memoryIncluded'),
    conditions: previousConditions(raw),
  };
}

interface Outcome {
  phase: SnapshotPhase;
  ready: ConditionUpdate;
  resyncAfterSeconds: number;
  found?: SnapshotInfo;
  vm?: SnapshotVMRecord | undefined;
  task?: SnapshotTask | undefined;
  /** MemoryIncluded / Quiesced, decided when the snapshot is taken and carried over after. */
  options?: ConditionUpdate[];
  finalized?: boolean;
}

const ready = (status: boolean | 'Unknown', reason: string, message: string): ConditionUpdate => ({ type: 'Ready', status, reason, message });

class SnapshotHook {
  readonly previous: Previous;
  readonly name: string;
  readonly now: number;
  /** The spec in the one spelling the hook reads, or why it means nothing. */
  readonly normalized: ReturnType<typeof normalizeVMSnapshot>;

  constructor(
    readonly snapshot: VMSnapshotObject,
    readonly related: ObjectsByType | undefined,
    readonly deps: VMHookDeps,
    readonly signal: AbortSignal = AbortSignal.timeout(deps.budgetMs),
  ) {
    this.previous = readPrevious(snapshot.status);
    this.name = hypervisorSnapshotName(snapshot.metadata.uid ?? '');
    this.now = deps.clock.now();
    this.normalized = normalizeVMSnapshot(snapshot.spec);
  }

  get canonical(): CanonicalSnapshot | undefined {
    return this.normalized.ok ? this.normalized.value : undefined;
  }

  /** When the snapshot taken at `createdAt` expires and is deleted, by retentionPolicy; undefined: never. */
  expiry(createdAt: string | undefined): { expiresAt: number; deleteAt: number } | undefined {
    const canonical = this.canonical;
    return canonical && createdAt !== undefined ? snapshotExpiry(canonical, Date.parse(createdAt)) : undefined;
  }

  /** The VirtualMachine the spec names, checked against its contract before anything is read from it. */
  vmObject(): Checked<VirtualMachineObject> {
    return checkedObject(
      this.related,
      { apiVersion: API_VERSION, kind: 'VirtualMachine', namespace: this.snapshot.metadata.namespace, name: this.snapshot.spec.vmRef.name },
      VirtualMachineObject,
    );
  }

  /** The VM this snapshot is (or is to be) of, with how to reach its hypervisor. */
  target(vm: VirtualMachineObject | undefined): SnapshotVMRecord | { problem: Outcome } {
    const recorded = this.previous.vm;
    if (!vm) {
      if (recorded) return recorded;
      return { problem: this.waiting('VMNotFound', `VirtualMachine ${this.snapshot.spec.vmRef.name} not found`) };
    }
    const uid = vm.metadata.uid ?? '';
    if (recorded && recorded.uid !== uid) {
      // A new VM under the old name: this snapshot was of the old one and stays with it.
      return recorded;
    }
    const providerID = (vm.status as Record<string, unknown> | undefined)?.['providerID'];
    if (typeof providerID !== 'string' || providerID === '') {
      return recorded ?? { problem: this.waiting('VMNotProvisioned', `VirtualMachine ${vm.metadata.name} has not been created yet`) };
    }
    const provider = vm.spec.providerRef;
    return {
      name: vm.metadata.name,
      uid,
      providerID,
      provider: { namespace: provider.namespace ?? vm.metadata.namespace ?? '', name: provider.name },
    };
  }

  waiting(reason: string, message: string): Outcome {
    return { phase: this.previous.snapshotID ? (this.previous.phase ?? 'Pending') : 'Pending', ready: ready(false, reason, message), resyncAfterSeconds: RESYNC.waiting };
  }

  /** Driver calls against the VM's hypervisor, or why they cannot be made. */
  async calls(record: SnapshotVMRecord, vm: VirtualMachineObject | undefined): Promise<DriverCalls | { problem: Outcome }> {
    // The Provider as the VM names it, or as recorded once the VM is gone; with the same namespace checks.
    const ref = vm && vm.metadata.uid === record.uid ? vm.spec.providerRef : record.provider;
    const provider = resolveProviderRef(ref, this.snapshot.metadata.namespace, this.related, { requireReady: false });
    if (!provider.ok) return { problem: this.waiting(provider.reason, provider.message) };
    const driver = await driverForProvider(this.deps.registry, provider.provider);
    if (!driver.ok) return { problem: this.waiting(driver.reason, driver.message) };
    return providerCalls(this.deps, driver.driver, provider.provider, this.signal);
  }

  respond(outcome: Outcome): SyncResponse {
    const generation = this.snapshot.metadata.generation;
    const updates = [outcome.ready, ...(outcome.options ?? carriedOptions(this.previous.conditions))];
    const status: VMSnapshotStatus = { phase: outcome.phase };
    const found = outcome.found;
    const snapshotID = found?.id ?? this.previous.snapshotID;
    if (snapshotID !== undefined) status.snapshotID = snapshotID;
    status.snapshotName = this.name;
    const creationTime = found ? rfc3339(Date.parse(found.createdAt)) : this.previous.creationTime;
    if (creationTime !== undefined) status.creationTime = creationTime;
    const expiry = this.expiry(creationTime);
    if (expiry) status.expiryTime = rfc3339(expiry.expiresAt);
    const size = found?.sizeBytes !== undefined ? formatBytes(found.sizeBytes) : this.previous.size;
    if (size !== undefined) status.size = size;
    const memory = found?.memory ?? this.previous.memoryIncluded;
    if (memory !== undefined) status.memoryIncluded = memory;
    const vm = outcome.vm ?? this.previous.vm;
    if (vm) status.vm = vm;
    if (outcome.task) status.task = outcome.task;
    status.conditions = buildConditions(this.previous.conditions, updates, this.now, generation);
    if (generation !== undefined) status.observedGeneration = generation;
    const response: SyncResponse = { status: status as Record<string, unknown>, children: [], resyncAfterSeconds: outcome.resyncAfterSeconds };
    if (outcome.finalized !== undefined) response.finalized = outcome.finalized;
    return response;
  }
}

function carriedOptions(previous: Condition[]): ConditionUpdate[] {
  return previous
    .filter((condition) => condition.type === 'MemoryIncluded' || condition.type === 'Quiesced')
    .map((condition) => ({
      type: condition.type,
      status: condition.status === 'Unknown' ? 'Unknown' : condition.status === 'True',
      reason: condition.reason,
      message: condition.message,
    }));
}

/** Whether the VM at ref.id is gone or, readable, names another owner; false when that cannot be told. */
async function ownerChanged(calls: DriverCalls, ref: VMRef): Promise<boolean> {
  try {
    const vm = await calls.call('describe', (options) => calls.driver.describe(ref.id, options));
    return vm.owner !== undefined && vm.owner.uid !== ref.owner.uid;
  } catch (error) {
    return error instanceof NotFoundError;
  }
}

async function listOurs(calls: DriverCalls, ref: VMRef): Promise<SnapshotInfo[]> {
  return calls.call('snapshotList', (options) => calls.driver.snapshotList(ref, options));
}

export async function syncVMSnapshot(request: SyncRequestBody<VMSnapshotObject>, deps: VMHookDeps, signal?: AbortSignal): Promise<SyncResponse> {
  const hook = new SnapshotHook(request.parent, request.related, deps, signal);
  if (!hook.normalized.ok) {
    return hook.respond({ phase: hook.previous.snapshotID ? (hook.previous.phase ?? 'Failed') : 'Failed', ready: ready(false, 'InvalidSpec', hook.normalized.problem), resyncAfterSeconds: deps.steadyResyncSeconds });
  }
  const canonical = hook.normalized.value;
  // Expired and deleted from the hypervisor: the object is a record now, nothing is looked at.
  if (hook.previous.phase === 'Expired' && !hook.previous.task) return hook.respond(expired(hook));
  const lookup = hook.vmObject();
  if (lookup.found && lookup.problem !== undefined) return hook.respond(hook.waiting('VMInvalid', lookup.problem));
  const vmObject = lookup.found ? lookup.object : undefined;
  const record = hook.target(vmObject);
  if ('problem' in record) return hook.respond(record.problem);
  if (vmObject === undefined || vmObject.metadata.uid !== record.uid) {
    const deleteObject = canonical.retention.deleteOnVMDelete ? '; retentionPolicy.deleteOnVMDelete: delete this VMSnapshot (it cannot delete itself)' : '';
    const message = `VirtualMachine ${record.name} (${record.uid}) is gone; its snapshot went with it unless the VM was retained${deleteObject}`;
    return hook.respond({ phase: hook.previous.phase ?? 'Pending', ready: ready(false, 'VMGone', message), resyncAfterSeconds: deps.steadyResyncSeconds });
  }
  if (vmObject.metadata.deletionTimestamp !== undefined && hook.previous.snapshotID === undefined && !hook.previous.task) {
    return hook.respond(hook.waiting('VMDeleting', `VirtualMachine ${record.name} is being deleted; no snapshot is taken of it`));
  }
  const calls = await hook.calls(record, vmObject);
  if ('problem' in calls) return hook.respond({ ...calls.problem, vm: hook.previous.vm });
  if (hook.previous.snapshotID === undefined && !hook.previous.task) {
    // What this driver cannot do is said before anything is asked of the hypervisor.
    const missing = unsupportedUses(fieldUses('VMSnapshot', { spec: hook.snapshot.spec }), calls.driver.capabilities);
    if (missing.length > 0) {
      const message = describeUnsupported(`VMSnapshot ${hook.snapshot.metadata.name}`, calls.driver.type, missing);
      return hook.respond({ phase: 'Failed', ready: ready(false, 'Unsupported', message), resyncAfterSeconds: 300, vm: record });
    }
  }
  const ref: VMRef = { id: record.providerID, owner: { uid: record.uid, namespace: vmObject.metadata.namespace ?? '', name: record.name } };
  try {
    return hook.respond(await reconcile(hook, calls, ref, record));
  } catch (error) {
    const failure = reportDriverError(error, 'snapshot', 'NotOwned');
    return hook.respond({
      phase: hook.previous.phase ?? 'Pending',
      ready: ready(false, failure.reason, failure.message),
      resyncAfterSeconds: retryDelaySeconds(hook.previous.conditions, hook.now, failure.retryable),
      vm: record,
      task: hook.previous.task,
    });
  }
}

async function reconcile(hook: SnapshotHook, calls: DriverCalls, ref: VMRef, record: SnapshotVMRecord): Promise<Outcome> {
  const task = hook.previous.task;
  const expiring = task?.operation === 'Delete';
  if (task?.id) {
    const status = await calls.call('taskStatus', (options) => calls.driver.taskStatus(task.id, options)).catch((error: unknown) => {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    });
    if (status?.state === 'queued' || status?.state === 'running') {
      if (expiring) return { phase: 'Expired', ready: ready(false, 'Expiring', `deleting the expired snapshot (task ${task.id})`), resyncAfterSeconds: RESYNC.task, vm: record, task };
      return { phase: 'Creating', ready: ready(false, 'Creating', `snapshot task ${task.id} in progress`), resyncAfterSeconds: RESYNC.task, vm: record, task };
    }
    if (status?.state === 'failed') {
      const resyncAfterSeconds = retryDelaySeconds(hook.previous.conditions, hook.now, true);
      if (expiring) {
        // Still there and still expired: the next sync (after a back-off) deletes it again.
        return { phase: 'Ready', ready: ready(false, 'ExpiryFailed', `deleting the expired snapshot failed: ${status.error ?? 'no reason given'}`), resyncAfterSeconds, vm: record };
      }
      // Reported once; the next sync (after a back-off) looks again and takes it anew if it is not there.
      return { phase: 'Failed', ready: ready(false, 'SnapshotFailed', `snapshot task failed: ${status.error ?? 'no reason given'}`), resyncAfterSeconds, vm: record };
    }
  }

  const found = (await listOurs(calls, ref)).find((snapshot) => snapshot.name === hook.name);
  if (found) {
    const expiry = hook.expiry(found.createdAt);
    if (expiry && hook.now >= expiry.deleteAt) {
      const started = await calls.call('snapshotDelete', (options) => calls.driver.snapshotDelete(ref, found.id, options));
      const deleting: SnapshotTask | undefined = started.task ? { id: started.task, operation: 'Delete', startedAt: rfc3339(hook.now) } : undefined;
      const message = `expired at ${rfc3339(expiry.expiresAt)} (retentionPolicy.maxAge): deleting snapshot ${found.id}`;
      return { phase: 'Expired', ready: ready(false, 'Expiring', message), resyncAfterSeconds: started.task ? RESYNC.task : 1, found, vm: record, task: deleting };
    }
    let resyncAfterSeconds = Math.max(hook.deps.steadyResyncSeconds, RESYNC.ready);
    let message = `snapshot ${found.id} of VM ${record.providerID}`;
    if (expiry) {
      resyncAfterSeconds = Math.max(1, Math.min(resyncAfterSeconds, Math.ceil((expiry.deleteAt - hook.now) / 1000)));
      message += hook.now >= expiry.expiresAt ? `; expired, deleted at ${rfc3339(expiry.deleteAt)} (retentionPolicy.gracePeriod)` : `; expires at ${rfc3339(expiry.expiresAt)}`;
    }
    return { phase: 'Ready', ready: ready(true, 'Created', message), resyncAfterSeconds, found, vm: record };
  }
  if (expiring || hook.previous.phase === 'Expired') return expired(hook);
  if (hook.previous.snapshotID !== undefined) {
    // Taking it again would capture another moment under the same name: report, do not repair.
    return {
      phase: 'Failed',
      ready: ready(false, 'SnapshotGone', `snapshot ${hook.previous.snapshotID} is no longer on VM ${record.providerID}`),
      resyncAfterSeconds: hook.deps.steadyResyncSeconds,
      vm: record,
    };
  }
  return take(hook, calls, ref, record);
}

/** Past retentionPolicy.maxAge and deleted from the hypervisor: the object stays as a record. */
function expired(hook: SnapshotHook): Outcome {
  const expiry = hook.expiry(hook.previous.creationTime);
  const when = expiry ? ` at ${rfc3339(expiry.expiresAt)}` : '';
  return {
    phase: 'Expired',
    ready: ready(false, 'Expired', `expired${when} (retentionPolicy.maxAge) and deleted from the hypervisor; delete this VMSnapshot when you like (it cannot delete itself)`),
    resyncAfterSeconds: Math.max(hook.deps.steadyResyncSeconds, RESYNC.ready),
    vm: hook.previous.vm,
  };
}

async function take(hook: SnapshotHook, calls: DriverCalls, ref: VMRef, record: SnapshotVMRecord): Promise<Outcome> {
  const capabilities = calls.driver.capabilities;
  if (!capabilities.snapshots) {
    return { phase: 'Failed', ready: ready(false, 'Unsupported', `the ${calls.driver.type} provider cannot take snapshots`), resyncAfterSeconds: 300, vm: record };
  }
  const wanted = hook.canonical;
  if (!wanted) throw new Error('take() without a normalized spec');
  const vm = await calls.call('describe', (options) => calls.driver.describe(ref.id, options));
  if (vm.lock) {
    return { phase: 'Pending', ready: ready(false, 'HypervisorBusy', `waiting for "${vm.lock}" on VM ${vm.id} to end`), resyncAfterSeconds: RESYNC.task, vm: record };
  }
  const options = snapshotOptions(wanted, vm.powerState === 'On', capabilities, calls.driver.type);
  const started = await calls.call('snapshotCreate', (callOptions) =>
    calls.driver.snapshotCreate(
      ref,
      { name: hook.name, memory: options.memory, quiesce: options.quiesce, ...(wanted.description !== undefined ? { description: wanted.description } : {}) },
      callOptions,
    ),
  );
  const task: SnapshotTask | undefined = started.task ? { id: started.task, operation: 'Create', startedAt: rfc3339(hook.now) } : undefined;
  if (started.task) hook.deps.metrics.taskStarted(calls.provider, started.task);
  return {
    phase: 'Creating',
    ready: ready(false, 'Creating', `taking snapshot of VM ${record.providerID}`),
    resyncAfterSeconds: started.task ? RESYNC.task : 1,
    vm: record,
    task,
    options: options.conditions,
  };
}

/** What is asked, what can be done, and a condition for each option asked. */
export function snapshotOptions(
  spec: { includeMemory?: boolean | undefined; quiesce?: boolean | undefined },
  running: boolean,
  capabilities: Capabilities,
  type: string,
): { memory: boolean; quiesce: boolean; conditions: ConditionUpdate[] } {
  const conditions: ConditionUpdate[] = [];
  let memory = false;
  let quiesce = false;
  if (spec.includeMemory) {
    if (!running) conditions.push({ type: 'MemoryIncluded', status: false, reason: 'VMNotRunning', message: 'the VM is not running: there is no memory to save' });
    else if (!capabilities.memorySnapshots) {
      conditions.push({ type: 'MemoryIncluded', status: false, reason: 'Unsupported', message: `the ${type} provider cannot save memory in snapshots; taken without` });
    } else {
      memory = true;
      conditions.push({ type: 'MemoryIncluded', status: true, reason: 'MemoryIncluded', message: 'the running memory state is saved' });
    }
  }
  if (spec.quiesce) {
    if (!running) conditions.push({ type: 'Quiesced', status: false, reason: 'VMNotRunning', message: 'the VM is not running: its file systems are at rest' });
    else if (!capabilities.quiescedSnapshots) {
      conditions.push({ type: 'Quiesced', status: false, reason: 'Unsupported', message: `the ${type} provider cannot quiesce the guest; taken without` });
    } else {
      quiesce = true;
      conditions.push({ type: 'Quiesced', status: true, reason: 'Quiesced', message: 'file systems are frozen by the guest tools while the snapshot is taken' });
    }
  }
  return { memory, quiesce, conditions };
}

export async function finalizeVMSnapshot(request: SyncRequestBody<VMSnapshotObject>, deps: VMHookDeps, signal?: AbortSignal): Promise<SyncResponse> {
  const hook = new SnapshotHook(request.parent, request.related, deps, signal);
  const lookup = hook.vmObject();
  // An invalid VM object tells nothing: the record of the VM the snapshot was taken of decides.
  const vmObject = lookup.found && lookup.problem === undefined ? lookup.object : undefined;
  const record = hook.target(vmObject);
  const done = (message: string) => hook.respond({ phase: 'Deleting', ready: ready(false, 'Deleted', message), resyncAfterSeconds: 0, finalized: true });
  // Nothing was ever taken of a VM that never existed on the hypervisor.
  if ('problem' in record) return done('no snapshot was taken');
  const calls = await hook.calls(record, vmObject);
  if ('problem' in calls) {
    if (vmObject === undefined && calls.problem.ready.reason === 'ProviderNotFound') {
      return done(`the VM and its Provider are gone: ${calls.problem.ready.message}`);
    }
    return hook.respond({ ...calls.problem, phase: 'Deleting', finalized: false, vm: record });
  }
  const ref: VMRef = { id: record.providerID, owner: { uid: record.uid, namespace: hook.snapshot.metadata.namespace ?? '', name: record.name } };
  try {
    const task = hook.previous.task;
    if (task?.id) {
      const status = await calls.call('taskStatus', (options) => calls.driver.taskStatus(task.id, options)).catch((error: unknown) => {
        if (error instanceof NotFoundError) return undefined;
        throw error;
      });
      if (status?.state === 'queued' || status?.state === 'running') {
        // A snapshot still being taken may not be listed yet: finalizing now would leave it behind.
        const what = task.operation === 'Create' ? `deletion waits for the snapshot being taken (task ${task.id})` : `deleting snapshot (task ${task.id})`;
        return hook.respond({ phase: 'Deleting', ready: ready(false, task.operation === 'Create' ? 'WaitingForCreate' : 'Deleting', what), resyncAfterSeconds: RESYNC.task, vm: record, task, finalized: false });
      }
    }
    const found = (await listOurs(calls, ref)).find((snapshot) => snapshot.name === hook.name || snapshot.id === hook.previous.snapshotID);
    if (!found) return done('the snapshot is gone from the hypervisor');
    const started = await calls.call('snapshotDelete', (options) => calls.driver.snapshotDelete(ref, found.id, options));
    const deleting: SnapshotTask | undefined = started.task ? { id: started.task, operation: 'Delete', startedAt: rfc3339(hook.now) } : undefined;
    return hook.respond({ phase: 'Deleting', ready: ready(false, 'Deleting', `deleting snapshot ${found.id}`), resyncAfterSeconds: started.task ? RESYNC.task : 1, vm: record, task: deleting, finalized: false });
  } catch (error) {
    // The VM is gone: its snapshots went with it.
    if (error instanceof NotFoundError) return done(`the VM is gone: ${error.message}`);
    // A Conflict may mean "not ours" or only "not now" (a vSphere InvalidState): only a VM that is
    // readable and names another owner proves that ours, and its snapshot, are gone.
    if (error instanceof ConflictError && (await ownerChanged(calls, ref))) return done(`VM ${ref.id} now belongs to another object: ${error.message}`);
    const failure = reportDriverError(error, 'deleting the snapshot');
    return hook.respond({
      phase: 'Deleting',
      ready: ready(false, failure.reason, failure.message),
      resyncAfterSeconds: failure.retryable ? 10 : 60,
      vm: record,
      task: hook.previous.task,
      finalized: false,
    });
  }
}
