// Verbs that unmake or copy a whole VM: delete and clone.

import { InvalidSpecError, type CloneStarted, type CloneTarget, type Started, type VMRef } from '../../contracts/driver.js';
import { morefOf } from './client.js';
import { startClone } from './create.js';
import { resolveDatacenter } from './inventory.js';
import { powerStateOf, startTask } from './power.js';
import { requireOwned, type VsphereContext } from './vm.js';

/**
 * vSphere destroys only powered-off VMs (InvalidPowerState), so a running VM is powered off first
 * and that task is returned; the controller calls delete again while the VM still exists.
 * Destroy_Task removes the VM with its files.
 */
export async function deleteVM(ctx: VsphereContext, ref: VMRef, signal?: AbortSignal): Promise<Started> {
  const vm = await requireOwned(ctx, ref, signal);
  if (powerStateOf(vm) !== 'poweredOff') return startTask(ctx, 'PowerOffVM_Task', vm.ref, [], signal);
  return startTask(ctx, 'Destroy_Task', vm.ref, [], signal);
}

/**
 * A copy of an owned VM for another owner, next to the source (same folder, pool, datastore).
 * The copy carries the target's identity and `configuring` state: the target owner's create
 * continues it like any clone (describe says `incomplete`). A linked copy shares the source's
 * disks through the source's current snapshot, made when there is none. Answered as soon as the
 * clone task is started: id '' while it runs (create.ts startClone).
 */
export async function cloneVM(ctx: VsphereContext, ref: VMRef, target: CloneTarget, signal?: AbortSignal): Promise<CloneStarted> {
  const source = await requireOwned(ctx, ref, signal);
  const datacenter = await resolveDatacenter(ctx, ctx.config.defaults.datacenter, signal);
  const folder = morefOf(source.object.props.get('parent'));
  const pool = morefOf(source.object.props.get('resourcePool'));
  if (pool === undefined) throw new InvalidSpecError(`VM ${ref.id} has no resource pool to clone into`);
  const placement = { datacenter, folder: folder?.type === 'Folder' ? folder : datacenter.vmFolder, pool, host: undefined, datastore: undefined };
  // The copy takes the target's placeholder name; the target owner's create names it target.name.
  // No placement record: the copy is placed by no policy, and the source's record is not its own.
  return startClone(ctx, { source, owner: target.owner, placement, linked: target.linked, record: undefined }, signal);
}
