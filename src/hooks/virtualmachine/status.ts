// Step 5 of a sync: the whole status, every time (Metacontroller replaces .status with it).
// Deterministic: the same observation gives the same bytes, so a steady VM causes no writes.
import { Value } from '@sinclair/typebox/value';
import type { Condition } from '../../contracts/crds/common.js';
import type { TSchema } from '@sinclair/typebox';
import {
  CloneRecord,
  ConsoleURL,
  FailureRecord,
  HostName,
  LockRecord,
  ObservedHardware,
  PlacementStatus,
  RevertRecord,
  STATUS_LIMITS,
  ShutdownRecord,
  StatusIPs,
  TaskStatusRef,
  type VMPhase,
  type VirtualMachineStatus,
} from '../../contracts/crds/virtualmachine.js';
import type { ObservedVM } from '../../contracts/driver.js';
import { formatBytes } from '../../contracts/quantity.js';
import { conditionOf, previousConditions } from '../conditions.js';

/** What the previous status tells us; anything malformed is ignored, never trusted. */
export interface PreviousStatus {
  providerID: string | undefined;
  task: TaskStatusRef | undefined;
  restartHandled: string | undefined;
  revert: RevertRecord | undefined;
  clonedFrom: CloneRecord | undefined;
  failure: FailureRecord | undefined;
  gracefulShutdown: ShutdownRecord | undefined;
  lockHeld: LockRecord | undefined;
  placement: PlacementStatus | undefined;
  conditions: Condition[];
  raw: Record<string, unknown>;
}

/** Our own last answer, as Metacontroller hands it back: nothing in it is trusted beyond its schema. */
export function readPreviousStatus(status: Record<string, unknown> | undefined): PreviousStatus {
  const raw = status ?? {};
  const text = (key: string) => (typeof raw[key] === 'string' && raw[key] !== '' && (raw[key] as string).length <= 512 ? (raw[key] as string) : undefined);
  return {
    providerID: text('providerID'),
    task: Value.Check(TaskStatusRef, raw['task']) ? raw['task'] : undefined,
    restartHandled: text('restartRequest'),
    revert: Value.Check(RevertRecord, raw['revert']) ? raw['revert'] : undefined,
    clonedFrom: Value.Check(CloneRecord, raw['clonedFrom']) ? raw['clonedFrom'] : undefined,
    failure: Value.Check(FailureRecord, raw['failure']) ? raw['failure'] : undefined,
    gracefulShutdown: Value.Check(ShutdownRecord, raw['gracefulShutdown']) ? raw['gracefulShutdown'] : undefined,
    lockHeld: Value.Check(LockRecord, raw['lockHeld']) ? raw['lockHeld'] : undefined,
    placement: Value.Check(PlacementStatus, raw['placement']) ? raw['placement'] : undefined,
    conditions: previousConditions(raw),
    raw,
  };
}

export function observedHardware(vm: ObservedVM): ObservedHardware {
  const hardware: ObservedHardware = {
    cpus: vm.cpus,
    memory: formatBytes(vm.memoryBytes),
    firmware: vm.firmware,
    disks: [...vm.disks]
      .slice(0, STATUS_LIMITS.disks)
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((disk) => {
        const entry: ObservedHardware['disks'][number] = { name: disk.name, size: formatBytes(disk.sizeBytes) };
        if (disk.datastore !== undefined) entry.datastore = disk.datastore;
        if (disk.provisioning !== undefined) entry.provisioning = disk.provisioning;
        return entry;
      }),
    nics: [...vm.nics]
      .slice(0, STATUS_LIMITS.nics)
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((nic) => {
        const entry: ObservedHardware['nics'][number] = { name: nic.name };
        if (nic.mac !== undefined) entry.mac = nic.mac;
        if (nic.network !== undefined) entry.network = nic.network;
        if (nic.vlan !== undefined) entry.vlan = nic.vlan;
        if (nic.model !== undefined) entry.model = nic.model;
        if (nic.mtu !== undefined) entry.mtu = nic.mtu;
        if (nic.firewall !== undefined) entry.firewall = nic.firewall;
        if (nic.rateLimitMBps !== undefined) entry.rateLimitMBps = nic.rateLimitMBps;
        return entry;
      }),
    features: Object.entries(vm.features)
      .filter(([, on]) => on)
      .map(([feature]) => feature)
      .sort()
      .slice(0, STATUS_LIMITS.features),
  };
  if (vm.machine !== undefined) hardware.machine = vm.machine;
  return hardware;
}

export interface StatusInput {
  previous: PreviousStatus;
  /** The VM as just observed; undefined when it is not there or could not be looked at. */
  observed: ObservedVM | undefined;
  /** False when the hypervisor could not be asked: keep what the last status knew. */
  observedNow: boolean;
  providerID: string | undefined;
  task: TaskStatusRef | undefined;
  restartHandled: string | undefined;
  revert: RevertRecord | undefined;
  clonedFrom: CloneRecord | undefined;
  failure: FailureRecord | undefined;
  gracefulShutdown: ShutdownRecord | undefined;
  lockHeld: LockRecord | undefined;
  placement: PlacementStatus | undefined;
  conditions: Condition[];
  deleting: boolean;
  generation: number | undefined;
}

/** What the last status knew of the VM, each checked against its schema before it is repeated. */
const CARRIED_OVER: readonly [key: string, schema: TSchema][] = [
  ['ips', StatusIPs],
  ['consoleURL', ConsoleURL],
  ['host', HostName],
  ['hardware', ObservedHardware],
];

export function buildStatus(input: StatusInput): VirtualMachineStatus {
  const status: VirtualMachineStatus = {};
  const { observed } = input;
  if (input.providerID !== undefined) status.providerID = input.providerID;
  status.phase = phaseOf(input);
  if (observed) {
    status.powerState = observed.powerState;
    status.ips = observed.ips.slice(0, STATUS_LIMITS.ips);
    if (observed.consoleURL !== undefined) status.consoleURL = observed.consoleURL;
    if (observed.host !== undefined) status.host = observed.host;
    status.hardware = observedHardware(observed);
  } else if (!input.observedNow) {
    // The hypervisor did not answer: what we knew stays, the power state becomes unknown.
    status.powerState = 'Unknown';
    for (const [key, schema] of CARRIED_OVER) {
      const value = input.previous.raw[key];
      if (value !== undefined && Value.Check(schema, value)) (status as Record<string, unknown>)[key] = value;
    }
  }
  if (input.task) status.task = input.task;
  if (input.restartHandled !== undefined) status.restartRequest = input.restartHandled;
  if (input.revert !== undefined) status.revert = input.revert;
  if (input.clonedFrom !== undefined) status.clonedFrom = input.clonedFrom;
  if (input.failure !== undefined) status.failure = input.failure;
  if (input.gracefulShutdown !== undefined) status.gracefulShutdown = input.gracefulShutdown;
  if (input.lockHeld !== undefined) status.lockHeld = input.lockHeld;
  if (input.placement !== undefined) status.placement = input.placement;
  status.conditions = input.conditions;
  if (input.generation !== undefined) status.observedGeneration = input.generation;
  return status;
}

function phaseOf(input: StatusInput): VMPhase {
  if (input.deleting) return 'Deleting';
  const ready = conditionOf(input.conditions, 'Ready');
  const provisioned = conditionOf(input.conditions, 'Provisioned');
  const configured = conditionOf(input.conditions, 'Configured');
  const observed = input.observed;
  if (!observed) {
    if (input.task?.operation === 'Create' || provisioned?.reason === 'Creating' || provisioned?.reason === 'Recreating') {
      return 'Provisioning';
    }
    if (ready && TERMINAL_REASONS.has(ready.reason)) return 'Failed';
    return 'Pending';
  }
  if (observed.lock === 'create' || observed.incomplete) return 'Provisioning';
  if (configured?.reason === 'Reconfiguring' || input.task?.operation === 'Reconfigure' || input.task?.operation === 'ResizeDisk' || input.task?.operation === 'Revert') {
    return 'Reconfiguring';
  }
  if (observed.powerState === 'On') return 'Running';
  if (observed.powerState === 'Off') return 'Stopped';
  if (observed.powerState === 'Suspended') return 'Suspended';
  return 'Pending';
}

/** Ready reasons that will not clear without someone changing something. */
export const TERMINAL_REASONS = new Set([
  'InvalidSpec',
  'Unsupported',
  'ClassInvalid',
  'ImageInvalid',
  'NetworkInvalid',
  'ProviderInvalid',
  'SecretInvalid',
  'CreateFailed',
  'NameConflict',
  'Unauthorized',
]);
