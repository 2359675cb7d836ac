// qemu-img where the provider runtime runs: disk files of the migration directory are converted
// and inspected here, next to the file, not on the hypervisor (which sees none of them).
// Every call names the image's format (-f): probing a raw image would read a guest-written qcow2
// header as real (qemu-img warns about it), and such a header may name any file as its backing.

import { spawn } from 'node:child_process';
import { HypervisorError, InvalidSpecError, UnsupportedError, type DiskFormat } from '../../contracts/driver.js';

const STDERR_KEPT = 4096;

function qemuImg(args: readonly string[], purpose: string, signal?: AbortSignal): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const child = spawn('qemu-img', args, { stdio: ['ignore', 'pipe', 'pipe'], ...(signal ? { signal } : {}) });
    const stdout: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_KEPT);
    });
    child.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') reject(new UnsupportedError(`qemu-img is not installed where the provider runtime runs; ${purpose} needs it`));
      else reject(new HypervisorError(`qemu-img (${purpose}): ${error.message}`));
    });
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(stdout).toString('utf8'));
      else reject(new HypervisorError(`qemu-img (${purpose}) failed: ${stderr.trim().split('\n')[0] ?? `exit code ${code ?? 'unknown'}`}`));
    });
  });
}

/** Refuses early, with UnsupportedError, when there is no qemu-img to do `purpose`. */
export async function requireLocalQemuImg(purpose: string, signal?: AbortSignal): Promise<void> {
  await qemuImg(['--version'], purpose, signal);
}

export interface LocalImage {
  virtualSizeBytes: number;
}

interface ImageInfoJson {
  format?: unknown;
  'virtual-size'?: unknown;
  'backing-filename'?: unknown;
  'data-file'?: unknown;
  'format-specific'?: { data?: { 'data-file'?: unknown; extents?: { filename?: unknown }[] } };
  filename?: unknown;
}

/** Why an image must not be imported: it reads other files than itself (a backing file, a data file, VMDK extents). */
export function foreignFiles(info: ImageInfoJson, path: string): string | undefined {
  if (info['backing-filename'] !== undefined) return 'it has a backing file';
  if (info['data-file'] !== undefined || info['format-specific']?.data?.['data-file'] !== undefined) return 'it has an external data file';
  const extents = info['format-specific']?.data?.extents ?? [];
  if (extents.some((extent) => extent.filename !== path)) return 'its extents are other files';
  return undefined;
}

/**
 * The virtual size of a disk file read as `format`; InvalidSpec when it is not that format or
 * would read other files than itself (a backing file could be any file of the runtime).
 */
export async function inspectDiskFile(path: string, format: DiskFormat, signal?: AbortSignal): Promise<LocalImage> {
  let out: string;
  try {
    out = await qemuImg(['info', '-f', format, '--output=json', path], 'reading a disk file', signal);
  } catch (error) {
    if (error instanceof HypervisorError) throw new InvalidSpecError(`disk file ${path} cannot be read as ${format}: ${error.message}`);
    throw error;
  }
  let info: ImageInfoJson;
  try {
    info = JSON.parse(out) as ImageInfoJson;
  } catch {
    throw new HypervisorError(`qemu-img info of ${path} printed no JSON`);
  }
  if (typeof info['virtual-size'] !== 'number') throw new InvalidSpecError(`disk file ${path} has no virtual size`);
  const foreign = foreignFiles(info, path);
  if (foreign !== undefined) throw new InvalidSpecError(`disk file ${path} cannot be imported: ${foreign}`);
  return { virtualSizeBytes: info['virtual-size'] };
}

/** Writes `from` (read as `fromFormat`) to `to` as `toFormat`, standalone (no backing file). */
export async function convertImage(from: string, fromFormat: string, to: string, toFormat: DiskFormat, signal?: AbortSignal): Promise<void> {
  // compat=1.1: what every volume of the driver is (images.ts); v2 images cannot be resized once they hold a snapshot.
  const options = toFormat === 'qcow2' ? ['-o', 'compat=1.1'] : [];
  await qemuImg(['convert', '-q', '-f', fromFormat, '-O', toFormat, ...options, from, to], `converting a disk to ${toFormat}`, signal);
}

/** Points the qcow2 image `path` at `backing` (header only; the data is not touched). */
export async function setBackingFile(path: string, backing: string, backingFormat: string, signal?: AbortSignal): Promise<void> {
  await qemuImg(['rebase', '-u', '-f', 'qcow2', '-b', backing, '-F', backingFormat, path], 'linking the layers of a disk', signal);
}
