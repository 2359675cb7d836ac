// VMClass in both spellings: the seeds' (`cpus`, `spec.bios`, `storage`) and upstream VirtRigaud's
// v1beta1 (`cpu`, `firmware`, `diskDefaults`, `resourceLimits`, …). CEL refuses an object that sets
// both spellings of one thing; normalize/vmclass.ts turns either into the one model hooks read.
// Fields with two spellings carry no schema default (a stored default of one spelling would make
// the "not both" rule fire for objects written in the other): their defaults live in normalize.
import { Type, type Static } from '@sinclair/typebox';
import { QUANTITY_PATTERN } from '../quantity.js';
import {
  AGE_COLUMN,
  CommonStatusFields,
  IntOrString,
  READY_COLUMN,
  REASON_COLUMN,
  ResourceObject,
  StringEnum,
  celRules,
  type KindDefinition,
} from './common.js';

export const Firmware = StringEnum(['bios', 'uefi'] as const);
export type Firmware = Static<typeof Firmware>;

/** A quantity of bytes, as a number or a string such as 4Gi (upstream's resource.Quantity). */
export const ByteQuantity = (description: string) => IntOrString({ pattern: QUANTITY_PATTERN, description });

export const DiskType = StringEnum(['thin', 'thick', 'eagerzeroedthick', 'ssd', 'hdd', 'nvme'] as const, {
  description:
    'thin or thick (eagerzeroedthick: thick, zeroed at creation) provisioning; ssd, hdd or nvme: the disk is presented to ' +
    'the guest as that kind of medium, thin-provisioned.',
});

export const GuestToolsPolicy = StringEnum(['install', 'skip', 'upgrade', 'uninstall'] as const, {
  description:
    'Guest agent (qemu-guest-agent, or open-vm-tools on vSphere) through cloud-init vendor data: install it if missing, ' +
    'upgrade it, uninstall it, or leave the guest alone (skip, the default).',
});

const TpmVersion = StringEnum(['1.2', '2.0', '2'] as const, { description: 'TPM version; 2.0 (also written 2) is what every driver emulates.' });

export const VMClassSpec = Type.Object(
  {
    cpus: Type.Optional(Type.Integer({ minimum: 1, maximum: 240, description: 'Virtual CPUs (seed spelling of cpu).' })),
    cpu: Type.Optional(Type.Integer({ minimum: 1, maximum: 240, description: 'Virtual CPUs (upstream spelling of cpus).' })),
    memory: ByteQuantity('Memory: a quantity such as 4Gi (a plain number is bytes); a whole number of MiB.'),
    firmware: Type.Optional(
      StringEnum(['BIOS', 'UEFI', 'EFI'] as const, { description: 'Firmware (upstream spelling of spec.bios): BIOS, or UEFI (EFI is the same).' }),
    ),
    spec: Type.Optional(
      Type.Object(
        {
          machine: Type.Optional(
            Type.String({ maxLength: 64, pattern: '^[a-z0-9][-a-z0-9._]*$', description: 'Machine type, e.g. q35 or pc.' }),
          ),
          bios: Type.Optional({ ...Firmware, description: 'Firmware (seed spelling of firmware): bios (SeaBIOS) or uefi (OVMF).' }),
        },
        { additionalProperties: false, description: 'Virtual hardware platform.' },
      ),
    ),
    storage: Type.Optional(
      Type.Object(
        {
          class: Type.Optional(
            Type.String({
              maxLength: 128,
              pattern: '^[A-Za-z0-9][-A-Za-z0-9_.]*$',
              description: 'Datastore / storage pool for the disks (seed spelling of diskDefaults.storageClass).',
            }),
          ),
          type: Type.Optional(StringEnum(['thin', 'thick'] as const, { description: 'Disk provisioning (seed spelling of diskDefaults.type).' })),
        },
        { additionalProperties: false, description: 'Where and how disks are allocated (seed spelling).' },
      ),
    ),
    diskDefaults: Type.Optional(
      Type.Object(
        {
          size: Type.Optional(ByteQuantity('Root disk size when the VirtualMachine names none; grown from the image, never shrunk.')),
          type: Type.Optional(DiskType),
          iops: Type.Optional(Type.Integer({ minimum: 100, maximum: 100000, description: 'I/O operations per second each disk is limited to.' })),
          storageClass: Type.Optional(
            Type.String({ minLength: 1, maxLength: 253, description: 'Datastore / storage pool for the disks (upstream spelling of storage.class).' }),
          ),
        },
        { additionalProperties: false, description: 'Defaults for the VM\'s disks.' },
      ),
    ),
    guestToolsPolicy: Type.Optional(GuestToolsPolicy),
    extraConfig: Type.Optional(
      Type.Record(Type.String({ maxLength: 256 }), Type.String({ maxLength: 4096, description: 'The value of one setting.' }), {
        maxProperties: 50,
        description: 'Hypervisor-specific settings passed through as they are: vSphere extraConfig keys (VMX options).',
      }),
    ),
    resourceLimits: Type.Optional(
      Type.Object(
        {
          cpuLimit: Type.Optional(Type.Integer({ minimum: 100, maximum: 100000, description: 'CPU limit in MHz.' })),
          cpuReservation: Type.Optional(Type.Integer({ minimum: 0, maximum: 100000, description: 'CPU reservation in MHz.' })),
          memoryLimit: Type.Optional(ByteQuantity('Memory the VM may use at most on the host.')),
          memoryReservation: Type.Optional(ByteQuantity('Memory the host guarantees the VM.')),
          cpuShares: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000000, description: 'Relative CPU weight against other VMs.' })),
        },
        { additionalProperties: false, description: 'Limits, reservations and shares of host resources.' },
      ),
    ),
    performanceProfile: Type.Optional(
      Type.Object(
        {
          nestedVirtualization: Type.Optional(Type.Boolean({ description: 'Expose hardware virtualization to the guest.' })),
          cpuHotAddEnabled: Type.Optional(Type.Boolean({ description: 'Allow adding CPUs to the running VM.' })),
          memoryHotAddEnabled: Type.Optional(Type.Boolean({ description: 'Allow adding memory to the running VM.' })),
          latencySensitivity: Type.Optional(
            StringEnum(['low', 'normal', 'high'] as const, { description: 'vSphere latency sensitivity; normal is every hypervisor\'s default.' }),
          ),
          virtualizationBasedSecurity: Type.Optional(Type.Boolean({ description: 'Windows virtualization-based security (needs UEFI and secure boot).' })),
          hyperThreadingPolicy: Type.Optional(
            StringEnum(['auto', 'prefer', 'avoid', 'require'] as const, { description: 'How the VM uses host hyper-threads; auto is the hypervisor\'s own choice.' }),
          ),
        },
        { additionalProperties: false, description: 'Performance features of the virtual hardware.' },
      ),
    ),
    securityProfile: Type.Optional(
      Type.Object(
        {
          tpmEnabled: Type.Optional(Type.Boolean({ description: 'A virtual TPM (needs UEFI firmware).' })),
          tpmVersion: Type.Optional(TpmVersion),
          secureBoot: Type.Optional(Type.Boolean({ description: 'UEFI secure boot (needs UEFI firmware).' })),
          vtdEnabled: Type.Optional(Type.Boolean({ description: 'A virtual IOMMU (Intel VT-d) for the guest.' })),
          encryptionPolicy: Type.Optional(
            Type.Object(
              {
                enabled: Type.Optional(Type.Boolean({ description: 'Encrypt the VM\'s disks and state.' })),
                keyProvider: Type.Optional(StringEnum(['standard', 'hardware', 'external'] as const, { description: 'Where the keys come from.' })),
                requireEncryption: Type.Optional(Type.Boolean({ description: 'Refuse to run the VM unencrypted.' })),
              },
              { additionalProperties: false, description: 'VM encryption.' },
            ),
          ),
        },
        { additionalProperties: false, description: 'TPM, secure boot, IOMMU and encryption; TPM and secure boot imply UEFI firmware.' },
      ),
    ),
  },
  {
    additionalProperties: false,
    description: 'CPU, memory and hardware profile; either spelling (seed or upstream) of each field, not both.',
    ...celRules(
      { rule: 'has(self.cpus) != has(self.cpu)', message: 'set exactly one of cpus and cpu' },
      { rule: '!has(self.firmware) || !has(self.spec) || !has(self.spec.bios)', message: 'set firmware or spec.bios, not both' },
      {
        rule: '!has(self.storage) || !has(self.diskDefaults) || ((!has(self.storage.class) || !has(self.diskDefaults.storageClass)) && (!has(self.storage.type) || !has(self.diskDefaults.type)))',
        message: 'set storage.class or diskDefaults.storageClass, and storage.type or diskDefaults.type, not both',
      },
      {
        rule:
          "!((has(self.spec) && has(self.spec.bios) && self.spec.bios == 'bios') || (has(self.firmware) && self.firmware == 'BIOS')) || !has(self.securityProfile) || " +
          '((!has(self.securityProfile.secureBoot) || !self.securityProfile.secureBoot) && ' +
          '(!has(self.securityProfile.tpmEnabled) || !self.securityProfile.tpmEnabled))',
        message: 'secureBoot and tpmEnabled need uefi firmware, not bios',
      },
    ),
  },
);
export type VMClassSpec = Static<typeof VMClassSpec>;

export const VMClassStatus = Type.Object(
  {
    cpus: Type.Optional(Type.Integer({ minimum: 1, description: 'Virtual CPUs, whichever spelling set them.' })),
    memory: Type.Optional(Type.String({ maxLength: 32, description: 'Memory in the largest binary unit that divides it (4Gi).' })),
    firmware: Type.Optional({ ...Firmware, description: 'Firmware, whichever spelling set it.' }),
    ...CommonStatusFields,
  },
  { additionalProperties: false, description: 'Whether the class is valid, and what it amounts to.' },
);

export const VMClassKind: KindDefinition = {
  kind: 'VMClass',
  plural: 'vmclasses',
  singular: 'vmclass',
  shortNames: ['vrclass'],
  description: 'A size and hardware profile for VirtualMachines.',
  spec: VMClassSpec,
  status: VMClassStatus,
  printerColumns: [
    // From status: the spec has two spellings, the status one answer.
    { name: 'CPUs', type: 'integer', jsonPath: '.status.cpus' },
    { name: 'Memory', type: 'string', jsonPath: '.status.memory' },
    { name: 'Firmware', type: 'string', jsonPath: '.status.firmware', priority: 1 },
    READY_COLUMN,
    AGE_COLUMN,
    REASON_COLUMN,
  ],
};

export const VMClassObject = ResourceObject('VMClass', VMClassSpec);
export type VMClassObject = Static<typeof VMClassObject>;
