import { Type, type Static } from '@sinclair/typebox';
import {
  AGE_COLUMN,
  CommonStatusFields,
  Duration,
  LocalObjectReference,
  READY_COLUMN,
  REASON_COLUMN,
  ResourceObject,
  StringEnum,
  celRules,
  type KindDefinition,
} from './common.js';

const immutable = (what: string) => celRules({ rule: 'self == oldSelf', message: `${what} is immutable` });

/** What a snapshot holds; shared by VMSnapshot and the template of a VMSnapshotSchedule. */
export const SnapshotOptions = {
  description: Type.Optional(Type.String({ maxLength: 1024, description: 'Shown on the hypervisor next to the snapshot.' })),
  includeMemory: Type.Optional(
    Type.Boolean({
      default: false,
      description:
        'Include the running memory state, so a revert resumes the running VM. Taken without memory (and said so ' +
        'in the MemoryIncluded condition) when the VM is off or the provider cannot.',
    }),
  ),
  quiesce: Type.Optional(
    Type.Boolean({
      default: false,
      description:
        'Ask the guest tools to flush and freeze file systems first. Taken without (and said so in the Quiesced ' +
        'condition) when the provider cannot.',
    }),
  ),
};

export const VMSnapshotSpec = Type.Object(
  {
    vmRef: LocalObjectReference,
    ...SnapshotOptions,
  },
  {
    additionalProperties: false,
    // A snapshot is what it was taken as: another one is another VMSnapshot.
    ...celRules({ rule: 'self == oldSelf', message: 'a VMSnapshot spec is immutable; create another VMSnapshot' }),
  },
);
export type VMSnapshotSpec = Static<typeof VMSnapshotSpec>;

export const SnapshotPhase = StringEnum(['Pending', 'Creating', 'Ready', 'Failed', 'Deleting'] as const);
export type SnapshotPhase = Static<typeof SnapshotPhase>;

export const SnapshotTask = Type.Object(
  {
    id: Type.String({ maxLength: 512 }),
    operation: StringEnum(['Create', 'Delete'] as const),
    startedAt: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false },
);
export type SnapshotTask = Static<typeof SnapshotTask>;

/** The VM a snapshot was taken of, kept so the snapshot can be deleted even after the VM object is gone. */
export const SnapshotVMRecord = Type.Object(
  {
    name: Type.String({ maxLength: 253 }),
    uid: Type.String({ maxLength: 128 }),
    providerID: Type.String({ maxLength: 512 }),
    provider: Type.Object({ namespace: Type.String({ maxLength: 63 }), name: Type.String({ maxLength: 253 }) }, { additionalProperties: false }),
  },
  { additionalProperties: false },
);
export type SnapshotVMRecord = Static<typeof SnapshotVMRecord>;

export const VMSnapshotStatus = Type.Object(
  {
    phase: Type.Optional(SnapshotPhase),
    snapshotID: Type.Optional(Type.String({ maxLength: 512, description: 'The snapshot on the hypervisor.' })),
    snapshotName: Type.Optional(Type.String({ maxLength: 64, description: 'Its name on the hypervisor, derived from this object\'s UID.' })),
    creationTime: Type.Optional(Type.String({ format: 'date-time', maxLength: 64, description: 'As reported by the hypervisor.' })),
    size: Type.Optional(Type.String({ maxLength: 32, description: 'Size on the hypervisor, when it reports one.' })),
    memoryIncluded: Type.Optional(Type.Boolean()),
    vm: Type.Optional(SnapshotVMRecord),
    task: Type.Optional(SnapshotTask),
    ...CommonStatusFields,
  },
  { additionalProperties: false },
);
export type VMSnapshotStatus = Static<typeof VMSnapshotStatus>;

export const VMSnapshotKind: KindDefinition = {
  kind: 'VMSnapshot',
  plural: 'vmsnapshots',
  singular: 'vmsnapshot',
  shortNames: ['vrsnap'],
  description: 'A snapshot of a VirtualMachine on its hypervisor; deleting the object deletes the snapshot.',
  spec: VMSnapshotSpec,
  status: VMSnapshotStatus,
  printerColumns: [
    { name: 'VM', type: 'string', jsonPath: '.spec.vmRef.name' },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
    { name: 'Memory', type: 'boolean', jsonPath: '.status.memoryIncluded' },
    { name: 'Size', type: 'string', jsonPath: '.status.size' },
    { name: 'Created', type: 'date', jsonPath: '.status.creationTime' },
    READY_COLUMN,
    AGE_COLUMN,
    REASON_COLUMN,
  ],
};

export const VMSnapshotObject = ResourceObject('VMSnapshot', VMSnapshotSpec);
export type VMSnapshotObject = Static<typeof VMSnapshotObject>;

export const RetentionPolicy = Type.Object(
  {
    maxCount: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'Keep at most this many snapshots; the oldest go first.' })),
    maxAge: Type.Optional({ ...Duration, description: 'Delete snapshots older than this (e.g. 168h).' }),
    deleteOnVMDelete: Type.Optional(
      Type.Boolean({
        default: true,
        description:
          'When the VirtualMachine is gone: true deletes the schedule\'s VMSnapshots; false keeps the objects as a ' +
          'record (their hypervisor snapshots went with the VM unless it was retained).',
      }),
    ),
  },
  { additionalProperties: false },
);
export type RetentionPolicy = Static<typeof RetentionPolicy>;

export const VMSnapshotScheduleSpec = Type.Object(
  {
    vmRef: { ...LocalObjectReference, ...immutable('vmRef') },
    schedule: Type.String({
      minLength: 1,
      maxLength: 256,
      description: 'Cron expression in UTC: 5 fields (minute hour day-of-month month day-of-week), @hourly/@daily/…, or @every 6h.',
    }),
    suspend: Type.Optional(Type.Boolean({ default: false, description: 'No new snapshots while true; retention still applies.' })),
    snapshot: Type.Optional(Type.Object(SnapshotOptions, { additionalProperties: false, description: 'How each snapshot is taken.' })),
    retentionPolicy: Type.Optional(RetentionPolicy),
  },
  { additionalProperties: false },
);
export type VMSnapshotScheduleSpec = Static<typeof VMSnapshotScheduleSpec>;

export const VMSnapshotScheduleStatus = Type.Object(
  {
    lastScheduleTime: Type.Optional(Type.String({ format: 'date-time', maxLength: 64 })),
    nextScheduleTime: Type.Optional(Type.String({ format: 'date-time', maxLength: 64 })),
    snapshots: Type.Optional(Type.Array(Type.String({ maxLength: 253 }), { maxItems: 100, description: 'The VMSnapshots kept, oldest first (the newest 100).' })),
    ...CommonStatusFields,
  },
  { additionalProperties: false },
);

export const VMSnapshotScheduleKind: KindDefinition = {
  kind: 'VMSnapshotSchedule',
  plural: 'vmsnapshotschedules',
  singular: 'vmsnapshotschedule',
  shortNames: ['vrsnapsched'],
  description: 'Takes VMSnapshots of a VirtualMachine on a cron schedule and prunes them by count and age.',
  spec: VMSnapshotScheduleSpec,
  status: VMSnapshotScheduleStatus,
  printerColumns: [
    { name: 'VM', type: 'string', jsonPath: '.spec.vmRef.name' },
    { name: 'Schedule', type: 'string', jsonPath: '.spec.schedule' },
    { name: 'Suspend', type: 'boolean', jsonPath: '.spec.suspend' },
    { name: 'Last', type: 'date', jsonPath: '.status.lastScheduleTime' },
    { name: 'Next', type: 'date', jsonPath: '.status.nextScheduleTime' },
    READY_COLUMN,
    AGE_COLUMN,
    REASON_COLUMN,
  ],
};

export const VMSnapshotScheduleObject = ResourceObject('VMSnapshotSchedule', VMSnapshotScheduleSpec);
export type VMSnapshotScheduleObject = Static<typeof VMSnapshotScheduleObject>;
