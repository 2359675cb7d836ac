// exportDisk: a powered-off VM's disk, read through an ExportVm lease into a file of the local
// migration directory, with its SHA-256 beside it. The call checks the owner, the power state and
// the disk, starts ExportVm and answers a local transfer task (transfers.ts); the work goes on in
// the background: wait for the lease, GET the disk's device URL (a streamOptimized VMDK) into
// `<file>.download.partial` while HttpNfcLeaseProgress keeps the lease (and so the VM, which vSphere
// will not power on while the lease holds it) ours, HttpNfcLeaseComplete once the bytes are all
// here, then qemu-img makes the format asked for (a VMDK asked for stays the streamOptimized one
// vSphere served, checked by qemu-img). The file is renamed whole before its checksum is written,
// and a failed export aborts the lease and leaves neither file nor checksum.

import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  BusyError,
  HypervisorError,
  InvalidSpecError,
  type DiskExportRequest,
  type DiskFormat,
  type Started,
  type VMRef,
} from '../../contracts/driver.js';
import { checksumPath, diskFilePath, sha256Of, writeChecksum } from '../common/disk-files.js';
import { convertImage, inspectDiskFile, requireLocalQemuImg } from '../common/qemu-img.js';
import { morefOf } from './client.js';
import { findDisk, readDevices, type Disk } from './devices.js';
import { diskSlotsOf } from './identity.js';
import { abortLease, completeLease, keepLeaseAlive, leaseReady, type LeaseInfo, type NfcDevice } from './nfc.js';
import { NfcConnection, deviceURL } from './nfc-http.js';
import { powerStateOf } from './power.js';
import { moref, type MoRef } from './soap.js';
import type { TransferContext, TransferJob } from './transfers.js';
import { intAt, typeName, type XmlElement } from './xml.js';
import { requireOwned } from './vm.js';

/**
 * How the lease's device keys name a disk, `/<controller type><bus>:<unit>` after the VM's moid
 * (`/vm-70/VirtualLsiLogicController0:0`, as vSphere lists them); undefined when the VM's
 * devices do not say.
 */
export function deviceKeySuffix(devices: XmlElement | undefined, disk: Pick<Disk, 'controllerKey' | 'unitNumber'>): string | undefined {
  const controller = devices?.children.find((device) => intAt(device, 'key') === disk.controllerKey);
  const type = controller === undefined ? undefined : typeName(controller);
  const bus = intAt(controller, 'busNumber');
  if (type === undefined || bus === undefined) return undefined;
  return `/${type}${bus}:${disk.unitNumber ?? 0}`;
}

/**
 * The device URL of the disk (position `index` of `count` disks): the one whose key names its
 * controller and unit, else, when the lease lists one disk URL per disk (vcsim's keys name no
 * controller), the one at the disk's position: vSphere lists them in device order.
 */
export function exportedDevice(info: LeaseInfo, suffix: string | undefined, index: number, count: number): NfcDevice {
  const disks = info.devices.filter((device) => device.disk);
  const named = suffix === undefined ? undefined : disks.find((device) => device.key.endsWith(suffix));
  if (named !== undefined) return named;
  const placed = disks.length === count ? disks[index] : undefined;
  if (placed === undefined) throw new HypervisorError(`the export lease lists ${disks.length} disk URLs for ${count} disks, none of them for this disk`);
  return placed;
}

interface ExportPlan {
  lease: MoRef;
  vmName: string;
  disk: Disk;
  suffix: string | undefined;
  index: number;
  count: number;
  target: string;
  format: DiskFormat;
}

/** The lease's disk downloaded to `download`, the lease renewed meanwhile and completed after. */
async function downloadDisk(tx: TransferContext, plan: ExportPlan, download: string, job: TransferJob): Promise<void> {
  const { ctx } = tx;
  const info = await leaseReady(ctx, plan.lease, tx.timing, job.signal);
  const device = exportedDevice(info, plan.suffix, plan.index, plan.count);
  const url = deviceURL(device.url, ctx.config.origin);
  const connection = new NfcConnection(ctx.config, url, device.sslThumbprint, await ctx.client.currentSession(job.signal));
  const keeper = keepLeaseAlive(ctx, plan.lease, job, tx.timing);
  try {
    let done = 0;
    await connection.download(
      download,
      (bytes, total) => {
        done += bytes;
        // A streamOptimized disk is compressed: without a length the capacity bounds it from above.
        job.progress((90 * done) / Math.max(total ?? plan.disk.capacityBytes, done, 1));
      },
      job.signal,
    );
  } finally {
    keeper.stop();
    await connection.close();
  }
  await completeLease(ctx, plan.lease, job.signal);
}

/** The transfer: the file written whole under its own name, then its checksum; nothing of a failed one is left. */
async function writeExport(tx: TransferContext, plan: ExportPlan, job: TransferJob): Promise<void> {
  const { target, format } = plan;
  const download = `${target}.download.partial`;
  const partial = `${target}.partial`;
  let completed = false;
  try {
    // The old checksum goes first: until the new one is written, an import finds no finished export.
    await rm(checksumPath(target), { force: true });
    await mkdir(dirname(target), { recursive: true });
    await downloadDisk(tx, plan, download, job);
    completed = true;
    // qemu-img reads what vSphere served as the VMDK it must be (never probed): junk fails here.
    await inspectDiskFile(download, 'vmdk', job.signal);
    if (format === 'vmdk') await rename(download, partial);
    else await convertImage(download, 'vmdk', partial, format, job.signal);
    job.progress(98);
    await rename(partial, target);
    await writeChecksum(target, await sha256Of(target, job.signal));
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    if (!completed) await abortLease(tx.ctx, plan.lease, `export of disk of ${plan.vmName} failed: ${why}`);
    await Promise.all([rm(target, { force: true }), rm(checksumPath(target), { force: true })]);
    throw error;
  } finally {
    await Promise.all([rm(download, { force: true }), rm(partial, { force: true })]);
  }
}

export async function exportDisk(tx: TransferContext, ref: VMRef, request: DiskExportRequest, signal?: AbortSignal): Promise<Started> {
  const { ctx } = tx;
  const target = diskFilePath(tx.migration.root, request.file);
  const format = request.file.format;
  const vm = await requireOwned(ctx, ref, signal);
  const key = `export:${vm.ref.value}`;
  const wanted = JSON.stringify([request.disk, target, format]);
  const running = tx.transfers.running(key);
  if (running !== undefined) {
    if (running.request === wanted) return { task: running.id };
    throw new BusyError(`another export of VM ${vm.name} is running (task ${running.id})`);
  }
  const state = powerStateOf(vm);
  if (state !== 'poweredOff') throw new BusyError(`VM ${vm.name} is ${state}; its disk is exported once it is off`);
  const deviceList = vm.object.props.get('config.hardware.device');
  const devices = readDevices(deviceList);
  const disk = findDisk(devices, diskSlotsOf(vm.extraConfig), request.disk);
  if (disk === undefined) throw new InvalidSpecError(`VM ${vm.name} has no disk ${JSON.stringify(request.disk)}`);
  await requireLocalQemuImg(`exporting disk ${request.disk} of VM ${vm.name}`, signal);
  const lease = morefOf(await ctx.client.returnval('ExportVm', [moref('_this', vm.ref)], signal));
  if (lease === undefined) throw new HypervisorError(`vSphere answered ExportVm on ${vm.name} without a lease`);
  const plan: ExportPlan = {
    lease,
    vmName: vm.name,
    disk,
    suffix: deviceKeySuffix(deviceList, disk),
    index: devices.disks.indexOf(disk),
    count: devices.disks.length,
    target,
    format,
  };
  // From here the lease is ours to finish: the work no longer follows the caller's signal.
  return { task: tx.transfers.start(key, wanted, (job) => writeExport(tx, plan, job)) };
}
