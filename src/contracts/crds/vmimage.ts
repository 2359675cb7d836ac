import { Type, type Static } from '@sinclair/typebox';
import {
  AGE_COLUMN,
  CommonStatusFields,
  READY_COLUMN,
  REASON_COLUMN,
  ResourceObject,
  StringEnum,
  celRules,
  type KindDefinition,
} from './common.js';

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
  { additionalProperties: false, description: 'Import the image from a URL; it is downloaded once per provider.' },
);

export const VMImageSpec = Type.Object(
  {
    source: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 1024,
        description: 'A template on the hypervisor: its name, or its numeric ID (a Proxmox VMID such as 9000).',
      }),
    ),
    url: Type.Optional(ImageURL),
    fullClone: Type.Optional(
      Type.Boolean({ default: true, description: 'false: linked clone (copy-on-write) of the template where the provider can.' }),
    ),
  },
  {
    additionalProperties: false,
    ...celRules({ rule: 'has(self.source) != has(self.url)', message: 'set exactly one image source: source or url' }),
  },
);
export type VMImageSpec = Static<typeof VMImageSpec>;

export const VMImageStatus = Type.Object(
  {
    sourceType: Type.Optional(StringEnum(['Template', 'URL'] as const)),
    ...CommonStatusFields,
  },
  { additionalProperties: false },
);

export const VMImageKind: KindDefinition = {
  kind: 'VMImage',
  plural: 'vmimages',
  singular: 'vmimage',
  shortNames: ['vrimage'],
  description: 'A base image (template or importable disk) that VirtualMachines are created from.',
  spec: VMImageSpec,
  status: VMImageStatus,
  printerColumns: [
    { name: 'Source', type: 'string', jsonPath: '.spec.source' },
    { name: 'URL', type: 'string', jsonPath: '.spec.url.url', priority: 1 },
    READY_COLUMN,
    AGE_COLUMN,
    REASON_COLUMN,
  ],
};

export const VMImageObject = ResourceObject('VMImage', VMImageSpec);
export type VMImageObject = Static<typeof VMImageObject>;
