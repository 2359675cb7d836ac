// Each case talks to the driver through a gate. Once the case has ended (failed, timed out,
// interrupted) the gate is closed: a case still running in the background can start no new call,
// and the cleanup waits for the calls already in flight, so nothing the case makes can appear
// after the cleanup has looked for it.
import type { Driver } from '../../contracts/driver.js';

export class CallGate {
  #open = true;
  #inFlight = 0;
  #idle: (() => void)[] = [];

  get inFlight(): number {
    return this.#inFlight;
  }

  async run<T>(call: () => Promise<T>): Promise<T> {
    if (!this.#open) throw new Error('the case has ended: no new driver calls');
    this.#inFlight++;
    try {
      return await call();
    } finally {
      this.#inFlight--;
      if (this.#inFlight === 0) for (const resolve of this.#idle.splice(0)) resolve();
    }
  }

  close(): void {
    this.#open = false;
  }

  /** Resolves true once no call is in flight, false when `ms` pass first. */
  async settled(ms: number): Promise<boolean> {
    if (this.#inFlight === 0) return true;
    return await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      this.#idle.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }
}

type DriverMethod = (...args: unknown[]) => unknown;

/** `driver` with every method call passed through `gate`; properties (type, capabilities) as they are. */
export function gatedDriver(driver: Driver, gate: CallGate): Driver {
  return new Proxy(driver, {
    get(target, property) {
      // The target as receiver: drivers keep state in private fields, which a proxy cannot reach.
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      const method = value as DriverMethod;
      return (...args: unknown[]) => gate.run(async () => await method.apply(target, args));
    },
  });
}
