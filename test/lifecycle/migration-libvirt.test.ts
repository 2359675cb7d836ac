// VMMigration into the real libvirtd of the CI peer: a simulator VM's disk (real bytes, through a
// real migration directory) becomes a qcow2 volume on the libvirt host, and a libvirt domain is
// made from it by the VM controller; then the domain moves on from libvirt back to the simulator.
// Work takes wall-clock time, so the harness is settled in real time.
import t from 'tap';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { LibvirtDriver } from '../../src/hypervisors/libvirt/index.js';
import { API, lifecycle } from '../helpers/lifecycle.js';
import { libvirtPeer, taskDone } from '../helpers/libvirt-peer.js';
import { settleInRealTime } from '../helpers/realtime.js';

t.setTimeout(600_000);

const peer = await libvirtPeer(t);

if (peer) {
  t.teardown(() => peer.close());

  t.test('simulator → libvirt → simulator: one domain made from the exported disk, nothing left behind', async (t) => {
    const driver: LibvirtDriver = peer.driver();
    t.teardown(() => driver.close());
    const env = await lifecycle(t, {
      budgetMs: 7000,
      simulator: { migrationDir: peer.migrationDir },
      registry: (simulators) => ({ driverFor: async (provider) => (provider.type === 'libvirt' ? driver : simulators.driverFor(provider)) }),
    });
    const { cluster, metacontroller } = env;
    await env.basics();
    cluster.create({ apiVersion: API, kind: 'Provider', metadata: { name: 'kvm', namespace: 'default' }, spec: { type: 'libvirt', endpoint: peer.env['LIBVIRT_URI'], runtime: { mode: 'InProcess' } } });
    cluster.create({ apiVersion: API, kind: 'VMClass', metadata: { name: 'tiny', namespace: 'default' }, spec: { cpus: 1, memory: '256Mi' } });
    env.createVM('mig-src', { powerState: 'Off', classRef: { name: 'tiny' }, disks: [{ name: 'root', size: '10Gi' }] });
    const phase = (name: string) => (env.get('VMMigration', name)?.['status'] as { phase?: string } | undefined)?.phase;
    await settleInRealTime(metacontroller, () => env.isReady('mig-src') && env.status('mig-src')['phase'] === 'Stopped', { what: 'source off', timeoutMs: 60_000 }).catch((error: unknown) => {
      throw new Error(`${String(error)}: ${JSON.stringify(env.status('mig-src'))}`);
    });

    cluster.create({
      apiVersion: API,
      kind: 'VMMigration',
      metadata: { name: 'to-kvm', namespace: 'default' },
      spec: {
        source: { vmRef: { name: 'mig-src' } },
        target: { vmRef: { name: 'mig-kvm' }, providerRef: { name: 'kvm' } },
        storage: { type: 'pvc', pvc: { storageClassName: 'nfs', size: '10Gi' } },
      },
    });
    await settleInRealTime(metacontroller, () => phase('to-kvm') === 'Ready' || phase('to-kvm') === 'Failed', { what: 'migrated to libvirt', timeoutMs: 240_000 });
    const status = env.get('VMMigration', 'to-kvm')?.['status'] as { phase?: string; conditions?: { message: string }[]; disks?: { format?: string; image?: string }[] };
    t.equal(status.phase, 'Ready', String(status.conditions?.[0]?.message));
    t.equal(status.disks?.[0]?.format, 'qcow2', 'staged as what libvirt stores');
    const target = env.status('mig-kvm');
    t.equal(target['phase'], 'Stopped');
    const id = String(target['providerID']);
    const domain = await driver.describe(id);
    t.equal(domain.owner?.uid, (env.vm('mig-kvm')?.['metadata'] as { uid?: string }).uid, 'the domain carries the target VM\'s identity');
    t.same(await readdir(join(peer.migrationDir, 'to-kvm-migration')), [], 'the staged files are removed');
    const volumes = (await peer.virsh(['vol-list', '--pool', peer.pool])).stdout;
    t.notMatch(volumes, /virtrigaud-import-/, 'the imported volume is removed once the domain has its own copy');

    // And back: the libvirt domain's disk streams out over SSH into the simulator.
    cluster.create({
      apiVersion: API,
      kind: 'VMMigration',
      metadata: { name: 'back', namespace: 'default' },
      spec: {
        source: { vmRef: { name: 'mig-kvm' } },
        target: { name: 'mig-back', providerRef: { name: 'sim' } },
        options: { diskFormat: 'qcow2' },
        storage: { type: 'pvc', pvc: { storageClassName: 'nfs', size: '10Gi' } },
      },
    });
    await settleInRealTime(metacontroller, () => phase('back') === 'Ready' || phase('back') === 'Failed', { what: 'migrated back', timeoutMs: 240_000 });
    t.equal(phase('back'), 'Ready', JSON.stringify(env.get('VMMigration', 'back')?.['status']));
    t.equal(env.status('mig-back')['phase'], 'Stopped');

    for (const name of ['mig-kvm']) {
      const vm = env.status(name);
      if (typeof vm['providerID'] === 'string') {
        const observed = await driver.describe(vm['providerID']).catch(() => undefined);
        if (observed?.owner) await taskDone(driver, await driver.delete({ id: observed.id, owner: observed.owner }));
      }
    }
  });
}
