// What vrtg shows of an object: plain records with a fixed set of keys (absent values are null),
// printed as a table or serialized as JSON/YAML. The records, not the objects, are the output
// format, so a field the cluster adds or reorders never changes what scripts read.
import { table } from '../common.js';
import { field, isObject, list, text } from './objects.js';

export interface ConditionView {
  type: string;
  status: string;
  reason: string | null;
  message: string | null;
  lastTransitionTime: string | null;
  observedGeneration: number | null;
}

export function conditions(object: unknown): ConditionView[] {
  return list(object, 'status', 'conditions')
    .filter(isObject)
    .map((c) => ({
      type: text(c, 'type') ?? '',
      status: text(c, 'status') ?? 'Unknown',
      reason: text(c, 'reason') ?? null,
      message: text(c, 'message') ?? null,
      lastTransitionTime: text(c, 'lastTransitionTime') ?? null,
      observedGeneration: typeof c['observedGeneration'] === 'number' ? c['observedGeneration'] : null,
    }));
}

export function condition(object: unknown, type: string): ConditionView | undefined {
  return conditions(object).find((c) => c.type === type);
}

/** spec.powerState as the controller reads it: unset is On, YAML 1.1's true/false are On/Off. */
export function desiredPower(object: unknown): string {
  const value = field(object, 'spec', 'powerState');
  if (value === undefined || value === true) return 'On';
  if (value === false) return 'Off';
  return String(value);
}

/** kubectl's age: 45s, 5m30s, 3h, 2d4h, 400d, 3y20d. */
export function age(since: string | null | undefined, now: Date): string | undefined {
  if (since === undefined || since === null) return undefined;
  const start = Date.parse(since);
  if (Number.isNaN(start)) return undefined;
  const seconds = Math.max(0, Math.floor((now.getTime() - start) / 1000));
  const minutes = Math.floor(seconds / 60);
  const hours = Math.floor(minutes / 60);
  const days = Math.floor(hours / 24);
  const years = Math.floor(days / 365);
  const pair = (a: number, unitA: string, b: number, unitB: string) => (b === 0 ? `${a}${unitA}` : `${a}${unitA}${b}${unitB}`);
  if (seconds < 120) return `${seconds}s`;
  if (minutes < 10) return pair(minutes, 'm', seconds % 60, 's');
  if (hours < 3) return `${minutes}m`;
  if (hours < 8) return pair(hours, 'h', minutes % 60, 'm');
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) return pair(days, 'd', hours % 24, 'h');
  if (days < 365 * 2) return `${days}d`;
  if (years < 8) return pair(years, 'y', days % 365, 'd');
  return `${years}y`;
}

const orNull = (value: string | undefined): string | null => value ?? null;

export interface VMRow {
  namespace: string | null;
  name: string;
  phase: string | null;
  power: string | null;
  desiredPower: string;
  ips: string[];
  provider: string | null;
  ready: string | null;
  reason: string | null;
  created: string | null;
}

export function vmRow(vm: unknown): VMRow {
  const ready = condition(vm, 'Ready');
  return {
    namespace: orNull(text(vm, 'metadata', 'namespace')),
    name: text(vm, 'metadata', 'name') ?? '',
    phase: orNull(text(vm, 'status', 'phase')),
    power: orNull(text(vm, 'status', 'powerState')),
    desiredPower: desiredPower(vm),
    ips: list(vm, 'status', 'ips').filter((ip): ip is string => typeof ip === 'string'),
    provider: orNull(text(vm, 'spec', 'providerRef', 'name')),
    ready: ready?.status ?? null,
    reason: ready?.reason ?? null,
    created: orNull(text(vm, 'metadata', 'creationTimestamp')),
  };
}

const cell = (value: string | null): string | undefined => value ?? undefined;

export function vmTable(rows: readonly VMRow[], allNamespaces: boolean, now: Date): string {
  const headers = ['NAME', 'PHASE', 'POWER', 'DESIRED', 'IP', 'PROVIDER', 'READY', 'REASON', 'AGE'];
  const body = rows.map((r) => [r.name, cell(r.phase), cell(r.power), r.desiredPower, r.ips[0], cell(r.provider), cell(r.ready), cell(r.reason), age(r.created, now)]);
  return allNamespaces ? table(['NAMESPACE', ...headers], body.map((row, i) => [cell(rows[i]?.namespace ?? null), ...row])) : table(headers, body);
}

export interface SnapshotRow {
  namespace: string | null;
  name: string;
  vm: string | null;
  phase: string | null;
  memoryIncluded: boolean | null;
  size: string | null;
  ready: string | null;
  reason: string | null;
  created: string | null;
  description: string | null;
}

export function snapshotRow(snapshot: unknown): SnapshotRow {
  const ready = condition(snapshot, 'Ready');
  const memory = field(snapshot, 'status', 'memoryIncluded');
  return {
    namespace: orNull(text(snapshot, 'metadata', 'namespace')),
    name: text(snapshot, 'metadata', 'name') ?? '',
    vm: orNull(text(snapshot, 'spec', 'vmRef', 'name')),
    phase: orNull(text(snapshot, 'status', 'phase')),
    memoryIncluded: typeof memory === 'boolean' ? memory : null,
    size: orNull(text(snapshot, 'status', 'size')),
    ready: ready?.status ?? null,
    reason: ready?.reason ?? null,
    created: orNull(text(snapshot, 'metadata', 'creationTimestamp')),
    // Either spelling: the seeds' spec.description or upstream's spec.snapshotConfig.description.
    description: orNull(text(snapshot, 'spec', 'description') ?? text(snapshot, 'spec', 'snapshotConfig', 'description')),
  };
}

export function snapshotTable(rows: readonly SnapshotRow[], allNamespaces: boolean, now: Date): string {
  const headers = ['NAME', 'VM', 'PHASE', 'MEMORY', 'SIZE', 'READY', 'AGE', 'DESCRIPTION'];
  const body = rows.map((r) => [r.name, cell(r.vm), cell(r.phase), r.memoryIncluded ?? undefined, cell(r.size), cell(r.ready), age(r.created, now), cell(r.description)]);
  return allNamespaces ? table(['NAMESPACE', ...headers], body.map((row, i) => [cell(rows[i]?.namespace ?? null), ...row])) : table(headers, body);
}

export interface VMDetails {
  namespace: string | null;
  name: string;
  phase: string | null;
  power: { desired: string; observed: string | null };
  ips: string[];
  consoleURL: string | null;
  host: string | null;
  provider: string | null;
  class: string | null;
  source: string | null;
  task: { operation: string | null; id: string | null; startedAt: string | null } | null;
  failure: { operation: string | null; reason: string | null; message: string | null; count: number | null; lastAttempt: string | null } | null;
  lock: { lock: string; since: string | null } | null;
  restart: { requested: string; handled: string | null } | null;
  revert: { snapshot: string; request: string; started: boolean } | null;
  conditions: ConditionView[];
}

function vmSource(vm: unknown): string | null {
  const image = text(vm, 'spec', 'imageRef', 'name');
  if (image !== undefined) return `image ${image}`;
  const clone = text(vm, 'spec', 'cloneFrom', 'vmRef', 'name');
  if (clone !== undefined) return `clone of ${clone}${field(vm, 'spec', 'cloneFrom', 'linkedClone') === false ? ' (full)' : ' (linked)'}`;
  const disk = text(vm, 'spec', 'importedDisk', 'diskID');
  return disk === undefined ? null : `imported disk ${disk}`;
}

function vmRevert(vm: unknown): VMDetails['revert'] {
  const request = field(vm, 'spec', 'lifecycle', 'revertRequest');
  const upstream = text(vm, 'spec', 'snapshot', 'revertToRef', 'name');
  const wanted =
    isObject(request) && text(request, 'snapshotRef', 'name') !== undefined
      ? { snapshot: text(request, 'snapshotRef', 'name') as string, request: text(request, 'request') ?? '' }
      : upstream !== undefined
        ? { snapshot: upstream, request: upstream }
        : undefined;
  if (wanted === undefined) return null;
  const started = text(vm, 'status', 'revert', 'snapshot') === wanted.snapshot && text(vm, 'status', 'revert', 'request') === wanted.request;
  return { ...wanted, started };
}

export function vmDetails(vm: unknown): VMDetails {
  const row = vmRow(vm);
  const task = field(vm, 'status', 'task');
  const failure = field(vm, 'status', 'failure');
  const restart = text(vm, 'spec', 'lifecycle', 'restartRequest');
  const lock = text(vm, 'status', 'lockHeld', 'lock');
  const count = field(failure, 'count');
  return {
    namespace: row.namespace,
    name: row.name,
    phase: row.phase,
    power: { desired: row.desiredPower, observed: row.power },
    ips: row.ips,
    consoleURL: orNull(text(vm, 'status', 'consoleURL')),
    host: orNull(text(vm, 'status', 'host')),
    provider: row.provider,
    class: orNull(text(vm, 'spec', 'classRef', 'name')),
    source: vmSource(vm),
    task: isObject(task) ? { operation: orNull(text(task, 'operation')), id: orNull(text(task, 'id')), startedAt: orNull(text(task, 'startedAt')) } : null,
    failure: isObject(failure)
      ? {
          operation: orNull(text(failure, 'operation')),
          reason: orNull(text(failure, 'reason')),
          message: orNull(text(failure, 'message')),
          count: typeof count === 'number' ? count : null,
          lastAttempt: orNull(text(failure, 'lastAttempt')),
        }
      : null,
    lock: lock === undefined ? null : { lock, since: orNull(text(vm, 'status', 'lockHeld', 'since')) },
    restart: restart === undefined ? null : { requested: restart, handled: orNull(text(vm, 'status', 'restartRequest')) },
    revert: vmRevert(vm),
    conditions: conditions(vm),
  };
}

const none = (value: string | null | undefined): string => value ?? '<none>';

export function vmDescription(d: VMDetails, now: Date): string {
  const since = (at: string | null) => (at === null ? '' : ` since ${at} (${age(at, now) ?? '?'})`);
  const lines: [string, string][] = [
    ['Name', d.name],
    ['Namespace', none(d.namespace)],
    ['Phase', none(d.phase)],
    ['Power', `${none(d.power.observed)} (desired ${d.power.desired})`],
    ['IPs', d.ips.length === 0 ? '<none>' : d.ips.join(', ')],
    ['Console', none(d.consoleURL)],
    ['Host', none(d.host)],
    ['Provider', none(d.provider)],
    ['Class', none(d.class)],
    ['Source', none(d.source)],
    ['Task', d.task === null ? '<none>' : `${none(d.task.operation)} ${none(d.task.id)}${since(d.task.startedAt)}`],
  ];
  if (d.failure !== null) {
    const { operation, reason, message, count, lastAttempt } = d.failure;
    lines.push(['Failure', `${none(operation)} ${none(reason)} (${count ?? '?'} in a row, last ${none(lastAttempt)}): ${none(message)}`]);
  }
  // A lock held for long may be stale: the hypervisor's administrator has to look at it.
  if (d.lock !== null) lines.push(['Lock', `${d.lock.lock} held by the hypervisor${since(d.lock.since)}`]);
  if (d.restart !== null) {
    lines.push(['Restart', `${d.restart.requested} ${d.restart.handled === d.restart.requested ? '(done)' : '(pending)'}`]);
  }
  if (d.revert !== null) {
    lines.push(['Revert', `to ${d.revert.snapshot}, request ${d.revert.request} ${d.revert.started ? '(started)' : '(pending)'}`]);
  }
  const width = Math.max(...lines.map(([label]) => label.length)) + 2;
  const head = lines.map(([label, value]) => `${`${label}:`.padEnd(width)}${value}`).join('\n');
  if (d.conditions.length === 0) return `${head}\nConditions: <none>\n`;
  const rows = d.conditions.map((c) => [c.type, c.status, c.reason ?? undefined, age(c.lastTransitionTime, now), c.message ?? undefined]);
  const conditionTable = table(['TYPE', 'STATUS', 'REASON', 'AGE', 'MESSAGE'], rows)
    .trimEnd()
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
  return `${head}\nConditions:\n${conditionTable}\n`;
}
