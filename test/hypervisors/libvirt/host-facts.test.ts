// What probe reads of the host and how it narrows the driver's capabilities: before a probe the
// driver-type defaults, after it what this host has (OVMF, swtpm, KVM, the seed tool, the
// nwfilter, traffic control, Open vSwitch).
import { readFileSync } from 'node:fs';
import t from 'tap';
import { LIBVIRT_CAPABILITIES } from '../../../src/hypervisors/libvirt/driver.js';
import { firmwareFacts, hostCapabilities, parseHostFacts, type HostFacts } from '../../../src/hypervisors/libvirt/host-facts.js';

// `virsh domcapabilities --virttype qemu` of the CI peer: no OVMF, no swtpm.
const WITHOUT_OVMF = readFileSync(new URL('../../fixtures/libvirt/domcapabilities-tcg-without-ovmf.xml', import.meta.url), 'utf8');
// The same host with OVMF (secure boot variant) and swtpm installed, as libvirt lists them.
const WITH_OVMF = WITHOUT_OVMF.replace("<enum name='firmware'/>", "<enum name='firmware'>\n      <value>efi</value>\n    </enum>")
  .replace("<enum name='secure'>\n        <value>no</value>", "<enum name='secure'>\n        <value>yes</value>\n        <value>no</value>")
  .replace("<value>passthrough</value>\n      </enum>\n    </tpm>", "<value>passthrough</value>\n        <value>emulator</value>\n      </enum>\n    </tpm>");

const EVERYTHING: HostFacts = { kvm: true, uefi: true, secureBoot: true, tpm: true, seedTool: '/usr/bin/genisoimage', firewallFilter: true, trafficControl: true, openVSwitch: true };

t.test('domcapabilities without OVMF or swtpm: no UEFI, no secure boot, no TPM', async (t) => {
  t.same(firmwareFacts(WITHOUT_OVMF), { uefi: false, secureBoot: false, tpm: false });
  t.same(firmwareFacts(WITH_OVMF), { uefi: true, secureBoot: true, tpm: true });
});

t.test('a value of another enum further down is not taken for the firmware, secure boot or TPM backend', async (t) => {
  const elsewhere = WITHOUT_OVMF.replace('</domainCapabilities>', "<features><enum name='secure'><value>yes</value></enum><enum name='backendModel'><value>emulator</value></enum></features></domainCapabilities>");
  t.same(firmwareFacts(elsewhere), { uefi: false, secureBoot: false, tpm: false });
});

t.test('the facts script output parses into facts; a host that cannot tell about traffic control is "unknown"', async (t) => {
  const out = `${WITH_OVMF}\n#virtrigaud-facts\nkvm=yes\nseed=/usr/bin/xorriso\nnwfilter=yes\ntc=no\novs=no\n`;
  t.same(parseHostFacts(out), { uefi: true, secureBoot: true, tpm: true, kvm: true, seedTool: '/usr/bin/xorriso', firewallFilter: true, trafficControl: false, openVSwitch: false });
  const bare = parseHostFacts(`\n#virtrigaud-facts\nkvm=no\nseed=\nnwfilter=no\ntc=unknown\novs=no\n`);
  t.same(bare, { uefi: false, secureBoot: false, tpm: false, kvm: false, seedTool: undefined, firewallFilter: false, trafficControl: undefined, openVSwitch: false });
});

t.test('a host without OVMF: uefi and secureBoot off after the probe, the rest as the defaults say', async (t) => {
  const facts = { ...EVERYTHING, ...firmwareFacts(WITHOUT_OVMF) };
  const capabilities = hostCapabilities(LIBVIRT_CAPABILITIES, facts, { domainType: 'kvm' });
  t.match(capabilities, { uefi: false, secureBoot: false, tpm: false, nestedVirtualization: true, cloudInit: true, nicFirewall: true, vlan: true });
  t.equal(LIBVIRT_CAPABILITIES.uefi, true, 'the driver-type defaults are untouched');
});

t.test('what a host lacks turns its capabilities off; type qemu never nests', async (t) => {
  const lacking: HostFacts = { kvm: false, uefi: false, secureBoot: false, tpm: false, seedTool: undefined, firewallFilter: false, trafficControl: false, openVSwitch: false };
  t.match(hostCapabilities(LIBVIRT_CAPABILITIES, lacking, { domainType: 'kvm' }), {
    nestedVirtualization: false,
    cloudInit: false,
    staticIP: false,
    cloudInitMetaData: false,
    nicFirewall: false,
    nicRateLimit: false,
    vlan: false,
    // What needs nothing of the host stays.
    nicMTU: true,
    macAddress: true,
    suspend: true,
    hardReset: true,
  });
  t.equal(hostCapabilities(LIBVIRT_CAPABILITIES, EVERYTHING, { domainType: 'qemu' }).nestedVirtualization, false);
});

t.test('rate limits are claimed only where the host proved it can shape traffic as libvirt does', async (t) => {
  t.equal(LIBVIRT_CAPABILITIES.nicRateLimit, false, 'not by default: the CI peer cannot');
  t.equal(hostCapabilities(LIBVIRT_CAPABILITIES, EVERYTHING, { domainType: 'kvm' }).nicRateLimit, true);
  t.equal(hostCapabilities(LIBVIRT_CAPABILITIES, { ...EVERYTHING, trafficControl: undefined }, { domainType: 'kvm' }).nicRateLimit, false, 'unknown: the default');
});
