// Which Driver serves a Provider object. This version runs the simulator in process; the other
// drivers run in provider runtimes (Remote mode), which come with the provider-runtime work.
import { UnsupportedError, type Driver, type DriverRegistry, type ProviderTarget } from '../contracts/driver.js';
import { SimulatedHypervisor, SimulatorDriver, type SimulatorOptions } from './simulator/index.js';

export const DEFAULT_SIMULATOR_ENDPOINT = 'simulator://default';

export class InProcessRegistry implements DriverRegistry {
  readonly #drivers = new Map<string, Driver>();

  /** `simulators` gives the world behind each simulator endpoint; tests pass their own. */
  constructor(private readonly simulators: (endpoint: string) => SimulatedHypervisor) {}

  static withSimulators(options: SimulatorOptions = {}): InProcessRegistry {
    const worlds = new Map<string, SimulatedHypervisor>();
    return new InProcessRegistry((endpoint) => {
      let world = worlds.get(endpoint);
      if (!world) worlds.set(endpoint, (world = new SimulatedHypervisor(options)));
      return world;
    });
  }

  async driverFor(provider: ProviderTarget): Promise<Driver> {
    if (provider.type !== 'simulator') {
      throw new UnsupportedError(
        `the ${provider.type} driver is not part of this server; it runs in a provider runtime, which this version does not deploy yet`,
      );
    }
    if (provider.mode !== 'InProcess') {
      throw new UnsupportedError('runtime.mode Remote is not available yet; use runtime.mode InProcess for the simulator');
    }
    const endpoint = provider.endpoint ?? DEFAULT_SIMULATOR_ENDPOINT;
    let driver = this.#drivers.get(endpoint);
    if (!driver) this.#drivers.set(endpoint, (driver = new SimulatorDriver(this.simulators(endpoint))));
    return driver;
  }
}
