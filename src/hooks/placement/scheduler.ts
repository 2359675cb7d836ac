// The placement scheduler: which host a new VM goes to, or why none fits. Pure and table-tested
// (test/hooks/placement/scheduler.test.ts). Candidates are the hosts of the driver's inventory with
// the VMs on them (their placement labels included) and the creates still in flight; hard rules
// filter them, preferred rules and free capacity score what is left, and ties go to the host whose
// name sorts first, so every replica of the hook server decides alike on the same inputs.
import type { LabelRequirement, PlacementRules } from '../../contracts/placement.js';
import { formatBytes } from '../../contracts/quantity.js';

export type { LabelRequirement, PlacementRules, WeightedRequirement } from '../../contracts/placement.js';

/** A VM on a host, as the inventory reports it: its name and the labels recorded at create. */
export interface PlacedVM {
  name: string;
  labels: Readonly<Record<string, string>>;
}

export interface HostState {
  name: string;
  cpus: number;
  memoryBytes: number;
  cpusAllocated: number;
  memoryAllocatedBytes: number;
  vms: readonly PlacedVM[];
  /** False: the Provider's configuration keeps new VMs off it (the outer bound of every policy). */
  selectable?: boolean;
  /** Its cluster, when the hypervisor groups hosts so (vSphere). */
  cluster?: string;
}

export interface PlacementRequest {
  cpus: number;
  memoryBytes: number;
  /** The new VM's own labels: spreadBy compares them with the labels of the VMs on each host. */
  labels: Readonly<Record<string, string>>;
  /** spec.placement.host: checked against the hard rules, never replaced by another host. */
  host?: string;
  /** spec.placement.cluster (or the class's): only hosts of that cluster qualify. */
  cluster?: string;
}

/** A create decided but not yet in the inventory: it counts where it goes. */
export interface PendingPlacement {
  host: string;
  vm: PlacedVM;
  cpus: number;
  memoryBytes: number;
}

export type Decision = { ok: true; host: string; why: string } | { ok: false; why: string };

export function matches(labels: Readonly<Record<string, string>>, requirement: LabelRequirement): boolean {
  const value = labels[requirement.key];
  const values = requirement.values ?? [];
  switch (requirement.operator) {
    case 'In':
      return value !== undefined && values.includes(value);
    case 'NotIn':
      return value === undefined || !values.includes(value);
    case 'Exists':
      return value !== undefined;
    case 'DoesNotExist':
      return value === undefined;
  }
}

export function describeRequirement(requirement: LabelRequirement): string {
  const values = requirement.values && requirement.values.length > 0 ? ` [${requirement.values.join(', ')}]` : '';
  return `${requirement.key} ${requirement.operator}${values}`;
}

/** The hosts with the pending creates added to them. */
function withPending(hosts: readonly HostState[], pending: readonly PendingPlacement[]): HostState[] {
  return hosts.map((host) => {
    const mine = pending.filter((placement) => placement.host === host.name && !host.vms.some((vm) => vm.name === placement.vm.name));
    if (mine.length === 0) return host;
    return {
      ...host,
      cpusAllocated: host.cpusAllocated + mine.reduce((sum, placement) => sum + placement.cpus, 0),
      memoryAllocatedBytes: host.memoryAllocatedBytes + mine.reduce((sum, placement) => sum + placement.memoryBytes, 0),
      vms: [...host.vms, ...mine.map((placement) => placement.vm)],
    };
  });
}

/** A name, or the last step of an inventory path (`/DC0/host/C0` is C0). */
export function lastSegment(value: string): string {
  return value.split('/').filter((step) => step !== '').pop() ?? value;
}

/** Why `host` cannot take the VM under the hard rules, or undefined when it can. */
export function hardRuleViolation(host: HostState, rules: PlacementRules, request: PlacementRequest): string | undefined {
  if (host.selectable === false) return 'outside the Provider\'s node selection';
  if (request.cluster !== undefined && host.cluster !== lastSegment(request.cluster)) return `not in cluster ${request.cluster}`;
  if (rules.nodeSelector !== undefined && !rules.nodeSelector.includes(host.name)) return 'not in nodeSelector';
  if (rules.maxVMsPerNode !== undefined && host.vms.length >= rules.maxVMsPerNode) return `maxVMsPerNode ${rules.maxVMsPerNode} reached`;
  const hostLimit = rules.maxVMsByHost?.[host.name];
  if (hostLimit !== undefined && host.vms.length >= hostLimit) return `maxVMs ${hostLimit} reached`;
  const freeMemory = host.memoryBytes - host.memoryAllocatedBytes - request.memoryBytes;
  if (freeMemory < 0) return `${formatBytes(Math.max(0, host.memoryBytes - host.memoryAllocatedBytes))} free < ${formatBytes(request.memoryBytes)} asked`;
  if (rules.minFreeMemoryBytes !== undefined && freeMemory < rules.minFreeMemoryBytes) {
    return `${formatBytes(freeMemory)} free after it < minFreeMemory ${formatBytes(rules.minFreeMemoryBytes)}`;
  }
  const freeCPU = host.cpus - host.cpusAllocated - request.cpus;
  if (rules.minFreeCPU !== undefined && freeCPU < rules.minFreeCPU) return `${Math.max(0, freeCPU)} CPUs free after it < minFreeCPU ${rules.minFreeCPU}`;
  for (const requirement of rules.antiAffinity) {
    const clash = host.vms.find((vm) => matches(vm.labels, requirement));
    if (clash) return `antiAffinity ${describeRequirement(requirement)} (VM ${clash.name})`;
  }
  for (const requirement of rules.affinity) {
    if (!host.vms.some((vm) => matches(vm.labels, requirement))) return `affinity ${describeRequirement(requirement)}: no such VM here`;
  }
  return undefined;
}

type Score = [number, number, number, number];

/**
 * How good a host is, compared in order: the preferred rules' weights, fewer VMs sharing the new
 * VM's spreadBy values, the share of its memory left free (whole percent), then fewer VMs.
 */
function score(host: HostState, rules: PlacementRules, request: PlacementRequest): Score {
  let preferred = 0;
  for (const rule of rules.preferredAffinity) if (host.vms.some((vm) => matches(vm.labels, rule))) preferred += rule.weight;
  for (const rule of rules.preferredAntiAffinity) if (!host.vms.some((vm) => matches(vm.labels, rule))) preferred += rule.weight;
  let peers = 0;
  for (const key of rules.spreadBy) {
    const value = request.labels[key];
    if (value !== undefined) peers += host.vms.filter((vm) => vm.labels[key] === value).length;
  }
  const free = host.memoryBytes > 0 ? Math.round(((host.memoryBytes - host.memoryAllocatedBytes - request.memoryBytes) / host.memoryBytes) * 100) : 0;
  return [preferred, -peers, free, -host.vms.length];
}

function better(a: Score, b: Score): boolean {
  for (let i = 0; i < a.length; i += 1) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  return false;
}

/** The host for a new VM, or one line naming, host by host, why none fits. */
export function schedule(hostsNow: readonly HostState[], rules: PlacementRules, request: PlacementRequest, pending: readonly PendingPlacement[] = []): Decision {
  const hosts = withPending(hostsNow, pending).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (hosts.length === 0) return { ok: false, why: 'the provider reports no hosts' };
  if (request.host !== undefined) {
    const host = hosts.find((candidate) => candidate.name === request.host);
    if (!host) return { ok: false, why: `spec.placement.host ${request.host} is not a host of the provider` };
    const violation = hardRuleViolation(host, rules, request);
    return violation === undefined ? { ok: true, host: host.name, why: 'spec.placement.host, within the policy' } : { ok: false, why: `${host.name}: ${violation}` };
  }
  const verdicts = hosts.map((host) => ({ host, violation: hardRuleViolation(host, rules, request) }));
  const fitting = verdicts.filter((verdict) => verdict.violation === undefined).map((verdict) => verdict.host);
  if (fitting.length === 0) return { ok: false, why: verdicts.map((verdict) => `${verdict.host.name}: ${verdict.violation ?? ''}`).join('; ') };
  let best = fitting[0] as HostState;
  let bestScore = score(best, rules, request);
  for (const host of fitting.slice(1)) {
    const candidate = score(host, rules, request);
    if (better(candidate, bestScore)) {
      best = host;
      bestScore = candidate;
    }
  }
  const why = fitting.length === 1 ? `${best.name} is the only host that fits` : `${best.name} scores highest of ${fitting.length} hosts that fit`;
  return { ok: true, host: best.name, why };
}
