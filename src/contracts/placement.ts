// The rules of a VMPlacementPolicy as the scheduler reads them (src/hooks/placement/scheduler.ts).

export interface LabelRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: readonly string[];
}

export interface WeightedRequirement extends LabelRequirement {
  /** 1–100: how much a host matching (affinity) or not matching (anti-affinity) is worth. */
  weight: number;
}

export interface PlacementRules {
  /** Hosts a VM may go to; undefined: any. */
  nodeSelector?: readonly string[];
  /** Hard: a host qualifies only if some VM on it matches each requirement. */
  affinity: readonly LabelRequirement[];
  /** Hard: a host with a VM matching any requirement does not qualify. */
  antiAffinity: readonly LabelRequirement[];
  preferredAffinity: readonly WeightedRequirement[];
  preferredAntiAffinity: readonly WeightedRequirement[];
  maxVMsPerNode?: number;
  /** Per-host limits on the VMs of the host (all of them), e.g. the maxVMs of a ProxmoxNode. */
  maxVMsByHost?: Readonly<Record<string, number>>;
  /** What must stay free on the host once the VM is on it. */
  minFreeMemoryBytes?: number;
  minFreeCPU?: number;
  /** Soft: label keys whose value the new VM shares with fewer VMs on a host make that host better. */
  spreadBy: readonly string[];
}

