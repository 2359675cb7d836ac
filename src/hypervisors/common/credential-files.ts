// Credentials that can be rotated without restarting the runtime. The Provider's credentials
// Secret is mounted as files (the kubelet updates them in place when the Secret changes), each
// variable named by `<NAME>_FILE`. The driver is built from their contents; when the hypervisor
// refuses it (Unauthorized) and the files have changed since, a new driver is built from the new
// contents and the call is made once more. The hook server never sees a credential.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import {
  UnauthorizedError,
  type CallOptions,
  type Capabilities,
  type CloneStarted,
  type CloneTarget,
  type CreateSpec,
  type Driver,
  type Inventory,
  type ObservedVM,
  type PowerOperation,
  type ResourceChange,
  type SnapshotInfo,
  type SnapshotRequest,
  type Started,
  type TaskStatus,
  type VMRef,
  type DiskExportRequest,
  type DiskImportRequest,
  type DiskImported,
  type MigrationVolume,
  type Identity,
} from '../../contracts/driver.js';
import type { Env } from './env.js';

const SUFFIX = '_FILE';

/**
 * The environment with each `<NAME>_FILE` read into `<NAME>` (a file that is not there — an
 * optional Secret key the admin did not set — leaves `<NAME>` unset), and a fingerprint of what
 * was read, to tell a rotation.
 */
export function readCredentialFiles(env: Env): { env: Env; fingerprint: string } {
  const resolved: Env = { ...env };
  const hash = createHash('sha256');
  for (const key of Object.keys(env).sort()) {
    if (!key.endsWith(SUFFIX)) continue;
    const path = env[key];
    const name = key.slice(0, -SUFFIX.length);
    if (path === undefined || path === '' || name === '') continue;
    let content: string | undefined;
    try {
      content = readFileSync(path, 'utf8');
    } catch {
      content = undefined;
    }
    hash.update(`${name}\0${content ?? '\u0001absent'}\0`);
    if (content === undefined) delete resolved[name];
    else resolved[name] = content;
  }
  return { env: resolved, fingerprint: hash.digest('hex') };
}

type Closable = Driver & { close?: () => Promise<void> };

/** A Driver that rebuilds itself from rotated credential files when the hypervisor refuses it. */
export class CredentialReloadingDriver implements Driver {
  #current: Closable;
  #fingerprint: string;

  constructor(
    private readonly env: Env,
    private readonly build: (env: Env) => Closable,
    private readonly log: (message: string) => void = () => undefined,
  ) {
    const { env: resolved, fingerprint } = readCredentialFiles(env);
    this.#current = build(resolved);
    this.#fingerprint = fingerprint;
  }

  get type(): string {
    return this.#current.type;
  }

  get capabilities(): Capabilities {
    return this.#current.capabilities;
  }

  async close(): Promise<void> {
    await this.#current.close?.();
  }

  /** Builds a new driver when the files changed since the current one was built; true when it did. */
  #reload(): boolean {
    const { env, fingerprint } = readCredentialFiles(this.env);
    if (fingerprint === this.#fingerprint) return false;
    let next: Closable;
    try {
      next = this.build(env);
    } catch {
      // Half-written files during the kubelet's update: keep the old driver, try again next time.
      return false;
    }
    const previous = this.#current;
    this.#current = next;
    this.#fingerprint = fingerprint;
    void previous.close?.().catch(() => undefined);
    this.log('credentials changed on disk: the driver was rebuilt with them');
    return true;
  }

  async #call<T>(run: (driver: Driver) => Promise<T>): Promise<T> {
    try {
      return await run(this.#current);
    } catch (error) {
      if (!(error instanceof UnauthorizedError) || !this.#reload()) throw error;
      return run(this.#current);
    }
  }

  probe(options?: CallOptions): Promise<{ version: string }> {
    return this.#call((driver) => driver.probe(options));
  }

  inventory(options?: CallOptions): Promise<Inventory> {
    return this.#call((driver) => driver.inventory(options));
  }

  describe(id: string, options?: CallOptions): Promise<ObservedVM> {
    return this.#call((driver) => driver.describe(id, options));
  }

  findByIdentity(uid: string, options?: CallOptions): Promise<ObservedVM | undefined> {
    return this.#call((driver) => driver.findByIdentity(uid, options));
  }

  create(spec: CreateSpec, options?: CallOptions): Promise<{ id: string } & Started> {
    return this.#call((driver) => driver.create(spec, options));
  }

  delete(ref: VMRef, options?: CallOptions): Promise<Started> {
    return this.#call((driver) => driver.delete(ref, options));
  }

  power(ref: VMRef, operation: PowerOperation, options?: CallOptions): Promise<Started> {
    return this.#call((driver) => driver.power(ref, operation, options));
  }

  reconfigure(ref: VMRef, change: ResourceChange, options?: CallOptions): Promise<Started> {
    return this.#call((driver) => driver.reconfigure(ref, change, options));
  }

  resizeDisk(ref: VMRef, disk: string, sizeBytes: number, options?: CallOptions): Promise<Started> {
    return this.#call((driver) => driver.resizeDisk(ref, disk, sizeBytes, options));
  }

  snapshotCreate(ref: VMRef, request: SnapshotRequest, options?: CallOptions): Promise<{ id: string } & Started> {
    return this.#call((driver) => driver.snapshotCreate(ref, request, options));
  }

  snapshotDelete(ref: VMRef, snapshotId: string, options?: CallOptions): Promise<Started> {
    return this.#call((driver) => driver.snapshotDelete(ref, snapshotId, options));
  }

  snapshotRevert(ref: VMRef, snapshotId: string, options?: CallOptions): Promise<Started> {
    return this.#call((driver) => driver.snapshotRevert(ref, snapshotId, options));
  }

  snapshotList(ref: VMRef, options?: CallOptions): Promise<SnapshotInfo[]> {
    return this.#call((driver) => driver.snapshotList(ref, options));
  }

  clone(ref: VMRef, target: CloneTarget, options?: CallOptions): Promise<CloneStarted> {
    return this.#call((driver) => driver.clone(ref, target, options));
  }

  taskStatus(task: string, options?: CallOptions): Promise<TaskStatus> {
    return this.#call((driver) => driver.taskStatus(task, options));
  }

  exportDisk(ref: VMRef, request: DiskExportRequest, options?: CallOptions): Promise<Started> {
    return this.#call((driver) => driver.exportDisk(ref, request, options));
  }

  importDisk(owner: Identity, request: DiskImportRequest, options?: CallOptions): Promise<DiskImported> {
    return this.#call((driver) => driver.importDisk(owner, request, options));
  }

  deleteImportedDisk(owner: Identity, name: string, options?: CallOptions): Promise<Started> {
    return this.#call((driver) => driver.deleteImportedDisk(owner, name, options));
  }

  migrationVolume(volume: string, options?: CallOptions): Promise<MigrationVolume> {
    return this.#call((driver) => driver.migrationVolume(volume, options));
  }

  removeMigrationFiles(dir: string, options?: CallOptions): Promise<void> {
    return this.#call((driver) => driver.removeMigrationFiles(dir, options));
  }
}
