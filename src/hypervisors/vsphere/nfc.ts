// HttpNfcLease, the vim25 object behind ExportVm and ImportVApp: it waits in `initializing`
// while vSphere prepares the objects, then lists in `info.deviceUrl` where each disk's bytes are
// read (export, GET) or written (import, POST). It holds the VM (no power-on, destroy or
// migration) until HttpNfcLeaseComplete or HttpNfcLeaseAbort, and times out into `error` unless
// HttpNfcLeaseProgress renews it; an import lease that ends in error removes what the import
// made (vSphere API reference, HttpNfcLease). The bytes themselves go over HTTP (nfc-http.ts).

import { HypervisorError, NotFoundError, isDriverError, type DriverError } from '../../contracts/driver.js';
import { morefOf } from './client.js';
import { errorFromFault, faultTypeOf, readTaskError } from './errors.js';
import { retrieveOne } from './property-collector.js';
import { el, moref, typed, type MoRef } from './soap.js';
import { boolAt, child, childrenNamed, textAt, type XmlElement } from './xml.js';
import type { VsphereContext } from './vm.js';
import type { TransferJob } from './transfers.js';

/** One HttpNfcLeaseDeviceUrl. */
export interface NfcDevice {
  /** `/<vm moid>/<controller type><bus>:<unit>` on vSphere, e.g. `/vm-70/VirtualLsiLogicController0:0`. */
  key: string;
  /** Import leases only: the device by the names of the ImportSpec. */
  importKey: string | undefined;
  url: string;
  /** SHA-1 thumbprint of the certificate of the host `url` names; empty when none is needed. */
  sslThumbprint: string | undefined;
  disk: boolean;
  targetId: string | undefined;
}

export interface LeaseInfo {
  entity: MoRef | undefined;
  devices: NfcDevice[];
}

export function readLeaseInfo(info: XmlElement | undefined): LeaseInfo {
  return {
    entity: morefOf(child(info, 'entity')),
    devices: childrenNamed(info, 'deviceUrl').map((device) => ({
      key: textAt(device, 'key') ?? '',
      importKey: textAt(device, 'importKey') || undefined,
      url: textAt(device, 'url') ?? '',
      sslThumbprint: textAt(device, 'sslThumbprint') || undefined,
      disk: boolAt(device, 'disk') ?? false,
      targetId: textAt(device, 'targetId') || undefined,
    })),
  };
}

export interface LeaseTiming {
  /** How often an initializing lease is looked at again. */
  pollMs: number;
  /** How often HttpNfcLeaseProgress renews a lease in use. */
  keepAliveMs: number;
}

export const DEFAULT_LEASE_TIMING: LeaseTiming = { pollMs: 1_000, keepAliveMs: 5_000 };

function aborted(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new HypervisorError('the transfer was stopped');
}

/** Waits `ms` unless the signal aborts first. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(aborted(signal));
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(aborted(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** The lease's info once it is ready; its fault as a typed error when it ends in error instead. */
export async function leaseReady(ctx: VsphereContext, lease: MoRef, timing: LeaseTiming, signal: AbortSignal): Promise<LeaseInfo> {
  for (;;) {
    if (signal.aborted) throw aborted(signal);
    const object = await retrieveOne(ctx.client, lease, ['state', 'info', 'error'], signal);
    const state = textAt(object.props.get('state'));
    if (state === 'ready') return readLeaseInfo(object.props.get('info'));
    if (state === 'error') throw errorFromFault(readTaskError(object.props.get('error')), 'vSphere ended the disk transfer');
    if (state === 'done') throw new HypervisorError(`lease ${lease.value} was completed before the transfer began`);
    await sleep(timing.pollMs, signal);
  }
}

export async function leaseProgress(ctx: VsphereContext, lease: MoRef, percent: number, signal?: AbortSignal): Promise<void> {
  await ctx.client.call('HttpNfcLeaseProgress', [moref('_this', lease), el('percent', Math.max(0, Math.min(100, Math.floor(percent))))], signal);
}

export async function completeLease(ctx: VsphereContext, lease: MoRef, signal?: AbortSignal): Promise<void> {
  await ctx.client.call('HttpNfcLeaseComplete', [moref('_this', lease)], signal);
}

/**
 * Aborts the lease, naming the cause to whoever watches its task (a SystemError's reason).
 * Never throws: a lease already gone or timed out is what an abort wants.
 */
export async function abortLease(ctx: VsphereContext, lease: MoRef, why: string): Promise<void> {
  const fault = typed('fault', 'SystemError', [el('reason', why.slice(0, 500))]);
  await ctx.client.call('HttpNfcLeaseAbort', [moref('_this', lease), fault], AbortSignal.timeout(30_000)).catch(() => undefined);
}

/** Whether a failed renewal means the lease is over (gone, timed out, ended) rather than a call that may work next time. */
export function leaseLost(error: unknown): boolean {
  if (error instanceof NotFoundError) return true;
  const fault = faultTypeOf(error);
  return fault === 'Timedout' || fault === 'InvalidState';
}

/**
 * Renews the lease with the job's progress every `keepAliveMs` until stopped. A renewal that
 * says the lease is over fails the job at once (its bytes would go nowhere); any other failure
 * waits for the next turn, as the lease outlives a few missed renewals.
 */
export function keepLeaseAlive(ctx: VsphereContext, lease: MoRef, job: TransferJob, timing: LeaseTiming): { stop(): void } {
  let renewing = false;
  const timer = setInterval(() => {
    if (renewing) return;
    renewing = true;
    leaseProgress(ctx, lease, job.percent, AbortSignal.timeout(Math.max(timing.keepAliveMs, 10_000)))
      .catch((error: unknown) => {
        if (!leaseLost(error)) return;
        const cause = isDriverError(error) ? error.message : 'the lease is gone';
        const lost: DriverError = new HypervisorError(`vSphere ended the disk transfer's lease ${lease.value}: ${cause}`);
        job.fail(lost);
      })
      .finally(() => {
        renewing = false;
      });
  }, timing.keepAliveMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
