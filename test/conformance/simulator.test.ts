import t from 'tap';
import type { Identity } from '../../src/contracts/driver.js';
import { SimulatedHypervisor, SimulatorDriver } from '../../src/hypervisors/simulator/index.js';
import { FakeClock } from '../helpers/clock.js';
import { basicSpec, driverConformance } from './driver-suite.js';

driverConformance(t, 'simulator', async () => {
  const clock = new FakeClock();
  const hypervisor = new SimulatedHypervisor({ clock });
  return {
    driver: new SimulatorDriver(hypervisor),
    spec: (name: string, owner: Identity) => basicSpec(name, owner),
    async waitUntil(done, what) {
      for (let step = 0; step < 600; step++) {
        if (await done()) return;
        clock.advance(100);
      }
      throw new Error(`${what}: not reached in 60 s of simulated time`);
    },
    async addForeignVM(name) {
      return hypervisor.addForeignVM({ name, powerState: 'On' });
    },
    async close() {},
  };
});
