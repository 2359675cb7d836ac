// Parsing of the quantity and duration strings that the schemas admit. Pure functions, no I/O.

// Kubernetes resource.Quantity: a signed decimal, then a binary suffix, a decimal SI suffix or
// an exponent ("4Gi", "1.5G", "500m", "1e9"). Ours are byte counts: no sign, whole bytes (rounded up).
const QUANTITY = /^\+?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$/;

/** The quantity pattern the schemas admit (apimachinery's, without a minus sign). */
export const QUANTITY_PATTERN = '^\\+?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$';

const MULTIPLIERS: Record<string, number> = {
  '': 1,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
};

export const MiB = 2 ** 20;
export const GiB = 2 ** 30;

/**
 * Bytes in a quantity — a string such as "4Gi", or a plain number (int-or-string fields: a number
 * is bytes) — or undefined when it is not one. Fractions round up to a whole byte.
 */
export function parseQuantity(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  const match = QUANTITY.exec(value);
  if (!match) return undefined;
  const [, digits = '', suffix = ''] = match;
  const multiplier = /^[eE][+-]?[0-9]+$/.test(suffix) ? 10 ** Number(suffix.slice(1)) : MULTIPLIERS[suffix];
  if (multiplier === undefined) return undefined;
  const bytes = Math.ceil(Number(digits) * multiplier - 1e-9);
  return Number.isSafeInteger(bytes) && bytes >= 0 ? bytes : undefined;
}

/** A byte count in the largest binary unit that divides it exactly ("4Gi", "1536Mi", "10Ki"). */
export function formatBytes(bytes: number): string {
  for (const [suffix, size] of [['Ti', 2 ** 40], ['Gi', GiB], ['Mi', MiB], ['Ki', 2 ** 10]] as const) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${suffix}`;
  }
  return String(bytes);
}

// Go's time.ParseDuration, the format of metav1.Duration fields ("60s", "1m30s", "1.5h", "300ms").
const DURATION_PART = /([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)/g;
const DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
/** The duration pattern the schemas admit: one or more number-unit pairs, or "0". */
export const DURATION_PATTERN = '^(0|(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+)$';

/** Milliseconds in a Go duration such as "60s", "1m30s" or "1.5h" (rounded up), or undefined when it is not one. */
export function parseDuration(value: string): number | undefined {
  if (!new RegExp(DURATION_PATTERN).test(value)) return undefined;
  if (value === '0') return 0;
  let total = 0;
  for (const [, amount = '0', unit = 's'] of value.matchAll(DURATION_PART)) {
    total += Number(amount) * (DURATION_UNITS[unit] ?? 0);
  }
  return Math.ceil(total - 1e-9);
}
