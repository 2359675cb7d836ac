// VMSet: N VirtualMachines from one template, scaled and rolled out by the VMSet hook
// (src/hooks/vmset.ts). Field names are upstream VirtRigaud's v1beta1 VMSet (StatefulSet-shaped);
// what a set of VMs cannot back (volume claim templates, a governing Service) is accepted by the
// schema and refused with an Unsupported condition, never ignored.
import { Type, type Static } from '@sinclair/typebox';
import { AGE_COLUMN, CommonStatusFields, IntOrString, ObjectName, ResourceObject, StringEnum, celRules, type KindDefinition } from './common.js';
import { LabelSelector } from './core-v1.js';
import { VirtualMachineSpec } from './virtualmachine.js';

/** The most replicas one set manages: each is a VM on a hypervisor, and the status lists them all. */
export const MAX_REPLICAS = 500;

const StringMap = (description: string, valueMaxLength: number) =>
  Type.Record(Type.String({ minLength: 1, maxLength: 317 }), Type.String({ maxLength: valueMaxLength, description: 'A value.' }), { maxProperties: 50, description });

const UNSUPPORTED = 'Not supported for VMs: the VMSet reports Unsupported and changes nothing while it is set.';

export const VMSetTemplate = Type.Object(
  {
    metadata: Type.Optional(
      Type.Object(
        {
          labels: Type.Optional(StringMap('Labels of every VirtualMachine of the set (changes roll out in place). They must match spec.selector.', 63)),
          annotations: Type.Optional(StringMap('Annotations of every VirtualMachine of the set (changes roll out in place).', 262144)),
        },
        { additionalProperties: false, description: 'Labels and annotations of the VirtualMachines.' },
      ),
    ),
    spec: { ...VirtualMachineSpec, description: 'The spec of every VirtualMachine of the set, either spelling of the VirtualMachine API.' },
  },
  { additionalProperties: false, description: 'What each VirtualMachine of the set is made from.' },
);

const Percent = '^(100|[1-9]?[0-9])%$';

export const RollingUpdate = Type.Object(
  {
    maxUnavailable: Type.Optional(
      IntOrString({
        pattern: Percent,
        description:
          'How many VMs may be unavailable during an update: a number or a percentage of replicas, rounded down. Default 25%; at least 1 when maxSurge is 0.',
      }),
    ),
    maxSurge: Type.Optional(
      IntOrString({
        pattern: Percent,
        description:
          'How many VMs above replicas may exist while VMs are replaced (a change that needs a new VM): a number or a percentage, rounded up. Default 25%.',
      }),
    ),
    partition: Type.Optional(
      Type.Integer({
        minimum: 0,
        description: 'Only VMs whose ordinal is at least this are updated; the others keep their revision (a canary). Default 0.',
      }),
    ),
    podManagementPolicy: Type.Optional(
      StringEnum(['OrderedReady', 'Parallel'] as const, {
        description: 'Parallel (default): missing VMs are created together. OrderedReady: one at a time, each once the others are Ready.',
      }),
    ),
  },
  { additionalProperties: false, description: 'How a RollingUpdate proceeds.' },
);

export const VMSetUpdateStrategy = Type.Object(
  {
    type: Type.Optional(
      StringEnum(['RollingUpdate', 'OnDelete', 'Recreate'] as const, {
        description:
          'RollingUpdate (default): VMs move to the template within maxUnavailable/maxSurge, each once the previous ones are Ready. ' +
          'OnDelete: existing VMs keep their revision; VMs made later (scale-up, a deleted VM replaced) get the template. ' +
          'Recreate: every VM is updated at once (in place, or deleted before its replacement is made).',
      }),
    ),
    rollingUpdate: Type.Optional(RollingUpdate),
  },
  { additionalProperties: false, description: 'How template changes reach the VMs.' },
);

const ClaimTemplate = Type.Object(
  {
    metadata: Type.Optional(Type.Object({ name: Type.Optional(Type.String({ maxLength: 253, description: 'The claim name.' })) }, { description: 'The claim\'s metadata.', additionalProperties: true, 'x-kubernetes-preserve-unknown-fields': true })),
    spec: Type.Object({}, { additionalProperties: true, 'x-kubernetes-preserve-unknown-fields': true, description: 'A PersistentVolumeClaim spec.' }),
  },
  { additionalProperties: false, description: `A PersistentVolumeClaim per VM (StatefulSet style). ${UNSUPPORTED}` },
);

export const VMSetSpec = Type.Object(
  {
    replicas: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_REPLICAS, description: `How many VirtualMachines (default 1, at most ${MAX_REPLICAS}).` })),
    selector: Type.Optional({
      ...LabelSelector,
      description: 'Labels the VMs of the set carry: must match template.metadata.labels. The set owns its VMs by UID; the selector is what `kubectl scale` and status.selector report.',
    }),
    template: VMSetTemplate,
    updateStrategy: Type.Optional(VMSetUpdateStrategy),
    minReadySeconds: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 86400, description: 'How long a VM must be Ready (at its current spec) to count as available. Default 0.' }),
    ),
    progressDeadlineSeconds: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 604800,
        description: 'How long a rollout or scaling may go without progress before Progressing turns False (ProgressDeadlineExceeded). Default 600.',
      }),
    ),
    revisionHistoryLimit: Type.Optional(
      Type.Integer({
        minimum: 0,
        description: 'Upper bound on old revisions kept. A VMSet keeps none (a revision is a hash label on each VM), so every limit holds.',
      }),
    ),
    ordinals: Type.Optional(
      Type.Object(
        { start: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000000, description: 'The first ordinal of VM names (<set>-<ordinal>). Default 0.' })) },
        { additionalProperties: false, description: 'How VMs are numbered.' },
      ),
    ),
    serviceName: Type.Optional(Type.String({ maxLength: 63, description: `A governing Service (StatefulSet style). ${UNSUPPORTED}` })),
    volumeClaimTemplates: Type.Optional(Type.Array(ClaimTemplate, { maxItems: 16, description: `PersistentVolumeClaims per VM. ${UNSUPPORTED}` })),
    persistentVolumeClaimRetentionPolicy: Type.Optional(
      Type.Object(
        {
          whenDeleted: Type.Optional(StringEnum(['Retain', 'Delete'] as const, { description: 'What happens to the claims when the set is deleted.' })),
          whenScaled: Type.Optional(StringEnum(['Retain', 'Delete'] as const, { description: 'What happens to the claims of VMs removed by scaling down.' })),
        },
        { additionalProperties: false, description: `The claims' lifetime. ${UNSUPPORTED}` },
      ),
    ),
  },
  {
    additionalProperties: false,
    description: 'A set of VirtualMachines made from one template.',
    ...celRules({
      rule: '!has(self.updateStrategy) || !has(self.updateStrategy.rollingUpdate) || !has(self.updateStrategy.type) || self.updateStrategy.type == "RollingUpdate"',
      message: 'updateStrategy.rollingUpdate goes with type RollingUpdate',
    }),
  },
);
export type VMSetSpec = Static<typeof VMSetSpec>;

const Count = (description: string) => Type.Integer({ minimum: 0, description });

export const VMSetVMStatus = Type.Object(
  {
    name: { ...ObjectName, description: 'The VirtualMachine.' },
    phase: Type.Optional(Type.String({ maxLength: 32, description: 'Its phase.' })),
    ready: Type.Boolean({ description: 'Ready at its current spec.' }),
    revision: Type.Optional(Type.String({ maxLength: 63, description: 'The template revision it was made or last updated from.' })),
    message: Type.Optional(Type.String({ maxLength: 1024, description: 'Why it is not Ready, when it is not.' })),
    generation: Type.Optional(Type.Integer({ minimum: 0, description: 'The VirtualMachine\'s generation when this was observed.' })),
    readySince: Type.Optional(Type.String({ maxLength: 64, description: 'When it was first seen Ready at that generation (RFC 3339): minReadySeconds count from here.' })),
  },
  { additionalProperties: false, description: 'One VM of the set.' },
);

export const VMSetStatus = Type.Object(
  {
    ...CommonStatusFields,
    replicas: Type.Optional(Count('VMs of the set that exist and are not being deleted.')),
    readyReplicas: Type.Optional(Count('VMs that are Ready at their current spec.')),
    availableReplicas: Type.Optional(Count('VMs Ready for at least minReadySeconds.')),
    updatedReplicas: Type.Optional(Count('VMs at the update revision.')),
    currentReplicas: Type.Optional(Count('VMs at the current revision.')),
    currentRevision: Type.Optional(Type.String({ maxLength: 63, description: 'The revision every VM was at when the last rollout completed.' })),
    updateRevision: Type.Optional(Type.String({ maxLength: 63, description: 'The revision of the template: <set>-<hash of the template>.' })),
    selector: Type.Optional(Type.String({ maxLength: 4096, description: 'The label selector of the VMs as a string (the scale subresource\'s labelSelectorPath).' })),
    progress: Type.Optional(
      Type.Object(
        {
          since: Type.String({ maxLength: 64, description: 'When the set last made progress (RFC 3339).' }),
          signature: Type.String({ maxLength: 128, description: 'What the progress was measured on (revision and counts).' }),
        },
        { additionalProperties: false, description: 'The progress deadline\'s bookkeeping.' },
      ),
    ),
    vmStatus: Type.Optional(Type.Array(VMSetVMStatus, { maxItems: MAX_REPLICAS * 2, description: 'The VMs of the set, by name.' })),
  },
  { additionalProperties: false, description: 'What the set amounts to, from its VMs.' },
);

export const VMSetKind: KindDefinition = {
  kind: 'VMSet',
  plural: 'vmsets',
  // `vmset` is the singular (and upstream's short name): `kubectl get vmset` works.
  singular: 'vmset',
  shortNames: ['vrset'],
  description: 'A set of VirtualMachines made from one template: scaled, and updated by rolling updates gated on readiness.',
  spec: VMSetSpec,
  status: VMSetStatus,
  scale: { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' },
  printerColumns: [
    { name: 'Desired', type: 'integer', jsonPath: '.spec.replicas' },
    { name: 'Ready', type: 'integer', jsonPath: '.status.readyReplicas' },
    { name: 'Updated', type: 'integer', jsonPath: '.status.updatedReplicas' },
    { name: 'Available', type: 'integer', jsonPath: '.status.availableReplicas' },
    AGE_COLUMN,
    { name: 'Revision', type: 'string', jsonPath: '.status.updateRevision', priority: 1 },
  ],
};

export const VMSetObject = ResourceObject('VMSet', VMSetSpec);
export type VMSetObject = Static<typeof VMSetObject>;
