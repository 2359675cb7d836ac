// Verbs that change a VM in place: power, reconfigure (CPU/memory), resizeDisk.

import {
  ConflictError,
  InvalidSpecError,
  TAG_PATTERN,
  UnsupportedError,
  type Capability,
  type PowerOperation,
  type ResourceChange,
  type Started,
  type VMRef,
} from '../../contracts/driver.js';
import { formatBytes } from '../../contracts/quantity.js';
import { powerDown } from './lifecycle.js';
import type { VMRecord } from './model.js';
import type { SimWorld } from './world.js';

export function powerVM(world: SimWorld, ref: VMRef, operation: PowerOperation, failWith?: string): Started {
  const vm = world.requireIdle(ref);
  const failure = failWith === undefined ? {} : { failWith };
  switch (operation) {
    case 'on': {
      if (vm.powerState === 'On') return {};
      if (vm.powerState === 'Suspended') return resume(world, vm, failWith);
      const task = world.startTask({
        vm,
        kind: 'qmstart',
        lock: 'power-on',
        duration: world.durations.powerOn,
        ...failure,
        onSuccess: world.whileExists(vm, (at) => {
          vm.powerState = 'On';
          vm.ipsVisibleAt = at + world.durations.boot;
        }),
      });
      return { task: task.id };
    }
    case 'off': {
      if (vm.powerState === 'Off') return {};
      const task = world.startTask({
        vm,
        kind: 'qmstop',
        lock: 'power-off',
        duration: world.durations.powerOff,
        ...failure,
        onSuccess: world.whileExists(vm, () => powerDown(vm)),
      });
      return { task: task.id };
    }
    case 'shutdown':
      return shutdownGuest(world, vm, failWith);
    case 'reboot': {
      if (vm.powerState !== 'On') throw new ConflictError(`VM ${vm.id} is not running`);
      if (failWith === undefined) delete vm.ipsVisibleAt;
      const task = world.startTask({
        vm,
        kind: 'qmreboot',
        lock: 'reboot',
        duration: world.durations.reboot,
        ...failure,
        onSuccess: world.whileExists(vm, (at) => {
          if (vm.powerState === 'On') vm.ipsVisibleAt = at + world.durations.boot;
        }),
      });
      return { task: task.id };
    }
    case 'suspend':
      return suspend(world, vm, failWith);
    case 'reset':
      return hardReset(world, vm, failWith);
  }
}

// Like PVE's suspend: the guest pauses with its memory kept, and its addresses come back with it.
function suspend(world: SimWorld, vm: VMRecord, failWith?: string): Started {
  world.requireCapability('suspend', 'suspending a VM');
  if (vm.powerState === 'Suspended') return {};
  if (vm.powerState !== 'On') throw new ConflictError(`VM ${vm.id} is not running; only a running VM can be suspended`);
  const task = world.startTask({
    vm,
    kind: 'qmsuspend',
    lock: 'suspend',
    duration: world.durations.powerOff,
    ...(failWith === undefined ? {} : { failWith }),
    onSuccess: world.whileExists(vm, () => {
      if (vm.powerState === 'On') vm.powerState = 'Suspended';
    }),
  });
  return { task: task.id };
}

function resume(world: SimWorld, vm: VMRecord, failWith?: string): Started {
  const task = world.startTask({
    vm,
    kind: 'qmresume',
    lock: 'resume',
    duration: world.durations.powerOn,
    ...(failWith === undefined ? {} : { failWith }),
    onSuccess: world.whileExists(vm, () => {
      if (vm.powerState === 'Suspended') vm.powerState = 'On';
    }),
  });
  return { task: task.id };
}

// The reset button: the guest boots again at once, its addresses gone until it has.
function hardReset(world: SimWorld, vm: VMRecord, failWith?: string): Started {
  world.requireCapability('hardReset', 'a hard reset');
  if (vm.powerState !== 'On') throw new ConflictError(`VM ${vm.id} is not running; only a running VM can be reset`);
  const task = world.startTask({
    vm,
    kind: 'qmreset',
    lock: 'reset',
    duration: world.durations.reboot,
    ...(failWith === undefined ? {} : { failWith }),
    onSuccess: world.whileExists(vm, (at) => {
      if (vm.powerState === 'On') vm.ipsVisibleAt = at + world.durations.boot;
    }),
  });
  return { task: task.id };
}

// Like vSphere's ShutdownGuest: the request is only passed to the guest, so there is no task to
// follow, and a guest that ignores ACPI simply stays on.
function shutdownGuest(world: SimWorld, vm: VMRecord, failWith?: string): Started {
  world.requireCapability('guestShutdown', 'guest shutdown');
  if (vm.powerState === 'Off') return {};
  if (vm.powerState !== 'On') throw new ConflictError(`VM ${vm.id} is ${vm.powerState.toLowerCase()}, its guest cannot shut down`);
  // With no task to fail, an injected task failure means the guest never acts on the request.
  if (vm.shutdownEvent !== undefined || failWith !== undefined) return {};
  vm.shutdownEvent = world.timeline.schedule(world.clock.now() + world.durations.shutdown, () => {
    delete vm.shutdownEvent;
    if (world.vms.get(vm.id) === vm && vm.powerState === 'On' && !vm.ignoresShutdown) powerDown(vm);
  });
  return {};
}

export function reconfigureVM(world: SimWorld, ref: VMRef, change: ResourceChange, failWith?: string): Started {
  const vm = world.requireIdle(ref);
  const cpus = change.cpus ?? vm.cpus;
  const memoryBytes = change.memoryBytes ?? vm.memoryBytes;
  if (!Number.isInteger(cpus) || cpus < 1) throw new InvalidSpecError(`cpus must be a positive integer, not ${cpus}`);
  if (!Number.isSafeInteger(memoryBytes) || memoryBytes <= 0) throw new InvalidSpecError('memory must be a positive number of bytes');
  if (change.tags !== undefined) {
    world.requireCapability('tags', 'tags');
    const bad = change.tags.find((tag) => !TAG_PATTERN.test(tag));
    if (bad !== undefined) throw new InvalidSpecError(`tag '${bad}' is not a valid tag`);
  }
  const tags = change.tags ?? vm.tags ?? [];
  const tagsChanged = change.tags !== undefined && change.tags.join('\0') !== (vm.tags ?? []).join('\0');
  if (cpus === vm.cpus && memoryBytes === vm.memoryBytes) {
    // Tags are metadata: written at once, no task, whatever the power state.
    if (tagsChanged) vm.tags = [...tags];
    return {};
  }
  if (vm.powerState !== 'Off') {
    if (cpus > vm.cpus) requireHotPlug(world, vm, 'cpuHotAdd', vm.features.cpuHotAdd, 'cpu hot-add');
    if (cpus < vm.cpus) requireHotPlug(world, vm, 'cpuHotRemove', vm.features.cpuHotAdd, 'cpu hot-remove');
    if (memoryBytes > vm.memoryBytes) requireHotPlug(world, vm, 'memoryHotAdd', vm.features.memoryHotAdd, 'memory hot-add');
    if (memoryBytes < vm.memoryBytes) requireHotPlug(world, vm, 'memoryHotRemove', vm.features.memoryHotAdd, 'memory hot-remove');
  }
  if (memoryBytes > vm.memoryBytes) {
    const host = world.hosts.find((candidate) => candidate.name === vm.host);
    const free = host === undefined ? 0 : world.freeMemory(host);
    if (free < memoryBytes - vm.memoryBytes) {
      throw new InvalidSpecError(
        `not enough memory on host '${vm.host}': ${formatBytes(Math.max(0, free))} free, ${formatBytes(memoryBytes - vm.memoryBytes)} more needed`,
      );
    }
  }
  const task = world.startTask({
    vm,
    kind: 'qmconfig',
    lock: 'reconfigure',
    duration: world.durations.reconfigure,
    ...(failWith === undefined ? {} : { failWith }),
    onSuccess: world.whileExists(vm, () => {
      vm.cpus = cpus;
      vm.memoryBytes = memoryBytes;
      if (tagsChanged) vm.tags = [...tags];
    }),
  });
  return { task: task.id };
}

// Hot-plug needs both: the hypervisor able to do it, and the VM created with it enabled
// (PVE `hotplug: cpu,memory`, vSphere cpuHotAddEnabled), since a guest cannot be switched live.
function requireHotPlug(world: SimWorld, vm: VMRecord, capability: Capability, enabledOnVM: boolean, feature: string): void {
  world.requireCapability(capability, `${feature} on a running VM`);
  if (!enabledOnVM) {
    const flag = capability.startsWith('cpu') ? 'cpu hot-add' : 'memory hot-add';
    throw new UnsupportedError(`${flag} is not enabled on VM ${vm.id}`);
  }
}

export function resizeVMDisk(world: SimWorld, ref: VMRef, diskName: string, sizeBytes: number, failWith?: string): Started {
  const vm = world.requireIdle(ref);
  const disk = vm.disks.find((candidate) => candidate.name === diskName);
  if (disk === undefined) throw new InvalidSpecError(`VM ${vm.id} has no disk '${diskName}'`);
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) throw new InvalidSpecError(`disk ${diskName} must have a positive size`);
  if (sizeBytes < disk.sizeBytes) {
    throw new InvalidSpecError(`disk ${diskName} cannot shrink from ${formatBytes(disk.sizeBytes)} to ${formatBytes(sizeBytes)}`);
  }
  if (sizeBytes === disk.sizeBytes) return {};
  if (vm.powerState !== 'Off') world.requireCapability('onlineDiskGrow', 'growing a disk of a running VM');
  const task = world.startTask({
    vm,
    kind: 'resize',
    lock: 'resize',
    duration: world.durations.resizeDisk,
    ...(failWith === undefined ? {} : { failWith }),
    onSuccess: world.whileExists(vm, () => {
      disk.sizeBytes = sizeBytes;
    }),
  });
  return { task: task.id };
}
