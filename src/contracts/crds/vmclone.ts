// VMClone in both spellings: the seeds' (`sourceVMRef`, `linkedClone`, `target.{name,powerState}`)
// and upstream VirtRigaud's v1beta1 (`source`, `target`, `options`, `customization`, `metadata`).
// CEL refuses an object that says one thing both ways; normalize/vmclone.ts turns either into the
// one clone the hook reads. Fields with two spellings carry no schema default: the defaults differ
// by spelling (the seeds clone linked and powered on, upstream full and powered off) and live in
// normalize.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { DURATION_PATTERN } from '../quantity.js';
import {
  AGE_COLUMN,
  CommonStatusFields,
  NamespaceName,
  ObjectName,
  READY_COLUMN,
  REASON_COLUMN,
  ResourceObject,
  StringEnum,
  celRules,
  type CelRule,
  type KindDefinition,
} from './common.js';
import { MAX_USERDATA_LENGTH, PowerState } from './virtualmachine.js';

const described = <T extends TSchema>(schema: T, description: string): T => ({ ...schema, description });

const IPV4_PATTERN = '^((25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)\\.){3}(25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)$';
const IPv4 = (description: string) => Type.String({ maxLength: 15, pattern: IPV4_PATTERN, description });
const UPSTREAM_MAC = (description: string) => Type.String({ maxLength: 17, pattern: '^([0-9A-Fa-f]{2}[:-]){5}([0-9A-Fa-f]{2})$', description });
const Text = (maxLength: number, description: string) => Type.String({ maxLength, description });
const CloneDuration = (description: string) => Type.String({ maxLength: 64, pattern: DURATION_PATTERN, description });

/** A reference by name to an object in the VMClone's namespace. */
const LocalRef = (description: string, what: string) =>
  Type.Object({ name: described(ObjectName, `Name of the ${what}.`) }, { additionalProperties: false, description });

/** A reference by name, optionally to another namespace. */
const NamespacedRef = (description: string, what: string) =>
  Type.Object(
    {
      name: described(ObjectName, `Name of the ${what}.`),
      namespace: Type.Optional(described(NamespaceName, `Namespace of the ${what}; default the VMClone's.`)),
    },
    { additionalProperties: false, description },
  );

const StringMap = (description: string, valueMaxLength: number, valueDescription: string) =>
  Type.Record(Type.String({ maxLength: 317 }), Type.String({ maxLength: valueMaxLength, description: valueDescription }), {
    maxProperties: 50,
    description,
  });

const UNSUPPORTED = 'Not supported: the VMClone reports Unsupported and makes no clone.';
const CUSTOMIZE = 'Not supported: no driver customizes the guest of a clone, which boots as a copy of its source; the VMClone reports Unsupported and makes no clone.';

export const VMCloneSourceSpec = Type.Object(
  {
    vmRef: Type.Optional(LocalRef('The VirtualMachine to clone, in this namespace (upstream spelling of sourceVMRef).', 'VirtualMachine')),
    snapshotRef: Type.Optional(LocalRef(`A VMSnapshot to clone from. ${UNSUPPORTED}`, 'VMSnapshot')),
    templateRef: Type.Optional(NamespacedRef(`A VM template to clone from. ${UNSUPPORTED} A VM made from a template is a VirtualMachine with spec.imageRef.`, 'template')),
    imageRef: Type.Optional(NamespacedRef(`A VMImage to clone from. ${UNSUPPORTED} A VM made from an image is a VirtualMachine with spec.imageRef.`, 'VMImage')),
  },
  {
    additionalProperties: false,
    description: 'What to clone (upstream spelling): exactly one of vmRef, snapshotRef, templateRef and imageRef.',
    ...celRules({
      rule: '(has(self.vmRef) ? 1 : 0) + (has(self.snapshotRef) ? 1 : 0) + (has(self.templateRef) ? 1 : 0) + (has(self.imageRef) ? 1 : 0) == 1',
      message: 'set exactly one of vmRef, snapshotRef, templateRef and imageRef',
    }),
  },
);

const TargetNetwork = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', description: 'The NIC of the source to override.' }),
    networkRef: Type.Optional(NamespacedRef('The VMNetworkAttachment to connect the NIC to.', 'VMNetworkAttachment')),
    ipAddress: Type.Optional(IPv4('Static IPv4 address of the NIC.')),
    gateway: Type.Optional(IPv4('Default gateway.')),
    prefix: Type.Optional(Type.Integer({ minimum: 1, maximum: 32, description: 'Prefix length of ipAddress.' })),
    dns: Type.Optional(Text(253, 'DNS server.')),
    macAddress: Type.Optional(UPSTREAM_MAC('MAC address of the NIC.')),
  },
  { additionalProperties: false, description: 'A NIC override.' },
);

const TargetDisk = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', description: 'The disk of the source: root, or a name in the source VirtualMachine\'s spec.disks.' }),
    sizeGiB: Type.Integer({ minimum: 1, maximum: 65536, description: 'Size in GiB; the clone\'s disk is grown to it after the copy (disks only grow).' }),
    type: Type.Optional(
      StringEnum(['thin', 'thick', 'eagerzeroedthick', 'ssd', 'hdd'] as const, {
        description: `Provisioning or medium of the disk. ${UNSUPPORTED} A clone's disks keep the provisioning they are copied with.`,
      }),
    ),
    storageClass: Type.Optional(Text(253, `Datastore / storage pool of the disk. ${UNSUPPORTED} A clone's disks are made beside its source's.`)),
    expandPolicy: Type.Optional(
      StringEnum(['Online', 'Offline'] as const, {
        description:
          'Online: the disk may be grown while the VM runs; Offline (the default): while it is off. Either is met: a clone is ' +
          'grown to sizeGiB right after the copy, before it is first powered on.',
      }),
    ),
    scsi: Type.Optional(
      Type.Object(
        {
          controller: Type.Optional(Type.Integer({ minimum: 0, maximum: 3, description: 'SCSI controller number.' })),
          controllerType: Type.Optional(StringEnum(['lsilogic', 'buslogic', 'lsilogic-sas', 'pvscsi'] as const, { description: 'SCSI controller type.' })),
          sharedBus: Type.Optional(StringEnum(['noSharing', 'virtualSharing', 'physicalSharing'] as const, { description: 'SCSI bus sharing.' })),
        },
        { additionalProperties: false, description: `SCSI controller of the disk. ${UNSUPPORTED}` },
      ),
    ),
  },
  { additionalProperties: false, description: 'A disk override.' },
);

export const VMCloneTargetSpec = Type.Object(
  {
    name: Type.Optional(described(ObjectName, 'The clone VirtualMachine\'s name; default this VMClone\'s name. Immutable.')),
    powerState: Type.Optional(
      described(PowerState, 'The clone\'s power state, kept from then on (seed spelling; upstream says options.powerOn). Default On for a VMClone written with sourceVMRef.'),
    ),
    namespace: Type.Optional(
      described(NamespaceName, `Namespace of the clone. Only the VMClone's own namespace is supported (the clone is a child of the VMClone); another is Unsupported.`),
    ),
    providerRef: Type.Optional(
      NamespacedRef('The Provider of the clone. A clone is made on its source\'s Provider; naming another is Unsupported (that is a migration).', 'Provider'),
    ),
    classRef: Type.Optional(LocalRef('The VMClass of the clone; default the source\'s. CPUs and memory are set to it after the copy.', 'VMClass')),
    placementRef: Type.Optional(LocalRef(`A VMPlacementPolicy for the clone. ${UNSUPPORTED}`, 'VMPlacementPolicy')),
    networks: Type.Optional(
      Type.Array(TargetNetwork, {
        maxItems: 10,
        description: `NIC overrides. ${UNSUPPORTED} A clone keeps its source's NICs; no driver rewires or readdresses a clone.`,
      }),
    ),
    disks: Type.Optional(Type.Array(TargetDisk, { maxItems: 20, description: 'Disk overrides: the clone\'s disks are its source\'s, grown to sizeGiB.' })),
    labels: Type.Optional(StringMap('Labels of the clone VirtualMachine (may change; the VirtualMachine follows).', 63, 'A label value.')),
    annotations: Type.Optional(StringMap('Annotations of the clone VirtualMachine (may change; the VirtualMachine follows).', 262144, 'An annotation value.')),
  },
  { additionalProperties: false, description: 'The clone VirtualMachine: its name, and what differs from the source.' },
);

export const VMCloneOptionsSpec = Type.Object(
  {
    type: Type.Optional(
      StringEnum(['FullClone', 'LinkedClone', 'InstantClone'] as const, {
        description:
          'FullClone (the default when written with source): an independent copy. LinkedClone: shares the source\'s disks copy-on-write ' +
          '(needs a provider that can). InstantClone is Unsupported. Upstream spelling of linkedClone.',
      }),
    ),
    powerOn: Type.Optional(
      Type.Boolean({
        description: 'Power the clone on once it is made; default false. Upstream spelling of target.powerState, read when the clone is made.',
      }),
    ),
    includeSnapshots: Type.Optional(Type.Boolean({ description: `Copy the source's snapshots into the clone. true is Unsupported.` })),
    parallel: Type.Optional(Type.Boolean({ description: 'Copy disks in parallel. true is Unsupported.' })),
    timeout: Type.Optional(
      CloneDuration(
        'How long to wait for the clone (default 30m when written with source): past it the VMClone is Failed (reason CloneTimeout); ' +
          'the VirtualMachine keeps going and the VMClone turns Ready if it gets there.',
      ),
    ),
    retryPolicy: Type.Optional(
      Type.Object(
        {
          maxRetries: Type.Optional(Type.Integer({ minimum: 0, maximum: 10, description: 'Attempts at most.' })),
          retryDelay: Type.Optional(CloneDuration('Delay between attempts.')),
          backoffMultiplier: Type.Optional(Type.Integer({ description: 'Multiplier of the delay after each attempt.' })),
        },
        {
          additionalProperties: false,
          description: `How failed clones are retried. ${UNSUPPORTED} The VirtualMachine controller retries with its own back-off (1 s doubling to 5 min, without limit).`,
        },
      ),
    ),
    storage: Type.Optional(
      Type.Object(
        {
          preferThinProvisioning: Type.Optional(Type.Boolean({ description: 'Thin-provision the copy. false is Unsupported (a clone keeps the provisioning it is copied with).' })),
          diskFormat: Type.Optional(
            StringEnum(['thin', 'thick', 'eagerzeroedthick', 'ssd', 'hdd', 'nvme'] as const, { description: `Disk format of the copy. ${UNSUPPORTED}` }),
          ),
          storageClass: Type.Optional(Text(253, `Storage for the copy. ${UNSUPPORTED} A clone is made beside its source.`)),
          datastore: Type.Optional(Text(255, `Datastore for the copy. ${UNSUPPORTED} A clone is made beside its source.`)),
          folder: Type.Optional(Text(255, `VM folder for the clone. ${UNSUPPORTED} A clone is made beside its source.`)),
          enableCompression: Type.Optional(Type.Boolean({ description: 'Compress while copying. true is Unsupported.' })),
        },
        { additionalProperties: false, description: 'Where and how the copy is stored.' },
      ),
    ),
    performance: Type.Optional(
      Type.Object(
        {
          priority: Type.Optional(StringEnum(['Low', 'Normal', 'High'] as const, { description: 'Priority of the copy; Normal is what every driver does, Low and High are Unsupported.' })),
          ioThrottling: Type.Optional(Type.Boolean({ description: 'Throttle I/O while copying. true is Unsupported.' })),
          maxIOPS: Type.Optional(Type.Integer({ minimum: 100, maximum: 100000, description: `I/O operations per second while copying. ${UNSUPPORTED}` })),
          concurrentDisks: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, description: `Disks copied at once. ${UNSUPPORTED}` })),
        },
        { additionalProperties: false, description: 'How fast the copy goes.' },
      ),
    ),
  },
  { additionalProperties: false, description: 'How to clone (upstream spelling). Read when the clone is made: immutable.' },
);

const Password = (description: string) =>
  Type.Object(
    {
      value: Type.Optional(Text(1024, 'The password itself (better in a Secret).')),
      secretRef: Type.Optional(LocalRef('The Secret holding the password.', 'Secret')),
      secretKey: Type.Optional(Text(253, 'The key in the Secret; default password.')),
    },
    { additionalProperties: false, description },
  );

const UserDataSource = (description: string) =>
  Type.Object(
    {
      inline: Type.Optional(Text(MAX_USERDATA_LENGTH, 'The data itself.')),
      secretRef: Type.Optional(LocalRef('The Secret holding the data.', 'Secret')),
    },
    { additionalProperties: false, description },
  );

export const VMCloneCustomizationSpec = Type.Object(
  {
    hostname: Type.Optional(
      Type.String({ maxLength: 255, pattern: '^[a-zA-Z0-9]([a-zA-Z0-9\\-]*[a-zA-Z0-9])?$', description: `Host name of the clone's guest. ${CUSTOMIZE}` }),
    ),
    domain: Type.Optional(Text(255, `Domain of the clone's guest. ${CUSTOMIZE}`)),
    timeZone: Type.Optional(Text(100, `Time zone of the clone's guest. ${CUSTOMIZE}`)),
    networks: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Text(255, 'The NIC to address.'),
            ipAddress: Type.Optional(IPv4('Static IPv4 address.')),
            subnetMask: Type.Optional(IPv4('Subnet mask, e.g. 255.255.255.0.')),
            gateway: Type.Optional(IPv4('Default gateway.')),
            dns: Type.Optional(Type.Array(Text(253, 'A DNS server.'), { maxItems: 5, description: 'DNS servers.' })),
            macAddress: Type.Optional(UPSTREAM_MAC('MAC address.')),
            dhcp: Type.Optional(Type.Boolean({ description: 'Address the NIC by DHCP.' })),
          },
          { additionalProperties: false, description: 'Guest addressing of one NIC.' },
        ),
        { maxItems: 10, description: `Guest network settings. ${CUSTOMIZE}` },
      ),
    ),
    userData: Type.Optional(
      Type.Object(
        {
          cloudInit: Type.Optional(UserDataSource(`cloud-init user-data for the clone. ${CUSTOMIZE}`)),
          ignition: Type.Optional(UserDataSource(`An Ignition config for the clone. ${CUSTOMIZE}`)),
        },
        { additionalProperties: false, description: 'First-boot data for the clone\'s guest.' },
      ),
    ),
    sysprep: Type.Optional(
      Type.Object(
        {
          enabled: Type.Optional(Type.Boolean({ description: `Run Windows sysprep on the clone; default false. true: ${CUSTOMIZE}` })),
          productKey: Type.Optional(Text(256, 'Windows product key (read only with enabled: true).')),
          organization: Type.Optional(Text(255, 'Organization (read only with enabled: true).')),
          owner: Type.Optional(Text(255, 'Owner (read only with enabled: true).')),
          adminPassword: Type.Optional(Password('Administrator password (read only with enabled: true).')),
          joinDomain: Type.Optional(
            Type.Object(
              {
                domain: Text(255, 'The domain to join.'),
                username: Text(255, 'The account that joins.'),
                password: Password('Its password.'),
                organizationalUnit: Type.Optional(Text(500, 'OU of the computer account.')),
              },
              { additionalProperties: false, description: 'Join a Windows domain (read only with enabled: true).' },
            ),
          ),
          customCommands: Type.Optional(Type.Array(Text(1000, 'A command.'), { maxItems: 20, description: 'Commands run by sysprep (read only with enabled: true).' })),
        },
        { additionalProperties: false, description: 'Windows sysprep; only enabled: true asks for anything.' },
      ),
    ),
    tags: Type.Optional(Type.Array(Text(255, 'A tag.'), { maxItems: 50, description: `Tags for the clone. ${UNSUPPORTED}` })),
    guestCommands: Type.Optional(
      Type.Array(
        Type.Object(
          {
            command: Text(1000, 'The command.'),
            arguments: Type.Optional(Type.Array(Text(1000, 'An argument.'), { maxItems: 20, description: 'Its arguments.' })),
            workingDirectory: Type.Optional(Text(500, 'Where it runs.')),
            runAsUser: Type.Optional(Text(255, 'Who runs it.')),
            timeout: Type.Optional(CloneDuration('How long it may run; default 5m.')),
            stage: Type.Optional(
              StringEnum(['pre-customization', 'post-customization', 'first-boot'] as const, { description: 'When it runs; default post-customization.' }),
            ),
          },
          { additionalProperties: false, description: 'A command run in the guest.' },
        ),
        { maxItems: 20, description: `Commands run in the clone's guest. ${CUSTOMIZE}` },
      ),
    ),
    certificates: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Text(255, 'Name of the certificate.'),
            data: Type.Optional(Text(65536, 'The certificate (PEM).')),
            secretRef: Type.Optional(LocalRef('The Secret holding the certificate.', 'Secret')),
            secretKey: Type.Optional(Text(253, 'The key in the Secret; default tls.crt.')),
            store: Type.Optional(StringEnum(['root', 'ca', 'my', 'trust'] as const, { description: 'The certificate store; default root.' })),
          },
          { additionalProperties: false, description: 'A certificate to install.' },
        ),
        { maxItems: 10, description: `Certificates installed in the clone's guest. ${CUSTOMIZE}` },
      ),
    ),
  },
  { additionalProperties: false, description: 'Changes to the clone\'s guest (upstream spelling). Immutable.' },
);

export const VMCloneMetadataSpec = Type.Object(
  {
    createdBy: Type.Optional(Text(255, 'Who asked for the clone.')),
    environment: Type.Optional(StringEnum(['dev', 'staging', 'prod', 'test', 'qa', 'uat'] as const, { description: 'Environment of the clone.' })),
    project: Type.Optional(Text(255, 'Project of the clone.')),
    purpose: Type.Optional(
      StringEnum(['backup', 'testing', 'migration', 'development', 'production', 'staging'] as const, { description: 'Why the clone is made.' }),
    ),
    tags: Type.Optional(StringMap('Key-value tags of the clone operation.', 1024, 'A tag value.')),
  },
  { additionalProperties: false, description: 'Descriptive only: kept on the VMClone for people and tools, not sent anywhere. May change.' },
);

/** A field set once: neither added, removed nor changed on update (`path` below spec, dotted). */
function immutableAt(path: string): CelRule {
  const steps = path.split('.');
  const presence = (root: string) => steps.map((_, i) => `has(${root}.${steps.slice(0, i + 1).join('.')})`).join(' && ');
  const absent = (root: string) => steps.map((_, i) => `!has(${root}.${steps.slice(0, i + 1).join('.')})`).join(' || ');
  return {
    rule: `(${presence('self')}) == (${presence('oldSelf')}) && (${absent('self')} || self.${path} == oldSelf.${path})`,
    message: `${path} is immutable`,
  };
}

export const VMCloneSpec = Type.Object(
  {
    sourceVMRef: Type.Optional(LocalRef('The VirtualMachine to clone, in this namespace (seed spelling of source.vmRef). Immutable.', 'VirtualMachine')),
    linkedClone: Type.Optional(
      Type.Boolean({
        description:
          'true (the default when written with sourceVMRef): the clone shares the source\'s disks copy-on-write; false: a full, ' +
          'independent copy. Seed spelling of options.type. Immutable.',
      }),
    ),
    source: Type.Optional(VMCloneSourceSpec),
    target: Type.Optional(VMCloneTargetSpec),
    options: Type.Optional(VMCloneOptionsSpec),
    customization: Type.Optional(VMCloneCustomizationSpec),
    metadata: Type.Optional(VMCloneMetadataSpec),
  },
  {
    additionalProperties: false,
    description:
      'Clones a VirtualMachine into a new one on the same Provider. Written either as the seeds write it (sourceVMRef, linkedClone, ' +
      'target.powerState) or as upstream VirtRigaud does (source, options, customization); one thing is said one way, not both.',
    ...celRules(
      { rule: 'has(self.sourceVMRef) != has(self.source)', message: 'set exactly one of sourceVMRef and source' },
      { rule: '!has(self.linkedClone) || !has(self.options) || !has(self.options.type)', message: 'set linkedClone or options.type, not both' },
      {
        rule: '!has(self.target) || !has(self.target.powerState) || !has(self.options) || !has(self.options.powerOn)',
        message: 'set target.powerState or options.powerOn, not both',
      },
      ...[
        'sourceVMRef',
        'linkedClone',
        'source',
        'options',
        'customization',
        'target.name',
        'target.namespace',
        'target.providerRef',
        'target.classRef',
        'target.placementRef',
        'target.networks',
        'target.disks',
      ].map(immutableAt),
    ),
  },
);
export type VMCloneSpec = Static<typeof VMCloneSpec>;

export const ClonePhase = StringEnum(['Pending', 'Cloning', 'Ready', 'Failed'] as const, {
  description: 'Pending: waiting for the source. Cloning: the clone VirtualMachine is being made. Ready: it is. Failed: it cannot be (see Ready).',
});

export const VMCloneStatus = Type.Object(
  {
    phase: Type.Optional(ClonePhase),
    source: Type.Optional(Type.String({ maxLength: 253, description: 'The source VirtualMachine, whichever spelling named it.' })),
    actualCloneType: Type.Optional(StringEnum(['FullClone', 'LinkedClone'] as const, { description: 'The kind of clone asked of the provider.' })),
    targetRef: Type.Optional(
      Type.Object(
        { name: Type.String({ maxLength: 253, description: 'Name of the clone VirtualMachine.' }) },
        { additionalProperties: false, description: 'The clone VirtualMachine, in this namespace.' },
      ),
    ),
    sourceSnapshot: Type.Optional(Type.String({ maxLength: 512, description: 'The source snapshot a linked clone is based on, when the hypervisor uses one.' })),
    ...CommonStatusFields,
  },
  { additionalProperties: false, description: 'What the clone is, and how far it got.' },
);

export const VMCloneKind: KindDefinition = {
  kind: 'VMClone',
  plural: 'vmclones',
  singular: 'vmclone',
  // `vmclone` is also the singular (and upstream's short name), so `kubectl get vmclone` works either way.
  shortNames: ['vrclone'],
  description:
    'Clones a VirtualMachine into a new VirtualMachine (its child) on the same Provider. The clone is independent of the ' +
    'source once created; deleting the VMClone deletes the clone.',
  spec: VMCloneSpec,
  status: VMCloneStatus,
  printerColumns: [
    // From status: the spec has two spellings, the status one answer.
    { name: 'Source', type: 'string', jsonPath: '.status.source' },
    { name: 'Target', type: 'string', jsonPath: '.status.targetRef.name' },
    { name: 'Type', type: 'string', jsonPath: '.status.actualCloneType' },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
    READY_COLUMN,
    AGE_COLUMN,
    REASON_COLUMN,
  ],
};

export const VMCloneObject = ResourceObject('VMClone', VMCloneSpec);
export type VMCloneObject = Static<typeof VMCloneObject>;
