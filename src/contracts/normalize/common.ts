// What every normalize step shares. Normalize is pure: a spec in either spelling (the seeds' or
// upstream VirtRigaud's) in, one canonical model out, or the one problem that keeps the spec from
// meaning anything. Which fields need which driver capability is one table, support.ts.
import type { Capability } from '../driver.js';

/**
 * A field an object sets whose meaning needs something of the driver: `capability` when some
 * driver may have it, undefined when no driver does (always Unsupported, said with `why`).
 */
export interface FieldUse {
  /** The field as the user wrote it, e.g. `spec.resourceLimits.cpuLimit` or `spec.storage.type`. */
  path: string;
  capability?: Capability;
  /** Why no driver honours it (only with capability undefined). */
  why?: string;
}

/**
 * One row of the field-support table (support.ts): a spec field whose meaning needs something of
 * the driver, and which capability that is, or why no driver honours it.
 */
export interface FieldRule {
  /** Dotted path below the object; `[]` steps into every item of a list, `*` into every map value. */
  path: string;
  /** The rule applies only to these values (compared as written: strings, booleans, numbers). */
  values?: readonly (string | boolean | number)[];
  /** The rule applies only when the object also sets this path (e.g. `spec.cloneFrom`). */
  with?: string;
  /** The rule applies only to values passing `test`; `text` says which, for the README. */
  when?: { text: string; test: (value: unknown) => boolean };
  /**
   * The field sits in the branch that describes one hypervisor (`spec.source.vsphere.*`): only a
   * driver reading that branch reads it (normalize says which branch it read), the others skip it.
   */
  for?: SourceBranch;
  capability?: Capability;
  /** Why no driver honours it, when no capability does. */
  why?: string;
  /** A value that triggers the rule, for rules without `values` (the table-driven Unsupported tests use it). */
  example?: unknown;
}

/** The hypervisors upstream's per-hypervisor branches describe (`source.vsphere`, `network.proxmox`, …). */
export type BranchType = 'vsphere' | 'libvirt' | 'proxmox';
/**
 * Every branch normalize may read: a hypervisor's own, or a transport every provider without a
 * branch of its own reads (`source.http`); `registry` and `dataVolume` no driver reads.
 */
export type SourceBranch = BranchType | 'http' | 'registry' | 'dataVolume';

export const NO_DRIVER = 'no driver offers it';

/**
 * The canonical model, or why there is none. `unsupported`: the object is valid but asks for
 * something no driver of this provider type does (e.g. a VMImage with only `source.vsphere` used
 * by a Proxmox VM); the problem then names what it holds. Without it, the object is invalid.
 */
export type Normalized<T> = { ok: true; value: T } | { ok: false; problem: string; unsupported?: true };

export function problem<T>(message: string): Normalized<T> {
  return { ok: false, problem: message };
}

/** A valid object this provider type cannot use: reported as Unsupported, not as an invalid spec. */
export function unsupported<T>(message: string): Normalized<T> {
  return { ok: false, problem: message, unsupported: true };
}

/** The uses no driver can honour, and those the driver's capabilities lack. */
export function unsupportedUses(uses: readonly FieldUse[], capabilities: Readonly<Record<Capability, boolean>>): FieldUse[] {
  return uses.filter((use) => use.capability === undefined || !capabilities[use.capability]);
}

/** One line naming the fields a driver cannot honour, for an Unsupported condition. */
export function describeUnsupported(owner: string, driverType: string, uses: readonly FieldUse[]): string {
  const fields = [...new Set(uses.map((use) => (use.capability === undefined && use.why ? `${use.path} (${use.why})` : use.path)))];
  return `${owner}: the ${driverType} provider cannot honour ${fields.join(', ')}`;
}
