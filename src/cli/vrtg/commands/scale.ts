// `vrtg scale VMSET --replicas=N`: spec.replicas by merge patch, so the result is checked against
// the schema (at most MAX_REPLICAS) before it is sent.
import { CliError } from '../../common.js';
import { positionals, type ParsedArgs } from '../args.js';
import { WRITE_FLAGS, patchObject, writeOptions, type Command, type Context } from '../context.js';
import { VMSET, field, ref } from '../objects.js';

export const scaleCommand: Command = {
  name: 'scale',
  usage: 'VMSET --replicas=N [--dry-run[=client|server]] [-o json|yaml]',
  summary: 'set a VMSet\'s replicas',
  description:
    'Sets spec.replicas of the VMSet. Scaling down removes VMs that are not Ready first, then the newest. ' +
    '`vrtg wait vmset/NAME` waits until the set is Ready.',
  examples: ['vrtg scale web --replicas=5'],
  flags: [{ name: 'replicas', kind: 'string', value: 'N', help: 'the number of VirtualMachines (required)' }, ...WRITE_FLAGS],
  async run(args: ParsedArgs, ctx: Context): Promise<number> {
    const [name] = positionals(args, ['VMSET'], 'vrtg scale') as [string];
    const given = args.strings.get('replicas');
    if (given === undefined) throw new CliError('vrtg scale: --replicas is required');
    if (!/^\d{1,9}$/.test(given)) throw new CliError(`--replicas must be a whole number, not "${given}"`);
    const replicas = Number(given);
    return patchObject(
      ctx,
      VMSET,
      name,
      writeOptions(args),
      () => ({ spec: { replicas } }),
      (current) => {
        const was = field(current, 'spec', 'replicas');
        return `${ref(VMSET, name)} scaled to ${replicas} (was ${typeof was === 'number' ? was : '1, the default'})`;
      },
    );
  },
};
