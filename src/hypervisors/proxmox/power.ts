// Verbs that change a VM in place: power, reconfigure (CPU, memory, tags, settings), resizeDisk. Each re-reads
// the VM's config first and refuses unless the marker names the caller's owner and no lock is held.

import {
  BusyError,
  ConflictError,
  InvalidSpecError,
  type PowerOperation,
  type ResourceChange,
  type Started,
  type VMRef,
} from '../../contracts/driver.js';
import { MiB, formatBytes } from '../../contracts/quantity.js';
import { ensureCdrom } from './configure.js';
import { bootDiskSlot, disks, hotplugFeatures, maxCpus, observedCpus, observedMemoryBytes } from './hardware.js';
import { hasTags, tagsFor } from './identity.js';
import { HIBERNATED } from './resources.js';
import { bootDevicesOf, changeParams, isEmptyChange, mergeChanges, settingsChange, validateSettings, type ConfigChange } from './settings.js';
import { validateTags } from './validate.js';
import { formatDiskSize, num, rows, str, type Row } from './values.js';
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
  // A hibernated VM carries `lock: suspended` and is stopped: starting it is how it resumes
  // (qemu-server vm_start), and there is nothing to stop or shut down.
  const vm = await requireOwned(ctx, ref, signal, { idle: true, allowLocks: [HIBERNATED] });
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
    case 'suspend':
      // A state, not an owner mismatch: only a running VM pauses.
      if (!running) throw new BusyError(`VM ${vm.vmid} is not running: only a running VM is suspended`);
      return paused ? {} : post('suspend');
    case 'reset':
      if (!running) throw new BusyError(`VM ${vm.vmid} is not running: only a running VM is reset`);
      return post('reset');
  }
}

/**
 * CPU, memory, tags and settings. PVE hot-plugs what the VM allows (`vcpus` under cores×sockets
 * with CPU hotplug, memory with memory hotplug) and keeps the rest pending until the next power
 * cycle; which of the two applies is the controller's decision, made before calling. Tags and
 * deletion protection are options qemu-server changes at once whatever the power state ("fast
 * plug"); the identity tags and the placement record's tags are always written with the user's,
 * so a change never drops them. A CPU topology writes sockets and cores together (cpus, when
 * given too, must be their product).
 */
export async function reconfigureVM(ctx: ProxmoxContext, ref: VMRef, change: ResourceChange, signal?: AbortSignal): Promise<Started> {
  if (change.cpus !== undefined && (!Number.isInteger(change.cpus) || change.cpus < 1)) {
    throw new InvalidSpecError(`cpus must be a positive integer, not ${change.cpus}`);
  }
  if (change.memoryBytes !== undefined) {
    if (!Number.isSafeInteger(change.memoryBytes) || change.memoryBytes < 16 * MiB) throw new InvalidSpecError('memory must be at least 16Mi');
    if (change.memoryBytes % MiB !== 0) throw new InvalidSpecError('memory must be a whole number of Mi (MiB) on Proxmox VE');
  }
  if (change.tags !== undefined) validateTags(change.tags);
  const settings = change.settings ?? {};
  validateSettings(settings);
  const topology = settings.cpuTopology;
  if (topology !== undefined && change.cpus !== undefined && change.cpus !== topology.sockets * topology.cores) {
    throw new InvalidSpecError(`cpus ${change.cpus} must be sockets × cores (${topology.sockets} × ${topology.cores} = ${topology.sockets * topology.cores})`);
  }
  const vm = await requireOwned(ctx, ref, signal, { idle: true, keepDetails: true });
  if (topology !== undefined && hotplugFeatures(vm.config).has('cpu')) {
    throw new InvalidSpecError(`VM ${vm.vmid} has CPU hot-add, whose cores are a ceiling above the CPUs in use: it takes no CPU topology`);
  }
  // With a topology, sockets × cores are the CPUs: `cpus` adds nothing to write.
  const resources: ResourceChange = topology === undefined ? change : { ...change, cpus: undefined };
  const wanted = (config: Row): ConfigChange =>
    mergeChanges(asChange(resourceParams(resources, config)), settingsChange(settings, config, bootDevicesOf(config, vm.marker)));
  const params: Record<string, number | string> = {};
  // The marker's record goes with every tags write, so a user-tag change never drops it.
  if (change.tags !== undefined && !hasTags(str(vm.config['tags']), ref.owner.uid, change.tags, vm.marker.placement)) {
    params['tags'] = tagsFor(ref.owner.uid, change.tags, vm.marker.placement);
  }
  if (!isEmptyChange(wanted(vm.config))) {
    // What a running VM could not take live waits in the config's pending section (NOTES §7), which
    // describe's `config?current=1` does not show: without this look, every sync until the next
    // power cycle would POST the same change again.
    let pending = pendingConfig(await ctx.client.get(vmPath(vm.node, vm.vmid, '/pending'), undefined, { signal }));
    if (wanted(pending).cdromMissing === true) pending = await ensureCdrom(ctx, { node: vm.node, vmid: vm.vmid, config: pending }, settings.bootOrder, [], signal);
    Object.assign(params, changeParams(wanted(pending)));
  }
  if (Object.keys(params).length === 0) return {};
  ctx.details.forget(vm.vmid);
  return started(await ctx.client.post(vmPath(vm.node, vm.vmid, '/config'), params, { signal }));
}

/** The config parameters that make `config` match `change`; empty when it already does. Pure. */
export function resourceParams(change: ResourceChange, config: Row): Record<string, number | string> {
  const params: Record<string, number | string> = {};
  if (change.cpus !== undefined && change.cpus !== observedCpus(config)) {
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
  if (change.memoryBytes !== undefined && change.memoryBytes !== observedMemoryBytes(config)) params['memory'] = change.memoryBytes / MiB;
  return params;
}

function asChange(params: Record<string, number | string>): ConfigChange {
  const { delete: remove, ...set } = params;
  return { set, remove: remove === undefined ? [] : String(remove).split(',') };
}

/** The config as it will be once pending changes apply, from `GET …/pending` rows `{key, value, pending, delete}`. */
export function pendingConfig(data: unknown): Row {
  const config: Row = {};
  for (const row of rows(data)) {
    const key = str(row['key']);
    if (key === undefined || row['delete'] !== undefined) continue;
    const value = row['pending'] ?? row['value'];
    if (value !== undefined) config[key] = value;
  }
  return config;
}

/**
 * Grows a disk to an absolute size; never shrinks (PVE cannot, and DESIGN §5 forbids it).
 *
 * The size sent is rounded up to a whole MiB, which PVE stores as sent (`size=<n>M`): qemu-server's
 * resize_vm writes the requested bytes into the config verbatim, but pads a running VM's disk to
 * the next KiB (Blockdev.pm resize) and the storage rounds further (ZFS raw volumes and Ceph RBD
 * to MiB, LVM to its extents), so an odd byte count would leave the config and the volume
 * disagreeing. describe then reads back at most 1 MiB - 1 byte more than asked. A later
 * `qm rescan` or migration copies the volume's own size into the config (update_disksize); on
 * LVM with 4 MiB extents that can read up to 4 MiB more.
 */
export async function resizeVMDisk(ctx: ProxmoxContext, ref: VMRef, diskName: string, sizeBytes: number, signal?: AbortSignal): Promise<Started> {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) throw new InvalidSpecError(`disk ${diskName} must have a positive size`);
  const vm = await requireOwned(ctx, ref, signal, { idle: true, keepDetails: true });
  const all = disks(vm.config);
  const slot = vm.marker.disks[diskName] ?? (diskName === 'root' ? bootDiskSlot(vm.config) : all.some((disk) => disk.slot === diskName) ? diskName : undefined);
  const disk = all.find((candidate) => candidate.slot === slot);
  if (disk === undefined) throw new InvalidSpecError(`VM ${vm.vmid} has no disk '${diskName}'`);
  const current = disk.sizeBytes ?? 0;
  const target = Math.ceil(sizeBytes / MiB) * MiB;
  // Already as large as asked, up to that rounding: nothing to do.
  if (current >= sizeBytes && current <= target) return {};
  if (sizeBytes < current) {
    throw new InvalidSpecError(`disk ${diskName} cannot shrink from ${formatBytes(current)} to ${formatBytes(sizeBytes)}`);
  }
  ctx.details.forget(vm.vmid);
  // Absolute size (no `+`): a retried call cannot grow the disk twice. PVE 7 answers null, 8+ a UPID.
  return started(await ctx.client.put(vmPath(vm.node, vm.vmid, '/resize'), { disk: disk.slot, size: formatDiskSize(target) }, { signal }));
}
