// The Driver conformance suite against a real libvirtd (QEMU, software emulation) over real SSH:
// the peer test/libvirt/setup.sh starts on 127.0.0.1. VMs boot the tiny Linux guest from the
// setup's base image, so guest addresses come from the real qemu-guest-agent.
import t from 'tap';
import type { Identity } from '../../src/contracts/driver.js';
import { GiB, MiB } from '../../src/contracts/quantity.js';
import { defineForeignDomain, libvirtPeer, removeDomainByName, waitFor } from '../helpers/libvirt-peer.js';
import { basicSpec, driverConformance } from './driver-suite.js';

t.setTimeout(900_000);

const peer = await libvirtPeer(t);
if (peer) {
  t.teardown(() => peer.close());
  // Leftovers of an interrupted earlier run (same owners, same names) would be found by identity.
  const cleaner = peer.driver();
  for (const line of (await peer.virsh(['list', '--all', '--uuid'])).stdout.split('\n')) {
    const id = line.trim();
    if (id === '') continue;
    const vm = await cleaner.describe(id).catch(() => undefined);
    if (vm?.owner?.namespace !== 'conformance') continue;
    const { task } = await cleaner.delete({ id, owner: vm.owner });
    if (task !== undefined) await waitFor(async () => (await cleaner.taskStatus(task)).state !== 'running', 'leftover deleted');
  }
  await removeDomainByName(peer, 'conf-foreign');
  await cleaner.close();

  driverConformance(t, 'libvirt', async () => {
    const driver = peer.driver();
    const foreign: string[] = [];
    return {
      driver,
      spec: (name: string, owner: Identity) =>
        basicSpec(name, owner, {
          cpus: 1,
          memoryBytes: 256 * MiB,
          image: { kind: 'template', ref: peer.baseVolume, fullClone: false },
          disks: [{ name: 'root', sizeBytes: 1 * GiB, root: true }],
        }),
      migrationDir: peer.migrationDir,
      waitUntil: (done, what) => waitFor(done, what, 120_000),
      async addForeignVM(name) {
        await removeDomainByName(peer, name);
        foreign.push(name);
        return defineForeignDomain(peer, name, true);
      },
      async close() {
        for (const name of foreign) await removeDomainByName(peer, name);
        await driver.close();
      },
    };
  });
}
