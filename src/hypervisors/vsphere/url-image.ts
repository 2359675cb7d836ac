// create from an image URL (ImageSpec kind `url`): an OVA (a tar whose first entry is the OVF
// descriptor) or an OVF descriptor with its files beside it (a URL ending in `.ovf`), imported
// once per URL and checksum into a template that create then clones like any other.
// 1. The image's key is a hash of its URL and checksum. Its template is `vr-image-<key>`, with the
//    key in extraConfig (`virtrigaud.image.source`): a VM under that name without it is never
//    taken, changed or destroyed. The URL itself is neither stored nor shown: it may carry
//    credentials or a signed token.
// 2. Without a template, create answers a local transfer task (transfers.ts) that streams the
//    image from its URL, nothing written locally: the descriptor to OvfManager.CreateImportSpec
//    (vSphere reads the OVF's hardware, disks and files), that spec with the key to ImportVApp
//    under `vr-imaging-<key>`, each file POSTed to its lease URL as it arrives, the checksum of
//    what was read checked before HttpNfcLeaseComplete (a mismatch aborts the lease), then
//    MarkAsTemplate and the rename. The next create call finds the template and clones it.
//    Anything a failed import made is removed (import.ts), as for importDisk.
// 3. The template stays for the next VM of the same image; nothing deletes it (no VM owns it).

import { createHash, type Hash } from 'node:crypto';
import { Readable } from 'node:stream';
import { ConflictError, HypervisorError, InvalidSpecError, UnreachableError, UnsupportedError } from '../../contracts/driver.js';
import { parseImageChecksum, parseImageURL as parseURL, type ImageChecksum } from '../common/image-source.js';
import { morefOf } from './client.js';
import { reencode } from './devices.js';
import { clearLeftover, destroyQuietly, importPlacement, startTaskOn, taskEnded, type ImportPlacement } from './import.js';
import { abortLease, completeLease, keepLeaseAlive, leaseReady } from './nfc.js';
import { NfcConnection, deviceURL } from './nfc-http.js';
import { el, moref, optionValue, typed, type Xml } from './soap.js';
import { tarEntries } from './tar.js';
import { settledNow } from './tasks.js';
import type { TransferContext, TransferJob } from './transfers.js';
import { listVMs, readVM, requireReadable, type VmRecord, type VsphereContext } from './vm.js';
import { child, childrenNamed, intAt, textAt, type XmlElement } from './xml.js';

export const IMAGE_SOURCE_KEY = 'virtrigaud.image.source';

// A descriptor larger than this is no OVF descriptor (they are kilobytes).
const DESCRIPTOR_LIMIT = 16 * 1024 * 1024;

type Checksum = ImageChecksum;

const parseChecksum = (text: string | undefined): Checksum | undefined => (text === undefined ? undefined : parseImageChecksum(text));
const parseImageURL = (url: string): URL => parseURL(url, 'the vSphere driver fetches');

/** Refuses, before anything is made, an image URL or checksum no import could use. */
export function checkURLImage(image: { url: string; checksum?: string }): void {
  parseImageURL(image.url);
  parseChecksum(image.checksum);
}

export interface URLImageNames {
  key: string;
  importing: string;
  final: string;
}

export function urlImageNames(url: string, checksum: string | undefined): URLImageNames {
  const key = createHash('sha256').update(`${url}\n${checksum?.trim().toLowerCase() ?? ''}`).digest('hex').slice(0, 16);
  return { key, importing: `vr-imaging-${key}`, final: `vr-image-${key}` };
}

/** The image's template, or the task importing it. */
export type URLImage = { template: VmRecord } | { task: string };

/** One file of an image as it streams in. */
interface ImageFile {
  name: string;
  size: number;
  body: AsyncIterable<Buffer>;
}

/** An image being read from its URL: the descriptor first, then its files, then the checksum. */
interface ImageStream {
  descriptor: string;
  /** The files, in the order the source has them; `wanted` are the OVF hrefs vSphere asks for. */
  files(wanted: readonly string[]): AsyncGenerator<ImageFile>;
  /** InvalidSpecError unless what was read matches the checksum (called after `files` is done). */
  verify(): void;
  /** Stops reading (the download cancelled); nothing once it has ended. */
  close(): Promise<void>;
}

function fetchFailure(error: unknown, signal: AbortSignal): Error {
  if (signal.aborted && signal.reason instanceof Error) return signal.reason;
  const cause = error instanceof Error && error.cause instanceof Error ? (error.cause as NodeJS.ErrnoException).code ?? error.cause.message : undefined;
  return new UnreachableError(`the image URL could not be read${cause === undefined ? '' : `: ${cause}`}`);
}

async function open(url: URL, signal: AbortSignal): Promise<{ body: AsyncIterable<Uint8Array>; length: number | undefined }> {
  // fetch refuses a URL with credentials: they go as Basic authentication instead.
  const target = new URL(url);
  const headers: Record<string, string> = {};
  if (target.username !== '' || target.password !== '') {
    const pair = `${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`;
    headers['authorization'] = `Basic ${Buffer.from(pair, 'utf8').toString('base64')}`;
    target.username = '';
    target.password = '';
  }
  let response: Response;
  try {
    response = await fetch(target, { signal, redirect: 'follow', headers });
  } catch (error) {
    throw fetchFailure(error, signal);
  }
  if (!response.ok || response.body === null) {
    await response.body?.cancel().catch(() => undefined);
    const status = `the image URL answered HTTP ${response.status}`;
    // 4xx: the URL names nothing that will be there; anything else may pass.
    throw response.status >= 400 && response.status < 500 ? new InvalidSpecError(status) : new HypervisorError(status);
  }
  const length = Number(response.headers.get('content-length'));
  return { body: response.body, length: Number.isSafeInteger(length) && length >= 0 ? length : undefined };
}

/** The chunks of `body`, each counted into `hash`. */
async function* hashed(body: AsyncIterable<Uint8Array>, hash: Hash | undefined): AsyncGenerator<Buffer> {
  for await (const chunk of body) {
    const buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    hash?.update(buffer);
    yield buffer;
  }
}

async function text(body: AsyncIterable<Buffer>, what: string): Promise<string> {
  const parts: Buffer[] = [];
  let bytes = 0;
  for await (const chunk of body) {
    bytes += chunk.length;
    if (bytes > DESCRIPTOR_LIMIT) throw new InvalidSpecError(`the image's ${what} is larger than an OVF descriptor can be`);
    parts.push(chunk);
  }
  return Buffer.concat(parts).toString('utf8');
}

function verifier(hash: Hash | undefined, checksum: Checksum | undefined, what: string): () => void {
  return () => {
    if (hash === undefined || checksum === undefined) return;
    const actual = hash.digest('hex');
    if (actual !== checksum.hex) throw new InvalidSpecError(`the image ${what} does not match its checksum (${checksum.algorithm} ${actual}, expected ${checksum.hex})`);
  };
}

/** An OVA: one tar stream, the descriptor its first entry; the checksum is the whole file's. */
async function openOVA(url: URL, checksum: Checksum | undefined, signal: AbortSignal): Promise<ImageStream> {
  const hash = checksum === undefined ? undefined : createHash(checksum.algorithm);
  const source = hashed((await open(url, signal)).body, hash)[Symbol.asyncIterator]();
  const entries = tarEntries({ [Symbol.asyncIterator]: () => source });
  const first = await entries.next();
  if (first.done === true || !first.value.name.toLowerCase().endsWith('.ovf')) throw new InvalidSpecError('the image is no OVA: its first file is not an OVF descriptor');
  const descriptor = await text(first.value.body, 'descriptor');
  return {
    descriptor,
    async *files() {
      for (let entry = await entries.next(); entry.done !== true; entry = await entries.next()) yield entry.value;
      // The archive's end blocks and padding count towards the file's checksum too.
      while ((await source.next()).done !== true);
    },
    verify: verifier(hash, checksum, 'OVA'),
    close: async () => void (await source.return?.(undefined)),
  };
}

/** An OVF descriptor with its files beside it; the checksum is the descriptor's. */
async function openOVF(url: URL, checksum: Checksum | undefined, signal: AbortSignal): Promise<ImageStream> {
  const hash = checksum === undefined ? undefined : createHash(checksum.algorithm);
  const descriptor = await text(hashed((await open(url, signal)).body, hash), 'descriptor');
  const verify = verifier(hash, checksum, 'OVF descriptor');
  // Checked now: the files are fetched by what the descriptor names.
  verify();
  return {
    descriptor,
    async *files(wanted) {
      for (const name of wanted) {
        const file = await open(new URL(name, url), signal);
        if (file.length === undefined) throw new InvalidSpecError(`the image file ${name} was served without a length`);
        yield { name, size: file.length, body: hashed(file.body, undefined) };
      }
    },
    verify: () => undefined,
    close: async () => undefined,
  };
}

interface FileItem {
  deviceId: string;
  path: string;
  size: number | undefined;
  /** A file the lease creates whole (an ISO, NVRAM) rather than a disk it converts. */
  create: boolean;
}

// VirtualMachineConfigSpec's elements before extraConfig (vim25 WSDL); the image's keys go after them.
const BEFORE_EXTRA_CONFIG = new Set([
  'changeVersion', 'name', 'version', 'createDate', 'uuid', 'instanceUuid', 'npivNodeWorldWideName', 'npivPortWorldWideName', 'npivWorldWideNameType',
  'npivDesiredNodeWwns', 'npivDesiredPortWwns', 'npivTemporaryDisabled', 'npivOnNonRdmDisks', 'npivWorldWideNameOp', 'locationId', 'guestId',
  'alternateGuestName', 'annotation', 'files', 'tools', 'flags', 'consolePreferences', 'powerOpInfo', 'numCPUs', 'vcpuConfig', 'numCoresPerSocket',
  'memoryMB', 'memoryHotAddEnabled', 'cpuHotAddEnabled', 'cpuHotRemoveEnabled', 'virtualICH7MPresent', 'virtualSMCPresent', 'deviceChange',
  'cpuAllocation', 'memoryAllocation', 'latencySensitivity', 'cpuAffinity', 'memoryAffinity', 'networkShaper', 'cpuFeatureMask', 'extraConfig',
]);

/** vSphere's VirtualMachineImportSpec with the image's key added to its configSpec's extraConfig. */
function withImageKey(importSpec: XmlElement, key: string): Xml {
  const children = importSpec.children.map((item) => {
    if (item.name !== 'configSpec') return reencode(item);
    const inner = item.children.map(reencode);
    const last = item.children.reduce((at, element, index) => (BEFORE_EXTRA_CONFIG.has(element.name) ? index : at), -1);
    inner.splice(last + 1, 0, optionValue('extraConfig', IMAGE_SOURCE_KEY, key));
    return typed('configSpec', item.type?.name ?? 'VirtualMachineConfigSpec', inner);
  });
  return typed('spec', 'VirtualMachineImportSpec', children);
}

/** OvfManager.CreateImportSpec: vSphere's reading of the descriptor, as the spec ImportVApp takes and the files it wants. */
async function createImportSpec(ctx: VsphereContext, descriptor: string, names: URLImageNames, where: ImportPlacement, signal: AbortSignal): Promise<{ spec: Xml; files: FileItem[] }> {
  const { ovfManager } = await ctx.client.serviceContent(signal);
  if (ovfManager === undefined) throw new UnsupportedError('this vSphere endpoint has no OVF manager to import images with');
  const params = typed('cisp', 'OvfCreateImportSpecParams', [
    el('locale', ''),
    el('deploymentOption', ''),
    el('entityName', names.importing),
    moref('hostSystem', where.host),
    el('diskProvisioning', 'thin'),
  ]);
  const result = await ctx.client.returnval(
    'CreateImportSpec',
    [moref('_this', ovfManager), el('ovfDescriptor', descriptor), moref('resourcePool', where.pool), moref('datastore', where.datastoreRef), params],
    signal,
  );
  const errors = childrenNamed(result, 'error').map((fault) => textAt(fault, 'localizedMessage') ?? child(fault, 'fault')?.type?.name ?? 'error');
  if (errors.length > 0) throw new InvalidSpecError(`vSphere cannot import the image's OVF descriptor: ${errors.join('; ')}`);
  const importSpec = child(result, 'importSpec');
  if (importSpec?.type?.name !== 'VirtualMachineImportSpec') {
    throw new InvalidSpecError(`the image's OVF descriptor describes ${importSpec === undefined ? 'nothing to import' : 'a vApp'}; the vSphere driver imports images of one VM`);
  }
  const files = childrenNamed(result, 'fileItem').map((item) => {
    const compression = textAt(item, 'compressionMethod');
    if (compression !== undefined && compression !== '') throw new InvalidSpecError(`the image file ${textAt(item, 'path') ?? ''} is compressed (${compression}); import it uncompressed`);
    return { deviceId: textAt(item, 'deviceId') ?? '', path: textAt(item, 'path') ?? '', size: intAt(item, 'size'), create: textAt(item, 'create') === 'true' };
  });
  return { spec: withImageKey(importSpec, names.key), files };
}

/** The chunks of `body`, each counted into the job's progress. */
async function* counted(body: AsyncIterable<Buffer>, count: (bytes: number) => void): AsyncGenerator<Buffer> {
  for await (const chunk of body) {
    count(chunk.length);
    yield chunk;
  }
}

/** The transfer (see the header); whatever it made is removed unless it ends as the finished template. */
async function writeURLImport(tx: TransferContext, image: { url: URL; checksum: Checksum | undefined }, names: URLImageNames, where: ImportPlacement, job: TransferJob): Promise<void> {
  const { ctx, timing } = tx;
  let lease: ReturnType<typeof morefOf>;
  let vm: ReturnType<typeof morefOf>;
  let completed = false;
  let source: ImageStream | undefined;
  try {
    const isOVF = image.url.pathname.toLowerCase().endsWith('.ovf');
    source = await (isOVF ? openOVF : openOVA)(image.url, image.checksum, job.signal);
    const plan = await createImportSpec(ctx, source.descriptor, names, where, job.signal);
    lease = morefOf(await ctx.client.returnval('ImportVApp', [moref('_this', where.pool), plan.spec, moref('folder', where.folder), moref('host', where.host)], job.signal));
    ctx.vmList.invalidate();
    if (lease === undefined) throw new HypervisorError('vSphere answered ImportVApp without a lease');
    const info = await leaseReady(ctx, lease, timing, job.signal);
    vm = info.entity;
    const total = Math.max(1, plan.files.reduce((sum, file) => sum + (file.size ?? 0), 0));
    let done = 0;
    const uploaded = new Set<string>();
    const keeper = keepLeaseAlive(ctx, lease, job, timing);
    try {
      const cookie = await ctx.client.currentSession(job.signal);
      for await (const file of source.files(plan.files.map((item) => item.path))) {
        const item = plan.files.find((candidate) => candidate.path === file.name || candidate.path === file.name.split('/').pop());
        if (item === undefined) continue;
        const device = info.devices.find((candidate) => candidate.importKey === item.deviceId);
        if (device === undefined) throw new HypervisorError(`the import lease ${lease.value} has no URL for the image file ${item.path}`);
        const connection = new NfcConnection(ctx.config, deviceURL(device.url, ctx.config.origin), device.sslThumbprint, cookie);
        try {
          const body = counted(file.body, (bytes) => job.progress((95 * (done += bytes)) / total));
          await connection.upload(Readable.from(body), file.size, job.signal, item.create ? 'PUT' : 'POST');
        } finally {
          await connection.close();
        }
        uploaded.add(item.path);
      }
      const missing = plan.files.find((item) => !uploaded.has(item.path));
      if (missing !== undefined) throw new InvalidSpecError(`the image has no file ${missing.path}, which its OVF descriptor names`);
      source.verify();
    } finally {
      keeper.stop();
    }
    await completeLease(ctx, lease, job.signal);
    completed = true;
    if (vm === undefined) throw new HypervisorError(`the import lease ${lease.value} names no VM`);
    await ctx.client.call('MarkAsTemplate', [moref('_this', vm)], job.signal);
    await taskEnded(ctx, await startTaskOn(ctx, 'Rename_Task', vm, [el('newName', names.final)], job.signal), timing, `naming the image template ${names.final}`, job.signal);
    ctx.vmList.invalidate();
    vm = undefined;
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    if (lease !== undefined && !completed) await abortLease(ctx, lease, `import of image ${names.key} failed: ${why}`);
    if (vm !== undefined) await destroyQuietly(ctx, vm, timing);
    throw error;
  } finally {
    await source?.close().catch(() => undefined);
  }
}

/**
 * The template of the image a URL and checksum name (see the header), or the task that imports
 * it: the one this runtime runs, else a new one. Busy while another runtime's import holds the VM.
 */
export async function urlImage(tx: TransferContext, image: { url: string; checksum?: string }, signal?: AbortSignal): Promise<URLImage> {
  const { ctx } = tx;
  const url = parseImageURL(image.url);
  const checksum = parseChecksum(image.checksum);
  const names = urlImageNames(image.url, image.checksum);
  const running = tx.transfers.running(`image:${names.key}`);
  if (running !== undefined) return { task: running.id };
  ctx.vmList.invalidate();
  const found = (await listVMs(ctx, signal)).filter((vm) => vm.name === names.final || vm.name === names.importing).map(requireReadable);
  for (const vm of found) {
    if (vm.extraConfig.get(IMAGE_SOURCE_KEY) !== names.key) throw new ConflictError(`VM ${vm.ref.value} is named ${vm.name}, the name of an imported image, but was not imported for it`);
  }
  const finished = found.find((vm) => vm.template && vm.name === names.final);
  if (finished !== undefined) return { template: requireReadable(await readVM(ctx, finished.ref.value, signal)) };
  for (const vm of found) {
    if (vm.name === names.final) throw new ConflictError(`${vm.name}, an imported image, is no longer a template; it is left as it is`);
    // Whole and a template, but not renamed yet (a runtime stopped between the two): the rename finishes it.
    if (vm.template) {
      const task = await startTaskOn(ctx, 'Rename_Task', vm.ref, [el('newName', names.final)], signal);
      if ((await settledNow(ctx, task, `naming the image template ${names.final}`, signal)) === undefined) return { task: task.value };
      return { template: requireReadable(await readVM(ctx, vm.ref.value, signal)) };
    }
    await clearLeftover(ctx, { vm }, signal);
  }
  const where = await importPlacement(ctx, signal);
  return { task: tx.transfers.start(`image:${names.key}`, names.key, (job) => writeURLImport(tx, { url, checksum }, names, where, job)) };
}
