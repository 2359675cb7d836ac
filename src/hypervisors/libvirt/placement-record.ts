// A VM's PlacementRecord (its Kubernetes labels and placement order) in the domain's virtrigaud
// metadata, beside the owner: `<placement order='…' labels='{…}'/>`. It is written by the one
// `define` that makes the domain, so the record is readable from the moment the VM can be found at
// all, and every metadata rewrite (tags, completion of a pending create, freezing a clone source)
// rebuilds the element from the parsed metadata, so it keeps the record.
//
// The labels are one JSON object, keys sorted, with every character outside printable ASCII
// written as a `\uXXXX` escape: libxml2 prints non-ASCII attribute text as numeric character
// references (`virsh metadata` shows `&#xE9;&#x1F600;` for "é😀", checked on libvirt 9.0) and
// normalises a raw tab or newline in an attribute to a space, so only plain ASCII comes back from
// libvirt exactly as it was written. JSON escapes control characters itself.
//
// Reading is lenient: a record that does not parse is no record (the VM then counts as placed
// before any other), never an unreadable VM.

import { InvalidSpecError, type PlacementRecord } from '../../contracts/driver.js';

/**
 * What one record may take in the metadata. The whole metadata element reaches the host as one
 * argument of `virsh metadata --set` (tags.ts, names.ts), and Linux caps a single argument at
 * 128 KiB (MAX_ARG_STRLEN); this leaves the rest of the element ample room.
 */
export const RECORD_MAX_BYTES = 16 * 1024;

// What String() writes for a finite non-negative number; anything else was not written by us.
const ORDER = /^\d+(?:\.\d+)?(?:e[+-]\d+)?$/;

/** Whether the order can be recorded and read back exactly: a finite number, not negative. */
export function isRecordableOrder(order: number): boolean {
  return Number.isFinite(order) && order >= 0;
}

function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The record as the element's two attribute values (not yet XML-escaped). */
export function recordAttributes(record: PlacementRecord): { order: string; labels: string } {
  const sorted = Object.entries(record.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  // fromEntries defines each key as its own property, `__proto__` included.
  return { order: String(record.order), labels: asciiJson(Object.fromEntries(sorted)) };
}

/** Refuses, before anything is created, a record that would not read back or not fit. */
export function validatePlacementRecord(record: PlacementRecord): void {
  if (!isRecordableOrder(record.order)) throw new InvalidSpecError(`the placement order must be a number of at least 0, not ${record.order}`);
  const bad = Object.entries(record.labels).find((entry) => typeof entry[1] !== 'string');
  if (bad !== undefined) throw new InvalidSpecError(`label ${JSON.stringify(bad[0].slice(0, 100))} has no text value`);
  const { labels } = recordAttributes(record);
  if (labels.length > RECORD_MAX_BYTES) {
    throw new InvalidSpecError(`the VM's labels are too large to record on libvirt: they take ${labels.length} bytes of at most ${RECORD_MAX_BYTES}`);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The record from the element's attributes; undefined when they are absent or not one we wrote. */
export function parseRecord(order: string | undefined, labels: string | undefined): PlacementRecord | undefined {
  if (order === undefined || labels === undefined || !ORDER.test(order)) return undefined;
  const value = Number(order);
  if (!isRecordableOrder(value)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(labels);
  } catch {
    return undefined;
  }
  if (!isObject(parsed)) return undefined;
  const entries = Object.entries(parsed);
  if (!entries.every((entry): entry is [string, string] => typeof entry[1] === 'string')) return undefined;
  return { labels: Object.fromEntries(entries), order: value };
}
