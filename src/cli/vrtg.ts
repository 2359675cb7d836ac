#!/usr/bin/env node
// vrtg: everyday VirtualMachine operations for people, as `vrtg …` and as the kubectl plugin
// `kubectl vrtg …` (installed as kubectl-vrtg on the PATH). Every cluster call is the user's own
// kubectl; every object and patch is checked against the CRD schemas before it is sent.
import { basename } from 'node:path';
import { CliError, EXIT, isEntryPoint, processIo, runMain, type Io } from './common.js';
import { GLOBAL_FLAGS, flagHelp, parseArgs, splitCommand } from './vrtg/args.js';
import { cloneCommand } from './vrtg/commands/clone.js';
import { consoleCommand } from './vrtg/commands/console.js';
import { describeCommand } from './vrtg/commands/describe.js';
import { listCommand } from './vrtg/commands/list.js';
import { powerCommand, restartCommand } from './vrtg/commands/power.js';
import { scaleCommand } from './vrtg/commands/scale.js';
import { snapshotCreateCommand, snapshotDeleteCommand, snapshotListCommand, snapshotRevertCommand } from './vrtg/commands/snapshot.js';
import { waitCommand } from './vrtg/commands/wait.js';
import { realClock, type Clock, type Command, type Context } from './vrtg/context.js';
import { Kubectl, clusterArgs, type Env } from './vrtg/kubectl.js';

export const COMMANDS: readonly Command[] = [
  listCommand,
  describeCommand,
  powerCommand,
  restartCommand,
  snapshotCreateCommand,
  snapshotListCommand,
  snapshotRevertCommand,
  snapshotDeleteCommand,
  cloneCommand,
  consoleCommand,
  scaleCommand,
  waitCommand,
];

const GROUP_HEADINGS: Readonly<Record<string, string>> = { snapshot: 'VMSnapshots: take them, list them, revert a VM to one, delete them.' };

/** Commands of two words (`snapshot create`) are grouped under their first. */
const GROUPS = new Set(COMMANDS.filter((c) => c.name.includes(' ')).map((c) => c.name.split(' ')[0] as string));

export interface MainOptions {
  clock?: Clock;
  /** How the user ran it, for help: `vrtg` or `kubectl vrtg`. */
  invokedAs?: string;
}

/** A command as the overview shows it: its words and required arguments (`snapshot create NAME --vm=VM`). */
function synopsis(command: Command): string {
  const words = command.usage.split(' ');
  const optional = words.findIndex((word) => word.startsWith('[-'));
  return [command.name, ...(optional === -1 ? words : words.slice(0, optional))].join(' ');
}

/** `text` wrapped at 100 columns. */
function wrap(text: string, width = 100): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  return [...lines, line].join('\n');
}

function overview(invokedAs: string, group?: string): string {
  const commands = group === undefined ? COMMANDS : COMMANDS.filter((c) => c.name.startsWith(`${group} `));
  const left = commands.map((c) => `  ${synopsis(c)}`);
  const width = Math.max(...left.map((l) => l.length));
  const prefix = group === undefined ? invokedAs : `${invokedAs} ${group}`;
  return [
    group === undefined ? 'Everyday VirtRigaud VirtualMachine operations through kubectl.' : (GROUP_HEADINGS[group] ?? group),
    '',
    `Usage: ${prefix} ${group === undefined ? 'COMMAND' : 'SUBCOMMAND'} [ARGS] [flags]`,
    '',
    'Commands:',
    ...commands.map((c, i) => `${(left[i] as string).padEnd(width)}   ${c.summary}`),
    '',
    'Global flags (passed on to kubectl; KUBECONFIG and the current context apply as usual):',
    flagHelp(GLOBAL_FLAGS),
    '',
    `Run '${prefix} ${group === undefined ? 'COMMAND' : 'SUBCOMMAND'} --help' for its arguments and flags.`,
    '',
  ].join('\n');
}

function commandHelp(invokedAs: string, command: Command): string {
  const examples = command.examples.map((e) => `  ${e.replace(/^vrtg\b/, invokedAs)}`);
  return [
    `Usage: ${invokedAs} ${command.name} ${command.usage}`,
    '',
    command.summary.charAt(0).toUpperCase() + command.summary.slice(1),
    '',
    wrap(command.description),
    '',
    ...(command.flags.length > 0 ? ['Flags:', flagHelp(command.flags), ''] : []),
    'Global flags:',
    flagHelp(GLOBAL_FLAGS),
    '',
    ...(examples.length > 0 ? ['Examples:', ...examples, ''] : []),
  ].join('\n');
}

/** The command `words` select and the words left for it, or the group (none: the whole tool) whose overview is wanted. */
function select(words: readonly string[]): { command: Command; rest: string[] } | { group: string | undefined } {
  const [first, second] = words;
  if (first === undefined || first === 'help') return { group: undefined };
  if (GROUPS.has(first)) {
    const command = COMMANDS.find((c) => c.name === `${first} ${second ?? ''}`);
    if (command !== undefined) return { command, rest: words.slice(2) };
    if (second === undefined || second.startsWith('-')) return { group: first };
    throw new CliError(`unknown command "${first} ${second}" (see vrtg ${first} --help)`);
  }
  const command = COMMANDS.find((c) => c.name === first);
  if (command === undefined) throw new CliError(`unknown command "${first}" (see vrtg --help)`);
  return { command, rest: words.slice(1) };
}

/** Runs vrtg with `argv` (no program name); the result is the exit code (0 ok, 1 failed, 2 usage). */
export function main(argv: readonly string[], env: Env, io: Io = processIo, options: MainOptions = {}): Promise<number> {
  const invokedAs = options.invokedAs ?? 'vrtg';
  return runMain(
    'vrtg',
    async () => {
      const { words, rest: leading } = splitCommand(argv);
      const helpAsked = argv.includes('--help') || argv.includes('-h');
      const selected = select(words[0] === 'help' ? words.slice(1) : words);
      if ('group' in selected) {
        const text = overview(invokedAs, selected.group);
        if (helpAsked || words[0] === 'help') {
          io.out(text);
          return EXIT.ok;
        }
        io.err(text);
        return EXIT.usage;
      }
      const { command } = selected;
      if (words[0] === 'help') {
        io.out(commandHelp(invokedAs, command));
        return EXIT.ok;
      }
      const args = parseArgs([...leading, ...selected.rest], command.flags, `vrtg ${command.name}`);
      if (args.booleans.get('help') === true) {
        io.out(commandHelp(invokedAs, command));
        return EXIT.ok;
      }
      const cluster = clusterArgs({
        namespace: args.strings.get('namespace'),
        context: args.strings.get('context'),
        kubeconfig: args.strings.get('kubeconfig'),
      });
      const ctx: Context = { io, env, kubectl: new Kubectl(env, cluster, (text) => io.err(text)), clock: options.clock ?? realClock };
      return command.run(args, ctx);
    },
    io,
  );
}

if (isEntryPoint(import.meta.url)) {
  // kubectl runs plugins as kubectl-<name>; help then names the command as people typed it.
  const invokedAs = basename(process.argv[1] ?? '').startsWith('kubectl-') ? 'kubectl vrtg' : 'vrtg';
  process.exitCode = await main(process.argv.slice(2), process.env, processIo, { invokedAs });
}
