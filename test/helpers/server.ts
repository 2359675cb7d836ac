import { Writable } from 'node:stream';
import type { DriverRegistry } from '../../src/contracts/driver.js';
import { buildServer } from '../../src/hooks/server.js';
import type { RuntimeSettings } from '../../src/hooks/provider-runtime.js';
import type { VitiSettings } from '../../src/hooks/viti/cluster.js';
import { ProviderRegistry } from '../../src/hypervisors/registry.js';
import { SimulatedHypervisor, type SimulatorOptions } from '../../src/hypervisors/simulator/index.js';
import { FakeClock } from './clock.js';

/** A hook server wired to one simulator world and a fake clock, with its log lines captured. */
export function testServer(
  options: {
    simulator?: SimulatorOptions;
    clock?: FakeClock;
    budgetMs?: number;
    registry?: (simulator: ProviderRegistry) => DriverRegistry;
    runtime?: RuntimeSettings;
    hookToken?: string;
    requestTimeoutMs?: number;
    viti?: VitiSettings;
    steadyResyncSeconds?: number;
  } = {},
) {
  const clock = options.clock ?? new FakeClock();
  const world = new SimulatedHypervisor({ clock, ...options.simulator });
  const logs: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs.push(chunk.toString('utf8'));
      done();
    },
  });
  const simulators = new ProviderRegistry(() => world);
  const app = buildServer({
    registry: options.registry ? options.registry(simulators) : simulators,
    clock,
    budgetMs: options.budgetMs ?? 2000,
    ...(options.runtime ? { runtime: options.runtime } : {}),
    ...(options.hookToken !== undefined ? { hookToken: options.hookToken } : {}),
    ...(options.requestTimeoutMs !== undefined ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
    ...(options.viti !== undefined ? { viti: options.viti } : {}),
    ...(options.steadyResyncSeconds !== undefined ? { steadyResyncSeconds: options.steadyResyncSeconds } : {}),
    logger: { level: 'debug', stream },
  });
  return { app, world, clock, logs };
}
