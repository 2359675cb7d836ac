// importDisk: a disk file of the migration directory made into a template create clones from.
// The call checks the file against its checksum (files up to INLINE_VERIFY_BYTES; a larger one is
// hashed in the task, before anything reaches vSphere or while it uploads, and a mismatch leaves
// nothing), reads its virtual size, looks for the image already made (imported.ts), and answers a
// local transfer task (transfers.ts) that does the rest in the background:
// 1. the file as a streamOptimized VMDK (qemu-img, unless it is one already);
// 2. ImportVApp into the import placement with a VirtualMachineImportSpec made here: one LSI Logic
//    controller, one thin disk of the file's virtual size, and the image's identity in its
//    extraConfig, under the importing name (the spec govc import.vmdk builds; an OVF descriptor
//    through OvfManager.CreateImportSpec would give the same spec, without the identity);
// 3. the VMDK POSTed to the lease's disk URL while HttpNfcLeaseProgress keeps the lease;
// 4. HttpNfcLeaseComplete, MarkAsTemplate, then Rename_Task to the name the image ref names.
// Any failure aborts the lease (vSphere then removes the VM it made) and destroys the VM (vcsim
// does not remove it): nothing half-imported is left under a name create would take.

import { createHash } from 'node:crypto';
import { rm, stat } from 'node:fs/promises';
import {
  BusyError,
  ConflictError,
  HypervisorError,
  InvalidSpecError,
  NotFoundError,
  type DiskFormat,
  type DiskImported,
  type DiskImportRequest,
  type Identity,
  type Started,
} from '../../contracts/driver.js';
import { diskFileBytes, diskFilePath, exportedChecksum, hashedFileSource, verifiedChecksum } from '../common/disk-files.js';
import { inspectDiskFile, requireLocalQemuImg } from '../common/qemu-img.js';
import { morefOf } from './client.js';
import { errorFromFault, readTaskError } from './errors.js';
import { findImported, imageEntries, importNames, type ImportedVM } from './imported.js';
import { resolveDatacenter, resolveObject } from './inventory.js';
import { abortLease, completeLease, keepLeaseAlive, leaseReady, sleep, type LeaseTiming } from './nfc.js';
import { NfcConnection, deviceURL } from './nfc-http.js';
import { resolvePlacement } from './placement.js';
import { retrieveAll, retrieveOne } from './property-collector.js';
import { el, moref, optionValue, typed, type MoRef, type Xml } from './soap.js';
import { readTask, settledNow } from './tasks.js';
import type { TransferContext, TransferJob } from './transfers.js';
import { isStreamOptimized, toStreamOptimized } from './vmdk.js';
import { intAt, textAt } from './xml.js';
import type { VsphereContext } from './vm.js';

/**
 * Files up to this size are checked against their checksum before the call returns (a quick
 * Conflict); larger ones in the task, as hashing them here could outlast the caller's deadline.
 */
export const INLINE_VERIFY_BYTES = 256 * 1024 * 1024;

// Temporary device keys of the import spec: negative, as vSphere wants for devices it adds.
const CONTROLLER_KEY = -100;
const DISK_KEY = -101;

/** The VirtualMachineImportSpec of one disk (see the header); CPU and memory are create's to set. */
export function importSpec(name: string, datastore: string, capacityBytes: number, entries: readonly [string, string][]): Xml {
  return typed('spec', 'VirtualMachineImportSpec', [
    typed('configSpec', 'VirtualMachineConfigSpec', [
      el('name', name),
      el('guestId', 'otherGuest64'),
      el('files', [el('vmPathName', `[${datastore}]`)]),
      el('numCPUs', 1),
      el('memoryMB', 128),
      typed('deviceChange', 'VirtualDeviceConfigSpec', [
        el('operation', 'add'),
        typed('device', 'VirtualLsiLogicController', [el('key', CONTROLLER_KEY), el('busNumber', 0), el('sharedBus', 'noSharing')]),
      ]),
      typed('deviceChange', 'VirtualDeviceConfigSpec', [
        el('operation', 'add'),
        el('fileOperation', 'create'),
        typed('device', 'VirtualDisk', [
          el('key', DISK_KEY),
          typed('backing', 'VirtualDiskFlatVer2BackingInfo', [el('fileName', ''), el('diskMode', 'persistent'), el('thinProvisioned', true)]),
          el('controllerKey', CONTROLLER_KEY),
          el('unitNumber', 0),
          el('capacityInKB', Math.ceil(capacityBytes / 1024)),
        ]),
      ]),
      ...entries.map(([key, value]) => optionValue('extraConfig', key, value)),
    ]),
  ]);
}

export interface ImportPlacement {
  pool: MoRef;
  folder: MoRef;
  host: MoRef | undefined;
  datastore: string;
  datastoreRef: MoRef;
}

/**
 * Where an imported template goes: the Provider's defaults as create uses them; without compute
 * defaults, the datacenter's first compute resource by name (a template only serves full clones,
 * which create places by its own rules); its datastore the default one, else the compute
 * resource's accessible datastore with the most free space.
 */
export async function importPlacement(ctx: VsphereContext, signal?: AbortSignal): Promise<ImportPlacement> {
  const defaults = ctx.config.defaults;
  let pool: MoRef;
  let host: MoRef | undefined;
  let folder: MoRef;
  let datastore: MoRef | undefined;
  if (defaults.resourcePool !== undefined || defaults.cluster !== undefined || defaults.host !== undefined) {
    ({ pool, host, folder, datastore } = await resolvePlacement(ctx, { placement: {}, storage: { provisioning: 'thin' } }, undefined, signal));
  } else {
    const dc = await resolveDatacenter(ctx, defaults.datacenter, signal);
    folder = defaults.folder === undefined ? dc.vmFolder : await resolveObject(ctx, dc, 'vm', ['Folder'], defaults.folder, 'folder', undefined, signal);
    datastore = defaults.datastore === undefined ? undefined : await resolveObject(ctx, dc, 'datastore', ['Datastore'], defaults.datastore, 'datastore', undefined, signal);
    const computes = (await retrieveAll(ctx.client, dc.hostFolder, 'ComputeResource', ['name', 'resourcePool'], signal))
      .map((compute) => ({ name: textAt(compute.props.get('name')) ?? compute.ref.value, pool: morefOf(compute.props.get('resourcePool')) }))
      .sort((a, b) => a.name.localeCompare(b.name));
    const first = computes.find((compute) => compute.pool !== undefined)?.pool;
    if (first === undefined) throw new InvalidSpecError(`datacenter ${dc.name} has no host to import a disk to`);
    pool = first;
    host = undefined;
  }
  const chosen = await chooseDatastore(ctx, pool, datastore, signal);
  return { pool, host, folder, datastore: chosen.name, datastoreRef: chosen.ref };
}

async function chooseDatastore(ctx: VsphereContext, pool: MoRef, chosen: MoRef | undefined, signal?: AbortSignal): Promise<{ name: string; ref: MoRef }> {
  const candidates = chosen !== undefined ? [chosen] : await poolDatastores(ctx, pool, signal);
  let best: { name: string; ref: MoRef; free: number } | undefined;
  for (const ref of candidates) {
    const datastore = await retrieveOne(ctx.client, ref, ['name', 'summary.accessible', 'summary.freeSpace'], signal);
    const name = textAt(datastore.props.get('name'));
    if (name === undefined || (chosen === undefined && textAt(datastore.props.get('summary.accessible')) === 'false')) continue;
    const free = intAt(datastore.props.get('summary.freeSpace')) ?? 0;
    if (best === undefined || free > best.free) best = { name, ref, free };
  }
  if (best === undefined) throw new InvalidSpecError('no accessible datastore to import a disk to: set VSPHERE_DATASTORE');
  return { name: best.name, ref: best.ref };
}

async function poolDatastores(ctx: VsphereContext, pool: MoRef, signal?: AbortSignal): Promise<MoRef[]> {
  const owner = morefOf((await retrieveOne(ctx.client, pool, ['owner'], signal)).props.get('owner'));
  if (owner === undefined) throw new HypervisorError(`resource pool ${pool.value} was read without its compute resource`);
  const listed = (await retrieveOne(ctx.client, owner, ['datastore'], signal)).props.get('datastore');
  return (listed?.children ?? []).map(morefOf).filter((ref): ref is MoRef => ref !== undefined);
}

/** Waits for a task this transfer started (a rename, a destroy); its fault as a typed error. */
export async function taskEnded(ctx: VsphereContext, task: MoRef, timing: LeaseTiming, what: string, signal: AbortSignal): Promise<void> {
  for (;;) {
    const info = await readTask(ctx, task.value, signal);
    if (info.state === 'success') return;
    if (info.state === 'error') throw errorFromFault(readTaskError(info.error), what);
    await sleep(timing.pollMs, signal);
  }
}

export async function startTaskOn(ctx: VsphereContext, method: string, vm: MoRef, params: readonly Xml[], signal?: AbortSignal): Promise<MoRef> {
  const task = morefOf(await ctx.client.returnval(method, [moref('_this', vm), ...params], signal));
  ctx.vmList.invalidate();
  if (task === undefined) throw new HypervisorError(`vSphere answered ${method} on ${vm.value} without a task`);
  return task;
}

interface ImportPlan {
  owner: Identity;
  name: string;
  path: string;
  format: DiskFormat;
  sha256: string;
  /** Checked against its checksum within the call already. */
  verified: boolean;
  streamOptimized: boolean;
  virtualSizeBytes: number;
}


function mismatch(path: string, actual: string, expected: string): ConflictError {
  return new ConflictError(`disk file ${path} does not match its checksum (sha256 ${actual}, expected ${expected})`);
}

/** Bytes counted into the job's progress over [from, to) of `total`. */
function progressRange(job: TransferJob, total: number, from: number, to: number): (bytes: number) => void {
  let done = 0;
  return (bytes) => {
    done += bytes;
    job.progress(from + ((to - from) * Math.min(done, total)) / Math.max(total, 1));
  };
}

/** The streamOptimized VMDK to upload: the file itself, or a converted copy beside it (removed by the caller). */
async function uploadable(plan: ImportPlan, job: TransferJob): Promise<string> {
  if (plan.streamOptimized) return plan.path;
  if (!plan.verified) {
    // Checked before converting: qemu-img reads the file itself, so the upload's hash would be the copy's.
    const { source, digest } = hashedFileSource(plan.path, progressRange(job, (await stat(plan.path)).size, 0, 20));
    for await (const chunk of source) void chunk;
    const actual = digest();
    if (actual !== plan.sha256) throw mismatch(plan.path, actual, plan.sha256);
  }
  const converted = `${plan.path}.import-${createHash('sha256').update(`${plan.owner.uid}\n${plan.name}`).digest('hex').slice(0, 8)}.vmdk.partial`;
  await toStreamOptimized(plan.path, plan.format, converted, job.signal);
  job.progress(35);
  return converted;
}

/** The transfer (see the header); whatever it made is removed unless it ends as the finished template. */
async function writeImport(tx: TransferContext, plan: ImportPlan, where: ImportPlacement, job: TransferJob): Promise<void> {
  const { ctx, timing } = tx;
  const names = importNames(plan.owner.uid, plan.name);
  let lease: MoRef | undefined;
  let vm: MoRef | undefined;
  let completed = false;
  let file: string | undefined;
  try {
    file = await uploadable(plan, job);
    const bytes = (await stat(file)).size;
    const spec = importSpec(names.importing, where.datastore, plan.virtualSizeBytes, imageEntries(plan.owner, plan.name, plan.sha256));
    lease = morefOf(await ctx.client.returnval('ImportVApp', [moref('_this', where.pool), spec, moref('folder', where.folder), moref('host', where.host)], job.signal));
    ctx.vmList.invalidate();
    if (lease === undefined) throw new HypervisorError('vSphere answered ImportVApp without a lease');
    const info = await leaseReady(ctx, lease, timing, job.signal);
    vm = info.entity;
    const device = info.devices.find((candidate) => candidate.disk);
    if (vm === undefined || device === undefined) throw new HypervisorError(`the import lease ${lease.value} names no VM or no disk URL`);
    const connection = new NfcConnection(ctx.config, deviceURL(device.url, ctx.config.origin), device.sslThumbprint, await ctx.client.currentSession(job.signal));
    const keeper = keepLeaseAlive(ctx, lease, job, timing);
    try {
      const { source, digest } = hashedFileSource(file, progressRange(job, bytes, plan.streamOptimized ? 0 : 35, 95));
      await connection.upload(source, bytes, job.signal);
      // Not checked yet and uploaded as it is: checked on the way, and the lease aborted on a mismatch.
      const sent = digest();
      if (!plan.verified && plan.streamOptimized && sent !== plan.sha256) throw mismatch(plan.path, sent, plan.sha256);
    } finally {
      keeper.stop();
      await connection.close();
    }
    await completeLease(ctx, lease, job.signal);
    completed = true;
    await ctx.client.call('MarkAsTemplate', [moref('_this', vm)], job.signal);
    const renamed = await startTaskOn(ctx, 'Rename_Task', vm, [el('newName', names.final)], job.signal);
    await taskEnded(ctx, renamed, timing, `naming the imported template ${names.final}`, job.signal);
    ctx.vmList.invalidate();
    vm = undefined;
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    if (lease !== undefined && !completed) await abortLease(ctx, lease, `import of ${plan.path} failed: ${why}`);
    if (vm !== undefined) await destroyQuietly(ctx, vm, timing);
    throw error;
  } finally {
    if (file !== undefined && file !== plan.path) await rm(file, { force: true });
  }
}

/** Destroys what a failed import made; vSphere may be removing it already (the aborted lease), which is as good. */
export async function destroyQuietly(ctx: VsphereContext, vm: MoRef, timing: LeaseTiming): Promise<void> {
  const signal = AbortSignal.timeout(60_000);
  try {
    const task = await startTaskOn(ctx, 'Destroy_Task', vm, [], signal);
    await taskEnded(ctx, task, timing, `removing the failed import ${vm.value}`, signal);
  } catch {
    // Gone already, or held: the next import of the same image destroys the leftover (importDisk).
  }
}



/**
 * Removes what is left of an import that did not finish (a runtime stopped mid-way where vSphere
 * kept the VM): Busy while vSphere still holds it (another runtime's lease) or removes it.
 */
export async function clearLeftover(ctx: VsphereContext, leftover: Pick<ImportedVM, 'vm'>, signal?: AbortSignal): Promise<void> {
  let task: MoRef;
  try {
    task = await startTaskOn(ctx, 'Destroy_Task', leftover.vm.ref, [], signal);
  } catch (error) {
    if (error instanceof NotFoundError) return;
    if (error instanceof BusyError) throw new BusyError(`${leftover.vm.name} is held by vSphere (an import running elsewhere, or its lease ending): ${error.message}`);
    throw error;
  }
  const done = await settledNow(ctx, task, `removing the unfinished import ${leftover.vm.name}`, signal);
  if (done === undefined) throw new BusyError(`the unfinished import ${leftover.vm.name} is being removed (task ${task.value}); the import starts once it is gone`);
}

export async function importDisk(tx: TransferContext, owner: Identity, request: DiskImportRequest, signal?: AbortSignal): Promise<DiskImported> {
  const { ctx } = tx;
  if (request.name === '') throw new InvalidSpecError('an imported disk needs a name');
  const names = importNames(owner.uid, request.name);
  const path = diskFilePath(tx.migration.root, request.file);
  const format = request.file.format;
  const sha256 = await exportedChecksum(path);
  // The checksum first: a damaged file is Conflict whatever else it breaks.
  const verified = (await diskFileBytes(path)) <= INLINE_VERIFY_BYTES;
  if (verified) await verifiedChecksum(path, signal);
  const { virtualSizeBytes } = await inspectDiskFile(path, format, signal);
  const imported: DiskImported = { image: { kind: 'template', ref: names.final, fullClone: true }, sizeBytes: virtualSizeBytes };

  const key = `import:${owner.uid}:${request.name}`;
  // Being imported already (by this runtime): its task is the answer.
  const running = tx.transfers.running(key);
  if (running !== undefined) return { ...imported, task: running.id };
  const found = await findImported(ctx, owner, request.name, signal);
  const finished = found.find((candidate) => candidate.finished);
  if (finished !== undefined) {
    if (finished.sha256 === sha256) return imported;
    throw new ConflictError(
      `image ${JSON.stringify(request.name)} of ${owner.namespace}/${owner.name} was imported from another file (sha256 ${finished.sha256 ?? 'unknown'}); import this one under another name`,
    );
  }
  for (const candidate of found) {
    if (candidate.vm.name === names.final) throw new ConflictError(`${candidate.vm.name}, the imported image, is no longer a template; it is left as it is`);
    // Whole and a template, but not renamed yet (a runtime stopped between the two): the rename finishes it.
    if (candidate.vm.template && candidate.sha256 === sha256) {
      const task = await startTaskOn(ctx, 'Rename_Task', candidate.vm.ref, [el('newName', names.final)], signal);
      const done = await settledNow(ctx, task, `naming the imported template ${names.final}`, signal);
      return done === undefined ? { ...imported, task: task.value } : imported;
    }
    await clearLeftover(ctx, candidate, signal);
  }
  const streamOptimized = format === 'vmdk' && (await isStreamOptimized(path));
  if (!streamOptimized) await requireLocalQemuImg(`importing ${request.file.path} into vSphere`, signal);
  const where = await importPlacement(ctx, signal);
  const plan: ImportPlan = { owner, name: request.name, path, format, sha256, verified, streamOptimized, virtualSizeBytes };
  return { ...imported, task: tx.transfers.start(key, JSON.stringify([path, format, sha256]), (job) => writeImport(tx, plan, where, job)) };
}

/**
 * Destroys the owner's image `name` (a VM made from it has its own copy of the disk): nothing
 * when there is none, Busy while this runtime imports it.
 */
export async function deleteImportedDisk(tx: TransferContext, owner: Identity, name: string, signal?: AbortSignal): Promise<Started> {
  const { ctx } = tx;
  const running = tx.transfers.running(`import:${owner.uid}:${name}`);
  if (running !== undefined) throw new BusyError(`image ${JSON.stringify(name)} of ${owner.namespace}/${owner.name} is being imported (task ${running.id})`);
  let pending: string | undefined;
  for (const imported of await findImported(ctx, owner, name, signal)) {
    const task = await startTaskOn(ctx, 'Destroy_Task', imported.vm.ref, [], signal);
    const done = await settledNow(ctx, task, `removing image ${imported.vm.name}`, signal);
    if (done === undefined) pending ??= task.value;
  }
  return pending === undefined ? {} : { task: pending };
}
