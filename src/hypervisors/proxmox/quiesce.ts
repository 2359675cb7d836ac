// Whether a snapshot can be quiesced: PVE itself freezes the guest's filesystems through the
// guest agent around a snapshot without RAM, never on request. qemu-server's
// __snapshot_check_freeze_needed (QemuConfig.pm) freezes when the VM runs, no vmstate is saved,
// `agent` is enabled in the VM's config (and, since PVE 9, its `freeze-fs` option is not off: the
// 9.1 schema lists snapshots without RAM among what it governs) and the agent answers a ping
// (qga_check_running); anything else silently takes an unfrozen snapshot, and a freeze the guest
// refuses only warns (__snapshot_freeze), the task still ending OK or WARNINGS. So the driver asks
// first, the way qemu-server will, and refuses (Unsupported, naming the reason) a snapshot PVE
// would not quiesce, before anything is taken. What it cannot rule out is the agent going away
// between its check and the snapshot task: then PVE takes the snapshot unfrozen.

import { DriverError, UnauthorizedError, UnreachableError, UnsupportedError } from '../../contracts/driver.js';
import { agentEnabled } from './hardware.js';
import { flag, isRow, parsePropertyString, rows, str, type Row } from './values.js';
import { vmPath, type OwnedVM, type ProxmoxContext } from './vm.js';

// qemu-ga's commands PVE issues around the snapshot.
const FREEZE_COMMANDS = ['guest-fsfreeze-freeze', 'guest-fsfreeze-thaw'];

/** Why the VM's own config keeps PVE from freezing its filesystems; undefined when it does not. */
export function configRefusal(config: Row): string | undefined {
  if (!agentEnabled(config)) return 'its guest agent is disabled in the VM configuration (agent)';
  const options = parsePropertyString(str(config['agent']) ?? '', 'enabled');
  // `freeze-fs-on-backup` and `guest-fsfreeze` are aliases of `freeze-fs` (PVE 9.1 schema).
  for (const key of ['freeze-fs', 'freeze-fs-on-backup', 'guest-fsfreeze']) {
    const value = options.get(key);
    if (value !== undefined && !flag(value)) return `filesystem freezing is turned off in its guest agent setting (${key}=0)`;
  }
  return undefined;
}

/** What the agent's `info` says of the freeze commands: undefined when both are offered. */
export function infoRefusal(info: unknown): string | undefined {
  const result = isRow(info) ? info['result'] : undefined;
  // Some guests answer with a QGA error inside a 200 (NOTES §11).
  if (isRow(result) && isRow(result['error'])) return `its guest agent answered info with an error (${str(result['error']['desc']) ?? 'no description'})`;
  const commands = rows(isRow(result) ? result['supported_commands'] : undefined);
  const missing = FREEZE_COMMANDS.filter((name) => !commands.some((command) => str(command['name']) === name && flag(command['enabled'])));
  return missing.length === 0 ? undefined : `its guest agent does not offer ${missing.join(' and ')}`;
}

function refused(vmid: number, reason: string): UnsupportedError {
  return new UnsupportedError(`VM ${vmid} cannot be snapshotted quiesced: ${reason}`);
}

/**
 * Refuses unless PVE will freeze the running VM's filesystems for its snapshot: the config first
 * (no call), then `agent/ping` and `agent/info`. PVE unreachable or the token lacking the agent
 * privilege (VM.Monitor on PVE 8, VM.GuestAgent.* on 9) are reported as such, not as the guest's.
 */
export async function requireFreezableGuest(ctx: ProxmoxContext, vm: OwnedVM, signal?: AbortSignal): Promise<void> {
  const byConfig = configRefusal(vm.config);
  if (byConfig !== undefined) throw refused(vm.vmid, byConfig);
  const ask = async (method: 'GET' | 'POST', command: string): Promise<unknown> => {
    try {
      return await ctx.client.request(method, vmPath(vm.node, vm.vmid, `/agent/${command}`), undefined, { signal });
    } catch (error) {
      if (error instanceof UnreachableError || error instanceof UnauthorizedError || !(error instanceof DriverError)) throw error;
      // "QEMU guest agent is not running", a QMP timeout, "VM <id> is not running".
      throw refused(vm.vmid, `its guest agent does not answer (${error.message})`);
    }
  };
  await ask('POST', 'ping');
  const byInfo = infoRefusal(await ask('GET', 'info'));
  if (byInfo !== undefined) throw refused(vm.vmid, byInfo);
}
