// Images PVE fetches itself for a create: a disk image from a URL (ImageSpec `url`, into a storage
// with `import` content) or an installer ISO (ImageSpec `iso` with `url`, into one with `iso`
// content), by `POST /nodes/{node}/storage/{storage}/download-url` (pve-storage
// API2/Storage/Status.pm). Its `download` worker (pve-common Tools.pm download_file_from_url)
// fetches into a temporary file, verifies `checksum` with `checksum-algorithm`, and only then
// renames it to its name, so a file under its name is whole and verified.
//
// The file name derives from the URL and the checksum (`vr-img-<hash>-<name>.<ext>`): the same
// image asked for by any number of VMs is downloaded once and reused, a changed checksum is
// another file, and the name alone says whether a storage has the image (its content list).
// Before downloading, the storages are listed, then our running downloads (GET /cluster/tasks):
// a running download of the file is the answer. PVE itself refuses to download to a name that
// exists unless the checksum matches the file there ("refusing to override existing file"; with a
// checksum, "got correct file already"), but it checks only when the worker starts: two downloads
// started together both run, each into its own temporary file. So after starting one, the node's
// active downloads are read (the active list, which fork_worker writes before PVE answers) and of
// two downloads of one file the first started (then the lower UPID) is kept: every replica
// decides alike and stops its own if it lost. Two replicas starting within the same second on a
// node list that one of them read before the other's download appeared may both keep theirs:
// the rename is atomic, so the only cost is a second transfer of the same bytes.
//
// No VM exists while the download runs: create answers the download task and the id '' (the
// contract's "not assigned yet"), and the create after it, finding the file, makes the VM. A lost
// answer loses nothing: the next create finds the running download or the file.

import { createHash } from 'node:crypto';
import { InvalidSpecError, UnsupportedError, type CreateSpec } from '../../contracts/driver.js';
import { parseImageChecksum, parseImageURL, type ImageChecksum } from '../common/image-source.js';
import { segment } from './client.js';
import { runningTasksOfOurs } from './creations.js';
import { requireImportVersion } from './disk-import.js';
import type { ClusterResources } from './resources.js';
import { contentStorages, findFiles, type ContentStorage, type FileContent } from './storage-content.js';
import { num, rows, str } from './values.js';
import type { ProxmoxContext } from './vm.js';

/** `<algorithm>:<hex>` as PVE's download-url takes it apart (`checksum-algorithm`, `checksum`). */
export type Checksum = ImageChecksum;
export const parseChecksum = parseImageChecksum;

/** What a create needs PVE to have downloaded. */
export interface WantedFile {
  content: FileContent;
  /** The file name on the storage: the URL and checksum decide it. */
  file: string;
  url: string;
  checksum?: Checksum;
}

// The name's tail, for the people reading the storage: the URL's last path segment, safe characters only.
const STEM_LENGTH = 40;

/** The URL, refused unless PVE's download-url takes it (schema pattern `https?://.*`). */
const parseUrl = (url: string): URL => parseImageURL(url, 'Proxmox VE downloads');

function lastSegment(url: URL): string {
  const segments = url.pathname.split('/');
  let last = segments.at(-1) ?? '';
  try {
    last = decodeURIComponent(last);
  } catch {
    // Kept as it is: only a name's tail.
  }
  return last;
}

function fileName(kind: 'img' | 'iso', url: string, checksum: Checksum | undefined, stem: string, extension: string): string {
  const hash = createHash('sha256').update(`${url}\n${checksum === undefined ? '' : `${checksum.algorithm}:${checksum.hex}`}`).digest('hex').slice(0, 16);
  const tail = stem.replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, STEM_LENGTH).replace(/-+$/, '');
  return `vr-${kind}-${hash}${tail === '' ? '' : `-${tail}`}.${extension}`;
}

// The disk formats import storages take (pve-storage $UPLOAD_IMPORT_EXT_RE_1, PVE 8.4), by the
// URL's extension. Cloud images named `.img` (Ubuntu, openSUSE) are qcow2; PVE checks the file
// against the format its name declares (file_size_info, untrusted), so a raw `.img` fails the
// download with PVE's own words rather than becoming a broken disk.
const DISK_EXTENSIONS: Readonly<Record<string, string>> = { qcow2: 'qcow2', img: 'qcow2', raw: 'raw', vmdk: 'vmdk' };

/** The import file a URL image is downloaded to. */
export function urlImageFile(url: string, checksum: string | undefined): WantedFile {
  const parsed = parseUrl(url);
  const last = lastSegment(parsed);
  const extension = /\.([A-Za-z0-9]+)$/.exec(last)?.[1]?.toLowerCase() ?? '';
  const format = DISK_EXTENSIONS[extension];
  if (format === undefined) {
    throw new InvalidSpecError(`the image URL must name a .qcow2, .img (qcow2), .raw or .vmdk file, not '${last.slice(0, 80)}': Proxmox VE imports these formats, uncompressed`);
  }
  const sum = checksum === undefined ? undefined : parseChecksum(checksum);
  return { content: 'import', file: fileName('img', url, sum, last.slice(0, -extension.length - 1), format), url, ...(sum === undefined ? {} : { checksum: sum }) };
}

/** The ISO file an installer URL is downloaded to. */
export function isoImageFile(url: string, checksum: string | undefined): WantedFile {
  const parsed = parseUrl(url);
  const last = lastSegment(parsed);
  const sum = checksum === undefined ? undefined : parseChecksum(checksum);
  // pve-storage takes `.iso` and `.img` for ISO content; the name need not be the URL's.
  return { content: 'iso', file: fileName('iso', url, sum, last.replace(/\.(iso|img)$/i, ''), 'iso'), url, ...(sum === undefined ? {} : { checksum: sum }) };
}

// A volume of ISO content (pve-storage parse_volname, $ISO_EXT_RE_0): `<storage>:iso/<file>.iso|img`.
const ISO_REF = /^[a-z][a-z0-9\-_.]*[a-z0-9]:iso\/[^/]+\.(?:iso|img)$/i;

/** Whether an ISO ref names an ISO volume (`<storage>:iso/<file>.iso`). */
export function isIsoRef(ref: string): boolean {
  return ISO_REF.test(ref);
}

export type FileState = { volid: string; nodes: string[]; sizeBytes: number } | { task: string };

/** The storages a create may use for `wanted`: on the spec's host, the configured import storage. */
function candidates(ctx: ProxmoxContext, spec: CreateSpec, resources: ClusterResources, content: FileContent): ContentStorage[] {
  const wanted = content === 'import' ? ctx.config.importStorage : undefined;
  const host = spec.placement.host;
  const usable = contentStorages(resources, content).filter((row) => (wanted === undefined || row.storage === wanted) && (host === undefined || row.node === host));
  if (usable.length > 0) return usable;
  const where = host === undefined ? 'on any online node' : `on host '${host}'`;
  if (wanted !== undefined) throw new UnsupportedError(`PVE_IMPORT_STORAGE '${wanted}' has no 'import' content ${where}: add 'import' to its content (PVE 8.4 or later)`);
  if (content === 'import') {
    throw new UnsupportedError(`no storage with 'import' content ${where}: add 'import' to the content of a file-based storage (PVE 8.4 or later), or set PVE_IMPORT_STORAGE`);
  }
  throw new UnsupportedError(`no storage with 'iso' content ${where}: add 'iso' to the content of a file-based storage`);
}

/**
 * Where a download goes. A shared storage first, through the first node of PVE_NODE_SELECTOR
 * (then by name) that sees it: every replica picks the same node, whose active list then shows
 * both of two racing downloads. Else the node with the most free memory (the VM follows its image
 * there), preferring PVE_NODE_SELECTOR's.
 */
export function downloadTarget(storages: readonly ContentStorage[], resources: ClusterResources, selector: readonly string[]): ContentStorage {
  const rank = (node: string): number => {
    const index = selector.indexOf(node);
    return index < 0 ? selector.length : index;
  };
  const free = new Map(resources.nodes.map((node) => [node.node, node.maxmem - node.mem]));
  const shared = storages.filter((row) => row.shared).sort((a, b) => a.storage.localeCompare(b.storage) || rank(a.node) - rank(b.node) || a.node.localeCompare(b.node));
  const local = [...storages].sort((a, b) => rank(a.node) - rank(b.node) || (free.get(b.node) ?? 0) - (free.get(a.node) ?? 0) || a.node.localeCompare(b.node) || a.storage.localeCompare(b.storage));
  const target = shared[0] ?? local[0];
  if (target === undefined) throw new UnsupportedError('no storage to download the image to');
  return target;
}

// Downloads this process is starting, by node, storage and file: a second create of the same
// image in this process waits for the first one's answer instead of starting another.
const starting = new WeakMap<ProxmoxContext, Map<string, Promise<string>>>();

/**
 * The file `wanted` on a storage the spec may use: found (its volume and the nodes that see it),
 * or the download bringing it (found running, or started now).
 */
export async function ensureFile(ctx: ProxmoxContext, spec: CreateSpec, resources: ClusterResources, wanted: WantedFile, signal?: AbortSignal): Promise<FileState> {
  const storages = candidates(ctx, spec, resources, wanted.content);
  const found = await findFiles(ctx, storages, wanted.content, (file) => (file === wanted.file ? true : undefined), signal);
  if (found.files.length > 0) {
    const nodes = found.files.flatMap((stored) => (stored.shared ? storages.filter((row) => row.storage === stored.storage).map((row) => row.node) : [stored.node]));
    const first = found.files[0];
    return { volid: first?.volid ?? '', nodes: [...new Set(nodes)], sizeBytes: first?.sizeBytes ?? 0 };
  }
  const running = (await runningTasksOfOurs(ctx, ['download'], signal)).find((task) => task.id === wanted.file);
  if (running !== undefined) return { task: running.upid };
  if (wanted.content === 'import') await requireImportVersion(ctx, 'an image from a URL', signal);

  const target = downloadTarget(storages, resources, ctx.config.nodeSelector);
  const key = `${target.node}/${target.storage}/${wanted.file}`;
  let inFlight = starting.get(ctx);
  if (inFlight === undefined) {
    inFlight = new Map();
    starting.set(ctx, inFlight);
  }
  const already = inFlight.get(key);
  if (already !== undefined) return { task: await already };
  const start = startDownload(ctx, target, wanted, signal);
  inFlight.set(key, start);
  try {
    return { task: await start };
  } finally {
    inFlight.delete(key);
  }
}

async function startDownload(ctx: ProxmoxContext, target: ContentStorage, wanted: WantedFile, signal?: AbortSignal): Promise<string> {
  const params = {
    content: wanted.content,
    filename: wanted.file,
    url: wanted.url,
    ...(wanted.checksum === undefined ? {} : { checksum: wanted.checksum.hex, 'checksum-algorithm': wanted.checksum.algorithm }),
  };
  const upid = str(await ctx.client.post(`/nodes/${segment(target.node)}/storage/${segment(target.storage)}/download-url`, params, { signal }));
  if (upid === undefined) throw new UnsupportedError('Proxmox VE answered download-url without a task');
  return firstDownload(ctx, target.node, wanted.file, upid, signal);
}

/**
 * Of the downloads of `file` running on `node`, the one started first (then the lowest UPID); ours
 * is stopped if it is not that one. Whatever goes wrong here keeps ours: two downloads of one file
 * cost a transfer, never a wrong file.
 */
async function firstDownload(ctx: ProxmoxContext, node: string, file: string, ours: string, signal?: AbortSignal): Promise<string> {
  let active: unknown;
  try {
    active = await ctx.client.get(`/nodes/${segment(node)}/tasks`, { source: 'active', typefilter: 'download' }, { signal });
  } catch {
    return ours;
  }
  const downloads = rows(active)
    .filter((row) => str(row['id']) === file && str(row['upid']) !== undefined)
    .map((row) => ({ upid: str(row['upid']) ?? '', starttime: num(row['starttime']) ?? Number.MAX_SAFE_INTEGER }))
    .sort((a, b) => a.starttime - b.starttime || a.upid.localeCompare(b.upid));
  const first = downloads[0]?.upid;
  if (first === undefined || first === ours) return ours;
  try {
    await ctx.client.delete(`/nodes/${segment(node)}/tasks/${segment(ours)}`, undefined, { signal });
  } catch {
    return ours;
  }
  ctx.debug(`download of ${file} on node '${node}' left to task ${first}, started before ours`);
  return first;
}
