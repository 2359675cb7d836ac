// A VMMigration in the one shape the hook reads, from either spelling (the seeds' `target.vmRef`,
// upstream's `target.name` and `options`), with every default applied. What no driver honours is
// a FieldRule (support.ts, the README's table); what needs a driver capability (disk export on the
// source, disk import on the target, snapshots for createSnapshot) the hook checks per Provider.
import type { VMDisk, VMNetwork } from '../crds/virtualmachine.js';
import type { VMMigrationObject, VMMigrationSpec } from '../crds/vmmigration.js';
import type { DiskFormat } from '../driver.js';
import { parseDuration, parseQuantity } from '../quantity.js';
import type { FieldRule, Normalized } from './common.js';
import { problem } from './common.js';

export interface CanonicalMigration {
  sourceVM: string;
  /** source.providerRef when written: it must be the VM's Provider. */
  sourceProvider?: { name: string; namespace?: string };
  targetName: string;
  targetProvider: { name: string; namespace?: string };
  classRef?: string;
  networks?: VMNetwork[];
  disks?: VMDisk[];
  placementRef?: string;
  powerOn: boolean;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** The disks to move, root first. */
  moved: string[];
  createSnapshot: boolean;
  powerOff: boolean;
  pvc: { existing: string } | { storageClassName?: string; size: string; sizeBytes: number; accessMode: 'ReadWriteMany' | 'ReadWriteOnce' | 'ReadOnlyMany' };
  format?: DiskFormat;
  timeoutMs: number;
  retry: { max: number; delayMs: number; multiplier: number };
  cleanup: 'Always' | 'OnSuccess' | 'Never';
  checks: { diskSize: boolean; boot: boolean; connectivity: boolean };
  retryRequest?: string;
}

const WHY_TARGET_BOOTS_FROM_DISK = 'the target boots from the migrated disk';
const WHY_CHECKSUMS = 'checksums of every copy are always checked';

/** The VMMigration fields no driver honours (the hook names them in an Unsupported condition). */
export const VMMIGRATION_FIELDS: readonly FieldRule[] = [
  { path: 'spec.source.snapshotRef', why: 'the disk is exported from the VM itself, powered off', example: { name: 'daily' } },
  { path: 'spec.source.deleteAfterMigration', values: [true], why: 'the hooks cannot delete a VirtualMachine they do not own; delete the source once the migration is Ready' },
  { path: 'spec.deleteSource', values: [true], why: 'the hooks cannot delete a VirtualMachine they do not own; delete the source once the migration is Ready' },
  { path: 'spec.source.disks[]', when: { text: 'a disk other than root', test: (value) => value !== 'root' }, why: 'only the root disk is migrated; the target gets no data disks' },
  { path: 'spec.target.imageRef', why: WHY_TARGET_BOOTS_FROM_DISK, example: { name: 'ubuntu' } },
  { path: 'spec.storage.type', values: ['nfs', 's3'], why: 'staging is a PVC (use an NFS or CephFS StorageClass for it)' },
  { path: 'spec.storage.nfs', why: 'staging is a PVC (use an NFS StorageClass for it)', example: { server: 'nfs', export: '/x' } },
  { path: 'spec.storage.s3', why: 'staging is a PVC', example: { bucket: 'b', credentialsSecretRef: { name: 's' } } },
  { path: 'spec.storage.transferMode', values: ['direct'], why: 'bytes pass through the provider runtimes (relay)' },
  { path: 'spec.storage.pvc.mountPath', why: 'the runtimes mount the PVC in MIGRATION_DIR, under its name', example: '/mnt/migration' },
  { path: 'spec.options.compress', values: [true], why: 'the staged file is not compressed' },
  { path: 'spec.options.verifyChecksums', values: [false], why: WHY_CHECKSUMS },
  { path: 'spec.options.validationChecks.checkChecksum', values: [false], why: WHY_CHECKSUMS },
];

const DEFAULT_PVC_SIZE = '50Gi';
const DEFAULT_TIMEOUT = '4h';
const DEFAULT_RETRY_DELAY = '5m';

export function targetNameOf(spec: VMMigrationSpec): string | undefined {
  return spec.target.name ?? spec.target.vmRef?.name;
}

export function normalizeVMMigration(migration: VMMigrationObject): Normalized<CanonicalMigration> {
  const spec = migration.spec;
  const namespace = migration.metadata.namespace ?? '';
  const targetName = targetNameOf(spec);
  if (targetName === undefined) return problem('spec.target: set name (or vmRef.name): the VirtualMachine the migration creates');
  if (targetName === spec.source.vmRef.name) return problem(`spec.target: the target VirtualMachine cannot be the source (${targetName})`);
  if (spec.target.namespace !== undefined && spec.target.namespace !== namespace) {
    return { ok: false, unsupported: true, problem: `spec.target.namespace: the target is made in the VMMigration's namespace (${namespace}), not ${spec.target.namespace}` };
  }

  const storage = spec.storage;
  if (storage !== undefined && storage.type === 'pvc' && storage.pvc === undefined) return problem('spec.storage.pvc: storage.type pvc needs pvc.name or pvc.storageClassName/size');
  const pvcSpec = storage?.pvc ?? {};
  let pvc: CanonicalMigration['pvc'];
  if (pvcSpec.name !== undefined) {
    if (pvcSpec.size !== undefined || pvcSpec.storageClassName !== undefined || pvcSpec.accessMode !== undefined) {
      return problem('spec.storage.pvc: name (an existing PVC) and storageClassName/size/accessMode (a PVC to create) exclude each other');
    }
    pvc = { existing: pvcSpec.name };
  } else {
    const size = pvcSpec.size ?? DEFAULT_PVC_SIZE;
    const sizeBytes = parseQuantity(size);
    if (sizeBytes === undefined || sizeBytes < 1024 * 1024 * 1024) return problem(`spec.storage.pvc.size: ${size} is less than 1Gi`);
    pvc = { size, sizeBytes, accessMode: pvcSpec.accessMode ?? 'ReadWriteMany', ...(pvcSpec.storageClassName !== undefined ? { storageClassName: pvcSpec.storageClassName } : {}) };
  }

  const options = spec.options ?? {};
  const timeoutMs = parseDuration(options.timeout ?? DEFAULT_TIMEOUT);
  const delayMs = parseDuration(options.retryPolicy?.retryDelay ?? DEFAULT_RETRY_DELAY);
  if (timeoutMs === undefined || timeoutMs < 60_000) return problem('spec.options.timeout: at least 1m');
  if (delayMs === undefined) return problem('spec.options.retryPolicy.retryDelay: not a duration');

  const powerOn = spec.target.powerOn ?? false;
  const checks = options.validationChecks ?? {};
  const boot = checks.checkBoot ?? false;
  const connectivity = checks.checkConnectivity ?? false;
  if ((boot || connectivity) && !powerOn) {
    return problem('spec.options.validationChecks: checkBoot and checkConnectivity need spec.target.powerOn: true (a target left off neither boots nor answers)');
  }

  const moved = [...new Set(['root', ...(spec.source.disks ?? ['root'])])];
  const canonical: CanonicalMigration = {
    sourceVM: spec.source.vmRef.name,
    targetName,
    targetProvider: spec.target.providerRef,
    powerOn,
    labels: spec.target.labels ?? {},
    annotations: spec.target.annotations ?? {},
    moved,
    createSnapshot: spec.source.createSnapshot ?? false,
    powerOff: spec.source.powerOffBeforeMigration ?? false,
    pvc,
    timeoutMs,
    retry: { max: options.retryPolicy?.maxRetries ?? 3, delayMs, multiplier: options.retryPolicy?.backoffMultiplier ?? 2 },
    cleanup: options.cleanupPolicy ?? 'OnSuccess',
    checks: { diskSize: checks.checkDiskSize ?? true, boot, connectivity },
  };
  if (spec.source.providerRef !== undefined) canonical.sourceProvider = spec.source.providerRef;
  if (spec.target.classRef !== undefined) canonical.classRef = spec.target.classRef.name;
  if (spec.target.networks !== undefined) canonical.networks = spec.target.networks;
  if (spec.target.disks !== undefined) canonical.disks = spec.target.disks;
  if (spec.target.placementRef !== undefined) canonical.placementRef = spec.target.placementRef.name;
  if (options.diskFormat !== undefined) canonical.format = options.diskFormat;
  if (spec.retryRequest !== undefined) canonical.retryRequest = spec.retryRequest;
  return { ok: true, value: canonical };
}
