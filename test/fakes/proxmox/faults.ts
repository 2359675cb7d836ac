/**
 * Injected faults: each matches requests (or task types) until it runs out of `times`, its span on
 * the fake clock ends, or the test clears it (see FaultLifetime).
 */
import type { PveFault } from './options.js';

type Armed = PveFault & { left: number; endsAt: number };

/** What injectFault answers: clears the fault, whatever its lifetime. */
export interface FaultHandle {
  clear(): void;
}

export class FaultSet {
  private readonly armed: Armed[] = [];

  constructor(private readonly now: () => number) {}

  add(fault: PveFault): FaultHandle {
    const spanned = fault.forMs !== undefined || fault.until !== undefined;
    const times = fault.times === 'always' ? Infinity : (fault.times ?? (spanned ? Infinity : 1));
    const endsAt = Math.min(fault.until ?? Infinity, fault.forMs === undefined ? Infinity : this.now() + fault.forMs);
    const armed: Armed = { ...fault, left: times, endsAt };
    this.armed.push(armed);
    return { clear: () => this.remove(armed) };
  }

  clearAll(): void {
    this.armed.length = 0;
  }

  /** Takes the first fault of one of `kinds` that matches the request, counting it used. */
  takeForRequest<K extends PveFault['kind']>(
    kinds: readonly K[],
    method: string,
    path: string,
    extra: (fault: Extract<PveFault, { kind: K }>) => boolean = () => true,
  ): Extract<PveFault, { kind: K }> | undefined {
    this.expire();
    for (const fault of this.armed) {
      if (!(kinds as readonly string[]).includes(fault.kind)) continue;
      const typed = fault as Armed & Extract<PveFault, { kind: K }>;
      if ('method' in typed && typed.method !== undefined && typed.method.toUpperCase() !== method) continue;
      if ('path' in typed && typed.path !== undefined && !new RegExp(typed.path.source, typed.path.flags.replace('g', '')).test(path)) {
        continue;
      }
      if (!extra(typed)) continue;
      this.use(fault);
      return typed;
    }
    return undefined;
  }

  /** The failure message for the next task of `type`, if a failTask fault is armed for it. */
  takeTaskFailure(type: string): string | undefined {
    this.expire();
    for (const fault of this.armed) {
      if (fault.kind !== 'failTask' || fault.type !== type) continue;
      this.use(fault);
      return fault.message;
    }
    return undefined;
  }

  private expire(): void {
    const now = this.now();
    for (const fault of [...this.armed]) if (now >= fault.endsAt) this.remove(fault);
  }

  private use(fault: Armed): void {
    fault.left--;
    if (fault.left <= 0) this.remove(fault);
  }

  private remove(fault: Armed): void {
    const index = this.armed.indexOf(fault);
    if (index >= 0) this.armed.splice(index, 1);
  }
}
