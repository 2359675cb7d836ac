/**
 * The model behind the fake: nodes, VMs with their config files (property strings, as PVE
 * stores them), pending sections and snapshots, plus a clock of scheduled events that is
 * settled lazily on every request, so no timer outlives close().
 */
import { createHash, randomUUID } from 'node:crypto';
import { fail } from './errors.js';
import { parseHotplug } from './formats.js';
import type { ResolvedOptions } from './options.js';
import { qemuConfigProperty } from './schema.js';
import { Volumes } from './storage.js';
import { parsePropertyString } from './validate.js';

export type Power = 'stopped' | 'running' | 'paused';

export interface NodeRec {
  name: string;
  cpus: number;
  memoryBytes: number;
  nodeid: number;
  ip: string;
  bootedAt: number;
}

export interface SnapshotRec {
  name: string;
  conf: Map<string, string>;
  snaptime: number;
  description?: string;
  /** Volume holding the RAM state when the snapshot included it. */
  vmstate?: string;
  /** The guest's filesystems were frozen through its agent while the snapshot was taken. */
  frozen?: boolean;
  snapstate?: string;
  parent?: string;
}

export interface VmRec {
  vmid: number;
  node: string;
  conf: Map<string, string>;
  pending: Map<string, string>;
  /** Keys to delete when pending changes apply; `true` = forced. */
  pendingDelete: Map<string, boolean>;
  snapshots: Map<string, SnapshotRec>;
  power: Power;
  startedAt: number;
  pid: number;
  /** Overrides the guestAgent option for this VM. */
  agentRunning?: boolean;
  /** The agent offers guest-fsfreeze-freeze/-thaw (default true; off e.g. with a Windows guest without VSS). */
  agentFsFreeze?: boolean;
  ignoresShutdown: boolean;
}

interface ScheduledEvent {
  at: number;
  seq: number;
  run: (at: number) => void;
}

/** The `description` is stored as `#` comment lines at the top of the file. */
function serializeSection(conf: ReadonlyMap<string, string>, extra: [string, string | undefined][] = []): string {
  let raw = '';
  const description = conf.get('description');
  if (description !== undefined) {
    raw += description === '' ? '#\n' : description.split('\n').map((line) => `#${encodeURIComponent(line)}\n`).join('');
  }
  const entries = [...conf.entries(), ...extra].filter(
    (entry): entry is [string, string] => entry[0] !== 'description' && entry[1] !== undefined,
  );
  entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [key, value] of entries) raw += `${key}: ${value}\n`;
  return raw;
}

/** The config file as qemu-server writes it; `digest` is its SHA-1. */
export function serializeVm(vm: VmRec): string {
  let raw = serializeSection(vm.conf);
  if (vm.pending.size > 0 || vm.pendingDelete.size > 0) {
    raw += '\n[PENDING]\n';
    raw += serializeSection(vm.pending, [['delete', pendingDeleteText(vm) || undefined]]);
  }
  for (const name of [...vm.snapshots.keys()].sort()) {
    const snap = vm.snapshots.get(name);
    if (!snap) continue;
    const conf = new Map(snap.conf);
    if (snap.description !== undefined) conf.set('description', snap.description);
    raw += `\n[${name}]\n`;
    raw += serializeSection(conf, [
      ['parent', snap.parent],
      ['snaptime', String(snap.snaptime)],
      ['snapstate', snap.snapstate],
      ['vmstate', snap.vmstate],
    ]);
  }
  return raw;
}

export function pendingDeleteText(vm: VmRec): string {
  return [...vm.pendingDelete.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([key, force]) => (force ? `!${key}` : key))
    .join(',');
}

export function digestOf(vm: VmRec): string {
  return createHash('sha1').update(serializeVm(vm)).digest('hex');
}

/** A config value as GET config returns it: integers and booleans as JSON numbers, the rest as strings. */
export function typedValue(key: string, value: string): string | number {
  const type = qemuConfigProperty(key)?.type ?? (key === 'snaptime' ? 'integer' : 'string');
  if ((type === 'integer' || type === 'boolean') && /^-?\d+$/.test(value)) return Number(value);
  return value;
}

export function typedConfig(conf: ReadonlyMap<string, string>): Record<string, string | number> {
  const result: Record<string, string | number> = {};
  for (const [key, value] of conf) result[key] = typedValue(key, value);
  return result;
}

/** Memory in MiB from the `memory` property string (default 512). */
export function memoryMiB(conf: ReadonlyMap<string, string>): number {
  const text = conf.get('memory');
  if (text === undefined) return 512;
  try {
    return Number(parsePropertyString(qemuConfigProperty('memory')?.format ?? {}, text)['current'] ?? 512);
  } catch {
    return 512;
  }
}

export function cpuCount(conf: ReadonlyMap<string, string>): number {
  const sockets = Number(conf.get('sockets') ?? 1);
  const cores = Number(conf.get('cores') ?? 1);
  return Number(conf.get('vcpus') ?? sockets * cores);
}

export function agentEnabled(conf: ReadonlyMap<string, string>): boolean {
  const text = conf.get('agent');
  if (text === undefined) return false;
  try {
    return parsePropertyString(qemuConfigProperty('agent')?.format ?? {}, text)['enabled'] === '1';
  } catch {
    return false;
  }
}

/**
 * Whether qemu-server issues guest-fsfreeze-freeze/-thaw around a snapshot without RAM: the
 * `freeze-fs` agent option (default on; `freeze-fs-on-backup` and `guest-fsfreeze` are its
 * aliases) since PVE 9; PVE 8.4's `freeze-fs-on-backup` is about backups only.
 */
export function agentFreezesFs(conf: ReadonlyMap<string, string>, version: string): boolean {
  if (!agentEnabled(conf)) return false;
  if (!version.startsWith('9')) return true;
  try {
    return parsePropertyString(qemuConfigProperty('agent')?.format ?? {}, conf.get('agent') ?? '')['freeze-fs'] !== '0';
  } catch {
    return true;
  }
}

export function hotplugFeatures(conf: ReadonlyMap<string, string>): Set<string> {
  try {
    return parseHotplug(conf.get('hotplug'));
  } catch {
    return parseHotplug('1');
  }
}

export function isTemplate(conf: ReadonlyMap<string, string>): boolean {
  return conf.get('template') === '1';
}

export function tagList(conf: ReadonlyMap<string, string>): string[] {
  return (conf.get('tags') ?? '').split(/[;,\s]+/).filter((tag) => tag !== '');
}

export class World {
  readonly nodes = new Map<string, NodeRec>();
  readonly vms = new Map<number, VmRec>();
  readonly volumes: Volumes;
  readonly bridges: Set<string>;
  /** VMIDs someone else will take right before our next create/clone with that id. */
  readonly stolenIds = new Set<number>();
  /** Nodes that are down (every path of theirs answers 595), until that fake-clock instant. */
  readonly downNodes = new Map<string, number>();
  private readonly events: ScheduledEvent[] = [];
  private seq = 0;
  private pidCounter = 0x3a000;
  private macCounter = 0;
  private readonly timers = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  closed = false;

  constructor(readonly options: ResolvedOptions) {
    const start = options.clock.now();
    options.nodes.forEach((node, index) =>
      this.nodes.set(node.name, {
        ...node,
        nodeid: index + 1,
        ip: `10.0.0.${11 + index}`,
        bootedAt: start - (86_400 + index * 3_600) * 1000,
      }),
    );
    this.bridges = new Set(options.bridges);
    this.volumes = new Volumes(options.storages, [...this.nodes.keys()]);
  }

  now(): number {
    return this.options.clock.now();
  }

  /** The node named in a `proxyto: node` request; pveproxy cannot forward to an unknown host. */
  node(name: string): NodeRec {
    const node = this.nodes.get(name === 'localhost' ? (this.nodes.keys().next().value ?? name) : name);
    if (!node) fail(`hostname lookup '${name}' failed - failed to get address info for: ${name}: No address associated with hostname`);
    return node;
  }

  /** Whether `name` is down now; corosync then lists it offline (see FakePve.nodeDown). */
  isNodeDown(name: string): boolean {
    const until = this.downNodes.get(name);
    if (until === undefined) return false;
    if (this.now() < until) return true;
    this.downNodes.delete(name);
    return false;
  }

  /** `load_config` on `node`: the file lives under the owning node only. */
  loadConfig(node: string, vmid: number): VmRec {
    const vm = this.vms.get(vmid);
    if (!vm || vm.node !== node) fail(`Configuration file 'nodes/${node}/qemu-server/${vmid}.conf' does not exist`);
    return vm;
  }

  /** `check_running` (assert_config_exists_on_node first). */
  checkRunning(node: string, vmid: number): boolean {
    const vm = this.vms.get(vmid);
    if (!vm || vm.node !== node) fail(`unable to find configuration file for VM ${vmid} on node '${node}'`);
    return vm.power !== 'stopped';
  }

  /** `check_vmid_unused`, after letting a pending "someone else takes this id" happen. */
  assertVmidUnused(vmid: number): void {
    this.takeStolenId(vmid);
    const existing = this.vms.get(vmid);
    if (existing) fail(`VM ${vmid} already exists on node '${existing.node}'`);
  }

  takeStolenId(vmid: number): void {
    if (!this.stolenIds.delete(vmid) || this.vms.has(vmid)) return;
    const node = this.nodes.keys().next().value ?? 'pve1';
    this.vms.set(vmid, this.newVm(vmid, node, new Map([['name', `taken-${vmid}`], ['memory', '1024']])));
  }

  newVm(vmid: number, node: string, conf: Map<string, string>): VmRec {
    return {
      vmid,
      node,
      conf,
      pending: new Map(),
      pendingDelete: new Map(),
      snapshots: new Map(),
      power: 'stopped',
      startedAt: 0,
      pid: 0,
      ignoresShutdown: false,
    };
  }

  nextFreeVmid(): number {
    let vmid = 100;
    while (this.vms.has(vmid)) vmid++;
    return vmid;
  }

  nextPid(): number {
    this.pidCounter += 1 + (this.pidCounter % 7);
    return this.pidCounter;
  }

  /** A new MAC with Proxmox's default prefix BC:24:11 (unique within the fake). */
  randomMac(): string {
    this.macCounter++;
    const n = (this.macCounter * 0x9e3779) & 0xffffff;
    const bytes = [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff].map((b) => b.toString(16).toUpperCase().padStart(2, '0'));
    return `BC:24:11:${bytes.join(':')}`;
  }

  uuid(): string {
    return randomUUID();
  }

  agentAnswers(vm: VmRec, at = this.now()): boolean {
    if (vm.power !== 'running') return false;
    if (!(vm.agentRunning ?? this.options.guestAgent)) return false;
    return at >= vm.startedAt + this.options.bootMs;
  }

  schedule(at: number, run: (at: number) => void): void {
    this.events.push({ at, seq: this.seq++, run });
  }

  /** Runs every event that is due, in time order (events may schedule further events). */
  settle(now = this.now()): void {
    for (;;) {
      let best: ScheduledEvent | undefined;
      for (const event of this.events) {
        if (event.at > now) continue;
        if (!best || event.at < best.at || (event.at === best.at && event.seq < best.seq)) best = event;
      }
      if (!best) return;
      this.events.splice(this.events.indexOf(best), 1);
      best.run(best.at);
    }
  }

  /** A delay that close() cuts short. */
  sleep(ms: number): Promise<void> {
    if (this.closed || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const entry = {
        resolve,
        timer: setTimeout(() => {
          this.timers.delete(entry);
          resolve();
        }, ms),
      };
      this.timers.add(entry);
    });
  }

  close(): void {
    this.closed = true;
    for (const entry of this.timers) {
      clearTimeout(entry.timer);
      entry.resolve();
    }
    this.timers.clear();
    this.events.length = 0;
  }
}
