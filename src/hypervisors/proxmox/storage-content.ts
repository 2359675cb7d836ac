// Files on PVE storages (`GET /nodes/{node}/storage/{storage}/content?content=<type>`): where an
// import volume or an ISO is, as each node sees it. A local storage holds other files on every
// node; a shared one is listed once, on the first node that sees it.

import { segment } from './client.js';
import { NodeUnreachableError } from './errors.js';
import type { ClusterResources } from './resources.js';
import { withinNodeBound } from './signals.js';
import { num, rows, str } from './values.js';
import type { ProxmoxContext } from './vm.js';

/** Content types the driver lists: disk images to import (PVE 8.4+) and installer ISOs. */
export type FileContent = 'import' | 'iso';

/** A storage holding `content`, as one node sees it. */
export interface ContentStorage {
  node: string;
  storage: string;
  shared: boolean;
}

export interface StoredFile<T> extends ContentStorage {
  volid: string;
  file: string;
  /** The file's length on the storage. */
  sizeBytes: number;
  /** What `match` answered for it. */
  tag: T;
}

export interface FoundFiles<T> {
  files: StoredFile<T>[];
  /** Nodes that did not answer: what their local storages hold is unknown. */
  unreachable: string[];
}

/**
 * Storages with `content` on nodes not known to be offline, one row per node. The list shows only
 * storages the token may audit (Datastore.Audit).
 */
export function contentStorages(resources: ClusterResources, content: FileContent): ContentStorage[] {
  const offline = new Set(resources.nodes.filter((node) => !node.online).map((node) => node.node));
  return resources.storages
    .filter((row) => row.content.includes(content) && !offline.has(row.node))
    .map((row) => ({ node: row.node, storage: row.storage, shared: row.shared }));
}

/** The files of `content` that `match` accepts (its answer becomes their tag), each storage listed once. */
export async function findFiles<T>(
  ctx: ProxmoxContext,
  storages: readonly ContentStorage[],
  content: FileContent,
  match: (file: string) => T | undefined,
  signal?: AbortSignal,
): Promise<FoundFiles<T>> {
  const listed = new Set<string>();
  const targets = storages.filter((row) => {
    const key = row.shared ? row.storage : `${row.node}/${row.storage}`;
    if (listed.has(key)) return false;
    listed.add(key);
    return true;
  });
  const found: FoundFiles<T> = { files: [], unreachable: [] };
  const lists = await Promise.all(
    targets.map(async (target) => {
      try {
        return await withinNodeBound(target.node, ctx.nodeTimeoutMs, signal, (bounded) =>
          ctx.client.get(`/nodes/${segment(target.node)}/storage/${segment(target.storage)}/content`, { content }, { signal: bounded }),
        );
      } catch (error) {
        if (!(error instanceof NodeUnreachableError)) throw error;
        found.unreachable.push(target.node);
        return [];
      }
    }),
  );
  for (const [index, target] of targets.entries()) {
    const prefix = `${target.storage}:${content}/`;
    for (const row of rows(lists[index])) {
      const volid = str(row['volid']) ?? '';
      if (!volid.startsWith(prefix)) continue;
      const file = volid.slice(prefix.length);
      const tag = match(file);
      if (tag !== undefined) found.files.push({ ...target, volid, file, sizeBytes: num(row['size']) ?? 0, tag });
    }
  }
  return found;
}

/** Where the file `volid` (`<storage>:<content>/<file>`) is: the nodes that see it (every node of a shared storage), and the nodes that did not answer. */
export async function locateFile(
  ctx: ProxmoxContext,
  resources: ClusterResources,
  volid: string,
  content: FileContent,
  signal?: AbortSignal,
): Promise<{ nodes: string[]; unreachable: string[]; sizeBytes: number }> {
  const [storage = '', file = ''] = volid.split(`:${content}/`);
  const offline = new Set(resources.nodes.filter((node) => !node.online).map((node) => node.node));
  const storages = resources.storages
    .filter((row) => row.storage === storage && !offline.has(row.node))
    .map((row) => ({ node: row.node, storage: row.storage, shared: row.shared }));
  const found = await findFiles(ctx, storages, content, (candidate) => (candidate === file ? file : undefined), signal);
  const nodes = found.files.flatMap((stored) => (stored.shared ? storages.map((row) => row.node) : [stored.node]));
  return { nodes: [...new Set(nodes)], unreachable: found.unreachable, sizeBytes: found.files[0]?.sizeBytes ?? 0 };
}
