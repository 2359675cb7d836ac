// Verbs that unmake or copy a whole VM: delete and clone.

import { ConflictError, InvalidSpecError, type Identity, type Started, type VMRef } from '../../contracts/driver.js';
import { removeSnippets } from './cloudinit.js';
import { cloneWithFreshId } from './create.js';
import { descriptionWithMarker, placeholderName, type Marker } from './identity.js';
import { probe } from './inventory.js';
import { started, stopVM } from './power.js';
import { HIBERNATED } from './resources.js';
import { DNS_NAME } from './validate.js';
import { flag, str } from './values.js';
import { locate, readStatus, requireOwned, vmPath, type ProxmoxContext } from './vm.js';

/**
 * PVE destroys only stopped VMs ("VM <id> is running - destroy failed"), so a running VM is
 * stopped first and that stop is the task returned; the controller calls delete again while the
 * VM still exists. A stopped VM is destroyed with its disks and every reference (HA, replication,
 * backup jobs: `purge`), including disks it no longer lists.
 *
 * A hibernated VM (`lock: suspended`) is destroyed as it is, saved RAM included: qemu-server's
 * destroy_vm ignores that lock since fix #4358 (qemu-server 7.3-3, in every PVE from 7.4 on).
 * Older servers refuse it, and clearing the lock (`skiplock`, `qm unlock`) is for root@pam only,
 * which API tokens never are: there the VM is resumed (start), and the next calls stop and destroy it.
 *
 * A VM with deletion protection (`protection: 1`) is Conflict, before anything is stopped: PVE's
 * destroy refuses it ("can't remove VM <id> - protection mode enabled", destroy_vm's early checks,
 * a 500), and only a change of the setting lets the delete go on.
 */
export async function deleteVM(ctx: ProxmoxContext, ref: VMRef, signal?: AbortSignal): Promise<Started> {
  const vm = await requireOwned(ctx, ref, signal, { idle: true, allowLocks: [HIBERNATED] });
  const protectedVM = (): ConflictError => new ConflictError(`VM ${vm.vmid} has deletion protection on: turn protection off to delete it`);
  if (flag(vm.config['protection'])) throw protectedVM();
  const status = await readStatus(ctx, vm.node, vm.vmid, signal);
  if (str(status['status']) === 'running') return stopVM(ctx, vm.node, vm.vmid, signal);
  if (str(vm.config['lock']) === HIBERNATED && !(await destroysHibernated(ctx, signal))) {
    return started(await ctx.client.post(vmPath(vm.node, vm.vmid, '/status/start'), {}, { signal }));
  }
  let task: unknown;
  try {
    task = await ctx.client.delete(vmPath(vm.node, vm.vmid), { purge: true, 'destroy-unreferenced-disks': true }, { signal });
  } catch (error) {
    // Turned on by someone else since the config was read.
    if (error instanceof ConflictError && /protection mode enabled/.test(error.message)) throw protectedVM();
    throw error;
  }
  ctx.directory.invalidate();
  await removeSnippets(ctx.config, ref.owner.uid);
  return started(task);
}

/** Whether the server's destroy ignores the `suspended` lock: PVE 7.4 and later (see deleteVM). */
async function destroysHibernated(ctx: ProxmoxContext, signal?: AbortSignal): Promise<boolean> {
  ctx.version ??= (await probe(ctx, signal)).version;
  const [major = Number.NaN, minor = 0] = ctx.version.split('.').map((part) => Number.parseInt(part, 10));
  // A server that does not say is taken to be a current one.
  if (!Number.isFinite(major)) return true;
  return major > 7 || (major === 7 && minor >= 4);
}

/**
 * A copy of an owned VM for another owner. PVE makes linked clones only of templates. The copy
 * carries the source's tags (PVE's clone copies them and takes none), so it is made like the first
 * step of a create: the owner's placeholder name, a marker in `configuring` state. findByIdentity
 * finds it by that name, and the target owner's create (describe says `incomplete`) retags and
 * renames it to `target.name` or whatever its spec says.
 */
export async function cloneVM(
  ctx: ProxmoxContext,
  ref: VMRef,
  target: { name: string; owner: Identity; linked: boolean },
  signal?: AbortSignal,
): Promise<{ id: string } & Started> {
  if (!DNS_NAME.test(target.name)) throw new InvalidSpecError(`VM name '${target.name}' is not a valid DNS name, which PVE requires`);
  const source = await requireOwned(ctx, ref, signal, { idle: true });
  if (target.linked && !flag(source.config['template'])) {
    throw new InvalidSpecError(`PVE makes linked clones only of templates; VM ${source.vmid} is not one`);
  }
  const row = await locate(ctx, source.vmid, signal);
  const marker: Marker = {
    uid: target.owner.uid,
    namespace: target.owner.namespace,
    name: target.owner.name,
    disks: source.marker.disks,
    nics: source.marker.nics,
    state: 'configuring',
  };
  const known = (await ctx.directory.current(signal)).rows;
  const params = {
    name: placeholderName(target.owner.uid),
    description: descriptionWithMarker(undefined, marker),
    full: !target.linked,
    storage: undefined,
    target: undefined,
  };
  return cloneWithFreshId(ctx, row, params, marker, known, signal);
}
