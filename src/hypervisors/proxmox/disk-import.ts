// importDisk and deleteImportedDisk: a disk file of the runtime's migration directory made into a
// PVE import volume (`<storage>:import/<file>`), which create turns into a new VM's root disk
// (import-create.ts). PVE takes in nothing but what it downloads itself: `POST …/download-url`
// with content=import fetches the file from this runtime's file server (file-server.ts) with wget
// and checks its SHA-256 before the volume appears under its name (pve-common Tools.pm
// download_file_from_url); its UPID is the task. Disk images in import storages came with PVE 8.4
// (libpve-storage-perl 8.3.6, "import: allow upload of guest images files into import storage"):
// the 8.4 and 9.1 schemas are alike, and the handler checks what they do not say: the storage is
// file-based with `import` content, the name is `[a-zA-Z0-9-.+=_]+.(ova|qcow2|raw|vmdk)`
// (pve-storage API2/Storage/Status.pm), and the image refers to no other file (file_size_info,
// untrusted).
//
// The file name derives from the owner and the import's name, plus the first 16 hex digits of the
// file's SHA-256: a repeated call finds the volume (its storage's content) and downloads nothing
// twice, and the same name for another file is Conflict, as on libvirt.

import { createHash } from 'node:crypto';
import {
  BusyError,
  ConflictError,
  InvalidSpecError,
  NotFoundError,
  UnreachableError,
  UnsupportedError,
  type DiskFormat,
  type DiskImported,
  type DiskImportRequest,
  type Identity,
  type Started,
} from '../../contracts/driver.js';
import { diskFileBytes, diskFilePath, verifiedChecksum, writtenChecksum } from '../common/disk-files.js';
import { inspectDiskFile } from '../common/qemu-img.js';
import { segment } from './client.js';
import type { ProxmoxConfig } from './config.js';
import { runningTasksOfOurs } from './creations.js';
import type { MigrationFileServer } from './file-server.js';
import { probe } from './inventory.js';
import { started } from './power.js';
import { parseResources, type ClusterResources } from './resources.js';
import { contentStorages, findFiles, locateFile, type ContentStorage, type StoredFile } from './storage-content.js';
import type { ProxmoxContext } from './vm.js';

export const NO_FILE_SERVER =
  'the Proxmox driver imports disks through PVE downloading them from this runtime: set PVE_MIGRATION_LISTEN and PVE_MIGRATION_URL so Proxmox can download migration files from this runtime';

/**
 * Files up to this size are checked against their checksum before the call returns (a quick
 * Conflict, nothing downloaded); PVE checks larger ones as it downloads them, as hashing them here
 * could outlast the caller's deadline. Either way no volume appears that does not match.
 */
export const INLINE_VERIFY_BYTES = 256 * 1024 * 1024;

const PREFIX = 'vr-import-';
const UID = /^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/;
const TAG_LENGTH = 16;
const TAGGED = /^([0-9a-f]{16})\.(qcow2|raw|vmdk)$/;

/** Where import volumes can live: a storage with `import` content, as one node sees it. */
export type ImportStorage = ContentStorage;

/**
 * An import volume; its length on the storage is how PVE lists an import file, not its virtual
 * size, and its tag the SHA-256 prefix in its name: which file it was made from.
 */
export type ImportVolume = StoredFile<string>;

/**
 * What every file of an owner's import named `name` starts with. The name is the caller's, so it
 * is reduced to safe characters, with a hash that keeps two names apart that reduce alike.
 */
export function importFilePrefix(owner: Identity, name: string): string {
  if (!UID.test(owner.uid)) throw new InvalidSpecError('owner UID must be alphanumeric with dashes');
  if (name === '' || name.length > 253) throw new InvalidSpecError('an imported image needs a name of 1-253 characters');
  const safe = name.replace(/[^A-Za-z0-9_-]+/g, '-').slice(0, 40);
  return `${PREFIX}${owner.uid}-${safe}-${createHash('sha256').update(name).digest('hex').slice(0, 8)}-`;
}

export function importFileName(prefix: string, sha256: string, format: DiskFormat): string {
  return `${prefix}${sha256.slice(0, TAG_LENGTH)}.${format}`;
}

/** Matches the files of `prefix`, whatever file they were made from, answering the tag. */
function filesOf(prefix: string): (file: string) => string | undefined {
  return (file) => (file.startsWith(prefix) ? TAGGED.exec(file.slice(prefix.length))?.[1] : undefined);
}

/**
 * Storages with `import` content on nodes not known to be offline, one row per node. The list
 * shows only storages the token may audit (Datastore.Audit).
 */
export function importStorages(resources: ClusterResources): ImportStorage[] {
  return contentStorages(resources, 'import');
}

/** Nodes in the order new VMs prefer them: PVE_NODE_SELECTOR first, then the most free memory, then by name. */
function nodeOrder(resources: ClusterResources, selector: readonly string[], nodes: readonly string[]): string[] {
  const free = new Map(resources.nodes.map((node) => [node.node, node.maxmem - node.mem]));
  const rank = (node: string): number => {
    const index = selector.indexOf(node);
    return index < 0 ? selector.length : index;
  };
  return [...new Set(nodes)].sort((a, b) => rank(a) - rank(b) || (free.get(b) ?? 0) - (free.get(a) ?? 0) || a.localeCompare(b));
}

/**
 * Where a new import goes: the preferred node that has an import storage, and on it
 * PVE_IMPORT_STORAGE, else the first import storage it lists, shared ones first (a VM made from a
 * shared one may go to any node). Unsupported when there is none.
 */
export function chooseImportStorage(
  storages: readonly ImportStorage[],
  resources: ClusterResources,
  config: Pick<ProxmoxConfig, 'nodeSelector' | 'importStorage'>,
): ImportStorage {
  const wanted = config.importStorage;
  const usable = storages.filter((row) => wanted === undefined || row.storage === wanted);
  const node = nodeOrder(resources, config.nodeSelector, usable.map((row) => row.node))[0];
  const choice = usable.filter((row) => row.node === node).sort((a, b) => Number(b.shared) - Number(a.shared))[0];
  if (choice !== undefined) return choice;
  if (wanted !== undefined) {
    throw new UnsupportedError(`PVE_IMPORT_STORAGE '${wanted}' has no 'import' content on any online node: add 'import' to its content (PVE 8.4 or later)`);
  }
  throw new UnsupportedError(
    "no storage with 'import' content on any online node: add 'import' to the content of a file-based storage (PVE 8.4 or later), or set PVE_IMPORT_STORAGE",
  );
}

interface Found {
  volumes: ImportVolume[];
  /** Nodes that did not answer: what their local storages hold is unknown. */
  unreachable: string[];
}

/** The import volumes `match` accepts, listing each storage once (a shared one on its first node). */
async function findImports(ctx: ProxmoxContext, storages: readonly ImportStorage[], match: (file: string) => string | undefined, signal?: AbortSignal): Promise<Found> {
  const found = await findFiles(ctx, storages, 'import', match, signal);
  return { volumes: found.files, unreachable: found.unreachable };
}

/**
 * Where the import volume `volid` is: the nodes that see it (every node of a shared storage), and
 * the nodes that did not answer.
 */
export function locateImport(ctx: ProxmoxContext, resources: ClusterResources, volid: string, signal?: AbortSignal): Promise<{ nodes: string[]; unreachable: string[]; sizeBytes: number }> {
  return locateFile(ctx, resources, volid, 'import', signal);
}

/** The disk's size as a VM sees it: a raw file's length, else what qemu-img reads (which also refuses images naming other files). */
async function virtualSize(path: string, format: DiskFormat, signal?: AbortSignal): Promise<number> {
  if (format === 'raw') return diskFileBytes(path);
  return (await inspectDiskFile(path, format, signal)).virtualSizeBytes;
}

/** PVE 8.4 is the first whose import storages take disk images (see the top of this file). */
export async function requireImportVersion(ctx: ProxmoxContext, what = 'disk import', signal?: AbortSignal): Promise<void> {
  ctx.version ??= (await probe(ctx, signal)).version;
  const [major = Number.NaN, minor = 0] = ctx.version.split('.').map((part) => Number.parseInt(part, 10));
  // A server that does not say is taken to be a current one.
  if (Number.isFinite(major) && (major < 8 || (major === 8 && minor < 4))) {
    throw new UnsupportedError(`${what} needs Proxmox VE 8.4 or later, whose import storages take disk images; this cluster runs ${ctx.version}`);
  }
}

function imported(storage: string, file: string, sizeBytes: number, task?: string): DiskImported {
  return { image: { kind: 'template', ref: `${storage}:import/${file}`, fullClone: true }, sizeBytes, ...(task === undefined ? {} : { task }) };
}

export async function importDisk(
  ctx: ProxmoxContext,
  files: MigrationFileServer | undefined,
  migrationRoot: string,
  owner: Identity,
  request: DiskImportRequest,
  signal?: AbortSignal,
): Promise<DiskImported> {
  const server = ctx.config.migrationServer;
  if (files === undefined || server === undefined) throw new UnsupportedError(NO_FILE_SERVER);
  const prefix = importFilePrefix(owner, request.name);
  const path = diskFilePath(migrationRoot, request.file);
  const format = request.file.format;
  const expected = await writtenChecksum(path);
  const resources = parseResources(await ctx.client.get('/cluster/resources', undefined, { signal }));
  const storages = importStorages(resources);

  // Done before (on any import storage, whatever PVE_IMPORT_STORAGE says now): the file may be gone since.
  const existing = (await findImports(ctx, storages, filesOf(prefix), signal)).volumes;
  const other = existing.find((volume) => expected !== undefined && volume.tag !== expected.slice(0, TAG_LENGTH));
  if (other !== undefined) {
    throw new ConflictError(
      `image ${JSON.stringify(request.name)} of ${owner.namespace}/${owner.name} was imported from another file (sha256 ${other.tag}…); import this one under another name`,
    );
  }
  const [done] = existing;
  if (done !== undefined) return imported(done.storage, done.file, await virtualSize(path, format, signal).catch(() => done.sizeBytes));

  if (expected === undefined) throw new NotFoundError(`no checksum beside ${path}: the export has not finished`);
  await requireImportVersion(ctx, 'disk import', signal);
  const file = importFileName(prefix, expected, format);
  // Downloading already (another call, another replica): that task is the answer, on the storage it chose.
  const running = (await runningTasksOfOurs(ctx, ['download'], signal)).find((task) => task.id === file);
  if (running !== undefined) {
    const target = chooseImportStorage(storages.filter((row) => row.node === running.node), resources, ctx.config);
    return imported(target.storage, file, await virtualSize(path, format, signal), running.upid);
  }

  const target = chooseImportStorage(storages, resources, ctx.config);
  if ((await diskFileBytes(path)) <= INLINE_VERIFY_BYTES) await verifiedChecksum(path, signal);
  const sizeBytes = await virtualSize(path, format, signal);
  const grant = await files.grant(path);
  let answer: unknown;
  try {
    answer = await ctx.client.post(
      `/nodes/${segment(target.node)}/storage/${segment(target.storage)}/download-url`,
      {
        content: 'import',
        filename: file,
        url: grant.url,
        checksum: expected,
        'checksum-algorithm': 'sha256',
        ...(server.url.startsWith('https:') ? { 'verify-certificates': !server.insecureSkipVerify } : {}),
      },
      { signal },
    );
  } catch (error) {
    // A lost answer may hide a download that started: its grant stays until it expires.
    if (!(error instanceof UnreachableError)) files.revoke(grant.token);
    throw error;
  }
  return imported(target.storage, file, sizeBytes, typeof answer === 'string' ? answer : undefined);
}

/**
 * Removes every volume of the owner's import named `name`, on whichever import storage it is;
 * nothing when there is none. Busy while PVE still downloads it, and while a VM of ours is being
 * made on a node that sees it: that create may be copying from it. A node that does not answer
 * may hold one: Unreachable, once whatever could be seen is removed.
 */
export async function deleteImportedDisk(ctx: ProxmoxContext, owner: Identity, name: string, signal?: AbortSignal): Promise<Started> {
  const prefix = importFilePrefix(owner, name);
  const resources = parseResources(await ctx.client.get('/cluster/resources', undefined, { signal }));
  const { volumes: found, unreachable } = await findImports(ctx, importStorages(resources), filesOf(prefix), signal);
  const running = await runningTasksOfOurs(ctx, ['download', 'qmcreate'], signal);
  // A download still running would leave its volume behind once it ends.
  const download = running.find((task) => task.type === 'download' && filesOf(prefix)(task.id) !== undefined);
  if (download !== undefined) throw new BusyError(`image ${JSON.stringify(name)} is still being downloaded by PVE (task ${download.upid})`);
  const cannotTell = (): UnreachableError =>
    new UnreachableError(`node ${unreachable.map((node) => `'${node}'`).join(', ')} does not answer: its import storages may still hold image ${JSON.stringify(name)}`);
  if (found.length === 0) {
    if (unreachable.length > 0) throw cannotTell();
    return {};
  }
  for (const volume of found) {
    const user = running.find((task) => task.type === 'qmcreate' && (volume.shared || task.node === volume.node));
    if (user !== undefined) throw new BusyError(`image ${volume.volid} may be copied into a new VM right now (task ${user.upid}); it is removed once that ends`);
  }
  let last: Started = {};
  for (const volume of found) {
    last = started(await ctx.client.delete(`/nodes/${segment(volume.node)}/storage/${segment(volume.storage)}/content/${segment(volume.volid)}`, undefined, { signal }));
  }
  if (unreachable.length > 0) throw cannotTell();
  return last;
}
