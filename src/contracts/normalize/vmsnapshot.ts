// VMSnapshot, either spelling → one request. Pure and table-tested (test/contracts/vmsnapshot-shapes.test.ts).
import type { VMSnapshotSpec } from '../crds/vmsnapshot.js';
import { parseDuration } from '../quantity.js';
import { problem, type FieldRule, type Normalized } from './common.js';

export type SnapshotShape = 'seed' | 'upstream';

export interface CanonicalSnapshot {
  shape: SnapshotShape;
  vm: string;
  /** What the hypervisor shows next to the snapshot: snapshotConfig.name, then the description. */
  description?: string;
  includeMemory: boolean;
  quiesce: boolean;
  retention: {
    /** Undefined: the snapshot never expires. */
    maxAgeMs?: number;
    /** How long an expired snapshot stays on the hypervisor. */
    graceMs: number;
    /** metadata.pinned with preservePinned: never expires. */
    pinned: boolean;
    deleteOnVMDelete: boolean;
  };
}

const SEED_FIELDS = ['description', 'includeMemory', 'quiesce'] as const;
const UPSTREAM_FIELDS = ['snapshotConfig', 'retentionPolicy', 'schedule', 'metadata', 'nameHint', 'memory'] as const;

/**
 * Which spelling the object is written in, for the defaults that differ: a seed field makes it the
 * seeds' (whatever else it sets), else an upstream field (v1beta1's, or v1alpha1's nameHint and
 * memory) upstream's. vmRef alone is the seeds', so their VMSnapshots keep meaning what they meant
 * (`snapshotConfig: {}` asks for upstream's defaults).
 */
export function snapshotShape(spec: VMSnapshotSpec): SnapshotShape {
  if (SEED_FIELDS.some((field) => spec[field] !== undefined)) return 'seed';
  return UPSTREAM_FIELDS.some((field) => spec[field] !== undefined) ? 'upstream' : 'seed';
}

const DAYS = /([0-9]+(?:\.[0-9]*)?|\.[0-9]+)d/g;

/** Milliseconds in a Go duration that may also count days (`30d`, `1d12h`), or undefined. */
export function parseRetentionDuration(value: string): number | undefined {
  if (value === '') return undefined;
  let days = 0;
  const rest = value.replace(DAYS, (_, amount: string) => {
    days += Number(amount);
    return '';
  });
  const ms = rest === '' ? 0 : parseDuration(rest);
  return ms === undefined ? undefined : ms + Math.ceil(days * 86_400_000);
}

export function normalizeVMSnapshot(spec: VMSnapshotSpec): Normalized<CanonicalSnapshot> {
  const shape = snapshotShape(spec);
  const config = spec.snapshotConfig ?? {};

  // The consistency asked for decides quiesce when quiesce is not written; written both ways, they must agree.
  const crash = config.type === 'Crash' || config.consistencyLevel === 'CrashConsistent';
  const level = config.consistencyLevel;
  if (config.type === 'Crash' && level !== undefined && level !== 'CrashConsistent') {
    return problem(`spec.snapshotConfig.type Crash contradicts spec.snapshotConfig.consistencyLevel ${level}`);
  }
  if (config.type === 'Application' && level !== undefined && level !== 'ApplicationConsistent') {
    return problem(`spec.snapshotConfig.type Application contradicts spec.snapshotConfig.consistencyLevel ${level}`);
  }
  const quiescePath = spec.quiesce !== undefined ? 'spec.quiesce' : 'spec.snapshotConfig.quiesce';
  const quiesceWritten = spec.quiesce ?? config.quiesce;
  if (quiesceWritten === true && crash) {
    return problem(`${quiescePath}: true contradicts a crash-consistent snapshot (spec.snapshotConfig.${config.type === 'Crash' ? 'type Crash' : 'consistencyLevel CrashConsistent'})`);
  }
  if (quiesceWritten === false && level === 'FilesystemConsistent') {
    return problem(`${quiescePath}: false contradicts spec.snapshotConfig.consistencyLevel FilesystemConsistent`);
  }
  const quiesce = quiesceWritten ?? (crash ? false : level === 'FilesystemConsistent' || level === 'ApplicationConsistent' || shape === 'upstream');

  const retention = spec.retentionPolicy ?? {};
  const value: CanonicalSnapshot = {
    shape,
    vm: spec.vmRef.name,
    includeMemory: spec.includeMemory ?? spec.memory ?? config.includeMemory ?? false,
    quiesce,
    retention: {
      graceMs: 0,
      pinned: spec.metadata?.pinned === true && retention.preservePinned !== false,
      // Upstream's default, which its CRD applies whenever retentionPolicy is written.
      deleteOnVMDelete: retention.deleteOnVMDelete ?? spec.retentionPolicy !== undefined,
    },
  };
  const description = [spec.nameHint ?? config.name, spec.description ?? config.description].filter((part) => part !== undefined && part !== '').join(': ');
  if (description !== '') value.description = description;
  if (retention.maxAge !== undefined) {
    const maxAgeMs = parseRetentionDuration(retention.maxAge);
    if (maxAgeMs === undefined) return problem(`spec.retentionPolicy.maxAge ${retention.maxAge} is not a duration (e.g. 168h or 7d)`);
    value.retention.maxAgeMs = maxAgeMs;
  }
  if (retention.gracePeriod !== undefined) {
    const graceMs = parseRetentionDuration(retention.gracePeriod);
    if (graceMs === undefined) return problem(`spec.retentionPolicy.gracePeriod ${retention.gracePeriod} is not a duration (e.g. 24h or 1d)`);
    value.retention.graceMs = graceMs;
  }
  return { ok: true, value };
}

/** When a snapshot taken at `createdMs` expires and when it is deleted; undefined when it never does. */
export function snapshotExpiry(snapshot: CanonicalSnapshot, createdMs: number): { expiresAt: number; deleteAt: number } | undefined {
  const { maxAgeMs, graceMs, pinned } = snapshot.retention;
  if (maxAgeMs === undefined || pinned || Number.isNaN(createdMs)) return undefined;
  return { expiresAt: createdMs + maxAgeMs, deleteAt: createdMs + maxAgeMs + graceMs };
}

const APPLICATION = 'no driver runs application freeze hooks';
const ENCRYPTION = 'no driver encrypts snapshots';

/** The VMSnapshot fields no driver (or not every driver) honours (support.ts). */
export const VMSNAPSHOT_FIELDS: readonly FieldRule[] = [
  { path: 'spec.snapshotConfig.type', values: ['Application'], why: APPLICATION },
  { path: 'spec.snapshotConfig.consistencyLevel', values: ['ApplicationConsistent'], why: APPLICATION },
  { path: 'spec.snapshotConfig.compression', values: [true], why: 'no driver compresses snapshots' },
  { path: 'spec.snapshotConfig.encryption.enabled', values: [true], why: ENCRYPTION },
  { path: 'spec.snapshotConfig.encryption.keyProvider', example: 'external', why: ENCRYPTION },
  { path: 'spec.snapshotConfig.encryption.keyRef', example: { name: 'snapshot-keys' }, why: ENCRYPTION },
  {
    path: 'spec.retentionPolicy.maxCount',
    example: 5,
    why: 'a VMSnapshot is one snapshot; a VMSnapshotSchedule keeps a count (its retentionPolicy.maxCount)',
  },
  { path: 'spec.schedule.enabled', values: [true], why: 'a VMSnapshot is taken once; snapshots on a schedule are a VMSnapshotSchedule' },
];
