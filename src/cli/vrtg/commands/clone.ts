// `vrtg clone SOURCE TARGET`: a VMClone in the seeds' spelling (sourceVMRef, linkedClone,
// target); its child VirtualMachine TARGET is the clone.
import { positionals, type ParsedArgs } from '../args.js';
import { WRITE_FLAGS, createObject, getObject, writeOptions, type Command, type Context } from '../context.js';
import { API_VERSION, CLONE, VM, checkObject, ref } from '../objects.js';
import { powerState } from './power.js';

export const cloneCommand: Command = {
  name: 'clone',
  usage: 'SOURCE TARGET [--full] [--power=on|off|off-graceful] [--dry-run[=client|server]] [-o json|yaml]',
  summary: 'clone a VM (a new VMClone whose VirtualMachine is TARGET)',
  description:
    'Creates the VMClone TARGET of the VirtualMachine SOURCE (which must exist); its child VirtualMachine, also named ' +
    'TARGET, is the clone, on the source\'s Provider. Linked (copy-on-write) unless --full; powered as --power says ' +
    '(default on). Deleting the VMClone deletes the clone.',
  examples: ['vrtg clone web web-test', 'vrtg clone web web-copy --full --power=off', 'vrtg wait vmclone/web-test'],
  flags: [
    { name: 'full', kind: 'boolean', help: 'a full, independent copy instead of a linked clone' },
    { name: 'power', kind: 'string', value: 'STATE', help: 'the clone\'s power state: on (default), off or off-graceful' },
    ...WRITE_FLAGS,
  ],
  async run(args: ParsedArgs, ctx: Context): Promise<number> {
    const [source, target] = positionals(args, ['SOURCE', 'TARGET'], 'vrtg clone') as [string, string];
    const options = writeOptions(args);
    const linked = args.booleans.get('full') !== true;
    const power = args.strings.get('power');
    const targetSpec: Record<string, unknown> = { name: target };
    if (power !== undefined) targetSpec['powerState'] = powerState(power);
    const clone = {
      apiVersion: API_VERSION,
      kind: CLONE.kind,
      metadata: { name: target },
      spec: { sourceVMRef: { name: source }, linkedClone: linked, target: targetSpec },
    };
    checkObject(CLONE, clone);
    // The VMClone would wait in Pending for a source that is not there: a typo is caught here.
    await getObject(ctx, VM, source);
    return createObject(ctx, CLONE, clone, options, `${ref(CLONE, target)} created: ${linked ? 'linked' : 'full'} clone of ${ref(VM, source)} as ${ref(VM, target)}`);
  },
};
