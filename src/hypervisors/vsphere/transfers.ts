// Disk transfers (exportDisk, importDisk) move a disk's bytes through this process, between an
// HttpNfcLease's device URL and the local migration directory, so the work runs here, in the
// background, as a local task. Its id (`vr-transfer:<instance>:<n>`) names this driver instance:
// no vim25 task moid has a `:` (vCenter `task-12`, ESXi `haTask-…`), so taskStatus tells the two
// apart by the prefix alone. A restarted runtime, or another replica, does not know the id and
// answers NotFound; the caller then starts the transfer again. What the stopped one leaves behind
// is vSphere's to clear: a lease nobody renews times out, and an import lease that ends in error
// removes the VM it made (vSphere API, HttpNfcLease); an import's leftover VM that vSphere did
// not remove is destroyed by the next import of the same image (import.ts).

import { randomBytes } from 'node:crypto';
import { NotFoundError, isDriverError, type DriverErrorCode, type TaskStatus } from '../../contracts/driver.js';
import type { MigrationStorage } from '../common/disk-files.js';
import type { LeaseTiming } from './nfc.js';
import type { VsphereContext } from './vm.js';

const PREFIX = 'vr-transfer:';
/** Finished transfers are answered for this many ids, the oldest forgotten first. */
const KEPT_FINISHED = 256;

/** What exportDisk and importDisk need besides the endpoint's shared state. */
export interface TransferContext {
  ctx: VsphereContext;
  transfers: Transfers;
  migration: MigrationStorage;
  timing: LeaseTiming;
}

export function isTransferTask(id: string): boolean {
  return id.startsWith(PREFIX);
}

/** What a transfer's work gets: its abort signal, where to report progress, and how to stop itself. */
export interface TransferJob {
  signal: AbortSignal;
  /** Percent done, 0–99: 100 is the task's success. */
  progress(percent: number): void;
  readonly percent: number;
  /** Ends the work from outside its own flow (a lease found gone): the signal aborts with `reason`. */
  fail(reason: Error): void;
}

interface Transfer {
  key: string;
  /** What the transfer does, so a repeated request can be told from a different one. */
  request: string;
  state: 'running' | 'succeeded' | 'failed';
  percent: number;
  failure: { message: string; code: DriverErrorCode } | undefined;
  controller: AbortController;
  settled: Promise<void>;
}

function failureOf(error: unknown): { message: string; code: DriverErrorCode } {
  if (isDriverError(error)) return { message: error.message, code: error.code };
  return { message: error instanceof Error ? error.message : String(error), code: 'HypervisorError' };
}

export class Transfers {
  readonly #instance = randomBytes(6).toString('hex');
  #next = 0;
  readonly #transfers = new Map<string, Transfer>();
  /** Running transfers by key (one VM's export, one owner's image). */
  readonly #running = new Map<string, string>();

  /** The transfer running under `key`, if this process runs one. */
  running(key: string): { id: string; request: string } | undefined {
    const id = this.#running.get(key);
    const transfer = id === undefined ? undefined : this.#transfers.get(id);
    return id === undefined || transfer === undefined ? undefined : { id, request: transfer.request };
  }

  /** Starts `work` in the background under `key` (the caller checked that none runs) and answers its task id. */
  start(key: string, request: string, work: (job: TransferJob) => Promise<void>): string {
    const id = `${PREFIX}${this.#instance}:${++this.#next}`;
    const transfer: Transfer = { key, request, state: 'running', percent: 0, failure: undefined, controller: new AbortController(), settled: Promise.resolve() };
    this.#transfers.set(id, transfer);
    this.#running.set(key, id);
    transfer.settled = this.#run(id, transfer, work);
    return id;
  }

  status(id: string): TaskStatus {
    const transfer = this.#transfers.get(id);
    if (transfer === undefined) throw new NotFoundError(`transfer task ${id} is not known to this provider runtime (it may have restarted): start the transfer again`);
    switch (transfer.state) {
      case 'running':
        return { state: 'running', progress: transfer.percent };
      case 'succeeded':
        return { state: 'succeeded', progress: 100 };
      case 'failed':
        return { state: 'failed', error: transfer.failure?.message ?? 'the transfer failed', errorCode: transfer.failure?.code ?? 'HypervisorError' };
    }
  }

  /** Stops every running transfer (their tasks fail; each aborts its lease) and waits for them. */
  async close(): Promise<void> {
    const running = [...this.#transfers.values()].filter((transfer) => transfer.state === 'running');
    for (const transfer of running) transfer.controller.abort(new Error('the provider runtime stopped during the transfer'));
    await Promise.all(running.map((transfer) => transfer.settled));
  }

  async #run(id: string, transfer: Transfer, work: (job: TransferJob) => Promise<void>): Promise<void> {
    const { controller } = transfer;
    try {
      await work({
        signal: controller.signal,
        progress: (percent) => {
          transfer.percent = Math.max(transfer.percent, Math.min(99, Math.floor(percent)));
        },
        get percent() {
          return transfer.percent;
        },
        fail: (reason) => controller.abort(reason),
      });
      transfer.state = 'succeeded';
    } catch (error) {
      // Stopped from outside (close(), a lease lost): why it stopped says more than what the abort broke.
      transfer.failure = failureOf(controller.signal.aborted ? controller.signal.reason : error);
      transfer.state = 'failed';
    }
    this.#running.delete(transfer.key);
    this.#forgetOldest();
  }

  #forgetOldest(): void {
    const finished = [...this.#transfers.entries()].filter(([, transfer]) => transfer.state !== 'running');
    for (const [id] of finished.slice(0, Math.max(0, finished.length - KEPT_FINISHED))) this.#transfers.delete(id);
  }
}
