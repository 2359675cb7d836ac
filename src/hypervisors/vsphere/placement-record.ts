// A VM's PlacementRecord (its Kubernetes labels and placement order) in two extraConfig entries
// next to its identity, written by the CloneSpec itself, so the record exists from the moment the
// VM's configuration does and the inventory reads it from the VM list it already makes:
// - `virtrigaud.placement.labels`: the labels as a JSON object, keys sorted;
// - `virtrigaud.placement.order`: the order as a decimal number.
//
// Every clone writes both, empty when there is no record: a clone copies its source's extraConfig
// on vCenter (a template made from one of our VMs, or the source of a Driver clone), and an empty
// value removes a key there, so a copy never carries another VM's record.
//
// The JSON is ASCII: every other character is a `\u` escape. JSON.stringify escapes lone
// surrogates and control characters but not U+FFFE or U+FFFF, which XML 1.0 cannot carry in the
// SOAP body; escaped, any string travels, and the size bound below counts bytes and characters alike.
// Both keys start with `virtrigaud.`, so a user's extraConfig can never set them (guestinfo.ts),
// and no user extraConfig is read back from a VM: nothing reports or removes them as drift.
// Reading is lenient: a value that does not decode records nothing, never an error.

import { InvalidSpecError, type PlacementRecord } from '../../contracts/driver.js';
import { KEY } from './identity.js';

/**
 * The largest labels value written, in bytes (ASCII: characters too). Kubernetes bounds each label
 * (63-character names and values, 253-character prefixes) but not their number, and every
 * inventory reads every VM's extraConfig: a bounded record keeps that list small. 8 KiB is what
 * the Proxmox driver's record fits in too (a PVE description).
 */
export const MAX_LABELS_BYTES = 8192;

/** What String() writes for a finite non-negative number; anything else is not one of ours. */
const ORDER_TEXT = /^\d+(?:\.\d+)?(?:e[+-]\d+)?$/;

function isRecordableOrder(order: number): boolean {
  return Number.isFinite(order) && order >= 0;
}

function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(/[^\x20-\x7e]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function labelsText(labels: Readonly<Record<string, string>>): string {
  const sorted = Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  // fromEntries defines each key as its own property, `__proto__` included.
  return asciiJson(Object.fromEntries(sorted));
}

/**
 * The extraConfig entries for a CloneSpec: the record, or both keys empty without one.
 * InvalidSpecError for a record that cannot be written and read back as it is.
 */
export function placementEntries(record: PlacementRecord | undefined): [string, string][] {
  if (record === undefined) {
    return [
      [KEY.placementLabels, ''],
      [KEY.placementOrder, ''],
    ];
  }
  if (!isRecordableOrder(record.order)) throw new InvalidSpecError(`the placement order must be a finite number, not negative (${String(record.order)})`);
  const labels = labelsText(record.labels);
  if (labels.length > MAX_LABELS_BYTES) {
    throw new InvalidSpecError(`the VM's labels take ${labels.length} bytes in the placement record; vSphere records at most ${MAX_LABELS_BYTES}`);
  }
  return [
    [KEY.placementLabels, labels],
    [KEY.placementOrder, String(record.order)],
  ];
}

function labelsOf(raw: string | undefined): Record<string, string> {
  if (raw === undefined || raw === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return {};
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return {};
  const entries = Object.entries(parsed);
  return entries.every((entry): entry is [string, string] => typeof entry[1] === 'string') ? Object.fromEntries(entries) : {};
}

function orderOf(raw: string | undefined): number | undefined {
  if (raw === undefined || !ORDER_TEXT.test(raw)) return undefined;
  const order = Number(raw);
  return isRecordableOrder(order) ? order : undefined;
}

/** The record a VM's extraConfig holds: labels (empty when there are none) and the order, if any. */
export function recordOf(extraConfig: ReadonlyMap<string, string>): { labels: Record<string, string>; order?: number } {
  const labels = labelsOf(extraConfig.get(KEY.placementLabels));
  const order = orderOf(extraConfig.get(KEY.placementOrder));
  return order === undefined ? { labels } : { labels, order };
}
