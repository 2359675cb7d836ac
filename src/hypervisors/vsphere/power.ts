// Verbs that change a VM in place: power, reconfigure (CPU/memory), resizeDisk. Each reads the VM
// first and refuses unless its identity names the caller's owner.

import {
  BusyError,
  InvalidSpecError,
  isDriverError,
  type PowerOperation,
  type ResourceChange,
  type Started,
  type VMRef,
} from '../../contracts/driver.js';
import { MiB } from '../../contracts/quantity.js';
import { morefOf } from './client.js';
import { findDisk, growDiskSpec, readDevices } from './devices.js';
import { faultTypeOf } from './errors.js';
import { diskSlotsOf } from './identity.js';
import { el, moref, typed, type MoRef, type Xml } from './soap.js';
import { textAt } from './xml.js';
import { requireOwned, type VmRecord, type VsphereContext } from './vm.js';

export async function startTask(ctx: VsphereContext, method: string, target: MoRef, params: readonly (Xml | undefined)[] = [], signal?: AbortSignal): Promise<Started> {
  const task = morefOf(await ctx.client.returnval(method, [moref('_this', target), ...params], signal));
  ctx.vmList.invalidate();
  return task === undefined ? {} : { task: task.value };
}

export function powerStateOf(vm: VmRecord): string {
  return vm.object.props.get('runtime.powerState')?.text ?? 'unknown';
}

// The guest could not be asked: no VMware Tools running (ToolsUnavailable), or a server without
// guest operations (MethodNotFound, NotSupported: Unsupported).
function guestUnreachable(error: unknown): boolean {
  if (!isDriverError(error)) return false;
  return error.code === 'Unsupported' || faultTypeOf(error) === 'ToolsUnavailable';
}

// `runtime.powerState` of a VM whose memory is saved to disk: it neither runs nor is off.
const SUSPENDED = 'suspended';

/**
 * vSphere powers off a running or suspended VM, resumes a suspended one with PowerOnVM_Task, and
 * suspends or resets only a running one (vSphere Automation API, vcenter/vm/power). A call the
 * state already satisfies does nothing; one the state forbids is Busy (a state, not an owner
 * mismatch: Conflict means "not ours" to the hooks), as it may succeed once the state changes.
 */
export async function powerVM(ctx: VsphereContext, ref: VMRef, operation: PowerOperation, signal?: AbortSignal): Promise<Started> {
  const vm = await requireOwned(ctx, ref, signal);
  const state = powerStateOf(vm);
  switch (operation) {
    case 'on':
      return state === 'poweredOn' ? {} : startTask(ctx, 'PowerOnVM_Task', vm.ref, [], signal);
    case 'off':
      return state === 'poweredOff' ? {} : startTask(ctx, 'PowerOffVM_Task', vm.ref, [], signal);
    case 'shutdown':
      if (state === SUSPENDED) throw new BusyError(`VM ${ref.id} is suspended: its guest cannot shut down until it is resumed (or powered off)`);
      if (state !== 'poweredOn') return {};
      try {
        // ShutdownGuest only asks VMware Tools and returns; the controller watches the power state
        // and keeps its own deadline for guests that ignore the request.
        await ctx.client.call('ShutdownGuest', [moref('_this', vm.ref)], signal);
        ctx.vmList.invalidate();
        return {};
      } catch (error) {
        // Without Tools there is no one to ask: the fallback is a hard power-off.
        if (guestUnreachable(error)) return startTask(ctx, 'PowerOffVM_Task', vm.ref, [], signal);
        throw error;
      }
    case 'reboot':
      if (state !== 'poweredOn') throw new BusyError(`VM ${ref.id} is ${state}: only a running VM reboots`);
      try {
        await ctx.client.call('RebootGuest', [moref('_this', vm.ref)], signal);
        return {};
      } catch (error) {
        // No Tools (or vcsim, which lacks RebootGuest): a reset is the reboot that always works.
        if (guestUnreachable(error)) return startTask(ctx, 'ResetVM_Task', vm.ref, [], signal);
        throw error;
      }
    case 'suspend':
      if (state === SUSPENDED) return {};
      if (state !== 'poweredOn') throw new BusyError(`VM ${ref.id} is ${state}: only a running VM is suspended`);
      return startTask(ctx, 'SuspendVM_Task', vm.ref, [], signal);
    case 'reset':
      if (state !== 'poweredOn') throw new BusyError(`VM ${ref.id} is ${state}: only a running VM is reset`);
      return startTask(ctx, 'ResetVM_Task', vm.ref, [], signal);
  }
}

/**
 * Busy for a suspended VM: its saved memory belongs to the hardware it had, so vSphere changes the
 * hardware only once it is off (or resumed, through hot-add); the vSphere Client offers no
 * hardware edits on a suspended VM. Refused here rather than left to a fault that says less.
 */
function requireNotSuspended(vm: VmRecord, what: string): void {
  if (powerStateOf(vm) === SUSPENDED) throw new BusyError(`VM ${vm.ref.value} is suspended: ${what} can change once it is powered off or resumed`);
}

/**
 * CPU and memory. A running VM takes an increase when CPU/memory hot-add is enabled; otherwise
 * vSphere refuses the change (InvalidPowerState or InvalidState: Busy), and the controller applies
 * it with the VM off.
 */
export async function reconfigureVM(ctx: VsphereContext, ref: VMRef, change: ResourceChange, signal?: AbortSignal): Promise<Started> {
  const vm = await requireOwned(ctx, ref, signal);
  const cpus = Number(textAt(vm.object.props.get('config.hardware.numCPU')) ?? 0);
  const memoryMB = Number(textAt(vm.object.props.get('config.hardware.memoryMB')) ?? 0);
  const fields = [];
  if (change.cpus !== undefined) {
    if (!Number.isInteger(change.cpus) || change.cpus < 1) throw new InvalidSpecError(`cpus must be a positive integer, not ${change.cpus}`);
    if (change.cpus !== cpus) fields.push(el('numCPUs', change.cpus));
  }
  if (change.memoryBytes !== undefined) {
    if (!Number.isSafeInteger(change.memoryBytes) || change.memoryBytes % MiB !== 0 || change.memoryBytes < 4 * MiB) {
      throw new InvalidSpecError('memory must be a whole number of Mi (MiB), at least 4Mi');
    }
    if (change.memoryBytes / MiB !== memoryMB) fields.push(el('memoryMB', change.memoryBytes / MiB));
  }
  if (fields.length === 0) return {};
  requireNotSuspended(vm, 'its CPU and memory');
  return startTask(ctx, 'ReconfigVM_Task', vm.ref, [typed('spec', 'VirtualMachineConfigSpec', fields)], signal);
}

/** Grows a disk to an absolute size (a retried call cannot grow it twice); never shrinks. */
export async function resizeVMDisk(ctx: VsphereContext, ref: VMRef, diskName: string, sizeBytes: number, signal?: AbortSignal): Promise<Started> {
  const vm = await requireOwned(ctx, ref, signal);
  const devices = readDevices(vm.object.props.get('config.hardware.device'));
  const disk = findDisk(devices, diskSlotsOf(vm.extraConfig), diskName);
  if (disk === undefined) throw new InvalidSpecError(`VM ${ref.id} has no disk '${diskName}'`);
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) throw new InvalidSpecError(`disk ${diskName} must have a positive size`);
  if (sizeBytes < disk.capacityBytes) throw new InvalidSpecError(`disk ${diskName} cannot shrink from ${disk.capacityBytes} to ${sizeBytes} bytes`);
  if (sizeBytes === disk.capacityBytes) return {};
  requireNotSuspended(vm, `its disk ${diskName}`);
  return startTask(ctx, 'ReconfigVM_Task', vm.ref, [typed('spec', 'VirtualMachineConfigSpec', [growDiskSpec(disk, sizeBytes)])], signal);
}
