// The Viti API (seed 003) end to end on the schema-validating fake PVE: a ProxmoxCluster becomes
// Ready through its runtime; Machines are made with explicit and auto-assigned VMIDs, on the node
// their resources and the ProxmoxNodes' maxVMs allow; the seed's error table yields its messages;
// protection holds a delete until it is lifted; metrics carry the seed's names and labels.
import t from 'tap';
import { vitiSystem, VITI } from '../helpers/viti-lifecycle.js';

const GiB = 1024 ** 3;

t.test('a ProxmoxCluster is Ready through its runtime, with its version, nodes and a bounded health stamp', async (t) => {
  const env = await vitiSystem(t);
  await env.createCluster({ nodes: ['pve1', 'pve2', 'pve9'] });
  const status = env.clusterStatus();
  t.match(status, { ready: true, version: /^9\./, runtime: 'pve-operator/virtrigaud-provider-proxmoxcluster-pve' });
  t.match(status['nodes'], [{ name: 'pve1', ready: true, cpu: 16, memory: 64 * GiB }, { name: 'pve2', ready: true }, { name: 'pve9', ready: false }]);
  t.match(status.conditions?.find((c) => c.type === 'NodesAvailable'), { status: 'False', message: /pve9/ });
  const deployment = env.cluster.get('apps/v1', 'Deployment', 'pve-operator', env.runtimeName);
  const container = (deployment?.['spec'] as { template: { spec: { containers: { env: { name: string; value?: string }[] }[] } } }).template.spec.containers[0];
  const variables = Object.fromEntries((container?.env ?? []).map((entry) => [entry.name, entry.value]));
  t.match(variables, { PVE_TOKEN_ID: 'virtrigaud@pve!vrtg', PVE_TOKEN_SECRET_FILE: /credentials\/0\/token-secret$/, PVE_VMID_RANGE: '10000-99999', PVE_NODE_SELECTOR: 'pve1,pve2,pve9' });
  t.notOk(JSON.stringify(deployment).includes('secret-token'), 'the token secret is never in the Deployment');

  const stamp = status['lastHealthCheck'];
  env.clock.advance(60_000);
  await env.metacontroller.settle(() => true);
  t.equal(env.clusterStatus()['lastHealthCheck'], stamp, 'an unchanged health check does not move the stamp within 5 minutes');
});

t.test('a Machine with an explicit VMID is made as the seed describes: CPU topology, memory in MB, disks, NICs, settings', async (t) => {
  const env = await vitiSystem(t);
  await env.createCluster();
  env.createMachine('web', {
    vmid: 4321,
    node: 'pve2',
    template: 'ubuntu-22-template',
    cpu: { cores: 2, sockets: 2 },
    memory: 2 * GiB,
    disks: [
      { name: 'root', size: '20G', storage: 'local-lvm', cache: 'writeback' },
      { name: 'data', size: '5G', storage: 'local-lvm', type: 'virtio' },
    ],
    networks: [{ name: 'eth0', bridge: 'vmbr0', model: 'virtio', vlan: 100, firewall: true }],
    osType: 'linux',
    agent: true,
    balloon: false,
  });
  await env.metacontroller.settle(() => env.machineCondition('web', 'Ready')?.status === 'True' && (env.machineStatus('web')['ipAddresses'] as string[] | undefined)?.length === 1);
  const status = env.machineStatus('web');
  t.match(status, { phase: 'Running', vmid: 4321, node: 'pve2', cluster: 'pve' });
  t.match(status.conditions, [
    { type: 'Ready', status: 'True' },
    { type: 'VMCreated', status: 'True', reason: 'CreationSucceeded' },
    { type: 'ResourcesAllocated', status: 'True', reason: 'AllocationSucceeded' },
    { type: 'NetworkConfigured', status: 'True', reason: 'NetworkReady' },
  ]);
  const vm = env.pve.vms().find((candidate) => candidate.vmid === 4321);
  t.ok(vm, 'VM 4321 exists');
  t.match(vm?.config, { sockets: 2, cores: 2, memory: '2048', ostype: 'l26', agent: /1/, balloon: 0, net0: /virtio=.*bridge=vmbr0.*firewall=1.*tag=100|tag=100/ });
  t.equal(env.ours().length, 1, 'one VM');

  const steady = structuredClone(env.machineStatus('web'));
  env.clock.advance(120_000);
  await env.metacontroller.settle(() => true);
  t.same(env.machineStatus('web'), steady, 'a steady Machine\'s status does not change (lastUpdated included)');
});

t.test('two Machines created at once get distinct VMIDs, the lowest free of the operator range', async (t) => {
  const env = await vitiSystem(t, { drivers: 2 });
  await env.createCluster();
  env.createMachine('a', { template: 'ubuntu-22-template' });
  env.createMachine('b', { template: 'ubuntu-22-template' });
  await env.metacontroller.settle(() => ['a', 'b'].every((name) => env.machineCondition(name, 'VMCreated')?.status === 'True'));
  const ids = ['a', 'b'].map((name) => env.machineStatus(name).vmid).sort();
  t.same(ids, [10000, 10001]);
  t.equal(env.ours().length, 2);
});

t.test('the seed\'s error table: each case names its message before anything is created', async (t) => {
  const env = await vitiSystem(t);
  await env.createCluster({ storages: ['local-lvm', 'ceph'] });
  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    ['storage', { template: 'ubuntu-22-template', disks: [{ name: 'root', size: '20G', storage: 'ceph' }] }, 'ResourcesAllocated', /storage 'ceph' not found/],
    ['bridge', { template: 'ubuntu-22-template', networks: [{ name: 'eth0', bridge: 'vmbr7' }] }, 'NetworkConfigured', /bridge 'vmbr7' not found/],
    ['template', { template: 'centos-7' }, 'VMCreated', /template 'centos-7' not found/],
    ['memory', { template: 'ubuntu-22-template', node: 'pve1', memory: 128 * GiB }, 'ResourcesAllocated', /insufficient resources on node/],
  ];
  for (const [name, spec] of cases) env.createMachine(name, spec);
  await env.metacontroller.settle(() => cases.every(([name, , type]) => env.machineCondition(name, type)?.status === 'False'));
  for (const [name, , type, message] of cases) {
    t.match(env.machineCondition(name, type), { status: 'False', message }, name);
    t.match(env.machineCondition(name, 'Ready'), { status: 'False' }, `${name}: not Ready`);
  }
  t.equal(env.ours().length, 0, 'nothing was created');
  const metrics = (await env.app.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(metrics, /proxmox_operator_errors_total\{error_type="StorageNotFound",controller="machine"\} 1\n/, 'an error reported again at every sync counts once');
  t.match(metrics, /proxmox_operator_errors_total\{error_type="BridgeNotFound",controller="machine"\} 1\n/);

  // The VM ID case: a foreign VM holds it, for good.
  env.pve.addForeignVm({ vmid: 777, node: 'pve1', name: 'someone-else' });
  env.createMachine('taken', { vmid: 777, template: 'ubuntu-22-template' });
  await env.metacontroller.settle(() => /VM 777 already exists/.test(env.machineCondition('taken', 'Ready')?.message ?? ''));
  t.match(env.machineStatus('taken'), { retryCount: Number, nextRetryAt: String });
  const writes = () => env.pve.requests.filter((request) => request.method !== 'GET').length;
  const before = { writes: writes(), all: env.pve.requests.length };
  for (let minute = 0; minute < 10; minute += 1) {
    env.clock.advance(60_000);
    await env.metacontroller.settle(() => true);
  }
  const all = env.pve.requests.length - before.all;
  t.equal(writes() - before.writes, 0, 'a taken VMID is refused before anything is written');
  // Measured: about 240 (the cluster's health checks and the four other refused Machines included);
  // without the back-off the taken VMID alone would be tried every few seconds.
  t.ok(all <= 300, `retried with back-off, not at every sync (${all} PVE requests in 10 minutes, every object's syncs included)`);
  t.equal(env.ours().length, 0);
});

t.test('node auto-selection respects maxVMs of ProxmoxNodes and the nodes\' memory', async (t) => {
  const env = await vitiSystem(t);
  await env.createCluster();
  env.cluster.create({ apiVersion: VITI, kind: 'ProxmoxNode', metadata: { name: 'pve1' }, spec: { cluster: 'pve', nodeName: 'pve1', maxVMs: 0 } });
  await env.metacontroller.settle(() => (env.cluster.get(VITI, 'ProxmoxNode', '', 'pve1')?.['status'] as { ready?: boolean } | undefined)?.ready === true);
  for (const name of ['m1', 'm2', 'm3']) env.createMachine(name, { template: 'ubuntu-22-template', memory: 4 * GiB });
  await env.metacontroller.settle(() => ['m1', 'm2', 'm3'].every((name) => env.machineCondition(name, 'VMCreated')?.status === 'True'));
  t.same(['m1', 'm2', 'm3'].map((name) => env.machineStatus(name).node), ['pve2', 'pve2', 'pve2'], 'pve1 is full at maxVMs 0');
  t.match(env.cluster.get(VITI, 'ProxmoxNode', '', 'pve1')?.['status'], { ready: true, vmCount: Number, resources: { cpu: { total: 16 }, memory: { total: 64 * GiB }, storage: { total: 512 * GiB, used: Number } } });
});

t.test('protection holds a delete with a condition until spec.protection is false', async (t) => {
  const env = await vitiSystem(t);
  await env.createCluster();
  env.createMachine('keep', { template: 'ubuntu-22-template', protection: true });
  await env.metacontroller.settle(() => env.machineCondition('keep', 'Ready')?.status === 'True');
  env.cluster.delete(VITI, 'Machine', 'default', 'keep');
  await env.metacontroller.settle(() => env.machineCondition('keep', 'Ready')?.reason === 'DeletionProtected');
  t.match(env.machineCondition('keep', 'Ready')?.message, /set spec\.protection to false/);
  t.equal(env.ours().length, 1, 'the VM stays');
  env.clock.advance(5 * 60_000);
  await env.metacontroller.settle(() => true);
  t.equal(env.ours().length, 1, 'still there');
  env.cluster.patchSpec(VITI, 'Machine', 'default', 'keep', { protection: false });
  await env.metacontroller.settle(() => env.machine('keep') === undefined);
  t.equal(env.ours().length, 0, 'gone once protection was lifted');
});

t.test('metrics carry the seed\'s names and labels', async (t) => {
  const env = await vitiSystem(t);
  await env.createCluster();
  env.createMachine('web', { template: 'ubuntu-22-template' });
  await env.metacontroller.settle(() => env.machineCondition('web', 'Ready')?.status === 'True');
  env.clock.advance(60_000);
  await env.metacontroller.settle(() => true);
  const text = await (await env.app.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(text, /proxmox_cluster_connection_status\{cluster="pve"\} 1/);
  t.match(text, /proxmox_cluster_nodes_available\{cluster="pve"\} 2/);
  t.match(text, /proxmox_operator_reconciliation_duration_seconds_count\{controller="machine"\} \d+/);
  t.match(text, /proxmox_operator_machines_total\{phase="Running",node="pve\d"\} 1/);
  t.match(text, /# TYPE proxmox_operator_errors_total counter/);
});

t.test('a Machine is reconfigured like a VirtualMachine: memory and cores wait for restartRequest, protection applies live, the disk grows', async (t) => {
  const env = await vitiSystem(t);
  await env.createCluster();
  env.createMachine('app', { template: 'ubuntu-22-template', cpu: { cores: 2 }, memory: 2 * GiB, disks: [{ name: 'root', size: '20G' }] });
  await env.metacontroller.settle(() => env.machineCondition('app', 'Ready')?.status === 'True');
  const vmid = env.machineStatus('app').vmid ?? 0;
  env.cluster.patchSpec(VITI, 'Machine', 'default', 'app', { cpu: { cores: 2, sockets: 2 }, memory: 4 * GiB, protection: true, disks: [{ name: 'root', size: '30G' }] });
  await env.metacontroller.settle(() => env.pve.vm(vmid)?.config['protection'] === 1 && /30G/.test(String(env.pve.vm(vmid)?.config['scsi0'])));
  const vm = env.pve.vm(vmid);
  t.equal(vm?.status, 'running', 'not restarted behind the user\'s back');
  t.match(env.machineCondition('app', 'Ready'), { status: 'False' }, 'pending changes keep it from Ready');
  env.cluster.patchSpec(VITI, 'Machine', 'default', 'app', { restartRequest: 'now' });
  await env.metacontroller.settle(() => env.machineCondition('app', 'Ready')?.status === 'True' && env.pve.vm(vmid)?.status === 'running');
  t.match(env.pve.vm(vmid)?.config, { sockets: 2, cores: 2, memory: '4096' });
  t.equal(env.ours().length, 1, 'the same VM');
});

t.test('deleting a running Machine stops and destroys its VM, and never a foreign VM that took its name', async (t) => {
  const env = await vitiSystem(t);
  await env.createCluster();
  env.pve.addForeignVm({ vmid: 500, node: 'pve1', name: 'db', running: true });
  env.createMachine('db', { template: 'ubuntu-22-template', name: 'db' });
  await env.metacontroller.settle(() => env.machineCondition('db', 'Ready')?.status === 'True' || env.machineCondition('db', 'Ready')?.reason === 'NameConflict');
  env.cluster.delete(VITI, 'Machine', 'default', 'db');
  await env.metacontroller.settle(() => env.machine('db') === undefined);
  t.equal(env.ours().length, 0, 'ours is gone');
  t.ok(env.pve.vm(500), 'the foreign VM of the same name is untouched');
});

t.test('a cluster whose token PVE refuses says so and is not hammered; its Machines wait for it', async (t) => {
  const env = await vitiSystem(t, { tokens: { 'virtrigaud@pve!vrtg': 'another-secret' } });
  await env.createCluster({}, false);
  t.match(env.clusterStatus(), { ready: false, conditions: [{ type: 'Ready', status: 'False', reason: 'AuthenticationFailed' }] });
  env.createMachine('web', { template: 'ubuntu-22-template' });
  await env.metacontroller.settle(() => env.machineCondition('web', 'Ready')?.reason === 'ClusterNotReady');
  const before = env.pve.requests.length;
  for (let minute = 0; minute < 10; minute += 1) {
    env.clock.advance(60_000);
    await env.metacontroller.settle(() => true);
  }
  const calls = env.pve.requests.length - before;
  t.ok(calls <= 10, `a refused credential is tried again at most every 5 minutes (${calls} PVE requests in 10 minutes)`);
  t.equal(env.ours().length, 0);
});

t.test('the seed\'s actions through declarative fields: suspend, resume, shutdown, stop, start, reset', async (t) => {
  const env = await vitiSystem(t);
  await env.createCluster();
  env.createMachine('ops', { template: 'ubuntu-22-template' });
  await env.metacontroller.settle(() => env.machineCondition('ops', 'Ready')?.status === 'True');
  const vmid = env.machineStatus('ops').vmid ?? 0;
  const qmp = () => env.pve.vm(vmid)?.qmpstatus;
  const patch = (spec: Record<string, unknown>) => env.cluster.patchSpec(VITI, 'Machine', 'default', 'ops', spec);

  patch({ powerState: 'Suspended' });
  await env.metacontroller.settle(() => qmp() === 'paused' && env.machineCondition('ops', 'Ready')?.status === 'True');
  t.match(env.machineStatus('ops'), { phase: 'Stopped', virtualMachine: { powerState: 'Suspended' } }, 'suspend: paused in memory');

  patch({ powerState: 'Running' });
  await env.metacontroller.settle(() => qmp() === 'running' && env.machineCondition('ops', 'Ready')?.status === 'True');
  t.pass('resume');

  patch({ powerState: 'Stopped' });
  await env.metacontroller.settle(() => env.pve.vm(vmid)?.status === 'stopped' && env.machineStatus('ops').phase === 'Stopped');
  t.ok(env.pve.tasks().some((task) => task.type === 'qmshutdown' && task.id === String(vmid)), 'shutdown: the guest was asked first');

  patch({ powerState: 'Running' });
  await env.metacontroller.settle(() => env.pve.vm(vmid)?.status === 'running' && env.machineCondition('ops', 'Ready')?.status === 'True');
  patch({ powerState: 'Stopped', stopMode: 'Stop' });
  const stopsBefore = env.pve.tasks().filter((task) => task.type === 'qmshutdown').length;
  await env.metacontroller.settle(() => env.pve.vm(vmid)?.status === 'stopped');
  t.equal(env.pve.tasks().filter((task) => task.type === 'qmshutdown').length, stopsBefore, 'stop: no shutdown asked');

  patch({ powerState: 'Running', stopMode: 'Shutdown' });
  await env.metacontroller.settle(() => env.pve.vm(vmid)?.status === 'running' && env.machineCondition('ops', 'Ready')?.status === 'True');
  patch({ restartMode: 'Reset', restartRequest: 'r1' });
  await env.metacontroller.settle(() => env.pve.tasks().some((task) => task.type === 'qmreset') && env.machineCondition('ops', 'Ready')?.status === 'True');
  t.equal(env.pve.tasks().filter((task) => task.type === 'qmreset').length, 1, 'reset once');
  t.match(env.machineStatus('ops'), { virtualMachine: { restartRequest: 'r1' } });
  env.clock.advance(120_000);
  await env.metacontroller.settle(() => true);
  t.equal(env.pve.tasks().filter((task) => task.type === 'qmreset').length, 1, 'not again');
});

t.test('a Machine without the cluster label goes to PROXMOX_DEFAULT_CLUSTER, and without either says so', async (t) => {
  const env = await vitiSystem(t, { defaultCluster: 'pve' });
  await env.createCluster();
  env.createMachine('plain', { template: 'ubuntu-22-template' }, {});
  env.createMachine('elsewhere', { template: 'ubuntu-22-template' }, { 'cluster.vitistack.io/cluster-name': 'lab' });
  await env.metacontroller.settle(() => env.machineCondition('plain', 'Ready')?.status === 'True' && env.machineCondition('elsewhere', 'Ready')?.reason === 'ClusterNotFound');
  t.match(env.machineStatus('plain'), { cluster: 'pve', vmid: 10000 });
  t.match(env.machineCondition('elsewhere', 'Ready'), { message: 'ProxmoxCluster lab not found' });
  t.equal(env.ours().length, 1);
});
