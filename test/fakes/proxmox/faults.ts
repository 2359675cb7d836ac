/** Injected faults: each matches requests (or task types) and is used up after `times` matches. */
import type { PveFault } from './options.js';

type Armed = PveFault & { left: number };

export class FaultSet {
  private readonly armed: Armed[] = [];

  add(fault: PveFault): void {
    this.armed.push({ ...fault, left: fault.times ?? 1 });
  }

  /** Takes the first fault of one of `kinds` that matches the request, counting it used. */
  takeForRequest<K extends PveFault['kind']>(
    kinds: readonly K[],
    method: string,
    path: string,
    extra: (fault: Extract<PveFault, { kind: K }>) => boolean = () => true,
  ): Extract<PveFault, { kind: K }> | undefined {
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
    for (const fault of this.armed) {
      if (fault.kind !== 'failTask' || fault.type !== type) continue;
      this.use(fault);
      return fault.message;
    }
    return undefined;
  }

  private use(fault: Armed): void {
    fault.left--;
    if (fault.left <= 0) this.armed.splice(this.armed.indexOf(fault), 1);
  }
}
