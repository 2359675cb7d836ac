// The Driver conformance suite against vcsim (govmomi's vSphere simulator, built from Debian's
// sources by test/vsphere/build-vcsim.sh). Each test gets its own vcsim with the standalone host's
// first VM turned into the `ubuntu-22-template` template; the `lan` NIC maps to `VM Network`.
// The driver reaches vcsim through the NFC proxy (test/helpers/vcsim-nfc.ts), which serves the
// ExportVm that vcsim 0.24.2 lacks and passes everything else through; its migration directory
// is a temporary one.
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Identity } from '../../src/contracts/driver.js';
import { vsphereDriverFromEnv } from '../../src/hypervisors/vsphere/index.js';
import { startNfcProxy } from '../helpers/vcsim-nfc.js';
import { prepareTemplate, requireVcsim, startVcsim, VcsimGuests } from '../helpers/vcsim.js';
import { basicSpec, driverConformance } from './driver-suite.js';

t.setTimeout(300_000);

if (requireVcsim(t)) {
  driverConformance(t, 'vsphere', async () => {
    const vcsim = await startVcsim(t);
    await prepareTemplate(vcsim);
    const proxy = await startNfcProxy(t, vcsim);
    const migrationDir = await mkdtemp(join(tmpdir(), 'virtrigaud-vsphere-migrations-'));
    const driver = vsphereDriverFromEnv({ ...proxy.env, MIGRATION_DIR: migrationDir }, { leaseTiming: { pollMs: 50 } });
    const guests = new VcsimGuests(vcsim);
    return {
      driver,
      spec: (name: string, owner: Identity) => basicSpec(name, owner, { nics: [{ name: 'lan', network: 'VM Network' }] }),
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
}
