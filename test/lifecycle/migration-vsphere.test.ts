// VMMigration to and from vSphere through the whole system: the Metacontroller stand-in drives the
// real hook server; the vSphere driver speaks SOAP to vcsim through test/helpers/vcsim-nfc.ts,
// which plays the NFC side vcsim 0.24 lacks (ExportVm, keeping the uploaded bytes). The simulator
// and the vSphere driver share one migration directory, as two runtimes mounting one PVC would.
// vcsim's work takes real time, so the harness is settled in real time.
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import type { Driver } from '../../src/contracts/driver.js';
import { sha256Of } from '../../src/hypervisors/common/disk-files.js';
import { importNames } from '../../src/hypervisors/vsphere/imported.js';
import { VsphereDriver, vsphereConfigFromEnv } from '../../src/hypervisors/vsphere/index.js';
import { isStreamOptimized } from '../../src/hypervisors/vsphere/vmdk.js';
import { API, lifecycle, type Conditionish } from '../helpers/lifecycle.js';
import { settleInRealTime } from '../helpers/realtime.js';
import { startNfcProxy } from '../helpers/vcsim-nfc.js';
import { prepareTemplate, requireVcsim, startVcsim, vmsOwnedBy, type Vcsim } from '../helpers/vcsim.js';

t.setTimeout(300_000);

const run = promisify(execFile);

interface MigrationStatus {
  phase?: string;
  cleanedUp?: boolean;
  conditions?: Conditionish[];
  disks?: { name: string; phase: string; format?: string; image?: string; attempts?: number }[];
}

/**
 * The driver with every importDisk's staged file copied to `keep` first: the migration removes
 * the staged files once it is Ready, and the test compares them with what vSphere received.
 */
function keepingStagedFiles(driver: Driver, root: string, keep: string): { driver: Driver; kept: string[] } {
  const kept: string[] = [];
  const wrapped = new Proxy(driver, {
    get(target, property, receiver) {
      if (property === 'importDisk') {
        return async (...args: Parameters<Driver['importDisk']>) => {
          const copy = join(keep, `staged-${kept.length + 1}`);
          await copyFile(join(root, args[1].file.path), copy);
          await copyFile(join(root, `${args[1].file.path}.sha256`), `${copy}.sha256`);
          kept.push(copy);
          return target.importDisk(...args);
        };
      }
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { driver: wrapped, kept };
}

/** A disk file read back as raw bytes, through qemu-img. */
async function rawOf(path: string, format: string): Promise<Buffer> {
  const raw = `${path}.check.raw`;
  await run('qemu-img', ['convert', '-q', '-f', format, '-O', 'raw', path, raw]);
  try {
    return await readFile(raw);
  } finally {
    await rm(raw, { force: true });
  }
}

/** The VMs vcsim holds under this name, read with govc (outside the driver). */
async function vcsimVMsNamed(vcsim: Vcsim, name: string): Promise<string[]> {
  return (await vcsim.govc('find', '/', '-type', 'm', '-name', name)).split('\n').filter((line) => line !== '');
}

async function vsphereMigrationWorld(t: Test) {
  const vcsim = await startVcsim(t);
  await prepareTemplate(vcsim);
  const proxy = await startNfcProxy(t, vcsim);
  const dir = await mkdtemp(join(tmpdir(), 'vrtg-migration-vsphere-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const keep = join(dir, '.kept');
  await mkdir(keep);
  const vsphere = new VsphereDriver({ ...vsphereConfigFromEnv(proxy.env), migration: { root: dir } }, { leaseTiming: { pollMs: 20, keepAliveMs: 50 } });
  t.teardown(() => vsphere.close());
  const staged = keepingStagedFiles(vsphere, dir, keep);
  const env = await lifecycle(t, {
    budgetMs: 7000,
    simulator: { migrationDir: dir },
    registry: (simulators) => ({ driverFor: async (provider) => (provider.type === 'vsphere' ? staged.driver : simulators.driverFor(provider)) }),
  });
  await env.basics({ cpus: 1, memory: '512Mi' });
  // InProcess: this test's registry serves the driver directly, as for the simulator (a migration needs both in the same mode).
  env.cluster.create({ apiVersion: API, kind: 'Provider', metadata: { name: 'vc', namespace: 'default' }, spec: { type: 'vsphere', endpoint: vcsim.url, runtime: { mode: 'InProcess' } } });
  /** Settles in real time; on timeout says where every Provider, VMMigration and VirtualMachine stands. */
  const settle = (predicate: () => boolean, what: string) =>
    settleInRealTime(env.metacontroller, predicate, { timeoutMs: 180_000, stepMs: 100, what }).catch((error: unknown) => {
      const where = ['Provider', 'VMMigration', 'VirtualMachine'].flatMap((kind) =>
        env.cluster.list(API, kind).map((object) => {
          const status = (object['status'] ?? {}) as MigrationStatus;
          const condition = status.conditions?.find((c) => c.type === 'Ready');
          return `${kind}/${object.metadata.name}: ${status.phase ?? '-'} ${condition?.reason ?? ''} ${condition?.message ?? ''}`;
        }),
      );
      throw new Error(`${String(error)}\n${where.join('\n')}\nSyncErrors: ${JSON.stringify(env.metacontroller.events.slice(-3))}`);
    });
  await settle(() => (env.get('Provider', 'vc')?.['status'] as { conditions?: Conditionish[] } | undefined)?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true, 'Provider vc Ready');
  const migration = (name: string) => (env.get('VMMigration', name)?.['status'] ?? {}) as MigrationStatus;
  const ready = (name: string) => migration(name).conditions?.find((condition) => condition.type === 'Ready');
  const migrate = (name: string, source: string, target: string, provider: string, overrides: Record<string, unknown> = {}) =>
    env.cluster.create({
      apiVersion: API,
      kind: 'VMMigration',
      metadata: { name, namespace: 'default' },
      spec: {
        source: { vmRef: { name: source } },
        target: { vmRef: { name: target }, providerRef: { name: provider }, ...overrides },
        storage: { type: 'pvc', pvc: { storageClassName: 'nfs', size: '10Gi' } },
        // A transient failure is retried after seconds, not the default 5 min: fake time moves with the wall clock here.
        options: { cleanupPolicy: 'OnSuccess', retryPolicy: { retryDelay: '2s' } },
      },
    });
  /** Settles until the migration ends; a Failed one fails the test with its reason. */
  const finished = async (t: Test, name: string) => {
    await settle(() => migration(name).phase === 'Ready' || migration(name).phase === 'Failed', `VMMigration ${name} done`);
    t.equal(migration(name).phase, 'Ready', `${ready(name)?.reason ?? ''}: ${ready(name)?.message ?? ''}`);
  };
  const uidOf = (kind: string, name: string) => env.get(kind, name)?.metadata.uid ?? '';
  return { ...env, vcsim, proxy, dir, staged, settle, migration, ready, migrate, finished, uidOf };
}

if (requireVcsim(t)) {
  t.test('simulator → vSphere: one VM with the target\'s identity on vcsim, made from the uploaded VMDK; staged files and template removed', async (t) => {
    const w = await vsphereMigrationWorld(t);
    w.createVM('web', { powerState: 'Off' });
    await w.settle(() => w.isReady('web') && w.status('web')['phase'] === 'Stopped', 'source off');
    // The imported template has no NIC to keep, and vSphere has no network named like the
    // simulator's `lan`: the target names a port group vcsim has.
    w.migrate('move', 'web', 'web-moved', 'vc', { networks: [{ name: 'lan', bridge: 'DC0_DVPG0' }] });
    await w.finished(t, 'move');

    const status = w.migration('move');
    t.equal(w.ready('move')?.reason, 'Completed');
    t.equal(status.cleanedUp, true);
    t.match(status.disks, [{ name: 'root', phase: 'Imported', format: 'vmdk', attempts: 1 }], 'staged as what vSphere stores');
    const names = importNames(w.uidOf('VMMigration', 'move'), 'root');
    t.equal(status.disks?.[0]?.image, names.final, 'the image is the template the import named');
    t.match(w.vm('web-moved')?.['spec'], { providerRef: { name: 'vc' }, importedDisk: { diskID: names.final, source: 'migration', migrationRef: { name: 'move' } }, powerState: 'Off' });

    const owned = await vmsOwnedBy(w.vcsim, w.uidOf('VirtualMachine', 'web-moved'));
    t.equal(owned.length, 1, 'one VM on vcsim carries the target\'s identity');
    t.equal((await vcsimVMsNamed(w.vcsim, 'web-moved')).length, 1, 'one VM on vcsim under the target\'s name');
    t.match(owned[0], { name: 'web-moved', id: w.status('web-moved')['providerID'], powerState: 'poweredOff' });
    t.equal(w.status('web-moved')['phase'], 'Stopped');
    t.equal(w.world.listVMs().filter((vm) => vm.name === 'web').length, 1, 'the source stays on the simulator');

    t.same(await readdir(join(w.dir, 'move-migration')), [], 'the staged files are removed');
    t.same([...(await vcsimVMsNamed(w.vcsim, names.final)), ...(await vcsimVMsNamed(w.vcsim, names.importing))], [], 'the imported template is removed');

    t.equal(w.proxy.calls('ImportVApp'), 1, 'imported once');
    t.equal(w.proxy.uploads.length, 1, 'uploaded once');
    t.equal(w.staged.kept.length, 1, 'one importDisk call');
    const [upload] = w.proxy.uploads;
    const [staged = ''] = w.staged.kept;
    t.equal((await readFile(`${staged}.sha256`, 'utf8')).trim(), await sha256Of(staged), 'the staged VMDK was whole: its checksum beside it');
    t.match(upload, { method: 'POST', contentType: 'application/x-vnd.vmware-streamVmdk', cut: false, session: true });
    t.equal(upload?.contentLength, upload?.bytes, 'sent whole, its length up front');
    t.equal(upload?.sha256, await sha256Of(upload?.file ?? ''), 'the proxy kept the bytes it hashed');
    // The simulator stages the VMDK qemu-img writes by default (monolithicSparse); an NFC upload
    // carries only streamOptimized, so the driver sends a converted copy (import.ts): other bytes,
    // the same disk.
    t.notOk(await isStreamOptimized(staged), 'the staged VMDK is not streamOptimized');
    t.ok(await isStreamOptimized(upload?.file ?? ''), 'what vSphere received is a streamOptimized VMDK');
    t.ok((await rawOf(upload?.file ?? '', 'vmdk')).equals(await rawOf(staged, 'vmdk')), 'holding the staged VMDK\'s disk, byte for byte');
  });

  t.test('vSphere → simulator: the disk exported through an NFC lease becomes one simulator VM; nothing left behind', async (t) => {
    const w = await vsphereMigrationWorld(t);
    w.createVM('web', { providerRef: { name: 'vc' }, powerState: 'Off', disks: [{ name: 'root', size: '8Mi' }] });
    await w.settle(() => w.isReady('web') && w.status('web')['phase'] === 'Stopped', 'source made and off on vSphere');
    const sourceID = String(w.status('web')['providerID']);
    w.migrate('back', 'web', 'web-back', 'sim');
    await w.finished(t, 'back');

    const status = w.migration('back');
    t.equal(status.cleanedUp, true);
    t.match(status.disks, [{ name: 'root', phase: 'Imported', format: 'raw', attempts: 1 }], 'staged as what the simulator stores');
    t.equal(w.proxy.calls('ExportVm'), 1, 'one export');
    t.match(w.proxy.leases, [{ vm: sourceID, completed: true, aborted: false }], 'its lease completed');
    t.equal(w.proxy.leases.length, 1);

    const targets = w.world.listVMs().filter((vm) => vm.name === 'web-back');
    t.equal(targets.length, 1, 'one target VM in the simulator');
    t.equal(targets[0]?.id, w.status('web-back')['providerID']);
    t.equal(targets[0]?.owner?.uid, w.uidOf('VirtualMachine', 'web-back'), 'with the target\'s identity');
    t.equal(w.status('web-back')['phase'], 'Stopped');
    t.equal((await vmsOwnedBy(w.vcsim, w.uidOf('VirtualMachine', 'web'))).length, 1, 'the source stays on vSphere');

    t.same(await readdir(join(w.dir, 'back-migration')), [], 'the staged files are removed');
    t.notOk(w.world.templateNames().some((name) => name.startsWith('import-')), 'the imported image is removed');
  });
}
