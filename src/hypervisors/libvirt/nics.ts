// NICs: what a spec asks of each (VLAN, MAC, model, MTU, firewall, rate limit, static IP) → the
// domain's <interface>, and back → ObservedNic. Nothing a NIC asks is dropped: what the driver or
// the host cannot give is refused before anything is created.

import {
  InvalidSpecError,
  NotFoundError,
  UnsupportedError,
  type Capabilities,
  type Capability,
  type NicSpec,
  type ObservedNic,
} from '../../contracts/driver.js';
import type { LibvirtContext } from './context.js';
import type { DomainNic, ParsedDomain, ParsedNic } from './domain-xml.js';
import { FIREWALL_FILTER, readHostFacts } from './host-facts.js';
import { randomMac } from './names.js';

const MAC = /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/;
// Ethernet's IPv4 minimum to the largest MTU a tap device takes.
const MTU = { min: 68, max: 65_535 };

/**
 * libvirt's <bandwidth> `average` is handed to tc as `<n>kbps`, which tc reads as kilobytes of
 * 1000 bytes per second (measured on the CI peer: `rate 1000kbps` shows as 8Mbit). A rate limit
 * of R MB/s (10^6 bytes) is therefore R × 1000, exact for up to three decimals.
 */
export const KB_PER_MB = 1000;

/** What each NIC asks that needs a capability, with the words to name it. */
export function nicsAsked(nics: readonly NicSpec[]): [Capability, string][] {
  const asked: [Capability, string][] = [];
  for (const nic of nics) {
    if (nic.vlan !== undefined) asked.push(['vlan', `a VLAN on NIC '${nic.name}'`]);
    if (nic.mac !== undefined) asked.push(['macAddress', `a fixed MAC on NIC '${nic.name}'`]);
    if (nic.model !== undefined) asked.push(['nicModel', `a NIC model on NIC '${nic.name}'`]);
    if (nic.mtu !== undefined) asked.push(['nicMTU', `an MTU on NIC '${nic.name}'`]);
    if (nic.firewall === true) asked.push(['nicFirewall', `a firewall on NIC '${nic.name}'`]);
    if (nic.rateLimitMBps !== undefined) asked.push(['nicRateLimit', `a rate limit on NIC '${nic.name}'`]);
    if (nic.staticIP !== undefined) asked.push(['staticIP', `a static IP on NIC '${nic.name}'`]);
  }
  return asked;
}

/** The first NIC setting `capabilities` lack, as an UnsupportedError; undefined when none. */
export function unsupportedNicSetting(nics: readonly NicSpec[], capabilities: Capabilities): UnsupportedError | undefined {
  const missing = nicsAsked(nics).find(([capability]) => !capabilities[capability]);
  return missing === undefined ? undefined : new UnsupportedError(`the libvirt driver on this host cannot set ${missing[1]} (capability ${missing[0]})`);
}

/** The <bandwidth> average for a rate limit in MB/s. */
export function bandwidthOf(nic: Pick<NicSpec, 'name' | 'rateLimitMBps'>): number | undefined {
  const rate = nic.rateLimitMBps;
  if (rate === undefined) return undefined;
  const average = rate * KB_PER_MB;
  // A rate rounded on the way in would read back as another one: refused instead.
  if (!Number.isFinite(rate) || rate <= 0 || Math.abs(average - Math.round(average)) > 1e-6 || Math.round(average) > Number.MAX_SAFE_INTEGER) {
    throw new InvalidSpecError(`NIC '${nic.name}': the rate limit must be a positive number of MB/s with at most three decimals, not ${rate}`);
  }
  return Math.round(average);
}

/** Refuses a NIC value libvirt would refuse, or take and change. */
export function validateNic(nic: NicSpec): void {
  if (nic.mac !== undefined && !MAC.test(nic.mac.toLowerCase())) throw new InvalidSpecError(`NIC ${nic.name}: invalid MAC address`);
  if (nic.mtu !== undefined && (!Number.isInteger(nic.mtu) || nic.mtu < MTU.min || nic.mtu > MTU.max)) {
    throw new InvalidSpecError(`NIC '${nic.name}': the MTU must be a whole number from ${MTU.min} to ${MTU.max}, not ${nic.mtu}`);
  }
  if (nic.vlan !== undefined && (!Number.isInteger(nic.vlan) || nic.vlan < 0 || nic.vlan > 4095)) {
    throw new InvalidSpecError(`NIC '${nic.name}': the VLAN must be a whole number from 0 to 4095, not ${nic.vlan}`);
  }
  bandwidthOf(nic);
}

/** The networks a NIC that names neither bridge nor network joins: with a VLAN the VLAN network, when there is one. */
export interface NetworkDefaults {
  defaultNetwork: string;
  vlanNetwork?: string;
}

/** Where the NIC attaches: its bridge, its network, or the configured one. */
export function nicSource(nic: NicSpec, defaults: NetworkDefaults): DomainNic['source'] {
  if (nic.bridge !== undefined) return { bridge: nic.bridge };
  if (nic.network !== undefined) return { network: nic.network };
  return { network: nic.vlan !== undefined ? (defaults.vlanNetwork ?? defaults.defaultNetwork) : defaults.defaultNetwork };
}

export function domainNic(nic: NicSpec, defaults: NetworkDefaults): DomainNic {
  const source = nicSource(nic, defaults);
  const domain: DomainNic = { mac: nic.mac?.toLowerCase() ?? randomMac(), source, model: nic.model ?? 'virtio' };
  if (nic.vlan !== undefined) domain.vlan = nic.vlan;
  if (nic.mtu !== undefined) domain.mtu = nic.mtu;
  const bandwidth = bandwidthOf(nic);
  if (bandwidth !== undefined) domain.bandwidthKBps = bandwidth;
  if (nic.firewall === true) domain.filter = FIREWALL_FILTER;
  return domain;
}

/** A clone's NIC: the source NIC's network, VLAN, model, MTU, rate limit and filter, with a new MAC. */
export function copiedNic(nic: ParsedNic, mac: string, defaultNetwork: string): DomainNic {
  const copy: DomainNic = { mac, source: nic.bridge !== undefined ? { bridge: nic.bridge } : { network: nic.network ?? defaultNetwork }, model: nic.model ?? 'virtio' };
  if (nic.vlan !== undefined) copy.vlan = nic.vlan;
  if (nic.mtu !== undefined) copy.mtu = nic.mtu;
  const rate = rateLimitOf(nic);
  if (rate !== undefined) copy.bandwidthKBps = Math.round(rate * KB_PER_MB);
  if (nic.filter !== undefined) copy.filter = nic.filter;
  return copy;
}

/** The rate limit a NIC has: the lower of its two directions (both are the same when we set it). */
export function rateLimitOf(nic: ParsedNic): number | undefined {
  const averages = [nic.inboundKBps, nic.outboundKBps].filter((average): average is number => average !== undefined);
  return averages.length === 0 ? undefined : Math.min(...averages) / KB_PER_MB;
}

export function observedNics(domain: ParsedDomain): ObservedNic[] {
  return domain.nics.map((nic, index) => {
    const name = domain.metadata?.nics.find((entry) => entry.mac === nic.mac)?.name ?? `nic${index}`;
    const observed: ObservedNic = { name, mac: nic.mac, firewall: nic.filter !== undefined };
    const network = nic.network ?? nic.bridge;
    if (network !== undefined) observed.network = network;
    if (nic.vlan !== undefined) observed.vlan = nic.vlan;
    if (nic.model !== undefined) observed.model = nic.model;
    if (nic.mtu !== undefined) observed.mtu = nic.mtu;
    const rate = rateLimitOf(nic);
    if (rate !== undefined) observed.rateLimitMBps = rate;
    return observed;
  });
}

/**
 * Whether the NIC's network or bridge carries VLAN tags: libvirt applies <vlan> to Open vSwitch
 * ports only, and refuses it on a NAT, routed or isolated network or a Linux bridge when the VM
 * starts ("vlan tag not supported for this connection type"), which would be too late.
 */
export function networkTakesVlans(networkXml: string): boolean {
  return /<virtualport\s+type=['"]openvswitch['"]/.test(networkXml);
}

/** Whether the NIC's network or bridge is Open vSwitch. */
async function onOpenVSwitch(ctx: LibvirtContext, nic: NicSpec, signal?: AbortSignal): Promise<boolean> {
  const source = nicSource(nic, ctx.config);
  if ('bridge' in source) return (await ctx.host.execResult(['ovs-vsctl', '--timeout=5', 'br-exists', source.bridge], { signal })).code === 0;
  const xml = await ctx.host.virsh(['net-dumpxml', '--network', source.network], { signal }).catch((error: unknown) => {
    throw error instanceof NotFoundError ? new InvalidSpecError(`NIC '${nic.name}': network ${source.network} does not exist`) : error;
  });
  return networkTakesVlans(xml);
}

/** Refuses, before anything is created, what the host cannot give the NICs (the checks only run for what is asked). */
export async function checkNicHost(ctx: LibvirtContext, nics: readonly NicSpec[], signal?: AbortSignal): Promise<void> {
  for (const nic of nics) {
    if (nic.vlan === undefined && nic.firewall !== true) continue;
    const ovs = await onOpenVSwitch(ctx, nic, signal);
    const source = nicSource(nic, ctx.config);
    const where = 'bridge' in source ? `bridge ${source.bridge}` : `network ${source.network}`;
    if (nic.vlan !== undefined && !ovs) throw new InvalidSpecError(`NIC '${nic.name}': ${where} is not Open vSwitch, and only Open vSwitch carries VLAN tags`);
    // nwfilter's ebtables and iptables rules see frames crossing a Linux bridge only: on an OVS port they would filter nothing.
    if (nic.firewall === true && ovs) throw new InvalidSpecError(`NIC '${nic.name}': ${where} is Open vSwitch, where libvirt's nwfilter firewall does not apply`);
  }
  if (nics.some((nic) => nic.rateLimitMBps !== undefined) && (await readHostFacts(ctx, signal)).trafficControl !== true) {
    throw new UnsupportedError(`NIC rate limits need the kernel's HTB and SFQ queueing and police action on the host (tc), which libvirt's <bandwidth> uses`);
  }
  if (nics.some((nic) => nic.firewall === true)) {
    const filter = await ctx.host.virshResult(['nwfilter-dumpxml', FIREWALL_FILTER], { signal });
    if (filter.code !== 0) throw new UnsupportedError(`NIC firewalls need libvirt's nwfilter ${FIREWALL_FILTER} on the host (Debian: libvirt-daemon-config-nwfilter)`);
  }
}
