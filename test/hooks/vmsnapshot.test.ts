// The VMSnapshot sync hook, called directly against a recording driver: the request each shape of
// VMSnapshot makes of the hypervisor, what no driver honours refused before any call, and expiry
// (retentionPolicy.maxAge) deleting the hypervisor snapshot while the object stays as a record.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { parse } from 'yaml';
import type { VMSnapshotObject } from '../../src/contracts/crds/vmsnapshot.js';
import type { Capability, ObservedVM, SnapshotInfo, SnapshotRequest } from '../../src/contracts/driver.js';
import type { SyncRequestBody } from '../../src/contracts/metacontroller.js';
import { VMSNAPSHOT_FIELDS } from '../../src/contracts/normalize/vmsnapshot.js';
import { hypervisorSnapshotName, syncVMSnapshot } from '../../src/hooks/vmsnapshot.js';
import { FakeClock } from '../helpers/clock.js';
import { capabilitiesWith, fakeDriver, hookDeps } from '../helpers/fake-driver.js';
import { hookBody, object } from '../helpers/hook-bodies.js';

type Json = Record<string, any>;

const fixture = (name: string): Json =>
  parse(readFileSync(new URL(`../fixtures/upstream-shaped/vmsnapshot/${name}`, import.meta.url), 'utf8'), { version: '1.1' }) as Json;

const vm = object('VirtualMachine', 'web', {
  spec: { providerRef: { name: 'sim' }, classRef: { name: 'small' }, imageRef: { name: 'ubuntu-22' } },
  status: { providerID: 'vm-100' },
});
const provider = object('Provider', 'sim', { spec: { type: 'simulator' } });
const observed: ObservedVM = {
  id: 'vm-100',
  name: 'web',
  powerState: 'On',
  cpus: 2,
  memoryBytes: 4 * 2 ** 30,
  firmware: 'bios',
  features: { tpm: false, secureBoot: false, nestedVirtualization: false, cpuHotAdd: false, memoryHotAdd: false },
  disks: [],
  nics: [],
  ips: [],
};
const UID = '0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0';
const NAME = hypervisorSnapshotName(UID);

function snapshotObject(spec: Json, status?: Json): Json {
  const base = object('VMSnapshot', 'snap', { spec });
  return { ...base, metadata: { ...base['metadata'], uid: UID }, ...(status ? { status } : {}) };
}

interface World {
  snapshots: SnapshotInfo[];
  requests: SnapshotRequest[];
  deleted: string[];
}

async function sync(snapshot: Json, options: { capabilities?: Partial<Record<Capability, boolean>>; world?: World; clock?: FakeClock; related?: Json[] } = {}) {
  const world: World = options.world ?? { snapshots: [], requests: [], deleted: [] };
  const fake = fakeDriver('fake', capabilitiesWith(options.capabilities), {
    describe: async () => observed,
    snapshotList: async () => world.snapshots,
    snapshotCreate: async (_ref: unknown, request: SnapshotRequest) => {
      world.requests.push(request);
      return { id: 'snap-1' };
    },
    snapshotDelete: async (_ref: unknown, id: string) => {
      world.deleted.push(id);
      world.snapshots = world.snapshots.filter((item) => item.id !== id);
      return {};
    },
  });
  const body = hookBody(snapshot, options.related ?? [vm, provider]) as SyncRequestBody<VMSnapshotObject>;
  const response = await syncVMSnapshot(body, hookDeps(fake.registry, options.clock));
  const status = response.status as Json;
  const condition = (type: string) => (status['conditions'] as Json[]).find((c) => c['type'] === type);
  return { response, status, ready: condition('Ready'), condition, calls: fake.calls.map((call) => call.method), world };
}

t.test('an upstream-shaped VMSnapshot asks for a quiesced snapshot by default, its name heading the description', async (t) => {
  const { world, condition, status } = await sync(snapshotObject(fixture('quiesced.upstream.yaml')['spec']));
  t.same(world.requests, [{ name: NAME, memory: false, quiesce: true, description: 'nightly-backup: Taken every night' }]);
  t.match(condition('Quiesced'), { status: 'True' });
  t.equal(status['phase'], 'Creating');
});

t.test('its seed-shaped twin asks for the same snapshot; a seed VMSnapshot without quiesce does not quiesce', async (t) => {
  const twin = await sync(snapshotObject(fixture('quiesced.seed.yaml')['spec']));
  t.same(twin.world.requests, [{ name: NAME, memory: false, quiesce: true, description: 'nightly-backup: Taken every night' }]);
  const plain = await sync(snapshotObject({ vmRef: { name: 'web' } }));
  t.same(plain.world.requests, [{ name: NAME, memory: false, quiesce: false }]);
  t.notOk(plain.condition('Quiesced'), 'nothing asked, nothing said');
});

t.test('snapshotConfig.includeMemory, v1alpha1 memory and the seeds\' includeMemory ask for memory', async (t) => {
  for (const spec of [fixture('with-memory.upstream.yaml')['spec'], fixture('with-memory.seed.yaml')['spec'], fixture('v1alpha1.upstream.yaml')['spec']]) {
    const { world, condition } = await sync(snapshotObject(spec));
    t.equal(world.requests[0]?.memory, true);
    t.equal(world.requests[0]?.quiesce, false);
    t.match(condition('MemoryIncluded'), { status: 'True' });
  }
});

t.test('a crash-consistent upstream snapshot is not quiesced', async (t) => {
  const { world } = await sync(snapshotObject(fixture('crash-consistent.upstream.yaml')['spec']));
  t.same(world.requests, [{ name: NAME, memory: false, quiesce: false }]);
});

t.test('upstream\'s default quiesce on a provider that cannot quiesce: taken without, and said so', async (t) => {
  const { world, condition } = await sync(snapshotObject({ vmRef: { name: 'web' }, snapshotConfig: {} }), { capabilities: { quiescedSnapshots: false } });
  t.equal(world.requests[0]?.quiesce, false);
  t.match(condition('Quiesced'), { status: 'False', reason: 'Unsupported', message: /fake provider cannot quiesce/ });
});

/** `path` below the object, made as needed. */
function setAt(root: Json, path: string, value: unknown): void {
  const steps = path.split('.');
  let node: Json = root;
  for (const step of steps.slice(0, -1)) node = node[step] ??= {};
  node[steps[steps.length - 1] as string] = value;
}

for (const rule of VMSNAPSHOT_FIELDS) {
  const value = rule.values?.[0] ?? rule.example;
  const label = rule.values ? `${rule.path}: ${String(value)}` : rule.path;
  t.test(`${label} is Unsupported ${rule.capability ? `without ${rule.capability}` : 'on every provider'}: named with the driver, nothing asked of the hypervisor`, async (t) => {
    const spec: Json = { vmRef: { name: 'web' } };
    setAt({ spec }, rule.path, structuredClone(value));
    const { ready, status, calls, world, response } = await sync(snapshotObject(spec), { capabilities: rule.capability ? { [rule.capability]: false } : {} });
    t.equal(ready?.['reason'], 'Unsupported');
    t.match(ready?.['message'], `VMSnapshot snap: the fake provider cannot honour ${rule.path}`);
    if (rule.why) t.match(ready?.['message'], rule.why);
    t.equal(status['phase'], 'Failed');
    t.equal(response.resyncAfterSeconds, 300);
    t.same(calls, [], 'no driver call');
    t.same(world.requests, []);
  });
}

t.test('a disabled upstream schedule, encryption off and no compression ask for nothing', async (t) => {
  const { world, ready } = await sync(snapshotObject(fixture('retained.upstream.yaml')['spec']));
  t.equal(world.requests.length, 1);
  t.equal(ready?.['reason'], 'Creating');
});

t.test('a spec that contradicts itself is refused before any call', async (t) => {
  const { ready, calls, status } = await sync(snapshotObject({ vmRef: { name: 'web' }, snapshotConfig: { type: 'Crash', quiesce: true } }));
  t.match(ready, { reason: 'InvalidSpec', message: /snapshotConfig.quiesce: true contradicts/ });
  t.equal(status['phase'], 'Failed');
  t.same(calls, []);
});

const HOUR = 3_600_000;
const takenAt = '2026-01-01T00:00:00.000Z';
const ours = (): SnapshotInfo => ({ id: 'snap-1', name: NAME, createdAt: takenAt, memory: false });
const readyStatus = { phase: 'Ready', snapshotID: 'snap-1', creationTime: '2026-01-01T00:00:00Z', vm: { name: 'web', uid: 'uid-web', providerID: 'vm-100', provider: { namespace: 'default', name: 'sim' } } };
const retained = (retentionPolicy: Json, metadata?: Json) => ({ vmRef: { name: 'web' }, retentionPolicy, ...(metadata ? { metadata } : {}) });

t.test('retentionPolicy.maxAge: Ready until it passes, with expiryTime; then deleted from the hypervisor and Expired', async (t) => {
  const clock = new FakeClock(Date.parse(takenAt) + 115 * 60_000);
  const world: World = { snapshots: [ours()], requests: [], deleted: [] };
  const before = await sync(snapshotObject(retained({ maxAge: '2h' }), readyStatus), { clock, world });
  t.match(before.status, { phase: 'Ready', expiryTime: '2026-01-01T02:00:00Z' });
  t.match(before.ready, { status: 'True', message: /expires at 2026-01-01T02:00:00Z/ });
  t.equal(before.response.resyncAfterSeconds, 300, 'looks again when it expires (before the steady ten minutes)');
  t.same(world.deleted, []);

  clock.advance(5 * 60_000);
  const expiring = await sync(snapshotObject(retained({ maxAge: '2h' }), readyStatus), { clock, world });
  t.same(world.deleted, ['snap-1'], 'deleted on the hypervisor');
  t.match(expiring.status, { phase: 'Expired' });
  t.match(expiring.ready, { status: 'False', reason: 'Expiring' });

  const after = await sync(snapshotObject(retained({ maxAge: '2h' }), expiring.status), { clock, world });
  t.match(after.status, { phase: 'Expired', snapshotID: 'snap-1', expiryTime: '2026-01-01T02:00:00Z' });
  t.match(after.ready, { status: 'False', reason: 'Expired', message: /deleted from the hypervisor; delete this VMSnapshot/ });
  t.same(after.calls, [], 'a record now: nothing is asked of the hypervisor');
});

t.test('an expired snapshot stays gracePeriod longer; a pinned one never expires', async (t) => {
  const clock = new FakeClock(Date.parse(takenAt) + 3 * HOUR + 55 * 60_000);
  const world: World = { snapshots: [ours()], requests: [], deleted: [] };
  const grace = await sync(snapshotObject(retained({ maxAge: '2h', gracePeriod: '2h' }), readyStatus), { clock, world });
  t.match(grace.status, { phase: 'Ready' });
  t.match(grace.ready, { status: 'True', message: /expired, deleted at 2026-01-01T04:00:00Z \(retentionPolicy.gracePeriod\)/ });
  t.equal(grace.response.resyncAfterSeconds, 300);
  const pinned = await sync(snapshotObject(retained({ maxAge: '2h' }, { pinned: true }), readyStatus), { clock, world });
  t.match(pinned.status, { phase: 'Ready' });
  t.notOk('expiryTime' in pinned.status);
  t.same(world.deleted, []);
  const unprotected = await sync(snapshotObject(retained({ maxAge: '2h', preservePinned: false }, { pinned: true }), readyStatus), { clock, world });
  t.match(unprotected.status, { phase: 'Expired' });
  t.same(world.deleted, ['snap-1']);
});

t.test('a VM gone with deleteOnVMDelete asks for the object to be deleted; without, it stays as a record', async (t) => {
  const status = { ...readyStatus };
  const gone = await sync(snapshotObject(retained({ deleteOnVMDelete: true }), status), { related: [provider] });
  t.match(gone.ready, { reason: 'VMGone', message: /deleteOnVMDelete: delete this VMSnapshot \(it cannot delete itself\)/ });
  const kept = await sync(snapshotObject({ vmRef: { name: 'web' } }, status), { related: [provider] });
  t.match(kept.ready, { reason: 'VMGone' });
  t.notMatch(kept.ready?.['message'], /deleteOnVMDelete/);
  t.same([...gone.calls, ...kept.calls], []);
});
