// Kubernetes core/v1 scheduling types (Affinity, Toleration, label selectors), typed field by field
// with Kubernetes' own validation; see core-v1.ts, which exports them with the rest.
import { Type, type Static } from '@sinclair/typebox';
import { StringEnum, celRules } from './common.js';

/** Label and annotation keys: an optional DNS-subdomain prefix and a name of at most 63 characters. */
const QualifiedKey = (description: string) => Type.String({ minLength: 1, maxLength: 317, description });
const LabelValue = (description: string) => Type.String({ maxLength: 63, description });

const LABEL_OPERATORS = ['In', 'NotIn', 'Exists', 'DoesNotExist'] as const;

export const LabelSelectorRequirement = Type.Object(
  {
    key: QualifiedKey('The label key the requirement is about.'),
    operator: StringEnum(LABEL_OPERATORS, {
      maxLength: 16,
      description: 'How the label relates to the values: In, NotIn, Exists or DoesNotExist.',
    }),
    values: Type.Optional(
      Type.Array(LabelValue('A label value.'), {
        description: 'The values for In and NotIn (at least one); empty for Exists and DoesNotExist.',
      }),
    ),
  },
  {
    additionalProperties: false,
    description: 'One requirement on a label: its key, an operator and, for In and NotIn, the values.',
    ...celRules({
      rule: "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : (!has(self.values) || size(self.values) == 0)",
      message: 'In and NotIn need at least one value; Exists and DoesNotExist take none',
    }),
  },
);

export const LabelSelector = Type.Object(
  {
    matchLabels: Type.Optional(
      Type.Record(Type.String(), LabelValue('The value the label must have.'), {
        description: 'Labels that must all be present with exactly these values.',
      }),
    ),
    matchExpressions: Type.Optional(
      Type.Array(LabelSelectorRequirement, { description: 'Requirements that must all hold (ANDed with matchLabels).' }),
    ),
  },
  { additionalProperties: false, description: 'Selects objects by their labels; an empty selector selects every object.' },
);

const NodeSelectorRequirement = Type.Object(
  {
    key: QualifiedKey('The node label (or, in matchFields, the node field) the requirement is about.'),
    operator: StringEnum([...LABEL_OPERATORS, 'Gt', 'Lt'] as const, {
      maxLength: 16,
      description: 'In, NotIn, Exists, DoesNotExist, or Gt and Lt (the one value is compared as an integer).',
    }),
    values: Type.Optional(
      Type.Array(Type.String({ maxLength: 253, description: 'A value (a label value, a node name, or an integer for Gt and Lt).' }), {
        description: 'At least one for In and NotIn, none for Exists and DoesNotExist, exactly one integer for Gt and Lt.',
      }),
    ),
  },
  {
    additionalProperties: false,
    description: 'One requirement on a node label or field.',
    ...celRules(
      {
        rule: "self.operator in ['In', 'NotIn'] ? (has(self.values) && size(self.values) > 0) : (self.operator in ['Gt', 'Lt'] ? (has(self.values) && size(self.values) == 1 && self.values[0].matches('^-?[0-9]+$')) : (!has(self.values) || size(self.values) == 0))",
        message: 'In and NotIn need at least one value, Gt and Lt exactly one integer, Exists and DoesNotExist none',
      },
    ),
  },
);

export const NodeSelectorTerm = Type.Object(
  {
    matchExpressions: Type.Optional(Type.Array(NodeSelectorRequirement, { description: 'Requirements on node labels.' })),
    matchFields: Type.Optional(
      Type.Array(NodeSelectorRequirement, { description: 'Requirements on node fields (metadata.name is the one Kubernetes supports).' }),
    ),
  },
  { additionalProperties: false, description: 'Requirements that must all hold for a node to match this term.' },
);

const Weight = Type.Integer({ minimum: 1, maximum: 100, description: 'How much matching this term counts, from 1 to 100.' });

export const NodeAffinity = Type.Object(
  {
    requiredDuringSchedulingIgnoredDuringExecution: Type.Optional(
      Type.Object(
        {
          nodeSelectorTerms: Type.Array(NodeSelectorTerm, {
            description: 'A node must match at least one of these terms (the terms are ORed).',
          }),
        },
        { additionalProperties: false, description: 'Nodes the pod may be scheduled on; pods already running stay when labels change.' },
      ),
    ),
    preferredDuringSchedulingIgnoredDuringExecution: Type.Optional(
      Type.Array(
        Type.Object(
          {
            weight: Weight,
            preference: { ...NodeSelectorTerm, description: 'The nodes this preference is about.' },
          },
          { additionalProperties: false, description: 'A weighted preference for nodes matching a term.' },
        ),
        { description: 'Nodes the scheduler prefers: the one with the highest sum of matching weights wins.' },
      ),
    ),
  },
  { additionalProperties: false, description: 'Which nodes the pod may or should run on, by node labels and fields.' },
);

export const PodAffinityTerm = Type.Object(
  {
    labelSelector: Type.Optional({ ...LabelSelector, description: 'The pods this term is about.' }),
    namespaceSelector: Type.Optional({
      ...LabelSelector,
      description: 'Namespaces, by their labels, whose pods the term considers (with namespaces: their union).',
    }),
    namespaces: Type.Optional(
      Type.Array(Type.String({ description: 'A namespace name.' }), {
        description: 'Namespaces whose pods the term considers; neither this nor namespaceSelector: the pod\'s own namespace.',
      }),
    ),
    topologyKey: Type.String({
      minLength: 1,
      maxLength: 317,
      description: 'Node label whose value defines "the same place" (e.g. kubernetes.io/hostname or topology.kubernetes.io/zone).',
    }),
    matchLabelKeys: Type.Optional(
      Type.Array(Type.String({ description: 'A label key of the incoming pod.' }), {
        description: 'Keys of the incoming pod\'s labels whose values are added to labelSelector as In requirements.',
      }),
    ),
    mismatchLabelKeys: Type.Optional(
      Type.Array(Type.String({ description: 'A label key of the incoming pod.' }), {
        description: 'Keys of the incoming pod\'s labels whose values are added to labelSelector as NotIn requirements.',
      }),
    ),
  },
  { additionalProperties: false, description: 'Pods (by labels and namespaces) and the topology in which the pod should be with or apart from them.' },
);

const PodAffinityRules = (what: string) =>
  Type.Object(
    {
      requiredDuringSchedulingIgnoredDuringExecution: Type.Optional(
        Type.Array(PodAffinityTerm, { description: `Terms that must all hold: the pod is scheduled only ${what}.` }),
      ),
      preferredDuringSchedulingIgnoredDuringExecution: Type.Optional(
        Type.Array(
          Type.Object(
            {
              weight: Weight,
              podAffinityTerm: { ...PodAffinityTerm, description: 'The pods and topology this preference is about.' },
            },
            { additionalProperties: false, description: 'A weighted preference.' },
          ),
          { description: `Terms the scheduler prefers: ${what}, when it can.` },
        ),
      ),
    },
    { additionalProperties: false, description: `Schedule the pod ${what}.` },
  );

export const Affinity = Type.Object(
  {
    nodeAffinity: Type.Optional(NodeAffinity),
    podAffinity: Type.Optional(PodAffinityRules('in the same topology as the pods the terms select')),
    podAntiAffinity: Type.Optional(PodAffinityRules('away from the pods the terms select, in their topology')),
  },
  { additionalProperties: false, description: 'Scheduling constraints: node affinity, pod affinity and pod anti-affinity.' },
);
export type Affinity = Static<typeof Affinity>;

export const Toleration = Type.Object(
  {
    key: Type.Optional(QualifiedKey('The taint key tolerated; empty with operator Exists tolerates every taint.')),
    operator: Type.Optional(
      StringEnum(['', 'Exists', 'Equal'] as const, {
        maxLength: 8,
        description: 'Equal (the default): the taint\'s value must equal value; Exists: any value.',
      }),
    ),
    value: Type.Optional(LabelValue('The taint value tolerated (operator Equal); empty for Exists.')),
    effect: Type.Optional(
      StringEnum(['', 'NoSchedule', 'PreferNoSchedule', 'NoExecute'] as const, {
        maxLength: 16,
        description: 'The taint effect tolerated: NoSchedule, PreferNoSchedule or NoExecute; empty tolerates every effect.',
      }),
    ),
    tolerationSeconds: Type.Optional(
      Type.Integer({ description: 'With effect NoExecute: how long the pod stays on a node once tainted; unset: for ever.' }),
    ),
  },
  {
    additionalProperties: false,
    description: 'Lets the pod be scheduled on (or stay on) nodes with a matching taint.',
    ...celRules(
      {
        rule: "(has(self.key) && self.key != '') || (has(self.operator) && self.operator == 'Exists')",
        message: 'an empty key needs operator Exists',
      },
      {
        rule: "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
        message: 'operator Exists takes no value',
      },
      {
        rule: "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
        message: 'tolerationSeconds needs effect NoExecute',
      },
    ),
  },
);
export type Toleration = Static<typeof Toleration>;
