// importDisk: a disk file of the local migration directory made into a base image in the storage
// pool, for create to use as a template (a full clone). The file streams over the SSH channel into
// `virsh vol-upload`, hashed on the way; the volume's SHA-256 on the host must then match what
// was sent, and what was sent the checksum the export wrote, else the volume is deleted.
//
// Imported volumes are always qcow2: a dir pool records no format, libvirt and qemu-img probe it
// from the content, and a raw disk whose guest wrote a qcow2 header there would become an image
// with a backing file of the guest's choosing. Raw and VMDK files are converted here first, read
// with their format named.
//
// The volume is named from the owner and the name (names.ts); the host keeps a record of the
// verified import (import-records.ts), so a repeated call returns the image without uploading it
// again, and create refuses an import volume that has none.

import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import {
  BusyError,
  ConflictError,
  HypervisorError,
  type DiskFormat,
  type DiskImported,
  type DiskImportRequest,
  type Identity,
  type ImageSpec,
  type Started,
} from '../../contracts/driver.js';
import { diskFileBytes, diskFilePath, exportedChecksum, hashedFileSource, verifiedChecksum } from '../common/disk-files.js';
import type { LibvirtContext } from './context.js';
import { xmlEscape } from './domain-xml.js';
import { deleteVolume, poolDirectory, volumePath } from './images.js';
import { readImportRecord, removeImportRecord, writeImportRecord } from './import-records.js';
import { convertImage, inspectDiskFile } from '../common/qemu-img.js';
import { importVolumeName, validateIdentity } from './names.js';
import { progressRange, type TransferJob } from './transfers.js';

/**
 * Files up to this size are checked against their checksum before the call returns (a quick
 * Conflict); larger ones while they upload, in the task, as hashing them here could outlast the
 * caller's deadline. Either way nothing is kept that does not match.
 */
export const INLINE_VERIFY_BYTES = 256 * 1024 * 1024;

/** How long the host may take to hash a volume: a floor, plus 20 MiB/s. */
function hashTimeoutMs(bytes: number): number {
  return 120_000 + Math.ceil(bytes / (20 * 1024 * 1024)) * 1000;
}



/**
 * An empty raw volume with the mode QEMU needs to read it as a backing file: vol-upload writes
 * from offset 0 and never truncates (libvirt 9, checked on the CI peer), so a volume created
 * larger (a qcow2 header sized for the capacity) could keep bytes past the upload. libvirt
 * probes the upload as qcow2 when the stream closes.
 */
function emptyVolumeXml(name: string): string {
  return (
    `<volume><name>${xmlEscape(name)}</name><capacity unit='bytes'>0</capacity>` +
    `<target><format type='raw'/><permissions><mode>0644</mode></permissions></target></volume>`
  );
}

/** Uploads a local file as the volume's whole content; the SHA-256 of what was sent. */
async function upload(ctx: LibvirtContext, volume: string, path: string, counted: (bytes: number) => void, signal: AbortSignal): Promise<string> {
  const pool = ctx.config.storagePool;
  await deleteVolume(ctx, volume, signal);
  await ctx.host.virsh(['vol-create', '--pool', pool, '--file', '/dev/stdin'], { stdin: emptyVolumeXml(volume), signal });
  const { source, digest } = hashedFileSource(path, counted);
  await ctx.host.stream(['virsh', '-q', '-c', ctx.host.uri, 'vol-upload', '--pool', pool, '--vol', volume, '--file', '/dev/stdin'], {
    stdin: source,
    signal,
    what: `uploading ${volume}`,
  });
  return digest();
}

/** The SHA-256 of the volume's bytes as the host reads them back. */
async function hostSha256(ctx: LibvirtContext, volume: string, bytes: number, signal: AbortSignal): Promise<string> {
  const path = await volumePath(ctx, volume, signal);
  if (path === undefined) throw new HypervisorError(`volume ${volume} vanished after its upload`);
  const out = await ctx.host.exec(['sha256sum', '--', path], { signal, timeoutMs: hashTimeoutMs(bytes), what: 'hashing the imported volume' });
  return out.trim().split(/\s/)[0] ?? '';
}

function mismatch(path: string, actual: string, expected: string): ConflictError {
  return new ConflictError(`disk file ${path} does not match its checksum (sha256 ${actual}, expected ${expected})`);
}

/** The qcow2 file to upload, and whether it is a converted copy to remove afterwards. */
async function qcow2Of(path: string, format: DiskFormat, volume: string, expected: string, job: TransferJob): Promise<{ file: string; converted: boolean }> {
  if (format === 'qcow2') return { file: path, converted: false };
  // Checked before converting: qemu-img reads the file itself, so the upload's hash would be the copy's.
  const { source, digest } = hashedFileSource(path, progressRange(job, await diskFileBytes(path), 0, 45));
  for await (const chunk of source) void chunk;
  const actual = digest();
  if (actual !== expected) throw mismatch(path, actual, expected);
  const file = `${path}.import-${createHash('sha256').update(volume).digest('hex').slice(0, 8)}.qcow2.partial`;
  await convertImage(path, format, file, 'qcow2', job.signal);
  return { file, converted: true };
}

/** The transfer: upload, both checks, then the record; the volume is deleted unless it is recorded. */
async function writeImport(ctx: LibvirtContext, volume: string, path: string, format: DiskFormat, expected: string, job: TransferJob): Promise<void> {
  let recorded = false;
  let converted: string | undefined;
  try {
    const qcow2 = await qcow2Of(path, format, volume, expected, job);
    if (qcow2.converted) converted = qcow2.file;
    const bytes = await diskFileBytes(qcow2.file);
    const sent = await upload(ctx, volume, qcow2.file, progressRange(job, bytes, qcow2.converted ? 50 : 0, 95), job.signal);
    if (!qcow2.converted && sent !== expected) throw mismatch(path, sent, expected);
    const stored = await hostSha256(ctx, volume, bytes, job.signal);
    if (stored !== sent) throw new HypervisorError(`image ${volume} on the host differs from the file sent (sha256 ${stored}, sent ${sent}); it was deleted, import again`);
    await writeImportRecord(ctx, volume, { fileSha256: expected, volumeSha256: stored, bytes }, job.signal);
    recorded = true;
  } finally {
    if (converted !== undefined) await rm(converted, { force: true });
    if (!recorded) await deleteVolume(ctx, volume).catch(() => undefined);
  }
}

export async function importDisk(ctx: LibvirtContext, owner: Identity, request: DiskImportRequest, signal?: AbortSignal): Promise<DiskImported> {
  validateIdentity(owner);
  const volume = importVolumeName(owner.uid, request.name);
  const path = diskFilePath(ctx.config.migration.root, request.file);
  const format = request.file.format;
  const expected = await exportedChecksum(path);
  // The checksum first: a damaged file is Conflict whatever else it breaks.
  if ((await diskFileBytes(path)) <= INLINE_VERIFY_BYTES) await verifiedChecksum(path, signal);
  const { virtualSizeBytes } = await inspectDiskFile(path, format, signal);
  const image: ImageSpec = { kind: 'template', ref: volume, fullClone: true };
  const imported: DiskImported = { image, sizeBytes: virtualSizeBytes };

  const [record, existing] = await Promise.all([readImportRecord(ctx, volume, signal), volumePath(ctx, volume, signal)]);
  if (record !== undefined && existing !== undefined) {
    if (record.fileSha256 === expected) return imported;
    throw new ConflictError(`image ${JSON.stringify(request.name)} of ${owner.namespace}/${owner.name} was imported from another file (sha256 ${record.fileSha256}); import this one under another name`);
  }
  // sha256sum reads the volume as a file on the host.
  await poolDirectory(ctx, signal, 'disk import');
  const begun = await ctx.transfers.start(
    [{ key: volume, kind: 'import' }],
    JSON.stringify([path, format, expected]),
    (job) => writeImport(ctx, volume, path, format, expected, job),
    signal,
  );
  // Not started: this image is being imported already (another call, another replica); its task is the answer.
  return { ...imported, task: begun.id };
}

/**
 * Removes an import's volume and its record: the record first, so a volume left by a cut-short
 * call is unfinished (never used) and removed by the next one. Busy while the import runs.
 */
export async function deleteImportedDisk(ctx: LibvirtContext, owner: Identity, name: string, signal?: AbortSignal): Promise<Started> {
  validateIdentity(owner);
  const volume = importVolumeName(owner.uid, name);
  const holder = await ctx.tasks.holder(volume, signal);
  if (holder !== undefined) throw new BusyError(`image ${volume} is being imported (task ${holder.id})`);
  await removeImportRecord(ctx, volume, signal);
  await deleteVolume(ctx, volume, signal);
  return {};
}
