import { Type, type Static } from '@sinclair/typebox';
import {
  AGE_COLUMN,
  CommonStatusFields,
  NetworkName,
  VlanID,
  READY_COLUMN,
  REASON_COLUMN,
  ResourceObject,
  StringEnum,
  celRules,
  type KindDefinition,
} from './common.js';

export const NicModel = StringEnum(['virtio', 'e1000', 'e1000e', 'rtl8139', 'vmxnet3'] as const);
export type NicModel = Static<typeof NicModel>;

export const VMNetworkAttachmentSpec = Type.Object(
  {
    bridge: Type.Optional({ ...NetworkName, description: 'Host bridge (vmbr0, br0) to attach to.' }),
    network: Type.Optional({ ...NetworkName, description: 'Named network (libvirt network, vSphere port group).' }),
    vlan: Type.Optional(VlanID),
    model: Type.Optional({ ...NicModel, default: 'virtio' }),
    mtu: Type.Optional(Type.Integer({ minimum: 576, maximum: 65520 })),
    firewall: Type.Optional(Type.Boolean({ description: 'Enable the hypervisor firewall on the NIC.' })),
    rateLimitMBps: Type.Optional(Type.Number({ minimum: 0, maximum: 100000, description: 'Bandwidth limit in MB/s.' })),
  },
  {
    additionalProperties: false,
    ...celRules({ rule: 'has(self.bridge) != has(self.network)', message: 'set exactly one of bridge and network' }),
  },
);
export type VMNetworkAttachmentSpec = Static<typeof VMNetworkAttachmentSpec>;

export const VMNetworkAttachmentStatus = Type.Object({ ...CommonStatusFields }, { additionalProperties: false });

export const VMNetworkAttachmentKind: KindDefinition = {
  kind: 'VMNetworkAttachment',
  plural: 'vmnetworkattachments',
  singular: 'vmnetworkattachment',
  shortNames: ['vrnet'],
  description: 'A network VirtualMachine NICs attach to, with its NIC settings.',
  spec: VMNetworkAttachmentSpec,
  status: VMNetworkAttachmentStatus,
  printerColumns: [
    { name: 'Bridge', type: 'string', jsonPath: '.spec.bridge' },
    { name: 'Network', type: 'string', jsonPath: '.spec.network' },
    { name: 'VLAN', type: 'integer', jsonPath: '.spec.vlan' },
    READY_COLUMN,
    AGE_COLUMN,
    REASON_COLUMN,
  ],
};

export const VMNetworkAttachmentObject = ResourceObject('VMNetworkAttachment', VMNetworkAttachmentSpec);
export type VMNetworkAttachmentObject = Static<typeof VMNetworkAttachmentObject>;
