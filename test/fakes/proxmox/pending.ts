/**
 * Pending changes, as qemu-server applies them: everything goes to the [PENDING] section
 * first; a stopped VM takes it all (vmconfig_apply_pending), a running VM only what can be
 * hot-plugged (vmconfig_hotplug_pending) and keeps the rest pending until the next start.
 */
import { addError } from './errors.js';
import { drivesOf, isCdrom, isCloudinit, isDriveKey, parseDrive, parseNet } from './drives.js';
import { splitList } from './formats.js';
import { cpuCount, hotplugFeatures, type VmRec, type World } from './state.js';
import { splitVolid } from './storage.js';

/** Changed live even on a running VM. */
const FAST_PLUG = new Set([
  'description',
  'hookscript',
  'lock',
  'migrate_downtime',
  'migrate_speed',
  'name',
  'onboot',
  'protection',
  'shares',
  'startup',
  'tags',
  'vmstatestorage',
]);

export const CLOUDINIT_OPTIONS = new Set(['cicustom', 'cipassword', 'citype', 'ciuser', 'ciupgrade', 'nameserver', 'searchdomain', 'sshkeys']);
const isCloudinitOption = (key: string): boolean => CLOUDINIT_OPTIONS.has(key) || /^ipconfig\d+$/.test(key);

/** get_unique_tags: split, drop case-insensitive duplicates, sort, join with `;`. */
export function uniqueTags(text: string): string {
  const seen = new Map<string, string>();
  for (const tag of splitList(text)) if (!seen.has(tag.toLowerCase())) seen.set(tag.toLowerCase(), tag);
  return [...seen.values()].sort((a, b) => a.localeCompare(b)).join(';');
}

/** add_unused_volume: the lowest free `unusedN`, no duplicates. */
export function addUnused(vm: VmRec, volid: string): void {
  let free: string | undefined;
  for (let index = 255; index >= 0; index--) {
    const key = `unused${index}`;
    const existing = vm.conf.get(key);
    if (existing === volid) return;
    if (existing === undefined) free = key;
  }
  if (free === undefined) throw new Error('Too many unused volumes - please delete them first.');
  vm.conf.set(free, volid);
}

function referenced(vm: VmRec, volid: string): boolean {
  const inUse = (conf: ReadonlyMap<string, string>): boolean => drivesOf(conf).some(([, drive]) => drive['file'] === volid);
  return inUse(vm.conf) || inUse(vm.pending) || [...vm.snapshots.values()].some((snap) => inUse(snap.conf));
}

/** vmconfig_register_unused_drive: cloud-init drives are freed, disks become `unusedN`. */
export function registerUnused(world: World, vm: VmRec, value: string, key: string): void {
  const drive = parseDrive(key, value);
  const volid = drive['file'] ?? '';
  if (isCloudinit(drive)) {
    if (!referenced(vm, volid)) world.volumes.remove(vm.node, volid);
  } else if (!isCdrom(drive) && splitVolid(volid) && world.volumes.get(vm.node, volid)?.vmid === vm.vmid && !referenced(vm, volid)) {
    addUnused(vm, volid);
  }
}

/** vmconfig_delete_or_detach_drive. */
function deleteOrDetachDrive(world: World, vm: VmRec, key: string, force: boolean): void {
  const value = vm.conf.get(key);
  if (value === undefined) return;
  vm.conf.delete(key);
  if (force) {
    const volid = parseDrive(key, value)['file'] ?? '';
    if (!referenced(vm, volid)) world.volumes.remove(vm.node, volid);
  } else {
    registerUnused(world, vm, value, key);
  }
}

/** cleanup_pending: drop pending values equal to the current ones and deletions of unset keys. */
export function cleanupPending(vm: VmRec): void {
  for (const [key, value] of [...vm.pending]) if (vm.conf.get(key) === value) vm.pending.delete(key);
  for (const key of [...vm.pendingDelete.keys()]) if (!vm.conf.has(key)) vm.pendingDelete.delete(key);
}

/** vmconfig_apply_pending (stopped VM, or VM start). */
export function applyPending(world: World, vm: VmRec): void {
  for (const [key, force] of [...vm.pendingDelete].sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (isDriveKey(key)) deleteOrDetachDrive(world, vm, key, force);
    else vm.conf.delete(key);
    vm.pendingDelete.delete(key);
  }
  cleanupPending(vm);
  for (const key of [...vm.pending.keys()].sort()) {
    const value = vm.pending.get(key) ?? '';
    vm.pending.delete(key);
    const old = vm.conf.get(key);
    vm.conf.set(key, value);
    if (old !== undefined && isDriveKey(key)) registerUnused(world, vm, old, key);
  }
}

/** vmconfig_hotplug_pending (running VM): what cannot change live stays pending ("skip"). */
export function hotplugPending(world: World, vm: VmRec, errors: Record<string, string>): void {
  const features = hotplugFeatures(vm.conf);
  for (const key of [...vm.pending.keys()]) {
    if (!FAST_PLUG.has(key)) continue;
    vm.conf.set(key, vm.pending.get(key) ?? '');
    vm.pending.delete(key);
  }

  for (const [key, force] of [...vm.pendingDelete].sort(([a], [b]) => (a < b ? -1 : 1))) {
    let live = false;
    if (FAST_PLUG.has(key) || key === 'cpuunits' || key === 'cpulimit') live = true;
    else if (key === 'hotplug') live = !/(cpu|memory)/.test(vm.conf.get('hotplug') ?? '');
    else if (key === 'vcpus') live = features.has('cpu') && vm.conf.get('numa') === '1';
    else if (/^net\d+$/.test(key)) live = features.has('network');
    else if (isDriveKey(key)) live = features.has('disk') && !/^(ide|sata)\d+$/.test(key);
    else if (isCloudinitOption(key)) live = features.has('cloudinit');
    if (!live) continue;
    if (isDriveKey(key)) deleteOrDetachDrive(world, vm, key, force);
    else vm.conf.delete(key);
    vm.pendingDelete.delete(key);
  }

  for (const key of [...vm.pending.keys()].sort()) {
    const value = vm.pending.get(key) ?? '';
    let error: string | undefined;
    let live = false;
    if (key === 'vcpus') {
      if (features.has('cpu') && vm.conf.get('numa') === '1') {
        const max = cpuCount(new Map([...vm.conf].filter(([k]) => k !== 'vcpus')));
        if (Number(value) > max) error = "you can't add more vcpus than maxcpus";
        else live = true;
      }
    } else if (key === 'memory') {
      if (features.has('memory')) {
        if (vm.conf.get('numa') !== '1') error = 'NUMA needs to be enabled for memory hotplug';
        else live = true;
      }
    } else if (key === 'balloon' || key === 'cpuunits' || key === 'cpulimit') {
      live = key !== 'balloon' || (vm.conf.get('balloon') === '0') === (value === '0');
    } else if (key === 'hotplug') {
      live = !/memory/.test(vm.conf.get('hotplug') ?? '') && !/memory/.test(value);
    } else if (/^net\d+$/.test(key)) {
      if (features.has('network')) {
        const bridge = parseNet(value)['bridge'];
        if (bridge !== undefined && !world.bridges.has(bridge)) error = `bridge '${bridge}' does not exist`;
        else live = true;
      }
    } else if (isDriveKey(key)) {
      const drive = parseDrive(key, value);
      if (isCloudinit(drive)) live = false;
      else if (isCdrom(drive)) live = true;
      else live = features.has('disk') && !/^(ide|sata)\d+$/.test(key);
    } else if (isCloudinitOption(key)) {
      live = features.has('cloudinit');
    }
    if (error !== undefined) {
      addError(errors, key, error);
      continue;
    }
    if (!live) continue;
    const old = vm.conf.get(key);
    vm.conf.set(key, value);
    vm.pending.delete(key);
    if (old !== undefined && isDriveKey(key)) registerUnused(world, vm, old, key);
  }
}
