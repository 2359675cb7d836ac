// The Driver over a SimulatedHypervisor. It adds what sits between a real driver and its
// hypervisor: the wire. That is where injected faults act (refusals, timeouts, lost responses)
// and where an AbortSignal cuts a call short.

import {
  BusyError,
  ConflictError,
  HypervisorError,
  InvalidSpecError,
  UnauthorizedError,
  UnreachableError,
  type CallOptions,
  type CloneTarget,
  type CloneStarted,
  type Capabilities,
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
  type DiskImported,
  type DiskImportRequest,
  type Identity,
  type MigrationVolume,
} from '../../contracts/driver.js';
import type { SimCallOptions, SimulatedHypervisor } from './hypervisor.js';
import type { SimOperation } from './model.js';

// How long a call with an injected timeout hangs when the caller gave no signal to give up with.
const UNANSWERED_CALL_MS = 30_000;

export class SimulatorDriver implements Driver {
  readonly type = 'simulator';
  readonly hypervisor: SimulatedHypervisor;
  readonly capabilities: Capabilities;

  constructor(hypervisor: SimulatedHypervisor) {
    this.hypervisor = hypervisor;
    this.capabilities = hypervisor.capabilities;
  }

  probe(options?: CallOptions): Promise<{ version: string }> {
    return this.#call('probe', options, () => this.hypervisor.probe());
  }

  inventory(options?: CallOptions): Promise<Inventory> {
    return this.#call('inventory', options, () => this.hypervisor.inventory());
  }

  describe(id: string, options?: CallOptions): Promise<ObservedVM> {
    return this.#call('describe', options, () => this.hypervisor.describe(id));
  }

  findByIdentity(uid: string, options?: CallOptions): Promise<ObservedVM | undefined> {
    return this.#call('findByIdentity', options, () => this.hypervisor.findByIdentity(uid));
  }

  create(spec: CreateSpec, options?: CallOptions): Promise<{ id: string } & Started> {
    return this.#call('create', options, (call) => this.hypervisor.create(spec, call));
  }

  delete(ref: VMRef, options?: CallOptions): Promise<Started> {
    return this.#call('delete', options, (call) => this.hypervisor.delete(ref, call));
  }

  power(ref: VMRef, operation: PowerOperation, options?: CallOptions): Promise<Started> {
    return this.#call('power', options, (call) => this.hypervisor.power(ref, operation, call));
  }

  reconfigure(ref: VMRef, change: ResourceChange, options?: CallOptions): Promise<Started> {
    return this.#call('reconfigure', options, (call) => this.hypervisor.reconfigure(ref, change, call));
  }

  resizeDisk(ref: VMRef, disk: string, sizeBytes: number, options?: CallOptions): Promise<Started> {
    return this.#call('resizeDisk', options, (call) => this.hypervisor.resizeDisk(ref, disk, sizeBytes, call));
  }

  snapshotCreate(ref: VMRef, request: SnapshotRequest, options?: CallOptions): Promise<{ id: string } & Started> {
    return this.#call('snapshotCreate', options, (call) => this.hypervisor.snapshotCreate(ref, request, call));
  }

  snapshotDelete(ref: VMRef, snapshotId: string, options?: CallOptions): Promise<Started> {
    return this.#call('snapshotDelete', options, (call) => this.hypervisor.snapshotDelete(ref, snapshotId, call));
  }

  snapshotRevert(ref: VMRef, snapshotId: string, options?: CallOptions): Promise<Started> {
    return this.#call('snapshotRevert', options, (call) => this.hypervisor.snapshotRevert(ref, snapshotId, call));
  }

  snapshotList(ref: VMRef, options?: CallOptions): Promise<SnapshotInfo[]> {
    return this.#call('snapshotList', options, () => this.hypervisor.snapshotList(ref));
  }

  clone(ref: VMRef, target: CloneTarget, options?: CallOptions): Promise<CloneStarted> {
    return this.#call('clone', options, (call) => this.hypervisor.clone(ref, target, call));
  }

  taskStatus(task: string, options?: CallOptions): Promise<TaskStatus> {
    return this.#call('taskStatus', options, () => this.hypervisor.taskStatus(task));
  }

  exportDisk(ref: VMRef, request: DiskExportRequest, options?: CallOptions): Promise<Started> {
    return this.#call('exportDisk', options, (call) => this.hypervisor.exportDisk(ref, request, call));
  }

  async importDisk(owner: Identity, request: DiskImportRequest, options?: CallOptions): Promise<DiskImported> {
    return await this.#call('importDisk', options, () => this.hypervisor.importDisk(owner, request));
  }

  deleteImportedDisk(owner: Identity, name: string, options?: CallOptions): Promise<Started> {
    return this.#call('deleteImportedDisk', options, () => this.hypervisor.deleteImportedDisk(owner, name));
  }

  async migrationVolume(volume: string, options?: CallOptions): Promise<MigrationVolume> {
    return await this.#call('migrationVolume', options, () => this.hypervisor.migrationVolume(volume));
  }

  async removeMigrationFiles(dir: string, options?: CallOptions): Promise<void> {
    await this.#call('removeMigrationFiles', options, () => this.hypervisor.removeMigrationFiles(dir));
  }

  async #call<T>(operation: SimOperation, options: CallOptions | undefined, run: (call: SimCallOptions) => T): Promise<T> {
    const signal = options?.signal;
    // Never sent, so never received: no count, no fault consumed, no effect.
    if (signal?.aborted) throw new UnreachableError(`${operation} aborted before it was sent`);
    const fault = this.hypervisor.receiveCall(operation);
    switch (fault?.kind) {
      case undefined:
        return run({});
      case 'busy':
        throw new BusyError(fault.message ?? 'the hypervisor is busy, try again later');
      case 'conflict':
        throw new ConflictError(fault.message ?? 'the object is in a state that forbids the call');
      case 'unreachable':
        throw new UnreachableError(fault.message ?? 'connect ECONNREFUSED');
      case 'unauthorized':
        throw new UnauthorizedError(fault.message ?? 'authentication failure');
      case 'invalid':
        throw new InvalidSpecError(fault.message ?? 'the hypervisor rejected a parameter');
      case 'error':
        throw new HypervisorError(fault.message ?? 'the hypervisor failed the request');
      case 'timeout':
        await noAnswer(signal);
        throw new UnreachableError(fault.message ?? `${operation} timed out`);
      case 'lostResponse':
        // The hypervisor acted (or refused); either way its answer never arrives.
        try {
          run({});
        } catch {
          // Lost with the response.
        }
        throw new UnreachableError(fault.message ?? 'connection reset');
      case 'taskFailure':
        return run({ failTaskWith: fault.message ?? `${operation} task failed` });
    }
  }
}

function noAnswer(signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (signal === undefined) {
      setTimeout(resolve, UNANSWERED_CALL_MS);
      return;
    }
    signal.addEventListener('abort', () => resolve(), { once: true });
  });
}
