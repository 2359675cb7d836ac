/** Snapshot list/create/delete/rollback, following pve-guest-common's AbstractConfig snapshot code. */
import { checkLock } from './config.js';
import { reply, type Ctx, type Handler } from './context.js';
import { drivesOf, isCdrom } from './drives.js';
import { fail } from './errors.js';
import { addUnused } from './pending.js';
import { powerOff, powerOn } from './power.js';
import { agentFreezesFs, digestOf, isTemplate, memoryMiB, typedConfig, type SnapshotRec, type VmRec } from './state.js';
import { splitVolid } from './storage.js';

interface Target {
  node: string;
  vmid: number;
  snapname: string;
}

function target(ctx: Ctx): Target {
  return {
    node: ctx.world.node(ctx.params.need('node')).name,
    vmid: ctx.params.int('vmid') ?? 0,
    snapname: ctx.params.str('snapname') ?? '',
  };
}

/** __snapshot_copy_config: everything but snapshot bookkeeping, lock, description and unused disks. */
function copyConfig(source: ReadonlyMap<string, string>): Map<string, string> {
  const skip = new Set(['snapstate', 'snaptime', 'vmstate', 'lock', 'digest', 'description']);
  return new Map([...source].filter(([key]) => !skip.has(key) && !/^unused\d+$/.test(key)));
}

function snapshotOf(vm: VmRec, name: string): SnapshotRec {
  const snap = vm.snapshots.get(name);
  if (!snap) fail(`snapshot '${name}' does not exist`);
  return snap;
}

export const snapshotHandlers: Record<string, Handler> = {
  'GET /nodes/{node}/qemu/{vmid}/snapshot': (ctx) => {
    const t = target(ctx);
    const vm = ctx.world.loadConfig(t.node, t.vmid);
    const rows: Record<string, unknown>[] = [...vm.snapshots.values()].map((snap) => {
      const row: Record<string, unknown> = {
        name: snap.name,
        snaptime: snap.snaptime,
        vmstate: snap.vmstate ? 1 : 0,
        description: snap.description ?? '',
      };
      if (snap.parent) row['parent'] = snap.parent;
      if (snap.snapstate) row['snapstate'] = snap.snapstate;
      return row;
    });
    const current: Record<string, unknown> = {
      name: 'current',
      digest: digestOf(vm),
      running: vm.power === 'stopped' ? 0 : 1,
      description: 'You are here!',
    };
    const parent = vm.conf.get('parent');
    if (parent) current['parent'] = parent;
    rows.push(current);
    return reply(rows);
  },

  'POST /nodes/{node}/qemu/{vmid}/snapshot': (ctx) => {
    const t = target(ctx);
    const world = ctx.world;
    if (t.snapname === 'current') fail("unable to use snapshot name 'current' (reserved name)");
    if (t.snapname.toLowerCase() === 'pending') fail("unable to use snapshot name 'pending' (reserved name)");
    world.loadConfig(t.node, t.vmid);
    const wantVmstate = ctx.params.bool('vmstate') === true;
    const description = ctx.params.str('description');
    const task = ctx.tasks.start({
      node: t.node,
      type: 'qmsnapshot',
      id: String(t.vmid),
      auth: ctx.auth,
      start: (handle, at) => {
        // __snapshot_prepare
        const vm = world.loadConfig(t.node, t.vmid);
        if (isTemplate(vm.conf)) fail("you can't take a snapshot if it's a template");
        checkLock(vm);
        if (vm.snapshots.has(t.snapname)) fail(`snapshot name '${t.snapname}' already used`);
        const disks = drivesOf(vm.conf).filter(([, drive]) => !isCdrom(drive));
        if (!disks.every(([, drive]) => world.volumes.hasFeature('snapshot', drive['file'] ?? ''))) {
          fail('snapshot feature is not available');
        }
        for (const snap of vm.snapshots.values()) if (snap.parent === t.snapname) delete snap.parent;
        vm.conf.set('lock', 'snapshot');
        const snap: SnapshotRec = { name: t.snapname, conf: copyConfig(vm.conf), snaptime: Math.floor(at / 1000), snapstate: 'prepare' };
        const parent = vm.conf.get('parent');
        if (parent !== undefined) snap.parent = parent;
        snap.conf.delete('parent');
        if (description) snap.description = description;
        // A stopped VM has no RAM to save: vmstate is silently dropped (AbstractConfig::__snapshot_prepare).
        if (wantVmstate && vm.power !== 'stopped') {
          const storage = vm.conf.get('vmstatestorage') ?? splitVolid(disks[0]?.[1]['file'] ?? '')?.storage ?? 'local-lvm';
          const size = (memoryMiB(vm.conf) * 2 + 500) * 1024 ** 2;
          snap.vmstate = world.volumes.allocate({ storage, node: t.node, vmid: t.vmid, size, name: `vm-${t.vmid}-state-${t.snapname}`, format: 'raw', now: at }).volid;
          handle.log(`saving VM state and RAM using storage '${storage}'`);
        } else if (vm.power === 'running' && agentFreezesFs(vm.conf, world.options.version) && world.agentAnswers(vm, at)) {
          // __snapshot_check_freeze_needed asks the agent first (qga_check_running): one that does
          // not answer means no freeze, silently. A freeze that fails (__snapshot_freeze) only
          // warns, and the snapshot is taken unfrozen.
          if (vm.agentFsFreeze ?? true) {
            handle.log('issuing guest fs freeze');
            snap.frozen = true;
          } else {
            handle.log("guest-fsfreeze-freeze problems - VM qmp command 'guest-fsfreeze-freeze' failed - The command guest-fsfreeze-freeze has been disabled for this instance");
          }
        }
        vm.snapshots.set(t.snapname, snap);
      },
      finish: () => {
        // __snapshot_commit
        const vm = world.loadConfig(t.node, t.vmid);
        const snap = snapshotOf(vm, t.snapname);
        delete snap.snapstate;
        vm.conf.delete('lock');
        vm.conf.set('parent', t.snapname);
      },
      onFail: () => {
        const vm = world.vms.get(t.vmid);
        const snap = vm?.snapshots.get(t.snapname);
        if (!vm || !snap || snap.snapstate !== 'prepare') return;
        if (snap.vmstate) world.volumes.remove(t.node, snap.vmstate);
        vm.snapshots.delete(t.snapname);
        if (vm.conf.get('lock') === 'snapshot') vm.conf.delete('lock');
      },
    });
    return reply(task.upid);
  },

  'GET /nodes/{node}/qemu/{vmid}/snapshot/{snapname}': () => reply([{ cmd: 'rollback' }, { cmd: 'config' }]),

  'GET /nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config': (ctx) => {
    const t = target(ctx);
    const vm = ctx.world.loadConfig(t.node, t.vmid);
    const snap = snapshotOf(vm, t.snapname);
    const result: Record<string, unknown> = { ...typedConfig(snap.conf), snaptime: snap.snaptime, digest: digestOf(vm) };
    if (snap.conf.has('cipassword')) result['cipassword'] = '**********';
    if (snap.description !== undefined) result['description'] = snap.description;
    if (snap.parent !== undefined) result['parent'] = snap.parent;
    if (snap.vmstate !== undefined) result['vmstate'] = snap.vmstate;
    if (snap.snapstate !== undefined) result['snapstate'] = snap.snapstate;
    return reply(result);
  },

  'PUT /nodes/{node}/qemu/{vmid}/snapshot/{snapname}/config': (ctx) => {
    const t = target(ctx);
    const description = ctx.params.str('description');
    if (description === undefined) return reply(null);
    const vm = ctx.world.loadConfig(t.node, t.vmid);
    checkLock(vm);
    snapshotOf(vm, t.snapname).description = description;
    return reply(null);
  },

  'DELETE /nodes/{node}/qemu/{vmid}/snapshot/{snapname}': (ctx) => {
    const t = target(ctx);
    const world = ctx.world;
    const task = ctx.tasks.start({
      node: t.node,
      type: 'qmdelsnapshot',
      id: String(t.vmid),
      auth: ctx.auth,
      start: () => {
        const vm = world.loadConfig(t.node, t.vmid);
        const snap = snapshotOf(vm, t.snapname);
        checkLock(vm);
        vm.conf.set('lock', 'snapshot-delete');
        if (isTemplate(vm.conf)) fail("you can't delete a snapshot if vm is a template");
        snap.snapstate = 'delete';
      },
      finish: () => {
        const vm = world.loadConfig(t.node, t.vmid);
        const snap = snapshotOf(vm, t.snapname);
        if (snap.vmstate) world.volumes.remove(t.node, snap.vmstate);
        if (vm.conf.get('parent') === t.snapname) {
          if (snap.parent) vm.conf.set('parent', snap.parent);
          else vm.conf.delete('parent');
        }
        for (const other of vm.snapshots.values()) {
          if (other.parent !== t.snapname) continue;
          if (snap.parent) other.parent = snap.parent;
          else delete other.parent;
        }
        vm.snapshots.delete(t.snapname);
        vm.conf.delete('lock');
      },
    });
    return reply(task.upid);
  },

  'POST /nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback': (ctx) => {
    const t = target(ctx);
    const world = ctx.world;
    const start = ctx.params.bool('start') === true;
    const task = ctx.tasks.start({
      node: t.node,
      type: 'qmrollback',
      id: String(t.vmid),
      auth: ctx.auth,
      start: (handle) => {
        const vm = world.loadConfig(t.node, t.vmid);
        if (isTemplate(vm.conf)) fail("you can't rollback if vm is a template");
        const snap = snapshotOf(vm, t.snapname);
        if (snap.snapstate) fail(`unable to rollback to incomplete snapshot (snapstate = ${snap.snapstate})`);
        checkLock(vm);
        if (vm.power !== 'stopped') {
          handle.log('stopping VM for rollback');
          powerOff(vm);
        }
        vm.conf.set('lock', 'rollback');
      },
      finish: (handle, at) => {
        const vm = world.loadConfig(t.node, t.vmid);
        const snap = snapshotOf(vm, t.snapname);
        const inSnapshot = new Set(drivesOf(snap.conf).map(([, drive]) => drive['file'] ?? ''));
        const kept = new Map([...vm.conf].filter(([key]) => /^unused\d+$/.test(key) || key === 'description'));
        const unused = drivesOf(vm.conf)
          .filter(([, drive]) => !isCdrom(drive) && !inSnapshot.has(drive['file'] ?? ''))
          .map(([, drive]) => drive['file'] ?? '');
        vm.conf = new Map([...kept, ...copyConfig(snap.conf), ['parent', t.snapname]]);
        for (const volid of unused) addUnused(vm, volid);
        vm.pending.clear();
        vm.pendingDelete.clear();
        if (snap.vmstate) {
          handle.log('restoring VM state from snapshot; the VM resumes where it was');
          powerOn(world, vm, at - world.options.bootMs);
        } else if (start) {
          powerOn(world, vm, at);
        }
      },
      // A rollback that fails half-way leaves `lock: rollback` behind, as PVE does.
    });
    return reply(task.upid);
  },
};
