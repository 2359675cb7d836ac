// create, step 1 without a template: `POST /nodes/{node}/qemu` (a qmcreate task) carrying the VM's
// first drives, the owner's placeholder name, the tags and our marker with `state: configuring`;
// the configuration step (configure.ts) then sets CPU, memory, firmware, settings, NICs, extra
// disks and cloud-init exactly as it does for a clone. qemu-server writes only `lock: create`
// before it answers and the rest of the config when the task ends (create_and_lock_config), so
// until then the VMID is tied to its owner as a clone target's is: by our pending record here, by
// our running qmcreate anywhere else (creations.ts). Used for a VM made from an imported disk or
// a URL image (import-create.ts) and for a blank VM or one installed from an ISO (blank-create.ts).

import type { CreateSpec, Started } from '../../contracts/driver.js';
import { segment } from './client.js';
import { creationMarker, formatMarker, placeholderName, tagsFor } from './identity.js';
import { vmidChoice, withFreshVmid } from './placement.js';
import type { ClusterResources } from './resources.js';
import type { ProxmoxContext } from './vm.js';

const CREATE_ATTEMPTS = 5;

/**
 * Creates the VM on `node` with `drives` (slot → drive value), `slots` naming the slot of every
 * spec disk, with a fresh VMID (withFreshVmid) or the one the spec asks for. PVE takes the VMID
 * (`lock: create`) before it answers.
 */
export function createWithDrives(
  ctx: ProxmoxContext,
  spec: CreateSpec,
  node: string,
  slots: Record<string, string>,
  drives: Record<string, string>,
  resources: ClusterResources,
  signal?: AbortSignal,
): Promise<{ id: string } & Started> {
  const marker = creationMarker(spec, slots);
  const params = {
    name: placeholderName(spec.owner.uid),
    description: formatMarker(marker),
    tags: tagsFor(spec.owner.uid, spec.tags ?? [], marker.placement),
    scsihw: 'virtio-scsi-single',
    ...drives,
  };
  return withFreshVmid(
    ctx,
    resources.vms,
    CREATE_ATTEMPTS,
    marker,
    async (vmid) => {
      const task = await ctx.client.post(`/nodes/${segment(node)}/qemu`, { vmid, ...params }, { signal });
      ctx.pending.set(vmid, { marker, since: ctx.directory.now(), ...(typeof task === 'string' ? { task } : {}) });
      return typeof task === 'string' ? { id: String(vmid), task } : { id: String(vmid) };
    },
    signal,
    vmidChoice(spec),
  );
}
