// `vrtg power on|off|off-graceful|suspend VM` and `vrtg restart VM`: spec.powerState, and a new
// spec.lifecycle.restartRequest (the controller restarts once per new value, and echoes it in
// status.restartRequest when done).
import type { PowerState } from '../../../contracts/crds/virtualmachine.js';
import { CliError } from '../../common.js';
import { positionals, type ParsedArgs } from '../args.js';
import { WRITE_FLAGS, patchObject, requestToken, writeOptions, type Command, type Context } from '../context.js';
import { VM, ref, text } from '../objects.js';
import { desiredPower } from '../views.js';

/** What people type, as spec.powerState spells it (always a string: YAML 1.1 would make On a boolean). */
const POWER_STATES: Readonly<Record<string, PowerState>> = {
  on: 'On',
  off: 'Off',
  'off-graceful': 'OffGraceful',
  offgraceful: 'OffGraceful',
  suspend: 'Suspended',
  suspended: 'Suspended',
};

export function powerState(word: string): PowerState {
  const state = POWER_STATES[word.toLowerCase()];
  if (state === undefined) throw new CliError(`power state must be on, off, off-graceful or suspend, not "${word}"`);
  return state;
}

export const powerCommand: Command = {
  name: 'power',
  usage: 'on|off|off-graceful|suspend VM [--dry-run[=client|server]] [-o json|yaml]',
  summary: 'set spec.powerState: on, off (hard), off-graceful (guest shutdown, then off) or suspend',
  description:
    'Sets spec.powerState of the VirtualMachine to "On", "Off", "OffGraceful" or "Suspended" with a merge patch. ' +
    'off-graceful shuts the guest down and powers it off after spec.lifecycle.gracefulShutdownTimeout (default 60s); ' +
    'suspend pauses it with its memory kept (Providers with the suspend capability) and on resumes it. The controller ' +
    'does the rest; `vrtg wait VM` waits until the VM is Ready at its new spec.',
  examples: ['vrtg power off-graceful web', 'vrtg power suspend web', 'vrtg power on web && vrtg wait web'],
  flags: WRITE_FLAGS,
  async run(args: ParsedArgs, ctx: Context): Promise<number> {
    const [word, name] = positionals(args, ['STATE', 'VM'], 'vrtg power') as [string, string];
    const state = powerState(word);
    return patchObject(
      ctx,
      VM,
      name,
      writeOptions(args),
      () => ({ spec: { powerState: state } }),
      (current) => `${ref(VM, name)}: powerState "${state}" (was "${desiredPower(current)}")`,
    );
  },
};

export const restartCommand: Command = {
  name: 'restart',
  usage: 'VM [--dry-run[=client|server]] [-o json|yaml]',
  summary: 'restart once: graceful shutdown, pending changes applied, power on',
  description:
    'Sets spec.lifecycle.restartRequest to a new value (the current time). The controller shuts the guest down ' +
    '(hard off after the graceful shutdown timeout), applies changes that wait for a power cycle, and powers it on; ' +
    'status.restartRequest echoes the value once the restart is done.',
  examples: ['vrtg restart web'],
  flags: WRITE_FLAGS,
  async run(args: ParsedArgs, ctx: Context): Promise<number> {
    const [name] = positionals(args, ['VM'], 'vrtg restart') as [string];
    let token = '';
    return patchObject(
      ctx,
      VM,
      name,
      writeOptions(args),
      (current) => {
        token = requestToken(ctx.clock.now(), text(current, 'spec', 'lifecycle', 'restartRequest'));
        return { spec: { lifecycle: { restartRequest: token } } };
      },
      () => `${ref(VM, name)}: restart requested (restartRequest "${token}")`,
    );
  },
};
