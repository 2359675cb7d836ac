// The capabilities added for the Viti API's Machines: each asks something of a create; a driver
// that claims the capability makes the VM with it, one that does not refuses the create as
// Unsupported and makes nothing.
import type { Capability, CreateSpec, Identity, ObservedVM } from '../../contracts/driver.js';
import { GiB } from '../../contracts/quantity.js';
import { unsupported } from '../checks.js';
import { createFully, deleteFully, powerTo, taskDone, type CaseContext, type ConformanceCase } from '../target.js';

/** A create that asks for one capability, and what the VM must show for it. */
export interface CapabilityCreate {
  id: string;
  capability: Capability;
  /** The owner and VM name key (`conf-<key>` in the tap suites). */
  key: string;
  ask(spec: CreateSpec, context: CaseContext): CreateSpec;
  check(context: CaseContext, vm: ObservedVM, me: Identity): Promise<void>;
}

const MACHINE_CASES: readonly CapabilityCreate[] = [
  {
    id: 'cpu-topology',
    capability: 'cpuTopology',
    key: 'topology',
    ask: (spec) => ({ ...spec, cpus: 4, settings: { cpuTopology: { sockets: 2, cores: 2 } } }),
    async check({ check }, vm) {
      check.equal(vm.cpus, 4, 'cpus');
      check.same(vm.settings?.cpuTopology, { sockets: 2, cores: 2 }, 'the CPU topology');
    },
  },
  {
    id: 'os-type',
    capability: 'osType',
    key: 'ostype',
    ask: (spec) => ({ ...spec, settings: { osType: 'windows' } }),
    async check({ check }, vm) {
      check.equal(vm.settings?.osType, 'windows', 'the OS type');
    },
  },
  {
    id: 'boot-order',
    capability: 'bootOrder',
    key: 'bootorder',
    ask: (spec) => ({ ...spec, settings: { bootOrder: ['network', 'disk'] } }),
    async check({ check }, vm) {
      check.same(vm.settings?.bootOrder, ['network', 'disk'], 'the boot order');
    },
  },
  {
    id: 'memory-balloon',
    capability: 'memoryBalloon',
    key: 'balloon',
    ask: (spec) => ({ ...spec, settings: { balloon: false } }),
    async check({ check }, vm) {
      check.equal(vm.settings?.balloon, false, 'ballooning off');
    },
  },
  {
    id: 'guest-agent',
    capability: 'guestAgent',
    key: 'agent',
    ask: (spec) => ({ ...spec, settings: { guestAgent: false } }),
    async check({ check }, vm) {
      check.equal(vm.settings?.guestAgent, false, 'the guest agent off');
    },
  },
  {
    id: 'deletion-protection',
    capability: 'deletionProtection',
    key: 'protected',
    ask: (spec) => ({ ...spec, settings: { protection: true } }),
    async check({ target, check }, vm, me) {
      check.equal(vm.settings?.protection, true, 'protection on');
      const ref = { id: vm.id, owner: me };
      await check.rejects(target.driver.delete(ref), { code: 'Conflict', message: /protection/ }, 'delete of a protected VM is refused');
      check.equal((await target.driver.describe(vm.id)).id, vm.id, 'the protected VM is still there');
      const { task } = await target.driver.reconfigure(ref, { settings: { protection: false } });
      await taskDone(target, task, 'protection off');
      check.equal((await target.driver.describe(vm.id)).settings?.protection, false, 'protection off after reconfigure');
    },
  },
  {
    id: 'disk-layout',
    capability: 'diskLayout',
    key: 'layout',
    ask: (spec) => ({ ...spec, disks: [...spec.disks, { name: 'data', sizeBytes: GiB, root: false, bus: 'virtio', cache: 'writeback' }] }),
    async check({ check }, vm) {
      check.match(vm.disks.find((disk) => disk.name === 'data'), { bus: 'virtio', cache: 'writeback', sizeBytes: GiB }, 'the data disk with its bus, cache and size');
    },
  },
  {
    id: 'explicit-id',
    capability: 'explicitId',
    key: 'vmid',
    ask: (spec, { requestedId }) => ({ ...spec, requestedId }),
    async check({ target, check, owner, vmName, requestedId }, vm) {
      check.equal(vm.id, String(requestedId), 'the VM has the asked ID');
      const other = owner('vmidother');
      await check.rejects(
        target.driver.create({ ...target.spec(vmName('vmid2'), other), requestedId }),
        { code: 'Conflict', message: `VM ${requestedId} already exists` },
        'a second create asking for the same ID is refused',
      );
      check.equal(await target.driver.findByIdentity(other.uid), undefined, 'nothing made for the other owner');
    },
  },
  {
    id: 'blank-vm',
    capability: 'blankVM',
    key: 'blank',
    ask: (spec) => ({ ...spec, image: { kind: 'blank' }, disks: [{ name: 'root', sizeBytes: GiB, root: true }] }),
    async check({ check }, vm) {
      check.equal(vm.powerState, 'Off', 'created powered off');
      check.ok(vm.disks.some((disk) => disk.name === 'root' && disk.sizeBytes >= GiB), 'an empty root disk of the asked size');
    },
  },
];

/** The case for a capability a create asks for: honoured when claimed, refused with nothing made when not. */
export const capabilityCreateCase = (machine: CapabilityCreate): ConformanceCase => ({
  id: machine.id,
  title: `${machine.capability}: honoured when claimed, refused as Unsupported with nothing made when not`,
  capability: machine.capability,
  destructive: false,
  async run(context) {
    const { target, check, owner, vmName } = context;
    const me = owner(machine.key);
    const spec = machine.ask(target.spec(vmName(machine.key), me), context);
    if (!target.driver.capabilities[machine.capability]) {
      await check.rejects(target.driver.create(spec), { code: 'Unsupported' }, `a create asking for ${machine.capability} is refused`);
      check.equal(await target.driver.findByIdentity(me.uid), undefined, 'nothing made');
      unsupported(`no ${machine.capability} capability; refused as Unsupported with nothing made`);
    }
    const vm = await createFully(target, spec);
    check.same(vm.owner, me, 'the VM carries its owner');
    await machine.check(context, vm, me);
    await deleteFully(target, { id: vm.id, owner: me });
  },
});

export const machineCases: readonly ConformanceCase[] = MACHINE_CASES.map(capabilityCreateCase);

/**
 * A power operation only some drivers have (suspend, a hard reset): on a driver that claims it, the
 * running VM goes where it should; on one that does not, the call is refused as Unsupported and
 * the VM is left as it was.
 */
function powerCase(id: string, capability: Capability, key: string, exercise: (context: CaseContext, ref: { id: string; owner: Identity }) => Promise<void>): ConformanceCase {
  return {
    id,
    title: `${capability}: honoured when claimed, refused as Unsupported (the VM untouched) when not`,
    capability,
    destructive: false,
    async run(context) {
      const { target, check, owner, vmName } = context;
      const me = owner(key);
      const vm = await createFully(target, target.spec(vmName(key), me));
      const ref = { id: vm.id, owner: me };
      try {
        if (!target.driver.capabilities[capability]) {
          const operation = capability === 'suspend' ? 'suspend' : 'reset';
          await check.rejects(target.driver.power(ref, operation), { code: 'Unsupported' }, `power ${operation} is refused`);
          check.equal((await target.driver.describe(vm.id)).powerState, vm.powerState, 'the VM is as it was');
          unsupported(`no ${capability} capability; power ${operation} refused as Unsupported`);
        }
        await powerTo(target, ref, 'on', 'On');
        await exercise(context, ref);
      } finally {
        await deleteFully(target, ref);
      }
    },
  };
}

export const suspendCase = powerCase('suspend-resume', 'suspend', 'suspend', async ({ target, check }, ref) => {
  const { task } = await target.driver.power(ref, 'suspend');
  await taskDone(target, task, 'suspend');
  await target.waitUntil(async () => (await target.driver.describe(ref.id)).powerState === 'Suspended', 'suspended');
  check.ok(true, 'the running VM is Suspended');
  await powerTo(target, ref, 'on', 'On');
  check.ok(true, 'power on resumes it');
});

export const hardResetCase = powerCase('hard-reset', 'hardReset', 'reset', async ({ target, check }, ref) => {
  const { task } = await target.driver.power(ref, 'reset');
  await taskDone(target, task, 'reset');
  check.equal((await target.driver.describe(ref.id)).powerState, 'On', 'the reset VM runs');
});
