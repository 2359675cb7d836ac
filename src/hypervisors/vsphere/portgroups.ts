// Port groups and the VLANs they carry. On vSphere a VLAN belongs to a port group, not to a NIC:
// a NIC is on VLAN 100 by being on a port group that carries it (nics.ts chooses one).
// - A distributed port group carries the VLAN of its default port config
//   (`config.defaultPortConfig.vlan`): a VmwareDistributedVirtualSwitchVlanIdSpec names one VLAN
//   (0: none); a trunk or a private VLAN names no single one.
// - A standard port group is defined on each host (HostNetworkSystem `networkInfo.portgroup`,
//   `spec.vlanId`: 0 none, 4095 every VLAN, a trunk), so it carries a VLAN when every host that
//   has it gives it the same one. The Network object's `host` list is not read: vcsim leaves it
//   empty for port groups added after start-up.

import { morefOf } from './client.js';
import type { Datacenter } from './inventory.js';
import { objectSpec, propertySpec, retrieve, retrieveAll, retrieveOne } from './property-collector.js';
import type { MoRef } from './soap.js';
import { child, intAt, textAt, type XmlElement } from './xml.js';
import type { VsphereContext } from './vm.js';

export interface PortgroupVlan {
  ref: MoRef;
  name: string;
  /** The one VLAN it carries; undefined for none, or no single one (`why` then says what it has). */
  vlan: number | undefined;
  why: string | undefined;
}

const TRUNK = 4095;

/** What a port group carries, for messages: `VLAN 100`, `no VLAN`, or why it has no single one. */
export function describeVlan(portgroup: Pick<PortgroupVlan, 'vlan' | 'why'>): string {
  if (portgroup.vlan !== undefined) return `VLAN ${portgroup.vlan}`;
  return portgroup.why ?? 'no VLAN';
}

/** A distributed port group's VLAN from its `config.defaultPortConfig`. */
export function distributedVlan(portConfig: XmlElement | undefined): Pick<PortgroupVlan, 'vlan' | 'why'> {
  const vlan = child(portConfig, 'vlan');
  const type = vlan?.type?.name;
  if (vlan === undefined || type === undefined) return { vlan: undefined, why: undefined };
  if (type === 'VmwareDistributedVirtualSwitchVlanIdSpec') {
    const id = intAt(vlan, 'vlanId') ?? 0;
    return { vlan: id === 0 ? undefined : id, why: undefined };
  }
  if (type === 'VmwareDistributedVirtualSwitchTrunkVlanSpec') return { vlan: undefined, why: 'a VLAN trunk' };
  if (type === 'VmwareDistributedVirtualSwitchPvlanSpec') return { vlan: undefined, why: `private VLAN ${intAt(vlan, 'pvlanId') ?? '?'}` };
  return { vlan: undefined, why: undefined };
}

/** A standard port group's VLAN from one host's `spec.vlanId`. */
function standardVlan(id: number | undefined): Pick<PortgroupVlan, 'vlan' | 'why'> {
  if (id === TRUNK) return { vlan: undefined, why: 'every VLAN (4095, a trunk)' };
  return { vlan: id === undefined || id === 0 ? undefined : id, why: undefined };
}

/** Each host's standard port groups: port group name → its `spec.vlanId`, per host moid. */
async function hostPortgroups(ctx: VsphereContext, hosts: readonly MoRef[], signal?: AbortSignal): Promise<Map<string, Map<string, number | undefined>>> {
  const systems = new Map<string, string>();
  if (hosts.length === 0) return new Map();
  const read = await retrieve(ctx.client, [propertySpec('HostSystem', ['configManager.networkSystem'])], hosts.map(objectSpec), signal);
  for (const host of read) {
    const system = morefOf(host.props.get('configManager.networkSystem'));
    if (system !== undefined) systems.set(system.value, host.ref.value);
  }
  const result = new Map<string, Map<string, number | undefined>>();
  if (systems.size === 0) return result;
  const infos = await retrieve(
    ctx.client,
    [propertySpec('HostNetworkSystem', ['networkInfo.portgroup'])],
    [...systems.keys()].map((value) => objectSpec({ type: 'HostNetworkSystem', value })),
    signal,
  );
  for (const info of infos) {
    const host = systems.get(info.ref.value);
    if (host === undefined) continue;
    const portgroups = new Map<string, number | undefined>();
    for (const portgroup of info.props.get('networkInfo.portgroup')?.children ?? []) {
      const name = textAt(portgroup, 'spec', 'name');
      if (name !== undefined) portgroups.set(name, intAt(portgroup, 'spec', 'vlanId'));
    }
    result.set(host, portgroups);
  }
  return result;
}

/** Every port group of the datacenter with the VLAN it carries, read afresh. */
export async function portgroupVlans(ctx: VsphereContext, dc: Datacenter, signal?: AbortSignal): Promise<PortgroupVlan[]> {
  const distributed = await retrieveAll(ctx.client, dc.networkFolder, 'DistributedVirtualPortgroup', ['name', 'config.defaultPortConfig'], signal);
  // A container view of type Network lists distributed port groups too (a subtype): only plain Networks here.
  const standard = (await retrieveAll(ctx.client, dc.networkFolder, 'Network', ['name'], signal)).filter((network) => network.ref.type === 'Network');
  const hosts = (await retrieveAll(ctx.client, dc.hostFolder, 'HostSystem', ['name'], signal)).map((host) => host.ref);
  const byHost = await hostPortgroups(ctx, hosts, signal);
  const result: PortgroupVlan[] = distributed.map((portgroup) => ({
    ref: portgroup.ref,
    name: textAt(portgroup.props.get('name')) ?? portgroup.ref.value,
    ...distributedVlan(portgroup.props.get('config.defaultPortConfig')),
  }));
  for (const network of standard) {
    const name = textAt(network.props.get('name')) ?? network.ref.value;
    const seen = [...byHost.values()].filter((portgroups) => portgroups.has(name)).map((portgroups) => standardVlan(portgroups.get(name)));
    const distinct = [...new Set(seen.map(describeVlan))];
    if (distinct.length <= 1) result.push({ ref: network.ref, name, ...(seen[0] ?? { vlan: undefined, why: undefined }) });
    else result.push({ ref: network.ref, name, vlan: undefined, why: `${distinct.join(' or ')} depending on the host` });
  }
  return result;
}

/** The VLAN a NIC is on: its distributed port group's, or its standard port group's on the VM's host. */
export async function nicVlan(
  ctx: VsphereContext,
  nic: { networkName: string | undefined; portgroupKey: string | undefined },
  host: MoRef | undefined,
  signal?: AbortSignal,
): Promise<number | undefined> {
  if (nic.portgroupKey !== undefined) {
    const portgroup = await retrieveOne(ctx.client, { type: 'DistributedVirtualPortgroup', value: nic.portgroupKey }, ['config.defaultPortConfig'], signal);
    return distributedVlan(portgroup.props.get('config.defaultPortConfig')).vlan;
  }
  if (nic.networkName === undefined || host === undefined) return undefined;
  const portgroups = (await hostPortgroups(ctx, [host], signal)).get(host.value);
  return standardVlan(portgroups?.get(nic.networkName)).vlan;
}

