// Quiesced snapshots on Proxmox VE: PVE freezes the guest's filesystems through its agent around a
// snapshot without RAM; the driver takes one only when PVE will, and refuses the rest as
// Unsupported with the reason, before anything is taken.

import t, { type Test } from 'tap';
import type { SnapshotRequest, VMRef } from '../../../src/contracts/driver.js';
import { configRefusal, infoRefusal } from '../../../src/hypervisors/proxmox/quiesce.js';
import { basicSpec } from '../../conformance/driver-suite.js';
import { createVM, fakeCluster, owner, type FakeCluster } from './fake-pve.js';

const QUIESCED: SnapshotRequest = { name: 'consistent', memory: false, quiesce: true };

async function runningVM(t: Test, suffix: string, guestAgent = true): Promise<{ cluster: FakeCluster; driver: ReturnType<FakeCluster['driver']>; ref: VMRef }> {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const me = owner(suffix);
  const id = await createVM(cluster, driver, basicSpec('db', me, { settings: { guestAgent } }));
  const ref = { id, owner: me };
  await cluster.finish(driver, (await driver.power(ref, 'on')).task, 'start');
  // The guest boots (the fake's bootMs) before its agent answers.
  cluster.clock.advance(5000);
  return { cluster, driver, ref };
}

t.test('a quiesced snapshot is taken with the filesystems frozen when the agent answers and offers fsfreeze', async (t) => {
  const { cluster, driver, ref } = await runningVM(t, 'q1');
  const before = cluster.fake.requests.length;
  const created = await driver.snapshotCreate(ref, QUIESCED);
  const calls = cluster.fake.requests.slice(before).map((request) => `${request.method} ${request.path.replace(/^\/nodes\/[^/]+\/qemu\/\d+/, 'Q')}`);
  await cluster.finish(driver, created.task, 'snapshot');
  t.match(cluster.fake.vm(Number(ref.id))?.snapshots, [{ name: 'consistent', vmstate: false, frozen: true }]);
  t.ok(calls.includes('POST Q/agent/ping') && calls.includes('GET Q/agent/info'), calls.join(', '));
  t.equal(calls.at(-1), 'POST Q/snapshot', 'the snapshot last, after the checks');
  t.ok(calls.length <= 6, `${calls.length} PVE calls: ${calls.join(', ')}`);
});

t.test('a quiesced snapshot is refused when the agent does not answer, and nothing is taken', async (t) => {
  const { cluster, driver, ref } = await runningVM(t, 'q2');
  cluster.fake.setGuestAgent(Number(ref.id), false);
  await t.rejects(driver.snapshotCreate(ref, QUIESCED), { code: 'Unsupported', message: /guest agent does not answer \(QEMU guest agent is not running\)/ });
  t.same(cluster.fake.vm(Number(ref.id))?.snapshots, []);
  t.same(cluster.calls('POST', /\/snapshot$/), []);
});

t.test('a quiesced snapshot is refused when the agent is disabled in the VM config, without asking the guest', async (t) => {
  const { cluster, driver, ref } = await runningVM(t, 'q3', false);
  await t.rejects(driver.snapshotCreate(ref, QUIESCED), { code: 'Unsupported', message: /guest agent is disabled in the VM configuration/ });
  t.same(cluster.calls(undefined, /\/agent\//), []);
  t.same(cluster.fake.vm(Number(ref.id))?.snapshots, []);
});

t.test('a quiesced snapshot is refused when the agent does not offer fsfreeze', async (t) => {
  const { cluster, driver, ref } = await runningVM(t, 'q4');
  cluster.fake.setGuestFsFreeze(Number(ref.id), false);
  await t.rejects(driver.snapshotCreate(ref, QUIESCED), { code: 'Unsupported', message: /does not offer guest-fsfreeze-freeze and guest-fsfreeze-thaw/ });
  t.same(cluster.fake.vm(Number(ref.id))?.snapshots, []);
});

t.test('a stopped VM and a snapshot with memory need no freeze: both are taken without asking the agent', async (t) => {
  const { cluster, driver, ref } = await runningVM(t, 'q5');
  cluster.fake.setGuestAgent(Number(ref.id), false);
  const withMemory = await driver.snapshotCreate(ref, { ...QUIESCED, name: 'with-ram', memory: true });
  await cluster.finish(driver, withMemory.task, 'memory snapshot');
  await cluster.finish(driver, (await driver.power(ref, 'off')).task, 'stop');
  const stopped = await driver.snapshotCreate(ref, { ...QUIESCED, name: 'at-rest' });
  await cluster.finish(driver, stopped.task, 'snapshot');
  t.match(cluster.fake.vm(Number(ref.id))?.snapshots, [{ name: 'with-ram', vmstate: true }, { name: 'at-rest', vmstate: false }]);
  t.same(cluster.calls(undefined, /\/agent\/(ping|info)$/), []);
});

t.test('the config and agent answers are read the way qemu-server reads them', async (t) => {
  t.equal(configRefusal({ agent: '1' }), undefined);
  t.equal(configRefusal({ agent: 'enabled=1,freeze-fs=1' }), undefined);
  t.match(configRefusal({}), /disabled/);
  t.match(configRefusal({ agent: '0,type=virtio' }), /disabled/);
  t.match(configRefusal({ agent: '1,freeze-fs-on-backup=0' }), /freeze-fs-on-backup=0/);
  t.match(infoRefusal({ result: { error: { class: 'CommandNotFound', desc: 'not found' } } }), /error \(not found\)/);
  t.match(infoRefusal({ result: { supported_commands: [{ name: 'guest-fsfreeze-freeze', enabled: true }] } }), /guest-fsfreeze-thaw$/);
  t.equal(infoRefusal({ result: { supported_commands: [{ name: 'guest-fsfreeze-freeze', enabled: true }, { name: 'guest-fsfreeze-thaw', enabled: 1 }] } }), undefined);
});
