// Flags as kubectl (pflag) reads them: `--name=value`, `--name value` and `-n value` for string
// flags; `--name`, `--name=true|false` for booleans (a separate `false` is an argument, as in
// pflag); `--` ends the flags. Anything not declared is refused, so a typo never goes unnoticed.
import { CliError } from '../common.js';

export interface FlagSpec {
  name: string;
  short?: string;
  kind: 'string' | 'boolean';
  /** A string flag given without `=value` takes this value and no argument (pflag's NoOptDefVal). */
  bare?: string;
  /** For --help: the value's placeholder (string flags) and what the flag does. */
  value?: string;
  help: string;
}

export interface ParsedArgs {
  positionals: string[];
  strings: ReadonlyMap<string, string>;
  booleans: ReadonlyMap<string, boolean>;
}

/** The flags every command takes: how kubectl reaches the cluster, and help. */
export const GLOBAL_FLAGS: readonly FlagSpec[] = [
  { name: 'namespace', short: 'n', kind: 'string', value: 'NS', help: 'the namespace (default: the context\'s)' },
  { name: 'context', kind: 'string', value: 'NAME', help: 'the kubeconfig context to use' },
  { name: 'kubeconfig', kind: 'string', value: 'FILE', help: 'the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)' },
  { name: 'help', short: 'h', kind: 'boolean', help: 'show this help' },
];

function parseBoolean(flag: string, value: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new CliError(`--${flag} must be true or false, not "${value}"`);
}

/** Parses `argv` against `flags` (the command's and the global ones); `command` names the command in errors. */
export function parseArgs(argv: readonly string[], flags: readonly FlagSpec[], command: string): ParsedArgs {
  const all = [...flags, ...GLOBAL_FLAGS];
  const positionals: string[] = [];
  const strings = new Map<string, string>();
  const booleans = new Map<string, boolean>();
  const unknown = (arg: string): never => {
    throw new CliError(`unknown flag ${arg} for "${command}" (see ${command} --help)`);
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    let spec: FlagSpec | undefined;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq === -1 ? undefined : arg.slice(eq + 1);
      spec = all.find((flag) => flag.name === name);
      if (spec === undefined) unknown(eq === -1 ? arg : arg.slice(0, eq));
    } else {
      // -n NS, -n=NS, -nNS; booleans may be grouped only alone (-A, -h).
      spec = all.find((flag) => flag.short === arg[1]);
      if (spec === undefined) unknown(arg.slice(0, 2));
      const rest = arg.slice(2);
      if (rest !== '') inline = rest.startsWith('=') ? rest.slice(1) : rest;
    }
    const flag = spec as FlagSpec;
    if (flag.kind === 'boolean') {
      booleans.set(flag.name, inline === undefined ? true : parseBoolean(flag.name, inline));
      continue;
    }
    if (inline === undefined && flag.bare !== undefined) inline = flag.bare;
    if (inline === undefined) {
      const next = argv[i + 1];
      if (next === undefined) throw new CliError(`--${flag.name} needs a value (see ${command} --help)`);
      inline = next;
      i++;
    }
    strings.set(flag.name, inline);
  }
  return { positionals, strings, booleans };
}

/** Where the command word starts: global flags may come before it (`vrtg -n prod list`). */
export function splitCommand(argv: readonly string[]): { words: string[]; rest: string[] } {
  const leading: string[] = [];
  let i = 0;
  while (i < argv.length) {
    const arg = argv[i] as string;
    if (!arg.startsWith('-') || arg === '-' || arg === '--') break;
    leading.push(arg);
    const takesValue = GLOBAL_FLAGS.some(
      (flag) => flag.kind === 'string' && (arg === `--${flag.name}` || (flag.short !== undefined && arg === `-${flag.short}`)),
    );
    if (takesValue && i + 1 < argv.length) leading.push(argv[i + 1] as string);
    i += takesValue ? 2 : 1;
  }
  const words = argv.slice(i);
  return { words, rest: leading };
}

/** Exactly `count` positional arguments named by `names`, or a usage error naming what is missing or extra. */
export function positionals(args: ParsedArgs, names: readonly string[], command: string): string[] {
  const { positionals: given } = args;
  if (given.length < names.length) throw new CliError(`${command}: missing ${names.slice(given.length).join(' and ')} (see ${command} --help)`);
  if (given.length > names.length) throw new CliError(`${command}: unexpected argument "${given[names.length] as string}" (see ${command} --help)`);
  return given;
}

/** Flag lines for --help, aligned. */
export function flagHelp(flags: readonly FlagSpec[]): string {
  const left = flags.map((flag) => {
    const short = flag.short === undefined ? '    ' : `-${flag.short}, `;
    const value = flag.kind === 'boolean' ? '' : flag.bare !== undefined ? `[=${flag.value ?? 'VALUE'}]` : `=${flag.value ?? 'VALUE'}`;
    return `  ${short}--${flag.name}${value}`;
  });
  const width = Math.max(...left.map((line) => line.length));
  return flags.map((flag, i) => `${(left[i] as string).padEnd(width)}   ${flag.help}`).join('\n');
}
