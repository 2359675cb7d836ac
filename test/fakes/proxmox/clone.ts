/** `…/clone` (qmclone) and `…/resize` (resize), following qemu-server's clone_vm and resize_vm. */
import { checkLock } from './config.js';
import { reply, type Ctx, type Handler } from './context.js';
import { drivesOf, isCdrom, isCloudinit, parseDrive, parseNet, printDrive, printNet, sizeOf, type Drive } from './drives.js';
import { fail, paramError } from './errors.js';
import { digestOf, isTemplate, type VmRec } from './state.js';
import { splitVolid } from './storage.js';
import { formatSize, parseSize } from './validate.js';

const NOT_COPIED = new Set(['snapshots', 'parent', 'snaptime', 'vmstate', 'snapstate', 'runningcpu', 'runningmachine', 'running-nets-host-mtu']);

interface ClonePlan {
  newconf: Map<string, string>;
  drives: { key: string; drive: Drive; full: boolean }[];
  oldName: string | undefined;
}

function cloneVm(ctx: Ctx): ReturnType<Handler> {
  const p = ctx.params;
  const world = ctx.world;
  const node = world.node(p.need('node')).name;
  const vmid = p.int('vmid') ?? 0;
  const newid = p.int('newid') ?? 0;
  const pool = p.str('pool');
  const snapname = p.str('snapname');
  const storage = p.str('storage');
  const format = p.str('format');
  let targetNode = p.str('target');
  if (targetNode === node || targetNode === 'localhost') targetNode = undefined;
  const running = world.checkRunning(node, vmid);

  const loadAndCheck = (): ClonePlan => {
    if (pool !== undefined) fail(`pool '${pool}' does not exist`);
    if (targetNode !== undefined && !world.nodes.has(targetNode)) fail(`no such cluster node '${targetNode}'`);
    if (storage !== undefined) {
      const scfg = world.volumes.checkEnabled(storage, node);
      if (!scfg.content.includes('images')) paramError({ storage: `storage '${storage}' does not support vm images` });
      if (targetNode !== undefined) {
        world.volumes.checkEnabled(storage, targetNode);
        if (!scfg.shared) fail(`can't clone to non-shared storage '${storage}'`);
      }
    }
    const vm = world.loadConfig(node, vmid);
    checkLock(vm);
    if ((vm.power !== 'stopped') !== running) fail('unexpected state change');
    const snap = snapname === undefined ? undefined : vm.snapshots.get(snapname);
    if (snapname !== undefined && !snap) fail(`snapshot '${snapname}' does not exist`);
    const full = p.bool('full') ?? !isTemplate(vm.conf);
    if (storage !== undefined && !full) fail("parameter 'storage' not allowed for linked clones");
    if (format !== undefined && !full) fail("parameter 'format' not allowed for linked clones");
    const oldconf = snap?.conf ?? vm.conf;
    let shared = true;
    const drives: ClonePlan['drives'] = [];
    const newconf = new Map<string, string>([['lock', 'clone']]);
    for (const key of [...oldconf.keys()].sort()) {
      const value = oldconf.get(key) ?? '';
      if (NOT_COPIED.has(key) || /^unused\d+$/.test(key)) continue;
      if (full && running && snapname === undefined && key === 'tpmstate0') fail('cannot clone TPM state while VM is running');
      if (/^net\d+$/.test(key)) {
        // always change MAC! address
        const net = parseNet(value);
        net['macaddr'] = world.randomMac();
        newconf.set(key, printNet(net));
        continue;
      }
      const drive = drivesOf(new Map([[key, value]]))[0]?.[1];
      if (!drive) {
        newconf.set(key, value);
        continue;
      }
      const volid = drive['file'] ?? '';
      const volumeStorage = world.volumes.storages.get(splitVolid(volid)?.storage ?? '');
      if (!volumeStorage?.shared && volid !== 'none' && volid !== 'cdrom') shared = false;
      if (isCdrom(drive) && !isCloudinit(drive)) {
        newconf.set(key, value);
        continue;
      }
      const message = `clone feature is not supported for${snapname !== undefined ? ' a snapshot of' : ''} '${volid}' (${key})`;
      const copy = full || isCloudinit(drive) || key === 'tpmstate0';
      if (copy && !world.volumes.hasFeature('copy', volid, snapname)) fail(`Full ${message}`);
      if (!copy && !world.volumes.hasFeature('clone', volid, snapname)) fail(`Linked ${message}`);
      drives.push({ key, drive, full: copy });
    }
    if (targetNode !== undefined && !shared) fail(`can't clone VM to node '${targetNode}' (VM uses local storage)`);
    const existing = world.vms.get(newid);
    if (existing?.node === node) fail(`unable to create VM ${newid}: config file already exists`);
    return { newconf, drives, oldName: oldconf.get('name') };
  };

  const early = loadAndCheck(); // early checks before forking/locking
  world.takeStolenId(newid);
  let plan: ClonePlan | undefined;
  let target: VmRec | undefined;
  const cloned = new Set<number>();

  let log: (line: string) => void = () => undefined;
  const cloneDrive = (index: number, at: number): void => {
    if (!plan || !target || cloned.has(index)) return;
    const entry = plan.drives[index];
    if (!entry) return;
    cloned.add(index);
    const { key, drive, full } = entry;
    const file = drive['file'] ?? '';
    try {
      const source = world.volumes.get(node, file);
      if (!source) throw new Error(`volume '${file}' does not exist`);
      let volid: string;
      const kind = isCloudinit(drive) || full ? 'full' : 'linked';
      log(`create ${kind} clone of drive ${key} (${file})`);
      if (isCloudinit(drive)) {
        volid = world.volumes.allocate({ storage: storage ?? source.storage, node, vmid: newid, size: source.size, name: `vm-${newid}-cloudinit`, now: at }).volid;
      } else if (full) {
        const target = storage ?? source.storage;
        const options = { storage: target, node, vmid: newid, size: source.size, now: at };
        // resolve_dst_disk_format: a format the target storage cannot hold silently becomes its default.
        const held = format !== undefined && world.volumes.formats(world.volumes.config(target)).includes(format);
        volid = world.volumes.allocate(held ? { ...options, format } : options).volid;
        log(`transferred ${formatSize(source.size)} of ${formatSize(source.size)} (100.00%)`);
      } else {
        volid = world.volumes.linkedClone(node, source.volid, newid, at).volid;
      }
      plan.newconf.set(key, printDrive(key, { ...drive, file: volid }));
      target.conf = new Map(plan.newconf);
    } catch (error) {
      throw new Error(`clone failed: ${error instanceof Error ? error.message : String(error)}`);
    }
  };

  const task = ctx.tasks.start({
    node,
    type: 'qmclone',
    id: String(vmid),
    auth: ctx.auth,
    start: (handle) => {
      plan = loadAndCheck();
      if (world.vms.has(newid)) fail(`unable to create VM ${newid}: config file already exists`);
      log = handle.log;
      handle.log(`creating a clone of VM ${vmid} with ID ${newid}`);
      const smbios = (plan.newconf.get('smbios1') ?? '').replace(/(^|,)uuid=[^,]*/, '').replace(/^,/, '');
      plan.newconf.set('smbios1', [`uuid=${world.uuid()}`, ...(smbios === '' ? [] : [smbios])].join(','));
      if (plan.newconf.has('vmgenid')) plan.newconf.set('vmgenid', world.uuid());
      plan.newconf.delete('template');
      plan.newconf.set('name', p.str('name') || `Copy-of-VM-${plan.oldName ?? vmid}`);
      const description = p.str('description');
      if (description) plan.newconf.set('description', description);
      // qemu-server writes "# qmclone temporary file\nlock: clone\n" first; the real config follows per cloned disk.
      target = world.newVm(newid, node, new Map([['description', 'qmclone temporary file'], ['lock', 'clone']]));
      world.vms.set(newid, target);
    },
    // Drive i is copied at (i+1)/(n+1) of the duration; the config is rewritten after each one.
    steps: early.drives.map((_, index) => ({
      fraction: (index + 1) / (early.drives.length + 1),
      run: (_handle, at) => cloneDrive(index, at),
    })),
    finish: (_handle, at) => {
      if (!plan || !target) return;
      plan.drives.forEach((_, index) => cloneDrive(index, at));
      plan.newconf.delete('lock');
      target.conf = new Map(plan.newconf);
      if (targetNode !== undefined) target.node = targetNode;
    },
    onFail: () => {
      if (!target || world.vms.get(newid) !== target) return;
      for (const volume of world.volumes.ownedBy(node, newid)) world.volumes.remove(node, volume.volid);
      world.vms.delete(newid);
    },
  });
  return reply(task.upid);
}

function resizeVm(ctx: Ctx): ReturnType<Handler> {
  const p = ctx.params;
  const world = ctx.world;
  const node = world.node(p.need('node')).name;
  const vmid = p.int('vmid') ?? 0;
  const disk = p.need('disk');
  const sizeText = p.need('size');
  const digest = p.str('digest');
  const skiplock = p.bool('skiplock') === true;
  let newSize = 0;
  const task = ctx.tasks.start({
    node,
    type: 'resize',
    id: String(vmid),
    auth: ctx.auth,
    start: (handle) => {
      const vm = world.loadConfig(node, vmid);
      if (digest !== undefined && digest !== digestOf(vm)) fail('checksum mismatch (file change by other user?)');
      if (!skiplock) checkLock(vm);
      const value = vm.conf.get(disk);
      if (value === undefined) fail(`disk '${disk}' does not exist`);
      const drive = parseDrive(disk, value);
      if (!drive['file']) fail(`disk '${disk}' has no associated volume`);
      if (isCdrom(drive)) fail("you can't resize a cdrom");
      const volume = world.volumes.get(node, drive['file']);
      const current = volume?.size ?? sizeOf(drive);
      const match = /^(\+)?(.*)$/.exec(sizeText);
      const amount = parseSize(match?.[2] ?? '') ?? 0;
      newSize = match?.[1] ? current + amount : amount;
      if (newSize < current) fail('shrinking disks is not supported');
      handle.log(`resize --disk ${disk} --size ${sizeText}: ${formatSize(current)} -> ${formatSize(newSize)}`);
    },
    finish: () => {
      const vm = world.loadConfig(node, vmid);
      const value = vm.conf.get(disk);
      if (value === undefined) return;
      const drive = parseDrive(disk, value);
      const volume = world.volumes.get(node, drive['file'] ?? '');
      if (volume) volume.size = newSize;
      vm.conf.set(disk, printDrive(disk, { ...drive, size: String(newSize) }));
    },
  });
  return reply(task.upid);
}

export const cloneHandlers: Record<string, Handler> = {
  'POST /nodes/{node}/qemu/{vmid}/clone': cloneVm,
  'PUT /nodes/{node}/qemu/{vmid}/resize': resizeVm,
};
