// The Machine controller: the Viti API's front-end on the VirtualMachine engine. A Machine and its
// ProxmoxCluster translate into the desired VM the engine plans from (desiredMachine); observe,
// plan, act, identity and delete are the engine's (virtualmachine/), and the engine's VM-shaped
// status is kept whole in status.virtualMachine, from which the seed's fields are derived.
import { Value } from '@sinclair/typebox/value';
import { VITI_API_VERSION, type Condition } from '../../contracts/crds/common.js';
import {
  CLUSTER_LABEL,
  MACHINE_DISK_SIZE_PATTERN,
  OPERATOR_VMID_RANGE,
  ProxmoxNodeObject,
  type MachineObject,
  type MachinePhase,
  type MachineStatus,
  type ProxmoxClusterObject,
} from '../../contracts/crds/viti.js';
import { VirtualMachineStatus } from '../../contracts/crds/virtualmachine.js';
import { isDriverError, settingsAsked, type Capability, type CreateSpec, type DiskSpec, type Inventory, type NicSpec, type ProviderTarget, type VMSettings } from '../../contracts/driver.js';
import { objectsOfKind, type CustomizeResponse, type ObjectsByType, type SyncRequestBody, type SyncResponse } from '../../contracts/metacontroller.js';
import type { CanonicalPolicy } from '../../contracts/normalize/vmplacementpolicy.js';
import { buildConditions, conditionOf, previousConditions, type ConditionUpdate } from '../conditions.js';
import { reportDriverError } from '../driver-errors.js';
import { rfc3339 } from '../time.js';
import { VMHookContext, type VMHookDeps } from '../virtualmachine/context.js';
import { deleteVM } from '../virtualmachine/finalize.js';
import { observe, recordedTaskRuns, type Observation } from '../virtualmachine/observe.js';
import { RESYNC } from '../virtualmachine/plan.js';
import type { ResolvedVM } from '../virtualmachine/resolve.js';
import { MAX_BACKOFF_SECONDS, backingOff, currentFailure, nextAttemptAt } from '../virtualmachine/retry.js';
import { planAndAct } from '../virtualmachine/sync.js';
import { clusterReady, clusterTarget, relatedCluster, type VitiSettings } from './cluster.js';

export interface MachineHookDeps extends VMHookDeps {
  viti: VitiSettings;
}

const MiB = 1024 * 1024;
const DEFAULT_MEMORY = 512 * MiB;
/** Stopped with stopMode Shutdown: the guest gets this long before the VM is stopped. */
const SHUTDOWN_TIMEOUT_MS = 5 * 60 * 1000;
const UNITS: Record<string, number> = { K: 1024, M: MiB, G: 1024 * MiB, T: 1024 * 1024 * MiB };

/** The ProxmoxCluster of a Machine: its label, else PROXMOX_DEFAULT_CLUSTER. */
export function machineClusterName(machine: Pick<MachineObject, 'metadata'>, settings: VitiSettings): string | undefined {
  return machine.metadata.labels?.[CLUSTER_LABEL] ?? settings.defaultCluster;
}

/** Every ProxmoxCluster and ProxmoxNode (few objects; a relabelled Machine needs no new customize answer). */
export function customizeMachine(): CustomizeResponse {
  return {
    relatedResources: [
      { apiVersion: VITI_API_VERSION, resource: 'proxmoxclusters', labelSelector: {} },
      { apiVersion: VITI_API_VERSION, resource: 'proxmoxnodes', labelSelector: {} },
    ],
  };
}

/** A disk size as PVE writes it (binary units, a bare number in GiB), in bytes. */
export function machineDiskBytes(size: string): number | undefined {
  const match = new RegExp(MACHINE_DISK_SIZE_PATTERN).exec(size) ? /^([0-9]+)([KMGT])?/.exec(size) : null;
  if (!match) return undefined;
  return Number(match[1]) * UNITS[match[2] ?? 'G']!;
}

type Refusal = { ok: false; reason: string; message: string; condition: 'ResourcesAllocated' | 'NetworkConfigured' | 'VMCreated' };

/** The desired VM of a Machine, or why there can be none. Pure. */
export function desiredMachine(machine: MachineObject, cluster: ProxmoxClusterObject, provider: ProviderTarget, context: Pick<VMHookContext, 'identity'>): { ok: true; vm: ResolvedVM } | Refusal {
  const spec = machine.spec;
  if (spec.cpu?.threadsPerCore === 2) {
    return refusal('Unsupported', 'spec.cpu.threadsPerCore 2: PVE\'s API has no threads-per-core setting (only root@pam\'s raw QEMU args); set 1 or leave it unset', 'ResourcesAllocated');
  }
  const cores = spec.cpu?.cores ?? 1;
  const sockets = spec.cpu?.sockets ?? 1;
  const disks: DiskSpec[] = [];
  for (const [index, disk] of (spec.disks ?? []).entries()) {
    const sizeBytes = machineDiskBytes(disk.size);
    if (sizeBytes === undefined) return refusal('InvalidSpec', `spec.disks ${disk.name}: size ${disk.size} is not a size`, 'ResourcesAllocated');
    const allowed = cluster.spec.storages;
    if (disk.storage !== undefined && allowed !== undefined && !allowed.includes(disk.storage)) {
      return refusal('StorageNotAllowed', `storage '${disk.storage}' of disk ${disk.name} is not among ProxmoxCluster ${cluster.metadata.name}'s storages (${allowed.join(', ')})`, 'ResourcesAllocated');
    }
    const entry: DiskSpec = { name: disk.name, sizeBytes, root: index === 0 };
    if (disk.type !== undefined) entry.bus = disk.type;
    if (disk.cache !== undefined) entry.cache = disk.cache;
    if (disk.format !== undefined) entry.format = disk.format;
    if (disk.storage !== undefined) entry.datastore = disk.storage;
    disks.push(entry);
  }
  const nics: NicSpec[] = [];
  for (const network of spec.networks ?? []) {
    const allowed = cluster.spec.networks;
    if (allowed !== undefined && !allowed.includes(network.bridge)) {
      return refusal('NetworkNotAllowed', `bridge '${network.bridge}' of NIC ${network.name} is not among ProxmoxCluster ${cluster.metadata.name}'s networks (${allowed.join(', ')})`, 'NetworkConfigured');
    }
    const nic: NicSpec = { name: network.name, bridge: network.bridge };
    if (network.model !== undefined) nic.model = network.model;
    if (network.macAddress !== undefined) nic.mac = network.macAddress.toLowerCase();
    if (network.vlan !== undefined) nic.vlan = network.vlan;
    if (network.firewall !== undefined) nic.firewall = network.firewall;
    nics.push(nic);
  }
  const settings: VMSettings = { cpuTopology: { sockets, cores } };
  if (spec.osType !== undefined) settings.osType = spec.osType;
  if (spec.bootOrder !== undefined) settings.bootOrder = [...spec.bootOrder];
  if (spec.agent !== undefined) settings.guestAgent = spec.agent;
  if (spec.balloon !== undefined) settings.balloon = spec.balloon;
  if (spec.protection !== undefined) settings.protection = spec.protection;

  const create: CreateSpec = {
    name: spec.name ?? machine.metadata.name,
    owner: context.identity,
    cpus: cores * sockets,
    memoryBytes: Math.floor((spec.memory ?? DEFAULT_MEMORY) / MiB) * MiB,
    features: { tpm: false, secureBoot: false, nestedVirtualization: false, cpuHotAdd: false, memoryHotAdd: false },
    image: spec.template !== undefined ? { kind: 'template', ref: spec.template, fullClone: true } : { kind: 'blank' },
    disks,
    storage: { provisioning: 'thin', ...(disks[0]?.datastore !== undefined ? { datastore: disks[0].datastore } : {}) },
    nics,
    placement: spec.node !== undefined ? { host: spec.node } : {},
    settings,
  };
  if (spec.vmid !== undefined) create.requestedId = spec.vmid;
  else create.idRange = { ...OPERATOR_VMID_RANGE };

  const vm: ResolvedVM = {
    identity: context.identity,
    provider,
    create,
    powerState: POWER[spec.powerState ?? 'Running'] ?? (spec.stopMode === 'Stop' ? 'Off' : 'OffGraceful'),
    shutdownTimeoutMs: SHUTDOWN_TIMEOUT_MS,
    powerCyclePolicy: 'Manual',
    deletionPolicy: 'Delete',
    offlineGrowth: [],
  };
  if (spec.restartRequest !== undefined) vm.restartRequest = spec.restartRequest;
  if (spec.restartMode !== undefined) vm.restartMode = spec.restartMode;
  return { ok: true, vm };
}

/** Running and Suspended as the engine's power states; Stopped depends on stopMode. */
const POWER: Partial<Record<NonNullable<MachineObject['spec']['powerState']>, ResolvedVM['powerState']>> = { Running: 'On', Suspended: 'Suspended' };

/** What the Machine's power fields ask of the driver, each with the words to name it. */
function powerAsked(vm: ResolvedVM): [Capability, string][] {
  const asked: [Capability, string][] = [];
  if (vm.powerState === 'Suspended') asked.push(['suspend', 'powerState Suspended']);
  if (vm.restartMode === 'Reset') asked.push(['hardReset', 'restartMode Reset']);
  return asked;
}

function refusal(reason: string, message: string, condition: Refusal['condition']): Refusal {
  return { ok: false, reason, message, condition };
}

/**
 * Where the Machine may go, as a placement policy the engine decides and verifies across replicas:
 * its node or the cluster's allowed nodes, memory that fits, and each ProxmoxNode's maxVMs.
 */
export function machinePolicy(machine: MachineObject, cluster: ProxmoxClusterObject, related: ObjectsByType | undefined): { policy: string; value: CanonicalPolicy } {
  const maxVMsByHost: Record<string, number> = {};
  for (const object of objectsOfKind(related, VITI_API_VERSION, 'ProxmoxNode')) {
    if (!Value.Check(ProxmoxNodeObject, object)) continue;
    if (object.spec.cluster !== cluster.metadata.name || object.spec.maxVMs === undefined) continue;
    // Two ProxmoxNodes for one node: the lower limit holds.
    maxVMsByHost[object.spec.nodeName] = Math.min(object.spec.maxVMs, maxVMsByHost[object.spec.nodeName] ?? Number.MAX_SAFE_INTEGER);
  }
  const nodeSelector = machine.spec.node !== undefined ? [machine.spec.node] : cluster.spec.nodes;
  const value: CanonicalPolicy = {
    rules: {
      affinity: [],
      antiAffinity: [],
      preferredAffinity: [],
      preferredAntiAffinity: [],
      spreadBy: [],
      ...(nodeSelector !== undefined ? { nodeSelector: [...nodeSelector] } : {}),
      ...(Object.keys(maxVMsByHost).length > 0 ? { maxVMsByHost } : {}),
    },
  };
  return { policy: `ProxmoxCluster ${cluster.metadata.name}`, value };
}

/** The seed's error table, checked against the cluster's inventory before anything is created. */
export function inventoryProblem(create: CreateSpec, inventory: Inventory): Refusal | undefined {
  const host = create.placement.host;
  if (host !== undefined && !inventory.hosts.some((candidate) => candidate.name === host)) {
    return refusal('NodeNotFound', `node '${host}' not found (or not online)`, 'ResourcesAllocated');
  }
  const storages = new Set(inventory.datastores.map((datastore) => datastore.name));
  for (const disk of create.disks) {
    if (disk.datastore !== undefined && !storages.has(disk.datastore)) return refusal('StorageNotFound', `storage '${disk.datastore}' not found`, 'ResourcesAllocated');
  }
  const bridges = new Set(inventory.networks);
  for (const nic of create.nics) {
    // Other names may be SDN vnets, which the bridge lists do not show: PVE judges those.
    if (nic.bridge !== undefined && /^vmbr\d+$/.test(nic.bridge) && !bridges.has(nic.bridge)) return refusal('BridgeNotFound', `bridge '${nic.bridge}' not found`, 'NetworkConfigured');
  }
  return undefined;
}

function condition(type: string, status: boolean | 'Unknown', reason: string, message: string): ConditionUpdate {
  return { type, status, reason, message };
}

function engineStatus(machine: MachineObject): Record<string, unknown> | undefined {
  const kept = machine.status?.['virtualMachine'];
  return kept !== null && typeof kept === 'object' && !Array.isArray(kept) ? (kept as Record<string, unknown>) : undefined;
}

/** The engine's view of a Machine: its metadata and the VM-shaped status it wrote last time. */
function machineContext(machine: MachineObject, deps: MachineHookDeps, signal?: AbortSignal): VMHookContext {
  return new VMHookContext({ metadata: machine.metadata, status: engineStatus(machine) }, deps, signal);
}

export async function syncMachine(request: SyncRequestBody<MachineObject>, deps: MachineHookDeps, signal?: AbortSignal): Promise<SyncResponse> {
  const machine = request.parent;
  const context = machineContext(machine, deps, signal);
  const clusterName = machineClusterName(machine, deps.viti);
  const answer = (response: SyncResponse, extra: ConditionUpdate[] = []) => machineResponse(machine, response, deps, clusterName, extra);
  if (clusterName === undefined) {
    return answer(context.unobserved('ClusterNotSpecified', `label ${CLUSTER_LABEL} names no ProxmoxCluster and PROXMOX_DEFAULT_CLUSTER is not set`));
  }
  const found = relatedCluster(request.related, clusterName);
  if (!found.ok) return answer(context.unobserved(found.reason, found.message));
  const cluster = found.cluster;
  if (!clusterReady(cluster)) return answer(context.unobserved('ClusterNotReady', `ProxmoxCluster ${clusterName} has not answered its health check yet`, true));
  const provider = clusterTarget(cluster, deps.viti);
  const driver = await context.driverFor(provider);
  if (!driver.ok) return answer(context.unobserved(driver.reason, driver.message));
  const calls = context.calls(driver.driver, provider);

  const desired = desiredMachine(machine, cluster, provider, context);
  if (!desired.ok) return answer(refuse(context, undefined, desired), [condition(desired.condition, false, desired.reason, desired.message)]);
  const missing = [...settingsAsked(desired.vm.create), ...powerAsked(desired.vm)].find(([capability]) => !driver.driver.capabilities[capability]);
  if (missing) {
    const message = `the ${driver.driver.type} driver of ProxmoxCluster ${clusterName} cannot set ${missing[1]} (capability ${missing[0]})`;
    return answer(context.unobserved('Unsupported', message, false, 'observe'));
  }

  let observation: Observation;
  try {
    observation = await observe(calls, context.identity, context.previous);
  } catch (error) {
    const failure = reportDriverError(error, 'looking up the VM');
    const followTask = isDriverError(error) && error.code === 'Busy' && (await recordedTaskRuns(calls, context.previous.task));
    return answer(context.unobserved(failure.reason, failure.message, failure.retryable, 'observe', followTask ? RESYNC.task : undefined));
  }
  context.trackTask(provider, observation);

  const running = observation.task?.status?.state === 'queued' || observation.task?.status?.state === 'running';
  // While a failed create waits out its back-off the engine will not try it: nothing to check yet.
  const waiting = backingOff(currentFailure(context.previous.failure, machine.metadata.generation), 'Create', context.now) !== undefined;
  if (observation.vm === undefined && !running && !waiting && !context.deleting) {
    // The error table's cases are named before PVE is asked to create anything.
    let inventory: Inventory;
    try {
      inventory = await calls.inventory();
    } catch (error) {
      const failure = reportDriverError(error, 'reading the cluster\'s inventory');
      return answer(context.unobserved(failure.reason, failure.message, failure.retryable, 'observe'));
    }
    const problem = inventoryProblem(desired.vm.create, inventory);
    if (problem) return answer(refuse(context, observation, problem), [condition(problem.condition, false, problem.reason, problem.message)]);
  }
  return answer(await planAndAct(context, deps, calls, observation, desired.vm, machinePolicy(machine, cluster, request.related)));
}

/**
 * A Machine that cannot be made as written: nothing is created. It is looked at again when its spec
 * changes, and otherwise only after the back-off cap (what it waits for — a storage, a bridge, a
 * node — is an admin's change on the cluster, not something a quick retry finds).
 */
function refuse(context: VMHookContext, observation: Observation | undefined, why: { reason: string; message: string }): SyncResponse {
  const vm = observation?.vm;
  return context.respond(
    vm,
    [
      condition('Ready', false, why.reason, why.message),
      condition('ReferencesResolved', false, why.reason, why.message),
      vm ? condition('Provisioned', true, 'Created', `VM ${vm.id}`) : condition('Provisioned', false, 'NotCreated', `the VM does not exist; ${why.message}`),
      condition('Configured', 'Unknown', 'NotResolved', why.message),
      condition('PowerSynced', 'Unknown', 'NotResolved', why.message),
    ],
    { resyncAfterSeconds: MAX_BACKOFF_SECONDS, task: undefined, failure: context.previous.failure },
    observation !== undefined,
  );
}

export async function finalizeMachine(request: SyncRequestBody<MachineObject>, deps: MachineHookDeps, signal?: AbortSignal): Promise<SyncResponse> {
  const machine = request.parent;
  const context = machineContext(machine, deps, signal);
  const clusterName = machineClusterName(machine, deps.viti);
  const answer = (response: SyncResponse) => machineResponse(machine, response, deps, clusterName, []);
  const found = clusterName === undefined ? undefined : relatedCluster(request.related, clusterName);
  if (found === undefined || !found.ok) {
    const message = `cannot delete the VM: ${found?.message ?? `label ${CLUSTER_LABEL} names no ProxmoxCluster`}`;
    const previous = context.previous;
    return answer(
      context.respond(undefined, [condition('Ready', false, found?.reason ?? 'ClusterNotSpecified', message), condition('Provisioned', false, found?.reason ?? 'ClusterNotSpecified', message)], {
        task: previous.task,
        providerID: previous.providerID,
        failure: previous.failure,
        resyncAfterSeconds: 30,
        finalized: false,
      }, false),
    );
  }
  const protection = machine.spec.protection;
  return answer(
    await deleteVM(context, deps, clusterTarget(found.cluster, deps.viti), {
      ...(protection !== undefined ? { protection } : {}),
      liftProtection: `set spec.protection to false on Machine ${machine.metadata.name} (kubectl patch machine ${machine.metadata.name} --type merge -p '{"spec":{"protection":false}}')`,
    }),
  );
}

const PHASES: Record<string, MachinePhase> = {
  Pending: 'Pending',
  Provisioning: 'Creating',
  Running: 'Running',
  Stopped: 'Stopped',
  Failed: 'Error',
};

/** The engine's answer with the Machine's status derived from it (the engine's kept whole in status.virtualMachine). */
function machineResponse(machine: MachineObject, response: SyncResponse, deps: MachineHookDeps, cluster: string | undefined, extra: ConditionUpdate[]): SyncResponse {
  const engine = response.status ?? {};
  const vm = Value.Check(VirtualMachineStatus, engine) ? engine : {};
  const now = deps.clock.now();
  const previous = machine.status ?? {};
  const conditions = vm.conditions ?? [];
  const of = (type: string) => conditionOf(conditions, type);
  const ready = of('Ready');
  const provisioned = of('Provisioned');

  const updates: ConditionUpdate[] = [
    ready ? condition('Ready', statusOf(ready), ready.reason, ready.message) : condition('Ready', false, 'Pending', 'not synced yet'),
  ];
  const failure = vm.failure;
  const created = provisioned?.status === 'True';
  const failedCreate = !created && (failure?.operation === 'Create' || (ready !== undefined && ready.status === 'False' && TERMINAL.has(ready.reason)));
  updates.push(
    created
      ? condition('VMCreated', true, 'CreationSucceeded', provisioned.message)
      : failedCreate
        ? condition('VMCreated', false, 'CreationFailed', failure?.message ?? ready?.message ?? 'creation failed')
        : condition('VMCreated', false, provisioned?.reason ?? 'NotCreated', provisioned?.message ?? 'the VM does not exist yet'),
  );
  const placed = of('Placed');
  const allocation = extra.find((update) => update.type === 'ResourcesAllocated');
  updates.push(
    allocation
      ? { ...allocation, status: false, reason: allocation.reason === 'Unsupported' ? 'Unsupported' : 'InsufficientResources' }
      : ready?.reason === 'Unschedulable'
        ? condition('ResourcesAllocated', false, 'InsufficientResources', `insufficient resources on node: ${ready.message.replace(/^no host fits: /, '')}`)
        : created
          ? condition('ResourcesAllocated', true, 'AllocationSucceeded', vm.host !== undefined ? `on node ${vm.host}` : provisioned.message)
          : placed !== undefined
            ? condition('ResourcesAllocated', placed.status === 'True' ? true : 'Unknown', placed.status === 'True' ? 'AllocationSucceeded' : placed.reason, placed.message)
            : condition('ResourcesAllocated', 'Unknown', 'NotAllocated', 'no node chosen yet'),
  );
  const network = extra.find((update) => update.type === 'NetworkConfigured');
  updates.push(network ? { ...network, status: false, reason: 'NetworkError' } : networkCondition(machine, vm));
  for (const update of extra) if (update.type === 'VMCreated') updates[1] = { ...update, status: false, reason: 'CreationFailed' };

  const status: MachineStatus = {};
  // A suspended VM is not running: the seed's phases have no Suspended (status.virtualMachine.powerState says it).
  const byPower = vm.powerState === 'On' ? 'Running' : vm.powerState === 'Off' || vm.powerState === 'Suspended' ? 'Stopped' : 'Pending';
  const phase = vm.phase === 'Reconfiguring' || vm.phase === 'Deleting' || vm.powerState === 'Suspended' ? byPower : PHASES[vm.phase ?? 'Pending'];
  status.phase = ready?.status === 'False' && TERMINAL.has(ready.reason) && !created ? 'Error' : (phase ?? 'Pending');
  if (vm.providerID !== undefined && /^[0-9]+$/.test(vm.providerID)) status.vmid = Number(vm.providerID);
  if (vm.host !== undefined) status.node = vm.host;
  if (vm.ips !== undefined && vm.ips.length > 0) status.ipAddresses = [...vm.ips];
  if (cluster !== undefined) status.cluster = cluster;
  if (failure !== undefined && failure.retryable) {
    status.nextRetryAt = rfc3339(nextAttemptAt(failure));
    status.retryCount = failure.count;
  }
  status.conditions = buildConditions(previousConditions(previous), updates, now, machine.metadata.generation);
  if (machine.metadata.generation !== undefined) status.observedGeneration = machine.metadata.generation;
  status.virtualMachine = vm;
  status.lastUpdated = lastUpdated(previous, status, now);
  countError(machine, status.conditions, failure, deps);
  return { ...response, status: status as Record<string, unknown> };
}

/** Reasons that do not clear without someone changing something (the engine's, and ours). */
const TERMINAL = new Set(['InvalidSpec', 'Unsupported', 'NameConflict', 'Unauthorized', 'StorageNotFound', 'BridgeNotFound', 'NodeNotFound', 'StorageNotAllowed', 'NetworkNotAllowed', 'CreateFailed']);

function statusOf(condition: Condition): boolean | 'Unknown' {
  return condition.status === 'Unknown' ? 'Unknown' : condition.status === 'True';
}

function networkCondition(machine: MachineObject, vm: VirtualMachineStatus): ConditionUpdate {
  const wanted = machine.spec.networks ?? [];
  const nics = vm.hardware?.nics;
  if (nics === undefined) return condition('NetworkConfigured', 'Unknown', 'NotCreated', 'the VM does not exist yet');
  const missing = wanted.filter((nic) => !nics.some((seen) => seen.name === nic.name && (seen.network === undefined || seen.network === nic.bridge)));
  if (missing.length > 0) return condition('NetworkConfigured', false, 'NetworkError', `NIC(s) not as specified: ${missing.map((nic) => `${nic.name} on ${nic.bridge}`).join(', ')}`);
  const described = wanted.map((nic) => `${nic.name} on ${nic.bridge}${nic.vlan !== undefined ? ` (VLAN ${nic.vlan})` : ''}`).join(', ');
  return condition('NetworkConfigured', true, 'NetworkReady', wanted.length > 0 ? described : 'no NICs asked for');
}

/** lastUpdated moves only when something else in the status did (a steady sync writes the same bytes). */
function lastUpdated(previous: Record<string, unknown>, status: MachineStatus, now: number): string {
  const { lastUpdated: before, ...rest } = previous;
  const { lastUpdated: _unused, ...current } = status;
  if (typeof before === 'string' && JSON.stringify(rest) === JSON.stringify(current)) return before;
  return rfc3339(now);
}

/** proxmox_operator_errors_total: once per failed attempt or newly reported error, not per sync that repeats it. */
function countError(machine: MachineObject, conditions: Condition[], failure: unknown, deps: MachineHookDeps): void {
  const ready = conditionOf(conditions, 'Ready');
  if (ready === undefined || ready.status !== 'False' || !ERROR_REASONS.has(ready.reason)) return;
  const before = conditionOf(previousConditions(machine.status), 'Ready');
  const failureBefore = engineStatus(machine)?.['failure'];
  const repeated = before?.status === 'False' && before.reason === ready.reason && JSON.stringify(failureBefore) === JSON.stringify(failure);
  if (!repeated) deps.metrics.vitiErrors.inc({ error_type: ready.reason, controller: 'machine' });
}

const ERROR_REASONS = new Set([
  ...TERMINAL,
  'Conflict',
  'HypervisorBusy',
  'HypervisorUnreachable',
  'HypervisorError',
  'NotOwned',
  'Unschedulable',
  'ClusterNotFound',
  'ClusterInvalid',
  'ProviderUnavailable',
  'DeleteFailed',
]);
