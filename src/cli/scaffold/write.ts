// Writing a new driver's skeleton into a checkout: which files, where, and when not to.
import { existsSync } from 'node:fs';
import { lstat, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { CliError, EXIT } from '../common.js';
import { driverTemplate } from './driver-template.js';
import { configTemplate, indexTemplate } from './module-templates.js';
import { driverNames, nameProblem, type DriverNames } from './names.js';
import { readmeTemplate } from './readme-template.js';

/** What marks a directory as a checkout of this project: the contract every driver implements. */
const CONTRACT = join('src', 'contracts', 'driver.ts');

/** The skeleton's files, relative to the checkout, with their text. */
export function skeletonFiles(n: DriverNames): { path: string; text: string }[] {
  const dir = join('src', 'hypervisors', n.name);
  return [
    { path: join(dir, 'index.ts'), text: indexTemplate(n) },
    { path: join(dir, 'driver.ts'), text: driverTemplate(n) },
    { path: join(dir, 'config.ts'), text: configTemplate(n) },
    { path: join(dir, 'README.md'), text: readmeTemplate(n) },
  ];
}

/** `root` when given (it must be a checkout); else the nearest checkout at or above `cwd`. */
export function checkoutRoot(root: string | undefined, cwd: string): string {
  if (root !== undefined) {
    const dir = resolve(cwd, root);
    if (!existsSync(join(dir, CONTRACT))) throw new CliError(`--root ${root} is not a VirtRigaud-TS checkout (it has no ${CONTRACT})`);
    return dir;
  }
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    if (existsSync(join(dir, CONTRACT))) return dir;
    if (dirname(dir) === dir) throw new CliError(`no VirtRigaud-TS checkout at or above ${cwd} (none has ${CONTRACT}); give one with --root`);
  }
}

export interface Written {
  path: string;
  overwritten: boolean;
}

/**
 * Writes the skeleton of driver `name` under `root`/src/hypervisors/. Refuses (exit 2) a bad or
 * reserved name, and a folder that exists unless `force`; with `force` only the skeleton's own
 * files are replaced, anything else in the folder stays.
 */
export async function writeSkeleton(root: string, name: string, force: boolean): Promise<Written[]> {
  const problem = nameProblem(name);
  if (problem !== undefined) throw new CliError(problem);
  const n = driverNames(name);
  const dir = join(root, 'src', 'hypervisors', name);
  const existing = await lstat(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw new CliError(`cannot read ${dir}: ${error.code ?? error.message}`, EXIT.failed);
  });
  if (existing !== undefined && !existing.isDirectory()) throw new CliError(`src/hypervisors/${name} exists and is not a directory`);
  if (existing !== undefined && !force) {
    throw new CliError(`src/hypervisors/${name} exists; --force replaces its index.ts, driver.ts, config.ts and README.md`);
  }
  const written: Written[] = [];
  try {
    await mkdir(dir, { recursive: true });
    for (const file of skeletonFiles(n)) {
      const path = join(root, file.path);
      const overwritten = existsSync(path);
      await writeFile(path, file.text);
      written.push({ path: file.path, overwritten });
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CliError(`cannot write the skeleton into ${dir}: ${code ?? String(error)}`, EXIT.failed);
  }
  return written;
}
