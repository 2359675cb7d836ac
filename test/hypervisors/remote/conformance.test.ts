import t from 'tap';
import { RemoteDriver } from '../../../src/hypervisors/remote/index.js';
import { driverConformance } from '../../conformance/driver-suite.js';
import { imageServer } from '../../conformance/image-server.js';
import { TOKEN, simulatorSpec, startRuntime } from './helpers.js';

// RemoteDriver → provider runtime (real HTTP) → SimulatorDriver; the clock lives in the runtime's simulator.
driverConformance(t, 'remote', async () => {
  const runtime = await startRuntime();
  const images = await imageServer();
  const driver = await RemoteDriver.connect(runtime.url, TOKEN);
  return {
    driver,
    spec: simulatorSpec,
    migrationDir: runtime.migrationDir,
    imageURL: images.image,
    async waitUntil(done, what) {
      for (let step = 0; step < 600; step++) {
        if (await done()) return;
        // Exports write real files: a timer turn lets their I/O complete between steps.
        await new Promise((resolve) => setTimeout(resolve, 1));
        runtime.clock.advance(100);
      }
      throw new Error(`${what}: not reached in 60 s of simulated time`);
    },
    async addForeignVM(name) {
      return runtime.hypervisor.addForeignVM({ name, powerState: 'On' });
    },
    async close() {
      await driver.close();
      await runtime.close();
      await images.close();
    },
  };
});
