// Base images and per-VM volumes. A template ref is a pool volume name or an absolute path on the
// host; a URL image is downloaded on the host once into the pool (checksum verified, by a task)
// and then used like a template, and so is a disk imported from a migration file (import.ts)
// once its import is verified. An installer ISO is named the same ways and downloaded the same
// way, but kept as it is. Every volume the driver creates is qcow2 compat 1.1: `vol-create-as
// --format qcow2` makes v2 images, on which blockresize fails once an internal snapshot exists.

import { createHash } from 'node:crypto';
import { HypervisorError, InvalidSpecError, NotFoundError, UnsupportedError, type ImageSpec } from '../../contracts/driver.js';
import type { LibvirtContext } from './context.js';
import { xmlEscape } from './domain-xml.js';
import { requireImported } from './import-records.js';
import { isImportVolume } from './names.js';
import type { TaskStep } from './tasks.js';

export interface BaseImage {
  path: string;
  format: string;
  virtualSizeBytes: number;
}

const VOLUME_NAME = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,250}$/;

async function imageInfo(ctx: LibvirtContext, path: string, signal?: AbortSignal): Promise<BaseImage> {
  // -U: the base may be open read-only by running VMs (it is their backing file).
  const out = await ctx.host.exec(['qemu-img', 'info', '-U', '--output=json', path], { signal });
  let info: { format?: unknown; 'virtual-size'?: unknown };
  try {
    info = JSON.parse(out) as typeof info;
  } catch {
    throw new HypervisorError(`qemu-img info of ${path} printed no JSON`);
  }
  if (typeof info.format !== 'string' || typeof info['virtual-size'] !== 'number') throw new InvalidSpecError(`cannot read image ${path}`);
  return { path, format: info.format, virtualSizeBytes: info['virtual-size'] };
}

/** The volume's path; undefined only when libvirt says it does not exist (an inactive pool is an error). */
export async function volumePath(ctx: LibvirtContext, volume: string, signal?: AbortSignal): Promise<string | undefined> {
  try {
    return (await ctx.host.virsh(['vol-path', '--pool', ctx.config.storagePool, '--vol', volume], { signal })).trim();
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
}

/** The storage pool's directory; Unsupported (naming `purpose`) for a pool whose volumes are not plain files. */
export async function poolDirectory(ctx: LibvirtContext, signal?: AbortSignal, purpose = 'image import'): Promise<string> {
  const xml = await ctx.host.virsh(['pool-dumpxml', '--pool', ctx.config.storagePool], { signal });
  const type = /<pool type='([^']+)'/.exec(xml)?.[1];
  const path = /<target>\s*<path>([^<]+)<\/path>/.exec(xml)?.[1];
  if (type !== 'dir' || path === undefined) throw new UnsupportedError(`${purpose} needs a dir storage pool; ${ctx.config.storagePool} is ${type ?? 'unknown'}`);
  return path;
}

async function resolveTemplate(ctx: LibvirtContext, ref: string, signal?: AbortSignal): Promise<BaseImage> {
  if (ref.startsWith('/')) {
    if (ref.includes('\n') || ref.includes('\0')) throw new InvalidSpecError('invalid image path');
    const exists = await ctx.host.execResult(['test', '-f', ref], { signal });
    if (exists.code !== 0) throw new InvalidSpecError(`image ${ref} does not exist on the host`);
    return imageInfo(ctx, ref, signal);
  }
  if (!VOLUME_NAME.test(ref)) throw new InvalidSpecError(`image ${JSON.stringify(ref)} is neither an absolute path nor a volume name`);
  const path = await volumePath(ctx, ref, signal);
  if (path === undefined) throw new InvalidSpecError(`image volume ${ref} not found in pool ${ctx.config.storagePool}`);
  // An import still uploading (or cut short) would be copied half.
  if (isImportVolume(ref)) await requireImported(ctx, ref, signal);
  return imageInfo(ctx, path, signal);
}

interface Checksum {
  algorithm: 'sha256' | 'sha512';
  hex: string;
}

/**
 * A file a task downloads into the pool directory as `volume`: converted to qcow2 (an image), or
 * kept as it is (`raw`: an installer ISO).
 */
export interface Download {
  kind: 'download';
  url: string;
  volume: string;
  directory: string;
  checksum?: Checksum;
  format?: 'raw';
}

/** Where a create's root disk comes from: an image on the host now, or one a task downloads first. */
export type ImageSource = { kind: 'ready'; base: BaseImage } | Download;

/** The pool volume a URL's image is downloaded into: the same URL is the same volume. */
export function importedVolume(url: string): string {
  return `virtrigaud-image-${createHash('sha256').update(url).digest('hex').slice(0, 24)}.qcow2`;
}

function checkUrl(url: string): void {
  if (!/^https?:\/\/[^\s]+$/.test(url)) throw new InvalidSpecError('image URL must be http(s)');
}

function parseChecksum(checksum: string | undefined): Checksum | undefined {
  if (checksum === undefined) return undefined;
  const match = /^(sha256|sha512):([0-9a-f]+)$/.exec(checksum);
  if (!match?.[1] || !match[2]) throw new InvalidSpecError('checksum must be sha256:<hex> or sha512:<hex>');
  return { algorithm: match[1] as 'sha256' | 'sha512', hex: match[2] };
}

/** A URL image already downloaded is ready; otherwise what the download needs (run as a task: it can take hours). */
async function urlSource(ctx: LibvirtContext, url: string, checksum: string | undefined, signal?: AbortSignal): Promise<ImageSource> {
  checkUrl(url);
  const sum = parseChecksum(checksum);
  const volume = importedVolume(url);
  const existing = await volumePath(ctx, volume, signal);
  if (existing !== undefined) return { kind: 'ready', base: await imageInfo(ctx, existing, signal) };
  const directory = (await poolDirectory(ctx, signal)).replace(/\/+$/, '');
  return { kind: 'download', url, volume, directory, ...(sum ? { checksum: sum } : {}) };
}

/** Where a create's root disk comes from; undefined for an ISO install, whose disks start empty. */
export async function imageSource(ctx: LibvirtContext, image: ImageSpec, signal?: AbortSignal): Promise<ImageSource | undefined> {
  switch (image.kind) {
    case 'blank':
      throw new UnsupportedError('the libvirt driver cannot make a VM without an image (capability blankVM)');
    case 'iso':
      return undefined;
    case 'template':
      return { kind: 'ready', base: await resolveTemplate(ctx, image.ref, signal) };
    case 'url':
      return urlSource(ctx, image.url, image.checksum, signal);
  }
}

/** An installer ISO on the host (`path`), and the download that puts it there first when it is not yet. */
export interface InstallerSource {
  path: string;
  download?: Download;
}

/** The pool volume an installer ISO URL is fetched into: once per URL and checksum (a corrected checksum fetches again). */
export function isoVolume(url: string, checksum: string | undefined): string {
  return `virtrigaud-iso-${createHash('sha256').update(`${url}\n${checksum ?? ''}`).digest('hex').slice(0, 24)}.iso`;
}

/** ImageSpec kind `iso`: a volume of the pool or a file on the host (`ref`), or a URL fetched into the pool once. */
export async function installerSource(ctx: LibvirtContext, image: Extract<ImageSpec, { kind: 'iso' }>, signal?: AbortSignal): Promise<InstallerSource> {
  if ((image.ref === undefined) === (image.url === undefined)) throw new InvalidSpecError('an installer ISO needs exactly one of ref and url');
  if (image.ref !== undefined) {
    const ref = image.ref;
    if (ref.startsWith('/')) {
      if (ref.includes('\n') || ref.includes('\0')) throw new InvalidSpecError('invalid ISO path');
      if ((await ctx.host.execResult(['test', '-f', ref], { signal })).code !== 0) throw new InvalidSpecError(`ISO ${ref} does not exist on the host`);
      return { path: ref };
    }
    if (!VOLUME_NAME.test(ref)) throw new InvalidSpecError(`ISO ${JSON.stringify(ref)} is neither an absolute path nor a volume name`);
    const path = await volumePath(ctx, ref, signal);
    if (path === undefined) throw new InvalidSpecError(`ISO volume ${ref} not found in pool ${ctx.config.storagePool}`);
    return { path };
  }
  const url = image.url ?? '';
  const volume = isoVolume(url, image.checksum);
  const checksum = parseChecksum(image.checksum);
  checkUrl(url);
  const existing = await volumePath(ctx, volume, signal);
  if (existing !== undefined) return { path: existing };
  const directory = (await poolDirectory(ctx, signal, 'an ISO download')).replace(/\/+$/, '');
  return { path: `${directory}/${volume}`, download: { kind: 'download', url, volume, directory, format: 'raw', ...(checksum ? { checksum } : {}) } };
}

/** The task steps that download a URL image into the pool (once per image, see vr_import). */
export function importSteps(ctx: LibvirtContext, source: Download): TaskStep[] {
  const sum = source.checksum;
  return [['vr_import', ctx.host.uri, ctx.config.storagePool, source.directory, source.volume, source.url, sum?.algorithm ?? '', sum?.hex ?? '', source.format ?? 'qcow2']];
}

/** XML for a qcow2 v3 volume, optionally an overlay on a backing file. */
export function volumeXml(name: string, capacityBytes: number, backing?: { path: string; format: string }): string {
  return (
    `<volume><name>${xmlEscape(name)}</name><capacity unit='bytes'>${capacityBytes}</capacity>` +
    `<target><format type='qcow2'/><compat>1.1</compat></target>` +
    (backing ? `<backingStore><path>${xmlEscape(backing.path)}</path><format type='${xmlEscape(backing.format)}'/></backingStore>` : '') +
    `</volume>`
  );
}

export async function volumeExists(ctx: LibvirtContext, volume: string, signal?: AbortSignal): Promise<boolean> {
  return (await volumePath(ctx, volume, signal)) !== undefined;
}

export async function deleteVolume(ctx: LibvirtContext, volume: string, signal?: AbortSignal): Promise<void> {
  try {
    await ctx.host.virsh(['vol-delete', '--pool', ctx.config.storagePool, '--vol', volume], { signal });
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
  }
}

/** A new volume made at once: an overlay on `base` (linked), or empty. Full copies are task steps (copySteps). */
export async function createVolume(ctx: LibvirtContext, name: string, capacityBytes: number, base: BaseImage | undefined, signal?: AbortSignal): Promise<void> {
  const xml = volumeXml(name, capacityBytes, base ? { path: base.path, format: base.format } : undefined);
  await ctx.host.virsh(['vol-create', '--pool', ctx.config.storagePool, '--file', '/dev/stdin'], { stdin: xml, signal });
}

/**
 * Task steps that make volume `name` from the image at `basePath`: a leftover of an earlier
 * attempt is removed, then an overlay (linked) or a full copy grown to `capacityBytes`. libvirt
 * copies in libvirtd: a copy whose virsh went away still finishes there, and deleting its volume
 * meanwhile is refused ("still being allocated", Busy) rather than started over beside it.
 */
export function copySteps(ctx: LibvirtContext, name: string, capacityBytes: number, basePath: string, baseFormat: string, linked: boolean): TaskStep[] {
  const virsh = ['virsh', '-q', '-c', ctx.host.uri];
  const pool = ctx.config.storagePool;
  const steps: TaskStep[] = [['vr_absent_ok', ...virsh, 'vol-delete', '--pool', pool, '--vol', name]];
  if (linked) {
    steps.push(['vr_stdin', volumeXml(name, capacityBytes, { path: basePath, format: baseFormat }), ...virsh, 'vol-create', '--pool', pool, '--file', '/dev/stdin']);
  } else {
    // libvirt 9 gives a copy the source's capacity whatever the XML asks (checked on the CI peer): vr_grow grows it.
    steps.push(['vr_stdin', volumeXml(name, capacityBytes), ...virsh, 'vol-create-from', '--pool', pool, '--file', '/dev/stdin', '--vol', basePath]);
    steps.push(['vr_grow', ctx.host.uri, pool, name, String(capacityBytes)]);
  }
  return steps;
}
