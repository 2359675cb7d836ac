// "I cannot see it" is never "it is gone": a VM vSphere lists but cannot read (its datastore
// inaccessible, its host disconnected) is unknown to every call and every process, while lookups
// for other owners go on. vcsim has no inaccessible datastores: a proxy shows its VMs as vCenter
// shows such VMs (no `config`, another `runtime.connectionState`) for as long as the test says.
import t, { type Test } from 'tap';
import type { Identity } from '../../../src/contracts/driver.js';
import { GiB } from '../../../src/contracts/quantity.js';
import { vsphereDriverFromEnv, type VsphereDriver } from '../../../src/hypervisors/vsphere/index.js';
import { basicSpec, createFully } from '../../conformance/driver-suite.js';
import { prepareTemplate, requireVcsim, startFaultProxy, startVcsim } from '../../helpers/vcsim.js';

t.setTimeout(180_000);

const owner = (name: string): Identity => ({ uid: `0e5ab1e0-0000-4000-8000-${name.padEnd(12, '0').slice(0, 12)}`, namespace: 'unread', name });

/** SOAP requests one lookup may make when an unreadable VM is in the list. */
const CALLS_PER_LOOKUP = 8;

async function setup(t: Test) {
  const vcsim = await startVcsim(t);
  await prepareTemplate(vcsim);
  const proxy = await startFaultProxy(t, vcsim);
  const fresh = (): VsphereDriver => {
    const driver = vsphereDriverFromEnv({ ...vcsim.env, VSPHERE_ENDPOINT: proxy.url });
    t.teardown(() => driver.close());
    return driver;
  };
  const create = (name: string, who: Identity) =>
    createFully({ driver: fresh(), spec: basicSpec, waitUntil: async () => {}, addForeignVM: async () => '', close: async () => {} }, basicSpec(name, who));
  return { vcsim, proxy, fresh, create };
}

if (requireVcsim(t)) {
  t.test('a VM on an inaccessible datastore is unknown, not gone, to every call and every process', async (t) => {
    const { vcsim, proxy, fresh, create } = await setup(t);
    const web = await create('web', owner('web'));
    const db = await create('db', owner('db'));
    const foreign = (await vcsim.govc('ls', '-i', '/DC0/vm/DC0_H0_VM1')).trim().replace(/^VirtualMachine:/, '');
    proxy.degrade(web.id, { hideConfig: true, connectionState: 'inaccessible' });
    proxy.degrade(foreign, { hideConfig: true, connectionState: 'orphaned' });
    const changes = () => ['CloneVM_Task', 'Destroy_Task', 'PowerOnVM_Task', 'ReconfigVM_Task', 'CreateSnapshot_Task'].map((method) => proxy.calls(method));
    const before = changes();
    const ref = { id: web.id, owner: owner('web') };
    // The fault persists: every round is a new process (a restarted runtime) asking again.
    for (let round = 0; round < 3; round++) {
      const driver = fresh();
      await t.rejects(driver.describe(web.id), { code: 'Unreachable', message: new RegExp(`VM ${web.id} \\(web\\) is unknown, not gone: it is inaccessible`) });
      const sent = proxy.requests.length;
      await t.rejects(driver.findByIdentity(owner('web').uid), { code: 'Unreachable', message: new RegExp(web.id) }, 'renamed, but its vmx path still bears the placeholder');
      t.ok(proxy.requests.length - sent <= CALLS_PER_LOOKUP, `findByIdentity: ${proxy.requests.length - sent} calls`);
      await t.rejects(driver.create(basicSpec('web', owner('web'))), { code: 'Unreachable' }, 'no replacement is cloned');
      await t.rejects(driver.delete(ref), { code: 'Unreachable' }, 'not Conflict: its owner cannot be told');
      await t.rejects(driver.power(ref, 'on'), { code: 'Unreachable' });
      await t.rejects(driver.reconfigure(ref, { cpus: 4 }), { code: 'Unreachable' });
      await t.rejects(driver.resizeDisk(ref, 'root', 50 * GiB), { code: 'Unreachable' });
      await t.rejects(driver.snapshotList(ref), { code: 'Unreachable' });
      await t.rejects(driver.snapshotCreate(ref, { name: 's', memory: false, quiesce: false }), { code: 'Unreachable' });
      await t.rejects(driver.clone(ref, { name: 'copy', owner: owner('copy'), linked: false }), { code: 'Unreachable' });
      t.equal((await driver.findByIdentity(owner('db').uid))?.id, db.id, 'other owners are found as ever');
      t.equal(await driver.findByIdentity(owner('nobody').uid), undefined, 'unreadable VMs that cannot be this owner’s are skipped');
    }
    t.same(changes(), before, 'nothing was cloned, destroyed, powered, reconfigured or snapshotted');

    proxy.restore(web.id);
    const back = await fresh().describe(web.id);
    t.match(back, { id: web.id, name: 'web', owner: owner('web') }, 'the same VM once its datastore is back');
    t.equal((await fresh().findByIdentity(owner('web').uid))?.id, web.id);
  });

  t.test('a VM whose host is disconnected is unknown, though vCenter still shows its identity', async (t) => {
    const { proxy, fresh, create } = await setup(t);
    const vm = await create('far', owner('far'));
    proxy.degrade(vm.id, { hideConfig: false, connectionState: 'disconnected' });
    for (let round = 0; round < 2; round++) {
      const driver = fresh();
      await t.rejects(driver.describe(vm.id), { code: 'Unreachable', message: /it is disconnected: its host is not connected to vCenter/ });
      await t.rejects(driver.findByIdentity(owner('far').uid), { code: 'Unreachable' });
      await t.rejects(driver.delete({ id: vm.id, owner: owner('far') }), { code: 'Unreachable' });
      await t.rejects(driver.create(basicSpec('far', owner('far'))), { code: 'Unreachable' });
    }
    t.equal(proxy.calls('Destroy_Task'), 0);
    proxy.restore(vm.id);
    t.equal((await fresh().findByIdentity(owner('far').uid))?.id, vm.id);
  });
}
