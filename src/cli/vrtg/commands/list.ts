// `vrtg list`: the VirtualMachines of a namespace (or all), one line each.
import { outputFormat, serialize } from '../../common.js';
import { positionals, type FlagSpec, type ParsedArgs } from '../args.js';
import { OUTPUT_FLAG, type Command, type Context } from '../context.js';
import { VM, items } from '../objects.js';
import { vmRow, vmTable } from '../views.js';

export const ALL_NAMESPACES_FLAG: FlagSpec = { name: 'all-namespaces', short: 'A', kind: 'boolean', help: 'every namespace (adds a NAMESPACE column)' };
export const SELECTOR_FLAG: FlagSpec = { name: 'selector', short: 'l', kind: 'string', value: 'SELECTOR', help: 'only objects whose labels match (e.g. app=web)' };

/** The `kubectl get` flags a listing passes on. */
export function listArgs(args: ParsedArgs): string[] {
  const out: string[] = [];
  if (args.booleans.get('all-namespaces') === true) out.push('--all-namespaces');
  const selector = args.strings.get('selector');
  if (selector !== undefined) out.push(`--selector=${selector}`);
  return out;
}

/** Sorted by namespace, then name, whatever order the apiserver answered in. */
export function byNamespaceAndName<T extends { namespace: string | null; name: string }>(rows: T[]): T[] {
  return rows.sort((a, b) => (a.namespace ?? '').localeCompare(b.namespace ?? '') || a.name.localeCompare(b.name));
}

export const listCommand: Command = {
  name: 'list',
  usage: '[-A] [-l SELECTOR] [-o table|json|yaml]',
  summary: 'list VirtualMachines: phase, power (observed and desired), first IP, Ready',
  description:
    'Lists the VirtualMachines of the namespace. -o json and -o yaml print the same columns as records ' +
    '({"items": [{namespace, name, phase, power, desiredPower, ips, provider, ready, reason, created}]}), ' +
    'every key always present (null when unknown).',
  examples: ['vrtg list', 'vrtg list -A -o json', 'vrtg list -l app=web'],
  flags: [ALL_NAMESPACES_FLAG, SELECTOR_FLAG, OUTPUT_FLAG],
  async run(args: ParsedArgs, ctx: Context): Promise<number> {
    positionals(args, [], 'vrtg list');
    const output = outputFormat(args.strings.get('output'));
    const answer = await ctx.kubectl.json(['get', VM.resource, ...listArgs(args)]);
    const rows = byNamespaceAndName(items(answer).map(vmRow));
    if (output !== 'table') ctx.io.out(serialize({ items: rows }, output));
    else if (rows.length === 0) ctx.io.err('No VirtualMachines found.\n');
    else ctx.io.out(vmTable(rows, args.booleans.get('all-namespaces') === true, ctx.clock.now()));
    return 0;
  },
};
