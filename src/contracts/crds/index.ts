import type { KindDefinition } from './common.js';
import { ProviderKind } from './provider.js';
import { VirtualMachineKind } from './virtualmachine.js';
import { VMClassKind } from './vmclass.js';
import { VMImageKind } from './vmimage.js';
import { VMNetworkAttachmentKind } from './vmnetworkattachment.js';
import { VMCloneKind } from './vmclone.js';
import { VMSetKind } from './vmset.js';
import { VMPlacementPolicyKind } from './vmplacementpolicy.js';
import { VMMigrationKind } from './vmmigration.js';
import { VMSnapshotKind, VMSnapshotScheduleKind } from './vmsnapshot.js';
import { MachineKind, ProxmoxClusterKind, ProxmoxNodeKind } from './viti.js';

export * from './common.js';
export * from './provider.js';
export * from './virtualmachine.js';
export * from './vmclass.js';
export * from './vmimage.js';
export * from './vmnetworkattachment.js';
export * from './vmsnapshot.js';
export * from './vmclone.js';
export * from './vmset.js';
export * from './vmplacementpolicy.js';
export * from './vmmigration.js';
export * from './viti.js';

/** Every kind this version serves, in the order manifests are written. */
export const KINDS: readonly KindDefinition[] = [
  VirtualMachineKind,
  VMClassKind,
  VMImageKind,
  VMNetworkAttachmentKind,
  ProviderKind,
  VMSnapshotKind,
  VMSnapshotScheduleKind,
  VMCloneKind,
  VMSetKind,
  VMPlacementPolicyKind,
  VMMigrationKind,
  ProxmoxClusterKind,
  ProxmoxNodeKind,
  MachineKind,
];
