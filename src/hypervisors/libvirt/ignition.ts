// Ignition (Fedora CoreOS, RHCOS): on QEMU the guest reads its config from the fw_cfg file
// `opt/com.coreos/config`, which libvirt (≥ 6.5) fills from a file on the host named in
// `<sysinfo type='fwcfg'>`. The config is stored like the seed ISO: a pool volume of the VM's own,
// written by the create task from its (private) script, chowned to QEMU's user by libvirt at start,
// named in the metadata so delete removes it. It needs a dir pool: the volume must be a plain file
// whose size is the config's (a block device would hand the guest trailing bytes).

import { InvalidSpecError } from '../../contracts/driver.js';
import { checkIgnition } from '../../contracts/guest-data.js';
import type { LibvirtContext } from './context.js';
import { poolDirectory } from './images.js';
import type { TaskStep } from './tasks.js';

/** Refuses what the hook would have refused (a runtime reached some other way); never quotes the config. */
export function requireIgnition(config: string): void {
  const checked = checkIgnition(config);
  if (!checked.ok) throw new InvalidSpecError(`the Ignition config ${checked.problem}`);
}

/** Where volume `volume` of the configured pool lives on the host: what the domain's fw_cfg entry names. */
export async function ignitionFile(ctx: LibvirtContext, volume: string, signal?: AbortSignal): Promise<string> {
  return `${(await poolDirectory(ctx, signal, 'an Ignition config')).replace(/\/+$/, '')}/${volume}`;
}

/** The create task's step that writes the config into the VM's volume. */
export function ignitionStep(ctx: LibvirtContext, volume: string, config: string): TaskStep {
  return ['vr_ignition', ctx.host.uri, ctx.config.storagePool, volume, config];
}
