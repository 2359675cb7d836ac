// `vrtg console VM`: the console URL the controller reports (status.consoleURL), printed, or
// opened with the desktop's opener.
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { CliError, EXIT } from '../../common.js';
import { positionals, type ParsedArgs } from '../args.js';
import { getObject, type Command, type Context } from '../context.js';
import type { Env } from '../kubectl.js';
import { VM, ref, text } from '../objects.js';

/** The first of `names` that is an executable on the PATH of `env`. */
export function findOnPath(env: Env, names: readonly string[]): string | undefined {
  const dirs = (env['PATH'] ?? '').split(delimiter).filter((dir) => dir !== '');
  for (const name of names) {
    for (const dir of dirs) {
      const candidate = join(dir, name);
      try {
        accessSync(candidate, constants.X_OK);
        return candidate;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}

function open(opener: string, url: string, env: Env): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(opener, [url], { env: { ...env }, stdio: 'ignore', shell: false });
    child.on('error', () => resolve(null));
    child.on('close', (code) => resolve(code));
  });
}

export const consoleCommand: Command = {
  name: 'console',
  usage: 'VM [--open]',
  summary: 'print the VM\'s console URL (status.consoleURL), or open it',
  description:
    'Prints the console URL the controller reports for the VirtualMachine. --open also opens it with xdg-open (open on ' +
    'macOS) when that is on the PATH.',
  examples: ['vrtg console web', 'vrtg console web --open'],
  flags: [{ name: 'open', kind: 'boolean', help: 'open the URL in the browser' }],
  async run(args: ParsedArgs, ctx: Context): Promise<number> {
    const [name] = positionals(args, ['VM'], 'vrtg console') as [string];
    const vm = await getObject(ctx, VM, name);
    const url = text(vm, 'status', 'consoleURL');
    if (url === undefined || url === '') throw new CliError(`${ref(VM, name)} has no console URL (status.consoleURL) yet`, EXIT.failed);
    ctx.io.out(`${url}\n`);
    if (args.booleans.get('open') !== true) return 0;
    const opener = findOnPath(ctx.env, process.platform === 'darwin' ? ['open'] : ['xdg-open']);
    if (opener === undefined) {
      ctx.io.err(`vrtg: no ${process.platform === 'darwin' ? 'open' : 'xdg-open'} on the PATH: open the URL yourself\n`);
      return 0;
    }
    const code = await open(opener, url, ctx.env);
    if (code === 0) return 0;
    ctx.io.err(`vrtg: ${opener} could not open the URL (exit ${code ?? 'error'})\n`);
    return EXIT.failed;
  },
};
