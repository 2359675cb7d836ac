import { Type, type Static } from '@sinclair/typebox';
import {
  AGE_COLUMN,
  CommonStatusFields,
  DiskSize,
  Quantity,
  READY_COLUMN,
  REASON_COLUMN,
  ResourceObject,
  StringEnum,
  celRules,
  type KindDefinition,
} from './common.js';

export const Firmware = StringEnum(['bios', 'uefi'] as const);
export type Firmware = Static<typeof Firmware>;

export const VMClassSpec = Type.Object(
  {
    cpus: Type.Integer({ minimum: 1, maximum: 240, description: 'Virtual CPUs.' }),
    memory: { ...Quantity, description: 'Memory, a whole number of MiB (e.g. 4Gi).' },
    spec: Type.Optional(
      Type.Object(
        {
          machine: Type.Optional(
            Type.String({ maxLength: 64, pattern: '^[a-z0-9][-a-z0-9._]*$', description: 'Machine type, e.g. q35 or pc.' }),
          ),
          bios: Type.Optional({ ...Firmware, description: 'Firmware: bios (SeaBIOS) or uefi (OVMF).' }),
        },
        { additionalProperties: false, description: 'Virtual hardware platform.' },
      ),
    ),
    storage: Type.Optional(
      Type.Object(
        {
          class: Type.Optional(
            Type.String({ maxLength: 128, pattern: '^[A-Za-z0-9][-A-Za-z0-9_.]*$', description: 'Datastore / storage pool for the disks.' }),
          ),
          type: Type.Optional(StringEnum(['thin', 'thick'] as const, { description: 'Disk provisioning.' })),
        },
        { additionalProperties: false },
      ),
    ),
    diskDefaults: Type.Optional(
      Type.Object(
        { size: Type.Optional({ ...DiskSize, description: 'Root disk size when the VirtualMachine names none.' }) },
        { additionalProperties: false },
      ),
    ),
    performanceProfile: Type.Optional(
      Type.Object(
        {
          nestedVirtualization: Type.Optional(Type.Boolean()),
          cpuHotAddEnabled: Type.Optional(Type.Boolean()),
          memoryHotAddEnabled: Type.Optional(Type.Boolean()),
        },
        { additionalProperties: false },
      ),
    ),
    securityProfile: Type.Optional(
      Type.Object(
        {
          tpmEnabled: Type.Optional(Type.Boolean()),
          tpmVersion: Type.Optional(StringEnum(['2.0'] as const)),
          secureBoot: Type.Optional(Type.Boolean()),
        },
        { additionalProperties: false, description: 'TPM and secure boot imply UEFI firmware.' },
      ),
    ),
  },
  {
    additionalProperties: false,
    ...celRules({
      rule:
        "!has(self.spec) || !has(self.spec.bios) || self.spec.bios != 'bios' || !has(self.securityProfile) || " +
        '((!has(self.securityProfile.secureBoot) || !self.securityProfile.secureBoot) && ' +
        '(!has(self.securityProfile.tpmEnabled) || !self.securityProfile.tpmEnabled))',
      message: 'secureBoot and tpmEnabled need uefi firmware, not bios',
    }),
  },
);
export type VMClassSpec = Static<typeof VMClassSpec>;

export const VMClassStatus = Type.Object({ ...CommonStatusFields }, { additionalProperties: false });

export const VMClassKind: KindDefinition = {
  kind: 'VMClass',
  plural: 'vmclasses',
  singular: 'vmclass',
  shortNames: ['vrclass'],
  description: 'A size and hardware profile for VirtualMachines.',
  spec: VMClassSpec,
  status: VMClassStatus,
  printerColumns: [
    { name: 'CPUs', type: 'integer', jsonPath: '.spec.cpus' },
    { name: 'Memory', type: 'string', jsonPath: '.spec.memory' },
    READY_COLUMN,
    AGE_COLUMN,
    REASON_COLUMN,
  ],
};

export const VMClassObject = ResourceObject('VMClass', VMClassSpec);
export type VMClassObject = Static<typeof VMClassObject>;
