// VMImage, either spelling → one ImageSpec. Pure and table-tested (test/contracts/vmimage-shapes.test.ts).
//
// Seed spelling: `source: "<template name or ID>"` or `url: {url, checksum}`, plus `fullClone`.
// Upstream spelling: `source` as an object with a branch per hypervisor (vsphere, libvirt,
// proxmox) or transport (http, registry, dataVolume). A provider reads its own branch, else http;
// the simulator reads the first present of proxmox, vsphere, libvirt, http. Which branch was read
// is returned, so fieldUses (support.ts) skips the rules of the branches nobody read.
//
// Who answers what: VMIMAGE_FIELDS names every field whose meaning needs a driver capability or
// that no driver honours (an Unsupported condition, field by field). normalizeVMImage answers
// `unsupported` only when it cannot make an image for the provider type at all (no branch it
// reads; a vSphere branch without a template) or when the verdict depends on a combination of
// fields no single rule can see (a checksum on a host path, onMissing Fail/Wait on a URL image).
import type { ProviderType } from '../crds/provider.js';
import {
  IMAGE_SOURCE_BRANCHES,
  ImageSourceObject,
  type ChecksumType,
  type ImageSourceBranch,
  type VMImageSpec,
} from '../crds/vmimage.js';
import type { ImageSpec } from '../driver.js';
import { parseDuration } from '../quantity.js';
import { NO_DRIVER, problem, unsupported, type FieldRule, type Normalized, type SourceBranch } from './common.js';
import { shapeProblem } from './shape.js';

export interface CanonicalImage {
  image: ImageSpec;
  /** The branch of spec.source that was read (a hypervisor's, or http); undefined for the seed spelling. */
  branch?: SourceBranch;
  /**
   * `source.proxmox.storage`: the storage of a full clone's disks when neither the VirtualMachine
   * (placement.datastore) nor its VMClass names one. Needs the placementDatastore capability.
   */
  datastore?: string;
}

/** The branches a provider type reads, in order of preference (types no driver serves read http only). */
const READ_ORDER: Readonly<Record<ProviderType, readonly ('vsphere' | 'libvirt' | 'proxmox' | 'http')[]>> = {
  simulator: ['proxmox', 'vsphere', 'libvirt', 'http'],
  vsphere: ['vsphere', 'http'],
  libvirt: ['libvirt', 'http'],
  proxmox: ['proxmox', 'http'],
  firecracker: ['http'],
  qemu: ['http'],
};

const DIGEST_HEX_DIGITS: Readonly<Record<ChecksumType, number>> = { md5: 32, sha1: 40, sha256: 64, sha512: 128 };
const DEFAULT_TIMEOUT_MS = 30 * 60_000;

/**
 * An installer ISO is named by its file: a template reference (`local:iso/debian.iso`, a host
 * path) or a URL whose path ends in `.iso`, or a libvirt branch with format iso. It becomes an
 * ImageSpec of kind `iso` (a VM with empty disks booting the ISO; needs isoInstall).
 */
const ISO_FILE = /\.iso$/i;
export function namesISO(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) return ISO_FILE.test(value);
  try {
    return ISO_FILE.test(new URL(value).pathname);
  } catch {
    return false;
  }
}

/** Upstream's Go types drop empty strings (omitempty): "" means "not set". */
const given = (value: string | undefined): value is string => value !== undefined && value !== '';

type Source =
  | { form: 'template'; ref: string }
  | { form: 'url' }
  | { form: 'object'; source: ImageSourceObject; branches: ImageSourceBranch[] };

type Read<T> = { ok: true; value: T } | { ok: false; problem: string };

/** An upstream checksum (hex, or "<algorithm>:<hex>", with checksumType) as algorithm and digest. */
function readChecksum(where: string, checksum: string | undefined, type: ChecksumType | undefined): Read<{ algorithm: ChecksumType; hex: string } | undefined> {
  if (!given(checksum)) return { ok: true, value: undefined };
  const match = /^(?:(md5|sha1|sha256|sha512):)?([0-9a-fA-F]+)$/.exec(checksum);
  if (!match) return { ok: false, problem: `${where}.checksum is not a hex digest (optionally prefixed "<algorithm>:")` };
  const prefix = match[1] as ChecksumType | undefined;
  const hex = (match[2] ?? '').toLowerCase();
  if (prefix !== undefined && type !== undefined && prefix !== type) {
    return { ok: false, problem: `${where}.checksum is a ${prefix} digest but ${where}.checksumType is ${type}` };
  }
  const algorithm = prefix ?? type ?? 'sha256';
  const digits = DIGEST_HEX_DIGITS[algorithm];
  if (hex.length !== digits) return { ok: false, problem: `${where}.checksum has ${hex.length} hex digits; a ${algorithm} digest has ${digits}` };
  return { ok: true, value: { algorithm, hex } };
}

/** Everything about spec.source that does not depend on the provider. */
function readSource(spec: VMImageSpec): Read<Source> {
  const fail = (message: string): Read<Source> => ({ ok: false, problem: message });
  const source = spec.source === null ? undefined : spec.source;
  if (source !== undefined && spec.url !== undefined) return fail('set exactly one image source: spec.source or spec.url, not both');
  if (source === undefined && spec.url === undefined) return fail('set exactly one image source: spec.source or spec.url');
  if (spec.url !== undefined) return { ok: true, value: { form: 'url' } };
  if (typeof source === 'string') {
    if (source.length === 0 || source.length > 1024) return fail('spec.source must be a template name or ID of 1 to 1024 characters');
    return { ok: true, value: { form: 'template', ref: source } };
  }
  // `source: 9000` unquoted is a number in YAML: a template ID all the same.
  if (typeof source === 'number') {
    if (!Number.isSafeInteger(source) || source < 0) return fail('spec.source must be a template name or a whole-number template ID');
    return { ok: true, value: { form: 'template', ref: String(source) } };
  }
  if (source === null || typeof source !== 'object' || Array.isArray(source)) {
    return fail('spec.source must be a template name or ID, or an object with vsphere, libvirt, proxmox, http, registry or dataVolume');
  }
  const shape = shapeProblem(ImageSourceObject, source, 'spec.source');
  if (shape !== undefined) return fail(shape);
  const object = source as ImageSourceObject;
  const branches = IMAGE_SOURCE_BRANCHES.filter((branch) => object[branch] !== undefined);
  if (branches.length === 0) return fail('spec.source names no image: set one of vsphere, libvirt, proxmox, http, registry or dataVolume');

  const { vsphere, libvirt, proxmox, http } = object;
  if (vsphere !== undefined) {
    if (!given(vsphere.templateName) && vsphere.contentLibrary === undefined && !given(vsphere.ovaURL)) {
      return fail('spec.source.vsphere: set templateName, contentLibrary or ovaURL');
    }
    const checksum = readChecksum('spec.source.vsphere', vsphere.checksum, vsphere.checksumType);
    if (!checksum.ok) return fail(checksum.problem);
  }
  if (libvirt !== undefined) {
    if (given(libvirt.path) && given(libvirt.url)) return fail('spec.source.libvirt: set path or url, not both');
    if (!given(libvirt.path) && !given(libvirt.url)) return fail('spec.source.libvirt: set path or url');
    const checksum = readChecksum('spec.source.libvirt', libvirt.checksum, libvirt.checksumType);
    if (!checksum.ok) return fail(checksum.problem);
  }
  if (proxmox !== undefined) {
    if (proxmox.templateID !== undefined && given(proxmox.templateName)) return fail('spec.source.proxmox: set templateID or templateName, not both');
    if (proxmox.templateID === undefined && !given(proxmox.templateName)) return fail('spec.source.proxmox: set templateID or templateName');
    if (proxmox.fullClone !== undefined && spec.fullClone !== undefined) {
      return fail('set spec.fullClone or spec.source.proxmox.fullClone, not both');
    }
  }
  if (http !== undefined) {
    const checksum = readChecksum('spec.source.http', http.checksum, http.checksumType);
    if (!checksum.ok) return fail(checksum.problem);
  }
  return { ok: true, value: { form: 'object', source: object, branches } };
}

/**
 * Whether a VMImage is valid whatever provider uses it: exactly one source (spec.source or
 * spec.url), the exact shape of an object spec.source, one source in each branch. Undefined when
 * it is; else one line naming the field.
 */
export function checkVMImage(spec: VMImageSpec): string | undefined {
  const source = readSource(spec);
  return source.ok ? undefined : source.problem;
}

/** What a valid VMImage's source amounts to, for its status. */
export function imageSourceSummary(spec: VMImageSpec): { sourceType: 'Template' | 'URL' | 'Branches'; branches?: ImageSourceBranch[] } {
  const source = readSource(spec);
  if (!source.ok || source.value.form === 'template') return { sourceType: 'Template' };
  if (source.value.form === 'url') return { sourceType: 'URL' };
  return { sourceType: 'Branches', branches: source.value.branches };
}

function readerText(providerType: ProviderType): string {
  const order = READ_ORDER[providerType].map((branch) => `spec.source.${branch}`);
  const who = providerType === 'simulator' ? 'the simulator reads' : `a ${providerType} provider reads`;
  return order.length === 1 ? `${who} ${order[0] ?? ''}` : `${who} ${order.slice(0, -1).join(', ')} or ${order[order.length - 1] ?? ''}`;
}

/** An upstream digest as the drivers take it ("sha256:<hex>"); md5 and sha1 have their own rule (Unsupported). */
function driverChecksum(checksum: { algorithm: ChecksumType; hex: string } | undefined): string | undefined {
  return checksum !== undefined && (checksum.algorithm === 'sha256' || checksum.algorithm === 'sha512') ? `${checksum.algorithm}:${checksum.hex}` : undefined;
}

/**
 * A URL image: verified when a checksum is given and spec.prepare.validateChecksum is not false.
 * An ISO (`iso`: the URL names one, or the branch says format iso) is an installer, not a disk.
 */
function urlImage(spec: VMImageSpec, url: string, checksum: string | undefined, fullClone: boolean, iso = namesISO(url)): Normalized<ImageSpec> {
  const onMissing = spec.prepare?.onMissing ?? 'Import';
  if (onMissing !== 'Import') {
    return unsupported(
      `spec.prepare.onMissing ${onMissing}: a URL image is downloaded by the provider on first use; no driver can hold the create until the image is imported otherwise (use Import)`,
    );
  }
  const verified = checksum !== undefined && spec.prepare?.validateChecksum !== false ? { checksum } : {};
  const image: ImageSpec = iso ? { kind: 'iso', url, ...verified } : { kind: 'url', url, fullClone, ...verified };
  return { ok: true, value: image };
}

/**
 * The image a provider of `providerType` makes VMs from. `branch` says which per-hypervisor branch
 * was read (pass it to fieldUses); `datastore` is source.proxmox.storage. fullClone defaults to
 * true in both spellings (seed `fullClone`, upstream `source.proxmox.fullClone`; setting both is
 * refused); the seed's `fullClone` also applies to the vsphere, libvirt and http branches, which
 * have no spelling of their own. A checksum is carried as "sha256:<hex>" or "sha512:<hex>".
 */
export function normalizeVMImage(spec: VMImageSpec, providerType: ProviderType): Normalized<CanonicalImage> {
  const read = readSource(spec);
  if (!read.ok) return problem(read.problem);
  const source = read.value;
  const seedFullClone = spec.fullClone ?? true;

  if (source.form === 'template') {
    const image: ImageSpec = namesISO(source.ref) ? { kind: 'iso', ref: source.ref } : { kind: 'template', ref: source.ref, fullClone: seedFullClone };
    return { ok: true, value: { image } };
  }
  if (source.form === 'url') {
    const url = spec.url;
    if (url === undefined) return problem('set exactly one image source: spec.source or spec.url');
    const image = urlImage(spec, url.url, url.checksum, seedFullClone);
    return image.ok ? { ok: true, value: { image: image.value } } : image;
  }

  const object = source.source;
  const branch = READ_ORDER[providerType].find((name) => object[name] !== undefined);
  if (branch === undefined) return unsupported(`spec.source has ${source.branches.join(', ')}; ${readerText(providerType)}`);

  switch (branch) {
    case 'vsphere': {
      const vsphere = object.vsphere ?? {};
      if (given(vsphere.templateName)) {
        return { ok: true, value: { image: { kind: 'template', ref: vsphere.templateName, fullClone: seedFullClone }, branch } };
      }
      // An OVA/OVF the provider imports into a template once (imageImport), then clones.
      if (given(vsphere.ovaURL)) {
        const checksum = readChecksum('spec.source.vsphere', vsphere.checksum, vsphere.checksumType);
        if (!checksum.ok) return problem(checksum.problem);
        const image = urlImage(spec, vsphere.ovaURL, driverChecksum(checksum.value), seedFullClone, false);
        return image.ok ? { ok: true, value: { image: image.value, branch } } : image;
      }
      return unsupported('spec.source.vsphere has contentLibrary but no templateName or ovaURL: no driver clones from a content library');
    }
    case 'libvirt': {
      const libvirt = object.libvirt ?? {};
      const checksum = readChecksum('spec.source.libvirt', libvirt.checksum, libvirt.checksumType);
      if (!checksum.ok) return problem(checksum.problem);
      const iso = libvirt.format === 'iso' || namesISO(libvirt.url ?? libvirt.path);
      if (given(libvirt.url)) {
        const image = urlImage(spec, libvirt.url, driverChecksum(checksum.value), seedFullClone, iso);
        return image.ok ? { ok: true, value: { image: image.value, branch } } : image;
      }
      if (checksum.value !== undefined && spec.prepare?.validateChecksum !== false) {
        return unsupported('spec.source.libvirt.checksum: only downloaded images are verified; an image at spec.source.libvirt.path is used as it is');
      }
      const path = libvirt.path ?? '';
      return { ok: true, value: { image: iso ? { kind: 'iso', ref: path } : { kind: 'template', ref: path, fullClone: seedFullClone }, branch } };
    }
    case 'proxmox': {
      const proxmox = object.proxmox ?? {};
      const ref = proxmox.templateID !== undefined ? String(proxmox.templateID) : (proxmox.templateName ?? '');
      const value: CanonicalImage = { image: { kind: 'template', ref, fullClone: proxmox.fullClone ?? seedFullClone }, branch };
      if (given(proxmox.storage)) value.datastore = proxmox.storage;
      return { ok: true, value };
    }
    case 'http': {
      const http = object.http;
      if (http === undefined) return problem('spec.source.http is required');
      const checksum = readChecksum('spec.source.http', http.checksum, http.checksumType);
      if (!checksum.ok) return problem(checksum.problem);
      const image = urlImage(spec, http.url, driverChecksum(checksum.value), seedFullClone);
      return image.ok ? { ok: true, value: { image: image.value, branch } } : image;
    }
  }
}

const nonEmpty = { text: 'not empty', test: (value: unknown) => value !== '' };
const isoFile = { text: 'an ISO', test: namesISO };
const diskFile = { text: 'a disk image', test: (value: unknown) => !namesISO(value) };
type VsphereBranch = { templateName?: string; ovaURL?: string; checksum?: string };
const vsphereImport = { text: 'an ovaURL without templateName', test: (value: unknown) => given((value as VsphereBranch).ovaURL) && !given((value as VsphereBranch).templateName) };
const vsphereOvaBesideTemplate = {
  text: 'an ovaURL beside templateName',
  test: (value: unknown) => given((value as VsphereBranch).ovaURL) && given((value as VsphereBranch).templateName),
};
const vsphereChecksumOnTemplate = {
  text: 'a checksum beside templateName',
  test: (value: unknown) => given((value as VsphereBranch).checksum) && given((value as VsphereBranch).templateName),
};
type LibvirtBranch = { url?: string; path?: string; format?: string };
const libvirtIsISO = (branch: LibvirtBranch) => branch.format === 'iso' || namesISO(branch.url ?? branch.path);
const libvirtISO = { text: 'an ISO: format iso, or a url or path ending .iso', test: (value: unknown) => libvirtIsISO(value as LibvirtBranch) };
const libvirtDiskURL = {
  text: 'a url of a disk image',
  test: (value: unknown) => given((value as LibvirtBranch).url) && !libvirtIsISO(value as LibvirtBranch),
};
const durationOtherThan = (ms: number, text: string) => ({
  text: `other than ${text}`,
  test: (value: unknown) => typeof value !== 'string' || parseDuration(value) !== ms,
});
const NOT_QCOW2 = ['raw', 'vmdk', 'vhd', 'vhdx', 'iso', 'ova', 'ovf'] as const;
const WEAK_DIGESTS = ['md5', 'sha1'] as const;
const WEAK_DIGEST_WHY = 'drivers verify sha256 and sha512 digests only';
const NO_DOWNLOAD_AUTH = 'no driver authenticates downloads';

/**
 * The VMImage fields whose meaning needs something of the driver (support.ts). Explicit values
 * equal to upstream's defaults (timeout 30m, retries 3, format qcow2, checksumType sha256, …)
 * mean what leaving them out means and trigger nothing.
 */
export const VMIMAGE_FIELDS: readonly FieldRule[] = [
  // Seed spelling.
  { path: 'spec.source', when: isoFile, example: 'local:iso/debian-12.iso', capability: 'isoInstall' },
  { path: 'spec.url.url', when: diskFile, example: 'https://images.example.com/jammy.qcow2', capability: 'imageImport' },
  { path: 'spec.url.url', when: isoFile, example: 'https://images.example.com/debian-12.iso', capability: 'isoInstall' },
  { path: 'spec.fullClone', values: [false], capability: 'linkedClones' },
  // source.http: read by every provider without a branch of its own.
  { path: 'spec.source.http.url', for: 'http', when: diskFile, example: 'https://images.example.com/jammy.qcow2', capability: 'imageImport' },
  { path: 'spec.source.http.url', for: 'http', when: isoFile, example: 'https://images.example.com/debian-12.iso', capability: 'isoInstall' },
  { path: 'spec.source.http.checksumType', for: 'http', values: WEAK_DIGESTS, why: WEAK_DIGEST_WHY },
  { path: 'spec.source.http.headers', for: 'http', example: { 'X-Token': 'abc' }, why: 'no driver sends HTTP headers with a download' },
  { path: 'spec.source.http.authentication.basicAuth', for: 'http', example: { secretRef: { name: 'download' } }, why: NO_DOWNLOAD_AUTH },
  { path: 'spec.source.http.authentication.bearer', for: 'http', example: { secretRef: { name: 'download' } }, why: NO_DOWNLOAD_AUTH },
  { path: 'spec.source.http.authentication.clientCert', for: 'http', example: { secretRef: { name: 'download' } }, why: NO_DOWNLOAD_AUTH },
  { path: 'spec.source.http.timeout', for: 'http', when: durationOtherThan(DEFAULT_TIMEOUT_MS, '30m'), example: '1h', why: 'downloads run until they finish; no driver bounds them' },
  // source.libvirt.
  { path: 'spec.source.libvirt', for: 'libvirt', when: libvirtDiskURL, example: { url: 'https://images.example.com/jammy.qcow2' }, capability: 'imageImport' },
  { path: 'spec.source.libvirt', for: 'libvirt', when: libvirtISO, example: { path: '/var/lib/libvirt/images/debian-12.iso' }, capability: 'isoInstall' },
  {
    path: 'spec.source.libvirt.url',
    for: 'libvirt',
    when: { text: 'ftp://', test: (value) => typeof value === 'string' && /^ftp:/i.test(value) },
    example: 'ftp://images.example.com/jammy.qcow2',
    why: 'images are downloaded over http or https only',
  },
  {
    path: 'spec.source.libvirt.format',
    for: 'libvirt',
    values: ['ova', 'ovf'],
    why: 'disks are made from disk images (qcow2, raw, vmdk, vhd, vhdx) or installed from an ISO; the libvirt driver unpacks no OVA/OVF',
  },
  { path: 'spec.source.libvirt.checksumType', for: 'libvirt', values: WEAK_DIGESTS, why: WEAK_DIGEST_WHY },
  { path: 'spec.source.libvirt.storagePool', for: 'libvirt', when: nonEmpty, example: 'images', why: 'the libvirt driver uses the storage pool its Provider is configured with' },
  // source.vsphere.
  { path: 'spec.source.vsphere.contentLibrary', for: 'vsphere', example: { library: 'images', item: 'jammy' }, why: 'no driver clones from a content library' },
  { path: 'spec.source.vsphere', for: 'vsphere', when: vsphereImport, example: { ovaURL: 'https://images.example.com/jammy.ova' }, capability: 'imageImport' },
  {
    path: 'spec.source.vsphere',
    for: 'vsphere',
    when: vsphereOvaBesideTemplate,
    example: { templateName: 'jammy', ovaURL: 'https://images.example.com/jammy.ova' },
    why: 'the template is cloned; an OVA is imported only when no templateName is set',
  },
  {
    path: 'spec.source.vsphere',
    for: 'vsphere',
    when: vsphereChecksumOnTemplate,
    example: { templateName: 'jammy', checksum: `sha256:${'0'.repeat(64)}` },
    why: 'a template is cloned as it is; only an imported OVA/OVF is verified',
  },
  { path: 'spec.source.vsphere.checksumType', for: 'vsphere', values: WEAK_DIGESTS, why: WEAK_DIGEST_WHY },
  { path: 'spec.source.vsphere.providerRef', for: 'vsphere', example: { name: 'vsphere-prod' }, why: 'images are used on the VirtualMachine\'s own Provider' },
  // source.proxmox (templateID, templateName and node need nothing: the template is found cluster-wide).
  { path: 'spec.source.proxmox.fullClone', for: 'proxmox', values: [false], capability: 'linkedClones' },
  { path: 'spec.source.proxmox.storage', for: 'proxmox', when: nonEmpty, example: 'local-lvm', capability: 'placementDatastore' },
  {
    path: 'spec.source.proxmox.format',
    for: 'proxmox',
    values: ['raw', 'vmdk'],
    why: 'a clone keeps the template\'s disk format where its storage allows it; no driver converts it',
  },
  // Sources no driver reads.
  { path: 'spec.source.registry.image', for: 'registry', example: 'registry.example.com/images/jammy:22.04', why: 'no driver pulls disk images from container registries' },
  { path: 'spec.source.dataVolume.name', for: 'dataVolume', example: 'jammy', why: 'no driver reads KubeVirt CDI DataVolumes' },
  // prepare (onMissing is read by normalizeVMImage; validateChecksum false drops the checksum).
  { path: 'spec.prepare.timeout', when: durationOtherThan(DEFAULT_TIMEOUT_MS, '30m'), example: '1h', why: 'imports run until they finish; no driver bounds them' },
  {
    path: 'spec.prepare.retries',
    when: { text: 'other than 3', test: (value) => value !== 3 },
    example: 5,
    why: 'failed operations are retried with back-off, not a number of times',
  },
  { path: 'spec.prepare.force', values: [true], why: 'no driver imports an image it holds again' },
  { path: 'spec.prepare.storage.vsphere.datastore', when: nonEmpty, example: 'datastore1', why: 'no driver imports into vSphere' },
  { path: 'spec.prepare.storage.vsphere.folder', when: nonEmpty, example: '/Templates', why: 'no driver imports into vSphere' },
  { path: 'spec.prepare.storage.vsphere.thinProvisioned', example: true, why: 'no driver imports into vSphere' },
  { path: 'spec.prepare.storage.vsphere.diskType', example: 'thin', why: 'no driver imports into vSphere' },
  { path: 'spec.prepare.storage.libvirt.storagePool', when: nonEmpty, example: 'images', why: 'the libvirt driver imports into the storage pool its Provider is configured with' },
  { path: 'spec.prepare.storage.libvirt.allocationPolicy', example: 'eager', why: 'imported images are sparse qcow2 files' },
  { path: 'spec.prepare.storage.libvirt.preallocation', example: 'full', why: 'imported images are sparse qcow2 files' },
  { path: 'spec.prepare.storage.preferredFormat', values: NOT_QCOW2, why: 'imported images are stored as qcow2' },
  { path: 'spec.prepare.storage.compression', values: [true], why: NO_DRIVER },
  { path: 'spec.prepare.optimization.enableCompression', values: [true], why: NO_DRIVER },
  { path: 'spec.prepare.optimization.removeUnusedSpace', values: [true], why: NO_DRIVER },
  { path: 'spec.prepare.optimization.convertFormat', values: NOT_QCOW2, why: 'imported images are stored as qcow2' },
  { path: 'spec.prepare.optimization.enableDeltaSync', values: [true], why: NO_DRIVER },
  // metadata and distribution are descriptive, but for the architecture.
  { path: 'spec.metadata.architecture', values: ['arm64', 'aarch64'], why: 'every driver creates x86_64 VMs' },
];
