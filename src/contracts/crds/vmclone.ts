import { Type, type Static } from '@sinclair/typebox';
import {
  AGE_COLUMN,
  CommonStatusFields,
  LocalObjectReference,
  ObjectName,
  READY_COLUMN,
  REASON_COLUMN,
  ResourceObject,
  StringEnum,
  celRules,
  type KindDefinition,
} from './common.js';
import { PowerState } from './virtualmachine.js';

const immutable = (what: string) => celRules({ rule: 'self == oldSelf', message: `${what} is immutable` });

export const VMCloneSpec = Type.Object(
  {
    sourceVMRef: { ...LocalObjectReference, ...immutable('sourceVMRef') },
    linkedClone: Type.Optional(
      Type.Boolean({
        default: true,
        ...immutable('linkedClone'),
        description: 'true: the clone shares the source\'s disks through a snapshot (copy-on-write); false: a full, independent copy.',
      }),
    ),
    target: Type.Optional(
      Type.Object(
        {
          name: Type.Optional({ ...ObjectName, ...immutable('target.name'), description: 'The clone VirtualMachine\'s name; default this VMClone\'s name.' }),
          powerState: Type.Optional({ ...PowerState, description: 'The clone\'s power state; default On.' }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type VMCloneSpec = Static<typeof VMCloneSpec>;

export const ClonePhase = StringEnum(['Pending', 'Cloning', 'Ready', 'Failed'] as const);

export const VMCloneStatus = Type.Object(
  {
    phase: Type.Optional(ClonePhase),
    targetRef: Type.Optional(Type.Object({ name: Type.String({ maxLength: 253 }) }, { additionalProperties: false })),
    sourceSnapshot: Type.Optional(Type.String({ maxLength: 512, description: 'The source snapshot a linked clone is based on, when the hypervisor uses one.' })),
    ...CommonStatusFields,
  },
  { additionalProperties: false },
);

export const VMCloneKind: KindDefinition = {
  kind: 'VMClone',
  plural: 'vmclones',
  singular: 'vmclone',
  shortNames: ['vrclone'],
  description:
    'Clones a VirtualMachine into a new VirtualMachine (its child) on the same Provider. The clone is independent of the ' +
    'source once created; deleting the VMClone deletes the clone.',
  spec: VMCloneSpec,
  status: VMCloneStatus,
  printerColumns: [
    { name: 'Source', type: 'string', jsonPath: '.spec.sourceVMRef.name' },
    { name: 'Target', type: 'string', jsonPath: '.status.targetRef.name' },
    { name: 'Linked', type: 'boolean', jsonPath: '.spec.linkedClone' },
    { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
    READY_COLUMN,
    AGE_COLUMN,
    REASON_COLUMN,
  ],
};

export const VMCloneObject = ResourceObject('VMClone', VMCloneSpec);
export type VMCloneObject = Static<typeof VMCloneObject>;
