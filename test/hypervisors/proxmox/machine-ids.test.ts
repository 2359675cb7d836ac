// VM IDs a create chooses (CreateSpec.requestedId) or takes from a range (CreateSpec.idRange), on
// the fake PVE, with two runtimes (driver instances) racing where it matters: the hypervisor's own
// state decides, a lost answer never makes a second VM, and our own VM is never a conflict.

import t from 'tap';
import type { CreateSpec, Identity } from '../../../src/contracts/driver.js';
import { GiB } from '../../../src/contracts/quantity.js';
import { basicSpec } from '../../conformance/driver-suite.js';
import { createVM, fakeCluster, owner, type FakeCluster } from './fake-pve.js';

function spec(name: string, who: Identity, overrides: Partial<CreateSpec> = {}): CreateSpec {
  return basicSpec(name, who, { disks: [{ name: 'root', sizeBytes: 10 * GiB, root: true }], ...overrides });
}

const blank = { kind: 'blank' } as const;
const creates = (cluster: FakeCluster) => cluster.calls('POST', /\/clone$|^\/nodes\/[^/]+\/qemu$/);
const ourVMs = (cluster: FakeCluster) => cluster.fake.vms().filter((vm) => vm.config['template'] === undefined && !String(vm.name).startsWith('taken-') && vm.name !== 'foreign');

t.test('a requested VMID is taken as it is, without asking PVE for a free one', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const who = owner('d1');
  const id = await createVM(cluster, driver, spec('chosen', who, { requestedId: 4242 }));
  t.equal(id, '4242');
  t.equal(cluster.calls('GET', /^\/cluster\/nextid$/).length, 0);
  t.match(cluster.calls('POST', /\/clone$/)[0]?.params, { newid: '4242' });
  // The same create again (a retried sync): the owner's VM, not a conflict with itself.
  t.same(await driver.create(spec('chosen', who, { requestedId: 4242 })), { id: '4242' });
  const blankId = await createVM(cluster, driver, spec('blank', owner('d1b'), { image: blank, requestedId: 4243 }));
  t.equal(blankId, '4243');
});

t.test('a requested VMID a foreign VM holds is Conflict every time, nothing is created, and each try costs a few calls', async (t) => {
  const cluster = await fakeCluster(t);
  cluster.fake.addForeignVm({ vmid: 4300, name: 'foreign' });
  const driver = cluster.driver();
  for (const image of [undefined, blank]) {
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const before = cluster.calls().length;
      await t.rejects(driver.create(spec('mine', owner('d2'), { requestedId: 4300, ...(image === undefined ? {} : { image }) })), {
        code: 'Conflict',
        message: 'VM 4300 already exists',
      });
      const calls = cluster.calls().length - before;
      t.ok(calls <= 6, `${calls} PVE calls`);
    }
  }
  t.equal(creates(cluster).length, 0, 'no create or clone asked');
  t.equal(ourVMs(cluster).length, 0);
  t.equal(cluster.fake.vm(4300)?.name, 'foreign', 'untouched');
});

t.test('a VMID someone takes between the lookup and the clone is Conflict, and no VM of ours is left', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  cluster.fake.takeNextId(4400);
  await t.rejects(driver.create(spec('late', owner('d3'), { requestedId: 4400 })), { code: 'Conflict', message: 'VM 4400 already exists' });
  await cluster.until(async () => cluster.fake.tasks().every((task) => task.status === 'stopped'), 'the clone task ends');
  t.equal(cluster.fake.vm(4400)?.name, 'taken-4400', "the other client's VM");
  t.equal(await driver.findByIdentity(owner('d3').uid), undefined);
  await t.rejects(driver.create(spec('late', owner('d3'), { requestedId: 4400 })), { code: 'Conflict', message: 'VM 4400 already exists' });
  t.equal(creates(cluster).length, 1, 'the second try asks PVE nothing');
});

t.test("a requested VMID whose clone answer was lost is the owner's VM on the next create, never a conflict", async (t) => {
  const cluster = await fakeCluster(t);
  const who = owner('d4');
  const machine = spec('lost', who, { requestedId: 4500 });
  const driver = cluster.driver();
  cluster.fake.injectFault({ kind: 'dropResponse', method: 'POST', path: /\/clone$/ });
  await t.rejects(driver.create(machine), { code: 'Unreachable' });
  const again = await driver.create(machine);
  t.equal(again.id, '4500');
  // A restarted runtime, too: it waits while the clone names nobody, then continues the VM.
  const other = cluster.driver();
  await t.rejects(other.create(machine), { code: 'Busy' });
  await cluster.until(async () => (await other.findByIdentity(who.uid).catch(() => undefined))?.id === '4500', 'the clone names its owner');
  const id = await createVM(cluster, other, machine);
  t.equal(id, '4500');
  t.equal(cluster.calls('POST', /\/clone$/).length, 1, 'one clone');
});

t.test('two runtimes creating one owner\'s VM with the same requested VMID make one VM', async (t) => {
  const cluster = await fakeCluster(t, { taskDurations: { qmcreate: 30_000 } });
  const who = owner('d5');
  const machine = spec('twin', who, { image: blank, requestedId: 4600 });
  const [a, b] = [cluster.driver(), cluster.driver()];
  const outcomes = await Promise.allSettled([a.create(machine), b.create(machine)]);
  for (const outcome of outcomes) {
    if (outcome.status === 'fulfilled') t.equal(outcome.value.id, '4600');
    else t.match(outcome.reason, { code: 'Busy' }, 'the loser waits: the VM cannot be told apart yet, and is no conflict');
  }
  t.ok(outcomes.some((outcome) => outcome.status === 'fulfilled'), 'one of them created it');
  t.ok(creates(cluster).length <= 2, 'at most one create call each');
  cluster.clock.advance(31_000);
  t.equal(await createVM(cluster, b, machine), '4600');
  t.equal((await a.findByIdentity(who.uid))?.id, '4600');
  t.equal(ourVMs(cluster).length, 1, 'one VM');
});

t.test('two runtimes creating different owners\' VMs with the same requested VMID: one wins, the other is Conflict', async (t) => {
  const cluster = await fakeCluster(t, { taskDurations: { qmcreate: 30_000 } });
  const [x, y] = [owner('d6'), owner('d7')];
  const [a, b] = [cluster.driver(), cluster.driver()];
  const outcomes = await Promise.allSettled([a.create(spec('x', x, { image: blank, requestedId: 4700 })), b.create(spec('y', y, { image: blank, requestedId: 4700 }))]);
  const won = outcomes.filter((outcome) => outcome.status === 'fulfilled');
  t.equal(won.length, 1, 'one wins');
  const loser = outcomes.findIndex((outcome) => outcome.status === 'rejected');
  const rejected = outcomes[loser];
  // While the winner's create runs its VM names nobody: the loser waits (Busy) or already knows (Conflict).
  t.match(rejected?.status === 'rejected' ? rejected.reason : undefined, { code: /^(Conflict|Busy)$/ });
  cluster.clock.advance(31_000);
  const [loserDriver, loserOwner] = loser === 0 ? [a, x] : [b, y];
  for (let attempt = 0; attempt < 2; attempt += 1) {
    await t.rejects(loserDriver.create(spec(loser === 0 ? 'x' : 'y', loserOwner, { image: blank, requestedId: 4700 })), { code: 'Conflict', message: 'VM 4700 already exists' });
  }
  t.equal(await loserDriver.findByIdentity(loserOwner.uid), undefined);
  t.equal(ourVMs(cluster).length, 1, 'one VM');
  t.ok(creates(cluster).length <= 2);
});

t.test('VM ID ranges: the lowest free VMID, distinct ones for two racing runtimes, InvalidSpec when none is left', async (t) => {
  const cluster = await fakeCluster(t);
  cluster.fake.addForeignVm({ vmid: 5000, name: 'foreign' });
  const idRange = { min: 5000, max: 5003 };
  const [a, b] = [cluster.driver(), cluster.driver()];
  const [first, second] = await Promise.all([a.create(spec('a', owner('d8'), { idRange })), b.create(spec('b', owner('d9'), { image: blank, idRange }))]);
  t.same([first.id, second.id].sort(), ['5001', '5002'], 'distinct, the lowest free ones, the foreign VM skipped');
  await cluster.until(async () => cluster.fake.tasks().every((task) => task.status === 'stopped'), 'both first steps end');
  const third = await createVM(cluster, a, spec('c', owner('da'), { idRange }));
  t.equal(third, '5003');
  await cluster.until(async () => cluster.fake.tasks().every((task) => task.status === 'stopped'), 'all tasks end');
  await t.rejects(a.create(spec('d', owner('db'), { idRange })), { code: 'InvalidSpec', message: 'no free VMID left in the requested range 5000-5003' });
  const calls = creates(cluster).length;
  t.ok(calls >= 3 && calls <= 4, `${calls} create calls: the racing two may have tried one VMID both, the loser then the next`);
  t.equal(ourVMs(cluster).length, 3);
});

t.test('a VMID PVE cannot hold, or a requested one outside the range, is refused before any call', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  await t.rejects(driver.create(spec('low', owner('dc'), { requestedId: 99 })), { code: 'InvalidSpec', message: 'VM ID 99 is not a PVE VMID (100-999999999)' });
  await t.rejects(driver.create(spec('out', owner('dc'), { requestedId: 700, idRange: { min: 800, max: 900 } })), { code: 'InvalidSpec', message: 'VM ID 700 is outside the VM ID range 800-900' });
  await t.rejects(driver.create(spec('rev', owner('dc'), { idRange: { min: 900, max: 800 } })), { code: 'InvalidSpec' });
  t.equal(cluster.calls().length, 0);
});
