import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Identity } from '../../src/contracts/driver.js';
import { SimulatedHypervisor, SimulatorDriver } from '../../src/hypervisors/simulator/index.js';
import { FakeClock } from '../helpers/clock.js';
import { basicSpec, driverConformance } from './driver-suite.js';
import { imageServer } from './image-server.js';

driverConformance(t, 'simulator', async () => {
  const clock = new FakeClock();
  const images = await imageServer();
  const migrationDir = await mkdtemp(join(tmpdir(), 'virtrigaud-sim-migrations-'));
  const hypervisor = new SimulatedHypervisor({ clock, migrationDir });
  return {
    driver: new SimulatorDriver(hypervisor),
    spec: (name: string, owner: Identity) => basicSpec(name, owner),
    migrationDir,
    imageURL: images.image,
    async waitUntil(done, what) {
      for (let step = 0; step < 600; step++) {
        if (await done()) return;
        // Exports write real files: a timer turn lets their I/O complete between steps.
        await new Promise((resolve) => setTimeout(resolve, 1));
        clock.advance(100);
      }
      throw new Error(`${what}: not reached in 60 s of simulated time`);
    },
    async addForeignVM(name) {
      return hypervisor.addForeignVM({ name, powerState: 'On' });
    },
    async close() {
      await images.close();
      await rm(migrationDir, { recursive: true, force: true });
    },
  };
});
