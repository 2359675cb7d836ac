// The one VMDK flavour an NFC transfer carries: streamOptimized (compressed grains in stream
// order), what ExportVm serves and what an ImportVApp lease's POST takes. Files of the migration
// directory are told and made here with qemu-img, like every other conversion (common/qemu-img.ts,
// whose convertImage takes no subformat).

import { spawn } from 'node:child_process';
import { open } from 'node:fs/promises';
import { HypervisorError, UnsupportedError, type DiskFormat } from '../../contracts/driver.js';

// The sparse extent header (VMware Virtual Disk Format 1.1, "Hosted Sparse Extent Header"):
// magic `KDMV`, the embedded descriptor within the first sectors, which names the create type.
const SPARSE_MAGIC = Buffer.from('KDMV', 'latin1');
const HEAD_BYTES = 64 * 1024;
const STREAM_OPTIMIZED = /createType\s*=\s*"streamOptimized"/;

/** Whether the file is a streamOptimized VMDK (its header and embedded descriptor say so). */
export async function isStreamOptimized(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(HEAD_BYTES);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    if (bytesRead < 512 || !head.subarray(0, 4).equals(SPARSE_MAGIC)) return false;
    return STREAM_OPTIMIZED.test(head.subarray(0, bytesRead).toString('latin1'));
  } finally {
    await handle.close();
  }
}

/** Writes `from` (read as `format`, named as every qemu-img call here does) to `to` as a streamOptimized VMDK. */
export function toStreamOptimized(from: string, format: DiskFormat, to: string, signal?: AbortSignal): Promise<void> {
  const args = ['convert', '-q', '-f', format, '-O', 'vmdk', '-o', 'subformat=streamOptimized', from, to];
  return new Promise<void>((resolve, reject) => {
    const child = spawn('qemu-img', args, { stdio: ['ignore', 'ignore', 'pipe'], ...(signal ? { signal } : {}) });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-4096);
    });
    child.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') reject(new UnsupportedError('qemu-img is not installed where the provider runtime runs; importing a disk into vSphere needs it'));
      else reject(new HypervisorError(`qemu-img (converting a disk to a streamOptimized VMDK): ${error.message}`));
    });
    child.on('close', (code) => {
      if (code === 0) resolve();
      else reject(new HypervisorError(`qemu-img (converting a disk to a streamOptimized VMDK) failed: ${stderr.trim().split('\n')[0] ?? `exit code ${code ?? 'unknown'}`}`));
    });
  });
}
