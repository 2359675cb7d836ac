// The placement scheduler, table by table: hard rules filter, preferred rules and free memory
// score, ties go to the first host by name, and "none fits" names every host's reason.
import t from 'tap';
import { GiB } from '../../../src/contracts/quantity.js';
import { schedule, type HostState, type PlacementRules } from '../../../src/hooks/placement/scheduler.js';

const host = (name: string, vms: [string, Record<string, string>][] = [], memoryAllocatedGiB = 0): HostState => ({
  name,
  cpus: 32,
  memoryBytes: 128 * GiB,
  cpusAllocated: vms.length * 2,
  memoryAllocatedBytes: memoryAllocatedGiB * GiB,
  vms: vms.map(([vmName, labels]) => ({ name: vmName, labels })),
});
const none: PlacementRules = { affinity: [], antiAffinity: [], preferredAffinity: [], preferredAntiAffinity: [], spreadBy: [] };
const request = { cpus: 2, memoryBytes: 4 * GiB, labels: {} };

t.test('without rules: the host with the most memory free, ties to the first by name', async (t) => {
  t.match(schedule([host('b'), host('a')], none, request), { ok: true, host: 'a' });
  t.match(schedule([host('a', [], 64), host('b', [], 8)], none, request), { ok: true, host: 'b' });
});

t.test('the seed example: nodeSelector, antiAffinity, maxVMsPerNode, minFreeMemory', async (t) => {
  const rules: PlacementRules = {
    ...none,
    nodeSelector: ['pve-node-1', 'pve-node-2'],
    antiAffinity: [{ key: 'vm.type', operator: 'In', values: ['database'] }],
    maxVMsPerNode: 2,
    minFreeMemoryBytes: 4 * GiB,
  };
  const hosts = [host('pve-node-1', [['db-1', { 'vm.type': 'database' }]]), host('pve-node-2', [['web-1', {}], ['web-2', {}]]), host('pve-node-3')];
  t.same(schedule(hosts, rules, request), {
    ok: false,
    why: 'pve-node-1: antiAffinity vm.type In [database] (VM db-1); pve-node-2: maxVMsPerNode 2 reached; pve-node-3: not in nodeSelector',
  });
  const roomy = [host('pve-node-1', [['db-1', { 'vm.type': 'database' }]]), host('pve-node-2', [['web-1', {}]], 122), host('pve-node-3')];
  t.match(schedule(roomy, rules, request), { ok: false, why: /pve-node-2: 2Gi free after it < minFreeMemory 4Gi/ });
  t.match(schedule([host('pve-node-1', [['web-9', { 'vm.type': 'web' }]]), host('pve-node-2')], rules, request), { ok: true, host: 'pve-node-2' }, 'emptier wins');
});

t.test('pending creates count where they go until the inventory shows them', async (t) => {
  const rules: PlacementRules = { ...none, maxVMsPerNode: 1 };
  const pending = [{ host: 'a', vm: { name: 'vm-1', labels: {} }, cpus: 2, memoryBytes: 4 * GiB }];
  t.match(schedule([host('a'), host('b')], rules, request, pending), { ok: true, host: 'b' });
  t.match(schedule([host('a', [['vm-1', {}]]), host('b')], rules, request, pending), { ok: true, host: 'b' }, 'not counted twice once it shows');
  t.match(schedule([host('a')], rules, request, pending), { ok: false, why: 'a: maxVMsPerNode 1 reached' });
});

t.test('affinity, and preferred rules scoring', async (t) => {
  const hosts = [host('a', [['db', { app: 'db' }]]), host('b', [['web', { app: 'web' }]])];
  t.match(schedule(hosts, { ...none, affinity: [{ key: 'app', operator: 'In', values: ['web'] }] }, request), { ok: true, host: 'b' });
  t.match(schedule(hosts, { ...none, affinity: [{ key: 'app', operator: 'In', values: ['cache'] }] }, request), { ok: false, why: /a: affinity app In \[cache\]: no such VM here/ });
  t.match(schedule(hosts, { ...none, preferredAntiAffinity: [{ key: 'app', operator: 'In', values: ['db'], weight: 10 }] }, request), { ok: true, host: 'b' });
  t.match(schedule(hosts, { ...none, preferredAffinity: [{ key: 'app', operator: 'Exists', weight: 1 }, { key: 'app', operator: 'In', values: ['db'], weight: 5 }] }, request), { ok: true, host: 'a' });
});

t.test('an explicit host is checked against the policy, never replaced', async (t) => {
  const rules: PlacementRules = { ...none, nodeSelector: ['a'] };
  t.match(schedule([host('a'), host('b')], rules, { ...request, host: 'a' }), { ok: true, host: 'a' });
  t.same(schedule([host('a'), host('b')], rules, { ...request, host: 'b' }), { ok: false, why: 'b: not in nodeSelector' });
  t.same(schedule([host('a')], rules, { ...request, host: 'z' }), { ok: false, why: 'spec.placement.host z is not a host of the provider' });
  t.same(schedule([], rules, request), { ok: false, why: 'the provider reports no hosts' });
});

t.test('minFreeCPU and plain capacity', async (t) => {
  t.match(schedule([host('a', [['x', {}]])], { ...none, minFreeCPU: 29 }, request), { ok: false, why: 'a: 28 CPUs free after it < minFreeCPU 29' });
  t.match(schedule([host('a', [], 126)], none, request), { ok: false, why: 'a: 2Gi free < 4Gi asked' });
});

t.test('spreadBy: fewer VMs sharing the new VM\'s value win over free memory, other values do not count', async (t) => {
  const rules: PlacementRules = { ...none, spreadBy: ['set'] };
  const hosts = [host('a', [['web-0', { set: 'web' }]]), host('b', [['db-0', { set: 'db' }], ['db-1', { set: 'db' }]], 64)];
  t.match(schedule(hosts, rules, { ...request, labels: { set: 'web' } }), { ok: true, host: 'b' });
  t.match(schedule(hosts, rules, { ...request, labels: { set: 'db' } }), { ok: true, host: 'a' });
  t.match(schedule(hosts, rules, request), { ok: true, host: 'a' }, 'a VM without the key: free memory decides');
});

t.test('a host the Provider keeps new VMs off is never chosen, whatever the policy says', async (t) => {
  const outside = { ...host('a'), selectable: false };
  t.match(schedule([outside, host('b', [], 100)], none, request), { ok: true, host: 'b' });
  t.same(schedule([outside], { ...none, nodeSelector: ['a'] }, request), { ok: false, why: 'a: outside the Provider\'s node selection' });
  t.same(schedule([outside], none, { ...request, host: 'a' }), { ok: false, why: 'a: outside the Provider\'s node selection' });
});

t.test('a VM naming a cluster only goes to hosts of that cluster (by name or inventory path)', async (t) => {
  const hosts = [{ ...host('a'), cluster: 'C0' }, { ...host('b'), cluster: 'C1' }, host('c')];
  t.match(schedule(hosts, none, { ...request, cluster: 'C1' }), { ok: true, host: 'b' });
  t.match(schedule(hosts, none, { ...request, cluster: '/DC0/host/C0' }), { ok: true, host: 'a' });
  t.same(schedule(hosts, none, { ...request, cluster: 'C9' }), { ok: false, why: 'a: not in cluster C9; b: not in cluster C9; c: not in cluster C9' });
});
