// Step 3 of a sync: from desired and observed state, the one next action and the conditions that
// explain the situation. Pure and table-tested: no I/O, time passed in.
import type { FailureRecord, LockRecord, RevertRecord, ShutdownRecord, TaskOperation, TaskStatusRef } from '../../contracts/crds/virtualmachine.js';
import type {
  Capabilities,
  ObservedVM,
  PowerOperation,
  ResourceChange,
  TaskStatus,
} from '../../contracts/driver.js';
import type { ConditionUpdate } from '../conditions.js';
import { rfc3339 } from '../time.js';
import {
  compareHardware,
  describeChange,
  describeSize,
  isEmptyChange,
  splitOnline,
  type HardwareDiff,
  type SizeChange,
} from './compare.js';
import type { ResolvedVM } from './resolve.js';
import { backingOff, backoffSeconds, currentFailure, describeBackoff, recordFailure } from './retry.js';

export type Action =
  | { kind: 'none' }
  | { kind: 'create' }
  | { kind: 'power'; operation: PowerOperation; task: TaskOperation }
  | { kind: 'reconfigure'; change: ResourceChange }
  | { kind: 'resizeDisk'; disk: string; sizeBytes: number }
  | { kind: 'revert'; snapshot: string; snapshotID: string; request: string };

export interface PlanInput {
  desired: ResolvedVM;
  observed: ObservedVM | undefined;
  /** status.providerID was set: a VM that is now missing disappeared. */
  hadProviderID: boolean;
  /** The task recorded in status, with what the hypervisor says about it (undefined: it does not know it). */
  task: { ref: TaskStatusRef; status: TaskStatus | undefined } | undefined;
  capabilities: Capabilities;
  /** status.restartRequest: the last restart request handled. */
  restartHandled: string | undefined;
  /** status.revert: the last revert request started. */
  revertHandled?: RevertRecord | undefined;
  /** status.failure: the operation that keeps failing, for the back-off. */
  failure?: FailureRecord | undefined;
  /** status.gracefulShutdown: when the first shutdown of this power-off or restart was asked for. */
  gracefulShutdown?: ShutdownRecord | undefined;
  /** status.lockHeld: a hypervisor lock seen before, and since when. */
  lockHeld?: LockRecord | undefined;
  /** metadata.generation: a failure recorded under another generation is forgotten. */
  generation?: number | undefined;
  now: number;
}

export interface Plan {
  action: Action;
  /** The recorded task is still in flight and stays in status. */
  keepTask: boolean;
  restartHandled: string | undefined;
  provisioned: ConditionUpdate;
  configured: ConditionUpdate;
  power: ConditionUpdate;
  resyncAfterSeconds: number;
  /** The records for the next status (undefined clears them). */
  failure?: FailureRecord | undefined;
  gracefulShutdown?: ShutdownRecord | undefined;
  lockHeld?: LockRecord | undefined;
}

export const RESYNC = { task: 2, waitingForGuest: 5 } as const;

/** A lock held longer than this is reported as held (it may never clear by itself), and polled ever more slowly. */
export const LOCK_REPORT_AFTER_MS = 10 * 60_000;

const TASK_CONDITION: Record<TaskOperation, 'provisioned' | 'configured' | 'power'> = {
  Create: 'provisioned',
  Delete: 'provisioned',
  PowerOn: 'power',
  PowerOff: 'power',
  Shutdown: 'power',
  Reboot: 'power',
  Suspend: 'power',
  Reset: 'power',
  Reconfigure: 'configured',
  ResizeDisk: 'configured',
  Revert: 'configured',
};

function condition(type: string, status: boolean | 'Unknown', reason: string, message: string): ConditionUpdate {
  return { type, status, reason, message };
}

const notCreated = (message: string) => ({
  configured: condition('Configured', 'Unknown', 'NotCreated', message),
  power: condition('PowerSynced', 'Unknown', 'NotCreated', message),
});

function running(task: PlanInput['task']): boolean {
  return task?.status?.state === 'queued' || task?.status?.state === 'running';
}

/** The operation an action starts, for the back-off record. */
export function operationOf(action: Action): TaskOperation | undefined {
  switch (action.kind) {
    case 'none':
      return undefined;
    case 'create':
      return 'Create';
    case 'power':
      return action.task;
    case 'reconfigure':
      return 'Reconfigure';
    case 'resizeDisk':
      return 'ResizeDisk';
    case 'revert':
      return 'Revert';
  }
}

export function planNextAction(input: PlanInput): Plan {
  const failure = currentFailure(input.failure, input.generation);
  const task = input.task;
  // A task of the failing operation that succeeded ends its failure record.
  const settled = task?.status?.state === 'succeeded' && failure?.operation === task.ref.operation ? undefined : failure;
  const plan = planAction({ ...input, failure: settled });
  const lockHeld = input.observed?.lock === undefined ? undefined : input.lockHeld?.lock === input.observed.lock ? input.lockHeld : { lock: input.observed.lock, since: rfc3339(input.now) };
  return withBackoff(input, { ...plan, lockHeld });
}

/** Holds back an action whose operation is still in its back-off, saying why and until when. */
function withBackoff(input: PlanInput, plan: Plan): Plan {
  const operation = operationOf(plan.action);
  if (operation === undefined) return plan;
  const failure = plan.failure?.operation === operation ? plan.failure : undefined;
  const waiting = backingOff(failure, operation, input.now);
  if (!failure || !waiting) return { ...plan, failure };
  const slot = TASK_CONDITION[operation];
  const held = { ...plan, action: { kind: 'none' } as const, failure, resyncAfterSeconds: Math.max(1, Math.ceil((waiting.until - input.now) / 1000)) };
  held[slot] = condition(plan[slot].type, false, failure.reason, describeBackoff(failure, waiting.until));
  return held;
}

function planAction(input: PlanInput): Plan {
  const { desired, observed, task } = input;

  if (task && running(task) && task.ref.operation !== 'Shutdown') {
    return waitForTask(input, task.ref, task.status);
  }
  if (task?.status?.state === 'failed') return reportFailedTask(input, task.ref, task.status);

  if (!observed) {
    const vanished = input.hadProviderID;
    const message = vanished
      ? 'the VM disappeared from the hypervisor; creating it again'
      : `creating VM ${desired.create.name}`;
    return {
      action: { kind: 'create' },
      keepTask: false,
      restartHandled: input.restartHandled,
      provisioned: condition('Provisioned', false, vanished ? 'Recreating' : 'Creating', message),
      ...notCreated('the VM does not exist yet'),
      resyncAfterSeconds: RESYNC.task,
      failure: input.failure,
    };
  }

  const provisioned = condition('Provisioned', true, 'Created', `VM ${observed.id}${observed.host ? ` on ${observed.host}` : ''}`);
  if (observed.lock) {
    const wait = lockWait(observed.id, observed.lock, input.lockHeld?.lock === observed.lock ? input.lockHeld.since : undefined, input.now);
    return {
      action: { kind: 'none' },
      keepTask: false,
      restartHandled: input.restartHandled,
      provisioned: observed.lock === 'create' ? condition('Provisioned', false, 'Creating', wait.message) : provisioned,
      configured: condition('Configured', 'Unknown', wait.reason, wait.message),
      power: condition('PowerSynced', 'Unknown', wait.reason, wait.message),
      resyncAfterSeconds: wait.resyncAfterSeconds,
      failure: input.failure,
      gracefulShutdown: input.gracefulShutdown,
    };
  }

  if (observed.incomplete) {
    return {
      action: { kind: 'create' },
      keepTask: false,
      restartHandled: input.restartHandled,
      provisioned: condition('Provisioned', false, 'Creating', `continuing the creation of VM ${observed.id}`),
      ...notCreated('the VM is still being created'),
      resyncAfterSeconds: RESYNC.task,
      failure: input.failure,
    };
  }
  return planForExistingVM(input, observed, provisioned);
}

/**
 * Waiting out a hypervisor lock. Most clear within seconds; one held for long may never clear by
 * itself (a backup or clone lock left by a crashed node), so past LOCK_REPORT_AFTER_MS it is
 * named as such and polled ever more slowly, up to every five minutes.
 */
export function lockWait(id: string, lock: string, since: string | undefined, now: number): { reason: string; message: string; resyncAfterSeconds: number } {
  const heldMs = since === undefined ? 0 : Math.max(0, now - Date.parse(since));
  // Polled a tenth of the time held so far: short locks at the task pace, long ones ever more rarely.
  const resyncAfterSeconds = Math.min(300, Math.max(RESYNC.task, Math.round(heldMs / 1000 / 10)));
  if (heldMs < LOCK_REPORT_AFTER_MS) {
    return { reason: 'Busy', message: `the hypervisor is running "${lock}" on VM ${id}`, resyncAfterSeconds };
  }
  return {
    reason: 'LockHeld',
    message:
      `VM ${id} has been locked ("${lock}") since ${since}; if no ${lock} runs on the hypervisor any more, ` +
      'the lock is stale and an administrator must clear it (Proxmox VE: qm unlock)',
    resyncAfterSeconds,
  };
}

function waitForTask(input: PlanInput, ref: TaskStatusRef, status: TaskStatus | undefined): Plan {
  // No progress figure here: a message that changes while the task runs would change the status
  // on every sync, and every status write makes Metacontroller sync again at once.
  const message = `${ref.operation} task ${ref.id} in progress${status?.state === 'queued' ? ' (queued)' : ''}`;
  const base = input.observed
    ? {
        provisioned: condition('Provisioned', true, 'Created', `VM ${input.observed.id}`),
        configured: condition('Configured', true, 'InSync', 'hardware matches the spec'),
        power: powerCondition(input.desired, input.observed),
      }
    : {
        provisioned: condition('Provisioned', false, 'Creating', message),
        ...notCreated('the VM does not exist yet'),
      };
  const slot = TASK_CONDITION[ref.operation];
  const reason = { Create: 'Creating', Delete: 'Deleting', PowerOn: 'PoweringOn', PowerOff: 'PoweringOff', Shutdown: 'ShuttingDown', Reboot: 'Rebooting', Suspend: 'Suspending', Reset: 'Resetting', Reconfigure: 'Reconfiguring', ResizeDisk: 'ResizingDisk', Revert: 'Reverting' }[ref.operation];
  base[slot] = condition(base[slot].type, false, reason, message);
  return {
    action: { kind: 'none' },
    keepTask: true,
    restartHandled: input.restartHandled,
    ...base,
    resyncAfterSeconds: RESYNC.task,
    failure: input.failure,
    gracefulShutdown: input.observed?.powerState === 'On' ? input.gracefulShutdown : undefined,
  };
}

/** Failures no retry will mend: only a change of the spec (or of the hypervisor, by a person) will. */
const TERMINAL_CODES = new Set(['InvalidSpec', 'Unsupported', 'Unauthorized']);

function reportFailedTask(input: PlanInput, ref: TaskStatusRef, status: TaskStatus): Plan {
  // One failure, one report: no new action in this sync, and the failure goes on record so that
  // the next attempt waits its back-off (retry.ts).
  const message = `${ref.operation} task failed: ${status.error ?? 'no reason given'}`;
  const failure = recordFailure(
    input.failure,
    { operation: ref.operation, reason: `${ref.operation}Failed`, message, retryable: !TERMINAL_CODES.has(status.errorCode ?? '') },
    input.now,
    input.generation,
  );
  const observed = input.observed;
  const base = observed
    ? {
        provisioned: condition('Provisioned', true, 'Created', `VM ${observed.id}`),
        configured: condition('Configured', 'Unknown', 'Retrying', 'retrying after a failed task'),
        power: powerCondition(input.desired, observed),
      }
    : { provisioned: condition('Provisioned', false, 'CreateFailed', message), ...notCreated('the VM does not exist yet') };
  const slot = TASK_CONDITION[ref.operation];
  base[slot] = condition(base[slot].type, false, `${ref.operation}Failed`, message);
  return {
    action: { kind: 'none' },
    keepTask: false,
    restartHandled: input.restartHandled,
    ...base,
    resyncAfterSeconds: backoffSeconds(failure),
    failure,
    gracefulShutdown: observed?.powerState === 'On' ? input.gracefulShutdown : undefined,
  };
}

function planForExistingVM(input: PlanInput, observed: ObservedVM, provisioned: ConditionUpdate, waitingRevert?: { reason: string; message: string }): Plan {
  const { desired, task, capabilities, now } = input;
  const diff = compareHardware(desired.create, observed);
  const isOn = observed.powerState === 'On';
  const isOff = observed.powerState === 'Off';
  const isSuspended = observed.powerState === 'Suspended';

  let restartHandled = input.restartHandled;
  let restartPending = desired.restartRequest !== undefined && desired.restartRequest !== restartHandled;
  if (restartPending && isOn && desired.restartMode === 'Reset') {
    // A hard reset is done once asked: nothing to wait for, and pending changes stay pending.
    return planForReset(input, observed, provisioned, desired.restartRequest ?? '');
  }
  if (restartPending && !isOn) {
    // A restart of a VM that is not running is done: it comes back up with everything applied.
    restartHandled = desired.restartRequest;
    restartPending = false;
  }

  const { online, offline } = isOn ? splitOnline(diff.resources, observed, capabilities) : { online: {}, offline: diff.resources };
  // Disks that grow only while the VM is off: expandPolicy Offline, or a driver without online growth.
  const offlineGrows = isOn ? diff.grow.filter((grow) => !capabilities.onlineDiskGrow || desired.offlineGrowth.includes(grow.disk)) : [];
  const powerCycleWanted = isOn && (!isEmptyChange(offline) || offlineGrows.length > 0) && desired.powerCyclePolicy === 'Automatic';
  const wantOff = desired.powerState === 'Off' || desired.powerState === 'OffGraceful' || restartPending || powerCycleWanted;
  const configured = waitingRevert
    ? condition('Configured', false, waitingRevert.reason, `revert waits: ${waitingRevert.message}`)
    : configuredCondition(diff, observed, { change: isOn ? offline : {}, grows: offlineGrows }, desired.powerCyclePolicy, restartPending);
  // The graceful-shutdown deadline counts from the first shutdown of this power-off or restart,
  // kept in status: a shutdown that fails (no guest agent) and is asked again must not restart it.
  const shutdownSince = isOn && wantOff ? (input.gracefulShutdown?.startedAt ?? (task?.ref.operation === 'Shutdown' ? task.ref.startedAt : undefined)) : undefined;
  const shutdownRecord = shutdownSince === undefined ? undefined : { startedAt: shutdownSince };
  const plan = (action: Action, extra: Partial<Plan> = {}): Plan => ({
    action,
    keepTask: false,
    restartHandled,
    provisioned,
    configured,
    power: powerCondition(desired, observed),
    resyncAfterSeconds: RESYNC.task,
    failure: input.failure,
    gracefulShutdown: shutdownRecord,
    ...extra,
  });
  const gracefulOff = (power?: ConditionUpdate): Plan =>
    capabilities.guestShutdown
      ? plan({ kind: 'power', operation: 'shutdown', task: 'Shutdown' }, { gracefulShutdown: shutdownRecord ?? { startedAt: rfc3339(now) }, ...(power ? { power } : {}) })
      : plan({ kind: 'power', operation: 'off', task: 'PowerOff' }, power ? { power } : {});

  if (shutdownSince !== undefined) {
    const elapsed = now - Date.parse(shutdownSince);
    if (elapsed >= desired.shutdownTimeoutMs) {
      return plan(
        { kind: 'power', operation: 'off', task: 'PowerOff' },
        { power: condition('PowerSynced', false, 'ShutdownTimedOut', `the guest did not shut down within ${desired.shutdownTimeoutMs / 1000}s; powering off`) },
      );
    }
    const remaining = Math.ceil((desired.shutdownTimeoutMs - elapsed) / 1000);
    const deadline = rfc3339(Date.parse(shutdownSince) + desired.shutdownTimeoutMs);
    return plan(
      { kind: 'none' },
      {
        keepTask: task?.ref.operation === 'Shutdown',
        power: condition('PowerSynced', false, 'ShuttingDown', `waiting for the guest to shut down; powering off at ${deadline} if it has not`),
        resyncAfterSeconds: Math.max(1, Math.min(RESYNC.waitingForGuest, remaining)),
      },
    );
  }

  // A revert comes first: it replaces the disks (and memory) that everything below would act on.
  const revert = desired.revert;
  const revertPending = revert !== undefined && (input.revertHandled?.request !== revert.request || input.revertHandled.snapshot !== revert.snapshot);
  if (revertPending && revert.snapshotID !== undefined) {
    return plan(
      { kind: 'revert', snapshot: revert.snapshot, snapshotID: revert.snapshotID, request: revert.request },
      { configured: condition('Configured', false, 'Reverting', `reverting to VMSnapshot ${revert.snapshot}`) },
    );
  }
  if (revertPending && revert.problem && configured.status === true) {
    // Everything else goes on; the revert waits for its snapshot.
    return planForExistingVM({ ...input, desired: { ...desired, revert: undefined } }, observed, provisioned, revert.problem);
  }

  if (isOff && !isEmptyChange(diff.resources)) {
    return plan({ kind: 'reconfigure', change: diff.resources }, { configured: applying(describeChange(diff.resources, observed)) });
  }
  const grow = diff.grow[0];
  if (grow && (isOff || (capabilities.onlineDiskGrow && !desired.offlineGrowth.includes(grow.disk)))) {
    return plan({ kind: 'resizeDisk', disk: grow.disk, sizeBytes: grow.toBytes }, { configured: applying(describeSize(grow)) });
  }
  if (isOn && !isEmptyChange(online)) {
    return plan({ kind: 'reconfigure', change: online }, { configured: applying(describeChange(online, observed)) });
  }

  if (desired.powerState === 'On' && !isOn && observed.powerState !== 'Unknown') {
    return plan({ kind: 'power', operation: 'on', task: 'PowerOn' });
  }
  // A suspended guest cannot shut down: it is powered off, as asked.
  if ((desired.powerState === 'Off' || desired.powerState === 'OffGraceful') && isSuspended) return plan({ kind: 'power', operation: 'off', task: 'PowerOff' });
  if (desired.powerState === 'Off' && isOn) return plan({ kind: 'power', operation: 'off', task: 'PowerOff' });
  if (desired.powerState === 'OffGraceful' && isOn) return gracefulOff();
  if (desired.powerState === 'Suspended' && isOn && !restartPending && !powerCycleWanted) return plan({ kind: 'power', operation: 'suspend', task: 'Suspend' });
  if (desired.powerState === 'Suspended' && isOff) return plan({ kind: 'power', operation: 'on', task: 'PowerOn' });
  if (isOn && (restartPending || powerCycleWanted)) {
    return gracefulOff(condition('PowerSynced', false, 'Restarting', restartPending ? 'restart requested' : 'power cycle to apply pending changes'));
  }

  const waitingForAddresses = isOn && desired.powerState === 'On' && observed.ips.length === 0 && observed.nics.length > 0;
  // Nothing left to do: whatever failed before is over.
  return plan({ kind: 'none' }, { resyncAfterSeconds: waitingForAddresses ? RESYNC.waitingForGuest : 0, failure: undefined });
}

/** restartMode Reset: the running VM is reset at once, and the request is handled. */
function planForReset(input: PlanInput, observed: ObservedVM, provisioned: ConditionUpdate, request: string): Plan {
  return {
    action: { kind: 'power', operation: 'reset', task: 'Reset' },
    keepTask: false,
    restartHandled: request,
    provisioned,
    configured: condition('Configured', 'Unknown', 'Resetting', 'checked again once the VM is reset'),
    power: condition('PowerSynced', false, 'Resetting', 'reset requested'),
    resyncAfterSeconds: RESYNC.task,
    failure: input.failure,
    gracefulShutdown: undefined,
  };
}

function applying(what: string): ConditionUpdate {
  return condition('Configured', false, 'Reconfiguring', `applying ${what}`);
}

function configuredCondition(
  diff: HardwareDiff,
  observed: ObservedVM,
  pendingOffline: { change: ResourceChange; grows: SizeChange[] },
  policy: 'Manual' | 'Automatic',
  restartPending: boolean,
): ConditionUpdate {
  if (diff.shrink.length > 0) {
    const what = diff.shrink.map(describeSize).join('; ');
    return condition('Configured', false, 'DiskShrinkRejected', `${what} refused: disks only grow`);
  }
  if (diff.notApplicable.length > 0) {
    return condition('Configured', false, 'ChangeNotSupported', diff.notApplicable.join('; '));
  }
  if (!isEmptyChange(pendingOffline.change) || pendingOffline.grows.length > 0) {
    const what = [describeChange(pendingOffline.change, observed), ...pendingOffline.grows.map(describeSize)].filter(Boolean).join(', ');
    if (policy === 'Automatic' || restartPending) {
      return condition('Configured', false, 'PowerCycling', `${what} applies while the VM is off`);
    }
    return condition(
      'Configured',
      false,
      'PowerCyclePending',
      `${what} needs the VM powered off; set spec.lifecycle.restartRequest or powerCyclePolicy: Automatic`,
    );
  }
  if (!isEmptyChange(diff.resources) || diff.grow.length > 0) {
    const what = [describeChange(diff.resources, observed), ...diff.grow.map(describeSize)].filter(Boolean).join(', ');
    return condition('Configured', false, 'Reconfiguring', `applying ${what}`);
  }
  return condition('Configured', true, 'InSync', 'hardware matches the spec');
}

export function powerCondition(desired: ResolvedVM, observed: ObservedVM): ConditionUpdate {
  const wantOn = desired.powerState === 'On';
  if (observed.powerState === 'Unknown') {
    return condition('PowerSynced', 'Unknown', 'PowerStateUnknown', 'the hypervisor reports no power state');
  }
  if (desired.powerState === 'Suspended') {
    if (observed.powerState === 'Suspended') return condition('PowerSynced', true, 'Suspended', 'the VM is suspended');
    return condition('PowerSynced', false, 'Suspending', `the VM is ${observed.powerState.toLowerCase()}; suspending`);
  }
  const isOn = observed.powerState === 'On';
  if (wantOn === isOn && (wantOn || observed.powerState === 'Off')) {
    return condition('PowerSynced', true, isOn ? 'PoweredOn' : 'PoweredOff', `the VM is ${isOn ? 'on' : 'off'}`);
  }
  if (wantOn) return condition('PowerSynced', false, 'PoweringOn', `the VM is ${observed.powerState.toLowerCase()}; powering on`);
  return condition(
    'PowerSynced',
    false,
    desired.powerState === 'OffGraceful' ? 'ShuttingDown' : 'PoweringOff',
    `the VM is ${observed.powerState.toLowerCase()}; ${desired.powerState === 'OffGraceful' ? 'shutting down' : 'powering off'}`,
  );
}
