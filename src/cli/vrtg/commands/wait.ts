// `vrtg wait [KIND/]NAME`: polls `kubectl get -o json` until a condition holds (Ready by default),
// a phase is reached or the object is gone. A condition counts only when it was observed at the
// object's current generation: right after `vrtg power off`, the Ready=True of the old spec must
// not end the wait.
import { CliError, EXIT } from '../../common.js';
import { parseDuration } from '../../../contracts/quantity.js';
import { positionals, type ParsedArgs } from '../args.js';
import { getObject, type Command, type Context } from '../context.js';
import { KubectlError, oneLine } from '../kubectl.js';
import { CLONE, SNAPSHOT, VM, VMSET, field, ref, text, type KindInfo } from '../objects.js';
import { condition } from '../views.js';

const POLL_INTERVAL_MS = 2000;
const DEFAULT_TIMEOUT = '5m';

const KIND_NAMES: readonly [KindInfo, readonly string[]][] = [
  [VM, ['vm', 'vms', 'vrvm', 'virtualmachine', 'virtualmachines']],
  [SNAPSHOT, ['snapshot', 'snapshots', 'vmsnapshot', 'vmsnapshots', 'vrsnap', 'vmsnap']],
  [CLONE, ['clone', 'clones', 'vmclone', 'vmclones', 'vrclone']],
  [VMSET, ['vmset', 'vmsets', 'vrset']],
];

/** `web` (a VirtualMachine), `vmsnapshot/before-upgrade`, `vmset/web`, or a kind's full resource name. */
export function waitTarget(value: string): { kind: KindInfo; name: string } {
  const slash = value.indexOf('/');
  if (slash === -1) return { kind: VM, name: value };
  const word = value.slice(0, slash).toLowerCase();
  const name = value.slice(slash + 1);
  const found = KIND_NAMES.find(([kind, names]) => names.includes(word) || kind.resource === word);
  if (found === undefined) throw new CliError(`cannot wait for "${word}": use vm, vmsnapshot, vmclone or vmset`);
  if (name === '') throw new CliError(`${value}: missing the name after "/"`);
  return { kind: found[0], name };
}

export type Goal = { kind: 'condition'; type: string; status: string } | { kind: 'phase'; phase: string } | { kind: 'delete' };

/** `condition=Ready`, `condition=Ready=False`, `phase=Running` or `delete`. */
export function parseGoal(value: string): Goal {
  if (value === 'delete') return { kind: 'delete' };
  const byCondition = /^condition=([A-Za-z][A-Za-z0-9]*)(?:=(true|false|unknown))?$/i.exec(value);
  if (byCondition !== null) {
    const status = (byCondition[2] ?? 'True').toLowerCase();
    return { kind: 'condition', type: byCondition[1] as string, status: `${status.charAt(0).toUpperCase()}${status.slice(1)}` };
  }
  const byPhase = /^phase=([A-Za-z]+)$/.exec(value);
  if (byPhase !== null) return { kind: 'phase', phase: byPhase[1] as string };
  throw new CliError(`--for must be condition=TYPE[=True|False|Unknown], phase=PHASE or delete, not "${value}"`);
}

const shorten = (line: string): string => (line.length > 300 ? `${line.slice(0, 297)}...` : line);

/** Whether `object` meets `goal`, and where it stands, in one line. */
export function assess(object: unknown, goal: Goal): { met: boolean; state: string } {
  const generation = field(object, 'metadata', 'generation');
  const statusGeneration = field(object, 'status', 'observedGeneration');
  const behind = (observed: unknown): string =>
    typeof generation === 'number' && typeof observed === 'number' && observed < generation
      ? ` [observed at generation ${observed}, the spec is at ${generation}]`
      : '';
  if (goal.kind === 'delete') {
    return { met: false, state: field(object, 'metadata', 'deletionTimestamp') === undefined ? 'exists' : 'being deleted' };
  }
  if (goal.kind === 'phase') {
    const phase = text(object, 'status', 'phase');
    const stale = behind(statusGeneration);
    return { met: phase === goal.phase && stale === '', state: `phase ${phase ?? '<none>'}${stale}` };
  }
  const found = condition(object, goal.type);
  if (found === undefined) return { met: false, state: `no ${goal.type} condition yet` };
  const stale = behind(found.observedGeneration ?? statusGeneration);
  const why = found.reason === null ? '' : ` (${found.reason}${found.message === null || found.message === '' ? '' : `: ${found.message}`})`;
  return { met: found.status === goal.status && stale === '', state: shorten(oneLine(`${goal.type}=${found.status}${why}${stale}`)) };
}

function metLine(target: string, goal: Goal): string {
  if (goal.kind === 'delete') return `${target} deleted`;
  if (goal.kind === 'phase') return `${target} phase ${goal.phase}`;
  return `${target} condition met`;
}

export const waitCommand: Command = {
  name: 'wait',
  usage: '[KIND/]NAME [--for=condition=Ready] [--timeout=5m]',
  summary: 'wait until a VM (or vmsnapshot/, vmclone/, vmset/) is Ready, in a phase, or deleted',
  description:
    'Polls the object every 2s until --for holds: condition=TYPE[=STATUS] (default condition=Ready, status True), ' +
    'phase=PHASE, or delete. A condition or phase counts only when observed at the object\'s current generation. ' +
    'Progress goes to stderr when it changes; exit 1 on timeout. KIND is vm (the default), vmsnapshot, vmclone or vmset.',
  examples: ['vrtg wait web', 'vrtg wait vmsnapshot/before-upgrade --timeout=10m', 'vrtg wait vm/web --for=condition=Ready=False', 'vrtg wait vmclone/web-test --for=phase=Ready'],
  flags: [
    { name: 'for', kind: 'string', value: 'CONDITION', help: 'condition=TYPE[=STATUS], phase=PHASE or delete (default condition=Ready)' },
    { name: 'timeout', kind: 'string', value: 'DURATION', help: `give up after this long, e.g. 90s or 10m (default ${DEFAULT_TIMEOUT})` },
  ],
  async run(args: ParsedArgs, ctx: Context): Promise<number> {
    const [given] = positionals(args, ['NAME'], 'vrtg wait') as [string];
    const { kind, name } = waitTarget(given);
    const goal = parseGoal(args.strings.get('for') ?? 'condition=Ready');
    const timeoutText = args.strings.get('timeout') ?? DEFAULT_TIMEOUT;
    const timeout = parseDuration(timeoutText);
    if (timeout === undefined) throw new CliError(`--timeout must be a duration such as 90s or 10m, not "${timeoutText}"`);
    const target = ref(kind, name);
    const deadline = ctx.clock.now().getTime() + timeout;
    let shown = '';
    for (;;) {
      let state: string;
      try {
        const assessed = assess(await getObject(ctx, kind, name), goal);
        if (assessed.met) {
          ctx.io.out(`${metLine(target, goal)}\n`);
          return 0;
        }
        state = assessed.state;
      } catch (error) {
        if (goal.kind === 'delete' && error instanceof KubectlError && error.notFound) {
          ctx.io.out(`${metLine(target, goal)}\n`);
          return 0;
        }
        throw error;
      }
      if (state !== shown) {
        ctx.io.err(`waiting for ${target}: ${state}\n`);
        shown = state;
      }
      const left = deadline - ctx.clock.now().getTime();
      if (left <= 0) throw new CliError(`timed out after ${timeoutText} waiting for ${target}: ${state}`, EXIT.failed);
      await ctx.clock.sleep(Math.min(POLL_INTERVAL_MS, left));
    }
  },
};
