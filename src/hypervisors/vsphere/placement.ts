// Where a new VM goes. Each field of the VM's own placement wins over the Provider's default
// (the seed's 0.2.2 bug was the opposite). Compute placement (resource pool, cluster, host) is
// taken as a whole: when the VM names any of the three, the Provider's compute defaults are not
// mixed in, since a default pool rarely lies inside a cluster the VM picked.

import { InvalidSpecError, type CreateSpec } from '../../contracts/driver.js';
import { morefOf } from './client.js';
import { computeResourceOf, resolveDatacenter, resolveObject, rootPoolOf, type Datacenter } from './inventory.js';
import type { MoRef } from './soap.js';
import type { VmRecord, VsphereContext } from './vm.js';

export interface Placement {
  datacenter: Datacenter;
  folder: MoRef;
  pool: MoRef;
  host: MoRef | undefined;
  datastore: MoRef | undefined;
}

const COMPUTE_TYPES = ['ClusterComputeResource', 'ComputeResource'] as const;

export async function resolvePlacement(
  ctx: VsphereContext,
  spec: Pick<CreateSpec, 'placement' | 'storage'>,
  source: VmRecord | undefined,
  signal?: AbortSignal,
): Promise<Placement> {
  const defaults = ctx.config.defaults;
  const own = spec.placement;
  const dc = await resolveDatacenter(ctx, defaults.datacenter, signal);

  const folderName = own.folder ?? defaults.folder;
  const folder = folderName === undefined ? dc.vmFolder : await resolveObject(ctx, dc, 'vm', ['Folder'], folderName, 'folder', undefined, signal);

  const vmChoosesCompute = own.resourcePool !== undefined || own.cluster !== undefined || own.host !== undefined;
  let compute = vmChoosesCompute ? own : defaults;
  let cluster = compute.cluster === undefined ? undefined : await resolveObject(ctx, dc, 'host', COMPUTE_TYPES, compute.cluster, 'cluster', undefined, signal);
  const host = compute.host === undefined ? undefined : await resolveObject(ctx, dc, 'host', ['HostSystem'], compute.host, 'host', cluster, signal);
  // A host alone (a placement policy's choice, or the spec's) inside the Provider's default
  // cluster keeps that cluster's default resource pool: choosing a host there is no reason to
  // leave the pool the Provider names. A host elsewhere takes its own root pool, as before.
  if (host !== undefined && own.cluster === undefined && own.resourcePool === undefined && defaults.cluster !== undefined) {
    const defaultCluster = await resolveObject(ctx, dc, 'host', COMPUTE_TYPES, defaults.cluster, 'cluster', undefined, signal);
    if ((await computeResourceOf(ctx, host, signal)).value === defaultCluster.value) {
      cluster = defaultCluster;
      compute = { ...own, ...(defaults.resourcePool !== undefined ? { resourcePool: defaults.resourcePool } : {}) };
    }
  }

  let pool: MoRef;
  if (compute.resourcePool !== undefined) {
    const scope = cluster ?? (host === undefined ? undefined : await computeResourceOf(ctx, host, signal));
    pool = await resolveObject(ctx, dc, 'host', ['ResourcePool', 'VirtualApp'], compute.resourcePool, 'resource pool', scope, signal);
  } else if (cluster !== undefined) {
    pool = await rootPoolOf(ctx, cluster, signal);
  } else if (host !== undefined) {
    pool = await rootPoolOf(ctx, await computeResourceOf(ctx, host, signal), signal);
  } else {
    pool = await sourcePool(ctx, source, signal);
  }

  const datastoreName = spec.storage.datastore ?? defaults.datastore;
  const datastore = datastoreName === undefined ? undefined : await resolveObject(ctx, dc, 'datastore', ['Datastore'], datastoreName, 'datastore', undefined, signal);
  return { datacenter: dc, folder, pool, host, datastore };
}

/** With no placement at all: the source VM's pool, or (a template has none) its host's root pool. */
async function sourcePool(ctx: VsphereContext, source: VmRecord | undefined, signal?: AbortSignal): Promise<MoRef> {
  if (source === undefined) throw new InvalidSpecError('no resource pool: set VSPHERE_RESOURCE_POOL, VSPHERE_CLUSTER or VSPHERE_HOST, or the VM placement');
  const pool = morefOf(source.object.props.get('resourcePool'));
  if (pool !== undefined) return pool;
  const host = morefOf(source.object.props.get('runtime.host'));
  if (host === undefined) throw new InvalidSpecError(`template ${source.name} has no host; set VSPHERE_RESOURCE_POOL, VSPHERE_CLUSTER or VSPHERE_HOST`);
  return rootPoolOf(ctx, await computeResourceOf(ctx, host, signal), signal);
}
