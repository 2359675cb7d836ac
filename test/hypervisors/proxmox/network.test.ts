import t from 'tap';
import { bridgeFor, ipconfigValue, nameservers, nicValue } from '../../../src/hypervisors/proxmox/network.js';

t.test("NIC names map to bridges by the guide's table", async (t) => {
  const cases: [string, string][] = [
    ['lan', 'vmbr0'],
    ['default', 'vmbr0'],
    ['dmz', 'vmbr1'],
    ['mgmt', 'vmbr2'],
    ['management', 'vmbr2'],
    ['vmbr7', 'vmbr7'],
  ];
  for (const [name, bridge] of cases) t.equal(bridgeFor({ name }), bridge, name);
});

t.test('an explicit bridge is taken as is, even when the name is in the table', async (t) => {
  t.equal(bridgeFor({ name: 'lan', bridge: 'vmbr3' }), 'vmbr3');
  t.equal(bridgeFor({ name: 'dmz', bridge: 'dmz' }), 'dmz');
});

t.test('a network is a bridge on PVE, mapped by the same table', async (t) => {
  t.equal(bridgeFor({ name: 'eth0', network: 'dmz' }), 'vmbr1');
  t.equal(bridgeFor({ name: 'eth0', network: 'vnet0' }), 'vnet0');
});

t.test('a bridge name PVE would refuse is an InvalidSpec', async (t) => {
  t.throws(() => bridgeFor({ name: 'x', bridge: 'br 0' }), { code: 'InvalidSpec' });
});

t.test('a NIC value has the model with the MAC, the bridge and the options', async (t) => {
  t.equal(
    nicValue({ name: 'dmz', bridge: 'vmbr1', vlan: 100, mac: '02:00:00:aa:bb:cc', firewall: true, rateLimitMBps: 12.5, mtu: 9000 }, undefined),
    'virtio=02:00:00:AA:BB:CC,bridge=vmbr1,tag=100,firewall=1,rate=12.5,mtu=9000',
  );
  t.equal(nicValue({ name: 'lan', model: 'e1000' }, undefined), 'e1000,bridge=vmbr0');
});

t.test("without a MAC in the spec the clone's MAC is kept", async (t) => {
  t.equal(nicValue({ name: 'lan' }, { slot: 'net0', index: 0, model: 'virtio', mac: 'bc:24:11:5e:7a:01' }), 'virtio=BC:24:11:5E:7A:01,bridge=vmbr0');
});

t.test('bad NIC settings are refused before PVE sees them', async (t) => {
  t.throws(() => nicValue({ name: 'a', model: 'rtl9999' }, undefined), { message: /model 'rtl9999' is not one of/ });
  t.throws(() => nicValue({ name: 'a', mac: '01:00:5e:00:00:01' }, undefined), { message: /multicast MAC/ });
  t.throws(() => nicValue({ name: 'a', vlan: 5000 }, undefined), { message: /invalid VLAN 5000/ });
  t.throws(() => nicValue({ name: 'a', model: 'e1000', mtu: 1400 }, undefined), { message: /MTU needs the virtio model/ });
});

t.test('ipconfig is static with a gateway, IPv6 with ip6/gw6, or DHCP', async (t) => {
  t.equal(ipconfigValue({ name: 'lan', staticIP: { address: '192.168.1.100/24', gateway: '192.168.1.1' } }), 'ip=192.168.1.100/24,gw=192.168.1.1');
  t.equal(ipconfigValue({ name: 'lan', staticIP: { address: '2001:db8::5/64', gateway: '2001:db8::1' } }), 'ip6=2001:db8::5/64,gw6=2001:db8::1');
  t.equal(ipconfigValue({ name: 'lan' }), 'ip=dhcp');
});

t.test('a static address without a prefix length or with a foreign gateway is refused', async (t) => {
  t.throws(() => ipconfigValue({ name: 'lan', staticIP: { address: '192.168.1.100' } }), { message: /needs a prefix length, for example 192\.168\.1\.100\/24/ });
  t.throws(() => ipconfigValue({ name: 'lan', staticIP: { address: '192.168.1.100/24', gateway: '2001:db8::1' } }), { message: /not an IPv4 address/ });
});

t.test('DNS servers of every static NIC are collected once', async (t) => {
  t.same(
    nameservers([
      { name: 'lan', staticIP: { address: '192.168.1.100/24', dns: ['8.8.8.8', '1.1.1.1'] } },
      { name: 'dmz', staticIP: { address: '10.0.100.50/24', dns: ['1.1.1.1'] } },
    ]),
    ['8.8.8.8', '1.1.1.1'],
  );
});
