import t from 'tap';
import { filterGuestAddresses } from '../../src/hypervisors/common/addresses.js';

const cases: { name: string; input: string[]; expected: string[] }[] = [
  { name: 'keeps ordinary IPv4 and IPv6 addresses in order', input: ['10.0.0.5', '2001:db8::5', '192.168.1.7'], expected: ['10.0.0.5', '2001:db8::5', '192.168.1.7'] },
  { name: 'drops IPv4 loopback, the whole 127/8', input: ['127.0.0.1', '127.1.2.3', '10.0.0.5'], expected: ['10.0.0.5'] },
  { name: 'drops IPv6 loopback', input: ['::1', '0:0:0:0:0:0:0:1', '2001:db8::1'], expected: ['2001:db8::1'] },
  { name: 'drops IPv4 link-local', input: ['169.254.10.20', '10.0.0.5'], expected: ['10.0.0.5'] },
  { name: 'drops IPv6 link-local across fe80::/10', input: ['fe80::5054:ff:fe12:3456', 'FEBF::1', 'fec0::1'], expected: ['fec0::1'] },
  { name: 'drops unspecified addresses', input: ['0.0.0.0', '::', '10.0.0.5'], expected: ['10.0.0.5'] },
  { name: 'drops multicast and broadcast', input: ['224.0.0.251', 'ff02::1', '255.255.255.255', '10.0.0.5'], expected: ['10.0.0.5'] },
  { name: 'drops IPv4-mapped loopback', input: ['::ffff:127.0.0.1', '::ffff:10.0.0.5'], expected: ['::ffff:a00:5'] },
  { name: 'de-duplicates, keeping the first occurrence', input: ['10.0.0.5', '10.0.0.6', '10.0.0.5'], expected: ['10.0.0.5', '10.0.0.6'] },
  { name: 'de-duplicates IPv6 spellings by canonical form', input: ['2001:DB8:0:0::1', '2001:db8::1'], expected: ['2001:db8::1'] },
  { name: 'strips prefix lengths and zone IDs', input: ['10.0.0.5/24', '2001:db8::5/64', 'fe80::1%eth0'], expected: ['10.0.0.5', '2001:db8::5'] },
  { name: 'drops what is not an address', input: ['', 'localhost', '10.0.0', '10.0.0.256', 'not:an:ip', '10.0.0.5'], expected: ['10.0.0.5'] },
  { name: 'returns nothing for nothing', input: [], expected: [] },
];

for (const { name, input, expected } of cases) {
  t.test(name, async (t) => {
    t.same(filterGuestAddresses(input), expected);
  });
}

t.test('does not change its input', async (t) => {
  const input = ['127.0.0.1', '10.0.0.5'];
  filterGuestAddresses(input);
  t.same(input, ['127.0.0.1', '10.0.0.5']);
});
