/** VM list, create (qmcreate), destroy (qmdestroy), template, feature and cloud-init endpoints. */
import { checkCicustom, checkLock, isRoot, validateSshKeys } from './config.js';
import { reply, type Ctx, type Handler } from './context.js';
import { bootDiskSize, checkDriveParams, createDisks, defaultBoot, drivesOf, isCdrom, isCloudinit, normalizeNet, printDrive } from './drives.js';
import { fail } from './errors.js';
import { uniqueTags } from './pending.js';
import { cpuCount, isTemplate, memoryMiB, type VmRec, type World } from './state.js';

const CREATE_CONTROL = new Set([
  'node',
  'vmid',
  'archive',
  'bwlimit',
  'force',
  'pool',
  'start',
  'ha-managed',
  'storage',
  'unique',
  'live-restore',
  'import-working-storage',
]);

const MiB = 1024 ** 2;

/** vmstatus: the row shared by the qemu list, status/current and cluster/resources. */
export function vmStatus(world: World, vm: VmRec): Record<string, unknown> {
  const now = world.now();
  const running = vm.power !== 'stopped';
  const maxmem = memoryMiB(vm.conf) * MiB;
  const uptime = running ? Math.max(0, Math.floor((now - vm.startedAt) / 1000)) : 0;
  const row: Record<string, unknown> = {
    vmid: vm.vmid,
    name: vm.conf.get('name') ?? `VM ${vm.vmid}`,
    status: running ? 'running' : 'stopped',
    cpus: cpuCount(vm.conf),
    cpu: running ? 0.0231 : 0,
    mem: running ? Math.floor(maxmem * 0.35) : 0,
    maxmem,
    disk: 0,
    maxdisk: bootDiskSize(world, vm.node, vm.conf),
    netin: running ? uptime * 1500 : 0,
    netout: running ? uptime * 700 : 0,
    diskread: running ? uptime * 4096 : 0,
    diskwrite: running ? uptime * 2048 : 0,
    uptime,
  };
  if (running) row['pid'] = vm.pid;
  if (isTemplate(vm.conf)) row['template'] = 1;
  const lock = vm.conf.get('lock');
  if (lock !== undefined) row['lock'] = lock;
  const tags = vm.conf.get('tags');
  if (tags !== undefined) row['tags'] = tags;
  if (vm.conf.has('serial0')) row['serial'] = 1;
  if (world.options.version === '9.1') row['memhost'] = running ? Math.floor(maxmem * 0.38) : 0;
  return row;
}

export function qmpStatus(vm: VmRec): string {
  if (vm.power === 'paused') return 'paused';
  return vm.power === 'running' ? 'running' : 'stopped';
}

/** A VM as a template would have it, for the seeded templates and foreign VMs. */
export function seedVm(
  world: World,
  spec: { vmid: number; name: string; node: string; diskGiB: number; storage?: string; bus?: string; cloudInit?: boolean; template: boolean },
): VmRec {
  const storage = spec.storage ?? 'local-lvm';
  const bus = spec.bus ?? 'scsi';
  const disk = `${bus}0`;
  const now = world.now();
  let volume = world.volumes.allocate({ storage, node: spec.node, vmid: spec.vmid, size: spec.diskGiB * 1024 ** 3, now });
  if (spec.template) volume = world.volumes.createBase(spec.node, volume.volid);
  const conf = new Map<string, string>([
    ['agent', '1'],
    ['cores', '2'],
    ['memory', '2048'],
    ['name', spec.name],
    ['net0', `virtio=${world.randomMac()},bridge=vmbr0`],
    ['ostype', 'l26'],
    ['sockets', '1'],
    ['smbios1', `uuid=${world.uuid()}`],
    ['vmgenid', world.uuid()],
    ['meta', `creation-qemu=9.2.0,ctime=${Math.floor(now / 1000)}`],
    [disk, printDrive(disk, { file: volume.volid, ...(bus === 'scsi' ? { discard: 'on', iothread: '1' } : {}), size: String(volume.size) })],
  ]);
  if (bus === 'scsi') conf.set('scsihw', 'virtio-scsi-single');
  if (spec.cloudInit) {
    const ci = world.volumes.allocate({ storage, node: spec.node, vmid: spec.vmid, size: 4 * MiB, name: `vm-${spec.vmid}-cloudinit`, now });
    conf.set('ide2', `${ci.volid},media=cdrom`);
    conf.set('ipconfig0', 'ip=dhcp');
    conf.set('serial0', 'socket');
    conf.set('vga', 'serial0');
  }
  conf.set('boot', defaultBoot(conf));
  if (spec.template) conf.set('template', '1');
  const vm = world.newVm(spec.vmid, spec.node, conf);
  world.vms.set(spec.vmid, vm);
  return vm;
}

function createVm(ctx: Ctx): ReturnType<Handler> {
  const p = ctx.params;
  const world = ctx.world;
  const node = world.node(p.need('node')).name;
  const vmid = p.int('vmid') ?? 0;
  if (p.has('archive')) fail('FakePve does not model restores (archive)');
  const pool = p.str('pool');
  if (pool !== undefined) fail(`pool '${pool}' does not exist`);
  const defaultStorage = p.str('storage');
  const start = p.bool('start') === true;
  const settings = new Map<string, string>();
  for (const name of p.names()) if (!CREATE_CONTROL.has(name)) settings.set(name, p.str(name) ?? '');
  const sshkeys = settings.get('sshkeys');
  if (sshkeys !== undefined) validateSshKeys(sshkeys);
  if (defaultStorage !== undefined) world.volumes.config(defaultStorage);
  const cdrom = settings.get('cdrom');
  if (cdrom !== undefined) {
    settings.delete('cdrom');
    settings.set('ide2', /media=/.test(cdrom) ? cdrom : `${cdrom},media=cdrom`);
  }
  checkDriveParams(world, settings, defaultStorage, isRoot(ctx));
  for (const [key, value] of settings) {
    if (/^net\d+$/.test(key)) settings.set(key, normalizeNet(world, value));
    if (key === 'cicustom') checkCicustom(ctx, value);
  }

  // create_and_lock_config: the id is taken (lock: create) before the worker forks.
  try {
    world.assertVmidUnused(vmid);
  } catch (error) {
    fail(`unable to create VM ${vmid} - ${error instanceof Error ? error.message : String(error)}`);
  }
  const vm = world.newVm(vmid, node, new Map([['lock', 'create']]));
  world.vms.set(vmid, vm);

  const task = ctx.tasks.start({
    node,
    type: 'qmcreate',
    id: String(vmid),
    auth: ctx.auth,
    finish: (handle, at) => {
      const conf = new Map(settings);
      const template = conf.get('template') === '1';
      let created: Map<string, string>;
      try {
        created = createDisks(world, { node, vmid, conf: new Map(), template, at, log: handle.log, ...(defaultStorage === undefined ? {} : { defaultStorage }) }, conf);
      } catch (error) {
        fail(`unable to create VM ${vmid} - ${error instanceof Error ? error.message : String(error)}`);
      }
      for (const [key, value] of created) conf.set(key, value);
      if (!conf.has('boot')) conf.set('boot', defaultBoot(conf));
      if (!conf.has('smbios1')) conf.set('smbios1', `uuid=${world.uuid()}`);
      if (!conf.has('vmgenid') || conf.get('vmgenid') === '1') conf.set('vmgenid', world.uuid());
      conf.set('meta', `creation-qemu=9.2.0,ctime=${Math.floor(at / 1000)}`);
      const tags = conf.get('tags');
      if (tags !== undefined) conf.set('tags', uniqueTags(tags));
      vm.conf = conf;
      if (start) {
        handle.log('Execute autostart');
        vm.power = 'running';
        vm.startedAt = at;
        vm.pid = world.nextPid();
      }
    },
    onFail: () => {
      if (world.vms.get(vmid) !== vm) return;
      for (const volume of world.volumes.ownedBy(node, vmid)) world.volumes.remove(node, volume.volid);
      world.vms.delete(vmid);
    },
  });
  return reply(task.upid);
}

function destroyVm(ctx: Ctx): ReturnType<Handler> {
  const p = ctx.params;
  const world = ctx.world;
  const node = world.node(p.need('node')).name;
  const vmid = p.int('vmid') ?? 0;
  if (p.bool('skiplock') && !isRoot(ctx)) fail('Only root may use this option.');
  const earlyChecks = (): VmRec => {
    const vm = world.loadConfig(node, vmid);
    if (vm.conf.get('protection') === '1') fail(`can't remove VM ${vmid} - protection mode enabled`);
    if (world.checkRunning(node, vmid)) fail(`VM ${vmid} is running - destroy failed`);
    return vm;
  };
  earlyChecks();
  const task = ctx.tasks.start({
    node,
    type: 'qmdestroy',
    id: String(vmid),
    auth: ctx.auth,
    start: () => {
      const vm = earlyChecks();
      // destroy_vm ignores the lock of a hibernated VM (qemu-server fix #4358, 7.3-3).
      if (!p.bool('skiplock') && vm.conf.get('lock') !== 'suspended') checkLock(vm);
    },
    steps: [
      {
        fraction: 0.5,
        run: () => {
          const vm = world.loadConfig(node, vmid);
          const owned = new Set(world.volumes.ownedBy(node, vmid).map((volume) => volume.volid));
          for (const [, drive] of drivesOf(vm.conf)) {
            const file = drive['file'] ?? '';
            if (isCdrom(drive) && !isCloudinit(drive)) owned.delete(file);
          }
          const referenced = new Set<string>();
          for (const conf of [vm.conf, ...[...vm.snapshots.values()].map((snap) => snap.conf)]) {
            for (const [key, value] of conf) if (/^unused\d+$/.test(key)) referenced.add(value);
            for (const [, drive] of drivesOf(conf)) referenced.add(drive['file'] ?? '');
          }
          for (const snap of vm.snapshots.values()) if (snap.vmstate) referenced.add(snap.vmstate);
          const state = vm.conf.get('vmstate');
          if (state !== undefined) referenced.add(state);
          for (const volid of owned) {
            if (referenced.has(volid) || p.bool('destroy-unreferenced-disks')) world.volumes.remove(node, volid);
          }
          vm.conf = new Map([['lock', 'destroyed']]);
          vm.pending.clear();
          vm.pendingDelete.clear();
          vm.snapshots.clear();
        },
      },
    ],
    finish: () => {
      world.vms.delete(vmid);
    },
  });
  return reply(task.upid);
}

function makeTemplate(ctx: Ctx): ReturnType<Handler> {
  const world = ctx.world;
  const node = world.node(ctx.params.need('node')).name;
  const vmid = ctx.params.int('vmid') ?? 0;
  const disk = ctx.params.str('disk');
  const check = (): VmRec => {
    const vm = world.loadConfig(node, vmid);
    checkLock(vm);
    if (vm.snapshots.size > 0) fail('unable to create template, because VM contains snapshots');
    if (isTemplate(vm.conf) && disk === undefined) fail("you can't convert a template to a template");
    if (world.checkRunning(node, vmid)) fail("you can't convert a VM to template if VM is running");
    return vm;
  };
  check();
  const task = ctx.tasks.start({
    node,
    type: 'qmtemplate',
    id: String(vmid),
    auth: ctx.auth,
    start: () => void check(),
    finish: () => {
      const vm = check();
      vm.conf.set('template', '1');
      for (const [key, drive] of drivesOf(vm.conf)) {
        if (disk !== undefined && key !== disk) continue;
        if (isCdrom(drive)) continue;
        const base = world.volumes.createBase(node, drive['file'] ?? '');
        vm.conf.set(key, printDrive(key, { ...drive, file: base.volid }));
      }
    },
  });
  return reply(task.upid);
}

export const qemuHandlers: Record<string, Handler> = {
  'GET /nodes/{node}/qemu': (ctx) => {
    const node = ctx.world.node(ctx.params.need('node')).name;
    const full = ctx.params.bool('full') === true;
    const rows = [...ctx.world.vms.values()]
      .filter((vm) => vm.node === node)
      .map((vm) => {
        const row = vmStatus(ctx.world, vm);
        if (full) row['qmpstatus'] = qmpStatus(vm);
        return row;
      });
    return reply(rows);
  },
  'POST /nodes/{node}/qemu': createVm,
  'DELETE /nodes/{node}/qemu/{vmid}': destroyVm,
  'POST /nodes/{node}/qemu/{vmid}/template': makeTemplate,

  'GET /nodes/{node}/qemu/{vmid}/feature': (ctx) => {
    const world = ctx.world;
    const node = world.node(ctx.params.need('node')).name;
    const vm = world.loadConfig(node, ctx.params.int('vmid') ?? 0);
    const feature = ctx.params.need('feature') as 'snapshot' | 'clone' | 'copy';
    const snapname = ctx.params.str('snapname');
    const conf = snapname === undefined ? vm.conf : vm.snapshots.get(snapname)?.conf;
    if (!conf) fail(`snapshot '${snapname ?? ''}' does not exist`);
    const hasFeature = drivesOf(conf)
      .filter(([, drive]) => !isCdrom(drive))
      .every(([, drive]) => world.volumes.hasFeature(feature, drive['file'] ?? '', snapname));
    const shared = drivesOf(conf).every(([, drive]) => {
      const storage = world.volumes.storages.get((drive['file'] ?? '').split(':')[0] ?? '');
      return isCdrom(drive) || storage?.shared === true;
    });
    return reply({ hasFeature: hasFeature ? 1 : 0, nodes: shared ? [...world.nodes.keys()].filter((n) => n !== node) : [] });
  },

  'PUT /nodes/{node}/qemu/{vmid}/cloudinit': (ctx) => {
    const vm = ctx.world.loadConfig(ctx.world.node(ctx.params.need('node')).name, ctx.params.int('vmid') ?? 0);
    checkLock(vm);
    return reply(null);
  },

  'GET /nodes/{node}/qemu/{vmid}/cloudinit/dump': (ctx) => {
    const vm = ctx.world.loadConfig(ctx.world.node(ctx.params.need('node')).name, ctx.params.int('vmid') ?? 0);
    const type = ctx.params.need('type');
    if (type === 'meta') return reply(`instance-id: ${vm.conf.get('smbios1')?.replace(/^uuid=/, '') ?? vm.vmid}\n`);
    if (type === 'network') return reply('version: 1\nconfig: []\n');
    const user = vm.conf.get('ciuser');
    const keys = decodeURIComponent(vm.conf.get('sshkeys') ?? '').split('\n').filter((line) => line !== '');
    let yaml = `#cloud-config\nhostname: ${vm.conf.get('name') ?? `VM${vm.vmid}`}\nmanage_etc_hosts: true\n`;
    if (user !== undefined) yaml += `user: ${user}\n`;
    if (keys.length > 0) yaml += `ssh_authorized_keys:\n${keys.map((key) => `  - ${key}`).join('\n')}\n`;
    yaml += `package_upgrade: ${vm.conf.get('ciupgrade') === '0' ? 'false' : 'true'}\n`;
    return reply(yaml);
  },
};

