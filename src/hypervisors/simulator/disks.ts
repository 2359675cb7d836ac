// Disk export and import with real files, so a migration out of (or into) the simulator moves
// real bytes through the migration directory. A simulated disk has no guest data; what it holds,
// and what an export writes, is a deterministic content: one header line naming the VM, the disk
// and its virtual size, then bytes derived from them, CONTENT_BYTES at most. An import reads the
// header back (for the virtual size) and makes the file a template `import-<owner>-<name>`.
import { createHash } from 'node:crypto';
import { mkdir, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  BusyError,
  NotFoundError,
  type DiskExportRequest,
  type DiskFormat,
  type DiskImported,
  type DiskImportRequest,
  type Identity,
  type Started,
  type VMRef,
} from '../../contracts/driver.js';
import { checksumPath, diskFilePath, sha256Of, verifiedChecksum, writeChecksum } from '../common/disk-files.js';
import { convertImage, inspectDiskFile } from '../common/qemu-img.js';
import type { DiskRecord, TaskFailure, VMRecord } from './model.js';
import type { SimWorld } from './world.js';

/** How many bytes of a disk the simulator writes out: its header and a deterministic body. */
export const CONTENT_BYTES = 4 * 1024 * 1024;
const HEADER = 'virtrigaud-simulator-disk ';

/** The content of a disk, as the simulator writes it. */
export function diskContent(vm: VMRecord, disk: DiskRecord): Buffer {
  const header = Buffer.from(`${HEADER}${JSON.stringify({ vm: vm.id, disk: disk.name, virtualSize: disk.sizeBytes })}\n`, 'utf8');
  const length = Math.max(header.length, Math.min(disk.sizeBytes, CONTENT_BYTES));
  const content = Buffer.alloc(length);
  header.copy(content);
  // Counter-mode SHA-256 of the VM and disk: bytes that differ from disk to disk, the same every run.
  let offset = header.length;
  for (let block = 0; offset < length; block++) {
    const digest = createHash('sha256').update(`${vm.id}/${disk.name}/${block}`).digest();
    offset += digest.copy(content, offset);
  }
  return content;
}

/**
 * Writes `content` to `path` as `format`, whole or not at all, then its checksum beside it. The
 * content is raw; another format is converted with qemu-img, as a runtime would.
 */
async function writeDiskFile(path: string, content: Buffer, format: DiskFormat): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const partial = `${path}.partial`;
  const raw = format === 'raw' ? partial : `${path}.raw.partial`;
  try {
    await writeFile(raw, content);
    if (format !== 'raw') await convertImage(raw, 'raw', partial, format);
  } finally {
    if (raw !== partial) await rm(raw, { force: true });
  }
  await rename(partial, path);
  await writeChecksum(path, await sha256Of(path));
}

export function exportDisk(world: SimWorld, root: string, ref: VMRef, request: DiskExportRequest, failWith?: string): Started {
  world.requireCapability('diskExport', 'disk export');
  const vm = world.requireIdle(ref);
  if (vm.powerState !== 'Off') throw new BusyError(`VM ${vm.id} is running; its disk is exported once it is off`);
  const disk = vm.disks.find((candidate) => candidate.name === request.disk);
  if (disk === undefined) throw new NotFoundError(`VM ${vm.id} has no disk '${request.disk}'`);
  const path = diskFilePath(root, request.file);
  const content = diskContent(vm, disk);
  const waitFor = writeDiskFile(path, content, request.file.format).then(
    (): TaskFailure | undefined => undefined,
    async (error: unknown): Promise<TaskFailure> => {
      await Promise.all([rm(`${path}.partial`, { force: true }), rm(`${path}.raw.partial`, { force: true })]);
      return { message: `writing ${request.file.path} failed: ${error instanceof Error ? error.message : String(error)}` };
    },
  );
  const task = world.startTask({
    vm,
    kind: 'export',
    lock: 'export',
    duration: world.durations.snapshot,
    ...(failWith === undefined ? {} : { failWith }),
    waitFor,
    onSuccess: world.whileExists(vm, () => undefined),
    // A failed export leaves nothing an import could take for a whole disk: removed once the
    // write has settled (a fault may fail the task while the file is still being written).
    onFailure: () => void waitFor.then(() => Promise.all([rm(path, { force: true }), rm(checksumPath(path), { force: true })])),
  });
  return { task: task.id };
}

/** The template name an owner's import gets: the same owner and name, the same template. */
export function importedTemplateName(owner: Identity, name: string): string {
  return `import-${owner.uid}-${name}`;
}

/**
 * Checks the file against its checksum, then makes it a template. Within the call: the files the
 * simulator writes are small. A template of that name is the import already done. A qcow2 or VMDK
 * file is read through qemu-img (converted to raw beside it, then removed).
 */
export async function importDisk(world: SimWorld, root: string, owner: Identity, request: DiskImportRequest): Promise<DiskImported> {
  world.requireCapability('diskImport', 'disk import');
  const name = importedTemplateName(owner, request.name);
  const existing = world.template(name);
  if (existing !== undefined) return { image: { kind: 'template', ref: name, fullClone: true }, sizeBytes: existing.diskBytes };
  const path = diskFilePath(root, request.file);
  await verifiedChecksum(path);
  let sizeBytes: number;
  if (request.file.format === 'raw') {
    sizeBytes = virtualSize(await readStart(path)) ?? (await stat(path)).size;
  } else {
    const { virtualSizeBytes } = await inspectDiskFile(path, request.file.format);
    const raw = `${path}.import-${owner.uid}.raw`;
    try {
      await convertImage(path, request.file.format, raw, 'raw');
      sizeBytes = virtualSize(await readStart(raw)) ?? virtualSizeBytes;
    } finally {
      await rm(raw, { force: true });
    }
  }
  // Another call may have finished the same import meanwhile: one template either way.
  if (world.template(name) === undefined) world.addTemplate({ name, id: world.allocateId(), diskBytes: sizeBytes });
  return { image: { kind: 'template', ref: name, fullClone: true }, sizeBytes: world.template(name)?.diskBytes ?? sizeBytes };
}

/** Removes an import's template; nothing when there is none (a VM made from it has its own copy). */
export function deleteImportedDisk(world: SimWorld, owner: Identity, name: string): Started {
  world.requireCapability('diskImport', 'disk import');
  world.removeTemplate(importedTemplateName(owner, name));
  return {};
}

async function readStart(path: string): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(4096);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** The virtual size a simulator header declares; undefined for any other file (its length is its size). */
function virtualSize(start: Buffer): number | undefined {
  const line = start.toString('utf8').split('\n')[0] ?? '';
  if (!line.startsWith(HEADER)) return undefined;
  try {
    const header = JSON.parse(line.slice(HEADER.length)) as { virtualSize?: unknown };
    return typeof header.virtualSize === 'number' && header.virtualSize > 0 ? header.virtualSize : undefined;
  } catch {
    return undefined;
  }
}
