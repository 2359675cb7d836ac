// A VM's PlacementRecord (its Kubernetes labels and placement order) as PVE tags, so the inventory
// reads every VM's record from the one `/cluster/resources` list instead of a config per VM.
// The description marker holds the same record (identity.ts) and is the authority; the tags are
// written from it in every step that writes tags.
//
// A label is one tag, `vr-l-<hex key>-<hex value>`, each the lower-case hex of its UTF-8 bytes:
// pve-tag allows only `[a-z0-9_][a-z0-9_\-+.]*`, PVE's default tag-style folds case when it drops
// duplicates (get_unique_tags), and Kubernetes keys hold `/` and upper case. Hex has no `-`, so
// the separator is unambiguous, also for a key holding `=`. The order is `vr-o-<decimal>`.
// pve-tag has no length limit (pve-common JSONSchema, and none in the API schema); what bounds a
// record is the description's 8192 characters that the marker must fit in (identity.ts).
//
// Both start with `vr-`, so isIdentityTag keeps them out of the user's tags, and a user can never
// set one. Reading them is lenient: a tag that does not decode is skipped, never an error.

import type { PlacementRecord } from '../../contracts/driver.js';
import { isRow } from './values.js';

const LABEL_PREFIX = 'vr-l-';
const ORDER_PREFIX = 'vr-o-';
const LABEL_TAG = /^vr-l-((?:[0-9a-f]{2})*)-((?:[0-9a-f]{2})*)$/;
// What String() writes for a finite non-negative number; anything else is not one of ours.
const ORDER_TAG = /^vr-o-(\d+(?:\.\d+)?(?:e[+-]\d+)?)$/;

const utf8 = new TextDecoder('utf-8', { fatal: true });

function hex(text: string): string {
  return Buffer.from(text, 'utf8').toString('hex');
}

function unhex(text: string): string | undefined {
  try {
    return utf8.decode(Buffer.from(text, 'hex'));
  } catch {
    return undefined;
  }
}

/** Whether the order can be recorded and read back exactly: a finite number, not negative. */
export function isRecordableOrder(order: number): boolean {
  return Number.isFinite(order) && order >= 0;
}

/** The tags recording `record`, one per label (sorted by key) and one for the order. */
export function recordTags(record: PlacementRecord): string[] {
  const labels = Object.entries(record.labels)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => `${LABEL_PREFIX}${hex(key)}-${hex(value)}`);
  return [...labels, `${ORDER_PREFIX}${String(record.order)}`];
}

/**
 * Whether a tag is in the record's namespace (`vr-l-…`, `vr-o-…`), well-formed or not: never read
 * as an owner tag. An owner tag is `vr-` and the UID, and Kubernetes UIDs are hex UUIDs, which
 * never start with `l-` or `o-`.
 */
export function isRecordTag(tag: string): boolean {
  const lower = tag.toLowerCase();
  return lower.startsWith(LABEL_PREFIX) || lower.startsWith(ORDER_PREFIX);
}

function labelOf(tag: string): [string, string] | undefined {
  const match = LABEL_TAG.exec(tag.toLowerCase());
  if (match === null) return undefined;
  const key = unhex(match[1] ?? '');
  const value = unhex(match[2] ?? '');
  return key === undefined || value === undefined ? undefined : [key, value];
}

function orderOf(tag: string): number | undefined {
  const match = ORDER_TAG.exec(tag.toLowerCase());
  if (match === null) return undefined;
  const order = Number(match[1]);
  return isRecordableOrder(order) ? order : undefined;
}

/**
 * The record the tags carry: labels (empty when there are none) and the order, if any. Tags that
 * do not decode are skipped; a key or order tagged twice with different values (someone edited
 * the tags) is left out, as the list cannot tell which one was recorded.
 */
export function recordFromTags(tags: readonly string[]): { labels: Record<string, string>; order?: number } {
  const labels = new Map<string, string | null>();
  const orders = new Set<number>();
  for (const tag of tags) {
    const label = labelOf(tag);
    if (label !== undefined) {
      const [key, value] = label;
      const seen = labels.get(key);
      labels.set(key, seen === undefined || seen === value ? value : null);
      continue;
    }
    const order = orderOf(tag);
    if (order !== undefined) orders.add(order);
  }
  // fromEntries defines each key as its own property, `__proto__` included.
  const result: { labels: Record<string, string>; order?: number } = {
    labels: Object.fromEntries([...labels].filter((entry): entry is [string, string] => entry[1] !== null)),
  };
  const [order] = orders;
  if (orders.size === 1 && order !== undefined) result.order = order;
  return result;
}

/** The record in a marker's JSON (`{"labels": {…}, "order": n}`); undefined when it is not one. */
export function parseRecord(value: unknown): PlacementRecord | undefined {
  if (!isRow(value) || !isRow(value['labels'])) return undefined;
  const order = value['order'];
  if (typeof order !== 'number' || !isRecordableOrder(order)) return undefined;
  const entries = Object.entries(value['labels']);
  if (!entries.every((entry): entry is [string, string] => typeof entry[1] === 'string')) return undefined;
  return { labels: Object.fromEntries(entries), order };
}
