// Every driver call a hook makes goes through here: one deadline for the whole hook call (so the
// answer reaches Metacontroller before its webhook timeout) and a metric per call.
import {
  UnreachableError,
  isDriverError,
  type CallOptions,
  type Driver,
} from '../contracts/driver.js';
import type { HookMetrics } from './metrics.js';

export class DriverCalls {
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
}
