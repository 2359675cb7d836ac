// VMMigration to Proxmox VE through the whole system: the Metacontroller stand-in drives the real
// hook server; the Proxmox driver talks HTTP to the schema-validating fake PVE, whose download-url
// really fetches the staged file from the driver's file server over loopback. The simulator and the
// Proxmox driver share one migration directory, as two runtimes mounting one PVC would. One fake
// clock runs the harness, the hooks and the fake's tasks; the settle helper yields to the real
// file writes and downloads between fake-time steps.
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { Driver } from '../../src/contracts/driver.js';
import { proxmoxConfigFromEnv, ProxmoxDriver } from '../../src/hypervisors/proxmox/index.js';
import { FakePve } from '../fakes/proxmox/index.js';
import { pveSchema } from '../fakes/proxmox/schema.js';
import { verifyParameters, type ParamValue } from '../fakes/proxmox/validate.js';
import { FakeClock } from '../helpers/clock.js';
import { API, lifecycle, type Conditionish } from '../helpers/lifecycle.js';
import { PVE_TOKEN } from '../helpers/proxmox-lifecycle.js';

t.setTimeout(300_000);

const DOWNLOAD_URL = '/nodes/{node}/storage/{storage}/download-url';

/** A port free on loopback now, for PVE_MIGRATION_LISTEN and PVE_MIGRATION_URL (which must agree before the server listens). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** The driver with its exportDisk calls counted. */
function countingExports(driver: Driver): { driver: Driver; exports: () => number } {
  let exports = 0;
  const wrapped = new Proxy(driver, {
    get(target, property, receiver) {
      if (property === 'exportDisk') {
        return (...args: Parameters<Driver['exportDisk']>) => {
          exports++;
          return target.exportDisk(...args);
        };
      }
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { driver: wrapped, exports: () => exports };
}

interface MigrationStatus {
  phase?: string;
  cleanedUp?: boolean;
  conditions?: Conditionish[];
  disks?: { name: string; phase: string; format?: string; image?: string; attempts?: number }[];
}

async function proxmoxMigrationWorld(t: Test) {
  const dir = await mkdtemp(join(tmpdir(), 'vrtg-migration-proxmox-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const clock = new FakeClock();
  const pve = await FakePve.start({ clock, taskDurationMs: 1000, bootMs: 1500 });
  t.teardown(() => pve.close());
  const port = await freePort();
  const config = proxmoxConfigFromEnv({
    PVE_ENDPOINT: pve.url,
    ...PVE_TOKEN,
    PVE_MIGRATION_LISTEN: `127.0.0.1:${port}`,
    PVE_MIGRATION_URL: `http://127.0.0.1:${port}`,
  });
  const driver = new ProxmoxDriver({ ...config, migration: { root: dir } }, { now: () => clock.now() });
  // Closes the file server PVE downloaded from, too.
  t.teardown(() => driver.close());
  const proxmox = countingExports(driver);
  const env = await lifecycle(t, {
    clock,
    simulator: { migrationDir: dir },
    registry: (simulators) => ({ driverFor: async (provider) => (provider.type === 'proxmox' ? proxmox.driver : simulators.driverFor(provider)) }),
  });
  await env.basics({ cpus: 2, memory: '2Gi' });
  // InProcess: this test's registry serves the driver directly, as for the simulator (a migration needs both in the same mode).
  env.cluster.create({ apiVersion: API, kind: 'Provider', metadata: { name: 'pve', namespace: 'default' }, spec: { type: 'proxmox', endpoint: pve.url, runtime: { mode: 'InProcess' } } });
  await env.metacontroller.settle(() => (env.get('Provider', 'pve')?.['status'] as { conditions?: Conditionish[] } | undefined)?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true);

  const migration = (name: string) => (env.get('VMMigration', name)?.['status'] ?? {}) as MigrationStatus;
  const ready = (name: string) => migration(name).conditions?.find((condition) => condition.type === 'Ready');
  const migrate = (name: string, source: string, target: string, provider: string) =>
    env.cluster.create({
      apiVersion: API,
      kind: 'VMMigration',
      metadata: { name, namespace: 'default' },
      spec: {
        source: { vmRef: { name: source } },
        target: { vmRef: { name: target }, providerRef: { name: provider } },
        storage: { type: 'pvc', pvc: { storageClassName: 'nfs', size: '10Gi' } },
        options: { cleanupPolicy: 'OnSuccess' },
      },
    });
  /** Lets the simulator's file writes and PVE's download (real I/O) finish between fake-time steps. */
  const settle = async (predicate: () => boolean) => {
    for (let round = 0; ; round++) {
      try {
        await env.metacontroller.settle(predicate, { maxFakeMs: 5 * 60_000, maxSyncs: 300 });
        return;
      } catch (error) {
        if (round === 100) throw error;
        await env.world.settled();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
  };
  const uidOf = (kind: string, name: string) => env.get(kind, name)?.metadata.uid ?? '';
  /** The VMs on the fake PVE whose identity tag names this owner. */
  const ownedBy = (uid: string) => pve.vms().filter((vm) => vm.tags.includes(`vr-${uid}`));
  const calls = (method: string, path: RegExp) => pve.requests.filter((request) => request.method === method && path.test(request.path));
  return { ...env, dir, pve, proxmox, migration, ready, migrate, settle, uidOf, ownedBy, calls };
}

t.test('simulator → Proxmox: PVE downloads the staged qcow2, one VM is made with import-from, and the import volume is deleted', async (t) => {
  const w = await proxmoxMigrationWorld(t);
  w.createVM('web', { powerState: 'Off' });
  await w.metacontroller.settle(() => w.isReady('web') && w.status('web')['phase'] === 'Stopped');
  w.migrate('move', 'web', 'web-moved', 'pve');
  await w.settle(() => (w.migration('move').phase === 'Ready' && w.migration('move').cleanedUp === true) || w.migration('move').phase === 'Failed');
  t.equal(w.migration('move').phase, 'Ready', `${w.ready('move')?.reason ?? ''}: ${w.ready('move')?.message ?? ''}`);

  const status = w.migration('move');
  t.equal(w.ready('move')?.reason, 'Completed');
  t.equal(status.cleanedUp, true);
  t.match(status.disks, [{ name: 'root', phase: 'Imported', format: 'qcow2', attempts: 1 }], 'staged as what Proxmox stores');
  const image = status.disks?.[0]?.image ?? '';
  t.match(image, /^local:import\/vr-import-[0-9a-f-]+-root-[0-9a-f]{8}-[0-9a-f]{16}\.qcow2$/, 'a qcow2 volume of import content');

  const downloads = w.calls('POST', /\/download-url$/);
  t.equal(downloads.length, 1, 'one download');
  const [download] = downloads;
  t.equal(download?.status, 200, 'accepted by the fake');
  t.match(download?.params, { content: 'import', filename: image.replace(/^local:import\//, ''), 'checksum-algorithm': 'sha256', checksum: /^[0-9a-f]{64}$/, url: /^http:\/\/127\.0\.0\.1:\d+\/files\/[0-9a-f]{64}\// });
  const found = pveSchema().lookup('POST', download?.path ?? '');
  t.equal(found.kind === 'found' ? found.match.template : undefined, DOWNLOAD_URL);
  if (found.kind === 'found') {
    const params = new Map<string, ParamValue>([...Object.entries(download?.params ?? {}), ...Object.entries(found.match.pathParams)] as [string, ParamValue][]);
    t.same(verifyParameters(found.match.info, params), {}, 'its parameters validate against the PVE schema');
  }
  const tasks = w.pve.tasks();
  t.match(tasks.filter((task) => task.type === 'download'), [{ status: 'stopped', exitstatus: 'OK' }], 'PVE fetched the file and made the volume');
  t.ok(
    tasks.find((task) => task.type === 'download')?.log.some((line) => line.includes(`download of '`) && line.includes('finished')),
    'the download finished',
  );

  const creates = w.calls('POST', /^\/nodes\/[^/]+\/qemu$/);
  t.equal(creates.length, 1, 'one VM created, not cloned');
  t.match(String(creates[0]?.params['scsi0']), new RegExp(`import-from=${image.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`), 'its root disk imported from the volume');
  t.same(w.calls('POST', /\/clone$/), [], 'no clone');

  const targetUid = w.uidOf('VirtualMachine', 'web-moved');
  const owned = w.ownedBy(targetUid);
  t.equal(owned.length, 1, 'one VM on PVE carries the target\'s identity');
  t.equal(String(owned[0]?.vmid), w.status('web-moved')['providerID']);
  t.equal(owned[0]?.name, 'web-moved');
  t.equal(owned[0]?.status, 'stopped');
  t.equal(w.status('web-moved')['phase'], 'Stopped');
  t.match(w.vm('web-moved')?.['spec'], { providerRef: { name: 'pve' }, importedDisk: { diskID: image, source: 'migration', migrationRef: { name: 'move' } }, powerState: 'Off' });

  const deletes = w.calls('DELETE', /\/storage\/[^/]+\/content\//);
  t.equal(deletes.length, 1, 'the import volume deleted once');
  t.equal(deletes[0]?.path.endsWith(`/content/${image}`), true, `the import volume: ${deletes[0]?.path ?? ''}`);
  // cleanedUp waited for PVE's imgdel task.
  t.match(w.pve.tasks().filter((task) => task.type === 'imgdel'), [{ status: 'stopped', exitstatus: 'OK' }], 'PVE removed the volume');
  t.same(w.pve.volumes('import'), [], 'no import volume left');
  t.same(await readdir(join(w.dir, 'move-migration')), [], 'the staged files are removed');
  t.equal(w.world.listVMs().filter((vm) => vm.name === 'web').length, 1, 'the source stays on the simulator');
});

t.test('a removal task PVE fails is asked for again: cleanedUp only once the import volume is really gone', async (t) => {
  const w = await proxmoxMigrationWorld(t);
  w.createVM('web', { powerState: 'Off' });
  await w.metacontroller.settle(() => w.isReady('web') && w.status('web')['phase'] === 'Stopped');
  w.pve.injectFault({ kind: 'failTask', type: 'imgdel', message: 'storage busy', times: 1 });
  w.migrate('move', 'web', 'web-moved', 'pve');
  await w.settle(() => (w.migration('move').phase === 'Ready' && w.migration('move').cleanedUp === true) || w.migration('move').phase === 'Failed');
  t.equal(w.migration('move').phase, 'Ready');
  t.equal(w.calls('DELETE', /\/storage\/[^/]+\/content\//).length, 2, 'deleted again after the failed task');
  t.same(w.pve.volumes('import'), [], 'no import volume left');
  t.match(w.migration('move').disks, [{ imageRemoved: true }]);
  t.notOk('cleanupTasks' in w.migration('move'), 'no removal left to follow');
});

t.test('Proxmox → simulator is refused before anything moves: Proxmox cannot export disks', async (t) => {
  const w = await proxmoxMigrationWorld(t);
  w.createVM('on-pve', { providerRef: { name: 'pve' }, powerState: 'Off' });
  await w.metacontroller.settle(() => w.isReady('on-pve') && w.status('on-pve')['phase'] === 'Stopped', { maxSyncs: 400 });
  const requests = w.pve.requests.length;
  w.migrate('out', 'on-pve', 'on-sim', 'sim');
  await w.settle(() => w.migration('out').phase === 'Failed' || w.migration('out').phase === 'Ready');

  t.equal(w.migration('out').phase, 'Failed');
  t.equal(w.ready('out')?.reason, 'Unsupported');
  t.match(w.ready('out')?.message, /the proxmox provider default\/pve cannot export disks/);
  t.equal(w.proxmox.exports(), 0, 'no exportDisk call');
  t.equal(w.world.callCount('importDisk'), 0, 'no importDisk call');
  t.same(w.pve.requests.slice(requests).filter((request) => request.method !== 'GET'), [], 'nothing changed on PVE');
  t.equal(w.vm('on-sim'), undefined, 'no target VirtualMachine');
  t.equal(w.world.listVMs().filter((vm) => vm.name === 'on-sim').length, 0, 'no target VM in the simulator');
  t.same(await readdir(w.dir), [], 'nothing staged');
  t.equal(w.ownedBy(w.uidOf('VirtualMachine', 'on-pve')).length, 1, 'the source stays on PVE');
});
