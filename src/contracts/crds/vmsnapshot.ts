// VMSnapshot in both spellings: the seeds' (`description`, `includeMemory`, `quiesce`) and upstream
// VirtRigaud's v1beta1 (`snapshotConfig`, `retentionPolicy`, `schedule`, `metadata`). CEL refuses an
// object that says one thing both ways; normalize/vmsnapshot.ts turns either into the one request
// the hook reads. The two-spelling fields carry no schema default (the quiesce default differs by
// spelling); VMSnapshotSchedule, below, writes its VMSnapshots in the seed spelling.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import {
  AGE_COLUMN,
  CommonStatusFields,
  Duration,
  ObjectName,
  READY_COLUMN,
  REASON_COLUMN,
  ResourceObject,
  StringEnum,
  celRules,
  type KindDefinition,
} from './common.js';

const immutable = (what: string) => celRules({ rule: 'self == oldSelf', message: `${what} is immutable` });
const described = <T extends TSchema>(schema: T, description: string): T => ({ ...schema, description });
const Text = (maxLength: number, description: string) => Type.String({ maxLength, description });
const VMReference = (description: string) =>
  Type.Object({ name: described(ObjectName, 'Name of the VirtualMachine, in this namespace.') }, { additionalProperties: false, description });

const SNAPSHOT_FIELDS = {
  description: (spelling: string) => Type.String({ maxLength: 1024, description: `Shown on the hypervisor next to the snapshot${spelling}.` }),
  includeMemory: (spelling: string) =>
    Type.Boolean({
      description:
        'Include the running memory state, so a revert resumes the running VM; default false. Taken without memory (and said so ' +
        `in the MemoryIncluded condition) when the VM is off or the provider cannot${spelling}.`,
    }),
  quiesce: (spelling: string, byDefault: string) =>
    Type.Boolean({
      description:
        `Ask the guest tools to flush and freeze file systems first; default ${byDefault}. Taken without (and said so in the ` +
        `Quiesced condition) when the VM is off or the provider cannot${spelling}.`,
    }),
};

/** What a snapshot holds: the template of a VMSnapshotSchedule's VMSnapshots (which are written in the seed spelling). */
export const SnapshotOptions = {
  description: Type.Optional(SNAPSHOT_FIELDS.description('')),
  includeMemory: Type.Optional({ ...SNAPSHOT_FIELDS.includeMemory(''), default: false }),
  quiesce: Type.Optional({ ...SNAPSHOT_FIELDS.quiesce('', 'false'), default: false }),
};

const SEED = ' (seed spelling of snapshotConfig.%)';
const seedSpelling = (field: string) => SEED.replace('%', field);
const upstreamSpelling = (field: string) => ` (upstream spelling of ${field})`;
const APPLICATION = 'Not supported: no driver runs application freeze hooks; the VMSnapshot reports Unsupported and takes nothing.';

export const SnapshotConfigSpec = Type.Object(
  {
    name: Type.Optional(
      Type.String({
        maxLength: 255,
        pattern: '^[a-zA-Z0-9]([a-zA-Z0-9\\-_]*[a-zA-Z0-9])?$',
        description:
          'A name for people: shown on the hypervisor at the head of the snapshot\'s description. The snapshot\'s own name on the ' +
          'hypervisor is derived from this object\'s UID (status.snapshotName), so a lost answer is never taken twice.',
      }),
    ),
    description: Type.Optional(SNAPSHOT_FIELDS.description(upstreamSpelling('description'))),
    includeMemory: Type.Optional(SNAPSHOT_FIELDS.includeMemory(upstreamSpelling('includeMemory'))),
    quiesce: Type.Optional(SNAPSHOT_FIELDS.quiesce(upstreamSpelling('quiesce'), 'true (false with type Crash or consistencyLevel CrashConsistent)')),
    type: Type.Optional(
      StringEnum(['Standard', 'Crash', 'Application'] as const, {
        description: `Standard (the default): as includeMemory and quiesce say. Crash: crash-consistent, quiesce defaults to false. Application: ${APPLICATION}`,
      }),
    ),
    consistencyLevel: Type.Optional(
      StringEnum(['CrashConsistent', 'FilesystemConsistent', 'ApplicationConsistent'] as const, {
        description:
          'CrashConsistent: quiesce defaults to false. FilesystemConsistent (the default): quiesce defaults to true. ' +
          `ApplicationConsistent: ${APPLICATION}`,
      }),
    ),
    compression: Type.Optional(Type.Boolean({ description: 'Compress the snapshot. true: Not supported (no driver compresses snapshots); reported Unsupported.' })),
    encryption: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean({ description: 'Encrypt the snapshot. true: Not supported (no driver encrypts snapshots); reported Unsupported.' })),
          keyProvider: Type.Optional(StringEnum(['standard', 'hardware', 'external'] as const, { description: 'Where the keys come from. Not supported.' })),
          keyRef: Type.Optional(
            Type.Object({ name: described(ObjectName, 'Name of the key object.') }, { additionalProperties: false, description: 'The keys. Not supported.' }),
          ),
        },
        { additionalProperties: false, description: 'Snapshot encryption. Not supported: setting any of it reports Unsupported.' },
      ),
    ),
  },
  { additionalProperties: false, description: 'How the snapshot is taken (upstream spelling of description, includeMemory and quiesce).' },
);

/** Go durations, and days as upstream's examples write them (30d). */
export const RETENTION_DURATION_PATTERN = '^(0|(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|μs|ms|s|m|h|d))+)$';
const RetentionDuration = (description: string) => Type.String({ maxLength: 64, pattern: RETENTION_DURATION_PATTERN, description });

export const SnapshotRetentionSpec = Type.Object(
  {
    maxAge: Type.Optional(
      RetentionDuration(
        'The snapshot expires this long after it was taken (e.g. 168h or 7d): it is deleted from the hypervisor and the VMSnapshot ' +
          'stays as a record in phase Expired (delete it when you like; it cannot delete itself).',
      ),
    ),
    gracePeriod: Type.Optional(RetentionDuration('How long an expired snapshot is kept before it is deleted; default 0.')),
    maxCount: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 100,
        description: 'Keep at most this many snapshots. Not supported on one VMSnapshot (reported Unsupported): a VMSnapshotSchedule\'s retentionPolicy.maxCount does it.',
      }),
    ),
    deleteOnVMDelete: Type.Optional(
      Type.Boolean({
        description:
          'Default true. The hypervisor snapshot goes with its VM either way; with true, the Ready condition of a VMSnapshot whose VM ' +
          'is gone asks for the object to be deleted (it cannot delete itself).',
      }),
    ),
    preservePinned: Type.Optional(Type.Boolean({ description: 'Default true: a snapshot with metadata.pinned never expires.' })),
  },
  { additionalProperties: false, description: 'How long this snapshot is kept. Immutable.' },
);

export const SnapshotScheduleSpec = Type.Object(
  {
    enabled: Type.Optional(
      Type.Boolean({
        description:
          'Default false. true: Not supported (a VMSnapshot is taken once; reported Unsupported): snapshots on a schedule are a ' +
          'VMSnapshotSchedule. The other fields are read only with enabled: true.',
      }),
    ),
    cronSpec: Type.Optional(
      Type.String({
        maxLength: 256,
        pattern: '^(@(annually|yearly|monthly|weekly|daily|hourly|reboot))|(@every (\\d+(ns|us|µs|ms|s|m|h))+)|((((\\d+,)+\\d+|(\\d+(\\/|-)\\d+)|\\d+|\\*) ?){5,7})$',
        description: 'Cron expression.',
      }),
    ),
    timezone: Type.Optional(Text(64, 'Time zone of the cron expression; default UTC.')),
    suspend: Type.Optional(Type.Boolean({ description: 'No new snapshots while true.' })),
    concurrencyPolicy: Type.Optional(StringEnum(['Allow', 'Forbid', 'Replace'] as const, { description: 'What to do when snapshots overlap.' })),
    successfulJobsHistoryLimit: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, description: 'Successful runs remembered.' })),
    failedJobsHistoryLimit: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, description: 'Failed runs remembered.' })),
  },
  { additionalProperties: false, description: 'Upstream\'s scheduled snapshots: use a VMSnapshotSchedule instead (only enabled: false is accepted without Unsupported).' },
);

export const SnapshotMetadataSpec = Type.Object(
  {
    application: Type.Optional(Text(255, 'The application the snapshot is of.')),
    environment: Type.Optional(StringEnum(['dev', 'staging', 'prod', 'test', 'qa', 'uat'] as const, { description: 'Environment.' })),
    purpose: Type.Optional(
      StringEnum(['backup', 'testing', 'migration', 'restore-point', 'update', 'other'] as const, { description: 'Why the snapshot was taken.' }),
    ),
    tags: Type.Optional(
      Type.Record(Type.String({ maxLength: 317 }), Type.String({ maxLength: 1024, description: 'A tag value.' }), {
        maxProperties: 50,
        description: 'Key-value tags.',
      }),
    ),
    pinned: Type.Optional(Type.Boolean({ description: 'Protect the snapshot from expiring (retentionPolicy.maxAge, with preservePinned); default false.' })),
  },
  {
    additionalProperties: false,
    description: 'About the snapshot: descriptive for people and tools (kept here, not sent anywhere), but for pinned. May change.',
  },
);

/** Every spec field but metadata: a snapshot is what it was taken as; another one is another VMSnapshot. */
const FIXED_FIELDS = ['description', 'includeMemory', 'quiesce', 'nameHint', 'memory', 'snapshotConfig', 'retentionPolicy', 'schedule'] as const;

/** At most one of the fields (dotted paths below spec) is set. */
const atMostOne = (paths: string[], message: string) => ({
  rule: `${paths.map((path) => `(${path.split('.').map((_, i, steps) => `has(self.${steps.slice(0, i + 1).join('.')})`).join(' && ')} ? 1 : 0)`).join(' + ')} <= 1`,
  message,
});

export const VMSnapshotSpec = Type.Object(
  {
    vmRef: VMReference('The VirtualMachine to snapshot.'),
    description: Type.Optional(SNAPSHOT_FIELDS.description(seedSpelling('description'))),
    includeMemory: Type.Optional(SNAPSHOT_FIELDS.includeMemory(seedSpelling('includeMemory'))),
    quiesce: Type.Optional(SNAPSHOT_FIELDS.quiesce(seedSpelling('quiesce'), 'false')),
    nameHint: Type.Optional(
      Type.String({
        maxLength: 255,
        description: 'A name for people (upstream v1alpha1 spelling of snapshotConfig.name): shown on the hypervisor at the head of the description.',
      }),
    ),
    memory: Type.Optional(Type.Boolean({ description: 'Include the running memory state (upstream v1alpha1 spelling of includeMemory).' })),
    snapshotConfig: Type.Optional(SnapshotConfigSpec),
    retentionPolicy: Type.Optional(SnapshotRetentionSpec),
    schedule: Type.Optional(SnapshotScheduleSpec),
    metadata: Type.Optional(SnapshotMetadataSpec),
  },
  {
    additionalProperties: false,
    description:
      'A snapshot of a VirtualMachine, written as the seeds write it (description, includeMemory, quiesce), as upstream VirtRigaud ' +
      'does (snapshotConfig, retentionPolicy, metadata) or as its v1alpha1 did (nameHint, memory); one thing is said one way only. ' +
      'Immutable but for metadata.',
    ...celRules(
      ...(['description', 'quiesce'] as const).map((field) => ({
        rule: `!has(self.${field}) || !has(self.snapshotConfig) || !has(self.snapshotConfig.${field})`,
        message: `set ${field} or snapshotConfig.${field}, not both`,
      })),
      atMostOne(['includeMemory', 'memory', 'snapshotConfig.includeMemory'], 'set one of includeMemory, memory and snapshotConfig.includeMemory'),
      atMostOne(['nameHint', 'snapshotConfig.name'], 'set nameHint or snapshotConfig.name, not both'),
      {
        rule:
          'self.vmRef == oldSelf.vmRef && ' +
          FIXED_FIELDS.map((field) => `has(self.${field}) == has(oldSelf.${field}) && (!has(self.${field}) || self.${field} == oldSelf.${field})`).join(' && '),
        message: 'a VMSnapshot spec is immutable but for metadata; create another VMSnapshot',
      },
    ),
  },
);
export type VMSnapshotSpec = Static<typeof VMSnapshotSpec>;

export const SnapshotPhase = StringEnum(['Pending', 'Creating', 'Ready', 'Failed', 'Deleting', 'Expired'] as const, {
  description:
    'Pending: waiting for the VM. Creating: being taken. Ready: on the hypervisor. Failed: see Ready. Deleting: the object is ' +
    'being deleted. Expired: retentionPolicy.maxAge passed and the snapshot was deleted from the hypervisor.',
});
export type SnapshotPhase = Static<typeof SnapshotPhase>;

export const SnapshotTask = Type.Object(
  {
    id: Type.String({ maxLength: 512, description: 'The hypervisor\'s task.' }),
    operation: StringEnum(['Create', 'Delete'] as const, { description: 'What it does.' }),
    startedAt: Type.String({ format: 'date-time', description: 'When it was started.' }),
  },
  { additionalProperties: false, description: 'The hypervisor task in flight, if any.' },
);
export type SnapshotTask = Static<typeof SnapshotTask>;

/** The VM a snapshot was taken of, kept so the snapshot can be deleted even after the VM object is gone. */
export const SnapshotVMRecord = Type.Object(
  {
    name: Type.String({ maxLength: 253, description: 'Name of the VirtualMachine.' }),
    uid: Type.String({ maxLength: 128, description: 'Its UID.' }),
    providerID: Type.String({ maxLength: 512, description: 'Its id on the hypervisor.' }),
    provider: Type.Object(
      {
        namespace: Type.String({ maxLength: 63, description: 'Namespace of the Provider.' }),
        name: Type.String({ maxLength: 253, description: 'Name of the Provider.' }),
      },
      { additionalProperties: false, description: 'Its Provider.' },
    ),
  },
  { additionalProperties: false, description: 'The VM the snapshot is of, kept so the snapshot can be deleted after the VM object is gone.' },
);
export type SnapshotVMRecord = Static<typeof SnapshotVMRecord>;

export const VMSnapshotStatus = Type.Object(
  {
    phase: Type.Optional(SnapshotPhase),
    snapshotID: Type.Optional(Type.String({ maxLength: 512, description: 'The snapshot on the hypervisor.' })),
    snapshotName: Type.Optional(Type.String({ maxLength: 64, description: 'Its name on the hypervisor, derived from this object\'s UID.' })),
    creationTime: Type.Optional(Type.String({ format: 'date-time', maxLength: 64, description: 'As reported by the hypervisor.' })),
    expiryTime: Type.Optional(
      Type.String({ format: 'date-time', maxLength: 64, description: 'When the snapshot expires (creationTime + retentionPolicy.maxAge), unless pinned.' }),
    ),
    size: Type.Optional(Type.String({ maxLength: 32, description: 'Size on the hypervisor, when it reports one.' })),
    memoryIncluded: Type.Optional(Type.Boolean({ description: 'Whether the running memory state is in the snapshot.' })),
    vm: Type.Optional(SnapshotVMRecord),
    task: Type.Optional(SnapshotTask),
    ...CommonStatusFields,
  },
  { additionalProperties: false, description: 'The snapshot on the hypervisor, as last seen.' },
);
export type VMSnapshotStatus = Static<typeof VMSnapshotStatus>;

export const VMSnapshotKind: KindDefinition = {
  kind: 'VMSnapshot',
  plural: 'vmsnapshots',
  singular: 'vmsnapshot',
  shortNames: ['vrsnap', 'vmsnap'],
  description: 'A snapshot of a VirtualMachine on its hypervisor; deleting the object deletes the snapshot.',
  spec: VMSnapshotSpec,
  status: VMSnapshotStatus,
  printerColumns: [
    { name: 'VM', type: 'string', jsonPath: '.spec.vmRef.name' },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
    { name: 'Memory', type: 'boolean', jsonPath: '.status.memoryIncluded' },
    { name: 'Size', type: 'string', jsonPath: '.status.size' },
    { name: 'Created', type: 'date', jsonPath: '.status.creationTime' },
    { name: 'Expires', type: 'date', jsonPath: '.status.expiryTime', priority: 1 },
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
  { additionalProperties: false, description: 'Which of the schedule\'s snapshots are kept.' },
);
export type RetentionPolicy = Static<typeof RetentionPolicy>;

export const VMSnapshotScheduleSpec = Type.Object(
  {
    vmRef: { ...VMReference('The VirtualMachine to snapshot. Immutable.'), ...immutable('vmRef') },
    schedule: Type.String({
      minLength: 1,
      maxLength: 256,
      description: 'Cron expression in UTC: 5 fields (minute hour day-of-month month day-of-week), @hourly/@daily/…, or @every 6h.',
    }),
    suspend: Type.Optional(Type.Boolean({ default: false, description: 'No new snapshots while true; retention still applies.' })),
    snapshot: Type.Optional(Type.Object(SnapshotOptions, { additionalProperties: false, description: 'How each snapshot is taken.' })),
    retentionPolicy: Type.Optional(RetentionPolicy),
  },
  { additionalProperties: false, description: 'Which VM, when, how and how many.' },
);
export type VMSnapshotScheduleSpec = Static<typeof VMSnapshotScheduleSpec>;

export const VMSnapshotScheduleStatus = Type.Object(
  {
    lastScheduleTime: Type.Optional(Type.String({ format: 'date-time', maxLength: 64, description: 'The last fire acted on.' })),
    nextScheduleTime: Type.Optional(Type.String({ format: 'date-time', maxLength: 64, description: 'The next fire.' })),
    snapshots: Type.Optional(
      Type.Array(Type.String({ maxLength: 253, description: 'A VMSnapshot.' }), { maxItems: 100, description: 'The VMSnapshots kept, oldest first (the newest 100).' }),
    ),
    ...CommonStatusFields,
  },
  { additionalProperties: false, description: 'When the schedule fired and what it keeps.' },
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
