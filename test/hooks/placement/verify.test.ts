// Verification from the hypervisor's state, table by table: who counts as placed before whom, what
// makes it wait, and what an existing VM's sync does in each placement state — above all, that only
// a VM this controller just created, still off, is ever released.
import t from 'tap';
import type { PlacementStatus } from '../../../src/contracts/crds/virtualmachine.js';
import type { Inventory, ObservedVM, PlacedVMInfo } from '../../../src/contracts/driver.js';
import { normalizeVMPlacementPolicy } from '../../../src/contracts/normalize/vmplacementpolicy.js';
import { GiB } from '../../../src/contracts/quantity.js';
import type { DriverCalls } from '../../../src/hooks/driver-calls.js';
import { verifyPlacement, PlacementLedger } from '../../../src/hooks/placement/verify.js';
import { checkExisting, rulesDigest, settleMs, type PlacementContext } from '../../../src/hooks/placement/vm.js';
import { basicSpec } from '../../conformance/driver-suite.js';

const rules = { affinity: [], antiAffinity: [], preferredAffinity: [], preferredAntiAffinity: [], spreadBy: [], maxVMsPerNode: 2 };
const request = { cpus: 2, memoryBytes: 4 * GiB, labels: {} };
const vm = (owner: string | undefined, order: number | undefined, extra: Partial<PlacedVMInfo> = {}): PlacedVMInfo => ({
  ...(owner !== undefined ? { owner, name: owner } : {}),
  ...(order !== undefined ? { order } : {}),
  labels: {},
  cpus: 2,
  memoryBytes: 4 * GiB,
  ...extra,
});
const inventoryOf = (placed: PlacedVMInfo[], memoryBytes = 64 * GiB): Inventory => ({
  hosts: [{ name: 'h1', cpus: 32, memoryBytes, cpusAllocated: placed.length * 2, memoryAllocatedBytes: placed.reduce((sum, entry) => sum + entry.memoryBytes, 0), vms: placed.length, placed }],
  datastores: [],
  networks: [],
});

t.test('placed before: lower order first, ties by owner UID, VMs without an order always', async (t) => {
  const me = { uid: 'm', host: 'h1', order: 100 };
  t.same(verifyPlacement(inventoryOf([vm('a', 50), vm('m', 100), vm('z', 200)]), rules, request, me), { kind: 'ok' }, 'one before, one after: within 2');
  t.match(verifyPlacement(inventoryOf([vm('a', 50), vm('b', 100), vm('m', 100)]), rules, request, me), { kind: 'violated', why: 'h1: maxVMsPerNode 2 reached' }, 'b < m on a tie');
  t.same(verifyPlacement(inventoryOf([vm('a', 50), vm('m', 100), vm('n', 100)]), rules, request, me), { kind: 'ok' }, 'n > m on a tie');
  t.match(verifyPlacement(inventoryOf([vm(undefined, undefined), vm('x', undefined), vm('m', 100)]), rules, request, me), { kind: 'violated' }, 'foreign and unordered VMs count as earlier');
});

t.test('memory: only what the VMs placed before it allocate counts', async (t) => {
  const roomy = { ...rules, maxVMsPerNode: undefined, minFreeMemoryBytes: 52 * GiB };
  const me = { uid: 'm', host: 'h1', order: 100 };
  t.same(verifyPlacement(inventoryOf([vm('a', 50), vm('m', 100), vm('z', 200, { memoryBytes: 16 * GiB })]), roomy, request, me), { kind: 'ok' }, '64 − 4 − 4 = 56 ≥ 52');
  t.match(verifyPlacement(inventoryOf([vm('a', 50, { memoryBytes: 12 * GiB }), vm('m', 100)]), roomy, request, me), { kind: 'violated', why: 'h1: 48Gi free after it < minFreeMemory 52Gi' });
});

t.test('it waits: another owner\'s VM still being made, its own VM not listed yet, an unknown host', async (t) => {
  const me = { uid: 'm', host: 'h1', order: 100 };
  t.match(verifyPlacement(inventoryOf([vm('a', undefined, { settling: true }), vm('m', 100)]), rules, request, me), { kind: 'wait', why: /a on h1 is still being created/ });
  t.same(verifyPlacement(inventoryOf([vm('m', undefined, { settling: true })]), rules, request, me), { kind: 'ok' }, 'never for itself');
  t.match(verifyPlacement(inventoryOf([vm('a', 50)]), rules, request, me), { kind: 'wait', why: 'the VM is not listed on h1 yet' });
  t.match(verifyPlacement(inventoryOf([]), rules, request, { ...me, host: 'h9' }), { kind: 'wait', why: 'host h9 is not in the provider\'s inventory' });
});

t.test('the ledger: pending creates are dropped once listed or once their window passed', async (t) => {
  const ledger = new PlacementLedger();
  const pending = { host: 'h1', vm: { name: 'x', labels: {} }, cpus: 2, memoryBytes: GiB };
  ledger.add('ns/p', 'x', pending, 1000);
  ledger.add('ns/p', 'y', { ...pending, vm: { name: 'y', labels: {} } }, 5000);
  t.same(ledger.pending('ns/p', inventoryOf([]), 0).length, 2);
  t.same(ledger.pending('ns/other', inventoryOf([]), 0), [], 'per Provider');
  t.same(ledger.pending('ns/p', inventoryOf([vm('y', 1)]), 0).map((entry) => entry.vm.name), ['x'], 'y is listed now');
  t.same(ledger.pending('ns/p', inventoryOf([]), 1000), [], 'x expired');
});

const policy = (() => {
  const normalized = normalizeVMPlacementPolicy({ constraints: { maxVMsPerNode: 2 } });
  if (!normalized.ok) throw new Error(normalized.problem);
  return { policy: 'two', value: normalized.value };
})();

function context(inventory: Inventory, now: number): { context: PlacementContext; inventoryCalls: () => number } {
  let calls = 0;
  const driverCalls = {
    driver: { inventory: async () => inventory },
    call: async <T>(_name: string, run: (options: object) => Promise<T>) => {
      calls += 1;
      return run({});
    },
    inventory: async () => {
      calls += 1;
      return structuredClone(inventory);
    },
  } as unknown as DriverCalls;
  return {
    context: { calls: driverCalls, ledger: new PlacementLedger(), provider: 'ns/p', policy, identity: { uid: 'm', namespace: 'ns', name: 'web' }, labels: {}, now, budgetMs: 2000 },
    inventoryCalls: () => calls,
  };
}

const observed = (powerState: 'On' | 'Off'): ObservedVM => ({
  id: '1',
  name: 'web',
  powerState,
  cpus: 2,
  memoryBytes: 4 * GiB,
  firmware: 'bios',
  features: { tpm: false, secureBoot: false, nestedVirtualization: false, cpuHotAdd: false, memoryHotAdd: false },
  disks: [],
  nics: [],
  ips: [],
  host: 'h1',
});
const spec = basicSpec('web', { uid: 'm', namespace: 'ns', name: 'web' });
const verifying: PlacementStatus = { policy: 'two', host: 'h1', order: 100, state: 'Verifying', rules: rulesDigest(policy.value) };
const full = inventoryOf([vm('a', 50), vm('b', 60), vm('m', 100)]);

t.test('an existing VM, state by state', async (t) => {
  const settled = 100 + settleMs(2000);
  const early = context(full, settled - 3000);
  t.match(await checkExisting(early.context, { vm: observed('Off'), previous: verifying, previousConditions: [], create: spec, busy: false }), { kind: 'hold', resyncAfterSeconds: 3 });
  t.equal(early.inventoryCalls(), 0, 'nothing read before the window ends');
  const busy = context(full, settled + 1);
  t.match(await checkExisting(busy.context, { vm: observed('Off'), previous: verifying, previousConditions: [], create: spec, busy: true }), { kind: 'hold', resyncAfterSeconds: 2 });

  const lost = context(full, settled);
  t.match(await checkExisting(lost.context, { vm: observed('Off'), previous: verifying, previousConditions: [], create: spec, busy: false }), {
    kind: 'release',
    record: { state: 'Releasing' },
    conditions: [{ type: 'Placed', status: false, reason: 'LostRace' }],
  });
  const started = context(full, settled);
  t.match(
    await checkExisting(started.context, { vm: observed('On'), previous: verifying, previousConditions: [], create: spec, busy: false }),
    { kind: 'proceed', conditions: [{ type: 'Placed' }, { type: 'PlacementViolated', status: true }] },
    'a VM someone started is never released',
  );
  const found = context(full, settled);
  t.match(
    await checkExisting(found.context, { vm: observed('Off'), previous: undefined, previousConditions: [], create: spec, busy: false }),
    { kind: 'proceed', record: { state: 'Placed' }, conditions: [{ type: 'Placed', message: 'on h1 (found placed)' }, { type: 'PlacementViolated', status: true }] },
    'no record (a lost status): adopted and reported, never released',
  );
  const waiting = context(inventoryOf([vm('a', 50, { settling: true }), vm('m', 100)]), settled);
  t.match(
    await checkExisting(waiting.context, { vm: observed('Off'), previous: undefined, previousConditions: [], create: spec, busy: false }),
    { kind: 'proceed', record: { state: 'Placed', rules: '' }, conditions: [{ type: 'Placed', status: true }, { type: 'PlacementViolated', status: 'Unknown' }] },
    'a found VM that cannot be checked yet runs on and is checked again',
  );
  const stuck = inventoryOf([vm('a', 50, { settling: true }), vm('m', 100)]);
  t.match(await checkExisting(context(stuck, settled + 1000).context, { vm: observed('Off'), previous: verifying, previousConditions: [], create: spec, busy: false }), {
    kind: 'hold',
    resyncAfterSeconds: 2,
  });
  t.match(
    await checkExisting(context(stuck, settled + 3 * 3600_000).context, { vm: observed('Off'), previous: verifying, previousConditions: [], create: spec, busy: false }),
    { kind: 'hold', resyncAfterSeconds: 60, conditions: [{ reason: 'Verifying', message: /a on h1 is still being created/ }] },
    'another VM still being made hours later: still held, looked at once a minute',
  );
  const steady = context(full, settled);
  const placed: PlacementStatus = { ...verifying, state: 'Placed' };
  t.match(await checkExisting(steady.context, { vm: observed('On'), previous: placed, previousConditions: [], create: spec, busy: false }), { kind: 'proceed', record: placed });
  t.equal(steady.inventoryCalls(), 0, 'a placed VM under unchanged rules reads nothing');
});
