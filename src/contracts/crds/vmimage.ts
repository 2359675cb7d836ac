// VMImage in both spellings: the seeds' (`source: "<template>"`, `url`, `fullClone`) and upstream
// VirtRigaud's v1beta1 (`source` as an object with one branch per hypervisor or transport, plus
// `prepare`, `metadata`, `distribution`). `spec.source` holds a string in one spelling and an
// object in the other, so the CRD declares it untyped (x-kubernetes-preserve-unknown-fields): the
// apiserver checks nothing below it and CEL cannot see it. The exact shape of the object form is
// ImageSourceObject below, which normalize/vmimage.ts checks; it is never emitted into the CRD.
// Fields with two spellings carry no schema default: their defaults live in normalize.
import { Type, type Static } from '@sinclair/typebox';
import {
  AGE_COLUMN,
  CommonStatusFields,
  Duration,
  READY_COLUMN,
  REASON_COLUMN,
  ResourceObject,
  StringEnum,
  Untyped,
  type KindDefinition,
} from './common.js';

// ---- The seed spelling ----------------------------------------------------------------------

export const ImageURL = Type.Object(
  {
    url: Type.String({ maxLength: 2048, pattern: '^https?://', description: 'HTTP(S) address of a disk image.' }),
    checksum: Type.Optional(
      Type.String({
        maxLength: 160,
        pattern: '^(sha256|sha512):[0-9a-f]+$',
        description: 'Expected digest, "sha256:<hex>" or "sha512:<hex>"; the import fails on a mismatch.',
      }),
    ),
  },
  {
    additionalProperties: false,
    description: 'Import the image from a URL (seed spelling of source.http); it is downloaded once per provider. Set source or url, not both.',
  },
);

// ---- Upstream's object form of spec.source (checked by normalize, not by the apiserver) --------

/** Upstream's names of Kubernetes objects in the same namespace (LocalObjectReference). */
const UpstreamRef = (description: string) =>
  Type.Object(
    { name: Type.String({ maxLength: 253, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', description: 'Name of the object.' }) },
    { additionalProperties: false, description },
  );

export const CHECKSUM_TYPES = ['md5', 'sha1', 'sha256', 'sha512'] as const;
export type ChecksumType = (typeof CHECKSUM_TYPES)[number];
const ChecksumTypeSchema = StringEnum(CHECKSUM_TYPES, { description: 'Algorithm of checksum (default sha256); md5 and sha1 cannot be verified.' });
const Checksum = Type.String({
  maxLength: 200,
  description: 'Expected digest: hex, or "<algorithm>:<hex>" (checksumType says which algorithm).',
});

export const IMAGE_FORMATS = ['qcow2', 'raw', 'vmdk', 'vhd', 'vhdx', 'iso', 'ova', 'ovf'] as const;
const ImageFormat = (description: string) => StringEnum(IMAGE_FORMATS, { description });

const Text = (maxLength: number, description: string) => Type.String({ maxLength, description });

export const VSphereImageSource = Type.Object(
  {
    templateName: Type.Optional(Text(255, 'A vSphere template: its name (unique in the datacenter) or its inventory path.')),
    contentLibrary: Type.Optional(
      Type.Object(
        {
          library: Text(255, 'Content library name.'),
          item: Text(255, 'Library item name.'),
          version: Type.Optional(Text(255, 'Item version.')),
        },
        { additionalProperties: false, description: 'A content library item (no driver clones from content libraries).' },
      ),
    ),
    ovaURL: Type.Optional(
      Type.String({ maxLength: 2048, pattern: '^https?://.*\\.(ova|ovf)$', description: 'An OVA/OVF to import (no driver imports OVA/OVF).' }),
    ),
    checksum: Type.Optional(Checksum),
    checksumType: Type.Optional(ChecksumTypeSchema),
    providerRef: Type.Optional(UpstreamRef('The Provider to import with (images are always used on the VirtualMachine\'s own Provider).')),
  },
  { additionalProperties: false, description: 'What a vSphere provider clones.' },
);

export const LibvirtImageSource = Type.Object(
  {
    path: Type.Optional(Text(4096, 'An image file on the libvirt host (absolute path) or a volume of the provider\'s storage pool.')),
    url: Type.Optional(Type.String({ maxLength: 2048, pattern: '^(https?|ftp)://.*', description: 'An image to download (http or https).' })),
    format: Type.Optional(ImageFormat('Image format (default qcow2); the host detects qcow2, raw, vmdk, vhd and vhdx itself.')),
    checksum: Type.Optional(Checksum),
    checksumType: Type.Optional(ChecksumTypeSchema),
    storagePool: Type.Optional(Text(255, 'libvirt storage pool of the image (the provider uses its configured pool).')),
  },
  { additionalProperties: false, description: 'What a libvirt provider copies or downloads.' },
);

const SecretKey = (description: string) => Type.String({ maxLength: 253, description });

export const HTTPImageSource = Type.Object(
  {
    url: Type.String({ maxLength: 2048, pattern: '^https?://.*', description: 'HTTP(S) address of a disk image.' }),
    headers: Type.Optional(
      Type.Record(Type.String({ maxLength: 256 }), Type.String({ maxLength: 4096 }), {
        maxProperties: 20,
        description: 'HTTP headers for the download (no driver sends them).',
      }),
    ),
    checksum: Type.Optional(Checksum),
    checksumType: Type.Optional(ChecksumTypeSchema),
    authentication: Type.Optional(
      Type.Object(
        {
          basicAuth: Type.Optional(
            Type.Object(
              {
                secretRef: UpstreamRef('Secret with the user name and password.'),
                usernameKey: Type.Optional(SecretKey('Key of the user name (default username).')),
                passwordKey: Type.Optional(SecretKey('Key of the password (default password).')),
              },
              { additionalProperties: false, description: 'HTTP basic authentication.' },
            ),
          ),
          bearer: Type.Optional(
            Type.Object(
              {
                secretRef: UpstreamRef('Secret with the token.'),
                tokenKey: Type.Optional(SecretKey('Key of the token (default token).')),
              },
              { additionalProperties: false, description: 'Bearer token authentication.' },
            ),
          ),
          clientCert: Type.Optional(
            Type.Object(
              {
                secretRef: UpstreamRef('Secret with the certificate and key.'),
                certKey: Type.Optional(SecretKey('Key of the certificate (default tls.crt).')),
                keyKey: Type.Optional(SecretKey('Key of the private key (default tls.key).')),
              },
              { additionalProperties: false, description: 'TLS client certificate authentication.' },
            ),
          ),
        },
        { additionalProperties: false, description: 'Credentials for the download (no driver sends them).' },
      ),
    ),
    timeout: Type.Optional({ ...Duration, description: 'Download time limit (default 30m; downloads run until they finish).' }),
  },
  { additionalProperties: false, description: 'Download the image over HTTP(S); read by every provider without a branch of its own.' },
);

export const RegistryImageSource = Type.Object(
  {
    image: Type.String({ maxLength: 1024, pattern: '^[a-zA-Z0-9._/-]+:[a-zA-Z0-9._-]+$', description: 'Container image reference, name:tag.' }),
    pullSecretRef: Type.Optional(UpstreamRef('Secret to pull with.')),
    format: Type.Optional(ImageFormat('Disk image format inside the container image (default qcow2).')),
  },
  { additionalProperties: false, description: 'A disk image in a container registry (no driver pulls from registries).' },
);

export const DataVolumeImageSource = Type.Object(
  {
    name: Type.String({ maxLength: 253, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', description: 'DataVolume name.' }),
    namespace: Type.Optional(Type.String({ maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', description: 'DataVolume namespace.' })),
  },
  { additionalProperties: false, description: 'A KubeVirt CDI DataVolume (no driver reads DataVolumes).' },
);

export const ProxmoxImageSource = Type.Object(
  {
    templateID: Type.Optional(Type.Integer({ minimum: 100, maximum: 999999999, description: 'VMID of a Proxmox template.' })),
    templateName: Type.Optional(Text(255, 'Name of a Proxmox template.')),
    storage: Type.Optional(Text(255, 'Storage the full clone\'s disks go to, when neither the VirtualMachine nor its VMClass names one.')),
    node: Type.Optional(Text(255, 'Node holding the template; informational, the template is found on whichever node holds it.')),
    format: Type.Optional(
      StringEnum(['raw', 'qcow2', 'vmdk'] as const, { description: 'Disk format of the clone; qcow2 (the default) keeps the template\'s format.' }),
    ),
    fullClone: Type.Optional(Type.Boolean({ description: 'false: linked clone of the template (default true).' })),
  },
  { additionalProperties: false, description: 'What a Proxmox VE provider clones.' },
);

/** Upstream's ImageSource: the exact shape of spec.source when it is an object. */
export const ImageSourceObject = Type.Object(
  {
    vsphere: Type.Optional(VSphereImageSource),
    libvirt: Type.Optional(LibvirtImageSource),
    proxmox: Type.Optional(ProxmoxImageSource),
    http: Type.Optional(HTTPImageSource),
    registry: Type.Optional(RegistryImageSource),
    dataVolume: Type.Optional(DataVolumeImageSource),
  },
  { additionalProperties: false },
);
export type ImageSourceObject = Static<typeof ImageSourceObject>;

/** The keys of the object form of spec.source, in the order status lists them. */
export const IMAGE_SOURCE_BRANCHES = ['vsphere', 'libvirt', 'proxmox', 'http', 'registry', 'dataVolume'] as const;
export type ImageSourceBranch = (typeof IMAGE_SOURCE_BRANCHES)[number];

// ---- The CRD ------------------------------------------------------------------------------------

const SOURCE_DESCRIPTION =
  'Where the image comes from, in either spelling. Seed spelling: a string, a template on the hypervisor (its name, ' +
  'or its numeric ID such as the Proxmox VMID 9000). Upstream spelling: an object with one branch per hypervisor or ' +
  'transport, each provider reading its own and else http (the simulator reads the first of proxmox, vsphere, libvirt, ' +
  'http): vsphere {templateName | contentLibrary {library, item, version} | ovaURL, checksum, checksumType, providerRef}, ' +
  'libvirt {path | url, format, checksum, checksumType, storagePool}, proxmox {templateID | templateName, storage, node, ' +
  'format, fullClone}, http {url, headers, checksum, checksumType, authentication, timeout}, registry {image, ' +
  'pullSecretRef, format}, dataVolume {name, namespace}. The apiserver does not check this field; the VMImage\'s Ready ' +
  'condition names any mistake in it. Set source or url, not both.';

const Descriptive = 'Descriptive only: shown by kubectl, never sent to the hypervisor.';

export const ImagePrepare = Type.Object(
  {
    onMissing: Type.Optional(
      StringEnum(['Import', 'Fail', 'Wait'] as const, {
        default: 'Import',
        description:
          'What a VirtualMachine does when the image is not on its provider yet. Import: download it (URL images), ' +
          'Fail or Wait: never download. Templates are used as they are whatever it says (a missing one fails the create); ' +
          'URL images need Import (no driver can hold a create until someone else imports the image).',
      }),
    ),
    validateChecksum: Type.Optional(Type.Boolean({ default: true, description: 'false: download without checking the checksum.' })),
    timeout: Type.Optional({ ...Duration, default: '30m', description: 'Time limit of the import (30m, the default; imports run until they finish).' }),
    retries: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 10, default: 3, description: 'Attempts of a failed import (3, the default; failures are retried with back-off).' }),
    ),
    force: Type.Optional(Type.Boolean({ description: 'Import again even if the image is on the provider (no driver re-imports).' })),
    storage: Type.Optional(
      Type.Object(
        {
          vsphere: Type.Optional(
            Type.Object(
              {
                datastore: Type.Optional(Text(255, 'Datastore of the imported template.')),
                folder: Type.Optional(Text(255, 'Folder of the imported template.')),
                thinProvisioned: Type.Optional(Type.Boolean({ description: 'Thin-provision the imported template.' })),
                diskType: Type.Optional(StringEnum(['thin', 'thick', 'eagerzeroedthick'] as const, { description: 'Provisioning of the imported template.' })),
              },
              { additionalProperties: false, description: 'Where a vSphere import goes (no driver imports into vSphere).' },
            ),
          ),
          libvirt: Type.Optional(
            Type.Object(
              {
                storagePool: Type.Optional(Text(255, 'Storage pool of the imported image (the provider\'s configured pool is used).')),
                allocationPolicy: Type.Optional(StringEnum(['eager', 'lazy'] as const, { description: 'Allocation of the imported volume.' })),
                preallocation: Type.Optional(StringEnum(['off', 'metadata', 'falloc', 'full'] as const, { description: 'Preallocation of the imported volume.' })),
              },
              { additionalProperties: false, description: 'Where a libvirt import goes.' },
            ),
          ),
          preferredFormat: Type.Optional(ImageFormat('Format of the imported image; imports are stored as qcow2.')),
          compression: Type.Optional(Type.Boolean({ default: false, description: 'Compress the imported image.' })),
        },
        { additionalProperties: false, description: 'Where and how imported images are stored.' },
      ),
    ),
    optimization: Type.Optional(
      Type.Object(
        {
          enableCompression: Type.Optional(Type.Boolean({ default: false, description: 'Compress the image.' })),
          removeUnusedSpace: Type.Optional(Type.Boolean({ default: false, description: 'Sparsify the image.' })),
          convertFormat: Type.Optional(ImageFormat('Convert the image to this format; imports are stored as qcow2.')),
          enableDeltaSync: Type.Optional(Type.Boolean({ default: false, description: 'Download only what changed.' })),
        },
        { additionalProperties: false, description: 'Image optimizations at import.' },
      ),
    ),
  },
  { additionalProperties: false, description: 'How the image is brought onto a provider (upstream spelling; values other than the defaults are Unsupported unless said otherwise).' },
);

const StringMap = (description: string) =>
  Type.Record(Type.String({ maxLength: 316 }), Type.String({ maxLength: 4096, description: 'A value.' }), { maxProperties: 50, description });

export const ImageMetadata = Type.Object(
  {
    displayName: Type.Optional(Text(255, `Human-readable name. ${Descriptive}`)),
    description: Type.Optional(Text(1024, `What the image is. ${Descriptive}`)),
    version: Type.Optional(Text(100, `Image version. ${Descriptive}`)),
    architecture: Type.Optional(
      StringEnum(['amd64', 'arm64', 'x86_64', 'aarch64'] as const, {
        default: 'amd64',
        description: 'CPU architecture of the image; every driver creates x86_64 (amd64) VMs.',
      }),
    ),
    tags: Type.Optional(StringMap(`Key-value tags. ${Descriptive}`)),
    annotations: Type.Optional(StringMap(`Further annotations. ${Descriptive}`)),
  },
  { additionalProperties: false, description: 'Facts about the image for humans (upstream spelling).' },
);

export const OSDistribution = Type.Object(
  {
    name: Type.Optional(
      StringEnum(['ubuntu', 'centos', 'rhel', 'fedora', 'debian', 'suse', 'windows', 'freebsd', 'coreos', 'other'] as const, {
        description: `Distribution. ${Descriptive}`,
      }),
    ),
    version: Type.Optional(Text(100, `Distribution version. ${Descriptive}`)),
    variant: Type.Optional(Text(100, `Variant (server, desktop…). ${Descriptive}`)),
    family: Type.Optional(StringEnum(['linux', 'windows', 'bsd', 'other'] as const, { description: `OS family. ${Descriptive}` })),
    kernel: Type.Optional(
      Type.Object(
        {
          version: Type.Optional(Text(100, `Kernel version. ${Descriptive}`)),
          type: Type.Optional(StringEnum(['linux', 'windows', 'freebsd', 'other'] as const, { description: `Kernel type. ${Descriptive}` })),
        },
        { additionalProperties: false, description: `Kernel of the image. ${Descriptive}` },
      ),
    ),
  },
  { additionalProperties: false, description: `The operating system in the image (upstream spelling). ${Descriptive}` },
);

export const VMImageSpec = Type.Object(
  {
    source: Type.Optional(Untyped<unknown>({ description: SOURCE_DESCRIPTION })),
    url: Type.Optional(ImageURL),
    fullClone: Type.Optional(
      Type.Boolean({
        description: 'false: linked clone (copy-on-write) of the template or downloaded image where the provider can (default true).',
      }),
    ),
    prepare: Type.Optional(ImagePrepare),
    metadata: Type.Optional(ImageMetadata),
    distribution: Type.Optional(OSDistribution),
  },
  {
    additionalProperties: false,
    description: 'A base image: a template (source) or a disk image to download (url), in the seed or the upstream spelling, not both.',
  },
);
export type VMImageSpec = Static<typeof VMImageSpec>;

export const VMImageSourceType = StringEnum(['Template', 'URL', 'Branches'] as const, {
  description:
    'What spec.source amounts to: Template (a template name or ID), URL (spec.url), or Branches (upstream\'s object form: ' +
    'each provider reads its own branch, listed in branches, else http).',
});

export const VMImageStatus = Type.Object(
  {
    sourceType: Type.Optional(VMImageSourceType),
    branches: Type.Optional(
      Type.Array(StringEnum(IMAGE_SOURCE_BRANCHES, { description: 'A branch of spec.source.' }), {
        maxItems: IMAGE_SOURCE_BRANCHES.length,
        description: 'The branches spec.source holds, when it is an object.',
      }),
    ),
    ...CommonStatusFields,
  },
  { additionalProperties: false, description: 'Whether the image is valid, and what its source amounts to.' },
);

export const VMImageKind: KindDefinition = {
  kind: 'VMImage',
  plural: 'vmimages',
  singular: 'vmimage',
  shortNames: ['vrimage', 'vmimg'],
  description: 'A base image (template or importable disk) that VirtualMachines are created from.',
  spec: VMImageSpec,
  status: VMImageStatus,
  printerColumns: [
    { name: 'Source', type: 'string', jsonPath: '.status.sourceType' },
    { name: 'Branches', type: 'string', jsonPath: '.status.branches', priority: 1 },
    { name: 'URL', type: 'string', jsonPath: '.spec.url.url', priority: 1 },
    { name: 'Display Name', type: 'string', jsonPath: '.spec.metadata.displayName', priority: 1 },
    { name: 'OS', type: 'string', jsonPath: '.spec.distribution.name', priority: 1 },
    READY_COLUMN,
    AGE_COLUMN,
    REASON_COLUMN,
  ],
};

export const VMImageObject = ResourceObject('VMImage', VMImageSpec);
export type VMImageObject = Static<typeof VMImageObject>;
