// Checks on guest data the hook passes through to the guest (cloud-init meta-data, Ignition), made
// before any hypervisor call, and shared with the drivers that merge it. Messages never quote it.
import { parse } from 'yaml';

/** Top-level meta-data keys the driver owns: cloud-init reruns first boot when instance-id changes. */
export const DRIVER_METADATA_KEYS = ['instance-id'] as const;

export type Checked<T> = { ok: true; value: T } | { ok: false; problem: string };

/** The user's meta-data as a mapping, or why it is not one. */
export function parseMetaData(text: string): Checked<Record<string, unknown>> {
  let parsed: unknown;
  try {
    parsed = parse(text);
  } catch {
    return { ok: false, problem: 'is not YAML' };
  }
  if (parsed === null || parsed === undefined) return { ok: true, value: {} };
  if (typeof parsed !== 'object' || Array.isArray(parsed)) return { ok: false, problem: 'is not a YAML mapping' };
  const value = parsed as Record<string, unknown>;
  const owned = DRIVER_METADATA_KEYS.find((key) => key in value);
  if (owned !== undefined) return { ok: false, problem: `sets ${owned}, which the driver keeps (the VM's UID)` };
  return { ok: true, value };
}

const IGNITION_VERSION = /^[0-9]+\.[0-9]+\.[0-9]+(?:-[a-z0-9]+)?$/;

/** An Ignition config: a JSON object naming its spec version (ignition.version), as Ignition requires. */
export function checkIgnition(text: string): Checked<string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return { ok: false, problem: 'is not JSON (an Ignition config; Butane YAML must be transpiled first)' };
  }
  const ignition = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>)['ignition'] : undefined;
  const version = typeof ignition === 'object' && ignition !== null ? (ignition as Record<string, unknown>)['version'] : undefined;
  if (typeof version !== 'string' || !IGNITION_VERSION.test(version)) {
    return { ok: false, problem: 'has no ignition.version (e.g. "3.4.0")' };
  }
  return { ok: true, value: text };
}
