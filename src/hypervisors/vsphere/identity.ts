// Who a vSphere VM belongs to (DESIGN §5): extraConfig entries written by the clone itself (the
// CloneSpec's config), so they exist the moment the VM does. Names are never used to identify a
// VM: vcsim accepts duplicate names, vCenter refuses them, and we depend on neither.
//
// `virtrigaud.state` is `configuring` from the clone until the configuration step (CPU, memory,
// disks, NICs, cloud-init) lands; that step sets it to `ready` in the same ReconfigVM_Task, so the
// VM reads as complete exactly when its configuration does. `virtrigaud.disks` maps the spec's
// disk names to controller slots (`1000:1`: controller key and unit, which vSphere keeps stable,
// unlike the order of device keys); `virtrigaud.nics` names the NICs in device-key order.

import type { Identity } from '../../contracts/driver.js';
import { child, textAt, type XmlElement } from './xml.js';

export const KEY = {
  uid: 'virtrigaud.owner.uid',
  namespace: 'virtrigaud.owner.namespace',
  name: 'virtrigaud.owner.name',
  state: 'virtrigaud.state',
  disks: 'virtrigaud.disks',
  nics: 'virtrigaud.nics',
} as const;

export type CreateState = 'configuring' | 'ready';

/** `config.extraConfig` (ArrayOfOptionValue) as a map. */
export function extraConfigMap(value: XmlElement | undefined): Map<string, string> {
  const map = new Map<string, string>();
  for (const option of value?.children ?? []) {
    const key = textAt(option, 'key');
    if (key !== undefined) map.set(key, child(option, 'value')?.text ?? '');
  }
  return map;
}

export function ownerOf(extraConfig: ReadonlyMap<string, string>): Identity | undefined {
  const uid = extraConfig.get(KEY.uid);
  if (uid === undefined || uid === '') return undefined;
  return { uid, namespace: extraConfig.get(KEY.namespace) ?? '', name: extraConfig.get(KEY.name) ?? '' };
}

export function stateOf(extraConfig: ReadonlyMap<string, string>): CreateState | undefined {
  const state = extraConfig.get(KEY.state);
  return state === 'configuring' || state === 'ready' ? state : undefined;
}

export function namesOf(extraConfig: ReadonlyMap<string, string>, key: string): string[] {
  const raw = extraConfig.get(key);
  if (raw === undefined || raw === '') return [];
  try {
    const parsed = JSON.parse(raw) as unknown;
    return Array.isArray(parsed) ? parsed.filter((name): name is string => typeof name === 'string') : [];
  } catch {
    return [];
  }
}

/** Disk name → `controllerKey:unitNumber`. */
export function diskSlotsOf(extraConfig: ReadonlyMap<string, string>): Record<string, string> {
  const raw = extraConfig.get(KEY.disks);
  const result: Record<string, string> = {};
  if (raw === undefined || raw === '') return result;
  try {
    const parsed = JSON.parse(raw) as unknown;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return result;
    for (const [name, slot] of Object.entries(parsed)) if (typeof slot === 'string' && /^-?\d+:\d+$/.test(slot)) result[name] = slot;
  } catch {
    // An unreadable entry names nothing.
  }
  return result;
}

export function slotOf(disk: { controllerKey: number; unitNumber: number | undefined }): string {
  return `${disk.controllerKey}:${disk.unitNumber ?? 0}`;
}

/** The identity entries for a CloneSpec's or ConfigSpec's extraConfig. */
export function identityEntries(owner: Identity): [string, string][] {
  return [
    [KEY.uid, owner.uid],
    [KEY.namespace, owner.namespace],
    [KEY.name, owner.name],
  ];
}

