// Verbs that change a VM in place: power, reconfigure (CPU/memory), resizeDisk. Each re-reads the
// VM's config first and refuses unless the marker names the caller's owner and no lock is held.

import {
  ConflictError,
  InvalidSpecError,
  type PowerOperation,
  type ResourceChange,
  type Started,
  type VMRef,
} from '../../contracts/driver.js';
import { MiB, formatBytes } from '../../contracts/quantity.js';
import { bootDiskSlot, disks, hotplugFeatures, maxCpus, observedCpus, observedMemoryBytes } from './hardware.js';
import { formatDiskSize, num, str } from './values.js';
import { readStatus, requireOwned, vmPath, type ProxmoxContext } from './vm.js';

// How long PVE's qmshutdown waits for the guest. The controller keeps its own (usually shorter)
// deadline and then powers off, so this only bounds a task nobody follows any more.
const SHUTDOWN_TIMEOUT_S = 300;

export function started(task: unknown): Started {
  return typeof task === 'string' ? { task } : {};
}

/**
 * A hard stop. `overrule-shutdown` aborts a running qmshutdown, which otherwise holds the VM's
 * flock until its timeout and makes the stop fail with "can't lock file" (PVE 8.1+); older
 * servers refuse the parameter, and get the plain stop.
 */
export async function stopVM(ctx: ProxmoxContext, node: string, vmid: number, signal?: AbortSignal): Promise<Started> {
  const path = vmPath(node, vmid, '/status/stop');
  try {
    return started(await ctx.client.post(path, { 'overrule-shutdown': true }, { signal }));
  } catch (error) {
    if (error instanceof InvalidSpecError && error.message.includes('overrule-shutdown')) return started(await ctx.client.post(path, {}, { signal }));
    throw error;
  }
}

export async function powerVM(ctx: ProxmoxContext, ref: VMRef, operation: PowerOperation, signal?: AbortSignal): Promise<Started> {
  // A hibernated VM carries `lock: suspended`; starting it is how it resumes.
  const vm = await requireOwned(ctx, ref, signal, { idle: true, allowLocks: operation === 'on' ? ['suspended'] : [] });
  const status = await readStatus(ctx, vm.node, vm.vmid, signal);
  const running = str(status['status']) === 'running';
  const paused = running && ['paused', 'suspended'].includes(str(status['qmpstatus']) ?? '');
  const post = async (action: string, params = {}): Promise<Started> =>
    started(await ctx.client.post(vmPath(vm.node, vm.vmid, `/status/${action}`), params, { signal }));
  switch (operation) {
    case 'on':
      if (paused) return post('resume');
      return running ? {} : post('start');
    case 'off':
      return running ? stopVM(ctx, vm.node, vm.vmid, signal) : {};
    case 'shutdown':
      if (!running) return {};
      if (paused) throw new ConflictError(`VM ${vm.vmid} is suspended, its guest cannot shut down`);
      // No forceStop: when the guest ignores ACPI the controller decides to power off.
      return post('shutdown', { timeout: SHUTDOWN_TIMEOUT_S });
    case 'reboot':
      if (!running) throw new ConflictError(`VM ${vm.vmid} is not running`);
      return post('reboot');
  }
}

/**
 * CPU and memory. PVE hot-plugs what the VM allows (`vcpus` under cores×sockets with CPU
 * hotplug, memory with memory hotplug) and keeps the rest pending until the next power cycle;
 * which of the two applies is the controller's decision, made before calling.
 */
export async function reconfigureVM(ctx: ProxmoxContext, ref: VMRef, change: ResourceChange, signal?: AbortSignal): Promise<Started> {
  const vm = await requireOwned(ctx, ref, signal, { idle: true });
  const params: Record<string, number | string> = {};
  const config = vm.config;
  if (change.cpus !== undefined) {
    if (!Number.isInteger(change.cpus) || change.cpus < 1) throw new InvalidSpecError(`cpus must be a positive integer, not ${change.cpus}`);
    if (change.cpus !== observedCpus(config)) {
      if (hotplugFeatures(config).has('cpu')) {
        const sockets = num(config['sockets']) ?? 1;
        if (change.cpus > maxCpus(config)) params['cores'] = Math.ceil(change.cpus / sockets);
        params['vcpus'] = change.cpus;
      } else {
        params['cores'] = change.cpus;
        params['sockets'] = 1;
        if (config['vcpus'] !== undefined) params['delete'] = 'vcpus';
      }
    }
  }
  if (change.memoryBytes !== undefined) {
    if (!Number.isSafeInteger(change.memoryBytes) || change.memoryBytes < 16 * MiB) throw new InvalidSpecError('memory must be at least 16Mi');
    if (change.memoryBytes % MiB !== 0) throw new InvalidSpecError('memory must be a whole number of Mi (MiB) on Proxmox VE');
    if (change.memoryBytes !== observedMemoryBytes(config)) params['memory'] = change.memoryBytes / MiB;
  }
  if (Object.keys(params).length === 0) return {};
  return started(await ctx.client.post(vmPath(vm.node, vm.vmid, '/config'), params, { signal }));
}

/** Grows a disk to an absolute size; never shrinks (PVE cannot, and DESIGN §5 forbids it). */
export async function resizeVMDisk(ctx: ProxmoxContext, ref: VMRef, diskName: string, sizeBytes: number, signal?: AbortSignal): Promise<Started> {
  const vm = await requireOwned(ctx, ref, signal, { idle: true });
  const all = disks(vm.config);
  const slot = vm.marker.disks[diskName] ?? (diskName === 'root' ? bootDiskSlot(vm.config) : all.some((disk) => disk.slot === diskName) ? diskName : undefined);
  const disk = all.find((candidate) => candidate.slot === slot);
  if (disk === undefined) throw new InvalidSpecError(`VM ${vm.vmid} has no disk '${diskName}'`);
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) throw new InvalidSpecError(`disk ${diskName} must have a positive size`);
  const current = disk.sizeBytes ?? 0;
  if (sizeBytes < current) {
    throw new InvalidSpecError(`disk ${diskName} cannot shrink from ${formatBytes(current)} to ${formatBytes(sizeBytes)}`);
  }
  if (sizeBytes === current) return {};
  // Absolute size (no `+`): a retried call cannot grow the disk twice. PVE 7 answers null, 8+ a UPID.
  return started(await ctx.client.put(vmPath(vm.node, vm.vmid, '/resize'), { disk: disk.slot, size: formatDiskSize(sizeBytes) }, { signal }));
}
