/**
 * Worker tasks with real UPIDs, their logs and exit statuses, and the task endpoints.
 * A task's checks run when it starts (so a refused task ends at once); its effect is applied
 * when its duration has passed, through the world's lazily settled clock.
 */
import { authUser, reply, type AuthInfo, type Ctx, type Handler } from './context.js';
import { PveError, paramError, stringifyException } from './errors.js';
import type { FaultSet } from './faults.js';
import type { World } from './state.js';

export interface TaskRec {
  upid: string;
  node: string;
  pid: number;
  pstart: number;
  starttime: number;
  type: string;
  id: string;
  user: string;
  status: 'running' | 'stopped';
  exitstatus?: string;
  endtime?: number;
  log: string[];
  /** Cleanup to run when the task is aborted. */
  abort?: (message: string, at: number) => void;
}

export interface TaskHandle {
  readonly upid: string;
  log(line: string): void;
}

export interface TaskSpec {
  node: string;
  type: string;
  id: string;
  auth: AuthInfo;
  /** Defaults to the configured duration of the worker type. */
  durationMs?: number;
  /** The worker's first checks, run at once; throwing ends the task with that error. */
  start?: (task: TaskHandle, at: number) => void;
  /** Intermediate effects at a fraction (0..1) of the duration. */
  steps?: { fraction: number; run: (task: TaskHandle, at: number) => void }[];
  /** The effect at the end; throwing fails the task. */
  finish?: (task: TaskHandle, at: number) => void;
  /** Cleanup after a failure (the worker's error path). */
  onFail?: (message: string, at: number) => void;
  /**
   * Work the worker does for real (a download over loopback): the task does not end before this
   * answers true, however much time the clock says has passed.
   */
  ready?: () => boolean;
}

const UPID_RE =
  /^UPID:([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?):([0-9A-Fa-f]{8}):([0-9A-Fa-f]{8,9}):([0-9A-Fa-f]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$/;

const hex8 = (value: number): string => value.toString(16).toUpperCase().padStart(8, '0');

/** The text a failed worker leaves as exit status, and the log lines that precede it. */
function failureText(error: unknown): { status: string; lines: string[] } {
  if (error instanceof PveError) {
    const text = stringifyException(error.status === 500 ? error.message : `${error.status} ${error.message}`, error.errors);
    const lines = text.replace(/\n$/, '').split('\n');
    return { status: lines[0] ?? error.message, lines: lines.slice(1) };
  }
  return { status: error instanceof Error ? error.message : String(error), lines: [] };
}

export class Tasks {
  private readonly byUpid = new Map<string, TaskRec>();

  constructor(
    private readonly world: World,
    private readonly faults: FaultSet,
  ) {}

  duration(type: string): number {
    return this.world.options.taskDurations[type] ?? this.world.options.taskDurationMs;
  }

  get(upid: string): TaskRec | undefined {
    return this.byUpid.get(upid);
  }

  all(): TaskRec[] {
    return [...this.byUpid.values()];
  }

  start(spec: TaskSpec): TaskRec {
    const now = this.world.now();
    const node = this.world.node(spec.node);
    const pid = this.world.nextPid();
    const pstart = Math.floor((now - node.bootedAt) / 10);
    const starttime = Math.floor(now / 1000);
    const user = authUser(spec.auth);
    const upid = `UPID:${node.name}:${hex8(pid)}:${hex8(pstart)}:${hex8(starttime)}:${spec.type}:${spec.id}:${user}:`;
    const task: TaskRec = { upid, node: node.name, pid, pstart, starttime, type: spec.type, id: spec.id, user, status: 'running', log: [] };
    this.byUpid.set(upid, task);
    const handle: TaskHandle = { upid, log: (line) => void task.log.push(line) };

    const failWith = (error: unknown, at: number): void => {
      if (task.status === 'stopped') return;
      const { status, lines } = failureText(error);
      task.log.push(...lines, `TASK ERROR: ${status}`);
      this.end(task, status, at);
      spec.onFail?.(status, at);
    };
    task.abort = (message, at) => failWith(new Error(message), at);

    try {
      spec.start?.(handle, now);
    } catch (error) {
      failWith(error, now);
      return task;
    }
    const injected = this.faults.takeTaskFailure(spec.type);
    const duration = spec.durationMs ?? this.duration(spec.type);
    for (const step of injected === undefined ? (spec.steps ?? []) : []) {
      this.world.schedule(now + Math.floor(duration * step.fraction), (at) => {
        if (task.status !== 'running') return;
        try {
          step.run(handle, at);
        } catch (error) {
          failWith(error, at);
        }
      });
    }
    const end = (at: number): void => {
      if (task.status !== 'running') return;
      if (injected === undefined && spec.ready?.() === false) {
        // Looked at again by the next request that settles the clock.
        this.world.schedule(this.world.now() + 1, end);
        return;
      }
      if (injected !== undefined) {
        failWith(new Error(injected), at);
        return;
      }
      try {
        spec.finish?.(handle, at);
      } catch (error) {
        failWith(error, at);
        return;
      }
      task.log.push('TASK OK');
      this.end(task, 'OK', at);
    };
    this.world.schedule(now + duration, end);
    return task;
  }

  private end(task: TaskRec, exitstatus: string, at: number): void {
    task.status = 'stopped';
    task.exitstatus = exitstatus;
    task.endtime = Math.floor(at / 1000);
  }
}

/** `upid_decode`, with the 400 Tasks.pm raises for strings that are no UPID. */
function decodeUpid(upid: string): void {
  if (!UPID_RE.test(upid)) paramError({ upid: 'unable to parse worker upid' });
}

function statusRow(task: TaskRec): Record<string, unknown> {
  const [user, tokenid] = task.user.split('!');
  const row: Record<string, unknown> = {
    upid: task.upid,
    node: task.node,
    pid: task.pid,
    pstart: task.pstart,
    starttime: task.starttime,
    type: task.type,
    id: task.id,
    user,
    status: task.status,
  };
  if (tokenid !== undefined) row['tokenid'] = tokenid;
  if (task.exitstatus !== undefined) row['exitstatus'] = task.exitstatus;
  return row;
}

function listRow(task: TaskRec): Record<string, unknown> {
  const row: Record<string, unknown> = {
    upid: task.upid,
    node: task.node,
    pid: task.pid,
    pstart: task.pstart,
    starttime: task.starttime,
    type: task.type,
    id: task.id,
    user: task.user,
  };
  if (task.status === 'stopped') {
    row['endtime'] = task.endtime;
    row['status'] = task.exitstatus;
  }
  return row;
}

const statusClass = (task: TaskRec): string => {
  const status = task.exitstatus ?? '';
  if (status === 'OK') return 'ok';
  if (status.startsWith('WARNINGS')) return 'warning';
  if (status === 'unexpected status') return 'unknown';
  return 'error';
};

const taskOn = (ctx: Ctx): TaskRec => {
  const upid = ctx.params.need('upid');
  decodeUpid(upid);
  const task = ctx.tasks.get(upid);
  if (!task || task.node !== ctx.params.need('node')) paramError({ upid: 'no such task' });
  return task;
};

export const taskHandlers: Record<string, Handler> = {
  'GET /nodes/{node}/tasks/{upid}/status': (ctx) => reply(statusRow(taskOn(ctx))),

  'GET /nodes/{node}/tasks/{upid}/log': (ctx) => {
    const upid = ctx.params.need('upid');
    decodeUpid(upid);
    const task = ctx.tasks.get(upid);
    const lines = task && task.node === ctx.params.need('node') ? task.log : ['unable to open file - No such file or directory'];
    const start = ctx.params.int('start') ?? 0;
    const limit = ctx.params.int('limit') ?? 50;
    const rows = lines.slice(start, start + limit).map((t, index) => ({ n: start + index + 1, t }));
    return reply(rows, lines.length);
  },

  'DELETE /nodes/{node}/tasks/{upid}': (ctx) => {
    const task = taskOn(ctx);
    if (task.status === 'running') task.abort?.('interrupted by signal', ctx.world.now());
    return reply(null);
  },

  'GET /nodes/{node}/tasks': (ctx) => {
    const node = ctx.world.node(ctx.params.need('node')).name;
    const p = ctx.params;
    const source = p.str('source') ?? 'archive';
    const statuses = (p.str('statusfilter') ?? '').split(/[,;\s]+/).filter((s) => s !== '').map((s) => s.toLowerCase());
    const rows = ctx.tasks
      .all()
      .filter((task) => task.node === node)
      .filter((task) => (source === 'archive' ? task.status === 'stopped' : source === 'active' ? task.status === 'running' : true))
      .filter((task) => p.int('vmid') === undefined || task.id === String(p.int('vmid')))
      .filter((task) => p.str('typefilter') === undefined || task.type === p.str('typefilter'))
      .filter((task) => p.str('userfilter') === undefined || task.user.includes(p.str('userfilter') ?? ''))
      .filter((task) => !p.bool('errors') || (task.status === 'stopped' && statusClass(task) === 'error'))
      .filter((task) => statuses.length === 0 || (task.status === 'stopped' && statuses.includes(statusClass(task))))
      .filter((task) => p.int('since') === undefined || task.starttime >= (p.int('since') ?? 0))
      .filter((task) => p.int('until') === undefined || task.starttime <= (p.int('until') ?? 0))
      .sort((a, b) => b.starttime - a.starttime || b.pid - a.pid);
    const start = p.int('start') ?? 0;
    const limit = p.int('limit') ?? 50;
    return reply(rows.slice(start, start + limit).map(listRow), rows.length);
  },

  'GET /cluster/tasks': (ctx) =>
    reply(
      ctx.tasks
        .all()
        .sort((a, b) => b.starttime - a.starttime || b.pid - a.pid)
        .slice(0, 50)
        .map(listRow),
    ),
};
