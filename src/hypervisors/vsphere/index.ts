export { VsphereClient, sessionCookie, type ServiceContent, type VsphereClientOptions } from './client.js';
export {
  Secret,
  VsphereConfigError,
  describeConfig,
  normalizeEndpoint,
  vsphereConfigFromEnv,
  type PlacementDefaults,
  type VsphereConfig,
} from './config.js';
export { VSPHERE_CAPABILITIES, VsphereDriver, type VsphereDriverOptions } from './driver.js';

import { vsphereConfigFromEnv } from './config.js';
import { VsphereDriver, type VsphereDriverOptions } from './driver.js';

/** The driver a provider runtime serves, configured from its environment (VSPHERE_* variables). */
export function vsphereDriverFromEnv(env: Record<string, string | undefined>, options: VsphereDriverOptions = {}): VsphereDriver {
  return new VsphereDriver(vsphereConfigFromEnv(env), options);
}
