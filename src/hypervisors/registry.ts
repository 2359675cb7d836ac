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

/** The embedded simulator of a hook server: off, or on with at most `maxWorlds` endpoints. */
export type EmbeddedSimulator = { enabled: false } | { enabled: true; maxWorlds: number; options?: SimulatorOptions };

/** Each simulator endpoint is a world in this process's memory: anyone who may create a Provider could otherwise grow it at will. */
export const DEFAULT_SIMULATOR_WORLDS = 8;

export class ProviderRegistry implements DriverRegistry {
  readonly #simulatorDrivers = new Map<string, Driver>();
  readonly #remote = new Map<string, { token: string; driver: Promise<RemoteDriver> }>();

  /** `simulators` gives the world behind each simulator endpoint (undefined: the simulator is off); tests pass their own. */
  constructor(
    private readonly simulators: ((endpoint: string) => SimulatedHypervisor) | undefined,
    private readonly runtimes?: RemoteRuntimes,
  ) {}

  static withSimulators(simulator: EmbeddedSimulator = { enabled: true, maxWorlds: DEFAULT_SIMULATOR_WORLDS }, runtimes?: RemoteRuntimes): ProviderRegistry {
    if (!simulator.enabled) return new ProviderRegistry(undefined, runtimes);
    const worlds = new Map<string, SimulatedHypervisor>();
    const world = (endpoint: string) => {
      let found = worlds.get(endpoint);
      if (found) return found;
      if (worlds.size >= simulator.maxWorlds) {
        throw new UnsupportedError(`the embedded simulator already serves ${simulator.maxWorlds} endpoints, its limit (SIMULATOR_MAX_WORLDS)`);
      }
      worlds.set(endpoint, (found = new SimulatedHypervisor(simulator.options ?? {})));
      return found;
    };
    return new ProviderRegistry(world, runtimes);
  }

  async driverFor(provider: ProviderTarget): Promise<Driver> {
    if (provider.mode === 'Remote') return this.#remoteDriver(provider);
    if (provider.type !== 'simulator') {
      throw new UnsupportedError(`the ${provider.type} driver runs only in a provider runtime (runtime.mode Remote), never inside the hook server`);
    }
    if (this.simulators === undefined) {
      throw new UnsupportedError('the embedded simulator is off in this hook server (EMBEDDED_SIMULATOR=false); use a Provider of a real hypervisor');
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
    const pod = provider.endpoints?.[0];
    const url = pod !== undefined ? `http://${pod}` : (this.runtimes.url ?? runtimeURL)(provider);
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
