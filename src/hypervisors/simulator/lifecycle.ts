// Verbs that make and unmake VMs: create (from a template or a URL image), clone, delete.

import { DriverError, InvalidSpecError, type CreateSpec, type Identity, type Started, type VMRef } from '../../contracts/driver.js';
import { formatBytes } from '../../contracts/quantity.js';
import { copyDisk, type DiskRecord, type NicRecord, type TaskFailure, type VMRecord } from './model.js';
import { generatedMac } from './observe.js';
import { missingCapability, specProblem } from './validate.js';
import type { SimWorld } from './world.js';

export function createVM(world: SimWorld, spec: CreateSpec, failWith?: string): { id: string } & Started {
  // The owner's VM exists already (a retried create after a lost response): it is the answer.
  const existing = world.findByOwner(spec.owner.uid);
  if (existing !== undefined) return existing.lock === undefined ? { id: existing.id } : { id: existing.id, task: existing.lock.task };
  const template = spec.image.kind === 'template' ? world.template(spec.image.ref) : undefined;
  // A template built for UEFI does not boot with a BIOS: the firmware comes from the template
  // unless the spec names one, and a BIOS spec on a UEFI template is refused.
  const firmware = spec.firmware ?? template?.firmware ?? 'bios';
  if (template?.firmware === 'uefi' && spec.firmware === 'bios') {
    throw new InvalidSpecError(`template '${template.name}' boots with UEFI firmware, not bios`);
  }

  const missing = missingCapability(spec, firmware, world.capabilities);
  if (missing !== undefined) world.requireCapability(missing.capability, missing.feature);
  const problem = specProblem(spec, firmware);
  if (problem !== undefined) throw new InvalidSpecError(problem);
  if (spec.image.kind === 'template' && template === undefined) throw new InvalidSpecError(`template '${spec.image.ref}' not found`);
  for (const nic of spec.nics) {
    const network = nic.bridge ?? nic.network ?? nic.name;
    if (!world.networks.has(network)) throw new InvalidSpecError(`network '${network}' not found`);
  }
  if (spec.placement.host !== undefined && !world.hosts.some((host) => host.name === spec.placement.host)) {
    throw new InvalidSpecError(`host '${spec.placement.host}' not found`);
  }
  const datastore = spec.storage.datastore ?? world.datastores[0]?.name ?? '';
  if (!world.datastores.some((candidate) => candidate.name === datastore)) {
    throw new InvalidSpecError(`datastore '${datastore}' not found`);
  }
  const rootSpec = spec.disks.find((disk) => disk.root);
  if (template !== undefined && rootSpec !== undefined && rootSpec.sizeBytes < template.diskBytes) {
    throw new InvalidSpecError(
      `root disk ${formatBytes(rootSpec.sizeBytes)} is smaller than template '${template.name}' (${formatBytes(template.diskBytes)})`,
    );
  }
  world.refuseTakenName(spec.name);
  const host = world.placeMemory(spec.memoryBytes, spec.placement.host);

  const id = world.allocateId();
  const provisioning = spec.storage.provisioning;
  const root: DiskRecord = { name: rootSpec?.name ?? 'root', sizeBytes: rootSpec?.sizeBytes ?? template?.diskBytes ?? 0, datastore, provisioning };
  const vm: VMRecord = {
    id,
    name: spec.name,
    owner: { ...spec.owner },
    host: host.name,
    powerState: 'Off',
    cpus: spec.cpus,
    memoryBytes: spec.memoryBytes,
    firmware,
    features: { ...spec.features },
    disks: [root, ...spec.disks.filter((disk) => !disk.root).map((disk) => ({ name: disk.name, sizeBytes: disk.sizeBytes, datastore, provisioning }))],
    nics: spec.nics.map((nic, index): NicRecord => {
      const record: NicRecord = { name: nic.name, mac: nic.mac?.toLowerCase() ?? generatedMac(id, index), network: nic.bridge ?? nic.network ?? nic.name };
      if (nic.vlan !== undefined) record.vlan = nic.vlan;
      if (nic.model !== undefined) record.model = nic.model;
      if (nic.mtu !== undefined) record.mtu = nic.mtu;
      if (nic.firewall !== undefined) record.firewall = nic.firewall;
      if (nic.rateLimitMBps !== undefined) record.rateLimitMBps = nic.rateLimitMBps;
      if (nic.staticIP !== undefined) record.staticAddress = nic.staticIP.address.replace(/\/\d+$/, '');
      return record;
    }),
    ignoresShutdown: false,
    snapshots: new Map(),
  };
  if (spec.machine !== undefined) vm.machine = spec.machine;
  if (spec.userData !== undefined) vm.userData = spec.userData;
  if (spec.metaData !== undefined) vm.metaData = spec.metaData;
  if (spec.ignition !== undefined) vm.ignition = spec.ignition;
  if (spec.tags !== undefined) vm.tags = [...spec.tags];
  if (spec.extraConfig !== undefined) vm.extraConfig = { ...spec.extraConfig };
  if (spec.placementRecord !== undefined) vm.placementRecord = { labels: { ...spec.placementRecord.labels }, order: spec.placementRecord.order };
  if (spec.limits !== undefined) vm.limits = { ...spec.limits };
  if (template !== undefined) vm.clonedFrom = { id: template.id, linked: (spec.image.kind === 'template' || spec.image.kind === 'url') && !spec.image.fullClone };
  world.addVM(vm);

  let waitFor: Promise<TaskFailure | undefined> | undefined;
  if (spec.image.kind === 'url') {
    const explicitRoot = rootSpec?.sizeBytes;
    waitFor = world.images.fetch(spec.image.url, spec.image.checksum).then(
      (image): TaskFailure | undefined => {
        if (explicitRoot !== undefined && explicitRoot < image.sizeBytes) {
          return {
            message: `root disk ${formatBytes(explicitRoot)} is smaller than the image (${formatBytes(image.sizeBytes)})`,
            code: 'InvalidSpec',
          };
        }
        root.sizeBytes = explicitRoot ?? image.sizeBytes;
        return undefined;
      },
      (error: unknown): TaskFailure =>
        error instanceof DriverError ? { message: error.message, code: error.code } : { message: 'image download failed' },
    );
  }

  const task = world.startTask({
    vm,
    kind: 'qmcreate',
    lock: 'create',
    duration: world.durations.create,
    ...(failWith === undefined ? {} : { failWith }),
    ...(waitFor === undefined ? {} : { waitFor }),
    onSuccess: world.whileExists(vm, () => undefined),
    onFailure: () => world.removeVM(vm),
  });
  return { id, task: task.id };
}

export function cloneVM(
  world: SimWorld,
  ref: VMRef,
  target: { name: string; owner: Identity; linked: boolean },
  failWith?: string,
): { id: string } & Started {
  const source = world.requireIdle(ref);
  if (target.linked) world.requireCapability('linkedClones', 'linked clones');
  if (target.name.trim() === '') throw new InvalidSpecError('the VM name is empty');
  world.refuseTakenName(target.name);
  const host = world.placeMemory(source.memoryBytes, source.host);

  const id = world.allocateId();
  const clone: VMRecord = {
    id,
    name: target.name,
    owner: { ...target.owner },
    host: host.name,
    powerState: 'Off',
    cpus: source.cpus,
    memoryBytes: source.memoryBytes,
    firmware: source.firmware,
    features: { ...source.features },
    disks: source.disks.map(copyDisk),
    // A copied MAC would collide with the source on the same network; hypervisors generate new ones.
    nics: source.nics.map((nic, index) => ({ ...nic, mac: generatedMac(id, index) })),
    ignoresShutdown: false,
    snapshots: new Map(),
    clonedFrom: { id: source.id, linked: target.linked },
  };
  if (source.machine !== undefined) clone.machine = source.machine;
  if (source.userData !== undefined) clone.userData = source.userData;
  world.addVM(clone);

  const task = world.startTask({
    vm: clone,
    kind: 'qmclone',
    lock: 'clone',
    duration: world.durations.clone,
    ...(failWith === undefined ? {} : { failWith }),
    onSuccess: world.whileExists(clone, () => undefined),
    onFailure: () => world.removeVM(clone),
  });
  return { id, task: task.id };
}

export function deleteVM(world: SimWorld, ref: VMRef, failWith?: string): Started {
  const vm = world.requireIdle(ref);
  if (failWith === undefined && vm.powerState !== 'Off') powerDown(vm);
  const task = world.startTask({
    vm,
    kind: 'qmdestroy',
    lock: 'delete',
    duration: world.durations.delete,
    ...(failWith === undefined ? {} : { failWith }),
    // Gone is gone: a VM an admin removed meanwhile still counts as deleted.
    onSuccess: () => {
      world.removeVM(vm);
      return undefined;
    },
  });
  return { task: task.id };
}

/** Hard power-off of the record: the guest stops reporting and any pending guest shutdown is moot. */
export function powerDown(vm: VMRecord): void {
  vm.powerState = 'Off';
  delete vm.ipsVisibleAt;
  if (vm.shutdownEvent !== undefined) {
    vm.shutdownEvent.cancelled = true;
    delete vm.shutdownEvent;
  }
}
