// VirtualMachine lifecycles, end to end: the real hook server, driven over HTTP by the
// Metacontroller stand-in, against the simulator, with the generated CRDs enforced.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { GiB } from '../../src/contracts/quantity.js';
import { API, lifecycle } from '../helpers/lifecycle.js';

t.test('a VirtualMachine is created and reaches Running with an IP', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  const created = env.createVM('web');
  await env.metacontroller.settle(() => env.isReady() && (env.status()['ips'] as string[] | undefined)?.length === 1);

  const status = env.status();
  t.equal(status['phase'], 'Running');
  t.equal(status['powerState'], 'On');
  t.match(status['ips'], [/^10\./]);
  t.match(status['hardware'], { cpus: 2, memory: '4Gi', disks: [{ name: 'root', size: '40Gi' }] });
  t.equal(status['observedGeneration'], 1);
  t.notOk(status['task'], 'no task left in status');
  const vms = env.world.listVMs();
  t.equal(vms.length, 1);
  t.equal(vms[0]?.owner?.uid, created.metadata.uid, 'the hypervisor VM carries the object UID');
  t.equal(status['providerID'], vms[0]?.id);
  t.same(env.metacontroller.events, [], 'no SyncError on the way');

  const metrics = (await env.app.inject('/metrics')).body;
  t.match(metrics, /virtrigaud_vm_create_to_ready_seconds_count 1\b/, 'create-to-Ready observed once');
  t.match(metrics, /virtrigaud_tasks_in_flight\{provider="default\/sim"\} 0\b/, 'every task seen finished');
  t.match(metrics, /virtrigaud_hook_duration_seconds_count\{controller="virtualmachine",hook="sync",outcome="ok"\} \d+/);
});

t.test('NIC settings from a VMNetworkAttachment reach the VM and its status', async (t) => {
  const env = await lifecycle(t);
  await env.basics({ cpus: 2, memory: '4Gi', storage: { type: 'thick' } });
  env.cluster.create({
    apiVersion: API,
    kind: 'VMNetworkAttachment',
    metadata: { name: 'dmz', namespace: 'default' },
    spec: { bridge: 'vmbr1', vlan: 100, model: 'e1000', mtu: 9000, firewall: true, rateLimitMBps: 125 },
  });
  env.createVM('web', { networks: [{ name: 'dmz', networkRef: { name: 'dmz' }, mac: '02:00:00:AA:BB:CC' }] });
  await env.metacontroller.settle(() => env.isReady());
  t.match(env.status()['hardware'], {
    nics: [{ name: 'dmz', network: 'vmbr1', vlan: 100, model: 'e1000', mtu: 9000, firewall: true, rateLimitMBps: 125, mac: '02:00:00:aa:bb:cc' }],
    disks: [{ name: 'root', provisioning: 'thick' }],
  });
  env.cluster.patchSpec(API, 'VMNetworkAttachment', 'default', 'dmz', { mtu: 1500 });
  await env.metacontroller.settle(() => env.condition('Configured')?.reason === 'ChangeNotSupported');
  t.match(env.condition('Configured')?.message, 'NIC dmz has mtu 9000, not 1500');
});

t.test('a Ready VM causes no status writes and resyncs only at the steady interval', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady() && (env.status()['ips'] as string[]).length > 0);
  const resourceVersion = env.vm()?.metadata.resourceVersion;
  const before = env.metacontroller.calls.length;
  await env.metacontroller.advance(10 * 60_000);
  const syncs = env.metacontroller.calls.slice(before).filter((call) => call.controller === 'virtrigaud-virtualmachine' && call.hook === 'sync');
  // One a minute from resyncAfterSeconds, plus the CompositeController's 10-minute resyncPeriod.
  t.ok(syncs.length <= 12, `about one VM sync a minute, got ${syncs.length} in 10 minutes`);
  t.equal(env.vm()?.metadata.resourceVersion, resourceVersion, 'the object was not written');
});

t.test('powerState Off powers the VM off and On brings it back', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady());

  env.patchVM('web', { powerState: 'Off' });
  await env.metacontroller.settle(() => env.isReady() && env.status()['phase'] === 'Stopped');
  t.equal(env.status()['powerState'], 'Off');
  t.same(env.status()['ips'], [], 'no addresses while off');
  t.equal(env.world.listVMs()[0]?.powerState, 'Off');

  env.patchVM('web', { powerState: 'On' });
  await env.metacontroller.settle(() => env.isReady() && env.status()['phase'] === 'Running');
  t.equal(env.world.listVMs()[0]?.powerState, 'On');
  t.equal(env.world.listVMs().length, 1);
});

t.test('powerState Suspended suspends the running VM, On resumes it, Off powers a suspended VM off', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady());
  const ips = env.status()['ips'];

  env.patchVM('web', { powerState: 'Suspended' });
  await env.metacontroller.settle(() => env.isReady() && env.status()['phase'] === 'Suspended');
  t.equal(env.status()['powerState'], 'Suspended', 'the Power column says Suspended');
  t.equal(env.world.listVMs()[0]?.powerState, 'Suspended');
  t.equal(env.world.callCount('power'), 2, 'one power-on at create, one suspend');

  env.patchVM('web', { powerState: 'On' });
  await env.metacontroller.settle(() => env.isReady() && env.status()['phase'] === 'Running' && (env.status()['ips'] as unknown[]).length > 0);
  t.same(env.status()['ips'], ips, 'resumed with the addresses it had');

  env.patchVM('web', { powerState: 'Suspended' });
  await env.metacontroller.settle(() => env.isReady() && env.status()['phase'] === 'Suspended');
  env.patchVM('web', { powerState: 'Off' });
  await env.metacontroller.settle(() => env.isReady() && env.status()['phase'] === 'Stopped');
  t.equal(env.world.listVMs()[0]?.powerState, 'Off');
  t.equal(env.world.listVMs().length, 1);
});

t.test('powerState Suspended on a provider that cannot suspend is Unsupported and the VM keeps running', async (t) => {
  const env = await lifecycle(t, { simulator: { capabilities: { suspend: false } } });
  await env.basics();
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady());
  const powerCalls = env.world.callCount('power');

  env.patchVM('web', { powerState: 'Suspended' });
  await env.metacontroller.settle(() => env.condition('Ready')?.reason === 'Unsupported');
  t.match(env.condition('Ready')?.message, 'cannot honour spec.powerState=Suspended');
  t.equal(env.world.listVMs()[0]?.powerState, 'On', 'the VM keeps running');
  t.equal(env.world.callCount('power'), powerCalls, 'no power call');
});

t.test('OffGraceful powers off a guest that ignores the shutdown once the timeout has passed', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.createVM('web', { lifecycle: { gracefulShutdownTimeout: '90s' } });
  await env.metacontroller.settle(() => env.isReady());
  const id = String(env.status()['providerID']);
  env.world.setGuestIgnoresShutdown(id, true);

  const asked = env.clock.now();
  env.patchVM('web', { powerState: 'OffGraceful' });
  await env.metacontroller.settle(() => env.condition('PowerSynced')?.reason === 'ShuttingDown');
  t.equal(env.world.listVMs()[0]?.powerState, 'On', 'the guest ignored the shutdown');

  await env.metacontroller.settle(() => env.isReady() && env.status()['powerState'] === 'Off');
  t.ok(env.clock.now() - asked >= 90_000, 'the hard power-off came only after the timeout');
  t.equal(env.world.listVMs()[0]?.powerState, 'Off');
  t.ok(env.world.callCount('power') >= 3, 'power on, shutdown, then power off');
});

t.test('OffGraceful with a cooperative guest shuts down without a hard power-off', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.createVM('web', { powerState: 'On' });
  await env.metacontroller.settle(() => env.isReady());
  const calls = env.world.callCount('power');
  env.patchVM('web', { powerState: 'OffGraceful' });
  await env.metacontroller.settle(() => env.isReady() && env.status()['powerState'] === 'Off');
  t.equal(env.world.callCount('power') - calls, 1, 'one call: the shutdown');
});

t.test('a CPU and memory change without hot-add waits for a restart request, which applies it', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady());

  env.cluster.patchSpec(API, 'VMClass', 'default', 'small', { cpus: 4, memory: '8Gi' });
  await env.metacontroller.settle(() => env.condition('Configured')?.reason === 'PowerCyclePending');
  t.match(env.condition('Configured')?.message, 'cpus 2 → 4, memory 4Gi → 8Gi');
  t.equal(env.condition('Ready')?.status, 'False');
  t.equal(env.world.listVMs()[0]?.cpus, 2, 'nothing applied while running');

  env.patchVM('web', { lifecycle: { restartRequest: 'r-1' } });
  await env.metacontroller.settle(() => env.isReady() && env.status()['restartRequest'] === 'r-1');
  t.match(env.status()['hardware'], { cpus: 4, memory: '8Gi' });
  t.equal(env.status()['powerState'], 'On');
  t.equal(env.world.listVMs()[0]?.memoryBytes, 8 * GiB);
});

t.test('a CPU increase on a VM with hot-add is applied online, without a power cycle', async (t) => {
  const env = await lifecycle(t);
  await env.basics({ cpus: 2, memory: '4Gi', performanceProfile: { cpuHotAddEnabled: true, memoryHotAddEnabled: true } });
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady());
  const powerCalls = env.world.callCount('power');

  env.cluster.patchSpec(API, 'VMClass', 'default', 'small', { cpus: 6, memory: '6Gi' });
  await env.metacontroller.settle(() => env.isReady() && (env.status()['hardware'] as { cpus: number }).cpus === 6);
  t.equal(env.world.callCount('power'), powerCalls, 'never powered off');
  t.match(env.status()['hardware'], { memory: '6Gi' });
});

t.test('powerCyclePolicy Automatic power-cycles the VM to apply an offline change', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.createVM('web', { lifecycle: { powerCyclePolicy: 'Automatic' } });
  await env.metacontroller.settle(() => env.isReady());
  env.cluster.patchSpec(API, 'VMClass', 'default', 'small', { cpus: 3, memory: '4Gi' });
  await env.metacontroller.settle(() => env.isReady() && (env.status()['hardware'] as { cpus: number }).cpus === 3);
  t.equal(env.status()['powerState'], 'On');
});

t.test('a disk grows, and a smaller size is refused by the CRD', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady());

  env.patchVM('web', { disks: [{ name: 'root', size: '60Gi' }] });
  await env.metacontroller.settle(() => env.isReady() && env.status()['phase'] === 'Running' && JSON.stringify(env.status()['hardware']).includes('60Gi'));
  t.equal(env.world.listVMs()[0]?.disks[0]?.sizeBytes, 60 * GiB);

  t.throws(() => env.patchVM('web', { disks: [{ name: 'root', size: '20Gi' }] }), /disk size can only grow/);
});

t.test('a smaller disk that reaches the hook anyway is reported and never applied', async (t) => {
  const env = await lifecycle(t);
  await env.basics({ cpus: 2, memory: '4Gi', diskDefaults: { size: '50Gi' } });
  env.createVM('web', { disks: [] });
  await env.metacontroller.settle(() => env.isReady());
  t.equal(env.world.listVMs()[0]?.disks[0]?.sizeBytes, 50 * GiB, 'the class default sized the root disk');
  // The class default shrinks: no CEL rule can see that, the controller must.
  env.cluster.patchSpec(API, 'VMClass', 'default', 'small', { diskDefaults: { size: '30Gi' } });
  await env.metacontroller.settle(() => env.condition('Configured')?.reason === 'DiskShrinkRejected');
  t.equal(env.world.listVMs()[0]?.disks[0]?.sizeBytes, 50 * GiB);
});

t.test('deleting the VirtualMachine deletes the VM, then releases the object', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady());
  env.cluster.delete(API, 'VirtualMachine', 'default', 'web');
  await env.metacontroller.settle(() => env.vm() === undefined);
  t.equal(env.world.listVMs().length, 0);
  t.same(env.metacontroller.violations, []);
});

t.test('deletionPolicy Retain leaves the VM on the hypervisor', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.createVM('web', { deletionPolicy: 'Retain' });
  await env.metacontroller.settle(() => env.isReady());
  env.cluster.delete(API, 'VirtualMachine', 'default', 'web');
  await env.metacontroller.settle(() => env.vm() === undefined);
  t.equal(env.world.listVMs().length, 1);
  t.equal(env.world.listVMs()[0]?.powerState, 'On');
});

t.test('a lost create response leaves exactly one VM', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.world.injectFault('create', { kind: 'lostResponse' });
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady());
  t.equal(env.world.listVMs().length, 1);
  t.equal(env.world.callCount('create'), 1, 'found by its tag, not created again');
});

t.test('a create that times out and did not happen is retried once and leaves one VM', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.world.injectFault('create', { kind: 'unreachable' });
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady());
  t.ok(
    env.metacontroller.calls.some((call) => JSON.stringify(call.response).includes('"reason":"HypervisorUnreachable"')),
    'the failed create was reported',
  );
  t.equal(env.world.callCount('create'), 2);
  t.equal(env.world.listVMs().length, 1);
});

t.test('a wiped status is rebuilt from the VM found by its tag, with no duplicate', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady());
  const providerID = env.status()['providerID'];
  env.cluster.wipeStatus(API, 'VirtualMachine', 'default', 'web');
  t.notOk(env.status()['providerID']);
  await env.metacontroller.settle(() => env.isReady());
  t.equal(env.status()['providerID'], providerID);
  t.equal(env.world.listVMs().length, 1);
  t.equal(env.world.callCount('create'), 1);
});

t.test('a VM deleted out of band is created again while its object exists', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady());
  const first = String(env.status()['providerID']);
  env.world.deleteOutOfBand(first);
  await env.metacontroller.advance(60_000);
  await env.metacontroller.settle(() => env.isReady() && env.status()['providerID'] !== first);
  t.equal(env.world.listVMs().length, 1);
  t.ok(env.metacontroller.calls.some((call) => JSON.stringify(call.response).includes('Recreating')), 'said it was re-creating');
});

t.test('a VM deleted out of band does not block finalize', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady());
  env.world.deleteOutOfBand(String(env.status()['providerID']));
  env.cluster.delete(API, 'VirtualMachine', 'default', 'web');
  await env.metacontroller.settle(() => env.vm() === undefined);
  t.equal(env.world.callCount('delete'), 0, 'nothing to delete');
});

t.test('a foreign VM with the same name is never touched', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  const foreign = env.world.addForeignVM({ name: 'web', powerState: 'On', cpus: 8 });
  env.createVM('web');
  await env.metacontroller.settle(() => env.condition('Provisioned')?.reason === 'NameConflict');
  t.match(env.condition('Ready'), { status: 'False', reason: 'NameConflict' });
  t.match(env.condition('Ready')?.message, 'already exists');
  t.equal(env.world.listVMs().length, 1, 'no second VM');

  env.cluster.delete(API, 'VirtualMachine', 'default', 'web');
  await env.metacontroller.settle(() => env.vm() === undefined);
  const left = env.world.listVMs();
  t.equal(left.length, 1);
  t.match(left[0], { id: foreign, name: 'web', powerState: 'On', cpus: 8 });
  t.equal(env.world.callCount('delete'), 0);
});

t.test('a providerID that now names a foreign VM is not trusted', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady());
  const ours = String(env.status()['providerID']);
  const foreign = env.world.addForeignVM({ name: 'other', powerState: 'On' });
  // Someone points our status at the foreign VM (a reused ID, a bad restore).
  env.cluster.updateStatus(API, 'VirtualMachine', 'default', 'web', { ...env.status(), providerID: foreign });
  env.patchVM('web', { powerState: 'Off' });
  await env.metacontroller.settle(() => env.isReady() && env.status()['powerState'] === 'Off');
  t.equal(env.status()['providerID'], ours);
  t.equal(env.world.listVMs().find((vm) => vm.id === foreign)?.powerState, 'On', 'the foreign VM stayed on');
});

t.test('the paused annotation stops every change, deletion included, until it is removed', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady());
  env.cluster.setAnnotation(API, 'VirtualMachine', 'default', 'web', 'virtrigaud.io/paused', 'true');
  env.patchVM('web', { powerState: 'Off' });
  await env.metacontroller.settle(() => env.condition('Ready')?.reason === 'Paused');
  await env.metacontroller.advance(5 * 60_000);
  t.equal(env.world.listVMs()[0]?.powerState, 'On');

  env.cluster.delete(API, 'VirtualMachine', 'default', 'web');
  await env.metacontroller.advance(5 * 60_000);
  t.ok(env.vm(), 'the finalizer stays while paused');
  t.equal(env.world.listVMs().length, 1);

  env.cluster.setAnnotation(API, 'VirtualMachine', 'default', 'web', 'virtrigaud.io/paused', undefined);
  await env.metacontroller.settle(() => env.vm() === undefined);
  t.equal(env.world.listVMs().length, 0);
});

t.test('a feature the provider cannot do is reported Unsupported before any hypervisor change', async (t) => {
  const env = await lifecycle(t, { simulator: { capabilities: { tpm: false } } });
  await env.basics({ cpus: 2, memory: '4Gi', securityProfile: { tpmEnabled: true } });
  env.createVM('web');
  await env.metacontroller.settle(() => env.condition('Ready')?.reason === 'Unsupported');
  t.match(env.condition('Ready')?.message, 'tpm');
  t.equal(env.world.callCount('create'), 0);
  t.equal(env.status()['phase'], 'Failed');
});

t.test('a missing VMClass is a condition, and the VM is created once the class appears', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.createVM('web', { classRef: { name: 'medium' } });
  await env.metacontroller.settle(() => env.condition('Ready')?.reason === 'ClassNotFound');
  t.equal(env.world.callCount('create'), 0);
  env.cluster.create({ apiVersion: API, kind: 'VMClass', metadata: { name: 'medium', namespace: 'default' }, spec: { cpus: 4, memory: '8Gi' } });
  await env.metacontroller.settle(() => env.isReady());
  t.match(env.status()['hardware'], { cpus: 4 });
});

t.test('Metacontroller before 4.15 (bare-name map keys) drives the same lifecycle', async (t) => {
  const env = await lifecycle(t, { keyStyle: 'v1' });
  await env.basics();
  env.createVM('web', {
    networks: [{ name: 'lan', networkRef: { name: 'app' }, staticIP: { address: '192.168.1.100/24', gateway: '192.168.1.1' } }],
    userData: { cloudInit: { secretRef: { name: 'web-cloudinit' } } },
  });
  env.cluster.create({ apiVersion: API, kind: 'VMNetworkAttachment', metadata: { name: 'app', namespace: 'default' }, spec: { bridge: 'vmbr0', vlan: 100 } });
  env.cluster.create({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'web-cloudinit', namespace: 'default' },
    data: { userdata: Buffer.from('#cloud-config\n').toString('base64') },
  });
  await env.metacontroller.settle(() => env.isReady() && (env.status()['ips'] as string[]).length > 0);
  t.same(env.status()['ips'], ['192.168.1.100']);
  t.match(env.status()['hardware'], { nics: [{ name: 'lan', network: 'vmbr0', vlan: 100 }] });
  env.cluster.delete(API, 'VirtualMachine', 'default', 'web');
  await env.metacontroller.settle(() => env.vm() === undefined);
  t.equal(env.world.listVMs().length, 0);
});

t.test('many VMs on one provider each get exactly one hypervisor VM', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  const names = Array.from({ length: 20 }, (_, i) => `vm-${i}`);
  for (const name of names) env.createVM(name);
  await env.metacontroller.settle(() => names.every((name) => env.isReady(name)), { maxSyncs: 5000 });
  t.equal(env.world.listVMs().length, 20);
  t.equal(new Set(env.world.listVMs().map((vm) => vm.owner?.uid)).size, 20);
  await env.metacontroller.advance(61_000);
  const hosts = (env.get('Provider', 'sim')?.['status'] as { hosts: { vms: number }[] }).hosts;
  t.equal(hosts.reduce((sum, host) => sum + host.vms, 0), 20, 'the Provider status counts them');
});

t.test('the seed multi-NIC VirtualMachine reconciles on a simulator provider', async (t) => {
  const seed = parse(readFileSync(new URL('../fixtures/seeds/001-virtualmachine-multi-nic-vm.yaml', import.meta.url), 'utf8'));
  const env = await lifecycle(t);
  await env.basics();
  // The seed names a proxmox Provider and a "medium" class; here they are the simulator and a class of that name.
  env.cluster.create({ apiVersion: API, kind: 'VMClass', metadata: { name: 'medium', namespace: 'default' }, spec: { cpus: 4, memory: '8Gi' } });
  env.cluster.create({ ...seed, metadata: { ...seed.metadata, namespace: 'default' }, spec: { ...seed.spec, providerRef: { name: 'sim' } } });
  await env.metacontroller.settle(() => env.isReady('multi-nic-vm') && (env.status('multi-nic-vm')['ips'] as string[]).length === 3);
  t.match(env.status('multi-nic-vm')['ips'], ['192.168.1.100', '10.0.100.50', /^10\./]);
  t.match(env.status('multi-nic-vm')['hardware'], {
    cpus: 4,
    nics: [
      { name: 'dmz', network: 'vmbr1', vlan: 100 },
      { name: 'lan', network: 'vmbr0' },
      { name: 'mgmt', network: 'vmbr2', mac: '02:00:00:aa:bb:cc' },
    ],
  });
});
