import t from 'tap';
import type { CreateSpec, Identity } from '../../src/contracts/driver.js';
import { GiB } from '../../src/contracts/quantity.js';
import { SimulatedHypervisor, SimulatorDriver } from '../../src/hypervisors/simulator/index.js';
import { FakeClock } from '../helpers/clock.js';
import { driverConformance } from './driver-suite.js';

driverConformance(t, 'simulator', async () => {
  const clock = new FakeClock();
  const hypervisor = new SimulatedHypervisor({ clock });
  return {
    driver: new SimulatorDriver(hypervisor),
    spec: (name: string, owner: Identity): CreateSpec => ({
      name,
      owner,
      cpus: 2,
      memoryBytes: 2 * GiB,
      features: { tpm: false, secureBoot: false, nestedVirtualization: false, cpuHotAdd: false, memoryHotAdd: false },
      image: { kind: 'template', ref: 'ubuntu-22-template', fullClone: true },
      disks: [],
      storage: { provisioning: 'thin' },
      nics: [{ name: 'lan' }],
      placement: {},
    }),
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
