/**
 * A fake Proxmox VE API server for driver tests. Every request is verified against the
 * official PVE 9.1 schema (test/fixtures/proxmox/pve-apidata.json) and answered the way
 * PVE 8.4/9.x answers (see the shared Proxmox notes): envelopes, UPID tasks, locks, pending
 * changes, guest agent, and injectable faults.
 */
import { Sessions, accessHandlers } from './auth.js';
import { agentHandlers } from './agent.js';
import { cloneHandlers } from './clone.js';
import { clusterHandlers } from './cluster.js';
import { configHandlers } from './config.js';
import type { Handler } from './context.js';
import { downloadHandlers } from './downloads.js';
import { FaultSet, type FaultHandle } from './faults.js';
import { resolveOptions, type FakePveOptions, type PveFault } from './options.js';
import { hibernate, powerHandlers } from './power.js';
import { qemuHandlers, seedVm } from './qemu.js';
import { PveHttpServer, type RequestRecord } from './server.js';
import { snapshotHandlers } from './snapshots.js';
import { tagList, typedConfig, World, type VmRec } from './state.js';
import { taskHandlers, Tasks } from './tasks.js';

export type { FaultHandle } from './faults.js';
export type { FakePveOptions, FaultLifetime, PveFault } from './options.js';
export type { RequestRecord } from './server.js';

export interface FakeVm {
  vmid: number;
  node: string;
  name: string | undefined;
  /** Current config, typed like `GET …/config?current=1`. */
  config: Record<string, string | number>;
  pending: Record<string, string | number>;
  pendingDelete: string[];
  status: 'running' | 'stopped';
  qmpstatus: 'running' | 'paused' | 'stopped';
  lock?: string;
  /** `frozen`: the guest's filesystems were frozen through its agent while it was taken. */
  snapshots: { name: string; parent?: string; vmstate: boolean; frozen: boolean; description: string }[];
  tags: string[];
}

export interface FakeTask {
  upid: string;
  type: string;
  id: string;
  node: string;
  status: string;
  exitstatus?: string;
  log: string[];
}

const HANDLERS: Record<string, Handler>[] = [
  accessHandlers,
  clusterHandlers,
  qemuHandlers,
  configHandlers,
  powerHandlers,
  cloneHandlers,
  snapshotHandlers,
  agentHandlers,
  taskHandlers,
  downloadHandlers,
];

export class FakePve {
  readonly requests: RequestRecord[] = [];
  private readonly faults: FaultSet;
  private readonly world: World;
  private readonly taskEngine: Tasks;
  private readonly sessions: Sessions;
  private readonly server: PveHttpServer;

  private constructor(options: FakePveOptions) {
    const resolved = resolveOptions(options);
    this.world = new World(resolved);
    this.faults = new FaultSet(() => this.world.now());
    this.taskEngine = new Tasks(this.world, this.faults);
    this.sessions = new Sessions(resolved);
    for (const template of resolved.templates) {
      if (!this.world.nodes.has(template.node)) throw new Error(`template ${template.vmid} is on unknown node '${template.node}'`);
      seedVm(this.world, { ...template, cloudInit: template.cloudInit ?? (template.bus ?? 'scsi') === 'scsi', template: true });
    }
    const handlers = new Map<string, Handler>();
    for (const group of HANDLERS) for (const [key, handler] of Object.entries(group)) handlers.set(key, handler);
    this.server = new PveHttpServer(
      { world: this.world, tasks: this.taskEngine, faults: this.faults, sessions: this.sessions, handlers, requests: this.requests },
      resolved.tls,
    );
  }

  static async start(options: FakePveOptions = {}): Promise<FakePve> {
    const fake = new FakePve(options);
    await fake.server.listen();
    return fake;
  }

  /** e.g. `http://127.0.0.1:43123`; the API is under `/api2/json`. */
  get url(): string {
    return this.server.url;
  }

  async close(): Promise<void> {
    this.world.close();
    await this.server.close();
  }

  vms(): FakeVm[] {
    this.world.settle();
    return [...this.world.vms.values()].sort((a, b) => a.vmid - b.vmid).map((vm) => snapshotOfVm(vm));
  }

  vm(vmid: number): FakeVm | undefined {
    this.world.settle();
    const vm = this.world.vms.get(vmid);
    return vm && snapshotOfVm(vm);
  }

  tasks(): FakeTask[] {
    this.world.settle();
    return this.taskEngine.all().map((task) => ({
      upid: task.upid,
      type: task.type,
      id: task.id,
      node: task.node,
      status: task.status,
      ...(task.exitstatus === undefined ? {} : { exitstatus: task.exitstatus }),
      log: [...task.log],
    }));
  }

  /** Arms a fault (see FaultLifetime for how long it lasts); the handle clears it. */
  injectFault(fault: PveFault): FaultHandle {
    return this.faults.add(fault);
  }

  clearFaults(): void {
    this.faults.clearAll();
  }

  /**
   * The node goes down: every `/nodes/<name>/…` path answers 595 (pveproxy cannot reach it) and
   * corosync lists it offline, while /cluster/resources keeps listing its VMs with their names,
   * locks and tags (from /etc/pve) and status `unknown`. Down until nodeUp, or for `forMs` on the
   * fake clock. Its tasks are left alone; a crashed task's lock is setLock.
   */
  nodeDown(name: string, options: { forMs?: number } = {}): void {
    this.world.node(name);
    this.world.downNodes.set(name, options.forMs === undefined ? Infinity : this.world.now() + options.forMs);
  }

  nodeUp(name: string): void {
    this.world.downNodes.delete(name);
  }

  /** A lock nobody will clear (`backup`, `clone`, `create` left by a task that crashed with its node); `undefined` is `qm unlock`. */
  setLock(vmid: number, lock: string | undefined): void {
    this.world.settle();
    const vm = this.vmRecord(vmid);
    if (lock === undefined) vm.conf.delete('lock');
    else vm.conf.set('lock', lock);
  }

  /** The VM as a suspend to disk leaves it: stopped, its RAM in a `vmstate` volume, `lock: suspended`. */
  hibernate(vmid: number): void {
    this.world.settle();
    hibernate(this.world, this.vmRecord(vmid), this.world.now());
  }

  /** A VM nobody tagged (no tags, no description), e.g. one an admin made by hand. */
  addForeignVm(vm: { vmid?: number; name: string; node?: string; running?: boolean }): number {
    this.world.settle();
    const vmid = vm.vmid ?? this.world.nextFreeVmid();
    if (this.world.vms.has(vmid)) throw new Error(`VM ${vmid} already exists`);
    const record = seedVm(this.world, {
      vmid,
      name: vm.name,
      node: vm.node ?? this.world.nodes.keys().next().value ?? 'pve1',
      diskGiB: 8,
      template: false,
      cloudInit: false,
    });
    if (vm.running) {
      record.power = 'running';
      record.startedAt = this.world.now() - this.world.options.bootMs;
      record.pid = this.world.nextPid();
    }
    return vmid;
  }

  /** Someone deletes the VM behind our back (`qm destroy` on the node). */
  destroyOutOfBand(vmid: number): void {
    const vm = this.world.vms.get(vmid);
    if (!vm) return;
    for (const volume of this.world.volumes.ownedBy(vm.node, vmid)) this.world.volumes.remove(vm.node, volume.volid);
    this.world.vms.delete(vmid);
  }

  /** Whether the guest runs qemu-guest-agent (overrides the guestAgent option). */
  setGuestAgent(vmid: number, running: boolean): void {
    this.vmRecord(vmid).agentRunning = running;
  }

  /** Whether the guest's agent offers guest-fsfreeze-freeze/-thaw (default true). */
  setGuestFsFreeze(vmid: number, offered: boolean): void {
    this.vmRecord(vmid).agentFsFreeze = offered;
  }

  /** A guest that ignores ACPI/agent shutdown requests: shutdown waits for its timeout. */
  setGuestIgnoresShutdown(vmid: number, ignores: boolean): void {
    this.vmRecord(vmid).ignoresShutdown = ignores;
  }

  /** Someone else creates `vmid` right before our next create/clone with that id. */
  takeNextId(vmid: number): void {
    this.world.stolenIds.add(vmid);
  }

  /** A snippet file (for `cicustom`) on every node that sees the storage. */
  addSnippet(storage: string, name: string, content: string): void {
    this.addVolume(storage, `snippets/${name}`, Buffer.byteLength(content), { content: 'snippets', data: content });
  }

  snippet(storage: string, name: string): string | undefined {
    const volid = `${storage}:snippets/${name}`;
    for (const node of this.world.nodes.keys()) {
      const volume = this.world.volumes.get(node, volid);
      if (volume) return volume.data;
    }
    return undefined;
  }

  /** An ISO, import image or other file volume, e.g. `addVolume('local', 'import/noble.qcow2', 3 * GiB)`. */
  addVolume(storage: string, volname: string, sizeBytes: number, options: { node?: string; content?: string; data?: string } = {}): string {
    const record = this.world.volumes.config(storage);
    const content = options.content ?? volname.split('/')[0] ?? 'images';
    const format = /\.(qcow2|raw|vmdk|iso|img)$/.exec(volname)?.[1] ?? 'raw';
    const nodes = options.node ? [options.node] : this.world.volumes.nodesOf(record);
    let volid = '';
    for (const node of nodes) {
      volid = this.world.volumes.add({
        storage,
        node,
        volname,
        size: sizeBytes,
        format,
        content,
        ctime: Math.floor(this.world.now() / 1000),
        base: false,
        ...(options.data === undefined ? {} : { data: options.data }),
      }).volid;
    }
    return volid;
  }

  /** Volumes of `content` (e.g. `import`), with the node that holds them (none for shared storages). */
  volumes(content?: string): { volid: string; node: string | undefined; size: number; content: string; sha256?: string }[] {
    this.world.settle();
    return this.world.volumes
      .all()
      .filter((volume) => content === undefined || volume.content === content)
      .map((volume) => ({
        volid: volume.volid,
        node: volume.node,
        size: volume.size,
        content: volume.content,
        ...(volume.sha256 === undefined ? {} : { sha256: volume.sha256 }),
      }));
  }

  /** Makes every issued ticket invalid (as if it had expired). */
  expireTickets(): void {
    this.sessions.expireAll();
  }

  private vmRecord(vmid: number): VmRec {
    const vm = this.world.vms.get(vmid);
    if (!vm) throw new Error(`no VM ${vmid}`);
    return vm;
  }
}

function snapshotOfVm(vm: VmRec): FakeVm {
  const lock = vm.conf.get('lock');
  return {
    vmid: vm.vmid,
    node: vm.node,
    name: vm.conf.get('name'),
    config: typedConfig(vm.conf),
    pending: typedConfig(vm.pending),
    pendingDelete: [...vm.pendingDelete.keys()],
    status: vm.power === 'stopped' ? 'stopped' : 'running',
    qmpstatus: vm.power,
    ...(lock === undefined ? {} : { lock }),
    snapshots: [...vm.snapshots.values()].map((snap) => ({
      name: snap.name,
      ...(snap.parent === undefined ? {} : { parent: snap.parent }),
      vmstate: snap.vmstate !== undefined,
      frozen: snap.frozen === true,
      description: snap.description ?? '',
    })),
    tags: tagList(vm.conf),
  };
}
