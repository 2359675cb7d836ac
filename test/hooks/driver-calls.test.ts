// DriverCalls.inventory: one inventory read per hook call however many steps ask, each reader its
// own copy; a failed read is asked again, not remembered.
import t from 'tap';
import { UnreachableError, type Driver, type Inventory } from '../../src/contracts/driver.js';
import { DriverCalls } from '../../src/hooks/driver-calls.js';
import { HookMetrics } from '../../src/hooks/metrics.js';

const INVENTORY: Inventory = { hosts: [{ name: 'h1', cpus: 4, memoryBytes: 8, cpusAllocated: 0, memoryAllocatedBytes: 0, vms: 0 }], datastores: [], networks: ['lan'] };

function calls(failures: number) {
  let reads = 0;
  const driver = {
    inventory: async () => {
      reads += 1;
      if (reads <= failures) throw new UnreachableError('down');
      return INVENTORY;
    },
  } as unknown as Driver;
  return { calls: new DriverCalls(driver, 'ns/p', new HookMetrics({ processMetrics: false }), new AbortController().signal), reads: () => reads };
}

t.test('two readers in one hook call: one read, two independent copies', async (t) => {
  const { calls: driverCalls, reads } = calls(0);
  const first = await driverCalls.inventory();
  const second = await driverCalls.inventory();
  t.equal(reads(), 1);
  t.same(first, INVENTORY);
  first.hosts.pop();
  t.same(second, INVENTORY, 'one reader changing its copy leaves the other\'s');
});

t.test('a failed read is not kept', async (t) => {
  const { calls: driverCalls, reads } = calls(1);
  await t.rejects(driverCalls.inventory(), { code: 'Unreachable' });
  t.same(await driverCalls.inventory(), INVENTORY);
  t.equal(reads(), 2);
});
