// create, from an image PVE has or fetches: a disk image from a URL (ImageSpec `url`: downloaded
// into an import storage, then the root disk `import-from` it, as for an imported disk:
// import-create.ts) and an installer ISO (ImageSpec `iso`: a blank VM with the ISO in its CD-ROM
// drive, blank-create.ts). While PVE downloads, create answers the download task and no VM
// (image-download.ts); the create after it makes the VM, in the steps of any other create.

import { InvalidSpecError, UnreachableError, type CreateSpec, type Started } from '../../contracts/driver.js';
import { createBlank } from './blank-create.js';
import { ensureFile, isoImageFile, urlImageFile } from './image-download.js';
import { createFromImport } from './import-create.js';
import type { ClusterResources } from './resources.js';
import { locateFile } from './storage-content.js';
import type { ProxmoxContext } from './vm.js';

type Created = { id: string } & Started;

export async function createFromUrl(ctx: ProxmoxContext, spec: CreateSpec, resources: ClusterResources, signal?: AbortSignal): Promise<Created> {
  if (spec.image.kind !== 'url') throw new InvalidSpecError('not an image from a URL');
  const state = await ensureFile(ctx, spec, resources, urlImageFile(spec.image.url, spec.image.checksum), signal);
  if ('task' in state) return { id: '', task: state.task };
  return createFromImport(ctx, spec, state.volid, resources, signal, { nodes: state.nodes, unreachable: [], sizeBytes: state.sizeBytes });
}

export async function createFromIso(ctx: ProxmoxContext, spec: CreateSpec, resources: ClusterResources, signal?: AbortSignal): Promise<Created> {
  const image = spec.image;
  if (image.kind !== 'iso') throw new InvalidSpecError('not an installer ISO');
  if (image.url !== undefined) {
    const state = await ensureFile(ctx, spec, resources, isoImageFile(image.url, image.checksum), signal);
    if ('task' in state) return { id: '', task: state.task };
    return createBlank(ctx, spec, resources, signal, { volid: state.volid, nodes: state.nodes });
  }
  const ref = image.ref ?? '';
  const where = await locateFile(ctx, resources, ref, 'iso', signal);
  if (where.nodes.length === 0) {
    if (where.unreachable.length > 0) throw new UnreachableError(`ISO '${ref}' may be on node '${where.unreachable.join("', '")}', which does not answer`);
    throw new InvalidSpecError(`ISO '${ref}' not found: no storage lists it with content type iso`);
  }
  return createBlank(ctx, spec, resources, signal, { volid: ref, nodes: where.nodes });
}
