// Disk transfers (exportDisk, importDisk) move a disk's bytes through this process, between the
// libvirt host (over SSH) and the local migration directory, so the work runs here, in the
// background. Its task is still a host task (tasks.ts): a leased one (vr_lease) that holds the
// VM's or image's lock and records the outcome where every replica's taskStatus reads it. This
// process renews the lease with the progress every few seconds. If it dies, the lease expires,
// the task fails on the host and its locks go; the caller starts the transfer again, which
// rewrites the file (export) or replaces the unverified volume (import).

import { createHash, type Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { isDriverError, type DriverErrorCode, type TaskStatus } from '../../contracts/driver.js';
import type { HostTasks, TaskBegun, TaskLock } from './tasks.js';

/** How often the lease is renewed, and how long the host waits for a renewal before it fails the task. */
const RENEW_MS = 2_000;
export const LEASE_SECONDS = 60;

/** What a transfer's work gets: its abort signal (close(), a lease lost) and where to report progress. */
export interface TransferJob {
  signal: AbortSignal;
  /** Percent done, 0–99: 100 is the task's success. */
  progress(percent: number): void;
}

interface RunningTransfer {
  /** What the transfer does, so a repeated request can be told from a different one. */
  request: string;
  percent: number;
  controller: AbortController;
  settled: Promise<void>;
}

function failureOf(error: unknown): { message: string; code: DriverErrorCode } {
  if (isDriverError(error)) return { message: error.message, code: error.code };
  return { message: error instanceof Error ? error.message : String(error), code: 'HypervisorError' };
}

export class Transfers {
  readonly #tasks: HostTasks;
  readonly #running = new Map<string, RunningTransfer>();

  constructor(tasks: HostTasks) {
    this.#tasks = tasks;
  }

  /**
   * Starts `work` in the background under a leased task holding `locks`. When a task of the same
   * kind holds them already, nothing starts: the answer names that task (`started: false`), and
   * `request` tells whether this process runs it for the same request.
   */
  async start(locks: readonly TaskLock[], request: string, work: (job: TransferJob) => Promise<void>, signal?: AbortSignal): Promise<TaskBegun & { sameRequest: boolean }> {
    const begun = await this.#tasks.begin(locks, [['vr_lease', String(LEASE_SECONDS)]], signal);
    if (!begun.started) return { ...begun, sameRequest: this.#running.get(begun.id)?.request === request };
    const controller = new AbortController();
    const transfer: RunningTransfer = { request, percent: 0, controller, settled: Promise.resolve() };
    this.#running.set(begun.id, transfer);
    transfer.settled = this.#run(begun.id, transfer, work);
    return { ...begun, sameRequest: true };
  }

  /** The status of a transfer this process runs (fresher than the host's copy); undefined for any other task. */
  status(id: string): TaskStatus | undefined {
    const transfer = this.#running.get(id);
    return transfer ? { state: 'running', progress: transfer.percent } : undefined;
  }

  /** Stops every running transfer; their tasks fail (the caller starts them again). */
  async close(): Promise<void> {
    const running = [...this.#running.values()];
    for (const transfer of running) transfer.controller.abort(new Error('the provider runtime stopped during the transfer'));
    await Promise.all(running.map((transfer) => transfer.settled));
  }

  async #run(id: string, transfer: RunningTransfer, work: (job: TransferJob) => Promise<void>): Promise<void> {
    let renewing = false;
    const renew = async () => {
      if (renewing) return;
      renewing = true;
      try {
        if (!(await this.#tasks.renew(id, transfer.percent))) transfer.controller.abort(new Error(`task ${id} was ended on the libvirt host`));
      } catch {
        // The lease outlives a few failed renewals; the next one tries again.
      } finally {
        renewing = false;
      }
    };
    const timer = setInterval(() => void renew(), RENEW_MS);
    let failure: { message: string; code: DriverErrorCode } | undefined;
    try {
      await renew();
      await work({
        signal: transfer.controller.signal,
        progress: (percent) => {
          transfer.percent = Math.max(transfer.percent, Math.min(99, Math.floor(percent)));
        },
      });
    } catch (error) {
      // Stopped from here (close(), the lease lost): why it stopped says more than what the abort broke.
      const signal = transfer.controller.signal;
      failure = failureOf(signal.aborted ? signal.reason : error);
    } finally {
      clearInterval(timer);
    }
    await this.#finish(id, failure);
    this.#running.delete(id);
  }

  /** Records the outcome on the host; should that keep failing, the lease expires and the task fails there. */
  async #finish(id: string, failure: { message: string; code: DriverErrorCode } | undefined): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await this.#tasks.finish(id, failure);
        return;
      } catch {
        await sleep(1_000);
      }
    }
  }
}

/** Counts bytes into a percentage of `total` spread over [from, to). */
export function progressRange(job: TransferJob, total: number, from: number, to: number): (bytes: number) => void {
  let done = 0;
  return (bytes) => {
    done += bytes;
    job.progress(from + ((to - from) * Math.min(done, total)) / Math.max(total, 1));
  };
}

/**
 * A file written as bytes arrive, hashed and counted on the way: one pass over the data, however
 * large. `digest()` is the SHA-256 (hex) of everything written, once the sink has finished.
 */
export async function hashedFileSink(path: string, counted: (bytes: number) => void): Promise<{ sink: Writable; digest(): string }> {
  const handle: FileHandle = await open(path, 'w', 0o644);
  const hash: Hash = createHash('sha256');
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await handle.close();
  };
  const sink = new Writable({
    highWaterMark: 4 * 1024 * 1024,
    writev(chunks, callback) {
      const buffers = chunks.map(({ chunk }) => chunk as Buffer);
      for (const buffer of buffers) hash.update(buffer);
      handle.writev(buffers).then(
        () => {
          counted(buffers.reduce((sum, buffer) => sum + buffer.length, 0));
          callback();
        },
        (error: Error) => callback(error),
      );
    },
    final(callback) {
      close().then(() => callback(), (error: Error) => callback(error));
    },
    destroy(error, callback) {
      close().then(
        () => callback(error),
        () => callback(error),
      );
    },
  });
  return { sink, digest: () => hash.digest('hex') };
}

