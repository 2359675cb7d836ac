// The kinds vrtg reads and writes, reading fields out of the JSON kubectl prints, JSON merge
// patches (RFC 7386, what `kubectl patch --type merge` sends), and the check every object and
// patched object passes before kubectl is called: the same TypeBox schemas the CRDs are made from.
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { API_VERSION } from '../../contracts/crds/common.js';
import { VirtualMachineObject } from '../../contracts/crds/virtualmachine.js';
import { VMCloneObject } from '../../contracts/crds/vmclone.js';
import { VMSetObject } from '../../contracts/crds/vmset.js';
import { VMSnapshotObject } from '../../contracts/crds/vmsnapshot.js';
import { CliError, EXIT } from '../common.js';

export { API_VERSION };

export interface KindInfo {
  kind: string;
  /**
   * Always the full resource name: `vmsnapshot` and `vmclone` are KubeVirt's short names too, and
   * kubectl may pick KubeVirt's.
   */
  resource: string;
  /** How objects are named to people: `virtualmachine/web`. */
  singular: string;
  schema: TSchema;
}

export const VM: KindInfo = { kind: 'VirtualMachine', resource: 'virtualmachines.infra.virtrigaud.io', singular: 'virtualmachine', schema: VirtualMachineObject };
export const SNAPSHOT: KindInfo = { kind: 'VMSnapshot', resource: 'vmsnapshots.infra.virtrigaud.io', singular: 'vmsnapshot', schema: VMSnapshotObject };
export const CLONE: KindInfo = { kind: 'VMClone', resource: 'vmclones.infra.virtrigaud.io', singular: 'vmclone', schema: VMCloneObject };
export const VMSET: KindInfo = { kind: 'VMSet', resource: 'vmsets.infra.virtrigaud.io', singular: 'vmset', schema: VMSetObject };

export const ref = (kind: KindInfo, name: string): string => `${kind.singular}/${name}`;

export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The value at `path` below `value`, or undefined where any step is missing. */
export function field(value: unknown, ...path: (string | number)[]): unknown {
  let current = value;
  for (const step of path) {
    if (typeof step === 'number') current = Array.isArray(current) ? (current[step] as unknown) : undefined;
    else current = isObject(current) ? current[step] : undefined;
  }
  return current;
}

/** A scalar field as text (numbers and booleans too), else undefined. */
export function text(value: unknown, ...path: (string | number)[]): string | undefined {
  const found = field(value, ...path);
  return typeof found === 'string' || typeof found === 'number' || typeof found === 'boolean' ? String(found) : undefined;
}

export function list(value: unknown, ...path: (string | number)[]): unknown[] {
  const found = field(value, ...path);
  return Array.isArray(found) ? (found as unknown[]) : [];
}

/** The items of a `kubectl get -o json` answer (a List), or the one object it printed. */
export function items(answer: unknown): unknown[] {
  return isObject(answer) && Array.isArray(answer['items']) ? (answer['items'] as unknown[]) : [answer];
}

/** RFC 7386: objects merge key by key, null removes a key, anything else replaces. */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch);
  const result: JsonObject = isObject(target) ? structuredClone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = applyMergePatch(result[key], value);
  }
  return result;
}

/** A JSON pointer (`/spec/disks/0/size`) as people write the field (`spec.disks[0].size`). */
export function fieldPath(pointer: string): string {
  const steps = pointer
    .split('/')
    .slice(1)
    .map((step) => step.replace(/~1/g, '/').replace(/~0/g, '~'));
  return steps.reduce((path, step) => {
    if (/^\d+$/.test(step)) return `${path}[${step}]`;
    if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(step)) return path === '' ? step : `${path}.${step}`;
    return `${path}[${JSON.stringify(step)}]`;
  }, '');
}

interface Problem {
  path: string;
  message: string;
}

function problems(kind: KindInfo, object: unknown): Problem[] {
  return [...Value.Errors(kind.schema, object)].map((error) => {
    const enumValues = (error.schema as { enum?: unknown }).enum;
    const message = Array.isArray(enumValues) ? `must be one of ${enumValues.map((v) => JSON.stringify(v)).join(', ')}` : error.message;
    const shown = JSON.stringify(error.value);
    const got = error.value !== undefined && typeof error.value !== 'object' && shown.length <= 80 ? ` (got ${shown})` : '';
    return { path: fieldPath(error.path) || '(the object)', message: `${message}${got}` };
  });
}

function refuse(kind: KindInfo, name: string, problem: Problem): never {
  throw new CliError(`refusing to write ${ref(kind, name)}: ${problem.path}: ${problem.message}`, EXIT.usage);
}

/** A new object must be one the CRD accepts; the first field that is not is named. */
export function checkObject(kind: KindInfo, object: unknown): void {
  const [first] = problems(kind, object);
  if (first !== undefined) refuse(kind, text(object, 'metadata', 'name') ?? '?', first);
}

/**
 * The object a patch makes of `current` must be one the CRD accepts. Only what the patch breaks is
 * refused: a field the object already has wrong (written by an older CRD) is not this command's.
 */
export function checkPatched(kind: KindInfo, current: unknown, patched: unknown): void {
  const before = new Set(problems(kind, current).map((p) => `${p.path}\n${p.message}`));
  const introduced = problems(kind, patched).find((p) => !before.has(`${p.path}\n${p.message}`));
  if (introduced !== undefined) refuse(kind, text(current, 'metadata', 'name') ?? '?', introduced);
}
