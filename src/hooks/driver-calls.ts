// Every driver call a hook makes goes through here: one deadline for the whole hook call (so the
// answer reaches Metacontroller before its webhook timeout) and a metric per call.
import {
  UnreachableError,
  isDriverError,
  type CallOptions,
  type Driver,
  type Inventory,
} from '../contracts/driver.js';
import type { HookMetrics } from './metrics.js';

export class DriverCalls {
  #inventory: Promise<Inventory> | undefined;

  constructor(
    readonly driver: Driver,
    readonly provider: string,
    private readonly metrics: HookMetrics,
    private readonly signal: AbortSignal,
  ) {}

  async call<T>(operation: string, run: (options: CallOptions) => Promise<T>): Promise<T> {
    try {
      if (this.signal.aborted) throw new UnreachableError(`no time left for ${operation} within the hook deadline`);
      const result = await run({ signal: this.signal });
      this.metrics.driverCall(this.provider, operation, 'ok');
      return result;
    } catch (error) {
      this.metrics.driverCall(this.provider, operation, isDriverError(error) ? error.code : 'Error');
      throw error;
    }
  }

  /**
   * The hypervisor's inventory, asked once per hook call however many steps read it (a Machine's
   * checks before create, then its placement); each reader gets its own copy. A failed read is
   * not kept: the next reader asks again.
   */
  async inventory(): Promise<Inventory> {
    this.#inventory ??= this.call('inventory', (options) => this.driver.inventory(options));
    try {
      return structuredClone(await this.#inventory);
    } catch (error) {
      this.#inventory = undefined;
      throw error;
    }
  }
}
