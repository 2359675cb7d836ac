// Lifecycle tests against real hypervisors (libvirtd, vcsim): their work takes real time, so the
// fake clock is walked forward with the wall clock, and the Metacontroller stand-in runs whatever
// becomes due on the way, as a real Metacontroller would.
import { setTimeout as sleep } from 'node:timers/promises';
import type { MetacontrollerStandIn } from '../harness/index.js';

export interface RealTimeOptions {
  /** Gives up (throws) after this much wall-clock time. */
  timeoutMs?: number;
  /** Wall-clock pause, and fake-clock step, between rounds. */
  stepMs?: number;
  what?: string;
}

export async function settleInRealTime(metacontroller: MetacontrollerStandIn, predicate: () => boolean, options: RealTimeOptions = {}): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  const stepMs = options.stepMs ?? 250;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await metacontroller.runDue();
    if (predicate()) return;
    if (Date.now() > deadline) throw new Error(`settleInRealTime: ${options.what ?? 'predicate'} not reached within ${timeoutMs} ms`);
    await sleep(stepMs);
    await metacontroller.advance(stepMs);
    if (predicate()) return;
  }
}
