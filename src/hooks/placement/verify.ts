// Placement from the hypervisor's own state (DESIGN.md §5: create, then verify). Pure.
//
// Every VM created under a policy carries its placement order (when its host was chosen) and its
// labels with its identity; the inventory lists them per host. A VM is verified once every create
// that was decided before it must be visible: its own order plus the settle window (the hook's call
// budget, within which a started create is on the hypervisor, plus the clock skew allowed between
// hook replicas). It then checks the hard rules counting only the VMs ordered before it — VMs
// without an order (created without a policy, or not by us) count as earlier. Of two replicas that
// both took the last slot, each sees the same order, so exactly the later one finds itself over
// the limit, deletes the VM it made (still off: nothing has run in it) and is placed again.
import type { Inventory, PlacedVMInfo } from '../../contracts/driver.js';
import type { PlacementRules } from '../../contracts/placement.js';
import { hardRuleViolation, type HostState, type PendingPlacement, type PlacementRequest } from './scheduler.js';

/** How far apart the clocks of two hook replicas may be: NTP keeps a cluster well within it. */
export const CLOCK_SKEW_MS = 5000;

export type Verdict = { kind: 'ok' } | { kind: 'wait'; why: string } | { kind: 'violated'; why: string };

export interface Placed {
  uid: string;
  host: string;
  order: number;
}

function vmName(vm: PlacedVMInfo): string {
  return vm.name ?? (vm.owner !== undefined ? `owned by ${vm.owner}` : 'a VM');
}

/** The inventory's hosts as the scheduler reads them: every VM on each, with its recorded labels. */
export function hostStates(inventory: Inventory): HostState[] {
  return inventory.hosts.map((host) => {
    const state: HostState = {
      name: host.name,
      cpus: host.cpus,
      memoryBytes: host.memoryBytes,
      cpusAllocated: host.cpusAllocated,
      memoryAllocatedBytes: host.memoryAllocatedBytes,
      vms: (host.placed ?? []).map((vm) => ({ name: vmName(vm), labels: vm.labels })),
    };
    if (host.selectable === false) state.selectable = false;
    if (host.cluster !== undefined) state.cluster = host.cluster;
    return state;
  });
}

/** Whether `vm` was placed before `me`: by order, then by owner UID, so every replica agrees. */
function before(vm: PlacedVMInfo, me: Placed): boolean {
  if (vm.order === undefined) return true;
  if (vm.order !== me.order) return vm.order < me.order;
  return (vm.owner ?? '') < me.uid;
}

/** Whether the VM `me` holds its place under `rules`, counting only the VMs placed before it. */
export function verifyPlacement(inventory: Inventory, rules: PlacementRules, request: PlacementRequest, me: Placed): Verdict {
  const host = inventory.hosts.find((candidate) => candidate.name === me.host);
  if (host === undefined) return { kind: 'wait', why: `host ${me.host} is not in the provider's inventory` };
  const placed = host.placed ?? [];
  const settling = placed.find((vm) => vm.settling === true && vm.owner !== me.uid);
  if (settling !== undefined) return { kind: 'wait', why: `${vmName(settling)} on ${me.host} is still being created` };
  const mine = placed.find((vm) => vm.owner === me.uid);
  if (mine === undefined) return { kind: 'wait', why: `the VM is not listed on ${me.host} yet` };
  const earlier = placed.filter((vm) => vm !== mine && before(vm, me));
  const notCounted = placed.filter((vm) => !earlier.includes(vm));
  const state: HostState = {
    name: host.name,
    cpus: host.cpus,
    memoryBytes: host.memoryBytes,
    cpusAllocated: Math.max(0, host.cpusAllocated - notCounted.reduce((sum, vm) => sum + vm.cpus, 0)),
    memoryAllocatedBytes: Math.max(0, host.memoryAllocatedBytes - notCounted.reduce((sum, vm) => sum + vm.memoryBytes, 0)),
    vms: earlier.map((vm) => ({ name: vmName(vm), labels: vm.labels })),
  };
  // The cluster was the create's to honour; what verification checks is the policy.
  const { cluster: _cluster, ...policyRequest } = request;
  const violation = hardRuleViolation(state, rules, { ...policyRequest, cpus: mine.cpus, memoryBytes: mine.memoryBytes });
  return violation === undefined ? { kind: 'ok' } : { kind: 'violated', why: `${host.name}: ${violation}` };
}

/**
 * Creates this process decided and the inventory does not show yet, per Provider. Only makes a
 * race between two syncs of one replica rarer (the second sees the first's slot taken); what
 * makes placement correct across replicas is verifyPlacement.
 */
export class PlacementLedger {
  readonly #pending = new Map<string, Map<string, { placement: PendingPlacement; until: number }>>();

  add(provider: string, uid: string, placement: PendingPlacement, until: number): void {
    let entries = this.#pending.get(provider);
    if (entries === undefined) this.#pending.set(provider, (entries = new Map()));
    entries.set(uid, { placement, until });
  }

  release(provider: string, uid: string): void {
    this.#pending.get(provider)?.delete(uid);
  }

  /** The creates still pending: those the inventory lists, and those older than their window, are dropped. */
  pending(provider: string, inventory: Inventory, now: number): PendingPlacement[] {
    const entries = this.#pending.get(provider);
    if (entries === undefined) return [];
    const listed = new Set(inventory.hosts.flatMap((host) => (host.placed ?? []).map((vm) => vm.owner)));
    for (const [uid, entry] of entries) if (entry.until <= now || listed.has(uid)) entries.delete(uid);
    if (entries.size === 0) this.#pending.delete(provider);
    return [...entries.values()].map((entry) => entry.placement);
  }
}
