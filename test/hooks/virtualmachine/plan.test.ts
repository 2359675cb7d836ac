import t from 'tap';
import { CAPABILITIES, type Capabilities, type ObservedVM } from '../../../src/contracts/driver.js';
import { GiB, MiB } from '../../../src/contracts/quantity.js';
import { planNextAction, type PlanInput } from '../../../src/hooks/virtualmachine/plan.js';
import type { ResolvedVM } from '../../../src/hooks/virtualmachine/resolve.js';

const NOW = Date.parse('2026-01-01T00:10:00Z');
const ALL: Capabilities = Object.fromEntries(CAPABILITIES.map((c) => [c, true])) as Capabilities;
const features = { tpm: false, secureBoot: false, nestedVirtualization: false, cpuHotAdd: false, memoryHotAdd: false };

function desired(overrides: Partial<ResolvedVM> = {}, create: Partial<ResolvedVM['create']> = {}): ResolvedVM {
  return {
    identity: { uid: 'uid-1', namespace: 'default', name: 'web' },
    provider: { namespace: 'default', name: 'sim', type: 'simulator', mode: 'InProcess' },
    create: {
      name: 'web',
      owner: { uid: 'uid-1', namespace: 'default', name: 'web' },
      cpus: 2,
      memoryBytes: 4 * GiB,
      firmware: 'bios',
      features,
      image: { kind: 'template', ref: 'ubuntu-22-template', fullClone: true },
      disks: [{ name: 'root', sizeBytes: 40 * GiB, root: true }],
      storage: { provisioning: 'thin' },
      nics: [{ name: 'lan' }],
      placement: {},
      ...create,
    },
    powerState: 'On',
    shutdownTimeoutMs: 60_000,
    powerCyclePolicy: 'Manual',
    deletionPolicy: 'Delete',
    offlineGrowth: [],
    ...overrides,
  };
}

function observed(overrides: Partial<ObservedVM> = {}): ObservedVM {
  return {
    id: '101',
    name: 'web',
    owner: { uid: 'uid-1', namespace: 'default', name: 'web' },
    powerState: 'On',
    cpus: 2,
    memoryBytes: 4 * GiB,
    firmware: 'bios',
    features,
    disks: [{ name: 'root', sizeBytes: 40 * GiB }],
    nics: [{ name: 'lan', network: 'lan', mac: '52:54:00:00:00:01' }],
    ips: ['10.0.0.5'],
    host: 'sim-host-1',
    ...overrides,
  };
}

function input(overrides: Partial<PlanInput> = {}): PlanInput {
  return {
    desired: desired(),
    observed: observed(),
    hadProviderID: true,
    task: undefined,
    capabilities: ALL,
    restartHandled: undefined,
    now: NOW,
    ...overrides,
  };
}

const shutdownTask = (startedAt: string) => ({ ref: { id: '', operation: 'Shutdown' as const, startedAt }, status: undefined });

const table: { name: string; input: PlanInput; action: unknown; reasons?: Record<string, string>; keepTask?: boolean }[] = [
  {
    name: 'a VM that does not exist yet is created',
    input: input({ observed: undefined, hadProviderID: false }),
    action: { kind: 'create' },
    reasons: { provisioned: 'Creating' },
  },
  {
    name: 'a VM that disappeared is created again and says so',
    input: input({ observed: undefined, hadProviderID: true }),
    action: { kind: 'create' },
    reasons: { provisioned: 'Recreating' },
  },
  {
    name: 'nothing starts while a task is running',
    input: input({ observed: undefined, task: { ref: { id: 'T1', operation: 'Create', startedAt: '2026-01-01T00:09:59Z' }, status: { state: 'running', progress: 40 } } }),
    action: { kind: 'none' },
    reasons: { provisioned: 'Creating' },
    keepTask: true,
  },
  {
    name: 'a failed task is reported and not retried in the same sync',
    input: input({ observed: undefined, task: { ref: { id: 'T1', operation: 'Create', startedAt: '2026-01-01T00:09:00Z' }, status: { state: 'failed', error: 'disk full' } } }),
    action: { kind: 'none' },
    reasons: { provisioned: 'CreateFailed' },
    keepTask: false,
  },
  {
    name: 'a VM locked by the hypervisor is left alone',
    input: input({ observed: observed({ lock: 'create', powerState: 'Off' }) }),
    action: { kind: 'none' },
    reasons: { provisioned: 'Creating' },
  },
  {
    name: 'a VM whose creation has steps left is handed back to create',
    input: input({ observed: observed({ incomplete: true, powerState: 'Off', ips: [] }) }),
    action: { kind: 'create' },
    reasons: { provisioned: 'Creating' },
  },
  {
    name: 'a revert whose snapshot is ready comes before any other change',
    input: input({
      desired: desired({ revert: { snapshot: 'before', request: 'r1', snapshotID: 'snap-1' } }, { cpus: 4 }),
      observed: observed({ powerState: 'Off' }),
    }),
    action: { kind: 'revert', snapshot: 'before', snapshotID: 'snap-1', request: 'r1' },
    reasons: { configured: 'Reverting' },
  },
  {
    name: 'a revert already started for this request is not started again',
    input: input({
      desired: desired({ revert: { snapshot: 'before', request: 'r1', snapshotID: 'snap-1' } }),
      revertHandled: { snapshot: 'before', request: 'r1', snapshotID: 'snap-1', startedAt: '2026-01-01T00:00:00Z' },
    }),
    action: { kind: 'none' },
    reasons: { configured: 'InSync' },
  },
  {
    name: 'a new request value reverts again',
    input: input({
      desired: desired({ revert: { snapshot: 'before', request: 'r2', snapshotID: 'snap-1' } }),
      revertHandled: { snapshot: 'before', request: 'r1', snapshotID: 'snap-1', startedAt: '2026-01-01T00:00:00Z' },
    }),
    action: { kind: 'revert', snapshot: 'before', snapshotID: 'snap-1', request: 'r2' },
  },
  {
    name: 'a revert waiting for its snapshot lets the rest of the spec apply and says why it waits',
    input: input({
      desired: desired({ revert: { snapshot: 'before', request: 'r1', problem: { reason: 'RevertSnapshotNotReady', message: 'VMSnapshot before is not Ready' } } }),
      observed: observed({ powerState: 'Off' }),
    }),
    action: { kind: 'power', operation: 'on', task: 'PowerOn' },
    reasons: { configured: 'RevertSnapshotNotReady' },
  },
  {
    name: 'a running revert task is waited for',
    input: input({ task: { ref: { id: 'T1', operation: 'Revert', startedAt: '2026-01-01T00:09:00Z' }, status: { state: 'running' } } }),
    action: { kind: 'none' },
    reasons: { configured: 'Reverting' },
    keepTask: true,
  },
  {
    name: 'a stopped VM that should run is powered on',
    input: input({ observed: observed({ powerState: 'Off', ips: [] }) }),
    action: { kind: 'power', operation: 'on', task: 'PowerOn' },
    reasons: { power: 'PoweringOn' },
  },
  {
    name: 'a running VM that should be Off is powered off hard',
    input: input({ desired: desired({ powerState: 'Off' }) }),
    action: { kind: 'power', operation: 'off', task: 'PowerOff' },
  },
  {
    name: 'OffGraceful asks the guest to shut down',
    input: input({ desired: desired({ powerState: 'OffGraceful' }) }),
    action: { kind: 'power', operation: 'shutdown', task: 'Shutdown' },
  },
  {
    name: 'OffGraceful powers off when the provider cannot ask the guest',
    input: input({ desired: desired({ powerState: 'OffGraceful' }), capabilities: { ...ALL, guestShutdown: false } }),
    action: { kind: 'power', operation: 'off', task: 'PowerOff' },
  },
  {
    name: 'a guest shutdown within its timeout is waited for',
    input: input({ desired: desired({ powerState: 'OffGraceful' }), task: shutdownTask('2026-01-01T00:09:30Z') }),
    action: { kind: 'none' },
    reasons: { power: 'ShuttingDown' },
    keepTask: true,
  },
  {
    name: 'a guest that ignores shutdown past the timeout is powered off',
    input: input({ desired: desired({ powerState: 'OffGraceful' }), task: shutdownTask('2026-01-01T00:08:59Z') }),
    action: { kind: 'power', operation: 'off', task: 'PowerOff' },
    reasons: { power: 'ShutdownTimedOut' },
  },
  {
    name: 'a shutdown nobody wants any more is dropped',
    input: input({ task: shutdownTask('2026-01-01T00:09:30Z') }),
    action: { kind: 'none' },
    keepTask: false,
  },
  {
    name: 'a running VM in sync needs nothing',
    input: input(),
    action: { kind: 'none' },
    reasons: { provisioned: 'Created', configured: 'InSync', power: 'PoweredOn' },
  },
  {
    name: 'a CPU increase goes online when the VM has hot-add',
    input: input({
      desired: desired({}, { cpus: 4, features: { ...features, cpuHotAdd: true } }),
      observed: observed({ features: { ...features, cpuHotAdd: true } }),
    }),
    action: { kind: 'reconfigure', change: { cpus: 4 } },
    reasons: { configured: 'Reconfiguring' },
  },
  {
    name: 'a CPU increase without hot-add waits for a power cycle under the Manual policy',
    input: input({ desired: desired({}, { cpus: 4 }) }),
    action: { kind: 'none' },
    reasons: { configured: 'PowerCyclePending' },
  },
  {
    name: 'a CPU increase without hot-add shuts the guest down under the Automatic policy',
    input: input({ desired: desired({ powerCyclePolicy: 'Automatic' }, { cpus: 4 }) }),
    action: { kind: 'power', operation: 'shutdown', task: 'Shutdown' },
    reasons: { power: 'Restarting', configured: 'PowerCycling' },
  },
  {
    name: 'pending changes apply while the VM is off, before it is powered on',
    input: input({ desired: desired({}, { cpus: 4, memoryBytes: 8 * GiB }), observed: observed({ powerState: 'Off', ips: [] }) }),
    action: { kind: 'reconfigure', change: { cpus: 4, memoryBytes: 8 * GiB } },
  },
  {
    name: 'a memory decrease needs hot-remove, not just hot-add',
    input: input({
      desired: desired({}, { memoryBytes: 2 * GiB, features: { ...features, memoryHotAdd: true } }),
      observed: observed({ features: { ...features, memoryHotAdd: true } }),
      capabilities: { ...ALL, memoryHotRemove: false },
    }),
    action: { kind: 'none' },
    reasons: { configured: 'PowerCyclePending' },
  },
  {
    name: 'a bigger disk is grown online when the provider can',
    input: input({ desired: desired({}, { disks: [{ name: 'root', sizeBytes: 60 * GiB, root: true }] }) }),
    action: { kind: 'resizeDisk', disk: 'root', sizeBytes: 60 * GiB },
  },
  {
    name: 'a bigger disk waits for the VM to be off when the provider cannot grow online',
    input: input({
      desired: desired({}, { disks: [{ name: 'root', sizeBytes: 60 * GiB, root: true }] }),
      capabilities: { ...ALL, onlineDiskGrow: false },
    }),
    action: { kind: 'none' },
    reasons: { configured: 'PowerCyclePending' },
  },
  {
    name: 'a bigger disk with expandPolicy Offline waits for the VM to be off even where the provider grows online',
    input: input({ desired: desired({ offlineGrowth: ['root'] }, { disks: [{ name: 'root', sizeBytes: 60 * GiB, root: true }] }) }),
    action: { kind: 'none' },
    reasons: { configured: 'PowerCyclePending' },
  },
  {
    name: 'a bigger disk with expandPolicy Offline is grown once the VM is off',
    input: input({
      desired: desired({ offlineGrowth: ['root'], powerState: 'Off' }, { disks: [{ name: 'root', sizeBytes: 60 * GiB, root: true }] }),
      observed: observed({ powerState: 'Off' }),
    }),
    action: { kind: 'resizeDisk', disk: 'root', sizeBytes: 60 * GiB },
  },
  {
    name: 'a disk the hypervisor rounded up to its allocation unit is the size asked for, not a shrink',
    input: input({
      desired: desired({}, { disks: [{ name: 'root', sizeBytes: 1_000_000_000, root: true }] }),
      observed: observed({ disks: [{ name: 'root', sizeBytes: 1_000_341_504 }] }),
    }),
    action: { kind: 'none' },
    reasons: { configured: 'InSync' },
  },
  {
    name: 'a smaller disk is refused and never applied',
    input: input({ desired: desired({}, { disks: [{ name: 'root', sizeBytes: 20 * GiB, root: true }] }) }),
    action: { kind: 'none' },
    reasons: { configured: 'DiskShrinkRejected' },
  },
  {
    name: 'a NIC moved to another network is reported, not acted on',
    input: input({ desired: desired({}, { nics: [{ name: 'lan', bridge: 'vmbr1' }] }) }),
    action: { kind: 'none' },
    reasons: { configured: 'ChangeNotSupported' },
  },
  {
    name: 'a restart request shuts a running VM down',
    input: input({ desired: desired({ restartRequest: 'r1' }) }),
    action: { kind: 'power', operation: 'shutdown', task: 'Shutdown' },
    reasons: { power: 'Restarting' },
  },
  {
    name: 'a restart request is handled once the VM is off, and it is powered on again',
    input: input({ desired: desired({ restartRequest: 'r1' }), observed: observed({ powerState: 'Off', ips: [] }) }),
    action: { kind: 'power', operation: 'on', task: 'PowerOn' },
  },
  {
    name: 'a restart request already handled does nothing',
    input: input({ desired: desired({ restartRequest: 'r1' }), restartHandled: 'r1' }),
    action: { kind: 'none' },
  },
  {
    name: 'a running VM without addresses yet is checked again soon',
    input: input({ observed: observed({ ips: [] }) }),
    action: { kind: 'none' },
  },
  {
    name: 'a shutdown whose task failed is not asked again within the deadline, which counts from the first request',
    input: input({ desired: desired({ powerState: 'OffGraceful' }), gracefulShutdown: { startedAt: '2026-01-01T00:09:50Z' } }),
    action: { kind: 'none' },
    reasons: { power: 'ShuttingDown' },
  },
  {
    name: 'past the deadline of the first shutdown request, the VM is powered off whatever the shutdown tasks did',
    input: input({
      desired: desired({ powerState: 'OffGraceful' }),
      gracefulShutdown: { startedAt: '2026-01-01T00:08:59Z' },
      task: { ref: { id: 'UPID:x', operation: 'Shutdown', startedAt: '2026-01-01T00:09:55Z' }, status: { state: 'failed', error: 'QEMU guest agent is not running' } },
    }),
    action: { kind: 'none' },
    reasons: { power: 'ShutdownFailed' },
  },
  {
    name: 'past the deadline, with the failed shutdown reported, the VM is powered off',
    input: input({ desired: desired({ powerState: 'OffGraceful' }), gracefulShutdown: { startedAt: '2026-01-01T00:08:59Z' } }),
    action: { kind: 'power', operation: 'off', task: 'PowerOff' },
    reasons: { power: 'ShutdownTimedOut' },
  },
  {
    name: 'a restart counts its deadline from the first shutdown too',
    input: input({ desired: desired({ restartRequest: 'r1' }), gracefulShutdown: { startedAt: '2026-01-01T00:08:00Z' } }),
    action: { kind: 'power', operation: 'off', task: 'PowerOff' },
  },
  {
    name: 'an operation still in its back-off is not tried, and Ready says why and until when',
    input: input({
      observed: observed({ powerState: 'Off' }),
      failure: { operation: 'PowerOn', reason: 'HypervisorError', message: 'power on: got timeout', count: 3, lastAttempt: '2026-01-01T00:09:58Z', retryable: true },
    }),
    action: { kind: 'none' },
    reasons: { power: 'HypervisorError' },
  },
  {
    name: 'past its back-off the operation is tried again',
    input: input({
      observed: observed({ powerState: 'Off' }),
      failure: { operation: 'PowerOn', reason: 'HypervisorError', message: 'power on: got timeout', count: 3, lastAttempt: '2026-01-01T00:09:55Z', retryable: true },
    }),
    action: { kind: 'power', operation: 'on', task: 'PowerOn' },
  },
  {
    name: 'a failure recorded under an older generation does not hold back the new spec',
    input: input({
      observed: observed({ powerState: 'Off' }),
      generation: 3,
      failure: { operation: 'PowerOn', reason: 'InvalidSpec', message: 'bad', count: 1, lastAttempt: '2026-01-01T00:09:59Z', retryable: false, generation: 2 },
    }),
    action: { kind: 'power', operation: 'on', task: 'PowerOn' },
  },
  {
    name: 'a failure of another operation does not hold this one back',
    input: input({
      observed: observed({ powerState: 'Off' }),
      failure: { operation: 'Create', reason: 'CreateFailed', message: 'x', count: 9, lastAttempt: '2026-01-01T00:09:59Z', retryable: true },
    }),
    action: { kind: 'power', operation: 'on', task: 'PowerOn' },
  },
  {
    name: 'a lock held for long is named as such instead of an endless Busy',
    input: input({ observed: observed({ lock: 'backup' }), lockHeld: { lock: 'backup', since: '2026-01-01T00:00:00Z' } }),
    action: { kind: 'none' },
    reasons: { configured: 'LockHeld', power: 'LockHeld' },
  },
  {
    name: 'a lock seen for a moment is ordinary business',
    input: input({ observed: observed({ lock: 'backup' }), lockHeld: { lock: 'backup', since: '2026-01-01T00:09:00Z' } }),
    action: { kind: 'none' },
    reasons: { configured: 'Busy' },
  },
  {
    name: 'a running VM asked to be Suspended is suspended',
    input: input({ desired: desired({ powerState: 'Suspended' }) }),
    action: { kind: 'power', operation: 'suspend', task: 'Suspend' },
    reasons: { power: 'Suspending' },
  },
  {
    name: 'a suspended VM asked to be Suspended is in sync',
    input: input({ desired: desired({ powerState: 'Suspended' }), observed: observed({ powerState: 'Suspended' }) }),
    action: { kind: 'none' },
    reasons: { power: 'Suspended' },
  },
  {
    name: 'a VM that is off and asked to be Suspended is started first',
    input: input({ desired: desired({ powerState: 'Suspended' }), observed: observed({ powerState: 'Off', ips: [] }) }),
    action: { kind: 'power', operation: 'on', task: 'PowerOn' },
  },
  {
    name: 'a suspended VM asked to be On is powered on (which resumes it)',
    input: input({ observed: observed({ powerState: 'Suspended' }) }),
    action: { kind: 'power', operation: 'on', task: 'PowerOn' },
    reasons: { power: 'PoweringOn' },
  },
  {
    name: 'a suspended VM asked to shut down gracefully is powered off: its guest cannot shut down',
    input: input({ desired: desired({ powerState: 'OffGraceful' }), observed: observed({ powerState: 'Suspended' }) }),
    action: { kind: 'power', operation: 'off', task: 'PowerOff' },
  },
  {
    name: 'a restart with restartMode Reset resets the running VM at once',
    input: input({ desired: desired({ restartRequest: 'r1', restartMode: 'Reset' }) }),
    action: { kind: 'power', operation: 'reset', task: 'Reset' },
    reasons: { power: 'Resetting' },
  },
  {
    name: 'a restart with restartMode Reset already handled does nothing',
    input: input({ desired: desired({ restartRequest: 'r1', restartMode: 'Reset' }), restartHandled: 'r1' }),
    action: { kind: 'none' },
  },
];

for (const row of table) {
  t.test(row.name, async (t) => {
    const plan = planNextAction(row.input);
    t.same(plan.action, row.action);
    for (const [slot, reason] of Object.entries(row.reasons ?? {})) {
      t.equal(plan[slot as 'provisioned' | 'configured' | 'power'].reason, reason, `${slot} reason`);
    }
    if (row.keepTask !== undefined) t.equal(plan.keepTask, row.keepTask, 'keepTask');
  });
}

t.test('a reset is handled as it is asked for: the request is recorded with the reset', async (t) => {
  const plan = planNextAction(input({ desired: desired({ restartRequest: 'r7', restartMode: 'Reset' }) }));
  t.equal(plan.restartHandled, 'r7');
});

t.test('a restart of a VM that is off is handled at once', async (t) => {
  const plan = planNextAction(input({ desired: desired({ restartRequest: 'r2', powerState: 'Off' }), observed: observed({ powerState: 'Off', ips: [] }) }));
  t.equal(plan.restartHandled, 'r2');
  t.same(plan.action, { kind: 'none' });
});

t.test('steady state asks for no early resync, waiting for addresses does', async (t) => {
  t.equal(planNextAction(input()).resyncAfterSeconds, 0);
  t.ok(planNextAction(input({ observed: observed({ ips: [] }) })).resyncAfterSeconds > 0);
});

t.test('a shutdown waits at most until its timeout', async (t) => {
  const plan = planNextAction(
    input({ desired: desired({ powerState: 'OffGraceful', shutdownTimeoutMs: 62_000 }), task: shutdownTask('2026-01-01T00:09:00Z') }),
  );
  t.equal(plan.resyncAfterSeconds, 2);
});

t.test('memory is compared in bytes, not by spelling', async (t) => {
  const plan = planNextAction(input({ desired: desired({}, { memoryBytes: 4096 * MiB }) }));
  t.same(plan.action, { kind: 'none' });
  t.equal(plan.configured.reason, 'InSync');
});

t.test('the records a plan hands on: a failure until its operation succeeds, the first shutdown, the lock and since when', async (t) => {
  const failing = { operation: 'PowerOn' as const, reason: 'HypervisorError', message: 'x', count: 2, lastAttempt: '2026-01-01T00:09:00Z', retryable: true };
  const retry = planNextAction(input({ observed: observed({ powerState: 'Off' }), failure: failing }));
  t.same(retry.failure, failing, 'kept while the operation is tried again');
  const succeeded = planNextAction(input({ failure: failing, task: { ref: { id: 't', operation: 'PowerOn', startedAt: '2026-01-01T00:09:30Z' }, status: { state: 'succeeded' } } }));
  t.equal(succeeded.failure, undefined, 'gone once its task succeeded');
  const steady = planNextAction(input({ failure: failing }));
  t.equal(steady.failure, undefined, 'gone once nothing is left to do');
  const shutdown = planNextAction(input({ desired: desired({ powerState: 'OffGraceful' }) }));
  t.same(shutdown.gracefulShutdown, { startedAt: '2026-01-01T00:10:00Z' }, 'the first shutdown request is recorded');
  const off = planNextAction(input({ desired: desired({ powerState: 'OffGraceful' }), observed: observed({ powerState: 'Off' }), gracefulShutdown: { startedAt: '2026-01-01T00:09:00Z' } }));
  t.equal(off.gracefulShutdown, undefined, 'and forgotten once the VM is off');
  const locked = planNextAction(input({ observed: observed({ lock: 'snapshot' }) }));
  t.same(locked.lockHeld, { lock: 'snapshot', since: '2026-01-01T00:10:00Z' });
  const held = planNextAction(input({ observed: observed({ lock: 'backup' }), lockHeld: { lock: 'backup', since: '2026-01-01T00:00:00Z' } }));
  t.equal(held.resyncAfterSeconds, 60, 'a lock held ten minutes is polled every minute, up to every five');
  t.same(held.lockHeld, { lock: 'backup', since: '2026-01-01T00:00:00Z' });
});
