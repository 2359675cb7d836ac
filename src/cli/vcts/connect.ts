// The driver a run checks: built from the environment exactly as a provider runtime builds it, or
// a running runtime reached over HTTP with its token. Secrets are read, never printed.
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CreateSpec, Identity } from '../../contracts/driver.js';
import { basicSpec } from '../../conformance/index.js';
import type { Env } from '../../hypervisors/common/env.js';
import { RemoteDriver } from '../../hypervisors/remote/index.js';
import { runtimeDriverFromEnv, type ClosableDriver } from '../../hypervisors/runtime-drivers.js';
import { SimulatedHypervisor, SimulatorDriver } from '../../hypervisors/simulator/index.js';
import { CliError, EXIT } from '../common.js';
import type { RunOptions } from './options.js';

export interface Connected {
  driver: ClosableDriver;
  /** What is checked, for people: never a credential, never a URL's user part. */
  where: string;
  /** The migration directory the driver writes to, readable here; undefined: the migration cases are skipped. */
  migrationDir?: string;
  close(): Promise<void>;
}

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}

async function readToken(file: string): Promise<string> {
  let token: string;
  try {
    token = (await readFile(file, 'utf8')).trim();
  } catch (error) {
    throw new CliError(`--token-file ${file} cannot be read: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (token === '') throw new CliError(`--token-file ${file} is empty`);
  return token;
}

function oneLine(error: unknown): string {
  return ((error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '').slice(0, 300);
}

/**
 * Connects to what `options.target` names. `simulator` lets tests hand in the simulated
 * hypervisor (fast tasks, foreign VMs they add); otherwise a fresh one, as `PROVIDER_TYPE=simulator`.
 */
export async function connect(options: RunOptions, env: Env, log: (line: string) => void, simulator?: SimulatedHypervisor): Promise<Connected> {
  const target = options.target;
  if (target.kind === 'runtime') {
    const token = await readToken(target.tokenFile);
    let driver: RemoteDriver;
    try {
      driver = await RemoteDriver.connect(target.url, token);
    } catch (error) {
      throw new CliError(`cannot use the provider runtime: ${oneLine(error)}`, EXIT.failed);
    }
    const url = new URL(target.url);
    return {
      driver,
      where: `provider runtime ${url.origin}${url.pathname.replace(/\/+$/, '')}`,
      ...(options.migrationDir === undefined ? {} : { migrationDir: options.migrationDir }),
      close: () => driver.close(),
    };
  }
  if (target.provider === 'simulator') {
    let scratchDir: string | undefined;
    let migrationDir = options.migrationDir;
    if (simulator === undefined && migrationDir === undefined) migrationDir = scratchDir = await mkdtemp(join(tmpdir(), 'vcts-migrations-'));
    const hypervisor = simulator ?? new SimulatedHypervisor(migrationDir === undefined ? {} : { migrationDir });
    return {
      driver: new SimulatorDriver(hypervisor),
      where: simulator === undefined ? 'a simulator in this process' : 'the simulator given',
      ...(migrationDir === undefined ? {} : { migrationDir }),
      close: async () => {
        if (scratchDir !== undefined) await rm(scratchDir, { recursive: true, force: true });
      },
    };
  }
  // The driver reads MIGRATION_DIR itself: --migration-dir must reach it, or export and check would look in different places.
  const driverEnv: Env = options.migrationDir === undefined ? env : { ...env, MIGRATION_DIR: options.migrationDir };
  let driver: ClosableDriver;
  try {
    driver = runtimeDriverFromEnv(target.provider, driverEnv, { log });
  } catch (error) {
    // Config errors name variables, never secret values.
    throw new CliError(oneLine(error));
  }
  const migrationDir = driverEnv['MIGRATION_DIR'];
  return {
    driver,
    where: `${target.provider} (${target.provider === 'proxmox' ? 'PVE' : target.provider === 'vsphere' ? 'VSPHERE' : 'LIBVIRT'}_* environment)`,
    ...(migrationDir !== undefined && migrationDir !== '' && (await isDirectory(migrationDir)) ? { migrationDir } : {}),
    close: async () => await driver.close?.(),
  };
}

/** What every VM of the run is made from: --template, --network, --datastore, --cpus, --memory, --root-disk, --linked. */
export function runSpec(options: RunOptions, driverType: string): (name: string, owner: Identity) => CreateSpec {
  const template = options.template ?? (driverType === 'simulator' ? 'ubuntu-22-template' : undefined);
  if (template === undefined) throw new CliError(`--template is required for the ${driverType} driver: the template (or base image) the run's VMs are cloned from`);
  return (name, owner) =>
    basicSpec(name, owner, {
      cpus: options.cpus,
      memoryBytes: options.memoryBytes,
      image: { kind: 'template', ref: template, fullClone: !options.linked },
      disks: options.rootDiskBytes === undefined ? [] : [{ name: 'root', sizeBytes: options.rootDiskBytes, root: true }],
      storage: { provisioning: 'thin', ...(options.datastore === undefined ? {} : { datastore: options.datastore }) },
      nics: [{ name: 'lan', ...(options.network === undefined ? {} : { network: options.network }) }],
    });
}
