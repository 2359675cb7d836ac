import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { Identity } from '../../src/contracts/driver.js';
import { SimulatedHypervisor, SimulatorDriver } from '../../src/hypervisors/simulator/index.js';
import { FakeClock } from '../helpers/clock.js';
import { basicSpec, driverConformance } from './driver-suite.js';

/** A small disk image the simulator downloads from loopback, for the image-import case. */
const IMAGE = Buffer.from('QFI\xfb a conformance disk image '.repeat(256));

async function imageServer(): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((_request, response) => response.end(IMAGE));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/disk.qcow2`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

driverConformance(t, 'simulator', async () => {
  const clock = new FakeClock();
  const images = await imageServer();
  const migrationDir = await mkdtemp(join(tmpdir(), 'virtrigaud-sim-migrations-'));
  const hypervisor = new SimulatedHypervisor({ clock, migrationDir });
  return {
    driver: new SimulatorDriver(hypervisor),
    spec: (name: string, owner: Identity) => basicSpec(name, owner),
    migrationDir,
    imageURL: { url: images.url, checksum: `sha256:${createHash('sha256').update(IMAGE).digest('hex')}` },
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
