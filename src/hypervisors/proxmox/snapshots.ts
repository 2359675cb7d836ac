// Snapshot verbs (`…/snapshot`, NOTES §10). The snapshot name is its ID: PVE has no other.

import { NotFoundError, type SnapshotInfo, type SnapshotRequest, type Started, type VMRef } from '../../contracts/driver.js';
import { segment } from './client.js';
import { started } from './power.js';
import { requireFreezableGuest } from './quiesce.js';
import { flag, num, rows, str } from './values.js';
import { readStatus, requireOwned, vmPath, type ProxmoxContext } from './vm.js';

/**
 * A name PVE accepts: `pve-configid` `[a-z][a-z0-9_-]*`, at most 40 characters. `current` names
 * the pseudo-entry of the snapshot list, so it is never used for a real snapshot.
 */
export function snapshotName(name: string): string {
  let sanitized = name.toLowerCase().replace(/[^a-z0-9_-]/g, '-');
  if (!/^[a-z]/.test(sanitized)) sanitized = `s-${sanitized}`;
  if (sanitized === 'current') sanitized = 'current-snapshot';
  sanitized = sanitized.slice(0, 40);
  return sanitized.length < 2 ? `${sanitized}-snapshot` : sanitized;
}

function snapshotPath(node: string, vmid: number, name?: string, rest = ''): string {
  return vmPath(node, vmid, `/snapshot${name === undefined ? '' : `/${segment(name)}`}${rest}`);
}

export async function createSnapshot(ctx: ProxmoxContext, ref: VMRef, request: SnapshotRequest, signal?: AbortSignal): Promise<{ id: string } & Started> {
  const vm = await requireOwned(ctx, ref, signal, { idle: true });
  const name = snapshotName(request.name);
  const status = await readStatus(ctx, vm.node, vm.vmid, signal);
  const running = str(status['status']) === 'running';
  // A stopped VM has no memory to save: the request is honoured as a disk-only snapshot.
  const vmstate = request.memory && running;
  // Quiesced: PVE freezes the filesystems through the agent around a snapshot without RAM
  // (quiesce.ts). A stopped VM's disks are at rest, and a snapshot with RAM resumes the guest
  // exactly where it was, file system caches included: neither needs a freeze (PVE does none).
  if (request.quiesce && running && !vmstate) await requireFreezableGuest(ctx, vm, signal);
  const task = await ctx.client.post(
    snapshotPath(vm.node, vm.vmid),
    { snapname: name, description: request.description, vmstate: vmstate ? true : undefined },
    { signal },
  );
  return { id: name, ...started(task) };
}

export async function listSnapshots(ctx: ProxmoxContext, ref: VMRef, signal?: AbortSignal): Promise<SnapshotInfo[]> {
  const vm = await requireOwned(ctx, ref, signal, { idle: false });
  const data = await ctx.client.get(snapshotPath(vm.node, vm.vmid), undefined, { signal });
  return rows(data)
    .filter((row) => str(row['name']) !== undefined && str(row['name']) !== 'current')
    .map((row) => {
      const name = str(row['name']) ?? '';
      const info: SnapshotInfo = {
        id: name,
        name,
        createdAt: new Date((num(row['snaptime']) ?? 0) * 1000).toISOString(),
        memory: flag(row['vmstate']),
      };
      const description = str(row['description']);
      if (description !== undefined && description !== '') info.description = description;
      return info;
    })
    .sort((a, b) => a.createdAt.localeCompare(b.createdAt) || a.name.localeCompare(b.name));
}

export async function deleteSnapshot(ctx: ProxmoxContext, ref: VMRef, snapshotId: string, signal?: AbortSignal): Promise<Started> {
  const vm = await requireOwned(ctx, ref, signal, { idle: true });
  return started(await ctx.client.delete(snapshotPath(vm.node, vm.vmid, snapshotId), undefined, { signal }));
}

/**
 * Rollback. A snapshot with RAM resumes the VM by itself; one without leaves it stopped, so a VM
 * that was running is started again (`start=1`) to keep its power state.
 */
export async function revertSnapshot(ctx: ProxmoxContext, ref: VMRef, snapshotId: string, signal?: AbortSignal): Promise<Started> {
  const vm = await requireOwned(ctx, ref, signal, { idle: true });
  const [list, status] = await Promise.all([
    ctx.client.get(snapshotPath(vm.node, vm.vmid), undefined, { signal }),
    readStatus(ctx, vm.node, vm.vmid, signal),
  ]);
  const snapshot = rows(list).find((row) => str(row['name']) === snapshotId && snapshotId !== 'current');
  if (snapshot === undefined) throw new NotFoundError(`VM ${vm.vmid} has no snapshot '${snapshotId}'`);
  const start = !flag(snapshot['vmstate']) && str(status['status']) === 'running';
  return started(await ctx.client.post(snapshotPath(vm.node, vm.vmid, snapshotId, '/rollback'), { start: start ? true : undefined }, { signal }));
}
