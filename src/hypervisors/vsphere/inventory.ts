// Inventory reads: probe, the Driver's capacity view, and name → moid resolution for placement
// (datacenter, folder, cluster, resource pool, host, datastore, network, template).
//
// A placement value with a `/` is an inventory path: absolute from the root when it starts with
// `/` (`/DC0/vm/team-a`), else relative to the datacenter's folder of that kind (`team-a/web` is
// `<dc>/vm/team-a/web` for a folder). A plain name is looked up among the objects of that type
// below the datacenter's folder of that kind (or a narrower scope, e.g. pools of one cluster) and
// must be unique: two objects with one name are an InvalidSpec, never a guess.

import { HypervisorError, InvalidSpecError, type Inventory } from '../../contracts/driver.js';
import { morefOf } from './client.js';
import { runningClones, type RunningClone } from './find.js';
import type { PlacementDefaults } from './config.js';
import { hostOf, placedByHost, sizeOf } from './placed.js';
import { retrieveAll, retrieveOne, type ObjectContent } from './property-collector.js';
import { el, moref, type MoRef } from './soap.js';
import { intAt, textAt } from './xml.js';
import { listVMs, type VmRecord, type VsphereContext } from './vm.js';

export async function probe(ctx: VsphereContext, signal?: AbortSignal): Promise<{ version: string }> {
  const content = await ctx.client.serviceContent(signal);
  // A session proves the credentials, not just the endpoint.
  await ctx.client.call('CurrentTime', [moref('_this', { type: 'ServiceInstance', value: 'ServiceInstance' })], signal);
  return { version: `${content.about.fullName} (API ${content.about.apiVersion})` };
}

/**
 * Hosts with every VM on each (placed.ts), datastores and networks, in a fixed number of calls
 * whatever the number of VMs: one list each of hosts, compute resources (each host's cluster),
 * datastores and networks, the VM list that findByIdentity reads too (identities and placement
 * records are both in `config.extraConfig`, read whole: vcsim 0.24.2 answers a keyed path such as
 * `config.extraConfig["key"]` with InvalidProperty), and vCenter's running clones (one recentTask
 * read, and one QueryEvents while any runs).
 */
export async function inventory(ctx: VsphereContext, signal?: AbortSignal): Promise<Inventory> {
  const { rootFolder } = await ctx.client.serviceContent(signal);
  const [hosts, computeResources, datastores, networks, { vms, clones }] = await Promise.all([
    retrieveAll(ctx.client, rootFolder, 'HostSystem', ['name', 'parent', 'summary.hardware.numCpuThreads', 'summary.hardware.memorySize'], signal),
    retrieveAll(ctx.client, rootFolder, 'ComputeResource', ['name'], signal),
    retrieveAll(ctx.client, rootFolder, 'Datastore', ['name', 'summary.capacity', 'summary.freeSpace'], signal),
    retrieveAll(ctx.client, rootFolder, 'Network', ['name'], signal),
    vmsAndClones(ctx, signal),
  ]);
  const placed = placedByHost(vms, clones, hosts.map((host) => host.ref.value));
  const allocated = new Map<string, { cpus: number; memory: number; vms: number }>();
  for (const vm of vms) {
    const host = hostOf(vm);
    if (vm.template || host === undefined) continue;
    const entry = allocated.get(host) ?? { cpus: 0, memory: 0, vms: 0 };
    const size = sizeOf(vm);
    entry.cpus += size.cpus;
    entry.memory += size.memoryBytes;
    entry.vms += 1;
    allocated.set(host, entry);
  }
  // A cluster, or the compute resource a standalone host is alone in: either can be placement.cluster.
  const clusters = new Map(computeResources.map((resource) => [resource.ref.value, textAt(resource.props.get('name')) ?? resource.ref.value]));
  return {
    hosts: hosts.map((host) => {
      const use = allocated.get(host.ref.value) ?? { cpus: 0, memory: 0, vms: 0 };
      const row: Inventory['hosts'][number] = {
        name: textAt(host.props.get('name')) ?? host.ref.value,
        cpus: intAt(host.props.get('summary.hardware.numCpuThreads')) ?? 0,
        memoryBytes: intAt(host.props.get('summary.hardware.memorySize')) ?? 0,
        cpusAllocated: use.cpus,
        memoryAllocatedBytes: use.memory,
        vms: use.vms,
        placed: placed.get(host.ref.value) ?? [],
      };
      const cluster = clusters.get(morefOf(host.props.get('parent'))?.value ?? '');
      if (cluster !== undefined) row.cluster = cluster;
      if (!withinDefaults(ctx.config.defaults, row.name, cluster)) row.selectable = false;
      return row;
    }),
    datastores: datastores.map((datastore) => {
      const capacity = intAt(datastore.props.get('summary.capacity')) ?? 0;
      return {
        name: textAt(datastore.props.get('name')) ?? datastore.ref.value,
        capacityBytes: capacity,
        usedBytes: Math.max(0, capacity - (intAt(datastore.props.get('summary.freeSpace')) ?? 0)),
      };
    }),
    networks: [...new Set(networks.map((network) => textAt(network.props.get('name')) ?? network.ref.value))].sort(),
  };
}

/**
 * Whether the Provider's compute defaults (VSPHERE_CLUSTER, VSPHERE_HOST) let a placement policy
 * choose this host: they bound every policy, as PVE_NODE_SELECTOR does on Proxmox. Names compare
 * by their last path step.
 */
function withinDefaults(defaults: PlacementDefaults, host: string, cluster: string | undefined): boolean {
  const last = (value: string) => value.split('/').filter((step) => step !== '').pop() ?? value;
  if (defaults.host !== undefined && last(defaults.host) !== host) return false;
  if (defaults.cluster !== undefined && last(defaults.cluster) !== cluster) return false;
  return true;
}

/**
 * The running clones, then a fresh VM list (as find.ts locateOwned reads them): a clone that ends
 * between the two reads registered its VM before it ended, so the list shows it; in the other
 * order it could be in neither.
 */
async function vmsAndClones(ctx: VsphereContext, signal?: AbortSignal): Promise<{ vms: VmRecord[]; clones: RunningClone[] }> {
  const clones = await runningClones(ctx, signal);
  ctx.vmList.invalidate();
  return { vms: await listVMs(ctx, signal), clones };
}

export interface Datacenter {
  ref: MoRef;
  name: string;
  vmFolder: MoRef;
  hostFolder: MoRef;
  datastoreFolder: MoRef;
  networkFolder: MoRef;
}

/** The configured datacenter, or the only one there is. */
export async function resolveDatacenter(ctx: VsphereContext, name: string | undefined, signal?: AbortSignal): Promise<Datacenter> {
  const { rootFolder } = await ctx.client.serviceContent(signal);
  const all = await retrieveAll(ctx.client, rootFolder, 'Datacenter', ['name', 'vmFolder', 'hostFolder', 'datastoreFolder', 'networkFolder'], signal);
  const candidates = name === undefined ? all : all.filter((dc) => textAt(dc.props.get('name')) === name);
  if (candidates.length === 0) throw new InvalidSpecError(name === undefined ? 'vSphere has no datacenter' : `datacenter '${name}' not found`);
  if (candidates.length > 1) throw new InvalidSpecError(name === undefined ? 'vSphere has several datacenters: set VSPHERE_DATACENTER' : `several datacenters are named '${name}'`);
  const dc = candidates[0] as ObjectContent;
  const folder = (key: string): MoRef => {
    const ref = morefOf(dc.props.get(key));
    // Every datacenter has its four folders: one missing is an answer vSphere should not give, not the spec's fault.
    if (ref === undefined) throw new HypervisorError(`datacenter ${dc.ref.value} was read without its ${key}`);
    return ref;
  };
  return {
    ref: dc.ref,
    name: textAt(dc.props.get('name')) ?? dc.ref.value,
    vmFolder: folder('vmFolder'),
    hostFolder: folder('hostFolder'),
    datastoreFolder: folder('datastoreFolder'),
    networkFolder: folder('networkFolder'),
  };
}

export type Kind = 'vm' | 'host' | 'datastore' | 'network';

/** SearchIndex.FindByInventoryPath; undefined when nothing is there (vSphere answers an empty response). */
export async function findByInventoryPath(ctx: VsphereContext, path: string, signal?: AbortSignal): Promise<MoRef | undefined> {
  const { searchIndex } = await ctx.client.serviceContent(signal);
  return morefOf(await ctx.client.returnval('FindByInventoryPath', [moref('_this', searchIndex), el('inventoryPath', path)], signal));
}

const KIND_FOLDER: Record<Kind, keyof Datacenter> = { vm: 'vmFolder', host: 'hostFolder', datastore: 'datastoreFolder', network: 'networkFolder' };

/**
 * The one object of `type` that `value` names (see the header): by inventory path, or by unique
 * name below `scope` (the datacenter's folder of that kind unless narrowed).
 */
export async function resolveObject(
  ctx: VsphereContext,
  dc: Datacenter,
  kind: Kind,
  types: readonly string[],
  value: string,
  what: string,
  within?: MoRef,
  signal?: AbortSignal,
): Promise<MoRef> {
  const scope = within ?? (dc[KIND_FOLDER[kind]] as MoRef);
  if (value.includes('/')) {
    const path = value.startsWith('/') ? value.slice(1) : `${dc.name}/${kind}/${value}`;
    const ref = await findByInventoryPath(ctx, path, signal);
    if (ref === undefined || !types.includes(ref.type)) throw new InvalidSpecError(`${what} '${value}' not found`);
    return ref;
  }
  const matches: MoRef[] = [];
  for (const type of new Set(types)) {
    const objects = await retrieveAll(ctx.client, scope, type, ['name'], signal);
    for (const object of objects) {
      if (textAt(object.props.get('name')) === value && object.ref.type === type && !matches.some((ref) => ref.value === object.ref.value)) matches.push(object.ref);
    }
  }
  if (matches.length === 0) throw new InvalidSpecError(`${what} '${value}' not found in datacenter ${dc.name}`);
  if (matches.length > 1) throw new InvalidSpecError(`${what} '${value}' is ambiguous in datacenter ${dc.name} (${matches.length} objects); use an inventory path`);
  return matches[0] as MoRef;
}

/** A cluster's or standalone host's root resource pool. */
export async function rootPoolOf(ctx: VsphereContext, computeResource: MoRef, signal?: AbortSignal): Promise<MoRef> {
  const object = await retrieveOne(ctx.client, computeResource, ['resourcePool'], signal);
  const pool = morefOf(object.props.get('resourcePool'));
  if (pool === undefined) throw new HypervisorError(`${computeResource.type} ${computeResource.value} was read without its resource pool`);
  return pool;
}

/** The compute resource (cluster or standalone) a host belongs to. */
export async function computeResourceOf(ctx: VsphereContext, host: MoRef, signal?: AbortSignal): Promise<MoRef> {
  const object = await retrieveOne(ctx.client, host, ['parent'], signal);
  const parent = morefOf(object.props.get('parent'));
  if (parent === undefined) throw new HypervisorError(`host ${host.value} was read without its parent compute resource`);
  return parent;
}
