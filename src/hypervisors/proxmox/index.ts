export { ProxmoxClient, encodeParams, type Params, type ProxmoxClientOptions } from './client.js';
export {
  ProxmoxConfigError,
  Secret,
  describeConfig,
  normalizeEndpoint,
  proxmoxConfigFromEnv,
  type ProxmoxAuth,
  type ProxmoxConfig,
} from './config.js';
export { PROXMOX_CAPABILITIES, ProxmoxDriver, type ProxmoxDriverOptions } from './driver.js';
export { parseUpid, type Upid } from './upid.js';

import { ProxmoxDriver, type ProxmoxDriverOptions } from './driver.js';
import { proxmoxConfigFromEnv } from './config.js';

/** The driver a provider runtime serves, configured from its environment (PVE_* variables). */
export function proxmoxDriverFromEnv(env: Record<string, string | undefined>, options: ProxmoxDriverOptions = {}): ProxmoxDriver {
  return new ProxmoxDriver(proxmoxConfigFromEnv(env), options);
}
