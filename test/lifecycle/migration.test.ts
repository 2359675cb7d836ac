// VMMigration through the whole system: the Metacontroller stand-in drives the real hook server;
// two simulator Providers (one world, real files in a temporary migration directory) stand for
// the source and the target. Faults persist (a task that always fails, an unmounted PVC) and the
// outcome is checked from the hypervisor's side: one target VM, no leftovers.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { NotFoundError, type Driver, type TaskStatus } from '../../src/contracts/driver.js';
import type { SimulatorOptions } from '../../src/hypervisors/simulator/index.js';
import { API, lifecycle } from '../helpers/lifecycle.js';

t.setTimeout(300_000);

async function migrationWorld(t: Test, wrap?: (driver: Driver) => Driver, simulator: Omit<SimulatorOptions, 'migrationDir'> = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'virtrigaud-migration-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const env = await lifecycle(t, {
    simulator: { ...simulator, migrationDir: dir },
    ...(wrap ? { registry: (simulators) => ({ driverFor: async (provider) => wrap(await simulators.driverFor(provider)) }) } : {}),
  });
  await env.basics();
  env.cluster.create({ apiVersion: API, kind: 'Provider', metadata: { name: 'dest', namespace: 'default' }, spec: { type: 'simulator' } });
  await env.metacontroller.settle(() => env.get('Provider', 'dest')?.['status'] !== undefined);
  const migration = (name = 'move') => (env.get('VMMigration', name)?.['status'] ?? {}) as Record<string, unknown> & {
    phase?: string;
    conditions?: { type: string; status: string; reason: string; message: string }[];
    disks?: { name: string; phase: string; attempts?: number; image?: string }[];
  };
  const ready = (name = 'move') => migration(name).conditions?.find((condition) => condition.type === 'Ready');
  const migrate = (spec: Record<string, unknown> = {}, name = 'move') =>
    env.cluster.create({
      apiVersion: API,
      kind: 'VMMigration',
      metadata: { name, namespace: 'default' },
      spec: {
        source: { vmRef: { name: 'web' } },
        target: { vmRef: { name: 'web-moved' }, providerRef: { name: 'dest' } },
        storage: { type: 'pvc', pvc: { storageClassName: 'nfs-migration-storage', size: '100Gi', accessMode: 'ReadWriteMany' } },
        ...spec,
      },
    });
  /** Lets the simulator's real file writes finish between fake-time steps. */
  const settle = async (predicate: () => boolean) => {
    for (let round = 0; ; round++) {
      try {
        await env.metacontroller.settle(predicate, { maxFakeMs: 10 * 60_000, maxSyncs: 300 });
        return;
      } catch (error) {
        if (round === 100) throw error;
        await env.world.settled();
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
  };
  const offVM = async () => {
    env.createVM('web', { powerState: 'Off' });
    await env.metacontroller.settle(() => env.isReady('web') && env.status('web')['phase'] === 'Stopped');
  };
  const vmsNamed = (name: string) => env.world.listVMs().filter((vm) => vm.name === name);
  return { ...env, dir, migration, ready, migrate, settle, offVM, vmsNamed };
}

t.test('the seed\'s VMMigration moves a powered-off VM: one target VM from the exported disk, files and imported image cleaned up', async (t) => {
  const w = await migrationWorld(t);
  await w.offVM();
  w.migrate();
  await w.settle(() => w.migration().phase === 'Ready');
  const status = w.migration();
  t.equal(w.ready()?.reason, 'Completed');
  t.match(status, { targetVMRef: { name: 'web-moved' }, storagePVCName: 'move-migration', cleanedUp: true, validationResults: { diskSizeMatch: true, checksumMatch: true } });
  t.match(status.disks, [{ name: 'root', phase: 'Imported', attempts: 1 }]);
  const target = w.vm('web-moved');
  t.match(target?.['spec'], { providerRef: { name: 'dest' }, importedDisk: { source: 'migration', migrationRef: { name: 'move' } }, powerState: 'Off' });
  t.equal(w.vmsNamed('web-moved').length, 1, 'one target VM on the hypervisor');
  t.equal(w.vmsNamed('web').length, 1, 'the source stays');
  const pvc = w.cluster.get('v1', 'PersistentVolumeClaim', 'default', 'move-migration');
  t.match(pvc?.['spec'], { accessModes: ['ReadWriteMany'], resources: { requests: { storage: '100Gi' } }, storageClassName: 'nfs-migration-storage' });
  t.same(await readdir(join(w.dir, 'move-migration')), [], 'the staged files are removed');
  t.notOk(w.world.templateNames().some((name) => name.startsWith('import-')), 'the imported image is removed; the VM has its own copy');
});

t.test('a source that is on waits in StoppingSource until it is off; powerOffBeforeMigration powers it off and holds it off', async (t) => {
  const w = await migrationWorld(t);
  w.createVM('web');
  await w.metacontroller.settle(() => w.isReady('web') && w.status('web')['phase'] === 'Running');
  w.migrate();
  await w.settle(() => w.ready()?.reason === 'WaitingForPowerOff');
  t.equal(w.migration().phase, 'StoppingSource');
  t.match(w.ready()?.message, /set its spec\.powerState to Off/);
  w.cluster.delete(API, 'VMMigration', 'default', 'move');
  await w.settle(() => w.get('VMMigration', 'move') === undefined);

  w.migrate({ source: { vmRef: { name: 'web' }, powerOffBeforeMigration: true } }, 'held');
  await w.settle(() => w.migration('held').phase === 'Ready');
  t.equal(w.status('web')['powerState'], 'Off', 'held off while the VMMigration exists');
  await w.metacontroller.advance(20 * 60_000);
  t.equal(w.status('web')['powerState'], 'Off', 'still off');
  w.cluster.delete(API, 'VMMigration', 'default', 'held');
  await w.settle(() => w.status('web')['powerState'] === 'On');
  t.pass('the source follows its own spec again once the VMMigration is gone');
});

t.test('an unmounted PVC waits in Validating; one that cannot be written fails with the seed\'s message', async (t) => {
  const w = await migrationWorld(t);
  await w.offVM();
  w.world.injectFault('migrationVolume', { kind: 'invalid', times: Infinity, message: 'PVC mount not writable: /var/lib/virtrigaud/migrations/move-migration (EROFS)' });
  w.migrate();
  await w.settle(() => w.migration().phase === 'Failed');
  t.equal(w.ready()?.reason, 'StorageNotWritable');
  t.match(w.ready()?.message, /PVC mount not writable/);
  t.equal(w.world.callCount('exportDisk'), 0, 'nothing exported');
  t.equal(w.vmsNamed('web-moved').length, 0);
});

t.test('an export task that always fails is retried by the retry policy, then Failed; a retryRequest starts it again', async (t) => {
  const w = await migrationWorld(t);
  await w.offVM();
  w.world.injectFault('exportDisk', { kind: 'taskFailure', times: Infinity, message: 'datastore read error' });
  w.migrate({ options: { retryPolicy: { maxRetries: 2, retryDelay: '1m', backoffMultiplier: 2 } } });
  await w.settle(() => w.migration().phase === 'Failed');
  t.match(w.ready(), { reason: 'ExportFailed', message: /datastore read error.*failed 3 times/ });
  t.equal(w.world.callCount('exportDisk'), 3, 'one attempt and two retries');
  t.equal(w.vmsNamed('web-moved').length, 0, 'no target VM');
  t.equal(w.migration()['failedPhase'], 'Exporting');
  await w.metacontroller.advance(60 * 60_000);
  t.equal(w.world.callCount('exportDisk'), 3, 'a Failed migration calls nothing more');

  w.world.clearFaults();
  w.cluster.patchSpec(API, 'VMMigration', 'default', 'move', { retryRequest: 'again-1' });
  await w.settle(() => w.migration().phase === 'Ready');
  t.equal(w.vmsNamed('web-moved').length, 1);
  t.equal(w.migration()['retryHandled'], 'again-1');
});

t.test('a copy that fails its checksum is exported again; one that always does fails the migration with no target VM', async (t) => {
  const w = await migrationWorld(t);
  await w.offVM();
  const corrupt = 'disk file move-migration/x/root.raw does not match its checksum';
  w.world.injectFault('importDisk', { kind: 'conflict', times: 1, message: corrupt });
  w.migrate();
  await w.settle(() => w.migration().phase === 'Ready');
  t.equal(w.migration().disks?.[0]?.attempts, 2, 'exported twice');
  t.equal(w.world.callCount('exportDisk'), 2);
  t.equal(w.vmsNamed('web-moved').length, 1, 'one target VM');

  w.world.injectFault('importDisk', { kind: 'conflict', times: Infinity, message: corrupt });
  w.migrate({ target: { vmRef: { name: 'web-again' }, providerRef: { name: 'dest' } } }, 'again');
  await w.settle(() => w.migration('again').phase === 'Failed');
  t.match(w.ready('again'), { reason: 'ChecksumMismatch', message: /3 copies failed their checksum/ });
  t.equal(w.world.callCount('exportDisk'), 5, 'three copies, no more');
  t.equal(w.vmsNamed('web-again').length, 0, 'no target VM');
  t.equal((await readdir(join(w.dir, 'again-migration'))).length, 1, 'a Failed migration keeps its files for a retry (cleanupPolicy OnSuccess)');
});

t.test('what no driver does is Unsupported before anything moves; a target name taken by another VM is refused', async (t) => {
  const w = await migrationWorld(t);
  await w.offVM();
  w.migrate({ storage: { type: 's3', s3: { bucket: 'b', credentialsSecretRef: { name: 's3' } } } });
  await w.settle(() => w.migration().phase === 'Failed');
  t.match(w.ready(), { reason: 'Unsupported', message: /spec\.storage\.type=s3/ });
  w.createVM('taken', { powerState: 'Off' });
  w.migrate({ target: { name: 'taken', providerRef: { name: 'dest' } } }, 'clash');
  await w.settle(() => w.migration('clash').phase === 'Failed');
  t.equal(w.ready('clash')?.reason, 'TargetExists');
  t.equal(w.world.callCount('exportDisk'), 0);
});

/**
 * The driver of a runtime that restarts while it exports: the export tasks it started are
 * forgotten (taskStatus NotFound), `times` of them (Infinity: a runtime that always dies).
 */
function restartingExports(times: number) {
  let forgotten = 0;
  const exports = new Set<string>();
  const counts = { started: 0 };
  const wrap = (driver: Driver): Driver =>
    new Proxy(driver, {
      get(target, property, receiver) {
        if (property === 'exportDisk') {
          return async (...args: Parameters<Driver['exportDisk']>) => {
            const started = await target.exportDisk(...args);
            counts.started++;
            if (started.task !== undefined) exports.add(started.task);
            return started;
          };
        }
        if (property === 'taskStatus') {
          return async (task: string): Promise<TaskStatus> => {
            if (exports.has(task) && forgotten < times) {
              forgotten++;
              exports.delete(task);
              throw new NotFoundError(`task ${task} not found`);
            }
            return target.taskStatus(task);
          };
        }
        const value: unknown = Reflect.get(target, property, receiver);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
  return { wrap, counts };
}

t.test('a runtime that dies mid-export: the export starts again; one that always dies ends Failed after the retries, nothing orphaned', async (t) => {
  const restartOnce = restartingExports(1);
  const once = await migrationWorld(t, restartOnce.wrap);
  await once.offVM();
  once.migrate({ options: { retryPolicy: { retryDelay: '10s' } } });
  await once.settle(() => once.migration().phase === 'Ready');
  t.equal(restartOnce.counts.started, 2, 'exported again after the lost task');
  t.equal(once.vmsNamed('web-moved').length, 1);

  const restartAlways = restartingExports(Infinity);
  const always = await migrationWorld(t, restartAlways.wrap);
  await always.offVM();
  always.migrate({ options: { retryPolicy: { maxRetries: 2, retryDelay: '10s' } } });
  await always.settle(() => always.migration().phase === 'Failed');
  t.match(always.ready(), { reason: 'ExportLost', message: /failed 3 times/ });
  t.equal(restartAlways.counts.started, 3, 'bounded: one export and two retries');
  t.ok(always.world.callCount('exportDisk') <= 40, `export calls bounded (Busy answers while the simulator's copy still holds the VM): ${always.world.callCount('exportDisk')}`);
  t.equal(always.world.callCount('importDisk'), 0);
  t.equal(always.vmsNamed('web-moved').length, 0, 'no target VM');
  t.notOk(always.world.templateNames().some((name) => name.startsWith('import-')), 'no imported image');
});

t.test('a lost answer to the target VM\'s create still makes one target VM', async (t) => {
  const w = await migrationWorld(t);
  await w.offVM();
  w.world.injectFault('create', { kind: 'lostResponse', times: 1 });
  w.migrate();
  await w.settle(() => w.migration().phase === 'Ready');
  t.equal(w.vmsNamed('web-moved').length, 1, 'one target VM');
  t.equal(w.world.callCount('create'), 2, 'the source\'s and the target\'s: found by its identity after the lost answer, not made again');
});

t.test('deleting a VMMigration removes its leftovers (Never keeps them until then) and never the source', async (t) => {
  const w = await migrationWorld(t);
  await w.offVM();
  w.migrate({ options: { cleanupPolicy: 'Never' } });
  await w.settle(() => w.migration().phase === 'Ready');
  t.equal((await readdir(join(w.dir, 'move-migration'))).length, 1, 'kept while the VMMigration exists');
  t.ok(w.world.templateNames().some((name) => name.startsWith('import-')), 'the imported image too');
  w.cluster.delete(API, 'VMMigration', 'default', 'move');
  await w.settle(() => w.get('VMMigration', 'move') === undefined);
  t.same(await readdir(join(w.dir, 'move-migration')), [], 'the staged files are gone');
  t.notOk(w.world.templateNames().some((name) => name.startsWith('import-')), 'the imported image is gone');
  t.equal(w.vmsNamed('web').length, 1, 'the source stays');
});

t.test('what the target VM would ask of its Provider is checked before the disk moves', async (t) => {
  const w = await migrationWorld(t, undefined, { capabilities: { vlan: false } });
  await w.offVM();
  w.migrate({ target: { vmRef: { name: 'web-moved' }, providerRef: { name: 'dest' }, networks: [{ name: 'lan', vlan: 100 }] } });
  await w.settle(() => w.migration().phase === 'Failed');
  t.match(w.ready(), { reason: 'Unsupported', message: /the target VirtualMachine web-moved: the simulator provider cannot honour spec\.networks\[\]\.vlan/ });
  t.equal(w.world.callCount('exportDisk'), 0, 'nothing exported');
  t.equal(w.get('VMMigration', 'move')?.['status'] && (w.migration()['failedPhase'] as string), 'Validating');
});

t.test('a retryRequest written before the migration failed retries nothing', async (t) => {
  const w = await migrationWorld(t);
  await w.offVM();
  w.world.injectFault('exportDisk', { kind: 'taskFailure', times: Infinity, message: 'datastore read error' });
  w.migrate({ retryRequest: 'written-early', options: { retryPolicy: { maxRetries: 0 } } });
  await w.settle(() => w.migration().phase === 'Failed');
  await w.metacontroller.advance(30 * 60_000);
  t.equal(w.migration().phase, 'Failed', 'still Failed');
  t.equal(w.world.callCount('exportDisk'), 1, 'one export, no retry');
});
