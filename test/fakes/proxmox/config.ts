/** GET/POST/PUT `…/config`, `…/pending` and `…/unlink` (qemu-server's update_vm_api). */
import { createHash } from 'node:crypto';
import { reply, type Ctx, type Handler, type Reply } from './context.js';
import { checkDriveParams, createDisks, isCdrom, isDriveKey, normalizeNet, parseDrive } from './drives.js';
import { fail, lockedMessage, paramError } from './errors.js';
import { splitList } from './formats.js';
import { addUnused, applyPending, cleanupPending, hotplugPending, registerUnused, uniqueTags } from './pending.js';
import { pveSchema, resolveProperty } from './schema.js';
import { digestOf, isTemplate, memoryMiB, typedConfig, typedValue, type VmRec } from './state.js';
import { parsePropertyString } from './validate.js';

const CONTROL_PARAMS = new Set([
  'node',
  'vmid',
  'digest',
  'background_delay',
  'skip_cloud_init',
  'import-working-storage',
  'skiplock',
  'delete',
  'revert',
  'force',
]);

export const isRoot = (ctx: Ctx): boolean => ctx.auth.user === 'root@pam' && ctx.auth.tokenid === undefined;

function optionExists(key: string): boolean {
  const properties = pveSchema().method('GET', '/nodes/{node}/qemu/{vmid}/config').returns?.properties ?? {};
  return resolveProperty(properties, key) !== undefined;
}

/** PVE::Tools::validate_ssh_public_keys on the uri-unescaped value. */
export function validateSshKeys(escaped: string): void {
  let keys: string;
  try {
    keys = decodeURIComponent(escaped);
  } catch {
    keys = escaped;
  }
  const keyLine = /^(?:\S+\s+)?(?:ssh-(?:rsa|dss|ed25519)|ecdsa-sha2-nistp(?:256|384|521)|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)\s+[A-Za-z0-9+/]+={0,3}(?:\s.*)?$/;
  for (const line of keys.split('\n').map((text) => text.trim())) {
    if (line === '' || line.startsWith('#')) continue;
    if (!keyLine.test(line)) fail('SSH public key validation error');
  }
}

/** Checks a `cicustom` value's volumes the way check_volume_access does (storage must exist). */
export function checkCicustom(ctx: Ctx, value: string): void {
  const parsed = parsePropertyString('pve-qm-cicustom', value);
  for (const volid of Object.values(parsed)) ctx.world.volumes.parseVolname(volid);
}

export function checkLock(vm: VmRec): void {
  const lock = vm.conf.get('lock');
  if (lock !== undefined) fail(lockedMessage(lock));
}

function hashPassword(password: string): string {
  if (/^\$(?:[156]|2[ay])(\$.+){2}/.test(password)) return password;
  const salt = createHash('sha1').update(password).digest('base64url').slice(0, 16);
  return `$5$${salt}$${createHash('sha256').update(salt + password).digest('base64').replace(/=+$/, '')}`;
}

interface UpdateRequest {
  node: string;
  vmid: number;
  digest: string | undefined;
  skiplock: boolean;
  force: boolean;
  settings: Map<string, string>;
  deletes: string[];
  reverts: Set<string>;
}

function parseRequest(ctx: Ctx): UpdateRequest {
  const p = ctx.params;
  const node = ctx.world.node(p.need('node')).name;
  const skiplock = p.bool('skiplock') === true;
  if (skiplock && !isRoot(ctx)) paramError({ skiplock: 'Only root may use this option.' });
  const settings = new Map<string, string>();
  for (const name of p.names()) if (!CONTROL_PARAMS.has(name)) settings.set(name, p.str(name) ?? '');
  const sshkeys = settings.get('sshkeys');
  if (sshkeys !== undefined) validateSshKeys(sshkeys);
  const deleteText = p.str('delete') ?? '';
  const revertText = p.str('revert') ?? '';
  if (deleteText === '' && revertText === '' && settings.size === 0) fail('no options specified');
  const cdrom = settings.get('cdrom');
  if (cdrom !== undefined) {
    settings.delete('cdrom');
    settings.set('ide2', /media=/.test(cdrom) ? cdrom : `${cdrom},media=cdrom`);
  }
  const reverts = new Set<string>();
  for (const opt of splitList(revertText)) {
    if (!optionExists(opt)) paramError({ revert: `unknown option '${opt}'` });
    if (settings.has(opt)) paramError({ delete: `you can't use '-${opt}' and -revert ${opt}' at the same time` });
    reverts.add(opt);
  }
  const deletes: string[] = [];
  for (const raw of splitList(deleteText)) {
    const opt = raw === 'cdrom' ? 'ide2' : raw;
    if (settings.has(opt)) paramError({ delete: `you can't use '-${opt}' and -delete ${opt}' at the same time` });
    if (reverts.has(opt)) paramError({ revert: `you can't use '-delete ${opt}' and -revert ${opt}' at the same time` });
    if (!optionExists(opt)) paramError({ delete: `unknown option '${opt}'` });
    deletes.push(opt);
  }
  checkDriveParams(ctx.world, settings, undefined, isRoot(ctx));
  for (const [key, value] of settings) {
    if (/^net\d+$/.test(key)) settings.set(key, normalizeNet(ctx.world, value));
    if (key === 'vmgenid' && value === '1') settings.set(key, ctx.world.uuid());
    if (key === 'cicustom') checkCicustom(ctx, value);
  }
  return { node, vmid: p.int('vmid') ?? 0, digest: p.str('digest'), skiplock, force: p.bool('force') === true, settings, deletes, reverts };
}

/** `$load_and_check_config`: existence, digest, lock, balloon. */
function loadAndCheck(ctx: Ctx, request: UpdateRequest): VmRec {
  const vm = ctx.world.loadConfig(request.node, request.vmid);
  if (request.digest !== undefined && request.digest !== digestOf(vm)) fail('checksum mismatch (file change by other user?)');
  if (!request.skiplock) checkLock(vm);
  const memory = request.settings.get('memory');
  const balloon = request.settings.get('balloon');
  if (memory !== undefined || balloon !== undefined) {
    const conf = new Map([...vm.conf, ...vm.pending, ...request.settings]);
    const effectiveBalloon = Number(conf.get('balloon') ?? 0);
    if (effectiveBalloon > 0 && effectiveBalloon > memoryMiB(conf)) fail('balloon value too large (must be smaller than assigned memory)');
  }
  return vm;
}

function currentBootOrder(vm: VmRec): string[] {
  const boot = vm.conf.get('boot');
  if (boot === undefined) return [];
  try {
    return splitList(parsePropertyString('pve-qm-boot', boot)['order'] ?? '');
  } catch {
    return [];
  }
}

/**
 * `$updatefn`: writes to pending, then applies (stopped) or hot-plugs (running). The real worker
 * runs within milliseconds of the request, so the digest and lock were checked when it started.
 */
function update(ctx: Ctx, request: UpdateRequest, at: number, log: (line: string) => void): void {
  const world = ctx.world;
  const vm = world.loadConfig(request.node, request.vmid);
  const settings = new Map(request.settings);
  const deletes = [...request.deletes];
  for (const opt of request.reverts) {
    const current = vm.conf.get(opt);
    if (current !== undefined) settings.set(opt, current);
    else if (vm.pending.has(opt)) deletes.push(opt);
  }
  log(`update VM ${vm.vmid}: ${[...settings].map(([k, v]) => `-${k} ${k === 'cipassword' ? '<hidden>' : v}`).join(' ')}`);
  let bootOrder = currentBootOrder(vm);
  const bootDeleted = deletes.includes('boot');

  for (const opt of deletes) {
    const value = vm.conf.get(opt) ?? vm.pending.get(opt);
    if (value === undefined) {
      log(`cannot delete '${opt}' - not set in current configuration!`);
      continue;
    }
    const pendingValue = vm.pending.get(opt);
    vm.pending.delete(opt);
    if (!bootDeleted && bootOrder.includes(opt)) {
      bootOrder = bootOrder.filter((dev) => dev !== opt);
      vm.pending.set('boot', `order=${bootOrder.join(';')}`);
    }
    if (/^unused\d+$/.test(opt)) {
      if (vm.conf.get('protection') === '1') fail(`can't remove unused disk '${value}' - protection mode enabled`);
      world.volumes.remove(vm.node, value);
      vm.conf.delete(opt);
    } else if (opt === 'tags') {
      vm.conf.delete(opt);
    } else {
      if (isDriveKey(opt) && vm.conf.get('protection') === '1') fail(`can't remove drive '${opt}' - protection mode enabled`);
      if (isDriveKey(opt) && pendingValue !== undefined) registerUnused(world, vm, pendingValue, opt);
      vm.pendingDelete.set(opt, request.force);
    }
  }

  // qemu-server walks `keys %$param`, in Perl's hash order: a new CD drive sent with `boot` is
  // appended to the *old* order (below), which then replaces the new one if the drive comes later.
  // Sorted keys always take `boot` before any drive key: the fake plays that losing order every time.
  for (const opt of [...settings.keys()].sort()) {
    const value = settings.get(opt) ?? '';
    if (vm.pending.get(opt) === value) continue;
    if (isDriveKey(opt)) {
      const previous = vm.pending.get(opt);
      vm.pending.delete(opt);
      if (previous !== undefined) registerUnused(world, vm, previous, opt);
      const created = createDisks(
        world,
        { node: vm.node, vmid: vm.vmid, conf: new Map([...vm.conf, ...vm.pending]), template: isTemplate(vm.conf), at, log },
        new Map([[opt, value]]),
      );
      vm.pending.set(opt, created.get(opt) ?? value);
      if (bootOrder.length > 0 && isCdrom(parseDrive(opt, value)) && !bootOrder.includes(opt)) {
        bootOrder.push(opt);
        vm.pending.set('boot', `order=${bootOrder.join(';')}`);
      }
    } else if (opt === 'tags') {
      vm.pending.set(opt, uniqueTags(value));
    } else if (opt === 'cipassword') {
      vm.conf.set(opt, /^w/.test(vm.conf.get('ostype') ?? '') ? value : hashPassword(value));
    } else {
      vm.pending.set(opt, value);
      if (opt === 'boot') {
        const order = parsePropertyString('pve-qm-boot', value)['order'];
        if (order !== undefined) {
          const devices = splitList(order);
          for (const dev of devices) {
            const exists = vm.conf.has(dev) || vm.pending.has(dev) || settings.has(dev);
            if (!exists || deletes.includes(dev)) fail(`invalid bootorder: device '${dev}' does not exist'`);
          }
          vm.pending.set(opt, `order=${devices.join(';')}`);
          if (vm.conf.has('bootdisk')) vm.pendingDelete.set('bootdisk', false);
        }
      }
    }
    vm.pendingDelete.delete(opt);
  }

  cleanupPending(vm);
  if (vm.pending.size === 0 && vm.pendingDelete.size === 0) return;
  const errors: Record<string, string> = {};
  if (vm.power === 'stopped') applyPending(world, vm);
  else hotplugPending(world, vm, errors);
  if (Object.keys(errors).length > 0) paramError(errors);
}

async function updateVmApi(ctx: Ctx, sync: boolean): Promise<Reply> {
  const request = parseRequest(ctx);
  loadAndCheck(ctx, request); // early checks before forking/locking
  if (sync) {
    update(ctx, request, ctx.world.now(), () => undefined);
    return reply(null);
  }
  const task = ctx.tasks.start({
    node: request.node,
    type: 'qmconfig',
    id: String(request.vmid),
    auth: ctx.auth,
    start: () => void loadAndCheck(ctx, request),
    finish: (handle, at) => update(ctx, request, at, handle.log),
  });
  const delay = ctx.params.int('background_delay');
  if (delay === undefined) return reply(task.upid);
  const deadline = ctx.world.now() + delay * 1000;
  for (;;) {
    ctx.world.settle();
    if (task.status === 'stopped') {
      if (task.exitstatus === 'OK' || task.exitstatus?.startsWith('WARNINGS')) return reply(null);
      fail(`failed to update VM ${request.vmid}: ${task.exitstatus ?? ''}`);
    }
    if (ctx.world.now() >= deadline || ctx.world.closed) return reply(task.upid);
    await ctx.world.sleep(Math.min(50, deadline - ctx.world.now()));
  }
}

/** load_current_config: pending values applied unless `current=1`; cipassword masked. */
function configReply(vm: VmRec, current: boolean): Record<string, string | number> {
  const conf = new Map(vm.conf);
  if (!current) {
    for (const [key, value] of vm.pending) conf.set(key, value);
    for (const key of vm.pendingDelete.keys()) conf.delete(key);
  }
  const result = typedConfig(conf);
  if (conf.has('cipassword')) result['cipassword'] = '**********';
  result['digest'] = digestOf(vm);
  return result;
}

export const configHandlers: Record<string, Handler> = {
  'GET /nodes/{node}/qemu/{vmid}/config': (ctx) => {
    const p = ctx.params;
    const snapshot = p.str('snapshot');
    if (snapshot !== undefined && p.bool('current')) {
      const message = "cannot use 'snapshot' parameter with 'current'";
      paramError({ snapshot: message, current: message });
    }
    const vm = ctx.world.loadConfig(ctx.world.node(p.need('node')).name, p.int('vmid') ?? 0);
    if (snapshot !== undefined) {
      const snap = vm.snapshots.get(snapshot);
      if (!snap) fail(`snapshot '${snapshot}' does not exist`);
      const result = typedConfig(snap.conf);
      if (snap.conf.has('cipassword')) result['cipassword'] = '**********';
      result['digest'] = digestOf(vm);
      return reply(result);
    }
    return reply(configReply(vm, p.bool('current') === true));
  },

  'POST /nodes/{node}/qemu/{vmid}/config': (ctx) => updateVmApi(ctx, false),
  'PUT /nodes/{node}/qemu/{vmid}/config': (ctx) => updateVmApi(ctx, true),

  'GET /nodes/{node}/qemu/{vmid}/pending': (ctx) => {
    const vm = ctx.world.loadConfig(ctx.world.node(ctx.params.need('node')).name, ctx.params.int('vmid') ?? 0);
    const rows: Record<string, unknown>[] = [];
    const conf = new Map([...vm.conf, ['digest', digestOf(vm)]]);
    for (const [key, value] of conf) {
      const row: Record<string, unknown> = { key, value: key === 'cipassword' ? '**********' : typedValue(key, value) };
      const pending = vm.pending.get(key);
      if (pending !== undefined) row['pending'] = typedValue(key, pending);
      const force = vm.pendingDelete.get(key);
      if (force !== undefined) row['delete'] = force ? 2 : 1;
      rows.push(row);
    }
    for (const [key, value] of vm.pending) if (!conf.has(key)) rows.push({ key, pending: typedValue(key, value) });
    for (const [key, force] of vm.pendingDelete) if (!conf.has(key) && !vm.pending.has(key)) rows.push({ key, delete: force ? 2 : 1 });
    return reply(rows);
  },

  'PUT /nodes/{node}/qemu/{vmid}/unlink': (ctx) => {
    const vm = ctx.world.loadConfig(ctx.world.node(ctx.params.need('node')).name, ctx.params.int('vmid') ?? 0);
    checkLock(vm);
    for (const opt of splitList(ctx.params.need('idlist'))) {
      const value = vm.conf.get(opt);
      if (value === undefined) continue;
      vm.conf.delete(opt);
      const volid = /^unused\d+$/.test(opt) ? value : (parseDrive(opt, value)['file'] ?? '');
      if (ctx.params.bool('force') || /^unused\d+$/.test(opt)) ctx.world.volumes.remove(vm.node, volid);
      else if (isDriveKey(opt)) addUnused(vm, volid);
    }
    return reply(null);
  },
};
