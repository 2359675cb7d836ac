// The Driver conformance suite against a real libvirtd (QEMU, software emulation) over real SSH:
// the peer test/libvirt/setup.sh starts on 127.0.0.1. VMs boot the tiny Linux guest from the
// setup's base image, so guest addresses come from the real qemu-guest-agent.
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import t from 'tap';
import { main } from '../../src/cli/vcts.js';
import type { RunReport } from '../../src/cli/vcts/report.js';
import type { Identity } from '../../src/contracts/driver.js';
import { GiB, MiB } from '../../src/contracts/quantity.js';
import { importedVolume } from '../../src/hypervisors/libvirt/images.js';
import { LIBVIRT_STATE, defineForeignDomain, libvirtPeer, removeDomainByName, waitFor } from '../helpers/libvirt-peer.js';
import { basicSpec, driverConformance } from './driver-suite.js';

t.setTimeout(900_000);

const VCTS_PREFIX = 'vcts-lv-';

const peer = await libvirtPeer(t);
if (peer) {
  t.teardown(() => peer.close());
  // Leftovers of an interrupted earlier run (same owners, same names) would be found by identity.
  const cleaner = peer.driver();
  for (const line of (await peer.virsh(['list', '--all', '--uuid'])).stdout.split('\n')) {
    const id = line.trim();
    if (id === '') continue;
    const vm = await cleaner.describe(id).catch(() => undefined);
    // Ours only: this suite's owners, and the vcts run's below (its prefix).
    if (vm?.owner?.namespace !== 'conformance' && !(vm?.owner?.namespace === 'vcts' && vm.owner.name.startsWith(VCTS_PREFIX))) continue;
    const { task } = await cleaner.delete({ id, owner: vm.owner });
    if (task !== undefined) await waitFor(async () => (await cleaner.taskStatus(task)).state !== 'running', 'leftover deleted');
  }
  await removeDomainByName(peer, 'conf-foreign');
  await cleaner.close();

  // The image-import case downloads the base image from here; the iso-install case boots a tiny
  // data ISO made on the host with the seed tool (it boots nothing: the case only creates the VM).
  const basePath = (await peer.virsh(['vol-path', '--pool', peer.pool, peer.baseVolume])).stdout.trim();
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'content-length': statSync(basePath).size });
    createReadStream(basePath).pipe(response);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const imageURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/tinyvm.qcow2?run=${process.pid}`;
  t.teardown(async () => void (await peer.virsh(['vol-delete', '--pool', peer.pool, importedVolume(imageURL)])));
  const iso = `virtrigaud-conformance-${process.pid}.iso`;
  const made = await peer.exec(['sh', '-c', 'd=$(mktemp -d) && echo installer >"$d/README" && genisoimage -quiet -V INSTALLER -o "$1" "$d" && rm -rf "$d"', 'sh', `${dirname(basePath)}/${iso}`]);
  if (made.code !== 0) throw new Error(`making the installer ISO: ${made.stderr}`);
  await peer.virsh(['pool-refresh', peer.pool]);
  t.teardown(async () => void (await peer.virsh(['vol-delete', '--pool', peer.pool, iso])));

  // NICs asking for a VLAN join the peer's Open vSwitch network (the others its NAT network).
  const vlanNetwork = /^LIBVIRT_VLAN_NETWORK=(.+)$/m.exec(readFileSync(`${LIBVIRT_STATE}/env`, 'utf8'))?.[1];
  driverConformance(t, 'libvirt', async () => {
    const driver = peer.driver(undefined, vlanNetwork !== undefined ? { LIBVIRT_VLAN_NETWORK: vlanNetwork } : {});
    // As the provider runtime does at startup: the capabilities are then this host's.
    await driver.probe();
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
      imageURL: { url: imageURL },
      iso: { ref: iso },
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

  // The same cases through the admin's tool, configured by LIBVIRT_* variables as a runtime is.
  // A few cases end to end (configuration from the environment, identity, refusal of a foreign
  // VM, cleanup): the suite above runs every case against this peer already.
  t.test('vcts: the command-line conformance run against libvirtd, from LIBVIRT_* variables, leaves nothing behind', async (t) => {
    await removeDomainByName(peer, 'vcts-foreign');
    const foreign = await defineForeignDomain(peer, 'vcts-foreign', true);
    t.teardown(() => removeDomainByName(peer, 'vcts-foreign'));
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(
      [
        'run', '--provider', 'libvirt', '--template', peer.baseVolume, '--linked', '--cpus', '1', '--memory', '256Mi', '--root-disk', '1Gi',
        '--prefix', VCTS_PREFIX, '--destructive', '--foreign-vm', foreign, '--cases', 'probe,identity,hardware,other-owner,not-found,delete,foreign-vm', '--timeout', '5m', '-o', 'json',
      ],
      peer.env,
      { out: (text) => void out.push(text), err: (text) => void err.push(text) },
      { pollMs: { first: 200, max: 2000 } },
    );
    t.equal(code, 0, err.join(''));
    const report = JSON.parse(out.join('')) as RunReport;
    t.equal(report.summary.failed, 0);
    t.equal(report.cases.find((entry) => entry.id === 'foreign-vm')?.result, 'verified');
    const names = (await peer.virsh(['list', '--all', '--name'])).stdout.split('\n').map((line) => line.trim());
    t.same(names.filter((name) => name.startsWith(VCTS_PREFIX)), [], 'no domain of the run is left');
    t.equal((await peer.virsh(['domstate', 'vcts-foreign'])).stdout.trim(), 'running', 'the foreign domain still runs');
  });
}
