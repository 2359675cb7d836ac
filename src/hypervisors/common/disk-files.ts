// Disk files in the migration directory (a VMMigration's PVC, mounted by the provider runtime):
// where a relative DiskFile path lands, and the SHA-256 written beside every exported file and
// checked before every import. Shared by every driver that exports or imports disks.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { Transform, type Readable } from 'node:stream';
import { isAbsolute, join, normalize, sep } from 'node:path';
import { ConflictError, DEFAULT_MIGRATION_DIR, InvalidSpecError, NotFoundError, type DiskFile } from '../../contracts/driver.js';
import { envValue, type Env } from './env.js';

export function migrationDir(env: Env): string {
  return envValue(env, 'MIGRATION_DIR') ?? DEFAULT_MIGRATION_DIR;
}

/** The absolute path of `file` below `root`; InvalidSpec for an absolute path, `..` or a NUL. */
export function diskFilePath(root: string, file: DiskFile): string {
  const path = file.path;
  if (path === '' || path.includes('\0') || isAbsolute(path)) throw new InvalidSpecError(`disk file path '${path.replace(/\0/g, '')}' must be relative to the migration directory`);
  const relative = normalize(path);
  if (relative === '..' || relative.startsWith(`..${sep}`) || relative.split(sep).includes('..')) {
    throw new InvalidSpecError(`disk file path '${path}' leaves the migration directory`);
  }
  // '.', 'a/..' or 'a/' name a directory: writing it fails every time, and a failed write is retried.
  if (relative === '.' || relative.endsWith(sep)) throw new InvalidSpecError(`disk file path '${path}' names a directory, not a file`);
  return join(root, relative);
}

export function checksumPath(path: string): string {
  return `${path}.sha256`;
}

/** The SHA-256 (hex) of a file, read as a stream. */
export async function sha256Of(path: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  const stream = createReadStream(path, signal ? { signal } : {});
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Writes the checksum beside a whole file: atomically, so a reader sees none or the right one. */
export async function writeChecksum(path: string, sha256: string): Promise<void> {
  const partial = `${checksumPath(path)}.partial`;
  await writeFile(partial, `${sha256}\n`, 'utf8');
  await rename(partial, checksumPath(path));
}

/**
 * The file's checksum, checked against the one written beside it: NotFound when the file or its
 * checksum is missing (the export has not finished), Conflict when they differ (a bad copy).
 */
export async function verifiedChecksum(path: string, signal?: AbortSignal): Promise<string> {
  let expected: string;
  try {
    expected = (await readFile(checksumPath(path), 'utf8')).trim();
  } catch {
    throw new NotFoundError(`no checksum beside ${path}: the export has not finished`);
  }
  let actual: string;
  try {
    actual = await sha256Of(path, signal);
  } catch {
    throw new NotFoundError(`disk file ${path} cannot be read`);
  }
  if (actual !== expected) throw new ConflictError(`disk file ${path} does not match its checksum (sha256 ${actual}, expected ${expected})`);
  return actual;
}

/**
 * Where a runtime keeps migration files: `root` (MIGRATION_DIR) and, in a provider runtime, the
 * volumes the Provider controller mounted below it (MIGRATION_VOLUMES, comma-separated PVC names).
 * Without MIGRATION_VOLUMES (drivers in the hook server's own process, tests) a volume is a plain
 * directory of `root`, made when first asked for.
 */
export interface MigrationStorage {
  root: string;
  volumes?: readonly string[];
}

export function migrationStorage(env: Env): MigrationStorage {
  const root = migrationDir(env);
  const listed = envValue(env, 'MIGRATION_VOLUMES');
  if (listed === undefined) return env['MIGRATION_VOLUMES'] === undefined ? { root } : { root, volumes: [] };
  return { root, volumes: listed.split(',').map((volume) => volume.trim()).filter((volume) => volume !== '') };
}

const VOLUME_NAME = /^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/;

/**
 * Checks that the migration volume `volume` is there and can be written, and how much room it
 * has: NotFound while this runtime has not mounted it (the Provider's runtime is restarting to
 * mount it), InvalidSpec "PVC mount not writable" when a file cannot be created in it.
 */
export async function checkMigrationVolume(storage: MigrationStorage, volume: string): Promise<{ freeBytes: number }> {
  if (!VOLUME_NAME.test(volume)) throw new InvalidSpecError(`migration volume '${volume.replace(/[^\x20-\x7e]/g, '?')}' is not a PVC name`);
  const dir = join(storage.root, volume);
  if (storage.volumes !== undefined) {
    if (!storage.volumes.includes(volume)) throw new NotFoundError(`PVC ${volume} is not mounted in this provider runtime yet`);
  } else {
    await mkdir(dir, { recursive: true }).catch((error: NodeJS.ErrnoException) => {
      throw new InvalidSpecError(`PVC mount not writable: cannot make ${dir} (${error.code ?? error.message})`);
    });
  }
  const probe = join(dir, `.write-check-${process.pid}-${randomBytes(4).toString('hex')}`);
  try {
    await writeFile(probe, 'virtrigaud\n', { flag: 'wx' });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new NotFoundError(`PVC ${volume} is not mounted at ${dir}`);
    throw new InvalidSpecError(`PVC mount not writable: ${dir} (${code ?? 'write failed'})`);
  } finally {
    await rm(probe, { force: true }).catch(() => undefined);
  }
  const stats = await statfs(dir);
  return { freeBytes: Number(stats.bavail) * Number(stats.bsize) };
}

/**
 * Removes a directory of migration files (`<volume>/<migration>`) and everything in it; nothing
 * when it is gone already. A path of one segment (a whole volume) is refused.
 */
export async function removeMigrationFiles(storage: MigrationStorage, dir: string): Promise<void> {
  const path = diskFilePath(storage.root, { path: dir, format: 'raw' });
  const segments = normalize(dir).split(sep).filter((segment) => segment !== '');
  if (segments.length < 2) throw new InvalidSpecError(`'${dir}' is a whole migration volume; only a migration's directory in it is removed`);
  await rm(path, { recursive: true, force: true });
}

const SHA256 = /^[0-9a-f]{64}$/;

/** The SHA-256 the export wrote beside the file; undefined while it has not (Conflict for one that is not a SHA-256). */
export async function writtenChecksum(path: string): Promise<string | undefined> {
  let text: string;
  try {
    text = (await readFile(checksumPath(path), 'utf8')).trim().toLowerCase();
  } catch {
    return undefined;
  }
  if (!SHA256.test(text)) throw new ConflictError(`the checksum beside ${path} is not a SHA-256`);
  return text;
}

/** The SHA-256 the export wrote beside the file; NotFound while the export has not finished. */
export async function exportedChecksum(path: string): Promise<string> {
  const written = await writtenChecksum(path);
  if (written === undefined) throw new NotFoundError(`no checksum beside ${path}: the export has not finished`);
  return written;
}

/** The file's length; NotFound when it cannot be read. */
export async function diskFileBytes(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    throw new NotFoundError(`disk file ${path} cannot be read`);
  }
}

/** A file read as a stream, hashed and counted on the way; `digest()` once it has ended. */
export function hashedFileSource(path: string, counted: (bytes: number) => void): { source: Readable; digest(): string } {
  const hash = createHash('sha256');
  const file = createReadStream(path, { highWaterMark: 1024 * 1024 });
  // Piped through a transform rather than read with a 'data' listener: a listener would start the
  // flow before the consumer (an SSH channel, an HTTP request) is ready, and what flowed meanwhile would be lost.
  const source = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      counted(chunk.length);
      callback(null, chunk);
    },
  });
  file.once('error', (error) => source.destroy(error));
  source.once('close', () => file.destroy());
  file.pipe(source);
  return { source, digest: () => hash.digest('hex') };
}
