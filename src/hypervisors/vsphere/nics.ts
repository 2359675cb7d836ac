// The NICs of a create's configuration step: which network each connects to, its adapter type
// (the model) and a manual MAC, as device changes of the one ReconfigVM_Task (create.ts).
// - Network: the one the NIC names (network, or bridge as the hooks call it), else one named like
//   the NIC, else the template's adapter keeps its own. A VLAN is a port group's, not the NIC's
//   (portgroups.ts): a named network must carry it; without a name the template's network serves
//   when it carries it, else the one port group of the datacenter that does.
// - Model: `virtio`, the API's default (hooks/resolve.ts), and no model keep the template's
//   adapter type (vmxnet3 for added NICs); others name a VirtualEthernetCard subtype. vSphere
//   cannot change an adapter's type (the device class is the type), so the adapter is removed and
//   one of the asked type added on the same network; the NICs after it are re-added too, so the
//   device keys, which name the NICs (identity.ts), stay in spec order.
// - MAC: a manual address, which vSphere takes only from 00:50:56:00:00:00–00:50:56:3F:FF:FF
//   (vSphere Networking, "Assigning a Static MAC Address"; the rest of the 00:50:56 OUI is
//   vCenter's generated range).
// MTU, firewall and rate limit are refused (validateNics): vSphere sets them on the switch or port
// group for every port on it (a vSwitch's MTU, a port group's traffic shaping, the distributed
// firewall), never for one adapter, so honouring them would change other VMs' NICs too.

import { HypervisorError, InvalidSpecError, UnsupportedError, type NicSpec } from '../../contracts/driver.js';
import { morefOf } from './client.js';
import { NIC_MODELS, addNicSpec, editNicSpec, removeDeviceSpec, type Devices, type NetworkTarget, type Nic } from './devices.js';
import { resolveObject, type Datacenter } from './inventory.js';
import { askedNicSettings } from './identity.js';
import { describeVlan, portgroupVlans, type PortgroupVlan } from './portgroups.js';
import { retrieveOne } from './property-collector.js';
import type { MoRef, Xml } from './soap.js';
import { textAt } from './xml.js';
import type { VsphereContext } from './vm.js';

export const MANUAL_MAC_RANGE = '00:50:56:00:00:00–00:50:56:3F:FF:FF';
const MAC = /^[0-9a-f]{2}(?::[0-9a-f]{2}){5}$/;

/** The settings a NIC asked for that describe reports back (model, VLAN), by NIC name (identity.ts KEY.nicSettings). */
export type AskedNicSettings = ReturnType<typeof askedNicSettings>;

/** The VirtualEthernetCard type a NIC asks for; undefined keeps the template's (vmxnet3 for added NICs). */
export function adapterType(nic: NicSpec): string | undefined {
  return nic.model === undefined || nic.model === 'virtio' ? undefined : NIC_MODELS[nic.model];
}

/** Refuses, before anything is cloned, what no configuration step could give these NICs. */
export function validateNics(nics: readonly NicSpec[]): void {
  const macs = new Map<string, string>();
  for (const nic of nics) {
    const unsupported = (['mtu', 'firewall', 'rateLimitMBps'] as const).filter((field) => nic[field] !== undefined);
    if (unsupported.length > 0) {
      throw new UnsupportedError(`NIC ${nic.name}: the vSphere driver does not set ${unsupported.join(', ')}: vSphere sets them per switch or port group, for every VM on it`);
    }
    if (nic.model !== undefined && nic.model !== 'virtio' && adapterType(nic) === undefined) {
      throw new InvalidSpecError(`NIC ${nic.name}: vSphere has no '${nic.model}' adapter (${Object.keys(NIC_MODELS).join(', ')})`);
    }
    if (nic.vlan !== undefined && (!Number.isInteger(nic.vlan) || nic.vlan < 1 || nic.vlan > 4094)) {
      throw new InvalidSpecError(`NIC ${nic.name}: VLAN ${nic.vlan} is not a VLAN ID (1–4094)`);
    }
    if (nic.mac !== undefined) {
      const mac = nic.mac.toLowerCase();
      if (!MAC.test(mac)) throw new InvalidSpecError(`NIC ${nic.name}: '${nic.mac}' is not a MAC address (six hex pairs separated by ':')`);
      if (!mac.startsWith('00:50:56:') || Number.parseInt(mac.slice(9, 11), 16) > 0x3f) {
        throw new InvalidSpecError(`NIC ${nic.name}: vSphere accepts a manual MAC only in ${MANUAL_MAC_RANGE}, not ${nic.mac}`);
      }
      const other = macs.get(mac);
      if (other !== undefined) throw new InvalidSpecError(`NICs ${other} and ${nic.name} ask for the same MAC ${nic.mac}`);
      macs.set(mac, nic.name);
    }
  }
}

/** A network or distributed port group, as a NIC backing names it. */
async function networkTarget(ctx: VsphereContext, ref: MoRef, name: string, signal?: AbortSignal): Promise<NetworkTarget> {
  if (ref.type !== 'DistributedVirtualPortgroup') return { kind: 'network', name: name.split('/').pop() ?? name, ref };
  const portgroup = await retrieveOne(ctx.client, ref, ['key', 'config.distributedVirtualSwitch'], signal);
  const dvs = morefOf(portgroup.props.get('config.distributedVirtualSwitch'));
  const uuid = dvs === undefined ? undefined : textAt((await retrieveOne(ctx.client, dvs, ['uuid'], signal)).props.get('uuid'));
  // Every distributed port group has its switch: one read without it is not the spec's fault.
  if (uuid === undefined) throw new HypervisorError(`port group '${name}' was read without its distributed switch`);
  return { kind: 'portgroup', name, ref, key: textAt(portgroup.props.get('key')) ?? ref.value, switchUuid: uuid };
}

/** A network or distributed port group by name (or inventory path) in the datacenter. */
export async function resolveNetwork(ctx: VsphereContext, dc: Datacenter, name: string, signal?: AbortSignal): Promise<NetworkTarget> {
  const ref = await resolveObject(ctx, dc, 'network', ['Network', 'DistributedVirtualPortgroup', 'OpaqueNetwork'], name, 'network', undefined, signal);
  return networkTarget(ctx, ref, name, signal);
}

/** The network a NIC names, else one named like the NIC; undefined when neither is there. */
async function namedNetwork(ctx: VsphereContext, dc: Datacenter, nic: NicSpec, signal?: AbortSignal): Promise<NetworkTarget | undefined> {
  const explicit = nic.network ?? nic.bridge;
  if (explicit !== undefined) return resolveNetwork(ctx, dc, explicit, signal);
  try {
    return await resolveNetwork(ctx, dc, nic.name, signal);
  } catch (error) {
    if (error instanceof InvalidSpecError) return undefined;
    throw error;
  }
}

/**
 * Where a NIC asking for a VLAN connects (see the header): undefined when the template's adapter
 * is on a port group that carries it already.
 */
export function chooseVlanPortgroup(
  nic: { name: string; vlan: number },
  named: { name: string; ref: MoRef } | undefined,
  current: MoRef | undefined,
  portgroups: readonly PortgroupVlan[],
  datacenter: string,
): PortgroupVlan | undefined {
  if (named !== undefined) {
    const found = portgroups.find((portgroup) => portgroup.ref.value === named.ref.value);
    if (found?.vlan === nic.vlan) return found;
    const carries = found === undefined ? 'no VLAN the driver can read' : describeVlan(found);
    throw new InvalidSpecError(`NIC ${nic.name}: network '${named.name}' carries ${carries}, not VLAN ${nic.vlan}; name a port group that carries VLAN ${nic.vlan}, or none`);
  }
  if (current !== undefined && portgroups.some((portgroup) => portgroup.ref.value === current.value && portgroup.vlan === nic.vlan)) return undefined;
  const carriers = portgroups.filter((portgroup) => portgroup.vlan === nic.vlan);
  if (carriers.length === 0) throw new InvalidSpecError(`NIC ${nic.name}: no port group in datacenter ${datacenter} carries VLAN ${nic.vlan}`);
  if (carriers.length > 1) {
    const names = carriers.map((portgroup) => portgroup.name).sort().join(', ');
    throw new InvalidSpecError(`NIC ${nic.name}: several port groups carry VLAN ${nic.vlan} (${names}); name one as the NIC's network`);
  }
  return carriers[0];
}

async function nicTarget(
  ctx: VsphereContext,
  dc: Datacenter,
  nic: NicSpec,
  existing: Nic | undefined,
  portgroups: () => Promise<PortgroupVlan[]>,
  signal?: AbortSignal,
): Promise<NetworkTarget | undefined> {
  const named = await namedNetwork(ctx, dc, nic, signal);
  if (nic.vlan === undefined) return named;
  const chosen = chooseVlanPortgroup({ name: nic.name, vlan: nic.vlan }, named, existing?.target?.ref, await portgroups(), dc.name);
  if (chosen === undefined || named !== undefined) return named;
  return networkTarget(ctx, chosen.ref, chosen.name, signal);
}

/**
 * The device changes that make the VM's NICs the spec's, what describe reports back for them, and
 * each NIC's MAC once they land (undefined for a NIC this step adds with a MAC vSphere generates).
 */
export async function nicChanges(
  ctx: VsphereContext,
  dc: Datacenter,
  devices: Devices,
  nics: readonly NicSpec[],
  nextKey: () => number,
  signal?: AbortSignal,
): Promise<{ changes: Xml[]; asked: AskedNicSettings; macs: (string | undefined)[] }> {
  let read: Promise<PortgroupVlan[]> | undefined;
  const portgroups = () => (read ??= portgroupVlans(ctx, dc, signal));
  const changes: Xml[] = [];
  const asked: AskedNicSettings = {};
  const macs: (string | undefined)[] = [];
  let readding = false;
  for (const [index, nic] of nics.entries()) {
    const existing = devices.nics[index];
    const target = await nicTarget(ctx, dc, nic, existing, portgroups, signal);
    const type = adapterType(nic);
    const mac = nic.mac?.toLowerCase();
    const fields = [...(type === undefined ? [] : (['model'] as const)), ...(nic.vlan === undefined ? [] : (['vlan'] as const))];
    if (fields.length > 0) asked[nic.name] = fields;
    if (existing !== undefined && !readding && (type === undefined || type === existing.type)) {
      const edit = editNicSpec(existing, { target, mac });
      if (edit !== undefined) changes.push(edit);
      macs.push(mac ?? existing.mac?.toLowerCase());
      continue;
    }
    if (existing !== undefined) {
      readding = true;
      changes.push(removeDeviceSpec(existing));
    }
    const where = target ?? existing?.target;
    if (where === undefined) {
      throw new InvalidSpecError(
        existing === undefined ? `NIC ${nic.name}: no network named '${nic.name}'; set its network` : `NIC ${nic.name}: the template's adapter is on a network the driver cannot connect a new adapter to; set its network`,
      );
    }
    changes.push(addNicSpec(nextKey(), type ?? existing?.type ?? 'VirtualVmxnet3', where, mac));
    macs.push(mac);
  }
  for (const extra of devices.nics.slice(nics.length)) changes.push(removeDeviceSpec(extra));
  return { changes, asked, macs };
}
