// The pure parts of the vSphere NIC rows: what a NIC spec may ask (nics.ts), how a VLAN picks its
// port group, what a port group's VLAN reads as (portgroups.ts), the guest's network config
// (guest-network.ts), and the tar reader an OVA streams through (tar.ts).
import t from 'tap';
import { parse } from 'yaml';
import type { NicSpec } from '../../../src/contracts/driver.js';
import { networkConfig, networkMetaData } from '../../../src/hypervisors/vsphere/guest-network.js';
import { chooseVlanPortgroup, validateNics } from '../../../src/hypervisors/vsphere/nics.js';
import { describeVlan, distributedVlan, type PortgroupVlan } from '../../../src/hypervisors/vsphere/portgroups.js';
import { tarEntries } from '../../../src/hypervisors/vsphere/tar.js';
import { parseXml } from '../../../src/hypervisors/vsphere/xml.js';

const nic = (fields: Partial<NicSpec>): NicSpec => ({ name: 'lan', ...fields });

t.test('a manual MAC is taken only from vSphere’s manual range, in any case, and once per VM', async (t) => {
  t.doesNotThrow(() => validateNics([nic({ mac: '00:50:56:00:00:00' }), nic({ name: 'b', mac: '00:50:56:3F:FF:FF' })]));
  t.throws(() => validateNics([nic({ mac: '00:50:56:40:00:00' })]), { code: 'InvalidSpec', message: /manual MAC only in 00:50:56:00:00:00–00:50:56:3F:FF:FF, not 00:50:56:40:00:00/ });
  t.throws(() => validateNics([nic({ mac: '52:54:00:12:34:56' })]), { code: 'InvalidSpec', message: /manual MAC only in/ });
  t.throws(() => validateNics([nic({ mac: '00:50:56:01:02' })]), { code: 'InvalidSpec', message: /not a MAC address/ });
  t.throws(() => validateNics([nic({ mac: '00:50:56:01:02:03' }), nic({ name: 'b', mac: '00:50:56:01:02:03' })]), { code: 'InvalidSpec', message: /NICs lan and b ask for the same MAC/ });
});

t.test('models name vSphere adapters; virtio is the default; MTU, firewall and rate limit are refused as Unsupported', async (t) => {
  t.doesNotThrow(() => validateNics(['virtio', 'e1000', 'e1000e', 'vmxnet3', 'vmxnet2', 'pcnet32'].map((model, index) => nic({ name: `n${index}`, model }))));
  t.throws(() => validateNics([nic({ model: 'rtl8139' })]), { code: 'InvalidSpec', message: /no 'rtl8139' adapter \(e1000, e1000e, pcnet32, vmxnet, vmxnet2, vmxnet3\)/ });
  for (const field of [{ mtu: 9000 }, { firewall: true }, { rateLimitMBps: 10 }]) {
    t.throws(() => validateNics([nic(field)]), { code: 'Unsupported', message: /per switch or port group/ });
  }
  t.throws(() => validateNics([nic({ vlan: 0 })]), { code: 'InvalidSpec', message: /not a VLAN ID/ });
});

t.test('a VLAN picks the one port group that carries it, keeps a template network that does, and checks a named one', async (t) => {
  const pg = (value: string, vlan: number | undefined, why?: string): PortgroupVlan => ({ ref: { type: 'Network', value }, name: value, vlan, why });
  const all = [pg('plain', undefined), pg('v100', 100), pg('trunk', undefined, 'a VLAN trunk'), pg('v200', 200)];
  const ask = { name: 'lan', vlan: 100 };
  t.equal(chooseVlanPortgroup(ask, undefined, { type: 'Network', value: 'plain' }, all, 'DC0')?.name, 'v100');
  t.equal(chooseVlanPortgroup(ask, undefined, { type: 'Network', value: 'v100' }, all, 'DC0'), undefined, "the template's network carries it: kept");
  t.equal(chooseVlanPortgroup(ask, { name: 'v100', ref: { type: 'Network', value: 'v100' } }, undefined, all, 'DC0')?.name, 'v100');
  t.throws(() => chooseVlanPortgroup(ask, { name: 'trunk', ref: { type: 'Network', value: 'trunk' } }, undefined, all, 'DC0'), { message: /network 'trunk' carries a VLAN trunk, not VLAN 100/ });
  t.throws(() => chooseVlanPortgroup({ name: 'lan', vlan: 300 }, undefined, undefined, all, 'DC0'), { code: 'InvalidSpec', message: /no port group in datacenter DC0 carries VLAN 300/ });
  t.throws(() => chooseVlanPortgroup(ask, undefined, undefined, [...all, pg('also-100', 100)], 'DC0'), { message: /several port groups carry VLAN 100 \(also-100, v100\)/ });
});

t.test("a distributed port group's VLAN is its default port config's VLAN ID; trunks and private VLANs carry no single one", async (t) => {
  const config = (vlan: string) => parseXml(`<val xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">${vlan}</val>`);
  t.same(distributedVlan(config('<vlan xsi:type="VmwareDistributedVirtualSwitchVlanIdSpec"><inherited>false</inherited><vlanId>100</vlanId></vlan>')), { vlan: 100, why: undefined });
  t.same(distributedVlan(config('<vlan xsi:type="VmwareDistributedVirtualSwitchVlanIdSpec"><vlanId>0</vlanId></vlan>')), { vlan: undefined, why: undefined });
  t.equal(describeVlan(distributedVlan(config('<vlan xsi:type="VmwareDistributedVirtualSwitchTrunkVlanSpec"><vlanId><start>1</start><end>4094</end></vlanId></vlan>'))), 'a VLAN trunk');
  t.equal(describeVlan(distributedVlan(config('<vlan xsi:type="VmwareDistributedVirtualSwitchPvlanSpec"><pvlanId>12</pvlanId></vlan>'))), 'private VLAN 12');
});

t.test('the guest network config matches NICs by MAC: static addresses with their route and DNS, DHCP for the rest', async (t) => {
  const config = networkConfig([
    { mac: '00:50:56:AA:00:01', staticIP: { address: '10.0.0.5/24', gateway: '10.0.0.1', dns: ['10.0.0.53'] } },
    { mac: '00:50:56:aa:00:02', staticIP: undefined },
  ]);
  t.same(config, {
    version: 2,
    ethernets: {
      nic0: { match: { macaddress: '00:50:56:aa:00:01' }, addresses: ['10.0.0.5/24'], routes: [{ to: '0.0.0.0/0', via: '10.0.0.1' }], nameservers: { addresses: ['10.0.0.53'] } },
      nic1: { match: { macaddress: '00:50:56:aa:00:02' }, dhcp4: true },
    },
  });
  const keys = networkMetaData(config);
  t.equal(keys['network.encoding'], 'base64');
  t.same(parse(Buffer.from(keys['network'] ?? '', 'base64').toString('utf8')), config);
});

/** A tar header as GNU tar and OVA tools write them (ustar, octal fields, checksum). */
function header(name: string, size: number, type = '0'): Buffer {
  const block = Buffer.alloc(512);
  block.write(name, 0);
  block.write(`${size.toString(8).padStart(11, '0')}\0`, 124);
  block.write('        ', 148);
  block.write(type, 156);
  block.write('ustar\0', 257);
  block.write(`${block.reduce((sum, byte) => sum + byte, 0).toString(8).padStart(6, '0')}\0 `, 148);
  return block;
}

const padded = (data: Buffer) => Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);

t.test('a tar stream is read entry by entry in small chunks, unread entries skipped, long names from pax and GNU headers', async (t) => {
  const long = `${'d'.repeat(120)}/disk.vmdk`;
  // A pax record counts its own length's digits: 3 here, with ' path=' and the newline.
  const pax = Buffer.from(`${long.length + 10} path=${long}\n`);
  const archive = Buffer.concat([
    header('a.ovf', 5), padded(Buffer.from('<ovf>')),
    header('skipped.mf', 700), padded(Buffer.alloc(700, 1)),
    header('PaxHeader', pax.length, 'x'), padded(pax),
    header('short', 3), padded(Buffer.from('abc')),
    header('././@LongLink', 9, 'L'), padded(Buffer.from('gnu/long\0')),
    header('x', 2), padded(Buffer.from('hi')),
    Buffer.alloc(1024),
  ]);
  async function* chunks() {
    for (let at = 0; at < archive.length; at += 100) yield archive.subarray(at, at + 100);
  }
  const read: [string, string][] = [];
  for await (const entry of tarEntries(chunks())) {
    if (entry.name.endsWith('.mf')) continue;
    const parts: Buffer[] = [];
    for await (const chunk of entry.body) parts.push(chunk);
    read.push([entry.name, Buffer.concat(parts).toString()]);
  }
  t.same(read, [['a.ovf', '<ovf>'], [long, 'abc'], ['gnu/long', 'hi']]);
});

t.test('a tar stream that ends inside an entry is an error, not a short file', async (t) => {
  async function* cut() {
    yield Buffer.concat([header('disk.vmdk', 4096), Buffer.alloc(1000)]);
  }
  await t.rejects(async () => {
    for await (const entry of tarEntries(cut())) for await (const chunk of entry.body) void chunk;
  }, { message: /ended within disk.vmdk/ });
});
