// The vSphere driver against vcsim, for what the conformance suite does not cover: placement
// (checked from outside with govc), linked clones, hardware features, power fallbacks, refusals.
import t, { type Test } from 'tap';
import type { CreateSpec, Identity, NicSpec } from '../../../src/contracts/driver.js';
import { GiB } from '../../../src/contracts/quantity.js';
import { vsphereDriverFromEnv } from '../../../src/hypervisors/vsphere/index.js';
import { basicSpec, createFully } from '../../conformance/driver-suite.js';
import { prepareTemplate, requireVcsim, startSoapProxy, startVcsim, type Vcsim } from '../../helpers/vcsim.js';

t.setTimeout(180_000);

const owner = (name: string): Identity => ({ uid: `5e1f0000-0000-4000-8000-${name.padEnd(12, '0').slice(0, 12)}`, namespace: 'vsphere', name });

async function setup(t: Test, env: Record<string, string> = {}) {
  const vcsim = await startVcsim(t, { flags: ['-ds', '2'] });
  await prepareTemplate(vcsim);
  await vcsim.govc('folder.create', '/DC0/vm/team-a', '/DC0/vm/team-b');
  await vcsim.govc('pool.create', '/DC0/host/DC0_C0/Resources/pool-a', '/DC0/host/DC0_C0/Resources/pool-b');
  const driver = vsphereDriverFromEnv({ ...vcsim.env, ...env });
  t.teardown(() => driver.close());
  const target = {
    driver,
    spec: (name: string, who: Identity) => basicSpec(name, who),
    async waitUntil(done: () => Promise<boolean>, what: string) {
      for (let round = 0; round < 50; round++) if (await done()) return;
      throw new Error(`${what} not reached`);
    },
    addForeignVM: async () => '',
    close: async () => {},
  };
  const create = (spec: CreateSpec) => createFully(target, spec);
  return { vcsim, driver, create };
}

/** A property of a managed object, read with govc (outside the driver). */
async function collect(vcsim: Vcsim, ref: string, property: string): Promise<string> {
  return (await vcsim.govc('object.collect', '-s', ref, property)).trim();
}

async function nameOf(vcsim: Vcsim, ref: string): Promise<string> {
  return collect(vcsim, ref, 'name');
}

if (requireVcsim(t)) {
  t.test("a VM's own placement puts it in that folder, resource pool and datastore", async (t) => {
    const { vcsim, create } = await setup(t);
    const vm = await create(
      basicSpec('placed', owner('placed'), { placement: { folder: 'team-a', cluster: 'DC0_C0', resourcePool: 'pool-a' }, storage: { datastore: 'LocalDS_1', provisioning: 'thin' } }),
    );
    t.equal(await nameOf(vcsim, await collect(vcsim, `VirtualMachine:${vm.id}`, 'parent')), 'team-a');
    t.equal(await nameOf(vcsim, await collect(vcsim, `VirtualMachine:${vm.id}`, 'resourcePool')), 'pool-a');
    t.equal(vm.disks[0]?.datastore, 'LocalDS_1');
  });

  t.test("the VM's placement wins over the Provider's defaults, which serve VMs without one", async (t) => {
    const { vcsim, create } = await setup(t, { VSPHERE_FOLDER: 'team-b', VSPHERE_RESOURCE_POOL: 'DC0_C0/Resources/pool-b', VSPHERE_DATASTORE: 'LocalDS_0' });
    const own = await create(basicSpec('own', owner('own'), { placement: { folder: 'team-a', resourcePool: 'DC0_C0/Resources/pool-a' }, storage: { datastore: 'LocalDS_1', provisioning: 'thin' } }));
    t.equal(await nameOf(vcsim, await collect(vcsim, `VirtualMachine:${own.id}`, 'parent')), 'team-a');
    t.equal(await nameOf(vcsim, await collect(vcsim, `VirtualMachine:${own.id}`, 'resourcePool')), 'pool-a');
    t.equal(own.disks[0]?.datastore, 'LocalDS_1');
    const defaults = await create(basicSpec('defaults', owner('defaults')));
    t.equal(await nameOf(vcsim, await collect(vcsim, `VirtualMachine:${defaults.id}`, 'parent')), 'team-b');
    t.equal(await nameOf(vcsim, await collect(vcsim, `VirtualMachine:${defaults.id}`, 'resourcePool')), 'pool-b');
    t.equal(defaults.disks[0]?.datastore, 'LocalDS_0');
  });

  t.test('a VM asked on a host runs on that host', async (t) => {
    const { vcsim, create } = await setup(t);
    const vm = await create(basicSpec('on-host', owner('on-host'), { placement: { host: 'DC0_C0_H1' } }));
    t.equal(vm.host, 'DC0_C0_H1');
    t.equal(await nameOf(vcsim, await collect(vcsim, `VirtualMachine:${vm.id}`, 'runtime.host')), 'DC0_C0_H1');
  });

  t.test("a host alone inside the Provider's cluster keeps the Provider's pool; the inventory names each host's cluster and bounds policies by it", async (t) => {
    const { vcsim, driver, create } = await setup(t, { VSPHERE_CLUSTER: 'DC0_C0', VSPHERE_RESOURCE_POOL: 'pool-b' });
    const vm = await create(basicSpec('policy-host', owner('policy-host'), { placement: { host: 'DC0_C0_H2' } }));
    t.equal(vm.host, 'DC0_C0_H2');
    t.equal(await nameOf(vcsim, await collect(vcsim, `VirtualMachine:${vm.id}`, 'resourcePool')), 'pool-b', 'not the cluster root pool');
    const hosts = (await driver.inventory()).hosts.map((host) => [host.name, host.cluster, host.selectable]).sort();
    t.same(hosts, [
      ['DC0_C0_H0', 'DC0_C0', undefined],
      ['DC0_C0_H1', 'DC0_C0', undefined],
      ['DC0_C0_H2', 'DC0_C0', undefined],
      ['DC0_H0', 'DC0_H0', false],
    ]);
    const elsewhere = await create(basicSpec('standalone', owner('standalone'), { placement: { host: 'DC0_H0' } }));
    t.equal(await nameOf(vcsim, await collect(vcsim, `VirtualMachine:${elsewhere.id}`, 'resourcePool')), 'Resources', 'a host outside it takes its own root pool, as before');
  });

  t.test('unknown or ambiguous placement and templates are InvalidSpec, and nothing is cloned', async (t) => {
    const { vcsim, driver } = await setup(t);
    await t.rejects(driver.create(basicSpec('x', owner('x1'), { placement: { folder: 'no-such-folder' } })), { code: 'InvalidSpec', message: /folder 'no-such-folder' not found/ });
    await t.rejects(driver.create(basicSpec('x', owner('x2'), { placement: { resourcePool: 'Resources' } })), { code: 'InvalidSpec', message: /ambiguous/ });
    await t.rejects(driver.create(basicSpec('x', owner('x3'), { image: { kind: 'template', ref: 'no-such-template', fullClone: true } })), { code: 'InvalidSpec' });
    await vcsim.govc('vm.clone', '-vm', 'DC0_H0_VM1', '-ds', 'LocalDS_0', '-pool', '/DC0/host/DC0_H0/Resources', '-on=false', 'twin');
    await vcsim.govc('vm.clone', '-vm', 'DC0_H0_VM1', '-ds', 'LocalDS_1', '-pool', '/DC0/host/DC0_H0/Resources', '-on=false', '-folder', '/DC0/vm/team-a', 'twin');
    await t.rejects(driver.create(basicSpec('x', owner('x4'), { image: { kind: 'template', ref: 'twin', fullClone: true } })), { code: 'InvalidSpec', message: /ambiguous/ });
    t.notMatch(await vcsim.govc('ls', '/DC0/vm'), /\/x$/m);
  });

  t.test('a linked clone of a template without snapshots makes the base snapshot once', async (t) => {
    const { vcsim, driver, create } = await setup(t);
    const first = await create(basicSpec('linked-1', owner('linked-1'), { image: { kind: 'template', ref: 'ubuntu-22-template', fullClone: false } }));
    const second = await create(basicSpec('linked-2', owner('linked-2'), { image: { kind: 'template', ref: 'ubuntu-22-template', fullClone: false } }));
    t.not(first.id, second.id);
    const tree = await vcsim.govc('snapshot.tree', '-vm', '/DC0/vm/ubuntu-22-template');
    t.equal(tree.split('\n').filter((line) => line.includes('virtrigaud-linked-base')).length, 1, `one base snapshot: ${tree}`);
    const copy = await driver.clone({ id: first.id, owner: owner('linked-1') }, { name: 'linked-copy', owner: owner('linked-copy'), linked: true });
    t.equal(copy.sourceSnapshot, 'virtrigaud-linked-base', 'the source VM had no snapshot: the base snapshot was made on it');
    t.match(await vcsim.govc('snapshot.tree', '-vm', `/DC0/vm/linked-1`), 'virtrigaud-linked-base');
    t.equal((await driver.describe(copy.id)).owner?.uid, owner('linked-copy').uid);
  });

  t.test('UEFI, secure boot, TPM (after a hardware upgrade), nested virtualization and hot-add are configured', async (t) => {
    const { vcsim, create } = await setup(t);
    const features = { tpm: true, secureBoot: true, nestedVirtualization: true, cpuHotAdd: true, memoryHotAdd: true };
    const vm = await create(basicSpec('secure', owner('secure'), { firmware: 'uefi', features }));
    t.equal(vm.firmware, 'uefi');
    t.same(vm.features, features);
    // vcsim's UpgradeVM_Task sets its own fixed version (vmx-13) whatever is asked; vCenter sets vmx-14.
    t.match(await collect(vcsim, `VirtualMachine:${vm.id}`, 'config.version'), /^vmx-1\d$/);
    t.equal(await collect(vcsim, `VirtualMachine:${vm.id}`, 'config.firmware'), 'efi');
  });

  t.test('data disks are added and named, the root disk grows to the asked size', async (t) => {
    const { driver, create } = await setup(t);
    const spec = basicSpec('disks', owner('disks'), {
      disks: [
        { name: 'root', sizeBytes: 10 * GiB, root: true },
        { name: 'data', sizeBytes: 5 * GiB, root: false },
      ],
    });
    const vm = await create(spec);
    t.same(vm.disks.map((disk) => [disk.name, disk.sizeBytes]).sort(), [['data', 5 * GiB], ['root', 10 * GiB]]);
    const { task } = await driver.resizeDisk({ id: vm.id, owner: owner('disks') }, 'data', 8 * GiB);
    t.ok(task);
    t.equal((await driver.describe(vm.id)).disks.find((disk) => disk.name === 'data')?.sizeBytes, 8 * GiB);
  });

  t.test('guest shutdown powers off; reboot without guest support falls back to a reset', async (t) => {
    const { driver, create } = await setup(t);
    const vm = await create(basicSpec('power', owner('power')));
    const ref = { id: vm.id, owner: owner('power') };
    await driver.power(ref, 'on');
    t.equal((await driver.describe(vm.id)).powerState, 'On');
    const reboot = await driver.power(ref, 'reboot');
    t.ok(reboot.task, 'vcsim has no RebootGuest: ResetVM_Task');
    t.equal((await driver.taskStatus(reboot.task ?? '')).state, 'succeeded');
    t.equal((await driver.describe(vm.id)).powerState, 'On');
    t.same(await driver.power(ref, 'shutdown'), {}, 'ShutdownGuest has no task');
    t.equal((await driver.describe(vm.id)).powerState, 'Off');
    t.same(await driver.power(ref, 'off'), {}, 'already off: nothing to do');
    await t.rejects(driver.power(ref, 'reboot'), { code: 'Busy' }, 'a state, not an owner mismatch');
  });

  t.test('a suspended VM resumes on power-on, keeps its hardware until it runs or is off, and powers off; only a running VM is suspended or reset', async (t) => {
    const { driver, create } = await setup(t);
    const vm = await create(basicSpec('suspend', owner('suspend')));
    const ref = { id: vm.id, owner: owner('suspend') };
    await t.rejects(driver.power(ref, 'suspend'), { code: 'Busy', message: /poweredOff: only a running VM is suspended/ });
    await t.rejects(driver.power(ref, 'reset'), { code: 'Busy', message: /only a running VM is reset/ });
    await driver.power(ref, 'on');
    const suspended = await driver.power(ref, 'suspend');
    t.equal((await driver.taskStatus(suspended.task ?? '')).state, 'succeeded', 'SuspendVM_Task');
    t.equal((await driver.describe(vm.id)).powerState, 'Suspended');
    t.same(await driver.power(ref, 'suspend'), {}, 'already suspended: nothing to do');
    await t.rejects(driver.power(ref, 'shutdown'), { code: 'Busy', message: /suspended: its guest cannot shut down/ });
    await t.rejects(driver.power(ref, 'reset'), { code: 'Busy' });
    await t.rejects(driver.reconfigure(ref, { cpus: 4 }), { code: 'Busy', message: /suspended: its CPU and memory can change once it is powered off or resumed/ });
    await t.rejects(driver.resizeDisk(ref, 'root', 20 * GiB), { code: 'Busy', message: /suspended/ });
    t.equal((await driver.describe(vm.id)).cpus, vm.cpus, 'nothing changed');
    await driver.power(ref, 'on');
    t.equal((await driver.describe(vm.id)).powerState, 'On', 'PowerOnVM_Task resumes it');
    const reset = await driver.power(ref, 'reset');
    t.equal((await driver.taskStatus(reset.task ?? '')).state, 'succeeded', 'ResetVM_Task');
    t.equal((await driver.describe(vm.id)).powerState, 'On');
    await driver.power(ref, 'suspend');
    const off = await driver.power(ref, 'off');
    t.equal((await driver.taskStatus(off.task ?? '')).state, 'succeeded', 'a suspended VM powers off');
    t.equal((await driver.describe(vm.id)).powerState, 'Off');
  });

  t.test('a guest shutdown without VMware Tools falls back to a power-off', async (t) => {
    const vcsim = await startVcsim(t);
    await prepareTemplate(vcsim);
    // vcsim shuts any guest down; vCenter answers ToolsUnavailable when no Tools run in the guest.
    const proxy = await startSoapProxy(t, vcsim.url, undefined, (request) =>
      request.includes('<ShutdownGuest ')
        ? {
            status: 500,
            body: '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>Cannot complete operation because VMware Tools is not running in this virtual machine.</faultstring><detail><ToolsUnavailableFault xmlns="urn:vim25" xsi:type="ToolsUnavailable"></ToolsUnavailableFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>',
          }
        : undefined,
    );
    const driver = vsphereDriverFromEnv({ ...vcsim.env, VSPHERE_ENDPOINT: proxy.url });
    t.teardown(() => driver.close());
    const vm = await createFully({ driver, spec: basicSpec, waitUntil: async () => {}, addForeignVM: async () => '', close: async () => {} }, basicSpec('no-tools', owner('no-tools')));
    const ref = { id: vm.id, owner: owner('no-tools') };
    await driver.power(ref, 'on');
    const shutdown = await driver.power(ref, 'shutdown');
    t.ok(shutdown.task, 'PowerOffVM_Task');
    t.equal((await driver.taskStatus(shutdown.task ?? '')).state, 'succeeded');
    t.equal((await driver.describe(vm.id)).powerState, 'Off');
    t.equal(proxy.requests.filter((request) => request.includes('<PowerOffVM_Task ')).length, 1);
  });

  t.test('a memory snapshot of a running VM is listed with its memory', async (t) => {
    const { driver, create } = await setup(t);
    const vm = await create(basicSpec('snap', owner('snap')));
    const ref = { id: vm.id, owner: owner('snap') };
    await driver.power(ref, 'on');
    const created = await driver.snapshotCreate(ref, { name: 'with-ram', description: 'd', memory: true, quiesce: true });
    t.match(created.id, /^snapshot-/);
    t.match(await driver.snapshotList(ref), [{ id: created.id, name: 'with-ram', description: 'd', memory: true }]);
    await t.rejects(driver.snapshotRevert(ref, 'no-such'), { code: 'NotFound' });
    const removed = await driver.snapshotDelete(ref, 'with-ram');
    t.equal((await driver.taskStatus(removed.task ?? '')).state, 'succeeded');
    t.same(await driver.snapshotList(ref), []);
  });

  t.test('what the driver cannot do is refused as Unsupported before anything is cloned', async (t) => {
    const { vcsim, driver } = await setup(t);
    const refusals: Partial<CreateSpec>[] = [
      { image: { kind: 'iso', url: 'http://127.0.0.1:9/installer.iso' }, disks: [{ name: 'root', sizeBytes: GiB, root: true }] },
      { storage: { provisioning: 'thick' } },
      { machine: 'q35' },
      { nics: [{ name: 'lan', mtu: 9000 }] },
      { nics: [{ name: 'lan', firewall: true }] },
      { nics: [{ name: 'lan', rateLimitMBps: 100 }] },
    ];
    for (const [index, overrides] of refusals.entries()) {
      await t.rejects(driver.create(basicSpec('refused', owner(`refused${index}`), overrides)), { code: 'Unsupported' });
    }
    t.notMatch(await vcsim.govc('ls', '/DC0/vm'), /refused/);
    const vm = await createFully(
      { driver, spec: basicSpec, waitUntil: async () => {}, addForeignVM: async () => '', close: async () => {} },
      basicSpec('default-model', owner('default-model'), { nics: [{ name: 'lan', network: 'VM Network', model: 'virtio' }] }),
    );
    t.match(vm.nics, [{ name: 'lan', network: 'VM Network' }], "virtio, the API's default model, is the hypervisor's default");
  });

  t.test('NICs go on standard and distributed port groups with the asked adapter type and MAC; a VLAN picks the port group that carries it', async (t) => {
    const { vcsim, driver, create } = await setup(t);
    await vcsim.govc('host.portgroup.add', '-host', 'DC0_H0', '-vswitch', 'vSwitch0', '-vlan', '200', 'VLAN200');
    await vcsim.govc('dvs.portgroup.add', '-dvs', 'DVS0', '-vlan', '100', 'DC0_DVPG100');
    const vm = await create(
      basicSpec('nics', owner('nics'), {
        nics: [
          // The template's e1000 becomes a vmxnet3 on the one port group carrying VLAN 200.
          { name: 'lan', model: 'vmxnet3', mac: '00:50:56:3F:00:01', vlan: 200 },
          { name: 'storage', network: 'DC0_DVPG0', model: 'e1000e' },
          { name: 'tagged', network: 'DC0_DVPG100', vlan: 100, model: 'virtio' },
        ],
      }),
    );
    t.same(vm.nics.map((nic) => ({ ...nic, mac: nic.name === 'lan' ? nic.mac : 'generated' })), [
      { name: 'lan', mac: '00:50:56:3f:00:01', network: 'VLAN200', model: 'vmxnet3', vlan: 200 },
      { name: 'storage', mac: 'generated', network: 'DC0_DVPG0', model: 'e1000e' },
      { name: 'tagged', mac: 'generated', network: 'DC0_DVPG100', vlan: 100 },
    ], 'a model and a VLAN are reported where asked; virtio keeps the adapter vSphere picks');
    const types = JSON.parse(await vcsim.govc('device.info', '-json', '-vm', '/DC0/vm/nics', 'ethernet-*')) as { Devices: { Type: string; AddressType: string }[] };
    t.same(types.Devices.map((device) => [device.Type, device.AddressType]), [['VirtualVmxnet3', 'manual'], ['VirtualE1000e', 'generated'], ['VirtualVmxnet3', 'generated']]);

    const refused = async (nic: NicSpec, code: string, message: RegExp, key: string) => {
      await t.rejects(driver.create(basicSpec('refused-nic', owner(key), { nics: [nic] })), { code, message }, message.source);
    };
    await refused({ name: 'lan', mac: '00:50:56:40:00:01' }, 'InvalidSpec', /manual MAC only in 00:50:56:00:00:00–00:50:56:3F:FF:FF, not 00:50:56:40:00:01/, 'mac-range');
    await refused({ name: 'lan', mac: '00:50:56:0g:00:01' }, 'InvalidSpec', /is not a MAC address/, 'mac-form');
    await refused({ name: 'lan', model: 'rtl8139' }, 'InvalidSpec', /vSphere has no 'rtl8139' adapter/, 'model');
    await refused({ name: 'lan', vlan: 300 }, 'InvalidSpec', /no port group in datacenter DC0 carries VLAN 300/, 'vlan-none');
    await refused({ name: 'lan', network: 'VM Network', vlan: 100 }, 'InvalidSpec', /network 'VM Network' carries no VLAN, not VLAN 100/, 'vlan-named');
    await refused({ name: 'lan', vlan: 4095 }, 'InvalidSpec', /not a VLAN ID/, 'vlan-range');
    await vcsim.govc('host.portgroup.add', '-host', 'DC0_H0', '-vswitch', 'vSwitch0', '-vlan', '100', 'VLAN100');
    await refused({ name: 'lan', vlan: 100 }, 'InvalidSpec', /several port groups carry VLAN 100 \(DC0_DVPG100, VLAN100\); name one/, 'vlan-two');
    t.notMatch(await vcsim.govc('ls', '/DC0/vm'), /refused-nic|vr-/, 'nothing is cloned for a refused NIC');
  });

  t.test('a VM converted to a template is no VM of ours any more: NotFound, and never changed', async (t) => {
    const { vcsim, driver, create } = await setup(t);
    const vm = await create(basicSpec('golden', owner('golden')));
    const ref = { id: vm.id, owner: owner('golden') };
    await vcsim.govc('vm.markastemplate', '/DC0/vm/golden');
    await t.rejects(driver.describe(vm.id), { code: 'NotFound', message: `VM ${vm.id} (golden) is now a template; templates are not VMs virtrigaud manages` });
    t.equal(await driver.findByIdentity(owner('golden').uid), undefined, 'its owner has no VM');
    await t.rejects(driver.delete(ref), { code: 'NotFound' }, 'its object may go; the template stays');
    await t.rejects(driver.power(ref, 'on'), { code: 'NotFound' });
    await t.rejects(driver.snapshotList(ref), { code: 'NotFound' });
    t.equal(await collect(vcsim, `VirtualMachine:${vm.id}`, 'config.template'), 'true', 'still a template');
  });

  t.test('probe, inventory and unknown tasks', async (t) => {
    const { driver } = await setup(t);
    t.match((await driver.probe()).version, /^VMware vCenter Server 6\.5\.0 .*\(API 6\.5\)$/);
    const inventory = await driver.inventory();
    t.equal(inventory.hosts.length, 4);
    t.ok(inventory.hosts.every((host) => host.cpus > 0 && host.memoryBytes > 0));
    t.same(inventory.datastores.map((datastore) => datastore.name).sort(), ['LocalDS_0', 'LocalDS_1']);
    t.ok(inventory.networks.includes('VM Network'));
    await t.rejects(driver.taskStatus('task-987654'), { code: 'NotFound' });
    await t.rejects(driver.describe('vm-987654'), { code: 'NotFound' });
  });
}
