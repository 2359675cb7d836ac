#!/usr/bin/env node
// vrtg-provider: writes the skeleton of a new hypervisor driver, the first step of adding one.
// `vrtg-provider new acme` → src/hypervisors/acme/{index,driver,config}.ts and README.md: a
// Driver that compiles, claims no capability and answers every call Unsupported.
import { isAbsolute, relative } from 'node:path';
import { parseArgs } from 'node:util';
import { CliError, EXIT, isEntryPoint, processIo, runMain, type Io } from './common.js';
import { MAX_NAME_LENGTH, driverNames, nameProblem } from './scaffold/names.js';
import { CONFORMANCE_SUITE } from './scaffold/readme-template.js';
import { checkoutRoot, writeSkeleton, type Written } from './scaffold/write.js';

const TOOL = 'vrtg-provider';

export const HELP = `usage: ${TOOL} new <name> [--root DIR] [--force]

Writes the skeleton of a hypervisor driver to src/hypervisors/<name>/: index.ts, driver.ts,
config.ts and README.md. It compiles, reports every capability false and answers every Driver
call with UnsupportedError, so the conformance suite fails on it honestly until the driver is
written. Its README.md says how to fill it in.

  <name>        the Provider type: a lowercase DNS label of at most ${MAX_NAME_LENGTH} characters, starting
                with a letter
  --root DIR    the checkout to write into (default: the nearest one at or above the current
                directory)
  --force       replace the skeleton's files in an existing src/hypervisors/<name>/ (its other files
                stay); the project's own drivers are never replaced
  -h, --help    this text

Exit codes: 0 written; 1 the files could not be written; 2 bad usage, or a bad or taken name.
`;

function nextSteps(name: string, written: Written[], root: string, cwd: string): string {
  const n = driverNames(name);
  const below = relative(cwd, root);
  const where = below === '' ? '.' : below.startsWith('..') || isAbsolute(below) ? root : below;
  const lines = [
    ...written.map((file) => `${file.overwritten ? 'replaced' : 'wrote'} ${file.path}`),
    '',
    `Next steps (in ${where}):`,
    `  1. Register the type: add '${name}' to PROVIDER_TYPES and SERVED_PROVIDER_TYPES in`,
    `     src/contracts/crds/provider.ts, fill the tables \`npm run check\` then names, and run`,
    `     \`npm run manifests\`; add ${n.key}: { client: '${n.pascal}', fromEnv: (env) => ${n.camel}DriverFromEnv(env) }`,
    `     to RUNTIME_DRIVERS in src/main.ts.`,
    `  2. Write a conformance target, against a fake or a real peer, for`,
    `     ${CONFORMANCE_SUITE}.`,
    `     It fails now, each call answering Unsupported: that is the to-do list.`,
    `  3. Fill the driver in, verb by verb: src/hypervisors/${name}/README.md says how.`,
  ];
  return `${lines.join('\n')}\n`;
}

async function run(argv: string[], io: Io, cwd: string): Promise<number> {
  let parsed: ReturnType<typeof parseFlags>;
  try {
    parsed = parseFlags(argv);
  } catch (error) {
    throw new CliError(`${error instanceof Error ? error.message : String(error)} (see --help)`);
  }
  const { values, positionals } = parsed;
  if (values.help === true || positionals[0] === 'help') {
    io.out(HELP);
    return EXIT.ok;
  }
  const [command, name, ...extra] = positionals;
  if (command === undefined) throw new CliError('a command is required: new <name> (see --help)');
  if (command !== 'new') throw new CliError(`unknown command "${command}" (see --help)`);
  if (name === undefined) throw new CliError('new needs a driver name: new <name> (see --help)');
  if (extra.length > 0) throw new CliError(`new takes one name, not also "${extra.join(' ')}" (see --help)`);
  const problem = nameProblem(name);
  if (problem !== undefined) throw new CliError(problem);
  const root = checkoutRoot(values.root, cwd);
  const written = await writeSkeleton(root, name, values.force === true);
  io.out(nextSteps(name, written, root, cwd));
  return EXIT.ok;
}

function parseFlags(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      root: { type: 'string' },
      force: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}

/**
 * The tool: its exit code. `_env` is the common signature of the package's tools; this one reads
 * no variable. `cwd` is where the nearest checkout is looked for when --root is not given.
 */
export function main(argv: string[], _env: NodeJS.ProcessEnv = process.env, io: Io = processIo, cwd: string = process.cwd()): Promise<number> {
  return runMain(TOOL, () => run(argv, io, cwd), io);
}

if (isEntryPoint(import.meta.url)) process.exitCode = await main(process.argv.slice(2));
