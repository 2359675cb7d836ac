// The whole system with a Proxmox driver against the schema-validating fake PVE: Providers of type
// proxmox get that driver (InProcess; production runs it in a provider runtime), others the
// simulator. One fake clock runs the harness, the hooks and the fake's tasks.
import type { Test } from 'tap';
import { proxmoxConfigFromEnv, ProxmoxDriver } from '../../src/hypervisors/proxmox/index.js';
import { FakePve, type FakePveOptions } from '../fakes/proxmox/index.js';
import { FakeClock } from './clock.js';
import { lifecycle } from './lifecycle.js';

export const PVE_TOKEN = { PVE_TOKEN_ID: 'virtrigaud@pve!vrtg', PVE_TOKEN_SECRET: 'secret-token' };

export async function proxmoxSystem(t: Test, options: FakePveOptions = {}) {
  const clock = new FakeClock();
  const pve = await FakePve.start({ clock, taskDurationMs: 1000, bootMs: 1500, ...options });
  t.teardown(() => pve.close());
  const driver = new ProxmoxDriver(proxmoxConfigFromEnv({ PVE_ENDPOINT: pve.url, ...PVE_TOKEN }), { now: () => clock.now() });
  const env = await lifecycle(t, {
    clock,
    registry: (simulators) => ({ driverFor: async (provider) => (provider.type === 'proxmox' ? driver : simulators.driverFor(provider)) }),
  });
  /** The VMs VirtRigaud-TS made on the fake PVE. */
  const ours = () => pve.vms().filter((vm) => (vm.tags ?? []).includes('virtrigaud'));
  return { ...env, pve, ours };
}
