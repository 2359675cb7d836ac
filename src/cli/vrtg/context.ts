// What a command runs with, and the two ways vrtg writes: a new object (`kubectl create -f -`) and
// a JSON merge patch (`kubectl patch --type merge`). Both check the result against the CRD schema
// first, so a bad value is named by its field here instead of by the apiserver's longer answer.
import { CliError, outputFormat, serialize, type Io, type OutputFormat } from '../common.js';
import type { FlagSpec, ParsedArgs } from './args.js';
import type { Env, Kubectl } from './kubectl.js';
import { applyMergePatch, checkObject, checkPatched, type KindInfo } from './objects.js';

export interface Clock {
  now(): Date;
  sleep(ms: number): Promise<void>;
}

export const realClock: Clock = {
  now: () => new Date(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

export interface Context {
  io: Io;
  env: Env;
  kubectl: Kubectl;
  clock: Clock;
}

export const OUTPUT_FLAG: FlagSpec = { name: 'output', short: 'o', kind: 'string', value: 'FORMAT', help: 'table (the default), json or yaml' };
export const WRITE_FLAGS: readonly FlagSpec[] = [
  { name: 'output', short: 'o', kind: 'string', value: 'FORMAT', help: 'json or yaml: print the object as the cluster answered (default: one line)' },
  {
    name: 'dry-run',
    kind: 'string',
    bare: 'client',
    value: 'client|server',
    help: 'client (or no value): check and print what would be sent, send nothing; server: let the apiserver check it too',
  },
];

export type DryRun = 'none' | 'client' | 'server';

export interface WriteOptions {
  output: OutputFormat;
  dryRun: DryRun;
}

export function writeOptions(args: ParsedArgs): WriteOptions {
  const dryRun = args.strings.get('dry-run');
  if (dryRun !== undefined && dryRun !== 'client' && dryRun !== 'server' && dryRun !== 'none') {
    throw new CliError(`--dry-run must be client, server or none, not "${dryRun}"`);
  }
  return { output: outputFormat(args.strings.get('output')), dryRun: dryRun ?? 'none' };
}

function print(ctx: Context, options: WriteOptions, object: unknown, line: string): void {
  if (options.output === 'table') ctx.io.out(`${line}${options.dryRun === 'server' ? ' (server dry run)' : ''}\n`);
  else ctx.io.out(serialize(object, options.output));
}

/** Creates `object` (a kind of ours) with `kubectl create -f -`; `line` is what people are told. */
export async function createObject(ctx: Context, kind: KindInfo, object: unknown, options: WriteOptions, line: string): Promise<number> {
  checkObject(kind, object);
  if (options.dryRun === 'client') {
    ctx.io.out(serialize(object, options.output === 'json' ? 'json' : 'yaml'));
    return 0;
  }
  const dry = options.dryRun === 'server' ? ['--dry-run=server'] : [];
  const created = await ctx.kubectl.json(['create', '-f', '-', ...dry], JSON.stringify(object));
  print(ctx, options, created, line);
  return 0;
}

/** Reads `kind`/`name` (`kubectl get -o json`). */
export function getObject(ctx: Context, kind: KindInfo, name: string): Promise<unknown> {
  return ctx.kubectl.json(['get', kind.resource, name]);
}

/**
 * Patches `kind`/`name` with the merge patch `build` makes of the current object, once the object
 * it makes passes the schema; `describe` says what was done, in one line.
 */
export async function patchObject(
  ctx: Context,
  kind: KindInfo,
  name: string,
  options: WriteOptions,
  build: (current: unknown) => unknown,
  describe: (current: unknown) => string,
): Promise<number> {
  const current = await getObject(ctx, kind, name);
  const patch = build(current);
  checkPatched(kind, current, applyMergePatch(current, patch));
  if (options.dryRun === 'client') {
    ctx.io.out(serialize(patch, options.output === 'json' ? 'json' : 'yaml'));
    return 0;
  }
  const dry = options.dryRun === 'server' ? ['--dry-run=server'] : [];
  const patched = await ctx.kubectl.json(['patch', kind.resource, name, '--type', 'merge', '-p', JSON.stringify(patch), ...dry]);
  print(ctx, options, patched, describe(current));
  return 0;
}

/** A request token no earlier request of the object carries: the time, made unique if it must be. */
export function requestToken(now: Date, previous: string | undefined): string {
  const token = now.toISOString();
  return token === previous ? `${token}-1` : token;
}

export interface Command {
  /** The words that select it: `list`, `snapshot create`. */
  name: string;
  /** What follows the name in the usage line: `NAME --vm=VM [flags]`. */
  usage: string;
  summary: string;
  /** Paragraphs for --help. */
  description: string;
  examples: readonly string[];
  flags: readonly FlagSpec[];
  run(args: ParsedArgs, ctx: Context): Promise<number>;
}
