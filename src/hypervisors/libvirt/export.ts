// exportDisk: a powered-off VM's disk, from the libvirt host into a file of the local migration
// directory, with its SHA-256 beside it. The bytes stream over the SSH channel (`virsh
// vol-download` to stdout) straight into `<file>.partial`, hashed on the way, and the file is
// renamed whole before its checksum is written: a reader sees no file, or a whole one.
//
// A VM's volume may be an overlay (a linked VM, a frozen clone source): its bytes alone name a
// backing file on the host, so the chain is fetched layer by layer and flattened here with
// qemu-img. So is a volume whose format differs from the one asked for. Either way the host does
// no work beyond reading its files.

import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  BusyError,
  HypervisorError,
  InvalidSpecError,
  UnsupportedError,
  type DiskExportRequest,
  type DiskFormat,
  type Started,
  type VMRef,
} from '../../contracts/driver.js';
import { checksumPath, diskFilePath, sha256Of, writeChecksum } from '../common/disk-files.js';
import type { LibvirtContext } from './context.js';
import { convertImage, requireLocalQemuImg, setBackingFile } from '../common/qemu-img.js';
import type { ParsedDomain } from './domain-xml.js';
import { domainState, isActive, requireCreated, type OwnedDomain } from './observe.js';
import { hashedFileSink, progressRange, type TransferJob } from './transfers.js';

type DomainDisk = ParsedDomain['disks'][number];

/** One file of a disk's backing chain on the host, top (the VM's own volume) first. */
export interface ChainLayer {
  path: string;
  format: string;
  /** The file's length: what streaming it moves. */
  bytes: number;
}

/** How the file is made: the one layer streamed as it is, or the layers fetched and flattened here. */
export type ExportPlan = { kind: 'stream'; layer: ChainLayer } | { kind: 'flatten'; layers: ChainLayer[] };

// `$1` URI, `$2` path: the file's bytes on stdout, through libvirt when a pool holds it (any pool
// type), else read directly (a template outside every pool: QEMU reads it for the VM already).
const READ_SCRIPT = `set -u
if virsh -q -c "$1" vol-key --vol "$2" >/dev/null 2>&1; then
  exec virsh -q -c "$1" vol-download --vol "$2" --file /dev/stdout
fi
exec cat -- "$2"
`;

/** Streaming it unchanged only makes the file when the disk is one layer already in the format asked for. */
export function exportPlan(layers: readonly ChainLayer[], format: DiskFormat): ExportPlan {
  const [top] = layers;
  if (top === undefined) throw new HypervisorError('the disk has no image');
  if (layers.length === 1 && top.format === format) return { kind: 'stream', layer: top };
  return { kind: 'flatten', layers: [...layers] };
}

/** The disk `name` names: a disk of the spec by name, `root` the boot disk whatever its name. */
export function exportedDisk(domain: OwnedDomain, name: string): DomainDisk {
  const entry = domain.metadata.disks.find((disk) => disk.name === name) ?? (name === 'root' ? domain.metadata.disks[0] : undefined);
  const disk = entry && domain.disks.find((candidate) => candidate.device === 'disk' && candidate.target === entry.target);
  if (!disk) throw new InvalidSpecError(`VM ${domain.name} has no disk ${JSON.stringify(name)}`);
  return disk;
}

interface ChainJson {
  filename?: unknown;
  format?: unknown;
}

/** The disk's files, top first, with their formats and lengths, as the host's qemu-img sees them. */
async function backingChain(ctx: LibvirtContext, path: string, signal?: AbortSignal): Promise<ChainLayer[]> {
  // -U: a domain that is off holds no lock, but a clone reading the same base may.
  const out = await ctx.host.exec(['qemu-img', 'info', '-U', '--backing-chain', '--output=json', path], { signal, what: 'reading the disk' });
  let parsed: unknown;
  try {
    parsed = JSON.parse(out);
  } catch {
    throw new HypervisorError(`qemu-img info of ${path} printed no JSON`);
  }
  const images = (Array.isArray(parsed) ? parsed : [parsed]) as ChainJson[];
  const layers = images.map((image, index) => {
    const { filename, format } = image;
    if (typeof filename !== 'string' || typeof format !== 'string') throw new HypervisorError(`cannot read layer ${index} of ${path}`);
    // A layer behind a protocol (json:, nbd:, rbd:) is no file the host can stream.
    if (!filename.startsWith('/')) throw new UnsupportedError(`disk ${path} has a layer that is not a file (${filename.slice(0, 100)})`);
    if (index < images.length - 1 && format !== 'qcow2') throw new UnsupportedError(`disk ${path} has a ${format} layer with a backing file`);
    return { path: filename, format };
  });
  const lengths = (await ctx.host.exec(['stat', '-L', '-c', '%s', '--', ...layers.map((layer) => layer.path)], { signal, what: 'reading the disk' })).trim().split('\n');
  return layers.map((layer, index) => ({ ...layer, bytes: Number(lengths[index] ?? 0) }));
}

async function diskPath(ctx: LibvirtContext, domain: OwnedDomain, disk: DomainDisk, signal?: AbortSignal): Promise<string> {
  if (disk.file !== undefined) return disk.file;
  if (disk.pool === undefined || disk.volume === undefined) throw new HypervisorError(`disk ${disk.target} of VM ${domain.name} has no file`);
  return (await ctx.host.virsh(['vol-path', '--pool', disk.pool, '--vol', disk.volume], { signal })).trim();
}

async function requireOff(ctx: LibvirtContext, domain: OwnedDomain, signal?: AbortSignal): Promise<void> {
  if (isActive(await domainState(ctx, domain.uuid, signal))) throw new BusyError(`VM ${domain.name} is running; export needs it off`);
}

/** Streams one file of the host into a local file; its SHA-256. */
async function download(ctx: LibvirtContext, from: string, to: string, counted: (bytes: number) => void, signal: AbortSignal): Promise<string> {
  const { sink, digest } = await hashedFileSink(to, counted);
  await ctx.host.stream(['sh', '-c', READ_SCRIPT, 'sh', ctx.host.uri, from], { stdout: sink, signal, what: `downloading ${from}` });
  return digest();
}

/** The layers downloaded next to the file, re-linked to each other, then flattened into `partial`. */
async function flatten(ctx: LibvirtContext, layers: readonly ChainLayer[], partial: string, format: DiskFormat, job: TransferJob): Promise<void> {
  const directory = `${partial}.layers`;
  await rm(directory, { recursive: true, force: true });
  await mkdir(directory);
  try {
    const total = layers.reduce((sum, layer) => sum + layer.bytes, 0);
    const counted = progressRange(job, total, 0, 90);
    const files = layers.map((layer, index) => join(directory, `${index}.${layer.format}`));
    for (const [index, layer] of layers.entries()) await download(ctx, layer.path, files[index] ?? '', counted, job.signal);
    for (let index = 0; index < layers.length - 1; index++) {
      await setBackingFile(files[index] ?? '', files[index + 1] ?? '', layers[index + 1]?.format ?? '', job.signal);
    }
    await convertImage(files[0] ?? '', layers[0]?.format ?? '', partial, format, job.signal);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

/** The transfer: the file written whole under its own name, then its checksum; nothing of a failed one is left. */
async function writeExport(ctx: LibvirtContext, domain: OwnedDomain, plan: ExportPlan, target: string, format: DiskFormat, job: TransferJob): Promise<void> {
  // Powered on between the call's check and the lock: its disk would change while it is read.
  await requireOff(ctx, domain, job.signal);
  // The old checksum goes first: until the new one is written, an import finds no finished export.
  await rm(checksumPath(target), { force: true });
  await mkdir(dirname(target), { recursive: true });
  const partial = `${target}.partial`;
  try {
    let sha256: string;
    if (plan.kind === 'stream') {
      sha256 = await download(ctx, plan.layer.path, partial, progressRange(job, plan.layer.bytes, 0, 99), job.signal);
    } else {
      await flatten(ctx, plan.layers, partial, format, job);
      sha256 = await sha256Of(partial, job.signal);
    }
    await rename(partial, target);
    await writeChecksum(target, sha256);
  } finally {
    await rm(partial, { force: true });
  }
}

export async function exportDisk(ctx: LibvirtContext, ref: VMRef, request: DiskExportRequest, signal?: AbortSignal): Promise<Started> {
  const target = diskFilePath(ctx.config.migration.root, request.file);
  const format = request.file.format;
  const domain = await requireCreated(ctx, ref, signal);
  const disk = exportedDisk(domain, request.disk);
  await requireOff(ctx, domain, signal);
  const plan = exportPlan(await backingChain(ctx, await diskPath(ctx, domain, disk, signal), signal), format);
  if (plan.kind === 'flatten') await requireLocalQemuImg(`exporting disk ${request.disk} of VM ${domain.name} as one ${format} file`, signal);
  // The lock keeps the VM off (power and delete are refused while a task holds it) until the copy ends.
  const begun = await ctx.transfers.start(
    [{ key: domain.uuid, kind: 'export' }],
    JSON.stringify([request.disk, target, format]),
    (job) => writeExport(ctx, domain, plan, target, format, job),
    signal,
  );
  if (!begun.started && !begun.sameRequest) throw new BusyError(`another export of VM ${domain.name} is running`);
  return { task: begun.id };
}
