/** `…/status/current` and the power workers (qmstart, qmstop, qmshutdown, qmreboot, qmreset, qmpause, qmresume). */
import { checkCicustom, checkLock, isRoot } from './config.js';
import { reply, type Ctx, type Handler } from './context.js';
import { drivesOf, isCdrom, parseNet } from './drives.js';
import { fail, paramError } from './errors.js';
import { applyPending } from './pending.js';
import { qmpStatus, vmStatus } from './qemu.js';
import { agentEnabled, hotplugFeatures, isTemplate, memoryMiB, type VmRec, type World } from './state.js';
import { splitVolid } from './storage.js';
import { parsePropertyString } from './validate.js';

interface Target {
  node: string;
  vmid: number;
}

function target(ctx: Ctx): Target {
  return { node: ctx.world.node(ctx.params.need('node')).name, vmid: ctx.params.int('vmid') ?? 0 };
}

/** Options only root@pam may set (a token of root@pam is not root@pam). */
function rootOnly(ctx: Ctx, names: string[]): void {
  if (isRoot(ctx)) return;
  for (const name of names) {
    const value = ctx.params.str(name);
    if (value !== undefined && value !== '' && value !== '0') paramError({ [name]: 'Only root may use this option.' });
  }
}

/** What config_to_command would refuse when the VM starts. */
function assertStartable(ctx: Ctx, vm: VmRec): void {
  for (const [key, value] of vm.conf) {
    if (!/^net\d+$/.test(key)) continue;
    const bridge = parseNet(value)['bridge'];
    if (bridge !== undefined && !ctx.world.bridges.has(bridge)) fail(`bridge '${bridge}' does not exist`);
  }
  if (hotplugFeatures(vm.conf).has('memory') && vm.conf.get('numa') !== '1') fail('NUMA needs to be enabled for memory hotplug');
  const cicustom = vm.conf.get('cicustom');
  if (cicustom !== undefined) {
    checkCicustom(ctx, cicustom);
    for (const volid of Object.values(parsePropertyString('pve-qm-cicustom', cicustom))) {
      const volume = ctx.world.volumes.get(vm.node, volid);
      if (!volume) fail(`volume '${volid}' does not exist`);
      if (!ctx.world.volumes.config(volume.storage).content.includes('snippets')) {
        fail(`storage '${volume.storage}' does not support content-type 'snippets'`);
      }
    }
  }
}

export function powerOn(world: World, vm: VmRec, at: number): void {
  vm.power = 'running';
  vm.startedAt = at;
  vm.pid = world.nextPid();
}

export function powerOff(vm: VmRec): void {
  vm.power = 'stopped';
  vm.startedAt = 0;
  vm.pid = 0;
}

/**
 * The end of a suspend to disk (RunState vm_suspend with includestate): the RAM is in a `vmstate`
 * volume, the process is gone, and `lock: suspended` stays until the VM is started again.
 */
export function hibernate(world: World, vm: VmRec, at: number): void {
  const disk = drivesOf(vm.conf).find(([, drive]) => !isCdrom(drive))?.[1];
  const storage = vm.conf.get('vmstatestorage') ?? splitVolid(disk?.['file'] ?? '')?.storage ?? 'local-lvm';
  const stamp = new Date(at).toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').replace('T', '');
  const size = (memoryMiB(vm.conf) * 2 + 500) * 1024 ** 2;
  const volume = world.volumes.allocate({ storage, node: vm.node, vmid: vm.vmid, size, name: `vm-${vm.vmid}-state-suspend-${stamp}`, format: 'raw', now: at });
  vm.conf.set('vmstate', volume.volid);
  vm.conf.set('runningmachine', 'pc-i440fx-9.2+pve1');
  vm.conf.set('lock', 'suspended');
  powerOff(vm);
}

/** vm_start of a hibernated VM: QEMU resumes from the state, which is then freed with the lock. */
function resumeHibernated(world: World, vm: VmRec, at: number): void {
  const state = vm.conf.get('vmstate');
  if (state !== undefined) world.volumes.remove(vm.node, state);
  for (const key of ['lock', 'vmstate', 'runningmachine', 'runningcpu', 'running-nets-host-mtu']) vm.conf.delete(key);
  // The RAM state comes back: the guest (and its agent) is already up.
  powerOn(world, vm, at - world.options.bootMs);
}

/** _do_vm_stop: the running VM (or undefined when there is nothing to stop), lock checked. */
function stoppable(ctx: Ctx, t: Target, skiplock: boolean): VmRec | undefined {
  if (!ctx.world.checkRunning(t.node, t.vmid)) return undefined;
  const vm = ctx.world.loadConfig(t.node, t.vmid);
  if (!skiplock) checkLock(vm);
  return vm;
}

/** How a graceful shutdown goes: the guest powers off, or the timeout (default 60 s) passes. */
function shutdownPlan(ctx: Ctx, t: Target, type: string, timeoutSeconds: number | undefined): { durationMs: number; timesOut: boolean } {
  const normal = ctx.tasks.duration(type);
  const limit = (timeoutSeconds ?? 60) * 1000;
  const ignores = ctx.world.vms.get(t.vmid)?.ignoresShutdown === true;
  if (ignores || limit < normal) return { durationMs: limit, timesOut: true };
  return { durationMs: normal, timesOut: false };
}

function startTask(ctx: Ctx, t: Target, type: string, spec: Omit<Parameters<Ctx['tasks']['start']>[0], 'node' | 'type' | 'id' | 'auth'>) {
  return reply(ctx.tasks.start({ node: t.node, type, id: String(t.vmid), auth: ctx.auth, ...spec }).upid);
}

export const powerHandlers: Record<string, Handler> = {
  'GET /nodes/{node}/qemu/{vmid}/status/current': (ctx) => {
    const t = target(ctx);
    const vm = ctx.world.loadConfig(t.node, t.vmid);
    const row = vmStatus(ctx.world, vm);
    row['qmpstatus'] = qmpStatus(vm);
    row['ha'] = { managed: 0 };
    if (agentEnabled(vm.conf)) row['agent'] = 1;
    if (vm.power !== 'stopped') {
      row['running-qemu'] = '9.2.0';
      row['running-machine'] = 'pc-i440fx-9.2+pve1';
    }
    return reply(row);
  },

  'POST /nodes/{node}/qemu/{vmid}/status/start': (ctx) => {
    const t = target(ctx);
    rootOnly(ctx, ['stateuri', 'skiplock', 'migratedfrom', 'migration_type', 'migration_network', 'targetstorage', 'force-cpu', 'with-conntrack-state', 'nets-host-mtu']);
    const skiplock = ctx.params.bool('skiplock') === true;
    let resume = false;
    return startTask(ctx, t, 'qmstart', {
      start: (handle) => {
        const vm = ctx.world.loadConfig(t.node, t.vmid);
        if (isTemplate(vm.conf)) fail("you can't start a vm if it's a template");
        // vm_start: the `suspended` lock is no obstacle, it means "resume from the saved state".
        resume = vm.conf.get('lock') === 'suspended';
        if (!skiplock && !resume) checkLock(vm);
        if (vm.power !== 'stopped') fail(`VM ${t.vmid} already running`);
        if (resume) handle.log('Resuming suspended VM');
        else applyPending(ctx.world, vm);
        assertStartable(ctx, vm);
      },
      finish: (_, at) => {
        const vm = ctx.world.loadConfig(t.node, t.vmid);
        if (vm.power !== 'stopped') return;
        if (resume) resumeHibernated(ctx.world, vm, at);
        else powerOn(ctx.world, vm, at);
      },
    });
  },

  'POST /nodes/{node}/qemu/{vmid}/status/stop': (ctx) => {
    const t = target(ctx);
    rootOnly(ctx, ['skiplock', 'keepActive', 'migratedfrom']);
    const skiplock = ctx.params.bool('skiplock') === true;
    return startTask(ctx, t, 'qmstop', {
      start: () => void stoppable(ctx, t, skiplock),
      finish: () => {
        const vm = ctx.world.vms.get(t.vmid);
        if (vm && vm.node === t.node) powerOff(vm);
      },
    });
  },

  'POST /nodes/{node}/qemu/{vmid}/status/shutdown': (ctx) => {
    const t = target(ctx);
    rootOnly(ctx, ['skiplock', 'keepActive']);
    const skiplock = ctx.params.bool('skiplock') === true;
    const force = ctx.params.bool('forceStop') === true;
    const existing = ctx.world.vms.get(t.vmid);
    let graceful = true;
    if (existing?.node === t.node && existing.power === 'paused') {
      if (!force) fail('VM is paused - cannot shutdown');
      graceful = false;
    }
    const plan = graceful ? shutdownPlan(ctx, t, 'qmshutdown', ctx.params.int('timeout')) : { durationMs: ctx.tasks.duration('qmshutdown'), timesOut: false };
    let running = false;
    return startTask(ctx, t, 'qmshutdown', {
      durationMs: plan.durationMs,
      start: (handle) => {
        running = stoppable(ctx, t, skiplock) !== undefined;
        if (!graceful) handle.log('VM is paused - stop instead of shutdown');
      },
      finish: (handle) => {
        const vm = ctx.world.vms.get(t.vmid);
        if (!running || !vm || vm.node !== t.node || vm.power === 'stopped') return;
        if (plan.timesOut) {
          if (!force) fail('VM quit/powerdown failed - got timeout');
          handle.log('VM still running - terminating now with SIGTERM');
        }
        powerOff(vm);
      },
    });
  },

  'POST /nodes/{node}/qemu/{vmid}/status/reboot': (ctx) => {
    const t = target(ctx);
    const vm = ctx.world.vms.get(t.vmid);
    if (vm?.node === t.node && vm.power === 'paused') fail('VM is paused - cannot shutdown');
    if (!ctx.world.checkRunning(t.node, t.vmid)) fail(`VM ${t.vmid} not running`);
    const plan = shutdownPlan(ctx, t, 'qmreboot', ctx.params.int('timeout'));
    return startTask(ctx, t, 'qmreboot', {
      durationMs: plan.durationMs,
      start: () => void stoppable(ctx, t, false),
      finish: (_, at) => {
        const current = ctx.world.loadConfig(t.node, t.vmid);
        if (current.power === 'stopped') return;
        if (plan.timesOut) fail('VM quit/powerdown failed - got timeout');
        // qmeventd starts the VM again right after the guest powered off; pending changes apply then.
        powerOff(current);
        applyPending(ctx.world, current);
        powerOn(ctx.world, current, at);
      },
    });
  },

  'POST /nodes/{node}/qemu/{vmid}/status/reset': (ctx) => {
    const t = target(ctx);
    rootOnly(ctx, ['skiplock']);
    if (!ctx.world.checkRunning(t.node, t.vmid)) fail(`VM ${t.vmid} not running`);
    const skiplock = ctx.params.bool('skiplock') === true;
    return startTask(ctx, t, 'qmreset', {
      start: () => void stoppable(ctx, t, skiplock),
      finish: (_, at) => {
        const vm = ctx.world.loadConfig(t.node, t.vmid);
        if (vm.power !== 'stopped') vm.startedAt = at;
      },
    });
  },

  'POST /nodes/{node}/qemu/{vmid}/status/suspend': (ctx) => {
    const t = target(ctx);
    rootOnly(ctx, ['skiplock']);
    if (!ctx.world.checkRunning(t.node, t.vmid)) fail(`VM ${t.vmid} not running`);
    const todisk = ctx.params.bool('todisk') === true;
    const skiplock = ctx.params.bool('skiplock') === true;
    return startTask(ctx, t, todisk ? 'qmsuspend' : 'qmpause', {
      start: () => {
        const vm = ctx.world.loadConfig(t.node, t.vmid);
        if (!skiplock) checkLock(vm);
        if (todisk) vm.conf.set('lock', 'suspending');
      },
      finish: (_, at) => {
        const vm = ctx.world.loadConfig(t.node, t.vmid);
        if (todisk) {
          hibernate(ctx.world, vm, at);
        } else if (vm.power === 'running') {
          vm.power = 'paused';
        }
      },
      onFail: () => {
        const vm = ctx.world.vms.get(t.vmid);
        if (todisk && vm?.conf.get('lock') === 'suspending') vm.conf.delete('lock');
      },
    });
  },

  'POST /nodes/{node}/qemu/{vmid}/status/resume': (ctx) => {
    const t = target(ctx);
    rootOnly(ctx, ['skiplock', 'nocheck']);
    const existing = ctx.world.vms.get(t.vmid);
    const suspended = existing?.node === t.node && existing.conf.get('lock') === 'suspended';
    if (!suspended && !ctx.world.checkRunning(t.node, t.vmid)) fail(`VM ${t.vmid} not running`);
    const skiplock = ctx.params.bool('skiplock') === true;
    return startTask(ctx, t, 'qmresume', {
      start: () => {
        const vm = ctx.world.loadConfig(t.node, t.vmid);
        const lock = vm.conf.get('lock');
        if (!suspended && !skiplock && lock !== undefined && lock !== 'backup') checkLock(vm);
      },
      finish: (_, at) => {
        const vm = ctx.world.loadConfig(t.node, t.vmid);
        if (suspended) {
          // The API's resume of a VM suspended to disk is vm_start.
          resumeHibernated(ctx.world, vm, at);
        } else if (vm.power === 'paused') {
          vm.power = 'running';
        }
      },
    });
  },
};

