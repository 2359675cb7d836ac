// Reading a provider runtime's environment: the same rules for every driver's configuration.

export type Env = Record<string, string | undefined>;

/** The trimmed value; unset and empty are the same thing. */
export function envValue(env: Env, name: string): string | undefined {
  const raw = env[name]?.trim();
  return raw === undefined || raw === '' ? undefined : raw;
}

/** true/1/yes or false/0/no (any case); anything else is a configuration error raised by `fail`. */
export function envBoolean(env: Env, name: string, fallback: boolean, fail: (message: string) => never): boolean {
  const raw = envValue(env, name);
  if (raw === undefined) return fallback;
  const lower = raw.toLowerCase();
  if (lower === 'true' || lower === '1' || lower === 'yes') return true;
  if (lower === 'false' || lower === '0' || lower === 'no') return false;
  return fail(`${name} must be true or false`);
}
