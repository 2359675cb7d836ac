// What the configuration step writes into a VM's extraConfig beyond its identity: the guest's
// first-boot data in the guestinfo keys its agents read, and the user's own entries.
// - cloud-init's VMware datasource reads guestinfo.userdata and guestinfo.metadata, each with its
//   `.encoding` (cloud-init docs, "VMware" datasource); the meta-data is the driver's (instance-id,
//   local-hostname, the network config of static addresses: guest-network.ts) with the user's
//   laid over it (common/metadata.ts).
// - Ignition on VMware (Fedora CoreOS, RHCOS) reads guestinfo.ignition.config.data with its
//   `.encoding` (Ignition docs, "Supported platforms": vmware).
// - The user's entries pass through as they are, except keys that would change what the driver
//   wrote or reads back: the guest data keys above (and vendordata, which cloud-init also reads),
//   and the identity and state keys (identity.ts). vSphere treats extraConfig keys without regard
//   to case ("guestinfo.UserData" is guestinfo.userdata to the guest), so keys compare lower-cased.
// None of these values is ever put into a message: user-data, meta-data and Ignition configs may
// carry credentials, and a refusal names the key alone.

import { InvalidSpecError, type CreateSpec } from '../../contracts/driver.js';
import { checkIgnition, parseMetaData } from '../../contracts/guest-data.js';
import { composeMetaData } from '../common/metadata.js';
import { KEY_PREFIX } from './identity.js';

/** Lower-cased key prefixes the driver owns; a user key starting with one is refused. */
export const OWNED_KEY_PREFIXES = ['guestinfo.userdata', 'guestinfo.metadata', 'guestinfo.vendordata', 'guestinfo.ignition', KEY_PREFIX] as const;

// VMX option names (`disk.EnableUUID`, `scsi0:0.present`, `guestinfo.my-app`). Anything else,
// whitespace, `=` or quotes in particular, is no option vSphere knows and would fail the
// configuration after the clone.
const KEY_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,255}$/;

function base64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

/**
 * The guestinfo entries for cloud-init and Ignition; InvalidSpecError for data the guest could not
 * read. `network`: the meta-data keys of the static addresses (guest-network.ts), which the
 * user's meta-data may not set too.
 */
export function guestDataEntries(spec: CreateSpec, network?: Record<string, string>): [string, string][] {
  const entries: [string, string][] = [];
  if (spec.userData !== undefined) {
    entries.push(['guestinfo.userdata', base64(spec.userData)], ['guestinfo.userdata.encoding', 'base64']);
  }
  if (network !== undefined && spec.metaData !== undefined) {
    const parsed = parseMetaData(spec.metaData);
    const clash = parsed.ok ? Object.keys(network).find((key) => key in parsed.value) : undefined;
    if (clash !== undefined) throw new InvalidSpecError(`cloud-init meta-data sets '${clash}', which the NICs' static addresses set; give the addresses in one place`);
  }
  if (spec.userData !== undefined || spec.metaData !== undefined || network !== undefined) {
    const metadata = composeMetaData({ 'instance-id': spec.owner.uid, 'local-hostname': spec.name, ...network }, spec.metaData);
    entries.push(['guestinfo.metadata', base64(metadata)], ['guestinfo.metadata.encoding', 'base64']);
  }
  if (spec.ignition !== undefined) {
    // The hook checked it; a runtime reached some other way still refuses rather than boots a guest that cannot read it.
    const checked = checkIgnition(spec.ignition);
    if (!checked.ok) throw new InvalidSpecError(`the Ignition config ${checked.problem}`);
    entries.push(['guestinfo.ignition.config.data', base64(spec.ignition)], ['guestinfo.ignition.config.data.encoding', 'base64']);
  }
  return entries;
}

/** The user's extraConfig entries; InvalidSpecError naming the first key the driver cannot pass through. */
export function userExtraConfigEntries(spec: CreateSpec): [string, string][] {
  const entries = Object.entries(spec.extraConfig ?? {});
  const seen = new Map<string, string>();
  for (const [key] of entries) {
    if (!KEY_PATTERN.test(key)) throw new InvalidSpecError(`extraConfig key ${JSON.stringify(key)} is not a vSphere option name (letters, digits, _ . : -)`);
    const lower = key.toLowerCase();
    const owned = OWNED_KEY_PREFIXES.find((prefix) => lower.startsWith(prefix));
    if (owned !== undefined) throw new InvalidSpecError(`extraConfig key '${key}' is written by the driver (keys starting with ${owned}, in any case)`);
    const earlier = seen.get(lower);
    if (earlier !== undefined) throw new InvalidSpecError(`extraConfig keys '${earlier}' and '${key}' are the same key on vSphere, which ignores case`);
    seen.set(lower, key);
  }
  return entries;
}
