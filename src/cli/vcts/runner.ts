// Runs the chosen conformance cases one after another against one driver, each behind its own
// call gate and deadline, and removes what each case made as soon as it ends (verified, failed,
// timed out or interrupted). A signal ends the current case, cleans up and stops the run; a
// second one stops the cleanup too.
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDriverError, type CreateSpec, type Identity } from '../../contracts/driver.js';
import {
  CaseSkipped,
  CaseUnsupported,
  Checks,
  ConformanceFailure,
  type CaseContext,
  type ConformanceCase,
  type ConformanceTarget,
} from '../../conformance/index.js';
import { EXIT, type Io } from '../common.js';
import type { Connected } from './connect.js';
import { CallGate, gatedDriver } from './gate.js';
import { RUN_NAMESPACE, RunLedger, cleanUp, type CleanupOutcome, type ImportRecord } from './ledger.js';
import type { RunOptions } from './options.js';
import { seconds, summarize, type CaseResult, type RunReport } from './report.js';

export type StopSignal = 'SIGINT' | 'SIGTERM';

/** Where stop signals come from: the process, or a test. */
export interface SignalSource {
  on(signal: StopSignal, handler: () => void): void;
  off(signal: StopSignal, handler: () => void): void;
}

export const processSignals: SignalSource = {
  on: (signal, handler) => void process.on(signal, handler),
  off: (signal, handler) => void process.off(signal, handler),
};

export const SIGNAL_EXIT: Record<StopSignal, number> = { SIGINT: 130, SIGTERM: 143 };

/** A VM ID no hypervisor hands out in practice (PVE counts up from 100; vSphere and libvirt IDs are not numbers). */
const UNKNOWN_ID = '999999937';

export interface RunSettings {
  options: RunOptions;
  cases: readonly ConformanceCase[];
  connected: Connected;
  version?: string;
  spec(name: string, owner: Identity): CreateSpec;
  io: Io;
  signals: SignalSource;
  /** Polling of waits: the first pause and the longest. */
  pollMs: { first: number; max: number };
  /** The run's UUID (tests); default random. */
  runUid?: string;
}

/** Ends a case from outside: its deadline passed, or a signal came. */
class CaseStopped extends Error {}

function oneLine(error: unknown): string {
  if (isDriverError(error)) return `${error.code}: ${(error.message.split('\n')[0] ?? '').slice(0, 300)}`;
  return ((error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '').slice(0, 300);
}

function duration(ms: number): string {
  return ms % 60_000 === 0 ? `${ms / 60_000}m` : `${ms / 1000}s`;
}

/** `work`, or the signal's reason once it aborts first. */
async function unlessAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) throw signal.reason;
  let onAbort = () => undefined as void;
  const stop = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([work, stop]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

export async function runConformance(settings: RunSettings): Promise<{ report: RunReport; exitCode: number }> {
  const { options, connected, io } = settings;
  const driver = connected.driver;
  const ledger = new RunLedger(options.prefix, settings.runUid);
  const scratch = options.prefix.slice(0, -1);
  const startedAt = new Date();
  const results: CaseResult[] = [];
  const cleanup: CleanupOutcome = { removed: [], left: [] };
  const cleaned = new Set<Identity>();
  const cleanedImports = new Set<ImportRecord>();

  let stopped: StopSignal | undefined;
  let current: AbortController | undefined;
  const cleanupStop = new AbortController();
  const onSignal = (signal: StopSignal) => () => {
    if (stopped === undefined) {
      stopped = signal;
      io.err(`vcts: ${signal}: stopping the run; removing what it made (again to leave it behind)\n`);
      current?.abort(new CaseStopped(`interrupted by ${signal}`));
      return;
    }
    if (!cleanupStop.signal.aborted) {
      io.err(`vcts: ${signal} again: cleanup stopped; VMs of run ${ledger.uid} may be left (owner namespace ${RUN_NAMESPACE}, names ${options.prefix}*)\n`);
      cleanupStop.abort(new Error(`cleanup stopped by a second ${signal}`));
    }
  };
  const handlers = { SIGINT: onSignal('SIGINT'), SIGTERM: onSignal('SIGTERM') };
  settings.signals.on('SIGINT', handlers.SIGINT);
  settings.signals.on('SIGTERM', handlers.SIGTERM);

  const migrationDir = connected.migrationDir;
  const scratchPaths = migrationDir === undefined ? [] : [join(migrationDir, scratch), join(migrationDir, `${scratch}-volume`)];
  const ownScratch: string[] = [];
  for (const path of scratchPaths) if (!(await exists(path))) ownScratch.push(path);

  const cleanupPlan = {
    driver,
    timeoutMs: options.timeoutMs,
    pause: (ms: number) => sleep(ms, undefined, { signal: cleanupStop.signal }),
  };
  const removeMade = async (owners: readonly Identity[], imports: readonly ImportRecord[]) => {
    if (cleanupStop.signal.aborted) return;
    try {
      const work = cleanUp(cleanupPlan, owners, imports);
      work.catch(() => undefined);
      const outcome = await unlessAborted(work, cleanupStop.signal);
      cleanup.removed.push(...outcome.removed);
      cleanup.left.push(...outcome.left);
      for (const owner of owners) cleaned.add(owner);
      for (const record of imports) cleanedImports.add(record);
    } catch (error) {
      cleanup.left.push(`owners ${owners.map((owner) => owner.name).join(', ')}: ${oneLine(error)}`);
    }
  };

  const waitUntil = async (signal: AbortSignal, done: () => Promise<boolean>, what: string, note: (what: string | undefined) => void) => {
    note(what);
    for (let pauseMs = settings.pollMs.first; ; pauseMs = Math.min(settings.pollMs.max, Math.round(pauseMs * 1.5))) {
      if (signal.aborted) throw signal.reason;
      if (await done()) break;
      await sleep(pauseMs, undefined, { signal }).catch(() => undefined);
    }
    note(undefined);
  };

  const runOne = async (conformanceCase: ConformanceCase): Promise<CaseResult> => {
    const base = { id: conformanceCase.id, title: conformanceCase.title, capability: conformanceCase.capability, destructive: conformanceCase.destructive };
    if (conformanceCase.destructive && !options.destructive) {
      return { ...base, result: 'skipped', reason: 'destructive: asks the driver to change a VM the run did not create (--destructive --foreign-vm ID)', seconds: 0 };
    }
    const gate = new CallGate();
    const controller = new AbortController();
    current = controller;
    const timer = setTimeout(() => controller.abort(new CaseStopped(`timed out after ${duration(options.timeoutMs)}`)), options.timeoutMs);
    let waiting: string | undefined;
    const owners: Identity[] = [];
    const imports: ImportRecord[] = [];
    const byKey = new Map<string, Identity>();
    const target: ConformanceTarget = {
      driver: gatedDriver(driver, gate),
      spec: settings.spec,
      waitUntil: (done, what) => waitUntil(controller.signal, done, what, (now) => (waiting = now)),
      ...(options.foreignVM === undefined ? {} : { addForeignVM: async () => options.foreignVM ?? '' }),
      ...(migrationDir === undefined ? {} : { migrationDir }),
      ...(options.imageURL === undefined ? {} : { imageURL: options.imageURL }),
      ...(options.iso === undefined ? {} : { iso: options.iso }),
    };
    const context: CaseContext = {
      target,
      check: new Checks(),
      owner(key) {
        let owner = byKey.get(key);
        if (owner === undefined) {
          owner = ledger.mint(key);
          byKey.set(key, owner);
          owners.push(owner);
        }
        return owner;
      },
      vmName: (key) => `${options.prefix}${key}`,
      scratch,
      unknownId: UNKNOWN_ID,
      requestedId: options.requestedId,
      recordImport(owner, name) {
        const record = { owner, name };
        ledger.recordImport(owner, name);
        imports.push(record);
      },
    };
    const started = performance.now();
    let outcome: Pick<CaseResult, 'result' | 'reason'>;
    try {
      const running = conformanceCase.run(context);
      // A case that lost the race against its deadline goes on in the background until its gate refuses it.
      running.catch(() => undefined);
      await unlessAborted(running, controller.signal);
      outcome = { result: 'verified' };
    } catch (error) {
      if (error instanceof CaseUnsupported) outcome = { result: 'unsupported', reason: error.message };
      else if (error instanceof CaseSkipped) outcome = { result: 'skipped', reason: error.message };
      else if (error instanceof ConformanceFailure) outcome = { result: 'failed', reason: error.message };
      else if (error instanceof CaseStopped) outcome = { result: 'failed', reason: `${error.message}${waiting === undefined ? '' : ` (waiting for: ${waiting})`}` };
      else outcome = { result: 'failed', reason: oneLine(error) };
    } finally {
      clearTimeout(timer);
      current = undefined;
      gate.close();
      if (!controller.signal.aborted) controller.abort(new CaseStopped('the case has ended'));
    }
    const secondsTaken = (performance.now() - started) / 1000;
    await gate.settled(Math.min(options.timeoutMs, 60_000));
    await removeMade(owners, imports);
    return { ...base, ...outcome, seconds: secondsTaken };
  };

  try {
    const total = settings.cases.length;
    for (const [index, conformanceCase] of settings.cases.entries()) {
      let result: CaseResult;
      if (stopped !== undefined) {
        result = { id: conformanceCase.id, title: conformanceCase.title, capability: conformanceCase.capability, destructive: conformanceCase.destructive, result: 'skipped', reason: `not run: interrupted by ${stopped}`, seconds: 0 };
      } else {
        result = await runOne(conformanceCase);
        io.err(`[${index + 1}/${total}] ${result.id} … ${result.result} (${seconds(result.seconds)})${result.reason === undefined || result.result === 'verified' ? '' : `: ${result.reason}`}\n`);
      }
      results.push(result);
    }
    const unclean = ledger.owners.filter((owner) => !cleaned.has(owner));
    const uncleanImports = ledger.imports.filter((record) => !cleanedImports.has(record));
    if (unclean.length > 0 || uncleanImports.length > 0) await removeMade(unclean, uncleanImports);
    for (const path of ownScratch) await rm(path, { recursive: true, force: true }).catch((error: unknown) => cleanup.left.push(`${path}: ${oneLine(error)}`));
  } finally {
    settings.signals.off('SIGINT', handlers.SIGINT);
    settings.signals.off('SIGTERM', handlers.SIGTERM);
  }

  io.err(
    cleanup.left.length > 0
      ? `vcts: cleanup: ${cleanup.left.length} left behind (see the report)\n`
      : `vcts: cleanup: ${cleanup.removed.length === 0 ? 'nothing of the run was left' : `removed ${cleanup.removed.length} VM${cleanup.removed.length === 1 ? '' : 's'} of the run (${cleanup.removed.join(', ')})`}\n`,
  );
  const report: RunReport = {
    tool: 'vcts',
    target: { driver: driver.type, where: connected.where, ...(settings.version === undefined ? {} : { version: settings.version }) },
    run: {
      uid: ledger.uid,
      prefix: options.prefix,
      namespace: RUN_NAMESPACE,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      ...(stopped === undefined ? {} : { interrupted: stopped }),
    },
    summary: summarize(results),
    cases: results,
    cleanup,
  };
  const exitCode = stopped !== undefined ? SIGNAL_EXIT[stopped] : report.summary.failed > 0 || cleanup.left.length > 0 ? EXIT.failed : EXIT.ok;
  return { report, exitCode };
}
