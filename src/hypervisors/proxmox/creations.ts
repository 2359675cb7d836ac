// Creations of ours that PVE is still running, found on PVE itself rather than in this process's
// memory: another runtime replica, or this one before a restart, may have started them.
//
// A clone target shows our marker only once PVE has copied its first drive (create.ts). Until then
// it is a VM holding `lock: clone` that nobody can name, and the task building it is the only
// record that it may be some owner's VM. While such a VM exists next to a running creation task of
// ours, neither "this owner has no VM" (findByIdentity) nor a new clone (create) is safe: both
// wait (Busy, retried) instead.

import { BusyError } from '../../contracts/driver.js';
import type { VmRow } from './resources.js';
import { parseUpid } from './upid.js';
import { rows, str } from './values.js';
import type { ProxmoxContext } from './vm.js';

export interface RunningCreation {
  upid: string;
  type: string;
  node: string;
  id: string;
}

/** Tasks of `types` started with our credentials that are still running, cluster-wide. */
export async function runningTasksOfOurs(ctx: ProxmoxContext, types: readonly string[], signal?: AbortSignal): Promise<RunningCreation[]> {
  const auth = ctx.config.auth;
  const me = auth.kind === 'token' ? auth.tokenId : auth.username;
  const found: RunningCreation[] = [];
  for (const task of rows(await ctx.client.get('/cluster/tasks', undefined, { signal }))) {
    if (task['endtime'] !== undefined) continue;
    const upid = str(task['upid']) ?? '';
    const parsed = parseUpid(upid);
    if (parsed === undefined || parsed.user !== me || !types.includes(parsed.type)) continue;
    found.push({ upid, type: parsed.type, node: parsed.node, id: parsed.id });
  }
  return found;
}

/** Clone and create tasks started with our credentials that are still running, cluster-wide. */
export function runningCreations(ctx: ProxmoxContext, signal?: AbortSignal): Promise<RunningCreation[]> {
  return runningTasksOfOurs(ctx, ['qmclone', 'qmcreate'], signal);
}

/**
 * Whether `task` may be building `row`. A qmclone's UPID names the source VM, not the target, but
 * qemu-server writes the target's config on the node running the clone and moves it to another
 * node only when the clone ends (clone_vm); a qmcreate's UPID names the VM it creates.
 */
export function mayBuild(task: RunningCreation, row: VmRow): boolean {
  return task.type === 'qmclone' ? task.node === row.node : task.id === String(row.vmid);
}

/**
 * Busy while one of `unidentified` may be a VM of ours still being created. Someone else's
 * creations, and locks a crashed task left behind (no task of ours runs for them), hold nothing up.
 */
export async function waitForUnidentified(ctx: ProxmoxContext, unidentified: readonly VmRow[], what: string, signal?: AbortSignal): Promise<void> {
  if (unidentified.length === 0) return;
  const tasks = await runningCreations(ctx, signal);
  const ours = unidentified.filter((row) => tasks.some((task) => mayBuild(task, row)));
  if (ours.length === 0) return;
  const names = ours.map((row) => `${row.vmid} on node '${row.node}'`).join(', ');
  throw new BusyError(`VM ${names} is being created by this provider and cannot be identified yet; ${what}`);
}
