// Who a PVE VM belongs to (DESIGN §5). Three records, written at create time:
// - tags `virtrigaud;vr-<uid>`: visible in `/cluster/resources`, so one list call finds an owner's
//   VM among thousands without reading each config;
// - a marker line in the description holding JSON: the authority for describe and for the owner
//   checks before every change, and the only durable record while a clone runs (the target has
//   `lock: clone` and no tags yet; PVE writes the description once the first drive is copied);
// - until the configuration step, a placeholder name naming the owner (see placeholderName).
// The marker also remembers which PVE slot holds which spec disk and NIC, whether the create
// still has a configuration step left (`state: configuring`), and the VM's PlacementRecord, which
// the configuration step also writes as tags next to the owner's (placement-record.ts), so the
// inventory lists every VM's record from the resource list alone.

import { InvalidSpecError, type CreateSpec, type Identity, type PlacementRecord } from '../../contracts/driver.js';
import { isRecordTag, parseRecord, recordTags } from './placement-record.js';
import { isRow, str } from './values.js';

export const OWNER_TAG = 'virtrigaud';
const MARKER_PREFIX = 'virtrigaud-owner:';

export interface Marker extends Identity {
  /** Spec disk name → PVE slot (`root` → `scsi0`). */
  disks: Record<string, string>;
  /** Spec NIC name → PVE slot (`lan` → `net0`). */
  nics: Record<string, string>;
  /** Present while the create (or clone) still has its configuration step to do. */
  state?: 'configuring';
  /** The record of the create that made the VM: what its placement tags are written from. */
  placement?: PlacementRecord;
}

// qemu-server's `description` (maxLength in the API schema), where the marker lives.
const DESCRIPTION_MAX = 8192;

/** The tag naming an owner. PVE tags match `[a-z0-9_][a-z0-9_\-+.]*` (pve-common JSONSchema pve-tag). */
export function ownerTag(uid: string): string {
  return `vr-${uid.toLowerCase().replace(/[^a-z0-9_\-+.]/g, '_')}`;
}

/**
 * The name a clone carries until its configuration step renames it. PVE's clone call takes a name
 * and a description but no tags, so between the end of the clone task (no lock any more) and the
 * configuration step this name is what the resource list shows of the owner: findByIdentity
 * reads the config of rows so named, and a lost create response never leads to a second clone.
 * A DNS name, as PVE requires: `vr-` and the UID.
 */
export function placeholderName(uid: string): string {
  return `vr-${uid.toLowerCase().replace(/[^a-z0-9-]/g, '-')}`.slice(0, 63).replace(/-+$/, '');
}

// What the API server makes a UID: a UUID, written lower-case.
const KUBERNETES_UID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * The owner UID a placeholder name names: the name of a clone whose configuration step has not
 * run, which still carries the tags PVE copied from its template or source VM, none of them its
 * own. Only the placeholder of a Kubernetes UID counts: a VM the user named so is not expected,
 * and a name like `vr-web` is an ordinary name.
 */
export function ownerFromPlaceholder(name: string): string | undefined {
  const uid = name.slice('vr-'.length);
  return name.startsWith('vr-') && KUBERNETES_UID.test(uid) ? uid : undefined;
}

/**
 * Tags as PVE stores them: `;`-separated since PVE 7.3, `,`/space-separated before. Case is kept
 * (a user's `Prod` stays `Prod`); ours are written lower-case, and PVE's default tag-style
 * compares case-insensitively, so finding ours compares lower-cased (hasOwnerTag, isIdentityTag).
 */
export function parseTags(value: string | undefined): string[] {
  if (value === undefined) return [];
  return value
    .split(/[;,\s]+/)
    .map((tag) => tag.trim())
    .filter((tag) => tag !== '');
}

/** Whether `tags` hold the tag naming `uid`, in any case. */
export function hasOwnerTag(tags: readonly string[], uid: string): boolean {
  const wanted = ownerTag(uid);
  return tags.some((tag) => tag.toLowerCase() === wanted);
}

/**
 * The owner UID the tags name, as ownerTag wrote it (a Kubernetes UID, a lower-case UUID, reads
 * back as it was). When several tags could be one (someone added a `vr-` tag by hand), the one
 * holding a Kubernetes UID, if only one does; otherwise undefined, as the list alone cannot tell
 * which one the marker names.
 */
export function ownerFromTags(tags: readonly string[]): string | undefined {
  const owners = [...new Set(tags.filter(isOwnerTagShaped).map((tag) => tag.toLowerCase().slice('vr-'.length)))];
  const candidates = owners.length > 1 ? owners.filter((uid) => KUBERNETES_UID.test(uid)) : owners;
  return candidates.length === 1 ? candidates[0] : undefined;
}

/** Whether a tag has the shape of an owner tag (`vr-<uid>`): not the record's tags. */
export function isOwnerTagShaped(tag: string): boolean {
  return tag.toLowerCase().startsWith('vr-') && !isRecordTag(tag);
}

/**
 * Whether a tag is, or could pass for, one of ours (`virtrigaud`, `vr-<uid>`, the record's): never a user's,
 * never reported as one. In any case, as PVE's default tag-style does not tell `VR-x` from `vr-x`.
 */
export function isIdentityTag(tag: string): boolean {
  const lower = tag.toLowerCase();
  return lower === OWNER_TAG || lower.startsWith('vr-');
}

/**
 * The user's tags in a VM's `tags`, as PVE keeps them (case included): ours left out,
 * deduplicated, sorted. PVE may store them in another order (datacenter `tag-style` ordering), so
 * they are only ever compared as a set.
 */
export function userTags(value: string | undefined): string[] {
  return [...new Set(parseTags(value).filter((tag) => !isIdentityTag(tag)))].sort();
}

/**
 * The whole `tags` value for an owner's VM: ours first (the record's too, when the VM has one),
 * then the user's. PVE stores them `;`-separated (send `%3B`, which URLSearchParams does).
 * Whatever else the VM carried (the template's tags, another owner's, a record tag someone
 * edited) is replaced: the spec lists every user tag, the marker holds the record.
 */
export function tagsFor(uid: string, user: readonly string[], record?: PlacementRecord): string {
  const ours = [OWNER_TAG, ownerTag(uid), ...(record === undefined ? [] : recordTags(record))];
  return [...ours, ...[...new Set(user)].filter((tag) => !isIdentityTag(tag)).sort()].join(';');
}

/**
 * Whether `value` already holds exactly `tagsFor(uid, user, record)`, in any order. Case counts: a
 * tag someone re-cased is written again as the spec has it.
 */
export function hasTags(value: string | undefined, uid: string, user: readonly string[], record?: PlacementRecord): boolean {
  const current = new Set(parseTags(value));
  const wanted = new Set(parseTags(tagsFor(uid, user, record)));
  return current.size === wanted.size && [...wanted].every((tag) => current.has(tag));
}

export function formatMarker(marker: Marker): string {
  const body: Record<string, unknown> = {
    uid: marker.uid,
    namespace: marker.namespace,
    name: marker.name,
    disks: marker.disks,
    nics: marker.nics,
  };
  if (marker.state !== undefined) body['state'] = marker.state;
  if (marker.placement !== undefined) body['placement'] = { labels: marker.placement.labels, order: marker.placement.order };
  return `${MARKER_PREFIX}${JSON.stringify(body)}`;
}

/**
 * Refuses a marker the description cannot hold (a record with very many or very long labels)
 * before anything is cloned. Counted in UTF-8 bytes: whether PVE counts characters or bytes
 * depends on how its API server decodes the form, and bytes are never fewer.
 */
export function requireMarkerFits(marker: Marker): void {
  const bytes = Buffer.byteLength(formatMarker(marker), 'utf8');
  if (bytes > DESCRIPTION_MAX) {
    throw new InvalidSpecError(
      `the VM's labels are too large to record on Proxmox VE: the owner record takes ${bytes} bytes of the description's ${DESCRIPTION_MAX}`,
    );
  }
}

/**
 * The marker a create writes with its first step: the owner, the disks' slots, the NICs in spec
 * order, `state: configuring` and the placement record. Refused when the description cannot hold it.
 */
export function creationMarker(spec: Pick<CreateSpec, 'owner' | 'nics' | 'placementRecord'>, disks: Record<string, string>): Marker {
  const marker: Marker = {
    uid: spec.owner.uid,
    namespace: spec.owner.namespace,
    name: spec.owner.name,
    disks,
    nics: Object.fromEntries(spec.nics.map((nic, index) => [nic.name, `net${index}`])),
    state: 'configuring',
  };
  if (spec.placementRecord !== undefined) marker.placement = { labels: { ...spec.placementRecord.labels }, order: spec.placementRecord.order };
  requireMarkerFits(marker);
  return marker;
}

/** The description with its marker line set (other lines, an admin's notes, are kept). */
export function descriptionWithMarker(description: string | undefined, marker: Marker): string {
  const others = (description ?? '').split('\n').filter((line) => !line.startsWith(MARKER_PREFIX) && line.trim() !== '');
  return [formatMarker(marker), ...others].join('\n');
}

function stringMap(value: unknown): Record<string, string> {
  const result: Record<string, string> = {};
  if (!isRow(value)) return result;
  for (const [key, slot] of Object.entries(value)) {
    const text = str(slot);
    if (text !== undefined && /^[a-z]+\d+$/.test(text)) result[key] = text;
  }
  return result;
}

/** The marker in a VM description, or undefined for a VM we did not create. */
export function parseMarker(description: unknown): Marker | undefined {
  if (typeof description !== 'string') return undefined;
  const line = description.split('\n').find((candidate) => candidate.startsWith(MARKER_PREFIX));
  if (line === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(line.slice(MARKER_PREFIX.length)) as unknown;
  } catch {
    return undefined;
  }
  if (!isRow(parsed)) return undefined;
  const uid = str(parsed['uid']);
  const namespace = str(parsed['namespace']);
  const name = str(parsed['name']);
  if (uid === undefined || uid === '' || namespace === undefined || name === undefined) return undefined;
  const marker: Marker = { uid, namespace, name, disks: stringMap(parsed['disks']), nics: stringMap(parsed['nics']) };
  if (parsed['state'] === 'configuring') marker.state = 'configuring';
  const placement = parseRecord(parsed['placement']);
  if (placement !== undefined) marker.placement = placement;
  return marker;
}
