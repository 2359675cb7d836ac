// cloud-init meta-data as a driver writes it: its own keys (instance-id, local-hostname) with the
// user's meta-data (VirtualMachine spec.metaData.cloudInit) laid over them key by key. The
// instance-id stays the driver's: cloud-init runs first-boot modules again whenever it changes,
// and a clone must not share its source's. The hook refuses user meta-data that is not a mapping
// or sets instance-id (src/contracts/guest-data.ts) before any call.
import { stringify } from 'yaml';
import { DRIVER_METADATA_KEYS, parseMetaData } from '../../contracts/guest-data.js';
import { InvalidSpecError } from '../../contracts/driver.js';

export function composeMetaData(generated: Record<string, unknown>, user: string | undefined): string {
  if (user === undefined) return stringify(generated);
  const parsed = parseMetaData(user);
  // The hook checked it; a runtime reached some other way still refuses rather than drops it.
  if (!parsed.ok) throw new InvalidSpecError(`cloud-init meta-data ${parsed.problem}`);
  const merged: Record<string, unknown> = { ...generated, ...parsed.value };
  for (const key of DRIVER_METADATA_KEYS) if (key in generated) merged[key] = generated[key];
  return stringify(merged);
}

