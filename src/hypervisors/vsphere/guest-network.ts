// Static addresses for the guest: cloud-init network config version 2 in the `network` key of
// guestinfo.metadata, base64 with `network.encoding: base64` (cloud-init docs, VMware datasource:
// the meta-data's `network` may be encoded like the guestinfo keys themselves). Each NIC is
// matched by the MAC vSphere gave it, so the configuration step writes it once every NIC's MAC is
// known (nics.ts): NICs with a static address get it, with a default route to the gateway and the
// DNS servers; the others keep DHCP, as they would without a network config.
//
// VMware guest customization (CustomizationSpec, CustomizeVM_Task) is not used: it is a second,
// competing way into the guest's network (cloud-init skips its own network config when VMware
// customization ran), it needs identity settings a NicSpec does not carry (a Windows guest's
// sysprep with its administrator password), and it runs only through VMware Tools' deploy
// package at the next power-on.

import { isIPv4, isIPv6 } from 'node:net';
import { stringify } from 'yaml';
import { InvalidSpecError, type NicSpec } from '../../contracts/driver.js';

export type StaticIP = NonNullable<NicSpec['staticIP']>;

/** A NIC of the guest's network config: the MAC it has on the VM and its static address, if any. */
export interface GuestNic {
  mac: string;
  staticIP: StaticIP | undefined;
}

/** InvalidSpecError for a static address the guest could not use, before anything is cloned. */
export function checkStaticIPs(nics: readonly NicSpec[]): void {
  for (const nic of nics) {
    const staticIP = nic.staticIP;
    if (staticIP === undefined) continue;
    const [address = '', prefix] = staticIP.address.split('/');
    const v4 = isIPv4(address);
    if (!v4 && !isIPv6(address)) throw new InvalidSpecError(`NIC ${nic.name}: '${staticIP.address}' is not an IP address`);
    const bits = Number(prefix);
    if (prefix === undefined || prefix === '' || !Number.isInteger(bits) || bits < 0 || bits > (v4 ? 32 : 128)) {
      throw new InvalidSpecError(`NIC ${nic.name}: static address '${staticIP.address}' needs a prefix length, for example ${address}/${v4 ? 24 : 64}`);
    }
    if (staticIP.gateway !== undefined && !(v4 ? isIPv4(staticIP.gateway) : isIPv6(staticIP.gateway))) {
      throw new InvalidSpecError(`NIC ${nic.name}: gateway '${staticIP.gateway}' is not an IPv${v4 ? 4 : 6} address`);
    }
    const server = (staticIP.dns ?? []).find((entry) => !isIPv4(entry) && !isIPv6(entry));
    if (server !== undefined) throw new InvalidSpecError(`NIC ${nic.name}: DNS server '${server}' is not an IP address`);
  }
}

/** Network config v2 for these NICs (see the header). */
export function networkConfig(nics: readonly GuestNic[]): Record<string, unknown> {
  const ethernets: Record<string, unknown> = {};
  nics.forEach((nic, index) => {
    const entry: Record<string, unknown> = { match: { macaddress: nic.mac.toLowerCase() } };
    const staticIP = nic.staticIP;
    if (staticIP === undefined) {
      entry['dhcp4'] = true;
    } else {
      entry['addresses'] = [staticIP.address];
      // An explicit destination, not `default`: older cloud-init renderers (sysconfig, eni) read only CIDRs.
      if (staticIP.gateway !== undefined) entry['routes'] = [{ to: isIPv4(staticIP.gateway) ? '0.0.0.0/0' : '::/0', via: staticIP.gateway }];
      if (staticIP.dns !== undefined && staticIP.dns.length > 0) entry['nameservers'] = { addresses: [...staticIP.dns] };
    }
    ethernets[`nic${index}`] = entry;
  });
  return { version: 2, ethernets };
}

/** The meta-data keys that carry a network config. */
export function networkMetaData(config: Record<string, unknown>): Record<string, string> {
  return { network: Buffer.from(stringify(config), 'utf8').toString('base64'), 'network.encoding': 'base64' };
}
