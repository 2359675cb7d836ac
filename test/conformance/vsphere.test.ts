// The Driver conformance suite against vcsim (govmomi's vSphere simulator, built from Debian's
// sources by test/vsphere/build-vcsim.sh). Each test gets its own vcsim with the standalone host's
// first VM turned into the `ubuntu-22-template` template; the `lan` NIC is on DC0_DVPG100, a
// distributed port group added for it that carries VLAN 100 (what the `vlan` case asks).
// The driver reaches vcsim through the NFC proxy (test/helpers/vcsim-nfc.ts), which serves the
// ExportVm that vcsim 0.24.2 lacks and passes everything else through; its migration directory
// is a temporary one.
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { main } from '../../src/cli/vcts.js';
import type { RunReport } from '../../src/cli/vcts/report.js';
import type { Identity } from '../../src/contracts/driver.js';
import { vsphereDriverFromEnv } from '../../src/hypervisors/vsphere/index.js';
import { startOvaServer } from '../hypervisors/vsphere/ova-server.js';
import { startNfcProxy } from '../helpers/vcsim-nfc.js';
import { prepareTemplate, requireVcsim, startVcsim, VcsimGuests } from '../helpers/vcsim.js';
import { basicSpec, driverConformance } from './driver-suite.js';

t.setTimeout(300_000);

if (requireVcsim(t)) {
  const images = await startOvaServer(t);
  driverConformance(t, 'vsphere', async () => {
    const vcsim = await startVcsim(t);
    await prepareTemplate(vcsim);
    await vcsim.govc('dvs.portgroup.add', '-dvs', 'DVS0', '-vlan', '100', 'DC0_DVPG100');
    const proxy = await startNfcProxy(t, vcsim);
    const migrationDir = await mkdtemp(join(tmpdir(), 'virtrigaud-vsphere-migrations-'));
    const driver = vsphereDriverFromEnv({ ...proxy.env, MIGRATION_DIR: migrationDir }, { leaseTiming: { pollMs: 50 } });
    const guests = new VcsimGuests(vcsim);
    return {
      driver,
      imageURL: { url: images.url('tiny.ova'), checksum: images.ovaChecksum },
      spec: (name: string, owner: Identity) => basicSpec(name, owner, { nics: [{ name: 'lan', network: 'DC0_DVPG100' }] }),
      migrationDir,
      async waitUntil(done, what) {
        for (let round = 0; round < 100; round++) {
          if (await done()) return;
          // Guests that booted get an address, as VMware Tools would report one.
          await guests.assignAddresses();
          await sleep(100);
        }
        throw new Error(`${what}: not reached in 10 s`);
      },
      async addForeignVM(name) {
        await vcsim.govc('object.rename', '/DC0/vm/DC0_H0_VM1', name);
        const id = (await vcsim.govc('ls', '-i', `/DC0/vm/${name}`)).trim().replace(/^VirtualMachine:/, '');
        return id;
      },
      async close() {
        await guests.close();
        await driver.close();
        await vcsim.stop();
        await rm(migrationDir, { recursive: true, force: true });
      },
    };
  });

  // The same cases through the admin's tool, configured by VSPHERE_* variables as a runtime is.
  // A few cases end to end (configuration from the environment, identity, refusal of a foreign
  // VM, cleanup): the suite above runs every case against this peer already.
  t.test('vcts: the command-line conformance run against vcsim, from VSPHERE_* variables, leaves nothing behind', async (t) => {
    const vcsim = await startVcsim(t);
    await prepareTemplate(vcsim);
    const proxy = await startNfcProxy(t, vcsim);
    const migrationDir = await mkdtemp(join(tmpdir(), 'vcts-vsphere-migrations-'));
    t.teardown(() => rm(migrationDir, { recursive: true, force: true }));
    const foreign = (await vcsim.govc('ls', '-i', '/DC0/vm/DC0_H0_VM1')).trim().replace(/^VirtualMachine:/, '');
    const out: string[] = [];
    const err: string[] = [];
    const code = await main(
      [
        'run', '--provider', 'vsphere', '--template', 'ubuntu-22-template', '--network', 'VM Network', '--prefix', 'vcts-vc-',
        '--destructive', '--foreign-vm', foreign, '--cases', 'probe,identity,hardware,other-owner,not-found,delete,foreign-vm', '--timeout', '2m', '-o', 'json',
      ],
      { ...proxy.env, MIGRATION_DIR: migrationDir },
      { out: (text) => void out.push(text), err: (text) => void err.push(text) },
      { pollMs: { first: 50, max: 500 } },
    );
    t.equal(code, 0, err.join(''));
    const report = JSON.parse(out.join('')) as RunReport;
    t.equal(report.summary.failed, 0);
    t.equal(report.cases.find((entry) => entry.id === 'foreign-vm')?.result, 'verified');
    t.equal((await vcsim.govc('find', '/DC0/vm', '-type', 'm', '-name', 'vcts-vc-*')).trim(), '', 'no VM of the run is left');
    t.match(await vcsim.govc('ls', '/DC0/vm/DC0_H0_VM1'), /DC0_H0_VM1/, 'the foreign VM is still there');
  });
}
