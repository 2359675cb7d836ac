// The VirtualMachine sync's placement steps for a VM with spec.placementRef: choose the host
// before create, verify it once the create has settled (verify.ts), and afterwards only report
// whether the policy still holds (PlacementViolated) — a placed VM is never moved.
import { createHash } from 'node:crypto';
import type { PlacementStatus } from '../../contracts/crds/virtualmachine.js';
import type { CreateSpec, Identity, Inventory, ObservedVM } from '../../contracts/driver.js';
import type { CanonicalPolicy } from '../../contracts/normalize/vmplacementpolicy.js';
import { formatBytes } from '../../contracts/quantity.js';
import type { ConditionUpdate } from '../conditions.js';
import type { DriverCalls } from '../driver-calls.js';
import { schedule, type PlacementRequest } from './scheduler.js';
import { CLOCK_SKEW_MS, PlacementLedger, hostStates, verifyPlacement, type Verdict } from './verify.js';

export interface PolicyRef {
  policy: string;
  value: CanonicalPolicy;
}

export interface PlacementContext {
  calls: DriverCalls;
  ledger: PlacementLedger;
  /** The Provider, as `namespace/name`: pending creates are per Provider. */
  provider: string;
  policy: PolicyRef;
  identity: Identity;
  labels: Readonly<Record<string, string>>;
  now: number;
  /** The hook's budget for driver calls: a started create is on the hypervisor within it. */
  budgetMs: number;
}

/** How long after its decision a VM is verified: every create decided before it is visible by then. */
export function settleMs(budgetMs: number): number {
  return budgetMs + CLOCK_SKEW_MS;
}

/** A digest of the rules, recorded with the placement: a change is checked again, once. */
export function rulesDigest(policy: CanonicalPolicy): string {
  return createHash('sha256').update(JSON.stringify(policy)).digest('hex').slice(0, 16);
}

function condition(type: string, status: boolean | 'Unknown', reason: string, message: string): ConditionUpdate {
  return { type, status, reason, message };
}

function requestOf(create: CreateSpec, labels: Readonly<Record<string, string>>): PlacementRequest {
  const request: PlacementRequest = { cpus: create.cpus, memoryBytes: create.memoryBytes, labels };
  if (create.placement.host !== undefined) request.host = create.placement.host;
  if (create.placement.cluster !== undefined) request.cluster = create.placement.cluster;
  return request;
}

export type CreateDecision =
  | { ok: true; host: string; datastore?: string; record: PlacementStatus; placed: ConditionUpdate }
  | { ok: false; why: string };

/** The datastore a new VM's disks go to under the policy's datastore constraints, or why none may. */
function chooseDatastore(inventory: Inventory, policy: CanonicalPolicy, create: CreateSpec): { ok: true; datastore?: string } | { ok: false; why: string } {
  const allowed = policy.datastores;
  const minFree = policy.minFreeStorageBytes ?? 0;
  if (allowed === undefined && policy.minFreeStorageBytes === undefined) return { ok: true };
  const needed = create.disks.reduce((sum, disk) => sum + disk.sizeBytes, 0);
  const fits = (name: string): string | undefined => {
    const datastore = inventory.datastores.find((candidate) => candidate.name === name);
    if (datastore === undefined) return `datastore ${name}: not in the provider's inventory`;
    const free = datastore.capacityBytes - datastore.usedBytes - needed;
    if (free < minFree) return `datastore ${name}: ${formatBytes(Math.max(0, free))} free after the disks < minFreeStorage ${formatBytes(minFree)}`;
    return undefined;
  };
  const named = create.storage.datastore;
  if (named !== undefined) {
    if (allowed !== undefined && !allowed.includes(named)) return { ok: false, why: `datastore ${named} is not in the policy's constraints.datastores` };
    const problem = fits(named);
    return problem === undefined ? { ok: true } : { ok: false, why: problem };
  }
  if (allowed === undefined) return { ok: true };
  const candidates = allowed
    .map((name) => ({ name, problem: fits(name), free: inventory.datastores.find((datastore) => datastore.name === name) }))
    .sort((a, b) => a.name.localeCompare(b.name));
  const fitting = candidates
    .filter((candidate) => candidate.problem === undefined && candidate.free !== undefined)
    .sort((a, b) => (b.free?.capacityBytes ?? 0) - (b.free?.usedBytes ?? 0) - ((a.free?.capacityBytes ?? 0) - (a.free?.usedBytes ?? 0)));
  const best = fitting[0];
  if (best === undefined) return { ok: false, why: candidates.map((candidate) => candidate.problem ?? `datastore ${candidate.name}: unusable`).join('; ') };
  return { ok: true, datastore: best.name };
}

/**
 * Before create: the host (and datastore) for the VM, from one inventory call and this process's
 * pending creates. The caller writes the host and the record into the create spec.
 */
export async function decidePlacement(context: PlacementContext, create: CreateSpec): Promise<CreateDecision> {
  const { calls, ledger, provider, policy, identity, now } = context;
  const inventory = await calls.inventory();
  const pending = ledger.pending(provider, inventory, now);
  const decision = schedule(hostStates(inventory), policy.value.rules, requestOf(create, context.labels), pending);
  if (!decision.ok) return { ok: false, why: decision.why };
  const datastore = chooseDatastore(inventory, policy.value, create);
  if (!datastore.ok) return { ok: false, why: datastore.why };
  ledger.add(
    provider,
    identity.uid,
    { host: decision.host, vm: { name: create.name, labels: { ...context.labels } }, cpus: create.cpus, memoryBytes: create.memoryBytes },
    now + 2 * settleMs(context.budgetMs),
  );
  const record: PlacementStatus = { policy: policy.policy, host: decision.host, order: now, state: 'Verifying', rules: rulesDigest(policy.value) };
  const placed = condition('Placed', 'Unknown', 'Verifying', `${decision.why}; verified against VMs created concurrently before it starts`);
  return datastore.datastore === undefined ? { ok: true, host: decision.host, record, placed } : { ok: true, host: decision.host, datastore: datastore.datastore, record, placed };
}

/** What the sync does with a VM that exists, as far as placement is concerned. */
export type ExistingPlacement =
  /** Go on with the plan; these conditions join the VM's. */
  | { kind: 'proceed'; record: PlacementStatus; conditions: ConditionUpdate[] }
  /** Nothing but following a task until the placement is verified. */
  | { kind: 'hold'; record: PlacementStatus; conditions: ConditionUpdate[]; resyncAfterSeconds: number }
  /** The VM lost its slot to one placed before it: delete it (it never ran) and place it again. */
  | { kind: 'release'; record: PlacementStatus; conditions: ConditionUpdate[] };

function verdictConditions(verdict: Verdict, placedWhy: string): ConditionUpdate[] {
  const violated =
    verdict.kind === 'violated'
      ? condition('PlacementViolated', true, 'PolicyNotMet', `${verdict.why}; the VM is not moved`)
      : condition('PlacementViolated', false, 'PolicyMet', 'the VM is within its placement policy');
  return [condition('Placed', true, 'Placed', placedWhy), violated];
}

/** The previous Placed and PlacementViolated conditions, repeated as they were (a steady sync writes nothing new). */
function carried(previous: readonly { type: string; status: string; reason: string; message: string }[], host: string): ConditionUpdate[] {
  const of = (type: string) => previous.find((entry) => entry.type === type);
  const placed = of('Placed');
  const violated = of('PlacementViolated');
  return [
    placed && placed.status === 'True' ? condition('Placed', true, placed.reason, placed.message) : condition('Placed', true, 'Placed', `on ${host}`),
    violated
      ? condition('PlacementViolated', violated.status === 'True' ? true : violated.status === 'False' ? false : 'Unknown', violated.reason, violated.message)
      : condition('PlacementViolated', false, 'PolicyMet', 'the VM is within its placement policy'),
  ];
}

export interface ExistingInput {
  vm: ObservedVM;
  previous: PlacementStatus | undefined;
  previousConditions: readonly { type: string; status: string; reason: string; message: string }[];
  create: CreateSpec;
  /** A task runs on the VM, or its create has steps left: verification waits for it. */
  busy: boolean;
}

/**
 * A VM that exists. Verifying: once settled and idle, checked against the VMs placed before it —
 * kept, or released when it lost the slot and is still off. Placed: checked again only when the
 * policy's rules changed. No record (a status lost, a policy added later): checked once and
 * adopted, never deleted.
 */
export async function checkExisting(context: PlacementContext, input: ExistingInput): Promise<ExistingPlacement> {
  const { policy, identity, now } = context;
  const digest = rulesDigest(policy.value);
  const previous = input.previous?.policy === policy.policy ? input.previous : undefined;
  const host = input.vm.host ?? previous?.host;
  if (previous?.state === 'Placed' && previous.rules === digest) {
    return { kind: 'proceed', record: previous, conditions: carried(input.previousConditions, previous.host) };
  }
  if (host === undefined) {
    const record: PlacementStatus = previous ?? { policy: policy.policy, host: '', order: now, state: 'Placed', rules: digest };
    return { kind: 'proceed', record, conditions: [condition('Placed', true, 'Placed', 'the driver does not say which host the VM is on'), condition('PlacementViolated', 'Unknown', 'HostUnknown', 'the driver does not say which host the VM is on')] };
  }
  if (previous?.state === 'Releasing' && input.vm.powerState === 'Off') {
    const lost = condition('Placed', false, 'LostRace', `${host}: the slot went to a VM placed before it; deleting this one to place it again`);
    // A delete already running (the VM locked by it) is waited for, not asked for again.
    return input.busy ? { kind: 'hold', record: previous, conditions: [lost], resyncAfterSeconds: 2 } : { kind: 'release', record: previous, conditions: [lost] };
  }
  if (previous?.state === 'Verifying') {
    const ready = previous.order + settleMs(context.budgetMs);
    if (input.busy || now < ready) {
      const waitSeconds = input.busy ? 2 : Math.max(1, Math.ceil((ready - now) / 1000));
      return {
        kind: 'hold',
        record: previous,
        conditions: [condition('Placed', 'Unknown', 'Verifying', `created on ${host}; checked against VMs created concurrently before it starts`)],
        resyncAfterSeconds: waitSeconds,
      };
    }
  }
  const inventory = await context.calls.inventory();
  const order = previous?.order ?? orderOf(inventory, identity.uid) ?? now;
  const verdict = verifyPlacement(inventory, policy.value.rules, requestOf(input.create, context.labels), { uid: identity.uid, host, order });
  context.ledger.release(context.provider, identity.uid);
  if (verdict.kind === 'wait') {
    if (previous?.state === 'Verifying') {
      // Another VM may stay "being created" for hours (a stuck clone): each look costs an
      // inventory read, so the looks thin out, from every 2 s to once a minute.
      const waited = now - (previous.order + settleMs(context.budgetMs));
      const resyncAfterSeconds = Math.min(60, Math.max(2, Math.ceil(waited / 10_000)));
      return { kind: 'hold', record: previous, conditions: [condition('Placed', 'Unknown', 'Verifying', `created on ${host}; waiting: ${verdict.why}`)], resyncAfterSeconds };
    }
    // A VM found placed, or re-checked after a policy change, is never held or released: it runs on
    // as it is, and an empty digest has it checked again at its next sync.
    const record: PlacementStatus = { policy: policy.policy, host, order, state: 'Placed', rules: '' };
    return { kind: 'proceed', record, conditions: [condition('Placed', true, 'Placed', `on ${host}`), condition('PlacementViolated', 'Unknown', 'Checking', verdict.why)] };
  }
  if (verdict.kind === 'violated' && previous?.state === 'Verifying' && input.vm.powerState === 'Off') {
    const record: PlacementStatus = { ...previous, state: 'Releasing' };
    return { kind: 'release', record, conditions: [condition('Placed', false, 'LostRace', `${verdict.why} counting the VMs placed before it; deleting this one to place it again`)] };
  }
  const record: PlacementStatus = { policy: policy.policy, host, order, state: 'Placed', rules: digest };
  const why = previous?.state === 'Verifying' ? `on ${host}, verified against the VMs placed before it` : previous ? `on ${host}` : `on ${host} (found placed)`;
  return { kind: 'proceed', record, conditions: verdictConditions(verdict, why) };
}

function orderOf(inventory: Inventory, uid: string): number | undefined {
  for (const host of inventory.hosts) {
    const mine = (host.placed ?? []).find((vm) => vm.owner === uid);
    if (mine !== undefined) return mine.order;
  }
  return undefined;
}

/** How often a VM no host fits asks again (one inventory call each time). */
export const UNSCHEDULABLE_RETRY_SECONDS = 30;

/** The placement part of one sync: a create's decision, or the check of an existing VM. */
export type PlacementOutcome = { kind: 'create'; record: PlacementStatus; conditions: ConditionUpdate[] } | ExistingPlacement;

export interface SyncState {
  /** The action the plan chose: only `create` of a VM not there yet is placed. */
  creating: boolean;
  create: CreateSpec;
  vm: ObservedVM | undefined;
  previous: PlacementStatus | undefined;
  previousConditions: ExistingInput['previousConditions'];
  busy: boolean;
}

/**
 * Places a VM about to be created (writing the host, datastore and record into `state.create`)
 * or checks an existing one. Undefined when there is nothing to place (no VM and no create).
 */
export async function placementStep(context: PlacementContext, state: SyncState): Promise<PlacementOutcome | { kind: 'unschedulable'; why: string } | undefined> {
  if (state.creating && state.vm === undefined) {
    const decision = await decidePlacement(context, state.create);
    if (!decision.ok) return { kind: 'unschedulable', why: decision.why };
    state.create.placement.host = decision.host;
    if (decision.datastore !== undefined) state.create.storage.datastore = decision.datastore;
    state.create.placementRecord = { labels: { ...context.labels }, order: decision.record.order };
    return { kind: 'create', record: decision.record, conditions: [decision.placed] };
  }
  if (state.vm === undefined) return undefined;
  return checkExisting(context, { vm: state.vm, previous: state.previous, previousConditions: state.previousConditions, create: state.create, busy: state.busy });
}

const LEDGERS = new WeakMap<object, PlacementLedger>();

/** One ledger per hook server (its deps object): replicas never share one. */
export function placementLedgerOf(deps: object): PlacementLedger {
  let ledger = LEDGERS.get(deps);
  if (ledger === undefined) LEDGERS.set(deps, (ledger = new PlacementLedger()));
  return ledger;
}
