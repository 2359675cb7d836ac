// A vSphere-backed VirtualMachine through the whole system: the Metacontroller stand-in drives the
// real hook server, whose vSphere driver speaks SOAP to vcsim. vcsim's work takes real time, so the
// harness settles in real time. VcsimGuests plays VMware Tools (a powered-on VM gets an address).
import t, { type Test } from 'tap';
import { parse } from 'yaml';
import { vsphereDriverFromEnv, type VsphereDriver } from '../../src/hypervisors/vsphere/index.js';
import { API, lifecycle } from '../helpers/lifecycle.js';
import { settleInRealTime } from '../helpers/realtime.js';
import { killDriverSessions, prepareTemplate, requireVcsim, startFaultProxy, startSoapProxy, startVcsim, VcsimGuests, type Vcsim } from '../helpers/vcsim.js';

t.setTimeout(240_000);

async function vsphereLifecycle(t: Test, options: { dropCloneAnswer?: boolean; holdClones?: boolean } = {}) {
  const vcsim = await startVcsim(t);
  await prepareTemplate(vcsim);
  // Loses vcsim's answer to the first CloneVM_Task when asked to; the clone itself happens.
  let dropClone = options.dropCloneAnswer === true;
  // Or holds every clone running, its VM not registered yet, until releaseClones.
  const faults = options.holdClones ? await startFaultProxy(t, vcsim) : undefined;
  faults?.holdClones('unregistered');
  const proxy = options.dropCloneAnswer
    ? await startSoapProxy(t, vcsim.url, (request, response) => {
        if (!dropClone || !request.includes('<CloneVM_Task ')) return response;
        dropClone = false;
        return 'drop';
      })
    : faults;
  const driver: VsphereDriver = vsphereDriverFromEnv({ ...vcsim.env, ...(proxy === undefined ? {} : { VSPHERE_ENDPOINT: proxy.url }) });
  const guests = new VcsimGuests(vcsim);
  const booting = setInterval(() => void guests.assignAddresses().catch(() => undefined), 200);
  t.teardown(async () => {
    clearInterval(booting);
    await guests.close();
    await driver.close();
  });
  const env = await lifecycle(t, {
    registry: (simulators) => ({
      driverFor: async (provider) => (provider.type === 'vsphere' ? driver : simulators.driverFor(provider)),
    }),
  });
  // InProcess: this test's registry serves the driver directly; production runs it in a provider runtime.
  await env.basics({ cpus: 2, memory: '2Gi' }, { type: 'vsphere', endpoint: vcsim.url, runtime: { mode: 'InProcess' } });
  const settle = (predicate: () => boolean, what: string) => settleInRealTime(env.metacontroller, predicate, { timeoutMs: 60_000, stepMs: 100, what });
  const clones = () => proxy?.requests.filter((request) => request.includes('<CloneVM_Task ')).length ?? 0;
  return { ...env, vcsim, driver, clones, settle, releaseClones: () => faults?.releaseClones(), ours: () => ownedVMs(vcsim, env.vm()?.metadata.uid ?? '') };
}

/** The VMs vcsim holds whose identity names this owner UID (read with govc, outside the driver). */
async function ownedVMs(vcsim: Vcsim, uid: string): Promise<{ name: string; id: string; cpus: number; memoryMB: number; powerState: string }[]> {
  const info = JSON.parse(await vcsim.govc('vm.info', '-json', '-e', '/DC0/vm/*')) as {
    VirtualMachines?: { Self: { Value: string }; Name: string; Config?: { Hardware: { NumCPU: number; MemoryMB: number }; ExtraConfig?: { Key: string; Value: unknown }[] }; Runtime: { PowerState: string } }[];
  };
  return (info.VirtualMachines ?? [])
    .filter((vm) => vm.Config?.ExtraConfig?.some((option) => option.Key === 'virtrigaud.owner.uid' && option.Value === uid))
    .map((vm) => ({ name: vm.Name, id: vm.Self.Value, cpus: vm.Config?.Hardware.NumCPU ?? 0, memoryMB: vm.Config?.Hardware.MemoryMB ?? 0, powerState: vm.Runtime.PowerState }));
}

async function guestinfo(vcsim: Vcsim, id: string): Promise<Map<string, string>> {
  const info = JSON.parse(await vcsim.govc('object.collect', '-json', `VirtualMachine:${id}`, 'config.extraConfig')) as { Val?: { OptionValue?: { Key: string; Value: string }[] } }[];
  return new Map((info[0]?.Val?.OptionValue ?? []).map((option) => [option.Key, String(option.Value)]));
}

if (requireVcsim(t)) {
  t.test('a vSphere-backed VirtualMachine is cloned, configured, started, gets its IP, reconfigures and is deleted', async (t) => {
    const env = await vsphereLifecycle(t);
    const userData = '#cloud-config\nusers:\n  - name: ops\n    passwd: not-shown-anywhere\n';
    env.createVM('web', { userData: { cloudInit: { inline: userData } } });
    await env.settle(() => env.isReady() && (env.status()['ips'] as string[]).length > 0, 'Running with an IP');
    t.equal(env.status()['phase'], 'Running');
    t.match(env.status()['ips'], [/^192\.0\.2\.\d+$/]);
    const [vm, ...more] = await env.ours();
    t.equal(more.length, 0, 'one VM');
    t.equal(vm?.id, env.status()['providerID']);
    t.match(vm, { name: 'web', cpus: 2, memoryMB: 2048, powerState: 'poweredOn' });
    t.match(env.status()['consoleURL'], new RegExp(`/ui/app/vm;nav=v/urn:vmomi:VirtualMachine:${String(vm?.id)}:`));
    const extraConfig = await guestinfo(env.vcsim, String(vm?.id));
    t.equal(Buffer.from(extraConfig.get('guestinfo.userdata') ?? '', 'base64').toString(), userData, 'cloud-init user-data in guestinfo');
    t.equal(extraConfig.get('guestinfo.userdata.encoding'), 'base64');
    t.match(parse(Buffer.from(extraConfig.get('guestinfo.metadata') ?? '', 'base64').toString()), { 'local-hostname': 'web' });
    t.notOk(JSON.stringify(env.status()).includes('not-shown-anywhere'), 'user-data never in the status');
    t.match(env.status()['hardware'], { disks: [{ name: 'root', size: '40Gi' }] }, 'the template disk grew to the asked size');

    env.patchVM('web', { disks: [{ name: 'root', size: '50Gi' }] });
    await env.settle(() => env.isReady() && JSON.stringify(env.status()['hardware']).includes('50Gi'), 'disk grown');
    t.match(env.status()['hardware'], { disks: [{ name: 'root', size: '50Gi' }] });

    env.cluster.patchSpec(API, 'VMClass', 'default', 'small', { cpus: 4, memory: '4Gi' });
    env.patchVM('web', { lifecycle: { restartRequest: 'apply' } });
    await env.settle(() => env.isReady() && env.status()['restartRequest'] === 'apply' && (env.status()['hardware'] as { cpus?: number })?.cpus === 4, 'reconfigured');
    t.match(env.status()['hardware'], { cpus: 4, memory: '4Gi' });
    t.match((await env.ours())[0], { cpus: 4, memoryMB: 4096 });

    env.patchVM('web', { powerState: 'Off' });
    await env.settle(() => env.isReady() && env.status()['powerState'] === 'Off', 'powered off');
    t.match((await env.ours())[0], { powerState: 'poweredOff' });

    const uid = env.vm()?.metadata.uid ?? '';
    env.cluster.delete(API, 'VirtualMachine', 'default', 'web');
    await env.settle(() => env.vm() === undefined, 'deleted');
    t.same(await ownedVMs(env.vcsim, uid), [], 'destroyed on vSphere');
    t.ok((await env.vcsim.govc('ls', '/DC0/vm')).includes('ubuntu-22-template'), 'the template is untouched');
  });

  t.test('on vSphere: a NIC asking for VLAN 100 goes on the port group carrying it with its static IP in guestinfo; powerState Suspended suspends and On resumes', async (t) => {
    const env = await vsphereLifecycle(t);
    await env.vcsim.govc('dvs.portgroup.add', '-dvs', 'DVS0', '-vlan', '100', 'DC0_DVPG100');
    env.createVM('web', { networks: [{ name: 'lan', vlan: 100, staticIP: { address: '192.0.2.50/24', gateway: '192.0.2.1' } }] });
    await env.settle(() => env.isReady(), 'Ready');
    const [vm] = await env.ours();
    const nic = JSON.parse(await env.vcsim.govc('device.info', '-json', '-vm', '/DC0/vm/web', 'ethernet-*')) as { Devices?: { Backing?: { Port?: { PortgroupKey?: string } } }[] };
    const portgroups = await env.vcsim.govc('ls', '-i', '/DC0/network/DC0_DVPG100');
    t.ok(portgroups.includes(nic.Devices?.[0]?.Backing?.Port?.PortgroupKey ?? '(none)'), 'the NIC is on DC0_DVPG100, the port group carrying VLAN 100');
    const extraConfig = await guestinfo(env.vcsim, String(vm?.id));
    const metadata = parse(Buffer.from(extraConfig.get('guestinfo.metadata') ?? '', 'base64').toString()) as Record<string, string>;
    t.match(parse(Buffer.from(metadata['network'] ?? '', 'base64').toString()), { version: 2, ethernets: { nic0: { addresses: ['192.0.2.50/24'], routes: [{ via: '192.0.2.1' }] } } });

    env.patchVM('web', { powerState: 'Suspended' });
    await env.settle(() => env.isReady() && env.status()['phase'] === 'Suspended', 'Suspended');
    t.match((await env.ours())[0], { powerState: 'suspended' });
    env.patchVM('web', { powerState: 'On' });
    await env.settle(() => env.isReady() && env.status()['phase'] === 'Running', 'resumed');
    t.match((await env.ours())[0], { powerState: 'poweredOn' });
  });

  t.test('a VMSnapshot of a vSphere VM is taken and shows on vSphere', async (t) => {
    const env = await vsphereLifecycle(t);
    env.createVM('web');
    await env.settle(() => env.isReady(), 'Ready');
    env.cluster.create({ apiVersion: API, kind: 'VMSnapshot', metadata: { name: 'before', namespace: 'default' }, spec: { vmRef: { name: 'web' } } });
    const snapshot = () => (env.get('VMSnapshot', 'before')?.['status'] ?? {}) as Record<string, unknown>;
    await env.settle(() => snapshot()['phase'] === 'Ready', 'snapshot Ready');
    const tree = await env.vcsim.govc('snapshot.tree', '-vm', '/DC0/vm/web', '-i');
    t.ok(tree.includes(String(snapshot()['snapshotID'])), `snapshot ${String(snapshot()['snapshotID'])} in ${tree.trim()}`);
  });

  t.test('a lost clone response leaves exactly one VM on vSphere', async (t) => {
    const env = await vsphereLifecycle(t, { dropCloneAnswer: true });
    env.createVM('web');
    await env.settle(() => env.isReady(), 'Ready');
    t.equal(env.clones(), 1, 'one CloneVM_Task, whose answer was lost');
    t.ok(env.metacontroller.calls.some((call) => JSON.stringify(call.response).includes('cannot reach')), 'the lost answer showed as Unreachable');
    const owned = await env.ours();
    t.equal(owned.length, 1, 'one VM');
    t.equal(owned[0]?.id, env.status()['providerID']);
  });

  t.test('a clone that outlasts the hook budget is cloned once, and the VM is made when it ends', async (t) => {
    const env = await vsphereLifecycle(t, { holdClones: true });
    env.createVM('web');
    await env.settle(() => env.clones() > 0 && (env.status()['task'] as { id?: string } | undefined)?.id !== undefined, 'the clone task recorded');
    t.match(env.status()['task'], { id: /^task-/, operation: 'Create' }, 'the running clone task is in status');
    // Syncs go on while vCenter has not registered the VM (each waits, Busy): none clones again.
    const syncs = env.metacontroller.calls.length;
    await env.settle(() => env.metacontroller.calls.length >= syncs + 3, 'three more syncs');
    t.equal(env.clones(), 1, 'one CloneVM_Task while the clone runs');
    env.releaseClones();
    await env.settle(() => env.isReady(), 'Ready');
    t.equal(env.clones(), 1, 'one CloneVM_Task in all');
    const owned = await env.ours();
    t.match(owned, [{ name: 'web', id: env.status()['providerID'] }], 'one VM, named by the configuration step');
    t.equal(owned.length, 1);
  });

  t.test('a session ended from outside is replaced by a new login, and the next change succeeds', async (t) => {
    const env = await vsphereLifecycle(t);
    env.createVM('web');
    await env.settle(() => env.isReady() && env.status()['powerState'] === 'On', 'Running');
    const logins = env.driver.client.logins;
    t.ok((await killDriverSessions(env.vcsim)) >= 1, 'govc session.rm ended the driver session');
    env.patchVM('web', { powerState: 'Off' });
    await env.settle(() => env.isReady() && env.status()['powerState'] === 'Off', 'powered off after re-login');
    t.equal(env.driver.client.logins, logins + 1, 'logged in again once');
    t.match((await env.ours())[0], { powerState: 'poweredOff' });
  });
}
