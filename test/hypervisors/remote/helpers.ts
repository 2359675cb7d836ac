// A provider runtime around a simulator on 127.0.0.1:0 and a RemoteDriver connected to it.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { Test } from 'tap';
import type { CreateSpec, Driver, Identity } from '../../../src/contracts/driver.js';
import { ProviderRuntimeMetrics, RemoteDriver, buildProviderRuntime, type ReadinessOptions } from '../../../src/hypervisors/remote/index.js';
import { SimulatedHypervisor, SimulatorDriver } from '../../../src/hypervisors/simulator/index.js';
import { basicSpec } from '../../conformance/driver-suite.js';
import { FakeClock } from '../../helpers/clock.js';

export const TOKEN = 'a-runtime-token-0123456789abcdef';

export interface RuntimeUnderTest {
  url: string;
  clock: FakeClock;
  hypervisor: SimulatedHypervisor;
  /** The runtime's migration directory (removed by close). */
  migrationDir: string;
  app: ReturnType<typeof buildProviderRuntime>;
  logs: string[];
  close(): Promise<void>;
}

/** Starts a runtime serving `driver` (default: a simulator on a fake clock); the caller closes it. */
export async function startRuntime(options: { driver?: (hypervisor: SimulatedHypervisor) => Driver; readiness?: ReadinessOptions } = {}): Promise<RuntimeUnderTest> {
  const clock = new FakeClock();
  const migrationDir = await mkdtemp(join(tmpdir(), 'virtrigaud-runtime-migrations-'));
  const hypervisor = new SimulatedHypervisor({ clock, migrationDir });
  const logs: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(chunk.toString('utf8'));
      done();
    },
  });
  const app = buildProviderRuntime({
    driver: options.driver ? options.driver(hypervisor) : new SimulatorDriver(hypervisor),
    token: TOKEN,
    logger: { level: 'debug', stream },
    metrics: new ProviderRuntimeMetrics({ processMetrics: false }),
    ...(options.readiness ? { readiness: options.readiness } : {}),
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const close = async () => {
    await app.close();
    await rm(migrationDir, { recursive: true, force: true });
  };
  return { url, clock, hypervisor, migrationDir, app, logs, close };
}

/** A runtime and a RemoteDriver to it, both closed when the test ends. */
export async function remoteSetup(t: Test, options: Parameters<typeof startRuntime>[0] = {}) {
  const runtime = await startRuntime(options);
  t.teardown(() => runtime.close());
  const driver = await RemoteDriver.connect(runtime.url, TOKEN);
  t.teardown(() => driver.close());
  return { ...runtime, driver };
}

export const simulatorSpec = (name: string, owner: Identity): CreateSpec => basicSpec(name, owner);
