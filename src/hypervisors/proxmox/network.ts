// NICs on PVE: which bridge a spec NIC lands on, the `net<i>` and `ipconfig<i>` strings, and the
// bridges a node has. Pure except for listBridges.

import { isIPv4, isIPv6 } from 'node:net';
import { InvalidSpecError, UnreachableError, type NicSpec } from '../../contracts/driver.js';
import type { ProxmoxClient, RequestOptions } from './client.js';
import { segment } from './client.js';
import { NIC_MODELS, type NicSlot } from './hardware.js';
import { rows, str } from './values.js';

// The provider guide's network-name table (seed 001, "Network Bridge Mapping").
const SEED_BRIDGES: Readonly<Record<string, string>> = {
  lan: 'vmbr0',
  default: 'vmbr0',
  dmz: 'vmbr1',
  mgmt: 'vmbr2',
  management: 'vmbr2',
};

// `pve-bridge-id` (qemu-server QemuServer.pm).
const BRIDGE_ID = /^[-_.\w\d]+$/;

/**
 * The bridge of a NIC. An explicit bridge is taken as is; a network (PVE has no other kind of
 * network than a bridge or an SDN vnet, which is also a bridge) or, lacking both, the NIC's name
 * goes through the seed's table (`lan`→vmbr0, `dmz`→vmbr1, `mgmt`→vmbr2) and is otherwise a
 * bridge name itself (`vmbr3`, `vnet0`).
 */
export function bridgeFor(nic: NicSpec): string {
  const bridge = nic.bridge ?? SEED_BRIDGES[(nic.network ?? nic.name).toLowerCase()] ?? nic.network ?? nic.name;
  if (!BRIDGE_ID.test(bridge)) throw new InvalidSpecError(`NIC '${nic.name}': '${bridge}' is not a valid bridge name`);
  return bridge;
}

function validMac(mac: string): boolean {
  if (!/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/i.test(mac)) return false;
  // PVE refuses multicast MACs (pve-common pve_verify_mac_addr: the first octet must be even).
  return (Number.parseInt(mac.slice(0, 2), 16) & 1) === 0;
}

/**
 * `net<i>`: `<model>[=<MAC>],bridge=…[,tag=…][,firewall=1][,rate=…][,mtu=…]`. Without a MAC in
 * the spec, the one the clone got is kept: a new value without a MAC would make PVE generate yet
 * another one.
 */
export function nicValue(nic: NicSpec, existing: NicSlot | undefined): string {
  const model = nic.model ?? existing?.model ?? 'virtio';
  if (!(NIC_MODELS as readonly string[]).includes(model)) {
    throw new InvalidSpecError(`NIC '${nic.name}': model '${model}' is not one of ${NIC_MODELS.join(', ')}`);
  }
  const mac = nic.mac ?? existing?.mac;
  if (nic.mac !== undefined && !validMac(nic.mac)) throw new InvalidSpecError(`NIC '${nic.name}' has an invalid or multicast MAC '${nic.mac}'`);
  const parts = [mac === undefined ? model : `${model}=${mac.toUpperCase()}`, `bridge=${bridgeFor(nic)}`];
  if (nic.vlan !== undefined) {
    if (!Number.isInteger(nic.vlan) || nic.vlan < 1 || nic.vlan > 4094) throw new InvalidSpecError(`NIC '${nic.name}' has an invalid VLAN ${nic.vlan}`);
    parts.push(`tag=${nic.vlan}`);
  }
  if (nic.firewall === true) parts.push('firewall=1');
  if (nic.rateLimitMBps !== undefined) {
    if (!(nic.rateLimitMBps >= 0)) throw new InvalidSpecError(`NIC '${nic.name}' has an invalid rate limit ${nic.rateLimitMBps}`);
    parts.push(`rate=${nic.rateLimitMBps}`);
  }
  if (nic.mtu !== undefined) {
    // qemu-server accepts `mtu` only on virtio NICs.
    if (model !== 'virtio') throw new InvalidSpecError(`NIC '${nic.name}': an MTU needs the virtio model, not ${model}`);
    if (!Number.isInteger(nic.mtu) || nic.mtu < 1 || nic.mtu > 65520) throw new InvalidSpecError(`NIC '${nic.name}' has an invalid MTU ${nic.mtu}`);
    parts.push(`mtu=${nic.mtu}`);
  }
  return parts.join(',');
}

/** `ipconfig<i>`: static `ip=a/nn,gw=g` (or ip6/gw6), else DHCP. Paired with `net<i>` by index. */
export function ipconfigValue(nic: NicSpec): string {
  const staticIP = nic.staticIP;
  if (staticIP === undefined) return 'ip=dhcp';
  const [address = '', prefix] = staticIP.address.split('/');
  const v4 = isIPv4(address);
  if (!v4 && !isIPv6(address)) throw new InvalidSpecError(`NIC '${nic.name}': '${staticIP.address}' is not an IP address`);
  const bits = Number(prefix);
  if (prefix === undefined || !Number.isInteger(bits) || bits < 0 || bits > (v4 ? 32 : 128)) {
    throw new InvalidSpecError(`NIC '${nic.name}': static address '${staticIP.address}' needs a prefix length, for example ${address}/24`);
  }
  const parts = [`${v4 ? 'ip' : 'ip6'}=${address}/${bits}`];
  if (staticIP.gateway !== undefined) {
    // A gateway must be of the address's family (qemu-server Cloudinit.pm checks it too).
    if (v4 ? !isIPv4(staticIP.gateway) : !isIPv6(staticIP.gateway)) {
      throw new InvalidSpecError(`NIC '${nic.name}': gateway '${staticIP.gateway}' is not an IPv${v4 ? 4 : 6} address`);
    }
    parts.push(`${v4 ? 'gw' : 'gw6'}=${staticIP.gateway}`);
  }
  return parts.join(',');
}

/** DNS servers of every static NIC, each once, in NIC order. */
export function nameservers(spec: readonly NicSpec[]): string[] {
  const servers: string[] = [];
  for (const nic of spec) {
    for (const server of nic.staticIP?.dns ?? []) {
      if (!isIPv4(server) && !isIPv6(server)) throw new InvalidSpecError(`NIC '${nic.name}': DNS server '${server}' is not an IP address`);
      if (!servers.includes(server)) servers.push(server);
    }
  }
  return servers;
}

/**
 * Bridges (and SDN vnets) of a node, or undefined when the node does not tell us: listing them
 * needs Sys.Audit, which the guide's minimal role lacks, and a check that cannot run must not
 * block a create.
 */
export async function listBridges(client: ProxmoxClient, node: string, options: RequestOptions): Promise<string[] | undefined> {
  try {
    const data = await client.get(`/nodes/${segment(node)}/network`, { type: 'any_bridge' }, options);
    return rows(data)
      .map((row) => str(row['iface']))
      .filter((iface): iface is string => iface !== undefined);
  } catch (error) {
    if (error instanceof UnreachableError) throw error;
    return undefined;
  }
}
