// Base images and per-VM volumes. A template ref is a pool volume name or an absolute path on the
// host; a URL image is downloaded on the host once into the pool (checksum verified) and then
// used like a template. Every volume the driver creates is qcow2 compat 1.1: `vol-create-as
// --format qcow2` makes v2 images, on which blockresize fails once an internal snapshot exists.

import { createHash } from 'node:crypto';
import { InvalidSpecError, NotFoundError, UnsupportedError, type ImageSpec } from '../../contracts/driver.js';
import type { LibvirtContext } from './context.js';
import { xmlEscape } from './domain-xml.js';

export interface BaseImage {
  path: string;
  format: string;
  virtualSizeBytes: number;
}

const VOLUME_NAME = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,250}$/;

async function imageInfo(ctx: LibvirtContext, path: string, signal?: AbortSignal): Promise<BaseImage> {
  // -U: the base may be open read-only by running VMs (it is their backing file).
  const out = await ctx.host.exec(['qemu-img', 'info', '-U', '--output=json', path], { signal });
  const info = JSON.parse(out) as { format?: unknown; 'virtual-size'?: unknown };
  if (typeof info.format !== 'string' || typeof info['virtual-size'] !== 'number') throw new InvalidSpecError(`cannot read image ${path}`);
  return { path, format: info.format, virtualSizeBytes: info['virtual-size'] };
}

export async function volumePath(ctx: LibvirtContext, volume: string, signal?: AbortSignal): Promise<string | undefined> {
  const result = await ctx.host.virshResult(['vol-path', '--pool', ctx.config.storagePool, '--vol', volume], { signal });
  return result.code === 0 ? result.stdout.trim() : undefined;
}

export async function poolDirectory(ctx: LibvirtContext, signal?: AbortSignal): Promise<string> {
  const xml = await ctx.host.virsh(['pool-dumpxml', '--pool', ctx.config.storagePool], { signal });
  const type = /<pool type='([^']+)'/.exec(xml)?.[1];
  const path = /<target>\s*<path>([^<]+)<\/path>/.exec(xml)?.[1];
  if (type !== 'dir' || path === undefined) throw new UnsupportedError(`image import needs a dir storage pool; ${ctx.config.storagePool} is ${type ?? 'unknown'}`);
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
  return imageInfo(ctx, path, signal);
}

/** Downloads the image on the host into the pool once (same URL → same volume), verifying the checksum. */
async function importUrl(ctx: LibvirtContext, url: string, checksum: string | undefined, signal?: AbortSignal): Promise<BaseImage> {
  if (!/^https?:\/\/[^\s]+$/.test(url)) throw new InvalidSpecError('image URL must be http(s)');
  const volume = `virtrigaud-image-${createHash('sha256').update(url).digest('hex').slice(0, 24)}.qcow2`;
  const existing = await volumePath(ctx, volume, signal);
  if (existing !== undefined) return imageInfo(ctx, existing, signal);

  let algorithm: 'sha256' | 'sha512' | undefined;
  let expected: string | undefined;
  if (checksum !== undefined) {
    const match = /^(sha256|sha512):([0-9a-f]+)$/.exec(checksum);
    if (!match?.[1] || !match[2]) throw new InvalidSpecError('checksum must be sha256:<hex> or sha512:<hex>');
    algorithm = match[1] as 'sha256' | 'sha512';
    expected = match[2];
  }
  const dir = await poolDirectory(ctx, signal);
  const downloader = (await ctx.host.execResult(['sh', '-c', 'command -v curl || command -v wget'], { signal })).stdout.trim().split('\n')[0] ?? '';
  if (downloader === '') throw new UnsupportedError('the libvirt host has neither curl nor wget for image downloads');
  const partial = (await ctx.host.exec(['mktemp', '-p', dir, '.virtrigaud-download.XXXXXX'], { signal })).trim();
  try {
    const fetch = downloader.endsWith('curl')
      ? [downloader, '-fsSL', '--proto', '=http,https', '--max-time', '3600', '-o', partial, '--', url]
      : [downloader, '-q', '-O', partial, '--', url];
    await ctx.host.exec(fetch, { signal, timeoutMs: 3_700_000 }).catch((error: unknown) => {
      throw new InvalidSpecError(`download of the image failed: ${error instanceof Error ? error.message : String(error)}`);
    });
    if (algorithm !== undefined && expected !== undefined) {
      const sum = (await ctx.host.exec([`${algorithm}sum`, '--', partial], { signal, timeoutMs: 600_000 })).split(/\s+/)[0];
      if (sum !== expected) throw new InvalidSpecError(`image checksum mismatch: expected ${algorithm}:${expected}, got ${algorithm}:${sum ?? ''}`);
    }
    const info = await imageInfo(ctx, partial, signal);
    const final = `${dir.replace(/\/+$/, '')}/${volume}`;
    if (info.format === 'qcow2') {
      await ctx.host.exec(['mv', '-f', '--', partial, final], { signal });
    } else {
      await ctx.host.exec(['qemu-img', 'convert', '-O', 'qcow2', '-o', 'compat=1.1', '-f', info.format, partial, final], { signal, timeoutMs: 3_600_000 });
    }
    await ctx.host.virsh(['pool-refresh', '--pool', ctx.config.storagePool], { signal });
    return imageInfo(ctx, final, signal);
  } finally {
    await ctx.host.execResult(['rm', '-f', '--', partial]).catch(() => undefined);
  }
}

export function resolveImage(ctx: LibvirtContext, image: ImageSpec, signal?: AbortSignal): Promise<BaseImage> {
  return image.kind === 'template' ? resolveTemplate(ctx, image.ref, signal) : importUrl(ctx, image.url, image.checksum, signal);
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

/** A new volume: an overlay on `base`, or a full copy of it (grown to `capacityBytes`), or empty. */
export async function createVolume(
  ctx: LibvirtContext,
  name: string,
  capacityBytes: number,
  source: { base: BaseImage; linked: boolean } | undefined,
  signal?: AbortSignal,
): Promise<void> {
  const pool = ctx.config.storagePool;
  if (source === undefined || source.linked) {
    const xml = volumeXml(name, capacityBytes, source ? { path: source.base.path, format: source.base.format } : undefined);
    await ctx.host.virsh(['vol-create', '--pool', pool, '--file', '/dev/stdin'], { stdin: xml, signal });
    return;
  }
  // A full copy converts the whole image: allow it the time a large image needs.
  await ctx.host.virsh(['vol-create-from', '--pool', pool, '--file', '/dev/stdin', '--vol', source.base.path], {
    stdin: volumeXml(name, source.base.virtualSizeBytes),
    signal,
    timeoutMs: 3_600_000,
  });
  if (capacityBytes > source.base.virtualSizeBytes) {
    await ctx.host.virsh(['vol-resize', '--pool', pool, '--vol', name, '--capacity', String(capacityBytes)], { signal });
  }
}
