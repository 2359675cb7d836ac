// Who a vSphere VM belongs to (DESIGN §5). Two records, both written by the clone itself:
// - extraConfig entries in the CloneSpec's config, so the VM carries them from the moment its
//   configuration exists: the authority for describe and for the owner check before every change;
// - a placeholder name, `vr-` and the owner UID (placeholderName), that the clone carries until the
//   configuration step renames it. vCenter knows a VM's name, and the vmx path it was created
//   under, before its `config` is readable ("often unavailable during the initial phases of virtual
//   machine creation", vSphere API) and while its datastore is inaccessible: they tell a VM that
//   may be this owner's from one that cannot be, and the running clone task's VmBeingClonedEvent
//   names it before vCenter has registered the VM at all.
// Spec names never identify a VM: vcsim accepts duplicate names, vCenter refuses them.
//
// `virtrigaud.state` is `configuring` from the clone until the configuration step (CPU, memory,
// disks, NICs, cloud-init, the spec's name) lands; that step sets it to `ready` in the same
// ReconfigVM_Task, so the VM reads as complete exactly when its configuration does.
// `virtrigaud.disks` maps the spec's disk names to controller slots (`1000:1`: controller key and
// unit, which vSphere keeps stable, unlike the order of device keys); `virtrigaud.nics` names the
// NICs in device-key order; `virtrigaud.nics.asked` says which NICs asked for a model or a VLAN:
// describe reports those back and no others, as `virtio` (the API's default model) and no VLAN
// mean "whatever the template's adapter and network have", which a reported value would contradict.

import type { Identity } from '../../contracts/driver.js';
import { child, textAt, type XmlElement } from './xml.js';

/** Every key below starts with it; user extraConfig under it is refused (guestinfo.ts). */
export const KEY_PREFIX = 'virtrigaud.';

export const KEY = {
  uid: 'virtrigaud.owner.uid',
  namespace: 'virtrigaud.owner.namespace',
  name: 'virtrigaud.owner.name',
  state: 'virtrigaud.state',
  disks: 'virtrigaud.disks',
  nics: 'virtrigaud.nics',
  /** What NICs asked for that describe reports back (nics.ts AskedNicSettings): `{"lan":["model","vlan"]}`. */
  nicSettings: 'virtrigaud.nics.asked',
  /** The PlacementRecord (placement-record.ts). */
  placementLabels: 'virtrigaud.placement.labels',
  placementOrder: 'virtrigaud.placement.order',
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

/** NIC name → the settings it asked for that describe reports (KEY.nicSettings); unreadable entries ask nothing. */
export function askedNicSettings(extraConfig: ReadonlyMap<string, string>): Record<string, ('model' | 'vlan')[]> {
  const raw = extraConfig.get(KEY.nicSettings);
  const result: Record<string, ('model' | 'vlan')[]> = {};
  if (raw === undefined || raw === '') return result;
  try {
    const parsed = JSON.parse(raw) as unknown;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return result;
    for (const [name, fields] of Object.entries(parsed)) {
      if (Array.isArray(fields)) result[name] = fields.filter((field): field is 'model' | 'vlan' => field === 'model' || field === 'vlan');
    }
  } catch {
    // An unreadable entry asks nothing.
  }
  return result;
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


/** The name a clone carries until its configuration step gives it the spec's name. */
export function placeholderName(uid: string): string {
  return `vr-${uid.toLowerCase().replace(/[^a-z0-9-]/g, '-')}`.slice(0, 80);
}

const PLACEHOLDER = /^vr-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

/**
 * The owner UID a placeholder name spells (Kubernetes UIDs are lower-case UUIDs, which
 * placeholderName keeps as they are), or undefined for any other name.
 */
export function placeholderOwner(name: string): string | undefined {
  return PLACEHOLDER.exec(name)?.[1];
}

/** The owner UID of the placeholder a VM's name or vmx path bears (see bearsPlaceholder), if any. */
export function placeholderOwnerOf(vm: { name: string; vmPathName: string | undefined }): string | undefined {
  const named = placeholderOwner(vm.name);
  if (named !== undefined) return named;
  const parts = (vm.vmPathName?.replace(/^\[[^\]]*\]\s*/, '') ?? '').split('/');
  const file = (parts.at(-1) ?? '').replace(/\.vmx$/, '');
  const directory = (parts.at(-2) ?? '').replace(/(?:_\d+| \(\d+\))$/, '');
  return placeholderOwner(file) ?? placeholderOwner(directory);
}

/**
 * Whether a VM's name, or the vmx path it was created under, says it was cloned for this owner.
 * vSphere names the VM's directory and vmx file after the name it was created with and keeps
 * them through renames; a directory already taken gets a suffix (`_1` on vCenter, ` (0)` on vcsim, NOTES).
 */
export function bearsPlaceholder(vm: { name: string; vmPathName: string | undefined }, uid: string): boolean {
  const placeholder = placeholderName(uid);
  if (vm.name === placeholder) return true;
  const path = vm.vmPathName?.replace(/^\[[^\]]*\]\s*/, '');
  if (path === undefined) return false;
  const parts = path.split('/');
  const file = parts.at(-1) ?? '';
  const directory = parts.at(-2) ?? '';
  return file === `${placeholder}.vmx` || directory === placeholder || directory.startsWith(`${placeholder}_`) || directory.startsWith(`${placeholder} (`);
}
