// `vrtg describe VM`: one VirtualMachine as people want to see it: power, addresses, console,
// what the controller is doing (task, failure, restart, revert) and every condition.
import { outputFormat, serialize } from '../../common.js';
import { positionals, type ParsedArgs } from '../args.js';
import { OUTPUT_FLAG, getObject, type Command, type Context } from '../context.js';
import { VM } from '../objects.js';
import { vmDescription, vmDetails } from '../views.js';

export const describeCommand: Command = {
  name: 'describe',
  usage: 'VM [-o table|json|yaml]',
  summary: 'show one VirtualMachine: power, IPs, console URL, task, failure, conditions',
  description:
    'Shows one VirtualMachine. -o json and -o yaml print the same as a record (namespace, name, phase, power, ips, ' +
    'consoleURL, host, provider, class, source, task, failure, lock, restart, revert, conditions), every key always present.',
  examples: ['vrtg describe web', 'vrtg describe web -o yaml'],
  flags: [OUTPUT_FLAG],
  async run(args: ParsedArgs, ctx: Context): Promise<number> {
    const [name] = positionals(args, ['VM'], 'vrtg describe') as [string];
    const output = outputFormat(args.strings.get('output'));
    const details = vmDetails(await getObject(ctx, VM, name));
    ctx.io.out(output === 'table' ? vmDescription(details, ctx.clock.now()) : serialize(details, output));
    return 0;
  },
};
