// Guest agents (qemu-guest-agent, VMware Tools, libvirt domifaddr) report every address of every
// interface, including loopback and the link-local ones each NIC configures on its own. None of
// those are reachable from outside the guest, so drivers pass what they read through here before
// it becomes ObservedVM.ips.

import { BlockList, isIPv4, isIPv6 } from 'node:net';

// BlockList also matches IPv4-mapped IPv6 addresses (::ffff:127.0.0.1) against the IPv4 rules.
const unreachable = new BlockList();
unreachable.addSubnet('0.0.0.0', 8, 'ipv4'); // "this network", including the unspecified 0.0.0.0
unreachable.addSubnet('127.0.0.0', 8, 'ipv4');
unreachable.addSubnet('169.254.0.0', 16, 'ipv4');
unreachable.addSubnet('224.0.0.0', 4, 'ipv4'); // multicast: never an interface address
unreachable.addAddress('255.255.255.255', 'ipv4');
unreachable.addAddress('::', 'ipv6');
unreachable.addAddress('::1', 'ipv6');
unreachable.addSubnet('fe80::', 10, 'ipv6');
unreachable.addSubnet('ff00::', 8, 'ipv6');

/**
 * The addresses a client outside the guest could use, in their original order, each once.
 * Accepts "10.0.0.5/24" and "fe80::1%eth0" forms (libvirt and guest agents print them) and returns
 * bare addresses; IPv6 comes out in canonical form (RFC 5952) so that spellings de-duplicate.
 * Anything that is not an IP address is dropped.
 */
export function filterGuestAddresses(addresses: string[]): string[] {
  const seen = new Set<string>();
  const result: string[] = [];
  for (const raw of addresses) {
    const address = canonicalAddress(raw);
    if (address === undefined || seen.has(address)) continue;
    seen.add(address);
    if (unreachable.check(address, isIPv4(address) ? 'ipv4' : 'ipv6')) continue;
    result.push(address);
  }
  return result;
}

function canonicalAddress(raw: string): string | undefined {
  const bare = raw.trim().replace(/\/\d{1,3}$/, '').replace(/%.*$/, '');
  if (isIPv4(bare)) return bare;
  if (!isIPv6(bare)) return undefined;
  // The WHATWG URL parser serializes IPv6 hosts canonically: lower case, zeros compressed.
  return new URL(`http://[${bare}]/`).hostname.slice(1, -1);
}
