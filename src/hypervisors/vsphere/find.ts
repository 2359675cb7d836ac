// Finding an owner's VM, or the clone that is making it, from any process: nothing here is kept
// between calls, so another runtime replica, or this one restarted, sees what this one would.
//
// 1. The VM list: a VM whose extraConfig names the owner; or, when vSphere cannot read a VM's
//    config, one whose name or vmx path bears the owner's placeholder (identity.ts). An
//    unreadable VM that may be the owner's is Unreachable: "I cannot see it" is never "it is gone".
// 2. vCenter's running clone tasks (TaskManager.recentTask). A clone's VM may not be registered
//    until late in the task, but the task posts a VmBeingClonedEvent naming the destination, on
//    the task's event chain (vim.event.TaskEvent: events are linked to a task by eventChainId).
//    A clone making the owner's placeholder is the owner's; one whose destination vSphere does not
//    name (vcsim links no events to tasks) may be, so the answer is Busy until it ends. The same
//    event names the destination host, where the inventory lists the clone as settling (placed.ts).

import { BusyError, NotFoundError, UnreachableError, isDriverError } from '../../contracts/driver.js';
import { bearsPlaceholder, placeholderName, placeholderOwner } from './identity.js';
import { morefOf } from './client.js';
import { el, moref, type MoRef } from './soap.js';
import { recentTasks } from './tasks.js';
import { child, childrenNamed, intAt, textAt, type XmlElement } from './xml.js';
import { listVMs, readVM, requireReadable, unreadableWhy, type VmRecord, type VsphereContext } from './vm.js';

export type Located =
  | { kind: 'vm'; vm: VmRecord }
  /** The owner's clone runs and vCenter has not registered its VM yet. */
  | { kind: 'cloning'; task: string; source: string }
  | { kind: 'none' };

export interface RunningClone {
  task: string;
  source: string;
  /** The new VM's name, from the task's VmBeingClonedEvent; undefined when vSphere does not say. */
  destination: string | undefined;
  /** The host the new VM goes to, from the same event (its destHost). */
  destinationHost: MoRef | undefined;
}

interface CloneEvent {
  name: string;
  host: MoRef | undefined;
}

// vCenter's descriptionId is `VirtualMachine.clone`, vcsim's `VirtualMachine.cloneVm`.
const CLONE_TASK = /^VirtualMachine\.clone/;

/**
 * The owner's VM among `vms` (a pure decision, table-tested): undefined when none may be the
 * owner's. Throws UnreachableError when the only ones that may be cannot be read, and BusyError
 * for a VM that bears the owner's placeholder but not yet its identity (a copy of another owner's
 * VM whose configuration vCenter has not rewritten yet).
 */
export function pickOwned(vms: readonly VmRecord[], uid: string): VmRecord | undefined {
  const placeholder = placeholderName(uid);
  const readable: VmRecord[] = [];
  const unknown: VmRecord[] = [];
  const unnamed: VmRecord[] = [];
  for (const vm of vms) {
    if (!vm.configReadable) {
      if (bearsPlaceholder(vm, uid)) unknown.push(vm);
      continue;
    }
    if (vm.owner?.uid !== uid) {
      if (vm.name === placeholder) unnamed.push(vm);
      continue;
    }
    // A template is not a VM virtrigaud manages (vm.ts templateIsNotAVM).
    if (vm.template) continue;
    // Another owner's clone of this owner's VM carries the source's identity until configured.
    if (placeholderOwner(vm.name) !== undefined && vm.name !== placeholder) continue;
    if (unreadableWhy(vm) !== undefined) unknown.push(vm);
    else readable.push(vm);
  }
  const best = readable.sort((a, b) => Number(b.state === 'ready') - Number(a.state === 'ready'))[0];
  if (best !== undefined) return best;
  const first = unknown[0];
  if (first !== undefined) requireReadable(first);
  const suspect = unnamed[0];
  if (suspect !== undefined) {
    throw new BusyError(`VM ${suspect.ref.value} bears the placeholder name of owner ${uid} but not its identity: a clone still being made, or a VM someone else named so`);
  }
  return undefined;
}

/** vCenter's running clone tasks with their destinations, where vSphere names them. */
export async function runningClones(ctx: VsphereContext, signal?: AbortSignal): Promise<RunningClone[]> {
  const tasks = (await recentTasks(ctx, signal)).filter((task) => (task.state === 'queued' || task.state === 'running') && CLONE_TASK.test(task.descriptionId ?? ''));
  if (tasks.length === 0) return [];
  const queued = tasks.map((task) => Date.parse(task.queueTime ?? '')).filter((time) => Number.isFinite(time));
  // The event is posted once the task starts, after it was queued (both by vCenter's clock).
  const since = queued.length === 0 ? undefined : new Date(Math.min(...queued) - 60_000).toISOString();
  const destinations = await cloneDestinations(ctx, since, signal);
  return tasks.map((task) => {
    const event = task.eventChainId ? destinations.get(task.eventChainId) : undefined;
    return {
      task: task.task.value,
      source: task.entityName ?? task.entity?.value ?? 'a VM',
      destination: event?.name,
      destinationHost: event?.host,
    };
  });
}

/** VmBeingClonedEvent destinations (name and host) by event chain, in one QueryEvents call. */
async function cloneDestinations(ctx: VsphereContext, since: string | undefined, signal?: AbortSignal): Promise<Map<number, CloneEvent>> {
  const destinations = new Map<number, CloneEvent>();
  const { eventManager } = await ctx.client.serviceContent(signal);
  if (eventManager === undefined) return destinations;
  // EventFilterSpec elements in schema order: time, disableFullMessage, eventTypeId.
  const filter = el('filter', [
    since === undefined ? undefined : el('time', [el('beginTime', since)]),
    el('disableFullMessage', true),
    el('eventTypeId', 'VmBeingClonedEvent'),
  ]);
  let response: XmlElement;
  try {
    response = await ctx.client.call('QueryEvents', [moref('_this', eventManager), filter], signal);
  } catch (error) {
    // Events this account may not read name no destination: the clones stay untold (Busy), which
    // is safe; a failure a retry may mend fails the lookup.
    if (isDriverError(error) && !error.retryable) return destinations;
    throw error;
  }
  for (const event of childrenNamed(response, 'returnval')) {
    const chain = intAt(event, 'chainId');
    const name = textAt(event, 'destName');
    if (chain !== undefined && chain !== 0 && name !== undefined) destinations.set(chain, { name, host: morefOf(child(child(event, 'destHost'), 'host')) });
  }
  return destinations;
}

/**
 * Where the owner's VM stands. The cached VM list answers a VM at once; "none" is only answered
 * after a fresh look, tasks first: a clone that ends between the two reads has registered its VM
 * before it ended, so the list read after the tasks shows it.
 */
export async function locateOwned(ctx: VsphereContext, uid: string, fresh: boolean, signal?: AbortSignal): Promise<Located> {
  if (!fresh) {
    const cached = pickOwned(await listVMs(ctx, signal), uid);
    if (cached !== undefined) return { kind: 'vm', vm: cached };
  }
  const clones = await runningClones(ctx, signal);
  ctx.vmList.invalidate();
  const listed = pickOwned(await listVMs(ctx, signal), uid);
  if (listed !== undefined) return { kind: 'vm', vm: listed };
  const placeholder = placeholderName(uid);
  const ours = clones.find((clone) => clone.destination === placeholder);
  if (ours !== undefined) return { kind: 'cloning', task: ours.task, source: ours.source };
  const untold = clones.find((clone) => clone.destination === undefined);
  if (untold !== undefined) {
    throw new BusyError(
      `a clone of ${untold.source} is running (task ${untold.task}) and vSphere does not say yet which VM it makes; ` +
        'it may be this VM, so nothing is created or given up until it is known',
    );
  }
  return { kind: 'none' };
}

/**
 * locateOwned with the VM read whole and readable. A VM the list named but that is gone by the
 * time it is read (deleted, or made a template) is looked for once more, afresh.
 */
export async function readOwned(ctx: VsphereContext, uid: string, signal?: AbortSignal): Promise<Located> {
  for (const fresh of [false, true]) {
    const located = await locateOwned(ctx, uid, fresh, signal);
    if (located.kind !== 'vm') return located;
    let vm: VmRecord;
    try {
      vm = requireReadable(await readVM(ctx, located.vm.ref.value, signal));
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
      ctx.vmList.invalidate();
      continue;
    }
    if (vm.owner?.uid === uid && !vm.template) return { kind: 'vm', vm };
    ctx.vmList.invalidate();
  }
  throw new UnreachableError(`the VM of owner ${uid} changed while it was being read; it is looked for again`);
}
