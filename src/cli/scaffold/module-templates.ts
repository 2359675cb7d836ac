// index.ts and config.ts of a new driver's skeleton: the entry a provider runtime calls
// (`<name>DriverFromEnv(env)`, like the other drivers) and the environment it is configured from.
import type { DriverNames } from './names.js';

export function indexTemplate(n: DriverNames): string {
  return `export { ${n.pascal}ConfigError, ${n.camel}ConfigFromEnv, type ${n.pascal}Config } from './config.js';
export { ${n.constant}_CAPABILITIES, ${n.pascal}Driver } from './driver.js';

import { ${n.camel}ConfigFromEnv } from './config.js';
import { ${n.pascal}Driver } from './driver.js';

/** The driver a provider runtime serves, configured from its environment (${n.constant}_* variables). */
export function ${n.camel}DriverFromEnv(env: Record<string, string | undefined>): ${n.pascal}Driver {
  return new ${n.pascal}Driver(${n.camel}ConfigFromEnv(env));
}
`;
}

export function configTemplate(n: DriverNames): string {
  return `// The provider runtime's environment → a validated ${n.pascal}Config. A provider that cannot work
// must say why at startup: every error names the variable, never the value of a secret.
//
// Add what the driver needs, each from its own ${n.constant}_* variable. Credentials: wrap them in
// Secret (../common/secret.js), so no error, log line or JSON dump can show them; the runtime
// reads each <NAME>_FILE into <NAME> and builds the driver again when the hypervisor refuses old
// credentials (../common/credential-files.js), so read them here, not later. Booleans, numbers and
// durations: envBoolean, envInteger, envDuration (../common/env.js); an HTTPS API's rate limit and
// pool: httpClientLimitsFromEnv(env, '${n.constant}', fail), with \`${n.key}: '${n.constant}'\` added to
// HTTP_DRIVER_ENV_PREFIX in src/contracts/crds/provider.ts so the Provider hook sets them.

import { InvalidSpecError } from '../../contracts/driver.js';
import { envValue, type Env } from '../common/env.js';

/** A configuration error; its message names the variable, never a secret's value. */
export class ${n.pascal}ConfigError extends InvalidSpecError {
  override readonly name = '${n.pascal}ConfigError';
}

export interface ${n.pascal}Config {
  /** ${n.constant}_ENDPOINT: where the hypervisor's API answers, as a URL. */
  endpoint: string;
}

function fail(message: string): never {
  throw new ${n.pascal}ConfigError(message);
}

/** Accepts any URL without credentials in it; narrow it to the schemes and paths ${n.pascal} speaks. */
function parseEndpoint(raw: string | undefined): string {
  if (raw === undefined) fail('${n.constant}_ENDPOINT is required');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    fail('${n.constant}_ENDPOINT must be a URL');
  }
  // A password in the URL would reach every log line and condition that shows the endpoint.
  if (url.username !== '' || url.password !== '') fail('${n.constant}_ENDPOINT must not hold credentials; give them in their own variables');
  return url.href;
}

export function ${n.camel}ConfigFromEnv(env: Env): ${n.pascal}Config {
  return { endpoint: parseEndpoint(envValue(env, '${n.constant}_ENDPOINT')) };
}
`;
}
