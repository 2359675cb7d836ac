// The NIC rows of the provider feature matrix: each asks one thing of the first NIC of a create.
// A driver that claims the capability makes the VM with it and reports it back (describe's nics);
// one that does not refuses the create as Unsupported and makes nothing.
import type { Capability, CreateSpec, NicSpec, ObservedNic } from '../../contracts/driver.js';
import type { ConformanceCase } from '../target.js';
import { capabilityCreateCase } from './machine.js';

/** The first NIC of the target's spec with `change` applied. */
function firstNic(spec: CreateSpec, change: Partial<NicSpec>): CreateSpec {
  const [first, ...rest] = spec.nics;
  return { ...spec, nics: [{ ...(first ?? { name: 'lan' }), ...change }, ...rest] };
}

function nicCase(id: string, capability: Capability, key: string, change: Partial<NicSpec>, shows: Partial<ObservedNic>, what: string): ConformanceCase {
  return capabilityCreateCase({
    id,
    capability,
    key,
    ask: (spec) => firstNic(spec, change),
    async check({ check }, vm) {
      check.match(vm.nics[0], shows, what);
    },
  });
}

// e1000 is a model every hypervisor has; 00:50:56:00–3f is the range vSphere accepts for a manual
// MAC and a valid unicast address everywhere else.
export const nicCases: readonly ConformanceCase[] = [
  nicCase('nic-model', 'nicModel', 'nicmodel', { model: 'e1000' }, { model: 'e1000' }, 'the NIC model'),
  nicCase('mac-address', 'macAddress', 'nicmac', { mac: '00:50:56:12:34:56' }, { mac: '00:50:56:12:34:56' }, 'the fixed MAC'),
  nicCase('nic-mtu', 'nicMTU', 'nicmtu', { mtu: 1400 }, { mtu: 1400 }, 'the NIC MTU'),
  nicCase('nic-rate-limit', 'nicRateLimit', 'nicrate', { rateLimitMBps: 10 }, { rateLimitMBps: 10 }, 'the rate limit'),
  nicCase('nic-firewall', 'nicFirewall', 'nicfw', { firewall: true }, { firewall: true }, 'the firewall on'),
  nicCase('vlan', 'vlan', 'nicvlan', { vlan: 100 }, { vlan: 100 }, 'the NIC on VLAN 100'),
  capabilityCreateCase({
    id: 'static-ip',
    capability: 'staticIP',
    key: 'staticip',
    ask: (spec) => firstNic(spec, { staticIP: { address: '192.0.2.10/24', gateway: '192.0.2.1', dns: ['192.0.2.53'] } }),
    // What the guest is told is driver-specific (a NoCloud seed, guestinfo, PVE's ipconfig): the
    // drivers' own tests read it back. Here: the create is accepted and the VM keeps its NIC.
    async check({ check }, vm) {
      check.equal(vm.nics.length >= 1, true, 'the VM has its NIC');
    },
  }),
];
