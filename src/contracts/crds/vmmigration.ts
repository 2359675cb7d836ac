// VMMigration: a cold migration of a VirtualMachine to another Provider (of any type) through a
// PVC both providers' runtimes mount. Written as the seeds write it (`target.vmRef`) or as upstream
// VirtRigaud's v1beta1 does (`target.name`, `options`, `metadata`); normalize/vmmigration.ts turns
// either into the one migration the hook reads. Upstream fields no driver can honour are accepted
// by the schema and reported Unsupported by the hook before anything moves.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import {
  AGE_COLUMN,
  CommonStatusFields,
  Duration,
  NamedList,
  NamespaceName,
  ObjectName,
  Quantity,
  READY_COLUMN,
  REASON_COLUMN,
  ResourceObject,
  StringEnum,
  celRules,
  type CelRule,
  type KindDefinition,
} from './common.js';
import { VMDisk, VMNetwork } from './virtualmachine.js';

const described = <T extends TSchema>(schema: T, description: string): T => ({ ...schema, description });
const Text = (maxLength: number, description: string) => Type.String({ maxLength, description });

const LocalRef = (description: string, what: string) =>
  Type.Object({ name: described(ObjectName, `Name of the ${what}.`) }, { additionalProperties: false, description });

const NamespacedRef = (description: string, what: string) =>
  Type.Object(
    {
      name: described(ObjectName, `Name of the ${what}.`),
      namespace: Type.Optional(described(NamespaceName, `Namespace of the ${what}; default the VMMigration's.`)),
    },
    { additionalProperties: false, description },
  );

const StringMap = (description: string, valueMaxLength: number) =>
  Type.Record(Type.String({ maxLength: 317 }), Type.String({ maxLength: valueMaxLength, description: 'A value.' }), { maxProperties: 50, description });

const UNSUPPORTED = 'Not supported: the VMMigration reports Unsupported and moves nothing.';

export const MigrationSource = Type.Object(
  {
    vmRef: LocalRef('The VirtualMachine to migrate, in this namespace. Immutable.', 'VirtualMachine'),
    providerRef: Type.Optional(
      NamespacedRef('The source VM\'s Provider (upstream; found from the VM when unset). When set it must be the VM\'s Provider.', 'Provider'),
    ),
    snapshotRef: Type.Optional(LocalRef(`Migrate the disk as a VMSnapshot has it. ${UNSUPPORTED} The disk is exported from the VM, powered off.`, 'VMSnapshot')),
    createSnapshot: Type.Optional(
      Type.Boolean({
        description:
          'Take a snapshot of the source (powered off, before its disk is exported) as a restore point; it is deleted with the ' +
          'migration\'s other leftovers (options.cleanupPolicy). Needs a source provider with snapshots. Default false.',
      }),
    ),
    powerOffBeforeMigration: Type.Optional(
      Type.Boolean({
        description:
          'Power the source off (gracefully) for the migration and hold it off while the VMMigration exists (unless it Failed). ' +
          'Default false: the migration waits in StoppingSource until the source is off.',
      }),
    ),
    deleteAfterMigration: Type.Optional(
      Type.Boolean({
        description:
          `Delete the source once the target is ready (upstream spelling of spec.deleteSource). true: ${UNSUPPORTED} The hooks cannot ` +
          'delete a VirtualMachine they do not own; delete it yourself once the migration is Ready.',
      }),
    ),
    disks: Type.Optional(
      Type.Array(described(Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' }), 'A disk name.'), {
        maxItems: 20,
        description: 'The disks to move, by name (root: the boot disk); default root. A data disk is Unsupported: the target gets the root disk only.',
      }),
    ),
  },
  { additionalProperties: false, description: 'The VM to migrate and how to treat it.' },
);

export const MigrationTarget = Type.Object(
  {
    name: Type.Optional(described(ObjectName, 'The target VirtualMachine\'s name (upstream spelling of vmRef.name). Immutable.')),
    vmRef: Type.Optional(LocalRef('The target VirtualMachine (seed spelling of name): the VMMigration creates it. Immutable.', 'VirtualMachine')),
    namespace: Type.Optional(
      described(NamespaceName, 'Namespace of the target VM. Only the VMMigration\'s own is supported (the target is its child); another is Unsupported.'),
    ),
    providerRef: NamespacedRef('The Provider the VM moves to: any type, including the source\'s. Immutable.', 'Provider'),
    classRef: Type.Optional(LocalRef('The target\'s VMClass; default the source\'s.', 'VMClass')),
    imageRef: Type.Optional(LocalRef(`A VMImage for the target. ${UNSUPPORTED} The target boots from the migrated disk.`, 'VMImage')),
    networks: Type.Optional(NamedList(VMNetwork, { maxItems: 10, description: 'The target\'s NICs; default the source\'s.' })),
    disks: Type.Optional(
      NamedList(VMDisk, { maxItems: 20, description: 'The target\'s disk sizes (root may only grow past the migrated disk\'s size); default the source\'s root.' }),
    ),
    placementRef: Type.Optional(LocalRef('A VMPlacementPolicy for the target.', 'VMPlacementPolicy')),
    powerOn: Type.Optional(Type.Boolean({ description: 'Power the target on once it is made; default false.' })),
    labels: Type.Optional(StringMap('Labels of the target VirtualMachine.', 63)),
    annotations: Type.Optional(StringMap('Annotations of the target VirtualMachine.', 262144)),
  },
  {
    additionalProperties: false,
    description: 'The VirtualMachine the VMMigration creates, and what differs from the source.',
    ...celRules({ rule: 'has(self.name) != has(self.vmRef)', message: 'set exactly one of name and vmRef' }),
  },
);

export const MigrationPVC = Type.Object(
  {
    name: Type.Optional(described(ObjectName, 'An existing PVC of this namespace to use; unset: one is created (and deleted with the VMMigration).')),
    storageClassName: Type.Optional(Text(253, 'StorageClass of the created PVC (one with ReadWriteMany); default the cluster\'s default class.')),
    size: Type.Optional(described(Quantity, 'Size of the created PVC (the disks plus 20 % is enough); default 50Gi.')),
    accessMode: Type.Optional(
      StringEnum(['ReadWriteMany', 'ReadWriteOnce', 'ReadOnlyMany'] as const, {
        description:
          'Access mode of the created PVC; default ReadWriteMany (both providers\' runtimes mount it). ReadWriteOnce works only when ' +
          'both runtimes share a node; ReadOnlyMany cannot be written ("PVC mount not writable").',
      }),
    ),
    mountPath: Type.Optional(
      Text(4096, `Where the runtimes mount the PVC. ${UNSUPPORTED} It is mounted at <MIGRATION_DIR>/<PVC name> (MIGRATION_DIR: /var/lib/virtrigaud/migrations).`),
    ),
  },
  { additionalProperties: false, description: 'The PVC the disks pass through.' },
);

const NfsStorage = Type.Object(
  {
    server: Text(253, 'NFS server.'),
    export: Text(4096, 'Exported path.'),
    path: Type.Optional(Text(4096, 'Sub-path for this migration.')),
    readOnly: Type.Optional(Type.Boolean({ description: 'Mount read-only.' })),
    uid: Type.Optional(Type.Integer({ minimum: 0, maximum: 4294967295, description: 'AUTH_SYS user ID.' })),
    gid: Type.Optional(Type.Integer({ minimum: 0, maximum: 4294967295, description: 'AUTH_SYS group ID.' })),
  },
  { additionalProperties: false, description: `NFS staging (upstream). ${UNSUPPORTED} Use storage.type pvc with an NFS StorageClass.` },
);

const S3Storage = Type.Object(
  {
    bucket: Text(63, 'Bucket.'),
    endpoint: Type.Optional(Text(263, 'Endpoint.')),
    region: Type.Optional(Text(64, 'Region.')),
    prefix: Type.Optional(Text(1024, 'Key prefix.')),
    credentialsSecretRef: NamespacedRef('The Secret with the access key.', 'Secret'),
    usePathStyle: Type.Optional(Type.Boolean({ description: 'Path-style addressing.' })),
  },
  { additionalProperties: false, description: `S3 staging (upstream). ${UNSUPPORTED}` },
);

export const MigrationStorageSpec = Type.Object(
  {
    type: StringEnum(['pvc', 'nfs', 's3'] as const, { description: 'The staging storage: pvc. nfs and s3 (upstream) are Unsupported.' }),
    transferMode: Type.Optional(
      StringEnum(['auto', 'relay', 'direct'] as const, {
        description: 'How bytes move: auto and relay (through the provider runtimes, what is done); direct is Unsupported.',
      }),
    ),
    pvc: Type.Optional(MigrationPVC),
    nfs: Type.Optional(NfsStorage),
    s3: Type.Optional(S3Storage),
  },
  { additionalProperties: false, description: 'Where the disks are staged between export and import. Immutable.' },
);

export const MigrationOptions = Type.Object(
  {
    diskFormat: Type.Optional(
      StringEnum(['qcow2', 'vmdk', 'raw'] as const, {
        description: 'Format of the staged file; default what the target stores (libvirt and Proxmox qcow2, vSphere vmdk, simulator raw).',
      }),
    ),
    compress: Type.Optional(Type.Boolean({ description: `Compress the staged file. true: ${UNSUPPORTED}` })),
    verifyChecksums: Type.Optional(
      Type.Boolean({ description: `SHA-256 of every copy checked (always done; default true). false: ${UNSUPPORTED} Checksums cannot be turned off.` }),
    ),
    timeout: Type.Optional(described(Duration, 'How long the migration may take before it is Failed (reason Timeout); default 4h.')),
    retryPolicy: Type.Optional(
      Type.Object(
        {
          maxRetries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10, description: 'Failed attempts of a step retried before the migration is Failed; default 3.' })),
          retryDelay: Type.Optional(described(Duration, 'Wait before the first retry; default 5m.')),
          backoffMultiplier: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, description: 'Each further wait is this many times longer; default 2.' })),
        },
        { additionalProperties: false, description: 'How failed steps are retried (a busy or unmounted runtime is waited for, not counted).' },
      ),
    ),
    cleanupPolicy: Type.Optional(
      StringEnum(['Always', 'OnSuccess', 'Never'] as const, {
        description:
          'When the staged files, the imported image and the restore-point snapshot are removed: OnSuccess (default) once the ' +
          'migration is Ready, Always also when it Failed, Never only when the VMMigration is deleted.',
      }),
    ),
    validationChecks: Type.Optional(
      Type.Object(
        {
          checkDiskSize: Type.Optional(Type.Boolean({ description: 'The target\'s root disk is at least the source\'s size; default true.' })),
          checkChecksum: Type.Optional(Type.Boolean({ description: 'Checksums match (always checked); false: Unsupported.' })),
          checkBoot: Type.Optional(Type.Boolean({ description: 'The target reaches Running (needs target.powerOn); default false.' })),
          checkConnectivity: Type.Optional(Type.Boolean({ description: 'The target reports an IP address (needs target.powerOn); default false.' })),
        },
        { additionalProperties: false, description: 'What is checked on the target before the migration is Ready.' },
      ),
    ),
  },
  { additionalProperties: false, description: 'How the migration runs.' },
);

const MigrationMetadata = Type.Object(
  {
    purpose: Type.Optional(StringEnum(['disaster-recovery', 'cloud-migration', 'provider-change', 'testing', 'maintenance'] as const, { description: 'Why.' })),
    createdBy: Type.Optional(Text(255, 'Who.')),
    project: Type.Optional(Text(255, 'Project.')),
    environment: Type.Optional(StringEnum(['dev', 'staging', 'prod', 'test', 'qa', 'uat'] as const, { description: 'Environment.' })),
    tags: Type.Optional(StringMap('Tags.', 1024)),
  },
  { additionalProperties: false, description: 'Descriptive only: kept for people and tools, not sent anywhere.' },
);

function immutable(path: string): CelRule {
  return { rule: `!has(oldSelf.${path}) || (has(self.${path}) && self.${path} == oldSelf.${path})`, message: `${path} is immutable` };
}

export const VMMigrationSpec = Type.Object(
  {
    source: MigrationSource,
    target: MigrationTarget,
    storage: Type.Optional(MigrationStorageSpec),
    options: Type.Optional(MigrationOptions),
    metadata: Type.Optional(MigrationMetadata),
    deleteSource: Type.Optional(Type.Boolean({ description: `Delete the source once the target is ready; default false. true: ${UNSUPPORTED} (see source.deleteAfterMigration).` })),
    retryRequest: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 63,
        description: 'Set (or change) to retry a Failed migration from the step that failed, e.g. a timestamp. Ignored while it has not failed.',
      }),
    ),
  },
  {
    additionalProperties: false,
    description: 'Moves a VirtualMachine (powered off) to another Provider: its disk is exported to a PVC, imported by the target Provider, and a new VirtualMachine made from it.',
    ...celRules(
      immutable('source.vmRef'),
      immutable('target.providerRef'),
      immutable('target.name'),
      immutable('target.vmRef'),
      immutable('storage'),
      { rule: '!has(self.deleteSource) || !has(self.source.deleteAfterMigration)', message: 'set deleteSource or source.deleteAfterMigration, not both' },
    ),
  },
);
export type VMMigrationSpec = Static<typeof VMMigrationSpec>;

export const MIGRATION_PHASES = [
  'Pending',
  'Validating',
  'StoppingSource',
  'Snapshotting',
  'Exporting',
  'Importing',
  'Creating',
  'Validating-Target',
  'Ready',
  'Failed',
] as const;
export const MigrationPhase = StringEnum(MIGRATION_PHASES, {
  description:
    'Pending: not looked at yet. Validating: checking the spec, the Providers and the PVC (mounted and writable in both runtimes). ' +
    'StoppingSource: waiting for the source to be off. Snapshotting: taking the restore point. Exporting: source disk to the PVC. ' +
    'Importing: PVC file to the target provider. Creating: the target VirtualMachine is made. Validating-Target: the checks on it. ' +
    'Ready: done. Failed: see the Ready condition; spec.retryRequest retries.',
});
export type MigrationPhase = Static<typeof MigrationPhase>;

const Bytes = Type.Integer({ minimum: 0 });

export const MigrationDiskStatus = Type.Object(
  {
    name: Type.String({ maxLength: 63, description: 'The disk.' }),
    phase: StringEnum(['Pending', 'Exporting', 'Exported', 'Importing', 'Imported'] as const, { description: 'How far the disk got.' }),
    file: Type.Optional(Type.String({ maxLength: 1024, description: 'The staged file, relative to the PVC.' })),
    format: Type.Optional(StringEnum(['qcow2', 'raw', 'vmdk'] as const, { description: 'Its format.' })),
    sizeBytes: Type.Optional(described(Bytes, 'The disk\'s virtual size.')),
    percent: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, description: 'Progress of the running step, as the provider reports it.' })),
    task: Type.Optional(Type.String({ maxLength: 1024, description: 'The provider task of the running step.' })),
    image: Type.Optional(Type.String({ maxLength: 1024, description: 'The image the target provider made from it.' })),
    attempts: Type.Optional(Type.Integer({ minimum: 0, description: 'Copies made of this disk (a corrupted copy is made again).' })),
    imageRemoved: Type.Optional(Type.Boolean({ description: 'The imported image is removed again (cleanup; the target VM has its own copy).' })),
  },
  { additionalProperties: false, description: 'One disk of the migration.' },
);
export type MigrationDiskStatus = Static<typeof MigrationDiskStatus>;

export const VMMigrationStatus = Type.Object(
  {
    phase: Type.Optional(MigrationPhase),
    message: Type.Optional(Type.String({ maxLength: 2048, description: 'What the migration does or waits for.' })),
    targetVMRef: Type.Optional(
      Type.Object({ name: Type.String({ maxLength: 253, description: 'Its name.' }) }, { additionalProperties: false, description: 'The target VirtualMachine.' }),
    ),
    storagePVCName: Type.Optional(Type.String({ maxLength: 253, description: 'The PVC the disks pass through.' })),
    source: Type.Optional(
      Type.Object(
        {
          provider: Type.String({ maxLength: 317, description: 'Its Provider (namespace/name).' }),
          id: Type.String({ maxLength: 1024, description: 'Its ID on the provider.' }),
          uid: Type.String({ maxLength: 64, description: 'The VirtualMachine\'s UID (the VM\'s identity on the provider).' }),
        },
        { additionalProperties: false, description: 'The source VM, as it was when the migration began.' },
      ),
    ),
    snapshotID: Type.Optional(Type.String({ maxLength: 1024, description: 'The restore-point snapshot of the source (createSnapshot).' })),
    snapshotTask: Type.Optional(Type.String({ maxLength: 1024, description: 'Its provider task while it is taken.' })),
    disks: Type.Optional(Type.Array(MigrationDiskStatus, { maxItems: 20, description: 'Per disk: how far it got.' })),
    startTime: Type.Optional(Type.String({ format: 'date-time', description: 'When the migration began (left Pending).' })),
    completionTime: Type.Optional(Type.String({ format: 'date-time', description: 'When it became Ready or Failed.' })),
    phaseStartTime: Type.Optional(Type.String({ format: 'date-time', description: 'When the current phase began.' })),
    retryCount: Type.Optional(Type.Integer({ minimum: 0, description: 'Failed attempts of the current step (options.retryPolicy).' })),
    lastRetryTime: Type.Optional(Type.String({ format: 'date-time', description: 'When the last failed attempt was.' })),
    retryHandled: Type.Optional(Type.String({ maxLength: 63, description: 'The spec.retryRequest last acted on.' })),
    failedPhase: Type.Optional({ ...MigrationPhase, description: 'The phase the migration failed in (where spec.retryRequest resumes).' }),
    cleanedUp: Type.Optional(Type.Boolean({ description: 'The staged files, imported image and snapshot are removed.' })),
    cleanupTasks: Type.Optional(
      Type.Array(
        Type.Object(
          {
            kind: StringEnum(['image', 'snapshot'] as const, { description: 'What is being removed: an imported image (target provider) or the restore point (source).' }),
            name: Type.String({ maxLength: 1024, description: 'The disk, or the snapshot ID.' }),
            task: Type.String({ maxLength: 1024, description: 'The provider task removing it.' }),
          },
          { additionalProperties: false, description: 'A removal the provider runs as a task.' },
        ),
        { maxItems: 21, description: 'Removals still running; cleanedUp waits for them.' },
      ),
    ),
    validationResults: Type.Optional(
      Type.Object(
        {
          diskSizeMatch: Type.Optional(Type.Boolean({ description: 'The target\'s root disk is at least the migrated disk\'s size.' })),
          checksumMatch: Type.Optional(Type.Boolean({ description: 'Every copy matched its checksum.' })),
          bootSuccess: Type.Optional(Type.Boolean({ description: 'The target runs.' })),
          connectivitySuccess: Type.Optional(Type.Boolean({ description: 'The target reports an IP address.' })),
          validationErrors: Type.Optional(
            Type.Array(Type.String({ maxLength: 1024, description: 'One failed check.' }), { maxItems: 10, description: 'Why the target failed validation.' }),
          ),
        },
        { additionalProperties: false, description: 'What options.validationChecks found.' },
      ),
    ),
    ...CommonStatusFields,
  },
  { additionalProperties: false, description: 'Where the migration is.' },
);
export type VMMigrationStatus = Static<typeof VMMigrationStatus>;

export const VMMigrationKind: KindDefinition = {
  kind: 'VMMigration',
  plural: 'vmmigrations',
  singular: 'vmmigration',
  shortNames: ['vmm', 'vmmig'],
  description: 'Moves a VirtualMachine to another Provider (any type) through a PVC.',
  spec: VMMigrationSpec,
  status: VMMigrationStatus,
  printerColumns: [
    { name: 'Source', type: 'string', jsonPath: '.spec.source.vmRef.name' },
    { name: 'Target Provider', type: 'string', jsonPath: '.spec.target.providerRef.name' },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
    READY_COLUMN,
    AGE_COLUMN,
    REASON_COLUMN,
  ],
};

export const VMMigrationObject = ResourceObject('VMMigration', VMMigrationSpec);
export type VMMigrationObject = Static<typeof VMMigrationObject>;
