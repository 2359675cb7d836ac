/**
 * Storage content a driver writes: `download-url` (pve-storage API2/Storage/Status.pm) with its
 * `download` worker (pve-common Tools.pm download_file_from_url: wget into `<dest>.tmp.<pid>`, the
 * checksum, the image checks, then the rename), here a real HTTP GET of the URL over loopback; and
 * deleting a volume (API2/Storage/Content.pm, the `imgdel` worker).
 */
import { createHash } from 'node:crypto';
import { reply, type Ctx, type Handler } from './context.js';
import { fail, paramError } from './errors.js';
import { isFileBased, splitVolid } from './storage.js';

// pve-storage Storage.pm: $ISO_EXT_RE_0, $VZTMPL_EXT_RE_1, $UPLOAD_IMPORT_EXT_RE_1 (PVE 8.4+), $SAFE_CHAR_CLASS_RE.
const ISO_EXT = /[^/]+\.(?:iso|img)$/i;
const VZTMPL_EXT = /[^/]+\.(?:tar|tar\.(?:gz|xz|zst|bz2))$/i;
const IMPORT_NAME = /^[a-zA-Z0-9\-.+=_]+\.(ova|qcow2|raw|vmdk)$/;

const DOWNLOAD_LIMIT = 256 * 1024 ** 2;

/** `normalize_content_filename`. */
function normalizeFilename(name: string): string {
  return name.replace(/\n$/, '').replace(/^.*[/\\]/, '').replace(/[^a-zA-Z0-9_.-]/g, '_');
}

/** `encode_text`: what may stand in a UPID's id. */
function encodeText(text: string): string {
  return text.replace(/[^A-Za-z0-9\-_.+=]/g, (char) => `\\x${char.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** `file_size_info` of an untrusted image: the virtual size, refusing images that name other files. */
function imageSize(bytes: Buffer, format: string, tmpPath: string): number {
  if (format === 'qcow2') {
    if (bytes.length < 32 || bytes.readUInt32BE(0) !== 0x514649fb) fail(`qemu-img bug: queried format does not match format in result 'qcow2 ne raw'`);
    if (bytes.readBigUInt64BE(8) !== 0n) fail(`backing file not allowed for untrusted image '${tmpPath}'!`);
    return Number(bytes.readBigUInt64BE(24));
  }
  if (format === 'vmdk' && bytes.length >= 20 && bytes.toString('latin1', 0, 4) === 'KDMV') return Number(bytes.readBigUInt64LE(12)) * 512;
  return bytes.length;
}

async function fetchAll(url: string): Promise<{ ok: true; bytes: Buffer } | { ok: false; reason: string }> {
  let response: Response;
  try {
    // wget sends a URL's user and password as basic authentication; fetch refuses such a URL.
    const target = new URL(url);
    const headers: Record<string, string> = {};
    if (target.username !== '' || target.password !== '') {
      const credentials = `${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`;
      headers['authorization'] = `Basic ${Buffer.from(credentials).toString('base64')}`;
      target.username = '';
      target.password = '';
    }
    response = await fetch(target, { headers, signal: AbortSignal.timeout(30_000) });
  } catch (error) {
    return { ok: false, reason: error instanceof Error ? error.message : String(error) };
  }
  // wget exits 8 on an error answer from the server.
  if (!response.ok) return { ok: false, reason: 'exit code 8' };
  const bytes = Buffer.from(await response.arrayBuffer());
  if (bytes.length > DOWNLOAD_LIMIT) return { ok: false, reason: 'exit code 3' };
  return { ok: true, bytes };
}

function downloadUrl(ctx: Ctx): ReturnType<Handler> {
  const p = ctx.params;
  const world = ctx.world;
  const node = world.node(p.need('node')).name;
  const storage = world.volumes.checkEnabled(p.need('storage'), node);
  if (!isFileBased(storage.type)) fail(`can't upload to storage type '${storage.type}', not a file based storage!`);
  const content = p.need('content');
  const url = p.need('url');
  if (!storage.content.includes(content)) fail(`storage '${storage.id}' is not configured for content-type '${content}'`);
  const filename = normalizeFilename(p.need('filename'));
  let dir: string;
  let format = 'raw';
  if (content === 'iso') {
    if (!ISO_EXT.test(filename)) paramError({ filename: 'wrong file extension' });
    dir = 'iso';
    format = 'iso';
  } else if (content === 'vztmpl') {
    if (!VZTMPL_EXT.test(filename)) paramError({ filename: 'wrong file extension' });
    dir = 'template/cache';
  } else {
    const match = IMPORT_NAME.exec(filename);
    if (!match) paramError({ filename: 'invalid filename or wrong extension' });
    dir = 'import';
    format = match[1] ?? 'raw';
  }
  const volname = `${dir}/${filename}`;
  const algorithm = p.str('checksum-algorithm');
  const expected = p.str('checksum')?.toLowerCase();
  const verifyCertificates = p.bool('verify-certificates') ?? true;
  const dest = `/var/lib/vz/${volname}`;

  let result: { ok: true; bytes: Buffer } | { ok: false; reason: string } | undefined;
  let already = false;
  const task = ctx.tasks.start({
    node,
    type: 'download',
    id: encodeText(filename),
    auth: ctx.auth,
    start: (handle) => {
      handle.log(`downloading ${url} to ${dest}`);
      const existing = world.volumes.get(node, `${storage.id}:${volname}`);
      if (existing) {
        if (algorithm === undefined) fail(`refusing to override existing file '${dest}'`);
        if (existing.sha256 === expected) {
          already = true;
          handle.log('calculating checksum of existing file...OK, got correct file already, no need to download');
          return;
        }
        fail(`checksum mismatch: got '${existing.sha256 ?? ''}' != expect '${expected ?? ''}', aborting`);
      }
      void fetchAll(url).then((fetched) => {
        result = fetched;
      });
    },
    ready: () => already || result !== undefined,
    finish: (handle, at) => {
      if (already) return;
      if (result === undefined || !result.ok) {
        const command = `wget --progress=dot:giga -O ${dest}.tmp.${task.pid} ${url}${verifyCertificates ? '' : ' --no-check-certificate'}`;
        fail(`download failed: command '${command}' failed: ${result?.ok === false ? result.reason : 'interrupted'}`);
      }
      const bytes = result.bytes;
      let sha256: string | undefined;
      if (algorithm !== undefined) {
        const got = createHash(algorithm).update(bytes).digest('hex');
        if (got !== expected) {
          handle.log('calculating checksum...');
          fail(`checksum mismatch: got '${got}' != expect '${expected ?? ''}'`);
        }
        handle.log('calculating checksum...OK, checksum verified');
        if (algorithm === 'sha256') sha256 = got;
      }
      const size = content === 'import' ? imageSize(bytes, format, `${dest}.tmp.${task.pid}`) : bytes.length;
      world.volumes.add({
        storage: storage.id,
        node,
        volname,
        size,
        format,
        content,
        ctime: Math.floor(at / 1000),
        base: false,
        sha256: sha256 ?? createHash('sha256').update(bytes).digest('hex'),
      });
      handle.log(`download of '${url}' to '${dest}' finished`);
    },
  });
  return reply(task.upid);
}

/** `real_volume_id`: a volume ID, or a volume name of the storage in the path. */
function realVolumeId(storage: string | undefined, volume: string): string {
  const parts = splitVolid(volume);
  if (parts) {
    if (storage !== undefined && parts.storage !== storage) paramError({ volume: `storage ID mismatch (${parts.storage} != ${storage})` });
    return volume;
  }
  if (storage === undefined) paramError({ storage: 'storage ID missing' });
  return `${storage}:${volume}`;
}

function deleteVolume(ctx: Ctx): ReturnType<Handler> {
  const p = ctx.params;
  const world = ctx.world;
  const node = world.node(p.need('node')).name;
  const volid = realVolumeId(p.str('storage'), p.need('volume'));
  const { storage } = splitVolid(volid) ?? { storage: '' };
  world.volumes.checkEnabled(storage, node);
  const { vmid } = world.volumes.parseVolname(volid);
  const task = ctx.tasks.start({
    node,
    type: 'imgdel',
    id: vmid === undefined ? storage : `${vmid}@${storage}`,
    auth: ctx.auth,
    finish: (handle) => {
      if (!world.volumes.get(node, volid)) {
        handle.log(`volume '${volid}' does not exist`);
        return;
      }
      world.volumes.remove(node, volid);
      handle.log(`Removed volume '${volid}'`);
    },
  });
  return reply(task.upid);
}

export const downloadHandlers: Record<string, Handler> = {
  'POST /nodes/{node}/storage/{storage}/download-url': downloadUrl,
  'DELETE /nodes/{node}/storage/{storage}/content/{volume}': deleteVolume,
};
