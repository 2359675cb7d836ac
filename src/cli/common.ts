// What every command-line tool of the package shares: exit codes, one-line errors, output as a
// table, JSON or YAML, and progress lines on stderr (stdout stays the result, for pipes).
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { stringify } from 'yaml';

/** 0 success; 1 the work found a failure (a failed check, a failed operation); 2 bad usage or input. */
export const EXIT = { ok: 0, failed: 1, usage: 2 } as const;

/** A failure with the exit code it ends the program with and one line for people. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.usage,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export type OutputFormat = 'table' | 'json' | 'yaml';

export function outputFormat(value: string | undefined, fallback: OutputFormat = 'table'): OutputFormat {
  if (value === undefined) return fallback;
  if (value === 'table' || value === 'json' || value === 'yaml') return value;
  throw new CliError(`-o must be table, json or yaml, not "${value}"`);
}

/** Rows as an aligned text table, headers first; cells are shown as given (undefined as <none>). */
export function table(headers: readonly string[], rows: readonly (readonly (string | number | boolean | undefined)[])[]): string {
  const cells = [headers.map(String), ...rows.map((row) => headers.map((_, index) => (row[index] === undefined ? '<none>' : String(row[index]))))];
  const widths = headers.map((_, column) => Math.max(...cells.map((row) => (row[column] ?? '').length)));
  return `${cells.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join('   ').trimEnd()).join('\n')}\n`;
}

/** `data` as JSON (two-space indent) or YAML (1.1-safe quoting, as kubectl reads it). */
export function serialize(data: unknown, format: 'json' | 'yaml'): string {
  return format === 'json' ? `${JSON.stringify(data, null, 2)}\n` : stringify(data, { version: '1.1', lineWidth: 0 });
}

export interface Io {
  out(text: string): void;
  err(text: string): void;
}

export const processIo: Io = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

/**
 * Whether the module at `moduleUrl` is the program being run — also through a symlink, as the
 * image's /usr/local/bin/<tool> and npm's bin links are.
 */
export function isEntryPoint(moduleUrl: string, argv1: string | undefined = process.argv[1]): boolean {
  if (argv1 === undefined) return false;
  try {
    return pathToFileURL(realpathSync(argv1)).href === moduleUrl;
  } catch {
    return false;
  }
}

/**
 * Runs a tool's main: its resolved value is the exit code; a CliError is printed as one line
 * (`<tool>: <message>`) with its code; anything else is a bug, printed with its stack, exit 1.
 */
export async function runMain(tool: string, main: () => Promise<number>, io: Io = processIo): Promise<number> {
  try {
    return await main();
  } catch (error) {
    if (error instanceof CliError) {
      io.err(`${tool}: ${error.message}\n`);
      return error.exitCode;
    }
    io.err(`${tool}: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return EXIT.failed;
  }
}
