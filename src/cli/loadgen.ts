#!/usr/bin/env node
// virtrigaud-loadgen: the seed's performance table (Create, Power On/Off, Describe, Reconfigure CPU,
// Snapshot Create, Clone linked), measured through the hook path — a hook server in this process,
// called over HTTP the way Metacontroller calls it, its driver, the hypervisor — at a chosen
// concurrency. `npm run bench:seed-table` runs it against the PVE fake and prints the seed's row
// beside each of ours.
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { DriverRegistry } from '../contracts/driver.js';
import { parseDuration } from '../contracts/quantity.js';
import { buildServer } from '../hooks/server.js';
import { runtimeDriverFromEnv, type ClosableDriver } from '../hypervisors/runtime-drivers.js';
import { SimulatedHypervisor, SimulatorDriver } from '../hypervisors/simulator/index.js';
import { CliError, EXIT, isEntryPoint, outputFormat, processIo, runMain, serialize, table, type Io } from './common.js';
import { OPERATIONS, OPERATION_TITLES, formatMs, percentile, runLoad, throughput, type Operation, type OperationResult } from './loadgen/operations.js';
import { HookClient, type Json } from './loadgen/reconcile.js';

const HELP = `usage: virtrigaud-loadgen [options]

Measures the seed's operations through the hook path (hook server → driver → hypervisor): each
operation is timed from its first hook call until its object reports it done, with hook calls
repeated as Metacontroller repeats them (at once after a status change, else after the
resyncAfterSeconds the hook asked for). Every VM it makes is named with the run prefix and
deleted again at the end, also after Ctrl-C.

  --provider simulator|proxmox   the hypervisor (default simulator). proxmox: the Proxmox driver
                                 built from the PVE_* environment variables as a provider runtime
                                 builds it (PVE_ENDPOINT, PVE_TOKEN_ID, PVE_TOKEN_SECRET or their
                                 _FILE forms, …)
  --count N                      operations of each kind (default 10)
  --concurrency N                operations in flight at once (default 5, Metacontroller's workers)
  --operations LIST              comma-separated, of: ${OPERATIONS.join(', ')} (default all)
  --template NAME                the template VMs are cloned from (default ubuntu-22-template)
  --network NAME                 the NIC's network or bridge (default lan)
  --timeout DURATION             per operation (default 5m)
  --resync-scale X               multiply every resyncAfterSeconds wait (default 1: as Metacontroller)
  -o, --output table|json        the result (default table)
  -h, --help

Exit: 0 every operation succeeded; 1 some failed (counted in the Errors column); 2 bad usage.
`;

export interface LoadgenTarget {
  registry: DriverRegistry;
  /** The Provider spec the run's VMs are made on. */
  provider: Json;
  close(): Promise<void>;
}

/** The hypervisor of a run, from --provider and the environment. */
export function targetFor(provider: string, env: NodeJS.ProcessEnv): LoadgenTarget {
  if (provider === 'simulator') {
    const driver = new SimulatorDriver(new SimulatedHypervisor());
    return { registry: { driverFor: async () => driver }, provider: { type: 'simulator', runtime: { mode: 'InProcess' } }, close: async () => undefined };
  }
  if (provider === 'proxmox') {
    const endpoint = env['PVE_ENDPOINT'];
    if (!endpoint) throw new CliError('--provider proxmox needs PVE_ENDPOINT (and PVE_TOKEN_ID + PVE_TOKEN_SECRET or PVE_USERNAME + PVE_PASSWORD)');
    let driver: ClosableDriver;
    try {
      // As a runtime builds it: credentials also from <NAME>_FILE files, read again when refused.
      driver = runtimeDriverFromEnv('proxmox', env);
    } catch (error) {
      throw new CliError(error instanceof Error ? error.message : String(error));
    }
    // The driver runs in this process, as the runtime would run it: the Provider says InProcess.
    return { registry: { driverFor: async () => driver }, provider: { type: 'proxmox', endpoint, runtime: { mode: 'InProcess' } }, close: async () => driver.close?.() };
  }
  throw new CliError(`--provider must be simulator or proxmox, not "${provider}"`);
}

function positive(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1 || number > 100_000) throw new CliError(`${flag} must be a whole number from 1 to 100000, not "${value}"`);
  return number;
}

function operationsOf(value: string | undefined): Operation[] {
  if (value === undefined) return [...OPERATIONS];
  const asked = value.split(',').map((item) => item.trim()).filter((item) => item !== '');
  const unknown = asked.filter((item) => !(OPERATIONS as readonly string[]).includes(item));
  if (unknown.length > 0 || asked.length === 0) throw new CliError(`--operations takes ${OPERATIONS.join(', ')}; not ${unknown.join(', ') || 'nothing'}`);
  return asked as Operation[];
}

export interface LoadgenRun {
  results: OperationResult[];
  settings: Record<string, string | number>;
}

/** A whole run against `target`: a hook server on loopback, the operations, the cleanup. */
export async function runLoadgen(
  target: LoadgenTarget,
  settings: { count: number; concurrency: number; operations: Operation[]; template: string; network: string; timeoutMs: number; resyncScale: number },
  io: Io,
  stopped: () => boolean = () => false,
): Promise<OperationResult[]> {
  const app = buildServer({ registry: target.registry, logger: false, budgetMs: 9000 });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  const client = new HookClient(url, settings.concurrency + 2);
  const prefix = `lg-${randomBytes(3).toString('hex')}-`;
  io.err(`virtrigaud-loadgen: run ${prefix} — ${settings.count} of each of ${settings.operations.join(', ')}, ${settings.concurrency} at once\n`);
  try {
    return await runLoad(client, {
      ...settings,
      provider: target.provider,
      prefix,
      reconcile: { timeoutMs: settings.timeoutMs, resyncScale: settings.resyncScale },
      progress: (line) => io.err(`  ${line}\n`),
      stopped,
    });
  } finally {
    await client.close();
    await app.close();
    await target.close();
  }
}

export function resultTable(results: readonly OperationResult[]): string {
  return table(
    ['Operation', 'P50 Latency', 'P95 Latency', 'Throughput', 'Count', 'Errors', 'Hook calls/op'],
    results.map((result) => [
      OPERATION_TITLES[result.operation],
      formatMs(percentile(result.latenciesMs, 50)),
      formatMs(percentile(result.latenciesMs, 95)),
      `${throughput(result).toFixed(1)} ops/min`,
      result.latenciesMs.length,
      result.errors.length,
      result.latenciesMs.length + result.errors.length > 0 ? (result.hookCalls / (result.latenciesMs.length + result.errors.length)).toFixed(1) : '-',
    ]),
  );
}

export function resultJson(results: readonly OperationResult[]): Json[] {
  return results.map((result) => ({
    operation: OPERATION_TITLES[result.operation],
    p50Ms: percentile(result.latenciesMs, 50) ?? null,
    p95Ms: percentile(result.latenciesMs, 95) ?? null,
    throughputPerMinute: Number(throughput(result).toFixed(2)),
    count: result.latenciesMs.length,
    errors: result.errors,
    hookCalls: result.hookCalls,
  }));
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env, io: Io = processIo): Promise<number> {
  return runMain('virtrigaud-loadgen', async () => {
    let parsed;
    try {
      parsed = parseArgs({
        args: argv,
        options: {
          provider: { type: 'string' },
          count: { type: 'string' },
          concurrency: { type: 'string' },
          operations: { type: 'string' },
          template: { type: 'string' },
          network: { type: 'string' },
          timeout: { type: 'string' },
          'resync-scale': { type: 'string' },
          output: { type: 'string', short: 'o' },
          help: { type: 'boolean', short: 'h' },
        },
        allowPositionals: false,
        strict: true,
      });
    } catch (error) {
      throw new CliError(error instanceof Error ? error.message : String(error));
    }
    const values = parsed.values;
    if (values.help) {
      io.out(HELP);
      return EXIT.ok;
    }
    const format = outputFormat(values.output);
    if (format === 'yaml') throw new CliError('-o must be table or json');
    const timeoutMs = parseDuration(values.timeout ?? '5m');
    if (timeoutMs === undefined || timeoutMs < 1000) throw new CliError(`--timeout must be a duration such as 90s or 5m, not "${values.timeout ?? ''}"`);
    const resyncScale = Number(values['resync-scale'] ?? 1);
    if (!Number.isFinite(resyncScale) || resyncScale < 0 || resyncScale > 10) throw new CliError('--resync-scale must be a number from 0 to 10');
    const settings = {
      count: positive(values.count, '--count', 10),
      concurrency: positive(values.concurrency, '--concurrency', 5),
      operations: operationsOf(values.operations),
      template: values.template ?? 'ubuntu-22-template',
      network: values.network ?? 'lan',
      timeoutMs,
      resyncScale,
    };
    const target = targetFor(values.provider ?? 'simulator', env);
    // Ctrl-C (or SIGTERM): no new operation starts; those in flight end, then everything the run made is deleted.
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      io.err('virtrigaud-loadgen: stopping — finishing the operations in flight, then deleting what the run made\n');
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    let results: OperationResult[];
    try {
      results = await runLoadgen(target, settings, io, () => stopping);
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
    if (stopping) {
      io.out(format === 'json' ? serialize(resultJson(results), 'json') : resultTable(results));
      return 130;
    }
    io.out(format === 'json' ? serialize(resultJson(results), 'json') : resultTable(results));
    return results.some((result) => result.errors.length > 0) ? EXIT.failed : EXIT.ok;
  }, io);
}

if (isEntryPoint(import.meta.url)) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
