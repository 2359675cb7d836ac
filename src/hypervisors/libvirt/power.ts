// Verbs that change a domain in place: power, reconfigure (CPU/memory, user tags), resizeDisk. Each
// reads the domain first and refuses unless its identity tag names the caller's owner.

import {
  ConflictError,
  InvalidSpecError,
  type PowerOperation,
  type ResourceChange,
  type Started,
  type VMRef,
} from '../../contracts/driver.js';
import { MiB, formatBytes } from '../../contracts/quantity.js';
import type { LibvirtContext } from './context.js';
import { diskSizes, domainState, isActive, readDomain, requireIdle } from './observe.js';
import { replaceTags, userTags } from './tags.js';

export async function powerVM(ctx: LibvirtContext, ref: VMRef, operation: PowerOperation, signal?: AbortSignal): Promise<Started> {
  const domain = await requireIdle(ctx, ref, signal);
  const state = await domainState(ctx, domain.uuid, signal);
  const id = domain.uuid;
  switch (operation) {
    case 'on':
      if (state === 'paused') await ctx.host.virsh(['resume', '--domain', id], { signal });
      else if (state === 'pmsuspended') await ctx.host.virsh(['dompmwakeup', '--domain', id], { signal });
      else if (!isActive(state)) await ctx.host.virsh(['start', '--domain', id], { signal });
      return {};
    case 'off':
      if (isActive(state)) await ctx.host.virsh(['destroy', '--domain', id], { signal });
      return {};
    case 'shutdown':
      if (!isActive(state)) return {};
      // A paused guest cannot see the ACPI button: it runs again first, and then shuts down.
      if (state === 'paused') await ctx.host.virsh(['resume', '--domain', id], { signal });
      // ACPI by default: it needs nothing inside the guest but an ACPI daemon; the agent is the fallback libvirt picks itself.
      await ctx.host.virsh(['shutdown', '--domain', id], { signal });
      // Keyed apart from the domain's lock: following a shutdown blocks nothing (a power off or a
      // delete may overtake it; the follower then sees the domain off, or gone). Past the timeout
      // the follower destroys the domain.
      return {
        task: await ctx.tasks.start(
          [{ key: `${id}-shutdown`, kind: 'shutdown' }],
          [['vr_absent_ok', 'vr_follow_shutdown', ctx.host.uri, id, String(Math.ceil(ctx.config.shutdownTimeoutMs / 1000))]],
          signal,
        ),
      };
    case 'reboot':
      if (!isActive(state)) throw new ConflictError(`domain ${domain.name} is not running`);
      if (state === 'paused') throw new ConflictError(`domain ${domain.name} is suspended: power it on (resume) first`);
      await ctx.host.virsh(['reboot', '--domain', id], { signal });
      return {};
    case 'suspend':
      // QEMU stops the vCPUs and keeps the memory (libvirt state paused); `on` resumes it.
      if (state === 'paused' || state === 'pmsuspended') return {};
      if (!isActive(state)) throw new ConflictError(`domain ${domain.name} is not running`);
      await ctx.host.virsh(['suspend', '--domain', id], { signal });
      return {};
    case 'reset':
      // QEMU's system_reset: the reset button, no shutdown. A paused domain stays paused.
      if (!isActive(state)) throw new ConflictError(`domain ${domain.name} is not running`);
      await ctx.host.virsh(['reset', '--domain', id], { signal });
      return {};
  }
}

/**
 * CPU and memory: always written to the persistent definition (`--config`), and applied live
 * where libvirt can: vCPUs up to the domain's maximum, memory up to its maximum (balloon). vCPU
 * unplug is not attempted (under TCG it fails, and a failed unplug left QEMU hung: NOTES §3).
 * What is not applied live shows as a difference between the live and the wanted hardware, which
 * the controller reports as pending a restart. Tags are metadata: applied live and persistently
 * at once, whatever the power state.
 */
export async function reconfigureVM(ctx: LibvirtContext, ref: VMRef, change: ResourceChange, signal?: AbortSignal): Promise<Started> {
  // Checked before anything changes: a bad tag must not leave the CPUs changed and the call failed.
  const tags = change.tags !== undefined ? userTags(change.tags) : undefined;
  const config = await requireIdle(ctx, ref, signal);
  const id = config.uuid;
  const state = await domainState(ctx, id, signal);
  const running = isActive(state);
  const live = running ? await readDomain(ctx, id, signal) : config;

  if (change.cpus !== undefined) {
    const cpus = change.cpus;
    if (!Number.isInteger(cpus) || cpus < 1) throw new InvalidSpecError(`cpus must be a positive integer, not ${cpus}`);
    if (cpus > config.maxCpus) await ctx.host.virsh(['setvcpus', '--domain', id, '--count', String(cpus), '--config', '--maximum'], { signal });
    if (cpus !== config.cpus) await ctx.host.virsh(['setvcpus', '--domain', id, '--count', String(cpus), '--config'], { signal });
    if (running && config.metadata.cpuHotAdd && cpus > live.cpus && cpus <= live.maxCpus) {
      await ctx.host.virsh(['setvcpus', '--domain', id, '--count', String(cpus), '--live'], { signal });
    }
  }
  if (change.memoryBytes !== undefined) {
    const bytes = change.memoryBytes;
    if (!Number.isSafeInteger(bytes) || bytes < 64 * MiB || bytes % 1024 !== 0) throw new InvalidSpecError('memory must be at least 64Mi and a whole number of KiB');
    const kib = String(bytes / 1024);
    if (bytes / 1024 > config.maxMemoryKiB) await ctx.host.virsh(['setmaxmem', '--domain', id, '--size', kib, '--config'], { signal });
    if (bytes / 1024 !== config.memoryKiB) await ctx.host.virsh(['setmem', '--domain', id, '--size', kib, '--config'], { signal });
    if (running && config.metadata.memoryHotAdd && bytes / 1024 > live.memoryKiB && bytes / 1024 <= live.maxMemoryKiB) {
      await ctx.host.virsh(['setmem', '--domain', id, '--size', kib, '--live'], { signal });
    }
  }
  if (tags !== undefined) await replaceTags(ctx, config, running ? live : undefined, tags, signal);
  return {};
}

/**
 * Grows a disk to an absolute size; never shrinks: `blockresize` would shrink without asking
 * (NOTES: data loss), so the current size is read and compared first.
 */
export async function resizeVMDisk(ctx: LibvirtContext, ref: VMRef, diskName: string, sizeBytes: number, signal?: AbortSignal): Promise<Started> {
  const domain = await requireIdle(ctx, ref, signal);
  const entry = domain.metadata.disks.find((disk) => disk.name === diskName);
  const disk = domain.disks.find((candidate) => candidate.device === 'disk' && candidate.target === (entry?.target ?? diskName));
  if (!entry || !disk) throw new InvalidSpecError(`VM ${domain.name} has no disk ${JSON.stringify(diskName)}`);
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0) throw new InvalidSpecError(`disk ${diskName} must have a positive size`);
  const current = (await diskSizes(ctx, domain, signal)).get(disk.target) ?? 0;
  if (sizeBytes < current) throw new InvalidSpecError(`disk ${diskName} cannot shrink from ${formatBytes(current)} to ${formatBytes(sizeBytes)}`);
  if (sizeBytes === current) return {};
  if (isActive(await domainState(ctx, domain.uuid, signal))) {
    // A bare number would be KiB; the B suffix makes it bytes.
    await ctx.host.virsh(['blockresize', '--domain', domain.uuid, '--path', disk.target, '--size', `${sizeBytes}B`], { signal });
  } else {
    // Absolute size (no --delta): a retried call cannot grow the disk twice.
    await ctx.host.virsh(['vol-resize', '--pool', ctx.config.storagePool, '--vol', entry.volume, '--capacity', String(sizeBytes)], { signal });
  }
  return {};
}
