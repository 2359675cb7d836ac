// VMSet → the numbers its rollout works with. Pure and table-tested (test/contracts/vmset.test.ts).
import type { VMSetSpec } from '../crds/vmset.js';
import { normalizeVirtualMachine, type CanonicalVM } from './virtualmachine.js';
import { problem, type FieldRule, type Normalized } from './common.js';

export interface CanonicalSet {
  replicas: number;
  strategy: 'RollingUpdate' | 'OnDelete' | 'Recreate';
  /** Resolved against replicas: surge rounded up, unavailable rounded down, never both 0. */
  maxSurge: number;
  maxUnavailable: number;
  partition: number;
  orderedReady: boolean;
  minReadyMs: number;
  progressDeadlineMs: number;
  ordinalStart: number;
  /** The template's VM spec, read as the VM controller will read it. */
  vm: CanonicalVM;
}

const DEFAULT_PERCENT = '25%';
const DEFAULT_PROGRESS_DEADLINE_SECONDS = 600;

/** An int-or-percent of `total`: percentages rounded up or down, as Deployments do. */
export function scaledValue(value: number | string, total: number, roundUp: boolean): number | undefined {
  if (typeof value === 'number') return value >= 0 ? value : undefined;
  const match = /^(\d+)%$/.exec(value);
  if (!match) return undefined;
  const exact = (Number(match[1]) * total) / 100;
  return roundUp ? Math.ceil(exact) : Math.floor(exact);
}

export function normalizeVMSet(spec: VMSetSpec): Normalized<CanonicalSet> {
  const replicas = spec.replicas ?? 1;
  const strategy = spec.updateStrategy?.type ?? 'RollingUpdate';
  const rolling = spec.updateStrategy?.rollingUpdate ?? {};
  const vm = normalizeVirtualMachine(spec.template.spec);
  if (!vm.ok) return problem(`spec.template.${vm.problem}`);

  let maxSurge = 0;
  let maxUnavailable = replicas;
  if (strategy === 'RollingUpdate') {
    const surge = scaledValue(rolling.maxSurge ?? DEFAULT_PERCENT, replicas, true);
    const unavailable = scaledValue(rolling.maxUnavailable ?? DEFAULT_PERCENT, replicas, false);
    if (surge === undefined) return problem('spec.updateStrategy.rollingUpdate.maxSurge is not a number or a percentage');
    if (unavailable === undefined) return problem('spec.updateStrategy.rollingUpdate.maxUnavailable is not a number or a percentage');
    maxSurge = surge;
    // Nothing could move if neither may be used (as Deployments do).
    maxUnavailable = surge === 0 && unavailable === 0 ? 1 : unavailable;
  }
  return {
    ok: true,
    value: {
      replicas,
      strategy,
      maxSurge,
      maxUnavailable,
      partition: strategy === 'RollingUpdate' ? (rolling.partition ?? 0) : 0,
      orderedReady: rolling.podManagementPolicy === 'OrderedReady',
      minReadyMs: (spec.minReadySeconds ?? 0) * 1000,
      progressDeadlineMs: (spec.progressDeadlineSeconds ?? DEFAULT_PROGRESS_DEADLINE_SECONDS) * 1000,
      ordinalStart: spec.ordinals?.start ?? 0,
      vm: vm.value,
    },
  };
}

const NO_VOLUMES = 'a VM\'s disks are its own (spec.template.spec.disks); no PersistentVolumeClaims are made for VMs';

/** The VMSet fields a set of VMs cannot back (support.ts); the template's own fields are the VirtualMachine's rows. */
export const VMSET_FIELDS: readonly FieldRule[] = [
  { path: 'spec.serviceName', example: 'web', why: 'VMs get no per-VM DNS names from a governing Service' },
  { path: 'spec.volumeClaimTemplates', example: [{ spec: {} }], why: NO_VOLUMES },
  { path: 'spec.persistentVolumeClaimRetentionPolicy', example: { whenDeleted: 'Delete' }, why: NO_VOLUMES },
];
