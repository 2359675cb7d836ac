// driver.ts of a new driver's skeleton: a class with every Driver method, each rejecting with
// UnsupportedError, and its capabilities computed from CAPABILITIES when the driver is loaded, so
// a capability added to the contract later is off in the skeleton too.
import type { DriverNames } from './names.js';

export function driverTemplate(n: DriverNames): string {
  return `// The Driver for ${n.pascal}, as written by \`vrtg-provider new ${n.name}\`: every capability off
// and every call answering UnsupportedError, so a Provider of this type says exactly what works —
// nothing yet. README.md beside this file says how to fill it in. Keep this class wiring only:
// the wire protocol goes in client.ts, each verb in its own module (observe.ts, create.ts,
// power.ts, snapshots.ts, tasks.ts, inventory.ts) as the other drivers do.

import {
  CAPABILITIES,
  UnsupportedError,
  type CallOptions,
  type Capabilities,
  type Capability,
  type CloneStarted,
  type CloneTarget,
  type CreateSpec,
  type DiskExportRequest,
  type DiskImported,
  type DiskImportRequest,
  type Driver,
  type Identity,
  type Inventory,
  type MigrationVolume,
  type ObservedVM,
  type PowerOperation,
  type ResourceChange,
  type SnapshotInfo,
  type SnapshotRequest,
  type Started,
  type TaskStatus,
  type VMRef,
} from '../../contracts/driver.js';
import type { ${n.pascal}Config } from './config.js';

/**
 * Every capability off, from the contract's own list, so one added there is off here too. Turn
 * a capability on only once the driver honours it and the conformance suite proves it, as
 * \`{ ...${n.constant}_CAPABILITIES_NONE, snapshots: true }\`; once several are on, write the table out
 * as the other drivers do, with a comment on each false saying why.
 */
export const ${n.constant}_CAPABILITIES_NONE: Capabilities = Object.freeze(
  Object.fromEntries(CAPABILITIES.map((capability) => [capability, false])) as Record<Capability, boolean>,
);

export const ${n.constant}_CAPABILITIES: Capabilities = ${n.constant}_CAPABILITIES_NONE;

type Verb = Exclude<keyof Driver, 'type' | 'capabilities'>;

export class ${n.pascal}Driver implements Driver {
  readonly type = '${n.name}';
  readonly capabilities: Capabilities = ${n.constant}_CAPABILITIES;
  // What the verbs will need (endpoint, credentials); the skeleton calls nothing yet.
  readonly #config: ${n.pascal}Config;

  constructor(config: ${n.pascal}Config) {
    this.#config = config;
  }

  /** What the skeleton answers for a verb nobody has written: a refusal naming the verb and the driver. */
  #notWritten(verb: Verb): UnsupportedError {
    return new UnsupportedError(\`the ${n.name} driver is a skeleton: \${verb} is not written yet (src/hypervisors/${n.name}/driver.ts)\`);
  }

  /** The hypervisor's version; the first call to write: a provider runtime is Ready only once it answers. */
  async probe(_options?: CallOptions): Promise<{ version: string }> {
    throw this.#notWritten('probe');
  }

  /** Hosts with capacity and allocation, datastores, networks: what placement decides on. */
  async inventory(_options?: CallOptions): Promise<Inventory> {
    throw this.#notWritten('inventory');
  }

  /** NotFoundError only when the hypervisor says there is no such VM; a VM it cannot read is UnreachableError. */
  async describe(_id: string, _options?: CallOptions): Promise<ObservedVM> {
    throw this.#notWritten('describe');
  }

  /** The VM whose identity tag (written at create) names this owner UID, even while its creation runs. */
  async findByIdentity(_uid: string, _options?: CallOptions): Promise<ObservedVM | undefined> {
    throw this.#notWritten('findByIdentity');
  }

  /**
   * Starts the creation and answers at once (a task for what outlasts the call). The identity tag
   * must be findable from the moment the call starts, so a lost answer never makes a second VM.
   * Refuse what the capabilities lack first: unsupportedSettings(spec, this.type, this.capabilities).
   */
  async create(_spec: CreateSpec, _options?: CallOptions): Promise<{ id: string } & Started> {
    throw this.#notWritten('create');
  }

  /** ConflictError when the VM's identity tag names another owner; this check comes before every change. */
  async delete(_ref: VMRef, _options?: CallOptions): Promise<Started> {
    throw this.#notWritten('delete');
  }

  async power(_ref: VMRef, _operation: PowerOperation, _options?: CallOptions): Promise<Started> {
    throw this.#notWritten('power');
  }

  async reconfigure(_ref: VMRef, _change: ResourceChange, _options?: CallOptions): Promise<Started> {
    throw this.#notWritten('reconfigure');
  }

  /** Disks only grow: a smaller size is InvalidSpecError, never applied. */
  async resizeDisk(_ref: VMRef, _disk: string, _sizeBytes: number, _options?: CallOptions): Promise<Started> {
    throw this.#notWritten('resizeDisk');
  }

  async snapshotCreate(_ref: VMRef, _request: SnapshotRequest, _options?: CallOptions): Promise<{ id: string } & Started> {
    throw this.#notWritten('snapshotCreate');
  }

  async snapshotDelete(_ref: VMRef, _snapshotId: string, _options?: CallOptions): Promise<Started> {
    throw this.#notWritten('snapshotDelete');
  }

  async snapshotRevert(_ref: VMRef, _snapshotId: string, _options?: CallOptions): Promise<Started> {
    throw this.#notWritten('snapshotRevert');
  }

  async snapshotList(_ref: VMRef, _options?: CallOptions): Promise<SnapshotInfo[]> {
    throw this.#notWritten('snapshotList');
  }

  /** The copy carries target.owner's identity tag, written as create writes it. */
  async clone(_ref: VMRef, _target: CloneTarget, _options?: CallOptions): Promise<CloneStarted> {
    throw this.#notWritten('clone');
  }

  /** Needs diskExport; the file's SHA-256 goes beside it (writeChecksum in ../common/disk-files.js). */
  async exportDisk(_ref: VMRef, _request: DiskExportRequest, _options?: CallOptions): Promise<Started> {
    throw this.#notWritten('exportDisk');
  }

  /** Needs diskImport; check the file first (verifiedChecksum in ../common/disk-files.js). */
  async importDisk(_owner: Identity, _request: DiskImportRequest, _options?: CallOptions): Promise<DiskImported> {
    throw this.#notWritten('importDisk');
  }

  async deleteImportedDisk(_owner: Identity, _name: string, _options?: CallOptions): Promise<Started> {
    throw this.#notWritten('deleteImportedDisk');
  }

  /** No hypervisor call: checkMigrationVolume in ../common/disk-files.js does it for a driver that moves disks. */
  async migrationVolume(_volume: string, _options?: CallOptions): Promise<MigrationVolume> {
    throw this.#notWritten('migrationVolume');
  }

  /** No hypervisor call: removeMigrationFiles in ../common/disk-files.js does it for a driver that moves disks. */
  async removeMigrationFiles(_dir: string, _options?: CallOptions): Promise<void> {
    throw this.#notWritten('removeMigrationFiles');
  }

  /** Tasks must be findable from any runtime serving this hypervisor: NotFoundError only for one it does not know. */
  async taskStatus(_task: string, _options?: CallOptions): Promise<TaskStatus> {
    throw this.#notWritten('taskStatus');
  }
}
`;
}
