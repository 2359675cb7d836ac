// VMPlacementPolicy → the scheduler's rules. Pure; the quantities are the only thing the schema
// cannot check by itself.
import type { VMPlacementPolicySpec } from '../crds/vmplacementpolicy.js';
import { parseQuantity } from '../quantity.js';
import { problem, type FieldRule, type Normalized } from './common.js';
import type { LabelRequirement, PlacementRules, WeightedRequirement } from '../placement.js';

export interface CanonicalPolicy {
  rules: PlacementRules;
  /** Datastores the VM's disks may go to; undefined: any. */
  datastores?: string[];
  minFreeStorageBytes?: number;
}

function requirement(written: { key: string; operator: LabelRequirement['operator']; values?: string[] | undefined }): LabelRequirement {
  return written.values === undefined ? { key: written.key, operator: written.operator } : { key: written.key, operator: written.operator, values: [...written.values] };
}

function weighted(written: { weight: number; key: string; operator: LabelRequirement['operator']; values?: string[] | undefined }): WeightedRequirement {
  return { ...requirement(written), weight: written.weight };
}

export function normalizeVMPlacementPolicy(spec: VMPlacementPolicySpec): Normalized<CanonicalPolicy> {
  const constraints = spec.constraints ?? {};
  const rules: PlacementRules = {
    affinity: (spec.affinity ?? []).map(requirement),
    antiAffinity: (spec.antiAffinity ?? []).map(requirement),
    preferredAffinity: (spec.preferredAffinity ?? []).map(weighted),
    preferredAntiAffinity: (spec.preferredAntiAffinity ?? []).map(weighted),
    spreadBy: [...new Set(spec.spreadBy ?? [])],
  };
  if (spec.nodeSelector !== undefined) rules.nodeSelector = [...new Set(spec.nodeSelector)];
  if (constraints.maxVMsPerNode !== undefined) rules.maxVMsPerNode = constraints.maxVMsPerNode;
  if (constraints.minFreeCPU !== undefined) rules.minFreeCPU = constraints.minFreeCPU;
  if (constraints.minFreeMemory !== undefined) {
    const bytes = parseQuantity(constraints.minFreeMemory);
    if (bytes === undefined) return problem(`spec.constraints.minFreeMemory ${String(constraints.minFreeMemory)} is not a quantity of bytes`);
    rules.minFreeMemoryBytes = Math.ceil(bytes);
  }
  const value: CanonicalPolicy = { rules };
  if (constraints.datastores !== undefined) value.datastores = [...new Set(constraints.datastores)];
  if (constraints.minFreeStorage !== undefined) {
    const bytes = parseQuantity(constraints.minFreeStorage);
    if (bytes === undefined) return problem(`spec.constraints.minFreeStorage ${String(constraints.minFreeStorage)} is not a quantity of bytes`);
    value.minFreeStorageBytes = Math.ceil(bytes);
  }
  return { ok: true, value };
}

/** What a policy asks of the driver beyond placementPolicy itself (which spec.placementRef needs). */
export const VMPLACEMENTPOLICY_FIELDS: readonly FieldRule[] = [
  { path: 'spec.constraints.datastores', capability: 'placementDatastore', example: ['fast'] },
  { path: 'spec.constraints.minFreeStorage', capability: 'placementDatastore', example: '100Gi' },
];
