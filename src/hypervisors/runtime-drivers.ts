// The drivers a provider runtime serves, built from its environment (PVE_*, VSPHERE_*, LIBVIRT_*
// and their _FILE forms): one place for `main.ts provider` and for tools that must use a
// hypervisor exactly as a runtime would (vcts).
import type { Registry } from 'prom-client';
import type { Driver } from '../contracts/driver.js';
import { CredentialReloadingDriver } from './common/credential-files.js';
import type { Env } from './common/env.js';
import { libvirtDriverFromEnv } from './libvirt/index.js';
import { proxmoxDriverFromEnv } from './proxmox/index.js';
import { vsphereDriverFromEnv } from './vsphere/index.js';

export type ClosableDriver = Driver & { close?: () => Promise<void> };

export interface RuntimeDriverOptions {
  /** Lines about credential reloads (never a credential). */
  log?: (message: string) => void;
  /** Debug lines of a driver (VMIDs, node names; never credentials). */
  debug?: (message: string) => void;
  /** The runtime's /metrics: the Proxmox client counts its API requests there. */
  metricsRegistry?: Registry;
}

interface RuntimeDriverKind {
  /** How the provider guide names the client in a startup failure. */
  client: string;
  fromEnv(env: Env, options: RuntimeDriverOptions): ClosableDriver;
}

export const RUNTIME_DRIVERS = {
  proxmox: {
    client: 'PVE',
    fromEnv: (env, options) =>
      proxmoxDriverFromEnv(env, {
        ...(options.debug === undefined ? {} : { debug: options.debug }),
        ...(options.metricsRegistry === undefined ? {} : { metricsRegistry: options.metricsRegistry }),
      }),
  },
  libvirt: {
    client: 'libvirt',
    // Its capabilities are this host's (OVMF, swtpm, KVM, …) only once a probe has answered, and
    // the runtime serves them before any readiness probe: one probe at once. A failed one changes
    // nothing; the readiness probes that follow try again.
    fromEnv: (env) => {
      const driver = libvirtDriverFromEnv(env);
      driver.probe({ signal: AbortSignal.timeout(30_000) }).catch(() => undefined);
      return driver;
    },
  },
  vsphere: { client: 'vSphere', fromEnv: (env) => vsphereDriverFromEnv(env) },
} as const satisfies Record<string, RuntimeDriverKind>;

export type RuntimeDriverType = keyof typeof RUNTIME_DRIVERS;

export function isRuntimeDriverType(type: string): type is RuntimeDriverType {
  return Object.hasOwn(RUNTIME_DRIVERS, type);
}

/** A configuration the driver refused; the message names variables, never secret values. */
export class RuntimeDriverConfigError extends Error {
  constructor(
    readonly client: string,
    readonly reason: string,
  ) {
    // The provider guide's format.
    super(`Failed to create ${client} client error="${reason}"`);
    this.name = 'RuntimeDriverConfigError';
  }
}

/**
 * The runtime's driver of `type` from `env`. Credentials come as files of the mounted Secret
 * (<NAME>_FILE) and are read again when the hypervisor refuses them: a rotated token takes effect
 * without a restart. A configuration the driver refuses is a RuntimeDriverConfigError.
 */
export function runtimeDriverFromEnv(type: RuntimeDriverType, env: Env, options: RuntimeDriverOptions = {}): ClosableDriver {
  const kind: RuntimeDriverKind = RUNTIME_DRIVERS[type];
  try {
    return new CredentialReloadingDriver(env, (resolved) => kind.fromEnv(resolved, options), options.log);
  } catch (error) {
    throw new RuntimeDriverConfigError(kind.client, error instanceof Error ? error.message : String(error));
  }
}
