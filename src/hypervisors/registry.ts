// Which Driver serves a Provider object. Simulator Providers in InProcess mode run inside this
// process; Remote Providers are served by their own runtime (a Deployment holding the
// credentials), reached over HTTP with a token derived for that Provider alone.
import { UnsupportedError, type Driver, type DriverRegistry, type ProviderTarget } from '../contracts/driver.js';
import { providerRuntimeName, providerRuntimeToken } from '../contracts/provider-token.js';
import { RemoteDriver } from './remote/index.js';
import { SimulatedHypervisor, SimulatorDriver, type SimulatorOptions } from './simulator/index.js';

export const DEFAULT_SIMULATOR_ENDPOINT = 'simulator://default';

export interface RemoteRuntimes {
  /** The secret each runtime's bearer token is derived from. */
  tokenSecret: string;
  /** The runtime address; default its Service: http://<name>.<namespace>.svc:<port>. */
  url?: (provider: ProviderTarget) => string;
}

export function runtimeURL(provider: ProviderTarget): string {
  return `http://${providerRuntimeName(provider)}.${provider.namespace}.svc:${provider.port ?? 9090}`;
}

export class ProviderRegistry implements DriverRegistry {
  readonly #simulatorDrivers = new Map<string, Driver>();
  readonly #remote = new Map<string, { token: string; driver: Promise<RemoteDriver> }>();

  /** `simulators` gives the world behind each simulator endpoint; tests pass their own. */
  constructor(
    private readonly simulators: (endpoint: string) => SimulatedHypervisor,
    private readonly runtimes?: RemoteRuntimes,
  ) {}

  static withSimulators(options: SimulatorOptions = {}, runtimes?: RemoteRuntimes): ProviderRegistry {
    const worlds = new Map<string, SimulatedHypervisor>();
    const simulator = (endpoint: string) => {
      let world = worlds.get(endpoint);
      if (!world) worlds.set(endpoint, (world = new SimulatedHypervisor(options)));
      return world;
    };
    return new ProviderRegistry(simulator, runtimes);
  }

  async driverFor(provider: ProviderTarget): Promise<Driver> {
    if (provider.mode === 'Remote') return this.#remoteDriver(provider);
    if (provider.type !== 'simulator') {
      throw new UnsupportedError(`the ${provider.type} driver runs only in a provider runtime (runtime.mode Remote), never inside the hook server`);
    }
    const endpoint = provider.endpoint ?? DEFAULT_SIMULATOR_ENDPOINT;
    let driver = this.#simulatorDrivers.get(endpoint);
    if (!driver) this.#simulatorDrivers.set(endpoint, (driver = new SimulatorDriver(this.simulators(endpoint))));
    return driver;
  }

  #remoteDriver(provider: ProviderTarget): Promise<Driver> {
    if (!this.runtimes) {
      throw new UnsupportedError('this hook server has no provider token secret (PROVIDER_TOKEN_SECRET_FILE), so it cannot reach provider runtimes');
    }
    const url = (this.runtimes.url ?? runtimeURL)(provider);
    const token = providerRuntimeToken(this.runtimes.tokenSecret, provider);
    const cached = this.#remote.get(url);
    if (cached && cached.token === token) return cached.driver;
    // A re-created Provider has a new UID, so a new token: the old connection is of no use.
    if (cached) void cached.driver.then((driver) => driver.close(), () => undefined);
    const driver = RemoteDriver.connect(url, token);
    this.#remote.set(url, { token, driver });
    // A runtime that was not up yet is asked again next time, not remembered as down.
    driver.catch(() => {
      if (this.#remote.get(url)?.driver === driver) this.#remote.delete(url);
    });
    return driver;
  }

  async close(): Promise<void> {
    const drivers = [...this.#remote.values()].map((entry) => entry.driver.then((driver) => driver.close(), () => undefined));
    this.#remote.clear();
    await Promise.all(drivers);
  }
}
