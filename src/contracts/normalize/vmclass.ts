// VMClass, either spelling → one model. Pure and table-tested (test/contracts/normalize.test.ts).
import type { VMClassSpec } from '../crds/vmclass.js';
import type { ResourceLimits } from '../driver.js';
import { MiB, parseQuantity } from '../quantity.js';
import { NO_DRIVER, problem, type FieldRule, type Normalized } from './common.js';

export interface CanonicalClass {
  cpus: number;
  memoryBytes: number;
  /** Undefined: whatever the image boots with (TPM and secure boot force uefi). */
  firmware?: 'bios' | 'uefi';
  machine?: string;
  /** Root disk size when the VM names none. */
  rootDiskBytes?: number;
  /** Datastore / storage pool of the disks. */
  storageClass?: string;
  /** Only when the class names one (storage.type or diskDefaults.type); thin otherwise. */
  provisioning?: 'thin' | 'thick';
  /** spec.extraConfig, passed through as written. */
  extraConfig?: Record<string, string>;
  /** spec.resourceLimits, in MHz and bytes. */
  limits?: ResourceLimits;
  /** spec.guestToolsPolicy; skip (the default) asks nothing. */
  guestTools: 'install' | 'upgrade' | 'uninstall' | 'skip';
  features: {
    tpm: boolean;
    secureBoot: boolean;
    nestedVirtualization: boolean;
    cpuHotAdd: boolean;
    memoryHotAdd: boolean;
  };
}

/** The memory of a class in bytes, or why it is not usable. */
export function classMemory(memory: string | number): { ok: true; bytes: number } | { ok: false; problem: string } {
  const bytes = parseQuantity(memory);
  if (bytes === undefined || bytes < 64 * MiB || bytes % MiB !== 0) {
    return { ok: false, problem: `spec.memory ${String(memory)} is not a whole number of MiB of at least 64Mi` };
  }
  return { ok: true, bytes };
}

export function normalizeVMClass(spec: VMClassSpec): Normalized<CanonicalClass> {
  const cpus = spec.cpus ?? spec.cpu;
  if (cpus === undefined) return problem('set spec.cpus or spec.cpu');
  const memory = classMemory(spec.memory);
  if (!memory.ok) return problem(memory.problem);

  const security = spec.securityProfile ?? {};
  const performance = spec.performanceProfile ?? {};
  const firmwareWritten = spec.firmware === undefined ? spec.spec?.bios : spec.firmware === 'BIOS' ? 'bios' : 'uefi';
  const needsUefi = security.tpmEnabled === true || security.secureBoot === true;
  const value: CanonicalClass = {
    cpus,
    memoryBytes: memory.bytes,
    guestTools: spec.guestToolsPolicy ?? 'skip',
    features: {
      tpm: security.tpmEnabled === true,
      secureBoot: security.secureBoot === true,
      nestedVirtualization: performance.nestedVirtualization === true,
      cpuHotAdd: performance.cpuHotAddEnabled === true,
      memoryHotAdd: performance.memoryHotAddEnabled === true,
    },
  };
  const firmware = needsUefi ? 'uefi' : firmwareWritten;
  if (firmware !== undefined) value.firmware = firmware;
  if (spec.spec?.machine !== undefined) value.machine = spec.spec.machine;

  const size = spec.diskDefaults?.size;
  if (size !== undefined) {
    const bytes = parseQuantity(size);
    if (bytes === undefined || bytes < MiB) return problem(`spec.diskDefaults.size ${String(size)} is not a disk size`);
    value.rootDiskBytes = bytes;
  }
  const storageClass = spec.storage?.class ?? spec.diskDefaults?.storageClass;
  if (storageClass !== undefined) value.storageClass = storageClass;

  if (spec.extraConfig !== undefined && Object.keys(spec.extraConfig).length > 0) value.extraConfig = { ...spec.extraConfig };
  const written = spec.resourceLimits;
  if (written !== undefined) {
    const limits: ResourceLimits = {};
    if (written.cpuLimit !== undefined) limits.cpuLimitMHz = written.cpuLimit;
    if (written.cpuReservation !== undefined) limits.cpuReservationMHz = written.cpuReservation;
    if (written.cpuShares !== undefined) limits.cpuShares = written.cpuShares;
    for (const [key, field] of [['memoryLimit', 'memoryLimitBytes'], ['memoryReservation', 'memoryReservationBytes']] as const) {
      const quantity = written[key];
      if (quantity === undefined) continue;
      const bytes = parseQuantity(quantity);
      if (bytes === undefined || bytes % MiB !== 0) return problem(`spec.resourceLimits.${key} ${String(quantity)} is not a whole number of MiB`);
      limits[field] = bytes;
    }
    if (limits.memoryReservationBytes !== undefined && limits.memoryReservationBytes > memory.bytes) {
      return problem('spec.resourceLimits.memoryReservation is more than the class\'s memory');
    }
    if (limits.cpuReservationMHz !== undefined && limits.cpuLimitMHz !== undefined && limits.cpuReservationMHz > limits.cpuLimitMHz) {
      return problem('spec.resourceLimits.cpuReservation is more than cpuLimit');
    }
    if (Object.keys(limits).length > 0) value.limits = limits;
  }
  const diskType = spec.storage?.type ?? spec.diskDefaults?.type;
  if (diskType === 'thick' || diskType === 'eagerzeroedthick') value.provisioning = 'thick';
  else if (diskType !== undefined) value.provisioning = 'thin';
  return { ok: true, value };
}

/** The VMClass fields whose meaning needs something of the driver (support.ts). */
export const VMCLASS_FIELDS: readonly FieldRule[] = [
  { path: 'spec.firmware', values: ['UEFI', 'EFI'], capability: 'uefi' },
  { path: 'spec.spec.bios', values: ['uefi'], capability: 'uefi' },
  { path: 'spec.spec.machine', example: 'q35', capability: 'machineType' },
  { path: 'spec.storage.class', example: 'fast-ssd', capability: 'placementDatastore' },
  { path: 'spec.diskDefaults.storageClass', example: 'fast-ssd', capability: 'placementDatastore' },
  { path: 'spec.storage.type', values: ['thick'], capability: 'thickProvisioning' },
  { path: 'spec.diskDefaults.type', values: ['thick'], capability: 'thickProvisioning' },
  { path: 'spec.diskDefaults.type', values: ['eagerzeroedthick'], why: 'no driver zeroes disks at creation' },
  { path: 'spec.diskDefaults.type', values: ['ssd', 'hdd', 'nvme'], why: 'no driver presents a disk medium to the guest' },
  { path: 'spec.diskDefaults.iops', example: 500, why: NO_DRIVER },
  { path: 'spec.guestToolsPolicy', values: ['install', 'upgrade'], capability: 'cloudInit' },
  { path: 'spec.guestToolsPolicy', values: ['uninstall'], why: 'guest tools are installed through cloud-init at first boot; nothing removes them' },
  { path: 'spec.extraConfig', example: { 'svga.present': 'TRUE' }, capability: 'extraConfig' },
  { path: 'spec.resourceLimits.cpuLimit', example: 2000, capability: 'resourceLimits' },
  { path: 'spec.resourceLimits.cpuReservation', example: 1000, capability: 'resourceLimits' },
  { path: 'spec.resourceLimits.cpuShares', example: 2000, capability: 'cpuShares' },
  { path: 'spec.resourceLimits.memoryLimit', example: '4Gi', capability: 'resourceLimits' },
  { path: 'spec.resourceLimits.memoryReservation', example: '2Gi', capability: 'resourceLimits' },
  { path: 'spec.performanceProfile.nestedVirtualization', values: [true], capability: 'nestedVirtualization' },
  { path: 'spec.performanceProfile.cpuHotAddEnabled', values: [true], capability: 'cpuHotAdd' },
  { path: 'spec.performanceProfile.memoryHotAddEnabled', values: [true], capability: 'memoryHotAdd' },
  { path: 'spec.performanceProfile.latencySensitivity', values: ['low', 'high'], why: NO_DRIVER },
  { path: 'spec.performanceProfile.virtualizationBasedSecurity', values: [true], why: NO_DRIVER },
  { path: 'spec.performanceProfile.hyperThreadingPolicy', values: ['prefer', 'avoid', 'require'], why: NO_DRIVER },
  { path: 'spec.securityProfile.tpmEnabled', values: [true], capability: 'tpm' },
  { path: 'spec.securityProfile.tpmEnabled', values: [true], capability: 'uefi' },
  { path: 'spec.securityProfile.secureBoot', values: [true], capability: 'secureBoot' },
  { path: 'spec.securityProfile.secureBoot', values: [true], capability: 'uefi' },
  { path: 'spec.securityProfile.tpmVersion', values: ['1.2'], why: 'every driver emulates TPM 2.0' },
  { path: 'spec.securityProfile.vtdEnabled', values: [true], why: NO_DRIVER },
  { path: 'spec.securityProfile.encryptionPolicy.enabled', values: [true], why: NO_DRIVER },
  { path: 'spec.securityProfile.encryptionPolicy.requireEncryption', values: [true], why: NO_DRIVER },
];
