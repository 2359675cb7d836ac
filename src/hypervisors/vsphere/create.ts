// create: a clone of a template, in two steps, each answered as soon as vSphere has started it.
// An image URL is first imported into a template of its own (url-image.ts): create answers that
// import's task, with id '', and the create called again once it ends clones the template.
// 1. CloneVM_Task under the owner's placeholder name (identity.ts), with the owner's identity and
//    placement record (placement-record.ts) in the CloneSpec's extraConfig (so the VM carries them
//    from the moment its config exists) and `virtrigaud.state=configuring`; placement in the
//    RelocateSpec; a linked clone shares the template's disks through its current snapshot.
//    create answers the clone task at once, with id '' while the VM has no moid: the hook's
//    budget is a few seconds, a clone takes minutes.
// 2. One ReconfigVM_Task with the spec's name, CPU, memory, firmware and features, disks, NICs
//    (nics.ts), CPU/memory allocation (allocation.ts), the guest's data and the user's extraConfig
//    (guestinfo.ts), and `virtrigaud.state=ready`. The VM reads as `incomplete` until that
//    lands, and create called again continues there (hardware upgrade for a TPM first, when needed;
//    the NICs alone first when static addresses need MACs vSphere has yet to generate).
// Before either step the owner's VM, or its running clone, is looked for the way any process
// would find it (find.ts): a lost answer, a restarted runtime or a second replica never clones twice.

import {
  BusyError,
  HypervisorError,
  InvalidSpecError,
  UnsupportedError,
  type CreateSpec,
  type Identity,
  type PlacementRecord,
  type Started,
} from '../../contracts/driver.js';
import { MiB } from '../../contracts/quantity.js';
import { morefOf } from './client.js';
import {
  addDiskSpec,
  addTpmSpec,
  findDisk,
  freeUnit,
  growDiskSpec,
  readDevices,
} from './devices.js';
import { allocationSpecs, checkLimits } from './allocation.js';
import { guestDataEntries, userExtraConfigEntries } from './guestinfo.js';
import { checkStaticIPs, networkConfig, networkMetaData } from './guest-network.js';
import { nicChanges, validateNics } from './nics.js';
import { checkURLImage, type URLImage } from './url-image.js';
import { startTask } from './power.js';
import { diskSlotsOf, identityEntries, KEY, placeholderName, slotOf } from './identity.js';
import { readOwned } from './find.js';
import { findByInventoryPath, resolveDatacenter, type Datacenter } from './inventory.js';
import { resolvePlacement, type Placement } from './placement.js';
import { placementEntries } from './placement-record.js';
import { retrieveAll } from './property-collector.js';
import { el, fragments, moref, optionValue, typed, type MoRef, type Xml } from './soap.js';
import { recentTasks, settledNow } from './tasks.js';
import { flattenSnapshots } from './snapshots.js';
import { child, textAt } from './xml.js';
import { readVM, record, requireReadable, type VmRecord, type VsphereContext } from './vm.js';

export const LINKED_BASE_SNAPSHOT = 'virtrigaud-linked-base';
// TPM 2.0 needs virtual hardware 14 (vSphere 6.7).
const TPM_HARDWARE_VERSION = 14;

function validate(spec: CreateSpec): void {
  if (spec.image.kind === 'url') checkURLImage(spec.image);
  else if (spec.image.kind !== 'template') throw new UnsupportedError(`the vSphere driver makes VMs from templates and image URLs, not ${spec.image.kind === 'blank' ? 'blank ones' : 'ISOs'}`);
  if (spec.machine !== undefined) throw new UnsupportedError("the vSphere driver has no machine types (capability 'machineType')");
  if (spec.storage.provisioning === 'thick') throw new UnsupportedError("the vSphere driver does not provision thick disks (capability 'thickProvisioning')");
  if (!Number.isInteger(spec.cpus) || spec.cpus < 1) throw new InvalidSpecError(`cpus must be a positive integer, not ${spec.cpus}`);
  if (!Number.isSafeInteger(spec.memoryBytes) || spec.memoryBytes < 4 * MiB || spec.memoryBytes % MiB !== 0) {
    throw new InvalidSpecError('memory must be a whole number of Mi (MiB), at least 4Mi');
  }
  validateNics(spec.nics);
  checkStaticIPs(spec.nics);
  if ((spec.features.secureBoot || spec.features.tpm) && spec.firmware === 'bios') {
    throw new InvalidSpecError('secure boot and TPM need UEFI firmware');
  }
  for (const disk of spec.disks) {
    if (!Number.isSafeInteger(disk.sizeBytes) || disk.sizeBytes <= 0) throw new InvalidSpecError(`disk ${disk.name} must have a positive size`);
  }
  // What the configuration step would refuse, refused before anything is cloned.
  checkLimits(spec.limits, spec.memoryBytes);
  userExtraConfigEntries(spec);
  guestDataEntries(spec, spec.nics.some((nic) => nic.staticIP !== undefined) ? networkMetaData({}) : undefined);
  placementEntries(spec.placementRecord);
}

/** The template (or VM) an image ref names: an inventory path, or a unique name (templates first). */
export async function resolveTemplate(ctx: VsphereContext, dc: Datacenter, ref: string, signal?: AbortSignal): Promise<VmRecord> {
  if (ref.includes('/')) {
    const found = await findByInventoryPath(ctx, ref.startsWith('/') ? ref.slice(1) : `${dc.name}/vm/${ref}`, signal);
    if (found === undefined || found.type !== 'VirtualMachine') throw new InvalidSpecError(`template '${ref}' not found`);
    return readVM(ctx, found.value, signal);
  }
  const all = (await retrieveAll(ctx.client, dc.vmFolder, 'VirtualMachine', ['name', 'config.template', 'runtime.connectionState'], signal)).map(record);
  const named = all.filter((vm) => vm.name === ref);
  const templates = named.filter((vm) => vm.template);
  const candidates = templates.length > 0 ? templates : named;
  if (candidates.length === 0) throw new InvalidSpecError(`template '${ref}' not found in datacenter ${dc.name}`);
  if (candidates.length > 1) throw new InvalidSpecError(`template name '${ref}' is ambiguous (${candidates.length} VMs); use an inventory path`);
  // A name shared with a template vSphere cannot read now may become ambiguous once it can.
  const unreadable = named.find((vm) => !vm.configReadable);
  if (unreadable !== undefined) requireReadable(unreadable);
  return readVM(ctx, (candidates[0] as VmRecord).ref.value, signal);
}

// vCenter's descriptionId for CreateSnapshot_Task (vcsim's too).
const SNAPSHOT_TASK = 'VirtualMachine.createSnapshot';

/**
 * The snapshot a linked clone is based on: the source's current one, made when there is none. A
 * base snapshot being taken (by this runtime or another) is waited for, never taken twice: it is
 * the source's current snapshot once its task ends.
 */
export async function linkedCloneBase(ctx: VsphereContext, source: VmRecord, signal?: AbortSignal): Promise<{ ref: MoRef; name: string }> {
  const info = source.object.props.get('snapshot');
  const current = morefOf(child(info, 'currentSnapshot'));
  if (current !== undefined) {
    const name = flattenSnapshots(info).find((node) => node.ref.value === current.value)?.name ?? current.value;
    return { ref: current, name };
  }
  const taking = (await recentTasks(ctx, signal)).find(
    (task) => (task.state === 'queued' || task.state === 'running') && task.entity?.value === source.ref.value && task.descriptionId === SNAPSHOT_TASK,
  );
  if (taking !== undefined) throw new BusyError(`a snapshot of ${source.name} is being taken (task ${taking.task.value}); linked clones wait for it`);
  const task = morefOf(
    await ctx.client.returnval(
      'CreateSnapshot_Task',
      [moref('_this', source.ref), el('name', LINKED_BASE_SNAPSHOT), el('description', 'base of linked clones made by virtrigaud'), el('memory', false), el('quiesce', false)],
      signal,
    ),
  );
  if (task === undefined) throw new HypervisorError(`vSphere answered CreateSnapshot_Task on ${source.name} without a task`);
  const done = await settledNow(ctx, task, `snapshot of ${source.name} for linked clones`, signal);
  // Still running: a retry finds it running, then as the current snapshot once it is done.
  if (done?.result === undefined) throw new BusyError(`the base snapshot of ${source.name} for linked clones is being taken (task ${task.value})`);
  return { ref: done.result, name: LINKED_BASE_SNAPSHOT };
}

export interface CloneRequest {
  source: VmRecord;
  owner: Identity;
  placement: Placement;
  linked: boolean;
  /** Written with the identity; undefined clears any record the source carries. */
  record: PlacementRecord | undefined;
}

/**
 * Starts CloneVM_Task under the owner's placeholder name and answers at once: the new VM's moid
 * when the task has already ended (vcsim ends clones within the call), else id '' and the task,
 * which any process can follow, and which findByIdentity ties to the owner until the VM is
 * registered (find.ts).
 */
export async function startClone(ctx: VsphereContext, request: CloneRequest, signal?: AbortSignal): Promise<{ id: string; sourceSnapshot?: string } & Started> {
  const base = request.linked ? await linkedCloneBase(ctx, request.source, signal) : undefined;
  const { placement } = request;
  const location = el('location', [
    moref('datastore', placement.datastore),
    base === undefined ? undefined : el('diskMoveType', 'createNewChildDiskBacking'),
    moref('pool', placement.pool),
    moref('host', placement.host),
  ]);
  const entries: [string, string][] = [...identityEntries(request.owner), [KEY.state, 'configuring'], ...placementEntries(request.record)];
  const extraConfig = entries.map(([key, value]) => optionValue('extraConfig', key, value));
  const spec = el('spec', [
    location,
    el('template', false),
    typed('config', 'VirtualMachineConfigSpec', extraConfig),
    el('powerOn', false),
    moref('snapshot', base?.ref),
  ]);
  const name = placeholderName(request.owner.uid);
  const task = morefOf(
    await ctx.client.returnval('CloneVM_Task', [moref('_this', request.source.ref), moref('folder', placement.folder), el('name', name), spec], signal),
  );
  ctx.vmList.invalidate();
  if (task === undefined) throw new HypervisorError(`vSphere answered CloneVM_Task for ${name} without a task`);
  const linked = base === undefined ? {} : { sourceSnapshot: base.name };
  const done = await settledNow(ctx, task, `clone of ${request.source.name}`, signal);
  if (done?.result !== undefined) {
    ctx.vmList.invalidate();
    return { id: done.result.value, ...linked };
  }
  return { id: '', task: task.value, ...linked };
}

function hardwareVersion(vm: VmRecord): number | undefined {
  const match = /^vmx-(\d+)$/.exec(textAt(vm.object.props.get('config.version')) ?? '');
  return match ? Number(match[1]) : undefined;
}

/** The configuration step: one ReconfigVM_Task that makes the clone what the spec says. */
export async function configureClone(ctx: VsphereContext, clone: VmRecord, spec: CreateSpec, dc: Datacenter, signal?: AbortSignal): Promise<Started> {
  let vm = clone;
  if (spec.features.tpm && !readDevices(vm.object.props.get('config.hardware.device')).tpm && (hardwareVersion(vm) ?? 0) < TPM_HARDWARE_VERSION) {
    const task = morefOf(await ctx.client.returnval('UpgradeVM_Task', [moref('_this', vm.ref), el('version', `vmx-${TPM_HARDWARE_VERSION}`)], signal));
    if (task === undefined) throw new HypervisorError(`vSphere answered UpgradeVM_Task on VM ${vm.ref.value} without a task`);
    // Still running: the next create call continues (and finds the new version). Done: the
    // configuration follows at once, whatever version the server chose; a server that cannot
    // hold a TPM refuses the device with its own fault.
    if ((await settledNow(ctx, task, `hardware upgrade of VM ${vm.ref.value}`, signal)) === undefined) return { task: task.value };
    vm = await readVM(ctx, vm.ref.value, signal);
  }
  const devices = readDevices(vm.object.props.get('config.hardware.device'));
  const wantsEfi = spec.firmware === 'uefi' || spec.features.secureBoot || spec.features.tpm;

  const changes: Xml[] = [];
  let tempKey = -100;
  const slots = diskSlotsOf(vm.extraConfig);
  const root = findDisk(devices, slots, 'root');
  if (root !== undefined) slots['root'] = slotOf(root);
  for (const disk of spec.disks) {
    const existing = disk.root ? root : findDisk(devices, slots, disk.name);
    if (disk.root && existing === undefined) throw new InvalidSpecError(`template ${vm.name} has no disk to serve as root`);
    if (existing !== undefined) {
      if (disk.sizeBytes < existing.capacityBytes) throw new InvalidSpecError(`disk ${disk.name} cannot shrink below its current ${existing.capacityBytes} bytes`);
      if (disk.sizeBytes > existing.capacityBytes) changes.push(growDiskSpec(existing, disk.sizeBytes));
      continue;
    }
    const controller = root?.controllerKey ?? [...devices.controllers.keys()][0];
    const unit = controller === undefined ? undefined : freeUnit(devices, controller);
    if (controller === undefined || unit === undefined) throw new InvalidSpecError(`no free disk controller slot for disk ${disk.name}`);
    slots[disk.name] = `${controller}:${unit}`;
    changes.push(addDiskSpec(tempKey--, controller, unit, disk.sizeBytes, spec.storage.provisioning !== 'thick', undefined));
  }
  const nics = await nicChanges(ctx, dc, devices, spec.nics, () => tempKey--, signal);
  let network: Record<string, string> | undefined;
  if (spec.nics.some((nic) => nic.staticIP !== undefined)) {
    const macs = nics.macs.filter((mac): mac is string => mac !== undefined);
    // The network config names every NIC by its MAC: NICs vSphere has yet to give one are made
    // first, alone, and the next create call (the VM still `configuring`) writes the rest with them.
    if (macs.length < spec.nics.length) return startTask(ctx, 'ReconfigVM_Task', vm.ref, [typed('spec', 'VirtualMachineConfigSpec', [fragments(...nics.changes)])], signal);
    network = networkMetaData(networkConfig(spec.nics.map((nic, index) => ({ mac: macs[index] ?? '', staticIP: nic.staticIP }))));
  }
  changes.push(...nics.changes);
  if (spec.features.tpm && !devices.tpm) changes.push(addTpmSpec(tempKey--));

  const extraConfig: [string, string][] = [
    [KEY.state, 'ready'],
    [KEY.disks, JSON.stringify(slots)],
    [KEY.nics, JSON.stringify(spec.nics.map((nic) => nic.name))],
    [KEY.nicSettings, JSON.stringify(nics.asked)],
    ...guestDataEntries(spec, network),
  ];
  const allocation = allocationSpecs(spec.limits);
  const configSpec = typed('spec', 'VirtualMachineConfigSpec', [
    el('name', spec.name),
    el('numCPUs', spec.cpus),
    el('memoryMB', spec.memoryBytes / MiB),
    el('memoryHotAddEnabled', spec.features.memoryHotAdd),
    el('cpuHotAddEnabled', spec.features.cpuHotAdd),
    fragments(...changes),
    allocation.cpu,
    allocation.memory,
    fragments(...[...userExtraConfigEntries(spec), ...extraConfig].map(([key, value]) => optionValue('extraConfig', key, value))),
    spec.features.secureBoot ? el('bootOptions', [el('efiSecureBootEnabled', true)]) : undefined,
    wantsEfi ? el('firmware', 'efi') : spec.firmware === 'bios' ? el('firmware', 'bios') : undefined,
    el('nestedHVEnabled', spec.features.nestedVirtualization),
  ]);
  const task = morefOf(await ctx.client.returnval('ReconfigVM_Task', [moref('_this', vm.ref), configSpec], signal));
  ctx.vmList.invalidate();
  return task === undefined ? {} : { task: task.value };
}

/**
 * A clone that did not land on the asked host is moved there before it is configured. vCenter
 * honours the RelocateSpec's host; vcsim 0.24.2 puts a clone on its source's host whatever the
 * spec says. Checking the result instead of trusting the request makes placementHost hold on both.
 */
async function relocateIfMisplaced(ctx: VsphereContext, vm: VmRecord, placement: Placement, signal?: AbortSignal): Promise<Started | undefined> {
  if (placement.host === undefined) return undefined;
  if (morefOf(vm.object.props.get('runtime.host'))?.value === placement.host.value) return undefined;
  const spec = el('spec', [moref('pool', placement.pool), moref('host', placement.host)]);
  const task = morefOf(await ctx.client.returnval('RelocateVM_Task', [moref('_this', vm.ref), spec], signal));
  ctx.vmList.invalidate();
  return task === undefined ? {} : { task: task.value };
}

/** The steps after the clone: placement check, then configuration. */
async function continueCreate(ctx: VsphereContext, vm: VmRecord, spec: CreateSpec, placement: Placement, signal?: AbortSignal): Promise<{ id: string } & Started> {
  const moved = await relocateIfMisplaced(ctx, vm, placement, signal);
  if (moved !== undefined) return { id: vm.ref.value, ...moved };
  return { id: vm.ref.value, ...(await configureClone(ctx, vm, spec, placement.datacenter, signal)) };
}

/** The template an image URL stands for, or the task making it (url-image.ts). */
export type URLImages = (image: { url: string; checksum?: string }, signal?: AbortSignal) => Promise<URLImage>;

export async function createVM(ctx: VsphereContext, spec: CreateSpec, images: URLImages, signal?: AbortSignal): Promise<{ id: string } & Started> {
  validate(spec);
  const located = await readOwned(ctx, spec.owner.uid, signal);
  if (located.kind === 'cloning') return { id: '', task: located.task };
  if (located.kind === 'vm') {
    const vm = located.vm;
    if (vm.state !== 'configuring') return { id: vm.ref.value };
    return continueCreate(ctx, vm, spec, await resolvePlacement(ctx, spec, vm, signal), signal);
  }
  const image = spec.image as Extract<CreateSpec['image'], { fullClone: boolean }>;
  const datacenter = await resolveDatacenter(ctx, ctx.config.defaults.datacenter, signal);
  let template: VmRecord;
  if (image.kind === 'url') {
    // Imported first, as a task of its own; the create called again once it ends clones the template.
    const imported = await images(image, signal);
    if ('task' in imported) return { id: '', task: imported.task };
    template = imported.template;
  } else {
    template = await resolveTemplate(ctx, datacenter, image.ref, signal);
  }
  const where = await resolvePlacement(ctx, spec, template, signal);
  // The clone has the template's adapters: NICs that could not be configured on them are refused now, not after the clone.
  await nicChanges(ctx, datacenter, readDevices(template.object.props.get('config.hardware.device')), spec.nics, () => 0, signal);
  const cloned = await startClone(ctx, { source: template, owner: spec.owner, placement: where, linked: !image.fullClone, record: spec.placementRecord }, signal);
  if (cloned.id === '') return cloned.task === undefined ? { id: '' } : { id: '', task: cloned.task };
  return continueCreate(ctx, requireReadable(await readVM(ctx, cloned.id, signal)), spec, where, signal);
}
