// Reading a provider runtime's environment: the same rules for every driver's configuration.
import { HTTP_CLIENT_ENV } from '../../contracts/crds/provider.js';
import { parseDuration } from '../../contracts/quantity.js';
import type { HttpClientLimits } from './https-pool.js';

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

/** A whole number from min to max; anything else is a configuration error raised by `fail`. */
export function envInteger(env: Env, name: string, min: number, max: number, fail: (message: string) => never): number | undefined {
  const raw = envValue(env, name);
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < min || value > max) return fail(`${name} must be a whole number from ${min} to ${max}`);
  return value;
}

/** A Go duration ("30s", "5m", "1.5h") in milliseconds, at least 1 ms; anything else is a configuration error. */
export function envDuration(env: Env, name: string, fail: (message: string) => never): number | undefined {
  const raw = envValue(env, name);
  if (raw === undefined) return undefined;
  const ms = parseDuration(raw);
  if (ms === undefined || ms < 1) return fail(`${name} must be a duration such as 30s or 5m`);
  return ms;
}

/**
 * The HTTP client limits of a driver with an HTTPS API (the Provider's rateLimit and
 * connectionPooling, which the Provider hook writes as <PREFIX>_RATE_LIMIT_QPS, _RATE_LIMIT_BURST,
 * _MAX_CONNECTIONS, _CONNECT_TIMEOUT and _IDLE_TIMEOUT); undefined when none is set.
 */
export function httpClientLimitsFromEnv(env: Env, prefix: string, fail: (message: string) => never): HttpClientLimits | undefined {
  const variable = (suffix: string) => `${prefix}_${suffix}`;
  const limits: HttpClientLimits = {};
  const qps = envInteger(env, variable(HTTP_CLIENT_ENV.qps), 1, 1000, fail);
  const burst = envInteger(env, variable(HTTP_CLIENT_ENV.burst), 1, 2000, fail);
  if (qps !== undefined) limits.rateLimit = { qps, burst: burst ?? qps };
  else if (burst !== undefined) fail(`${variable(HTTP_CLIENT_ENV.burst)} needs ${variable(HTTP_CLIENT_ENV.qps)}`);
  const maxConnections = envInteger(env, variable(HTTP_CLIENT_ENV.maxConnections), 1, 100, fail);
  if (maxConnections !== undefined) limits.maxConnections = maxConnections;
  const connectTimeoutMs = envDuration(env, variable(HTTP_CLIENT_ENV.connectionTimeout), fail);
  if (connectTimeoutMs !== undefined) limits.connectTimeoutMs = connectTimeoutMs;
  const idleTimeoutMs = envDuration(env, variable(HTTP_CLIENT_ENV.idleTimeout), fail);
  if (idleTimeoutMs !== undefined) limits.idleTimeoutMs = idleTimeoutMs;
  return Object.keys(limits).length === 0 ? undefined : limits;
}
