// Parsing of the quantity and duration strings that the schemas admit. Pure functions, no I/O.

const QUANTITY = /^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/;

const MULTIPLIERS: Record<string, number> = {
  '': 1,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

export const MiB = 2 ** 20;
export const GiB = 2 ** 30;

/** Bytes in a quantity string, or undefined when it is not one. Fractions round up to a whole byte. */
export function parseQuantity(value: string): number | undefined {
  const match = QUANTITY.exec(value);
  if (!match) return undefined;
  const [, digits = '', suffix = ''] = match;
  const multiplier = MULTIPLIERS[suffix];
  if (multiplier === undefined) return undefined;
  const bytes = Math.ceil(Number(digits) * multiplier);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** A byte count in the largest binary unit that divides it exactly ("4Gi", "1536Mi", "10Ki"). */
export function formatBytes(bytes: number): string {
  for (const [suffix, size] of [['Ti', 2 ** 40], ['Gi', GiB], ['Mi', MiB], ['Ki', 2 ** 10]] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${suffix}`;
  }
  return String(bytes);
}

const DURATION_PART = /([0-9]+)(ms|s|m|h)/g;
const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds in a duration such as "60s" or "1m30s", or undefined when it is not one. */
export function parseDuration(value: string): number | undefined {
  if (!/^([0-9]+(ms|s|m|h))+$/.test(value)) return undefined;
  let total = 0;
  for (const [, amount = '0', unit = 's'] of value.matchAll(DURATION_PART)) {
    total += Number(amount) * (DURATION_UNITS[unit] ?? 0);
  }
  return total;
}
