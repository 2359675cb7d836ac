// VMPlacementPolicy: where the VMs that reference it may be created, enforced by the VirtualMachine
// hook (src/hooks/placement). The seed's shape (nodeSelector, antiAffinity, constraints
// {maxVMsPerNode, minFreeMemory}) applies unchanged; affinity, the preferred rules, spreadBy,
// minFreeCPU and the datastore constraints are ours. Upstream VirtRigaud's type declares much more
// that nothing enforces (zones, tolerations, security constraints): none of it is accepted here.
import { Type, type Static } from '@sinclair/typebox';
import { QUANTITY_PATTERN } from '../quantity.js';
import { AGE_COLUMN, CommonStatusFields, IntOrString, NetworkName, READY_COLUMN, REASON_COLUMN, ResourceObject, celRules, type KindDefinition } from './common.js';
import { LabelSelectorRequirement } from './core-v1.js';

const Requirements = (description: string) => Type.Array(LabelSelectorRequirement, { maxItems: 32, description });

const WeightedRequirement = Type.Object(
  {
    weight: Type.Integer({ minimum: 1, maximum: 100, description: 'What a host satisfying the requirement is worth, 1–100.' }),
    key: LabelSelectorRequirement.properties.key,
    operator: LabelSelectorRequirement.properties.operator,
    values: LabelSelectorRequirement.properties.values,
  },
  {
    additionalProperties: false,
    description: 'A label requirement with a weight.',
    ...celRules({
      rule: "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)",
      message: 'In and NotIn need at least one value; Exists and DoesNotExist take none',
    }),
  },
);

const Quantity = (description: string) => IntOrString({ pattern: QUANTITY_PATTERN, description });

export const PlacementConstraints = Type.Object(
  {
    maxVMsPerNode: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 100000, description: 'At most this many VMs on a host, counting every VM on it (ours and others).' }),
    ),
    minFreeMemory: Type.Optional(Quantity('Memory that must stay unallocated on the host once the VM is on it, e.g. 4Gi.')),
    minFreeCPU: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 100000, description: 'Host CPUs that must stay unallocated once the VM is on it.' }),
    ),
    datastores: Type.Optional(
      Type.Array({ ...NetworkName, description: 'A datastore.' }, {
        maxItems: 256,
        description:
          'The datastores (PVE storages, vSphere datastores) the VM\'s disks may go to. A VM naming none gets the allowed one with most free space.',
      }),
    ),
    minFreeStorage: Type.Optional(Quantity('Space that must stay free on the VM\'s datastore once its disks are on it, e.g. 100Gi.')),
  },
  { additionalProperties: false, description: 'Capacity limits each host (and datastore) must keep.' },
);

export const VMPlacementPolicySpec = Type.Object(
  {
    nodeSelector: Type.Optional(
      Type.Array({ ...NetworkName, description: 'A host.' }, { maxItems: 256, description: 'The hosts (PVE nodes, vSphere hosts) VMs may go to; any when unset.' }),
    ),
    affinity: Type.Optional(Requirements('Hard: a host qualifies only when, for each requirement, a VM on it has matching labels.')),
    antiAffinity: Type.Optional(Requirements('Hard: a host with a VM whose labels match any requirement does not qualify.')),
    preferredAffinity: Type.Optional(
      Type.Array(WeightedRequirement, { maxItems: 32, description: 'Soft: a host with a VM matching the requirement scores its weight.' }),
    ),
    preferredAntiAffinity: Type.Optional(
      Type.Array(WeightedRequirement, { maxItems: 32, description: 'Soft: a host with no VM matching the requirement scores its weight.' }),
    ),
    spreadBy: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 317, description: 'A label key.' }), {
        maxItems: 8,
        description:
          'Label keys to spread by: among the hosts that fit, those with fewer VMs sharing the new VM\'s value of each key come first ' +
          '(virtrigaud.io/vmset spreads each VMSet\'s replicas).',
      }),
    ),
    constraints: Type.Optional(PlacementConstraints),
  },
  { additionalProperties: false, description: 'Where VMs referencing this policy may be created. Read when a VM is created; a placed VM is never moved.' },
);
export type VMPlacementPolicySpec = Static<typeof VMPlacementPolicySpec>;

export const VMPlacementPolicyStatus = Type.Object(
  {
    vmCount: Type.Optional(Type.Integer({ minimum: 0, description: 'How many VirtualMachines of the namespace reference the policy.' })),
    hosts: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.String({ maxLength: 256, description: 'The host.' }),
            vms: Type.Integer({ minimum: 0, description: 'VMs referencing the policy that run there.' }),
          },
          { additionalProperties: false, description: 'One host and its VMs of this policy.' },
        ),
        { maxItems: 1024, description: 'Per host, the VMs referencing the policy, as their status reports them.' },
      ),
    ),
    ...CommonStatusFields,
  },
  { additionalProperties: false, description: 'Whether the policy is valid, and the VMs that use it.' },
);

export const VMPlacementPolicyKind: KindDefinition = {
  kind: 'VMPlacementPolicy',
  plural: 'vmplacementpolicies',
  singular: 'vmplacementpolicy',
  shortNames: ['vmpp'],
  description: 'Placement rules for the VirtualMachines that reference it (spec.placementRef).',
  spec: VMPlacementPolicySpec,
  status: VMPlacementPolicyStatus,
  printerColumns: [{ name: 'VMs', type: 'integer', jsonPath: '.status.vmCount' }, READY_COLUMN, AGE_COLUMN, REASON_COLUMN],
};

export const VMPlacementPolicyObject = ResourceObject('VMPlacementPolicy', VMPlacementPolicySpec);
export type VMPlacementPolicyObject = Static<typeof VMPlacementPolicyObject>;
