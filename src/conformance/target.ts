// What a conformance case runs against and with: the target (a driver and how to wait on its
// hypervisor), the context a runner gives each case (owners, names, checks), and the steps cases
// share (create or delete through every step a hypervisor needs, follow a task, power).
import { NotFoundError, type Capability, type CreateSpec, type Driver, type Identity, type ObservedVM, type VMRef } from '../contracts/driver.js';
import { GiB } from '../contracts/quantity.js';
import type { Checks } from './checks.js';

/** A small VM from the `ubuntu-22-template` template on a `lan` NIC: every test hypervisor has both. */
export function basicSpec(name: string, owner: Identity, overrides: Partial<CreateSpec> = {}): CreateSpec {
  return {
    name,
    owner,
    cpus: 2,
    memoryBytes: 2 * GiB,
    features: { tpm: false, secureBoot: false, nestedVirtualization: false, cpuHotAdd: false, memoryHotAdd: false },
    image: { kind: 'template', ref: 'ubuntu-22-template', fullClone: true },
    disks: [],
    storage: { provisioning: 'thin' },
    nics: [{ name: 'lan' }],
    placement: {},
    ...overrides,
  };
}

export interface ConformanceTarget {
  readonly driver: Driver;
  /** A create spec this hypervisor can fulfil: an existing template, network, storage. */
  spec(name: string, owner: Identity): CreateSpec;
  /** Lets (fake or real) time pass until `done` holds; fails with `what` when it never does. */
  waitUntil(done: () => Promise<boolean>, what: string): Promise<void>;
  /** A VM the driver did not create and must never change; without it the foreign-VM case is skipped. */
  addForeignVM?(name: string): Promise<string>;
  /** Where the driver writes exported disks and reads imported ones (its MIGRATION_DIR), readable here. */
  migrationDir?: string;
  /** A disk image the hypervisor can download, for the image-import case (imageImport). */
  imageURL?: { url: string; checksum?: string };
  /** An installer ISO the hypervisor has (`ref`) or can download (`url`), for the iso-install case (isoInstall). */
  iso?: { ref?: string; url?: string; checksum?: string };
}

/** What a runner gives each case. Every identity and name a case uses comes from here. */
export interface CaseContext {
  readonly target: ConformanceTarget;
  readonly check: Checks;
  /** The owner identity for `key` (the same key, the same identity, within one case). */
  owner(key: string): Identity;
  /** The VM name for `key`. */
  vmName(key: string): string;
  /** The stem of the files and the migration volume a case writes below the migration directory. */
  readonly scratch: string;
  /** A VM ID no VM has: describe must answer NotFound. */
  readonly unknownId: string;
  /** A VM ID no VM has, for the explicitId case to ask for. */
  readonly requestedId: number;
  /** Called before an image is imported for `owner`, so a runner can remove it should the case stop. */
  recordImport(owner: Identity, name: string): void;
}

/** `core`: every driver must show it. Otherwise the capability flag the case verifies. */
export type CaseCapability = Capability | 'core';

export interface ConformanceCase {
  /** A short stable name (`snapshot-revert`), what `--cases` globs match. */
  readonly id: string;
  /** The behaviour, as a sentence. */
  readonly title: string;
  readonly capability: CaseCapability;
  /**
   * Asks the driver to change something the run did not create (a foreign VM): a broken driver
   * would damage it. Runs only when asked for.
   */
  readonly destructive: boolean;
  run(context: CaseContext): Promise<void>;
}

type Waiting = Pick<ConformanceTarget, 'driver' | 'waitUntil'>;

/** Follows a task to success; a failed task fails the step. */
export async function taskDone(target: Waiting, task: string | undefined, what: string): Promise<void> {
  if (!task) return;
  await target.waitUntil(async () => {
    const status = await target.driver.taskStatus(task);
    if (status.state === 'failed') throw new Error(`${what}: task failed: ${status.error ?? ''}`);
    return status.state === 'succeeded';
  }, what);
}

/** Creates a VM through every step its hypervisor needs (create, then continue while incomplete). */
export async function createFully(target: Waiting, spec: CreateSpec): Promise<ObservedVM> {
  for (let step = 0; step < 5; step++) {
    const { id, task } = await target.driver.create(spec);
    await taskDone(target, task, `create step ${step}`);
    // id '' until the hypervisor has a VM (a vSphere clone, a PVE download before its VM): found by identity.
    const vm = id === '' ? await target.driver.findByIdentity(spec.owner.uid) : await target.driver.describe(id);
    if (vm !== undefined && !vm.incomplete && !vm.lock) return vm;
  }
  throw new Error('create did not complete in 5 steps');
}

/** Deletes the VM, waiting out locks and following its tasks, until describe says NotFound. */
export async function deleteFully(target: Waiting, ref: VMRef): Promise<void> {
  for (let step = 0; step < 5; step++) {
    let vm: ObservedVM;
    try {
      vm = await target.driver.describe(ref.id);
    } catch (error) {
      if (error instanceof NotFoundError) return;
      throw error;
    }
    if (vm.lock) {
      await target.waitUntil(async () => !(await target.driver.describe(ref.id).catch(() => undefined))?.lock, 'lock released');
      continue;
    }
    const { task } = await target.driver.delete(ref);
    await taskDone(target, task, `delete step ${step}`);
  }
  throw new Error('delete did not finish in 5 steps');
}

export async function powerTo(target: Waiting, ref: VMRef, operation: 'on' | 'off', state: 'On' | 'Off'): Promise<void> {
  const { task } = await target.driver.power(ref, operation);
  await taskDone(target, task, `power ${operation}`);
  await target.waitUntil(async () => (await target.driver.describe(ref.id)).powerState === state, `power ${state}`);
}
