// One table: every spec field whose meaning needs something of the driver, and which capability
// that is (or why no driver honours it). The VirtualMachine hook reads it to name, field by field,
// what a Provider cannot do before any hypervisor call (an Unsupported condition); the README's
// field table is generated from it (scripts/generate-readme.ts). A field not listed needs nothing
// of the driver (names, references, descriptions, values every driver honours).
import type { FieldRule, FieldUse, SourceBranch } from './normalize/common.js';
import { VIRTUALMACHINE_FIELDS } from './normalize/virtualmachine.js';
import { VMCLASS_FIELDS } from './normalize/vmclass.js';
import { VMIMAGE_FIELDS } from './normalize/vmimage.js';
import { VMNETWORKATTACHMENT_FIELDS } from './normalize/vmnetworkattachment.js';
import { PROVIDER_FIELDS } from './normalize/provider.js';
import { VMCLONE_FIELDS } from './normalize/vmclone.js';
import { VMSNAPSHOT_FIELDS } from './normalize/vmsnapshot.js';
import { VMSET_FIELDS } from './normalize/vmset.js';
import { VMPLACEMENTPOLICY_FIELDS } from './normalize/vmplacementpolicy.js';
import { VMMIGRATION_FIELDS } from './normalize/vmmigration.js';

export type SupportedKind = 'VirtualMachine' | 'VMClass' | 'VMImage' | 'VMNetworkAttachment' | 'VMClone' | 'VMSnapshot' | 'Provider' | 'VMSet' | 'VMPlacementPolicy' | 'VMMigration';

/** Each kind's rules live next to its normalize step. */
export const FIELD_SUPPORT: Readonly<Partial<Record<SupportedKind, readonly FieldRule[]>>> = {
  VirtualMachine: VIRTUALMACHINE_FIELDS,
  VMClass: VMCLASS_FIELDS,
  VMImage: VMIMAGE_FIELDS,
  VMNetworkAttachment: VMNETWORKATTACHMENT_FIELDS,
  Provider: PROVIDER_FIELDS,
  VMClone: VMCLONE_FIELDS,
  VMSnapshot: VMSNAPSHOT_FIELDS,
  VMSet: VMSET_FIELDS,
  VMPlacementPolicy: VMPLACEMENTPOLICY_FIELDS,
  VMMigration: VMMIGRATION_FIELDS,
};

/** The values at a dotted path (`[]`: every list item, `*`: every map value); absent ones left out. */
export function valuesAt(root: unknown, path: string): unknown[] {
  let current: unknown[] = [root];
  for (const step of path.split('.')) {
    const next: unknown[] = [];
    const each = step.endsWith('[]');
    const key = each ? step.slice(0, -2) : step;
    for (const node of current) {
      if (node === null || typeof node !== 'object' || Array.isArray(node)) continue;
      if (key === '*') {
        next.push(...Object.values(node));
        continue;
      }
      const value = (node as Record<string, unknown>)[key];
      if (value === undefined) continue;
      if (each) {
        if (Array.isArray(value)) next.push(...value);
      } else next.push(value);
    }
    current = next;
  }
  return current;
}

/**
 * The rules of `kind` that the object sets, as uses naming the field (with the value when the rule
 * is about values). `branchRead`: the per-hypervisor branch normalize read; rules of the others are skipped.
 */
export function fieldUses(kind: SupportedKind, object: unknown, branchRead?: SourceBranch): FieldUse[] {
  const uses: FieldUse[] = [];
  for (const rule of FIELD_SUPPORT[kind] ?? []) {
    if (rule.for !== undefined && rule.for !== branchRead) continue;
    if (rule.with !== undefined && valuesAt(object, rule.with).length === 0) continue;
    const values = valuesAt(object, rule.path).filter((value) => {
      if (rule.values !== undefined) return rule.values.includes(value as string | boolean | number);
      if (rule.when !== undefined) return rule.when.test(value);
      // A map or list that is empty sets nothing.
      if (Array.isArray(value)) return value.length > 0;
      if (value !== null && typeof value === 'object') return Object.keys(value).length > 0;
      return true;
    });
    if (values.length === 0) continue;
    const named = rule.values !== undefined && typeof values[0] !== 'boolean' ? `${rule.path}=${String(values[0])}` : rule.path;
    const path = rule.with === undefined ? named : `${named} with ${rule.with}`;
    const use: FieldUse = { path };
    if (rule.capability !== undefined) use.capability = rule.capability;
    if (rule.why !== undefined) use.why = rule.why;
    uses.push(use);
  }
  return uses;
}
