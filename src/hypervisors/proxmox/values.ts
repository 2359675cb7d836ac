// Lenient readers for what PVE sends back. Types drift between versions and endpoints (NOTES §12):
// `vmid` was a string on old servers, `template` was "", `memory` became a property string in 8.1,
// `nextid` and console ports are strings although the schema says integer. Every reader here
// accepts both spellings, so the rest of the driver sees one.

export type Row = Record<string, unknown>;

export function isRow(value: unknown): value is Row {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function rows(value: unknown): Row[] {
  return Array.isArray(value) ? value.filter(isRow) : [];
}

export function str(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

export function num(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined;
  if (typeof value === 'string' && value.trim() !== '') {
    const parsed = Number(value);
    return Number.isFinite(parsed) ? parsed : undefined;
  }
  return undefined;
}

/** PVE booleans arrive as 0/1, "0"/"1", "" (old servers) or JSON booleans. */
export function flag(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  const n = num(value);
  return n !== undefined && n !== 0;
}

/**
 * A PVE property string (`virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1`) as ordered pairs.
 * A part without `=` is the default key's value and comes out under `defaultKey`.
 */
export function parsePropertyString(value: string, defaultKey: string): Map<string, string> {
  const result = new Map<string, string>();
  for (const part of value.split(',')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq < 0) result.set(defaultKey, part);
    else result.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return result;
}

const SIZE_UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/** Bytes in a PVE disk size (`size=32G`, `3584M`, `104858K`, bare bytes), or undefined. */
export function parseDiskSize(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d+(?:\.\d+)?)([KMGT]?)$/i.exec(value.trim());
  if (!match) return undefined;
  const [, digits = '0', unit = ''] = match;
  const multiplier = SIZE_UNITS[unit.toUpperCase()];
  return multiplier === undefined ? undefined : Math.round(Number(digits) * multiplier);
}

/** The absolute size PVE's resize accepts (`\+?\d+(\.\d+)?[KMGT]?`), exact for the given bytes. */
export function formatDiskSize(bytes: number): string {
  for (const [unit, size] of [['T', 2 ** 40], ['G', 2 ** 30], ['M', 2 ** 20], ['K', 2 ** 10]] as const) {
    if (bytes % size === 0) return `${bytes / size}${unit}`;
  }
  return String(bytes);
}

/** `memory` is `[current=]<MiB>` since PVE 8.1 (a JSON string) and an integer before. */
export function parseMemoryMiB(value: unknown): number | undefined {
  const direct = num(value);
  if (direct !== undefined) return direct;
  if (typeof value !== 'string') return undefined;
  return num(parsePropertyString(value, 'current').get('current'));
}

/** The storage ID of a volume (`local-lvm:vm-120-disk-0` → `local-lvm`); undefined for paths and `none`. */
export function volumeStorage(volume: string): string | undefined {
  const colon = volume.indexOf(':');
  return colon > 0 ? volume.slice(0, colon) : undefined;
}
