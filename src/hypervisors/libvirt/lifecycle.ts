// delete. It removes the domain and only the volumes its metadata names as its own (disks, seed
// ISO, Ignition config): never the base image an overlay points at, never another VM's seed ISO
// (which `undefine --remove-all-storage` would take along).

import { NotFoundError, type Started, type VMRef } from '../../contracts/driver.js';
import type { LibvirtContext } from './context.js';
import { listDomains, requireOwned, type OwnedDomain } from './observe.js';
import type { TaskStep } from './tasks.js';

/**
 * Destroys the domain, deletes its own volumes, then undefines it, as a host task. Undefining
 * last keeps the metadata (the list of volumes) until everything else is gone, so a delete cut
 * short (a killed task, a rebooted host) is finished by the next one instead of leaking volumes.
 */
export async function deleteVM(ctx: LibvirtContext, ref: VMRef, signal?: AbortSignal): Promise<Started> {
  let domain: OwnedDomain;
  try {
    domain = await requireOwned(ctx, ref, signal);
  } catch (error) {
    if (error instanceof NotFoundError) return {};
    throw error;
  }
  return { task: await ctx.tasks.start([{ key: domain.uuid, kind: 'delete' }], await deleteSteps(ctx, domain, signal), signal) };
}

async function deleteSteps(ctx: LibvirtContext, domain: OwnedDomain, signal?: AbortSignal): Promise<TaskStep[]> {
  const virsh = ['virsh', '-q', '-c', ctx.host.uri];
  const pool = ctx.config.storagePool;
  const { seed, ignition } = domain.metadata;
  const volumes = [...domain.metadata.disks.map((disk) => disk.volume), ...[seed, ignition].filter((volume): volume is string => volume !== undefined)];
  if (domain.metadata.bases.length > 0) {
    // A frozen base shared with linked clones goes with the last VM that names it.
    const others = (await listDomains(ctx, signal)).filter((other) => other.uuid !== domain.uuid);
    for (const base of domain.metadata.bases) {
      if (!others.some((other) => other.metadata?.bases.includes(base) || other.unreadable !== undefined)) volumes.push(base);
    }
  }
  return [
    ['vr_absent_ok', 'vr_stop', ctx.host.uri, domain.uuid],
    ...volumes.map((volume): TaskStep => ['vr_absent_ok', ...virsh, 'vol-delete', '--pool', pool, '--vol', volume]),
    ['vr_absent_ok', ...virsh, 'undefine', '--domain', domain.uuid, '--snapshots-metadata', '--managed-save', '--checkpoints-metadata', ...(domain.uefi ? ['--nvram'] : [])],
  ];
}
