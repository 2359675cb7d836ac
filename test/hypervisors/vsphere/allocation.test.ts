// CPU and memory allocation as the configuration step sends it: vim.ResourceAllocationInfo in the
// WSDL's element order, amounts in MHz and MB, and refusals before anything is cloned.
import t from 'tap';
import { GiB, MiB } from '../../../src/contracts/quantity.js';
import { allocationSpecs, checkLimits } from '../../../src/hypervisors/vsphere/allocation.js';
import type { Xml } from '../../../src/hypervisors/vsphere/soap.js';
import { parseXml, type XmlElement } from '../../../src/hypervisors/vsphere/xml.js';

function tree(xml: Xml | undefined): unknown {
  if (xml === undefined) return undefined;
  const shape = (element: XmlElement): unknown => (element.children.length === 0 ? [element.name, element.text] : [element.name, element.children.map(shape)]);
  return shape(parseXml(xml.toString()));
}

t.test('limits, reservations and shares become ResourceAllocationInfo in WSDL order (reservation, limit, shares; shares, level)', async (t) => {
  const { cpu, memory } = allocationSpecs({ cpuLimitMHz: 3000, cpuReservationMHz: 1000, cpuShares: 2500, memoryLimitBytes: 4 * GiB, memoryReservationBytes: 512 * MiB });
  t.same(tree(cpu), ['cpuAllocation', [['reservation', '1000'], ['limit', '3000'], ['shares', [['shares', '2500'], ['level', 'custom']]]]]);
  t.same(tree(memory), ['memoryAllocation', [['reservation', '512'], ['limit', '4096']]], 'memory in MB (bytes / 2^20)');
});

t.test('what the spec leaves unset is left out, and an allocation with nothing set is not sent', async (t) => {
  t.same(allocationSpecs(undefined), { cpu: undefined, memory: undefined });
  const sharesOnly = allocationSpecs({ cpuShares: 100 });
  t.same(tree(sharesOnly.cpu), ['cpuAllocation', [['shares', [['shares', '100'], ['level', 'custom']]]]]);
  t.equal(sharesOnly.memory, undefined);
  const memoryOnly = allocationSpecs({ memoryReservationBytes: GiB });
  t.equal(memoryOnly.cpu, undefined);
  t.same(tree(memoryOnly.memory), ['memoryAllocation', [['reservation', '1024']]]);
  t.same(tree(allocationSpecs({ cpuLimitMHz: 0 }).cpu), ['cpuAllocation', [['limit', '0']]], 'zero is a value, not unset');
});

t.test('amounts vSphere would refuse after the clone are InvalidSpec before it', async (t) => {
  const memory = 2 * GiB;
  const refused: [string, Parameters<typeof checkLimits>[0], RegExp][] = [
    ['negative CPU limit', { cpuLimitMHz: -1 }, /CPU limit/],
    ['fractional CPU reservation', { cpuReservationMHz: 1.5 }, /CPU reservation/],
    ['memory limit not in MiB', { memoryLimitBytes: GiB + 1 }, /memory limit must be a whole number of Mi/],
    ['zero shares', { cpuShares: 0 }, /CPU shares/],
    ['shares beyond an xsd:int', { cpuShares: 2 ** 31 }, /CPU shares/],
    ['CPU reservation above its limit', { cpuLimitMHz: 1000, cpuReservationMHz: 2000 }, /CPU reservation \(2000 MHz\) is more than the CPU limit \(1000 MHz\)/],
    ['memory reservation above its limit', { memoryLimitBytes: GiB, memoryReservationBytes: 2 * GiB }, /memory reservation is more than the memory limit/],
    ['memory reservation above the VM memory', { memoryReservationBytes: 4 * GiB }, /more than the VM's memory/],
  ];
  for (const [what, limits, message] of refused) t.throws(() => checkLimits(limits, memory), { code: 'InvalidSpec', message }, what);
  t.doesNotThrow(() => checkLimits({ cpuLimitMHz: 2000, cpuReservationMHz: 2000, cpuShares: 1, memoryLimitBytes: 4 * GiB, memoryReservationBytes: memory }, memory));
  t.doesNotThrow(() => checkLimits(undefined, memory));
});
