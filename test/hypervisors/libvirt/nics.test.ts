// NIC settings: what a NIC asks becomes its <interface> (MTU, <bandwidth>, <filterref>, VLAN) and
// reads back as the same ObservedNic; what cannot be honoured exactly is refused, never dropped.
import t from 'tap';
import type { NicSpec } from '../../../src/contracts/driver.js';
import { LIBVIRT_CAPABILITIES } from '../../../src/hypervisors/libvirt/driver.js';
import { domainXml, parseDomain, type DomainSpec } from '../../../src/hypervisors/libvirt/domain-xml.js';
import { bandwidthOf, copiedNic, domainNic, networkTakesVlans, nicSource, observedNics, unsupportedNicSetting, validateNic } from '../../../src/hypervisors/libvirt/nics.js';

function domainWith(nics: NicSpec[]): DomainSpec {
  const made = nics.map((nic) => domainNic(nic, { defaultNetwork: 'default' }));
  return {
    uuid: '6c9b2f0e-5a43-4b8e-9d8c-2b2f0b7f1a01',
    name: 'web',
    type: 'qemu',
    memoryKiB: 262_144,
    maxMemoryKiB: 262_144,
    cpus: 1,
    maxCpus: 1,
    uefi: false,
    secureBoot: false,
    tpm: false,
    nested: false,
    disks: [],
    nics: made,
    vncListen: '127.0.0.1',
    metadata: {
      owner: { uid: 'u1', namespace: 'prod', name: 'web' },
      disks: [],
      nics: nics.map((nic, index) => ({ name: nic.name, mac: made[index]?.mac ?? '' })),
      bases: [],
      cpuHotAdd: false,
      memoryHotAdd: false,
    },
  };
}

t.test('MTU, rate limit and firewall are written into the interface and read back as asked', async (t) => {
  const nic: NicSpec = { name: 'lan', mac: '52:54:00:aa:bb:cc', mtu: 1400, rateLimitMBps: 10, firewall: true };
  const xml = domainXml(domainWith([nic, { name: 'plain', mac: '52:54:00:aa:bb:cd' }]));
  t.match(xml, "<bandwidth><inbound average='10000'/><outbound average='10000'/></bandwidth>", 'both directions, in kB/s');
  t.match(xml, "<mtu size='1400'/>");
  t.match(xml, "<filterref filter='clean-traffic'/>");
  t.same(observedNics(parseDomain(xml)), [
    { name: 'lan', mac: '52:54:00:aa:bb:cc', firewall: true, network: 'default', model: 'virtio', mtu: 1400, rateLimitMBps: 10 },
    { name: 'plain', mac: '52:54:00:aa:bb:cd', firewall: false, network: 'default', model: 'virtio' },
  ]);
});

t.test('a rate limit in MB/s is libvirt kB/s times 1000 and comes back exactly, fractions included', async (t) => {
  for (const rate of [0.001, 0.5, 1, 2.125, 12.5, 1000]) {
    const xml = domainXml(domainWith([{ name: 'lan', mac: '52:54:00:aa:bb:cc', rateLimitMBps: rate }]));
    t.equal(observedNics(parseDomain(xml))[0]?.rateLimitMBps, rate, `${rate} MB/s`);
  }
  t.equal(bandwidthOf({ name: 'lan', rateLimitMBps: 0.1 }), 100, 'no floating-point leftovers');
});

t.test('a NIC limited one way only, or two ways differently, reports the lower limit', async (t) => {
  const one = "<domain><devices><interface type='network'><mac address='52:54:00:00:00:01'/><bandwidth><outbound average='2500'/></bandwidth></interface></devices></domain>";
  t.equal(observedNics(parseDomain(one))[0]?.rateLimitMBps, 2.5);
  const two = "<domain><devices><interface type='network'><mac address='52:54:00:00:00:01'/><bandwidth><inbound average='8000'/><outbound average='3000'/></bandwidth></interface></devices></domain>";
  t.equal(observedNics(parseDomain(two))[0]?.rateLimitMBps, 3);
});

t.test('values libvirt would refuse or change are InvalidSpec before anything is made', async (t) => {
  const refused: [Partial<NicSpec>, RegExp][] = [
    [{ mtu: 67 }, /MTU must be a whole number from 68 to 65535/],
    [{ mtu: 1400.5 }, /MTU/],
    [{ mtu: 65_536 }, /MTU/],
    [{ rateLimitMBps: 0 }, /rate limit must be a positive number/],
    [{ rateLimitMBps: -1 }, /rate limit/],
    [{ rateLimitMBps: 0.0005 }, /at most three decimals/],
    [{ rateLimitMBps: Number.NaN }, /rate limit/],
    [{ vlan: 4096 }, /VLAN must be a whole number from 0 to 4095/],
    [{ mac: '52:54:00:zz:00:01' }, /invalid MAC/],
  ];
  for (const [change, message] of refused) t.throws(() => validateNic({ name: 'lan', ...change }), { code: 'InvalidSpec', message }, JSON.stringify(change));
  t.doesNotThrow(() => validateNic({ name: 'lan', mtu: 9000, rateLimitMBps: 2.125, vlan: 100, mac: '52:54:00:AA:00:01' }));
});

t.test('a NIC setting the host lacks is Unsupported, naming the NIC and the capability', async (t) => {
  const capabilities = { ...LIBVIRT_CAPABILITIES, nicRateLimit: false, nicFirewall: false };
  t.match(unsupportedNicSetting([{ name: 'lan', rateLimitMBps: 5 }], capabilities), { code: 'Unsupported', message: /rate limit on NIC 'lan' \(capability nicRateLimit\)/ });
  t.match(unsupportedNicSetting([{ name: 'a' }, { name: 'b', firewall: true }], capabilities), { message: /firewall on NIC 'b'/ });
  t.equal(unsupportedNicSetting([{ name: 'lan', firewall: false, mtu: 1400 }], capabilities), undefined, 'firewall off asks for nothing');
});

t.test('VLAN tags are for Open vSwitch networks only', async (t) => {
  t.ok(networkTakesVlans("<network><name>ovs</name><forward mode='bridge'/><bridge name='ovsbr0'/><virtualport type='openvswitch'/></network>"));
  t.notOk(networkTakesVlans("<network><name>nat</name><forward mode='nat'/><bridge name='virbr0'/></network>"));
});

t.test("a clone's NIC keeps the source NIC's MTU, rate limit, firewall and VLAN with its new MAC", async (t) => {
  const source = parseDomain(domainXml(domainWith([{ name: 'lan', mac: '52:54:00:aa:bb:cc', network: 'ovs', vlan: 7, model: 'e1000', mtu: 9000, rateLimitMBps: 2.5, firewall: true }])));
  const [nic] = source.nics;
  if (!nic) throw new Error('no NIC parsed');
  t.same(copiedNic(nic, '52:54:00:00:00:09', 'default'), { mac: '52:54:00:00:00:09', source: { network: 'ovs' }, model: 'e1000', vlan: 7, mtu: 9000, bandwidthKBps: 2500, filter: 'clean-traffic' });
});

t.test('a NIC naming neither bridge nor network joins the default network, or the VLAN network when it asks for a VLAN', async (t) => {
  const defaults = { defaultNetwork: 'nat', vlanNetwork: 'ovs' };
  t.same(nicSource({ name: 'lan' }, defaults), { network: 'nat' });
  t.same(nicSource({ name: 'lan', vlan: 100 }, defaults), { network: 'ovs' });
  t.same(nicSource({ name: 'lan', vlan: 100 }, { defaultNetwork: 'nat' }), { network: 'nat' }, 'no VLAN network: the default (refused unless it is Open vSwitch)');
  t.same(nicSource({ name: 'lan', vlan: 100, network: 'named' }, defaults), { network: 'named' }, 'a named network stays');
  t.same(nicSource({ name: 'lan', vlan: 100, bridge: 'br0' }, defaults), { bridge: 'br0' });
});
