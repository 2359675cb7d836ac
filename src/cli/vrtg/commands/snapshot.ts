// `vrtg snapshot create|list|revert|delete`: VMSnapshot objects in the seeds' spelling
// (vmRef, description, includeMemory, quiesce), and reverts through the VirtualMachine's
// spec.lifecycle.revertRequest, whose request token lets the same snapshot be reverted to again.
import { CliError, EXIT, outputFormat, serialize } from '../../common.js';
import { positionals, type ParsedArgs } from '../args.js';
import { OUTPUT_FLAG, WRITE_FLAGS, createObject, getObject, patchObject, requestToken, writeOptions, type Command, type Context } from '../context.js';
import { API_VERSION, SNAPSHOT, VM, checkObject, field, isObject, items, ref, text } from '../objects.js';
import { snapshotRow, snapshotTable } from '../views.js';
import { ALL_NAMESPACES_FLAG, SELECTOR_FLAG, byNamespaceAndName, listArgs } from './list.js';

export const snapshotCreateCommand: Command = {
  name: 'snapshot create',
  usage: 'NAME --vm=VM [--description=TEXT] [--include-memory[=true|false]] [--quiesce[=true|false]] [--dry-run[=client|server]] [-o json|yaml]',
  summary: 'take a snapshot of a VM (a new VMSnapshot)',
  description:
    'Creates the VMSnapshot NAME of the VirtualMachine VM (which must exist). The flags are the seeds\' ' +
    '`kubectl create vmsnapshot` flags; each is written only when given. Memory or quiescing the provider cannot do ' +
    '(or a VM that is off) is left out and said so in the MemoryIncluded / Quiesced conditions.',
  examples: ['vrtg snapshot create before-upgrade --vm=web --description="Pre-maintenance snapshot" --include-memory=true', 'vrtg wait vmsnapshot/before-upgrade'],
  flags: [
    { name: 'vm', kind: 'string', value: 'VM', help: 'the VirtualMachine to snapshot (required)' },
    { name: 'description', kind: 'string', value: 'TEXT', help: 'shown on the hypervisor next to the snapshot' },
    { name: 'include-memory', kind: 'boolean', help: 'include the running memory state, so a revert resumes the running VM' },
    { name: 'quiesce', kind: 'boolean', help: 'ask the guest tools to flush and freeze file systems first' },
    ...WRITE_FLAGS,
  ],
  async run(args: ParsedArgs, ctx: Context): Promise<number> {
    const [name] = positionals(args, ['NAME'], 'vrtg snapshot create') as [string];
    const vm = args.strings.get('vm');
    if (vm === undefined) throw new CliError('vrtg snapshot create: --vm is required (the VirtualMachine to snapshot)');
    const options = writeOptions(args);
    const spec: Record<string, unknown> = { vmRef: { name: vm } };
    const description = args.strings.get('description');
    if (description !== undefined) spec['description'] = description;
    const memory = args.booleans.get('include-memory');
    if (memory !== undefined) spec['includeMemory'] = memory;
    const quiesce = args.booleans.get('quiesce');
    if (quiesce !== undefined) spec['quiesce'] = quiesce;
    const snapshot = { apiVersion: API_VERSION, kind: SNAPSHOT.kind, metadata: { name }, spec };
    checkObject(SNAPSHOT, snapshot);
    // A snapshot of a VM that is not there would wait in Pending forever: a typo is caught here.
    await getObject(ctx, VM, vm);
    return createObject(ctx, SNAPSHOT, snapshot, options, `${ref(SNAPSHOT, name)} created (of ${ref(VM, vm)})`);
  },
};

export const snapshotListCommand: Command = {
  name: 'snapshot list',
  usage: '[--vm=VM] [-A] [-l SELECTOR] [-o table|json|yaml]',
  summary: 'list VMSnapshots (of one VM with --vm)',
  description:
    'Lists the VMSnapshots of the namespace, or of one VirtualMachine. -o json and -o yaml print records ' +
    '({"items": [{namespace, name, vm, phase, memoryIncluded, size, ready, reason, created, description}]}).',
  examples: ['vrtg snapshot list --vm=web'],
  flags: [{ name: 'vm', kind: 'string', value: 'VM', help: 'only the snapshots of this VirtualMachine' }, ALL_NAMESPACES_FLAG, SELECTOR_FLAG, OUTPUT_FLAG],
  async run(args: ParsedArgs, ctx: Context): Promise<number> {
    positionals(args, [], 'vrtg snapshot list');
    const output = outputFormat(args.strings.get('output'));
    const vm = args.strings.get('vm');
    const answer = await ctx.kubectl.json(['get', SNAPSHOT.resource, ...listArgs(args)]);
    // Field selectors do not reach custom resources' spec: the VM is filtered here.
    const rows = byNamespaceAndName(items(answer).map(snapshotRow)).filter((row) => vm === undefined || row.vm === vm);
    if (output !== 'table') ctx.io.out(serialize({ items: rows }, output));
    else if (rows.length === 0) ctx.io.err(`No VMSnapshots found${vm === undefined ? '' : ` of ${ref(VM, vm)}`}.\n`);
    else ctx.io.out(snapshotTable(rows, args.booleans.get('all-namespaces') === true, ctx.clock.now()));
    return 0;
  },
};

/** The merge patch that asks `vm` to revert to `snapshot` with `token`, in the one spelling the CRD allows at a time. */
export function revertPatch(vm: unknown, snapshot: string, token: string): Record<string, unknown> {
  const spec: Record<string, unknown> = { lifecycle: { revertRequest: { snapshotRef: { name: snapshot }, request: token } } };
  // The CRD refuses snapshot.revertToRef next to lifecycle.revertRequest; the request replaces it.
  const upstream = field(vm, 'spec', 'snapshot');
  if (isObject(upstream) && upstream['revertToRef'] !== undefined) {
    spec['snapshot'] = Object.keys(upstream).length === 1 ? null : { revertToRef: null };
  }
  return { spec };
}

export const snapshotRevertCommand: Command = {
  name: 'snapshot revert',
  usage: 'SNAPSHOT [--vm=VM] [--dry-run[=client|server]] [-o json|yaml]',
  summary: 'revert the snapshot\'s VM to it (spec.lifecycle.revertRequest)',
  description:
    'Asks the VirtualMachine the VMSnapshot is of to revert to it: spec.lifecycle.revertRequest with a new request token ' +
    '(the current time), so reverting to the same snapshot again works. An upstream-style spec.snapshot.revertToRef on ' +
    'the VM is removed (the CRD allows one of the two). The revert starts once the snapshot is Ready; the disks (and ' +
    'memory) come back, then the VM\'s spec applies again. --vm only checks that the snapshot is of that VM.',
  examples: ['vrtg snapshot revert before-upgrade'],
  flags: [{ name: 'vm', kind: 'string', value: 'VM', help: 'the VirtualMachine expected to be the snapshot\'s' }, ...WRITE_FLAGS],
  async run(args: ParsedArgs, ctx: Context): Promise<number> {
    const [name] = positionals(args, ['SNAPSHOT'], 'vrtg snapshot revert') as [string];
    const options = writeOptions(args);
    const snapshot = await getObject(ctx, SNAPSHOT, name);
    const vm = text(snapshot, 'spec', 'vmRef', 'name');
    if (vm === undefined) throw new CliError(`${ref(SNAPSHOT, name)} names no VM (spec.vmRef.name)`, EXIT.failed);
    const expected = args.strings.get('vm');
    if (expected !== undefined && expected !== vm) throw new CliError(`${ref(SNAPSHOT, name)} is of ${ref(VM, vm)}, not ${ref(VM, expected)}`);
    const phase = text(snapshot, 'status', 'phase');
    if (phase !== 'Ready') ctx.io.err(`vrtg: ${ref(SNAPSHOT, name)} is not Ready (phase ${phase ?? 'unknown'}): the revert starts once it is\n`);
    let token = '';
    return patchObject(
      ctx,
      VM,
      vm,
      options,
      (current) => {
        token = requestToken(ctx.clock.now(), text(current, 'spec', 'lifecycle', 'revertRequest', 'request'));
        return revertPatch(current, name, token);
      },
      () => `${ref(VM, vm)}: revert to ${ref(SNAPSHOT, name)} requested (request "${token}")`,
    );
  },
};

export const snapshotDeleteCommand: Command = {
  name: 'snapshot delete',
  usage: 'NAME... [--wait=false]',
  summary: 'delete VMSnapshots (and their hypervisor snapshots)',
  description:
    'Deletes the VMSnapshots; each one\'s finalizer deletes its snapshot on the hypervisor first, and kubectl waits for ' +
    'that unless --wait=false.',
  examples: ['vrtg snapshot delete before-upgrade'],
  flags: [{ name: 'wait', kind: 'boolean', help: 'wait until the objects are gone (default true)' }],
  async run(args: ParsedArgs, ctx: Context): Promise<number> {
    if (args.positionals.length === 0) throw new CliError('vrtg snapshot delete: missing NAME (see vrtg snapshot delete --help)');
    const wait = args.booleans.get('wait') === false ? ['--wait=false'] : [];
    ctx.io.out(await ctx.kubectl.run(['delete', SNAPSHOT.resource, ...args.positionals, ...wait]));
    return 0;
  },
};
