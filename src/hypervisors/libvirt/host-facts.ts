// What this libvirt host really has, read by probe: KVM, OVMF (UEFI, secure boot), swtpm, the
// seed-ISO tool of cloud-init, the nwfilter NIC firewalls use, the kernel's traffic control for
// NIC rate limits, and Open vSwitch for VLANs. The driver's capabilities are the driver-type
// defaults until a probe answered, then these facts laid over them. Create checks the same facts
// again for what it is asked (create.ts), so a VM never depends on a probe having run.

import type { Capabilities } from '../../contracts/driver.js';
import type { LibvirtConfig } from './config.js';
import type { LibvirtContext } from './context.js';

/** The nwfilter a NIC with `firewall: true` goes through: libvirt's own anti-spoofing filter (MAC, IP, ARP). */
export const FIREWALL_FILTER = 'clean-traffic';

export interface HostFacts {
  kvm: boolean;
  /** OVMF firmware the domain type can boot (domcapabilities `firmware` efi). */
  uefi: boolean;
  secureBoot: boolean;
  /** An emulated TPM (swtpm). */
  tpm: boolean;
  /** genisoimage, xorriso or cloud-localds: the NoCloud seed ISO (and installer-less small ISOs). */
  seedTool: string | undefined;
  /** The FIREWALL_FILTER nwfilter is defined. */
  firewallFilter: boolean;
  /** `tc` can build what libvirt's <bandwidth> asks; undefined when the host could not tell. */
  trafficControl: boolean | undefined;
  /** An Open vSwitch database answers ovs-vsctl (libvirt tags OVS ports with the NIC's VLAN). */
  openVSwitch: boolean;
}

const FACTS_MARK = '#virtrigaud-facts\n';

// A fixed script; the URI and domain type arrive as positional parameters. The traffic-control
// check makes, in a network namespace of its own (gone with the process), the qdiscs, class and
// filter libvirt 9 makes for <bandwidth> (virnetdevbandwidth.c): an HTB root with an SFQ leaf for
// inbound, an ingress qdisc with a u32 police filter for outbound. Kernels without sch_sfq or
// act_police (the CI peer's) fail there, as libvirt would when the VM starts.
const FACTS_SCRIPT = `set -u
virsh -q -c "$1" domcapabilities --virttype "$2" --arch x86_64 2>/dev/null
printf '\\n${FACTS_MARK}'
if [ -c /dev/kvm ] && virsh -q -c "$1" domcapabilities --virttype kvm --arch x86_64 >/dev/null 2>&1; then echo kvm=yes; else echo kvm=no; fi
echo "seed=$(command -v genisoimage || command -v xorriso || command -v cloud-localds || true)"
if virsh -q -c "$1" nwfilter-dumpxml "$3" >/dev/null 2>&1; then echo nwfilter=yes; else echo nwfilter=no; fi
if [ "$(id -u)" = 0 ]; then vr_unshare='unshare -n'; else vr_unshare='unshare -rn'; fi
if ! command -v unshare >/dev/null 2>&1 || ! command -v tc >/dev/null 2>&1 || ! $vr_unshare true 2>/dev/null; then
  echo tc=unknown
elif $vr_unshare sh -c 'ip link set lo up &&
  tc qdisc add dev lo root handle 1: htb default 1 &&
  tc class add dev lo parent 1: classid 1:1 htb rate 1000kbps &&
  tc qdisc add dev lo parent 1:1 handle 2: sfq perturb 10 &&
  tc qdisc add dev lo ingress &&
  tc filter add dev lo parent ffff: protocol all u32 match u32 0 0 police rate 1000kbps burst 1000kb mtu 64kb drop flowid :1' >/dev/null 2>&1; then
  echo tc=yes
else
  echo tc=no
fi
if command -v ovs-vsctl >/dev/null 2>&1 && ovs-vsctl --timeout=3 show >/dev/null 2>&1; then echo ovs=yes; else echo ovs=no; fi
`;

/** The values of `<enum name='…'>` inside the first `<element …>` of domcapabilities (an empty enum has none). */
function enumValues(xml: string, element: string, name: string): string[] {
  const inside = new RegExp(`<${element}[\\s>][\\s\\S]*?</${element}>`).exec(xml)?.[0] ?? '';
  const values = new RegExp(`<enum name='${name}'>([\\s\\S]*?)</enum>`).exec(inside)?.[1] ?? '';
  return [...values.matchAll(/<value>([^<]*)<\/value>/g)].map((match) => match[1] ?? '');
}

/** UEFI, secure boot and TPM from `virsh domcapabilities`. */
export function firmwareFacts(domcapabilities: string): Pick<HostFacts, 'uefi' | 'secureBoot' | 'tpm'> {
  return {
    uefi: enumValues(domcapabilities, 'os', 'firmware').includes('efi'),
    secureBoot: enumValues(domcapabilities, 'loader', 'secure').includes('yes'),
    tpm: /<tpm supported='yes'>/.test(domcapabilities) && enumValues(domcapabilities, 'tpm', 'backendModel').includes('emulator'),
  };
}

/** FACTS_SCRIPT's output → the facts. */
export function parseHostFacts(out: string): HostFacts {
  const at = out.indexOf(FACTS_MARK);
  const domcapabilities = at < 0 ? '' : out.slice(0, at);
  const values = new Map<string, string>();
  for (const line of (at < 0 ? out : out.slice(at + FACTS_MARK.length)).split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) values.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  const seed = values.get('seed') ?? '';
  const tc = values.get('tc');
  return {
    ...firmwareFacts(domcapabilities),
    kvm: values.get('kvm') === 'yes',
    seedTool: seed === '' ? undefined : seed,
    firewallFilter: values.get('nwfilter') === 'yes',
    trafficControl: tc === 'yes' ? true : tc === 'no' ? false : undefined,
    openVSwitch: values.get('ovs') === 'yes',
  };
}

export async function readHostFacts(ctx: LibvirtContext, signal?: AbortSignal): Promise<HostFacts> {
  const out = await ctx.host.exec(['sh', '-c', FACTS_SCRIPT, 'sh', ctx.host.uri, ctx.config.domainType, FIREWALL_FILTER], {
    signal,
    what: 'reading what the host offers',
  });
  return parseHostFacts(out);
}

/** The driver-type defaults with what this host lacks (or, for rate limits, has) laid over them. */
export function hostCapabilities(defaults: Capabilities, facts: HostFacts, config: Pick<LibvirtConfig, 'domainType'>): Capabilities {
  const seed = facts.seedTool !== undefined;
  return Object.freeze({
    ...defaults,
    uefi: defaults.uefi && facts.uefi,
    secureBoot: defaults.secureBoot && facts.uefi && facts.secureBoot,
    tpm: defaults.tpm && facts.tpm,
    nestedVirtualization: defaults.nestedVirtualization && config.domainType === 'kvm' && facts.kvm,
    cloudInit: defaults.cloudInit && seed,
    staticIP: defaults.staticIP && seed,
    cloudInitMetaData: defaults.cloudInitMetaData && seed,
    nicFirewall: defaults.nicFirewall && facts.firewallFilter,
    // Unproven where the host cannot tell: the default stands.
    nicRateLimit: facts.trafficControl ?? defaults.nicRateLimit,
    vlan: defaults.vlan && facts.openVSwitch,
  });
}
