// create, step 2: one `POST …/config` (async, a qmconfig task) that turns the clone into the spec's
// VM at once: CPU, memory, CPU weight, firmware, features, settings (OS type, agent, ballooning,
// protection), NICs, extra disks, cloud-init, boot order, tags and the final marker. One call, so a
// VM is either still `configuring` or configured; the root disk is grown afterwards by the
// controller through resizeDisk when the spec asks for more. The one exception comes first: an
// empty CD-ROM drive the boot order names, added in a call of its own (ensureCdrom).

import { InvalidSpecError, type BootDevice, type CreateSpec, type DiskSpec, type Started } from '../../contracts/driver.js';
import { GiB, MiB } from '../../contracts/quantity.js';
import { cicustomValue, cloudInitParams, metaDataDocument, requireNoCloud, writeSnippets, type CloudInitPlan, type CustomFiles } from './cloudinit.js';
import type { ProxmoxConfig } from './config.js';
import { diskStorage, isQ35, newVolume, requireFreeSlot, rootDiskName, withDriveOption } from './disk-layout.js';
import { bootDiskSlot, bootOrder, disks, drives, firmwareOf, hotplugFeatures, machineType, maxCpus, nics, parseDrive } from './hardware.js';
import { descriptionWithMarker, tagsFor, type Marker } from './identity.js';
import { ipconfigValue, nameservers, nicValue } from './network.js';
import { EMPTY_CDROM, bootDevicesFor, cdromSlotFor, cdromSlots, needsCdrom, settingsChange } from './settings.js';
import { formatDiskSize, num, isRow, parsePropertyString, str, type Row } from './values.js';
import { vmPath, type OwnedVM, type ProxmoxContext } from './vm.js';

export type ConfigParams = Record<string, string | number>;

export async function configureVM(
  ctx: ProxmoxContext,
  spec: CreateSpec,
  vm: OwnedVM,
  cloudInit: CloudInitPlan,
  signal?: AbortSignal,
): Promise<{ id: string } & Started> {
  let hostCpus: number | undefined;
  if (spec.features.cpuHotAdd) hostCpus = await nodeCpus(ctx, vm.node, signal);
  // Checked before the snippets are written: the clone may have a format the template did not.
  requireNoCloud(spec.metaData, vm.config, `VM ${vm.vmid}`);
  const custom = await writeSnippets(ctx.config, spec.owner.uid, {
    userData: cloudInit.rawKeys.length > 0 ? spec.userData : undefined,
    metaData: metaDataDocument(spec),
  });
  const growth = rootGrowth(spec, vm.config, vm.marker);
  if (growth !== undefined) {
    // A step of its own, before the configuration: resize_vm holds the VM's config lock while it
    // runs, which a configuration task alongside would time out on.
    ctx.details.forget(vm.vmid);
    const resized = await ctx.client.put(vmPath(vm.node, vm.vmid, '/resize'), growth, { signal });
    return typeof resized === 'string' ? { id: String(vm.vmid), task: resized } : { id: String(vm.vmid) };
  }
  const planned = Object.values(completeSlots(spec, vm.config, vm.marker).disks);
  const config = await ensureCdrom(ctx, vm, spec.settings?.bootOrder, planned, signal);
  const params = configuration(spec, config, vm.marker, ctx.config, { cloudInit, custom, hostCpus });
  const task = await ctx.client.post(vmPath(vm.node, vm.vmid, '/config'), params, { signal });
  ctx.directory.invalidate();
  return typeof task === 'string' ? { id: String(vm.vmid), task } : { id: String(vm.vmid) };
}

/**
 * The resize a VM made from a URL image needs before it is configured: its root disk comes out
 * of `import-from` at the image's size, which the spec's root disk may exceed (never the other
 * way: import-create.ts refuses a root smaller than the image). Rounded up to a whole MiB, like
 * resizeDisk (power.ts). Other creates leave growing the root to the controller's resizeDisk.
 */
export function rootGrowth(spec: CreateSpec, config: Row, marker: Marker): { disk: string; size: string } | undefined {
  if (spec.image.kind !== 'url') return undefined;
  const root = spec.disks.find((disk) => disk.root);
  const slot = bootDiskSlot(config, marker.disks[rootDiskName(spec)]);
  const current = drives(config).find((drive) => drive.slot === slot)?.sizeBytes;
  if (root === undefined || slot === undefined || current === undefined || current >= root.sizeBytes) return undefined;
  return { disk: slot, size: formatDiskSize(Math.ceil(root.sizeBytes / MiB) * MiB) };
}

/**
 * Adds an empty CD-ROM drive when the boot order names one the VM lacks (on a slot outside
 * `reserved`), and answers the config with it. In a call of its own: qemu-server appends a new CD
 * drive to the *old* boot order within the same update and walks the parameters in hash order
 * (update_vm_api), so a `boot` sent along might be replaced. A synchronous PUT: nothing is allocated.
 */
export async function ensureCdrom(
  ctx: ProxmoxContext,
  vm: { node: string; vmid: number; config: Row },
  order: readonly BootDevice[] | undefined,
  reserved: readonly string[],
  signal?: AbortSignal,
): Promise<Row> {
  if (!needsCdrom(order, vm.config)) return vm.config;
  const slot = cdromSlotFor(new Set([...drives(vm.config).map((drive) => drive.slot), ...reserved]));
  ctx.details.forget(vm.vmid);
  await ctx.client.put(vmPath(vm.node, vm.vmid, '/config'), { [slot]: EMPTY_CDROM }, { signal });
  return { ...vm.config, [slot]: EMPTY_CDROM };
}

/** The node's CPU threads, the ceiling for hot-added vCPUs; undefined without Sys.Audit. */
async function nodeCpus(ctx: ProxmoxContext, node: string, signal?: AbortSignal): Promise<number | undefined> {
  try {
    const status = await ctx.client.get(`/nodes/${encodeURIComponent(node)}/status`, undefined, { signal });
    const cpuinfo = isRow(status) ? status['cpuinfo'] : undefined;
    return isRow(cpuinfo) ? num(cpuinfo['cpus']) : undefined;
  } catch {
    return undefined;
  }
}

export interface ConfigurationInputs {
  cloudInit: CloudInitPlan;
  /** The snippets written for the VM (raw user-data, meta-data). */
  custom?: CustomFiles;
  /** CPU threads of the node, for the hot-plug ceiling. */
  hostCpus?: number | undefined;
}

/** Storage for a new volume: the disk's, else the spec's, else PVE_DEFAULT_STORAGE, else the boot disk's. */
function volumeStorage(spec: CreateSpec, config: Row, rootSlot: string | undefined, settings: ProxmoxConfig, disk: Pick<DiskSpec, 'datastore'> = {}): string {
  const root = drives(config).find((drive) => drive.slot === rootSlot);
  const storage = diskStorage(disk, spec, settings.defaultStorage, root?.storage);
  if (storage === undefined) throw new InvalidSpecError('no storage for new volumes: name a datastore in the spec or set PVE_DEFAULT_STORAGE');
  return storage;
}

/** Size of a new volume, in (fractional) GiB as `<storage>:<size>` expects (NOTES §7). */
function gibibytes(bytes: number): string {
  return String(bytes / GiB);
}

/** The config parameters of step 2, pure: everything from the spec and the clone's current config. */
export function configuration(spec: CreateSpec, config: Row, marker: Marker, settings: ProxmoxConfig, inputs: ConfigurationInputs): ConfigParams {
  // The placeholder name given at clone time (identity.ts) becomes the spec's name now.
  const params: ConfigParams = { name: spec.name };
  const remove: string[] = [];
  const rootSlot = bootDiskSlot(config, marker.disks[rootDiskName(spec)]);
  const storage = (disk?: DiskSpec): string => volumeStorage(spec, config, rootSlot, settings, disk);
  const custom = inputs.custom ?? {};

  const topology = spec.settings?.cpuTopology;
  if (topology !== undefined) {
    // Exactly the topology asked for, every core running: validateCreateSpec refuses it together
    // with CPU hot-add, whose `cores` would be a ceiling above the CPUs in use.
    params['sockets'] = topology.sockets;
    params['cores'] = topology.cores;
    if (config['vcpus'] !== undefined) remove.push('vcpus');
  } else if (spec.features.cpuHotAdd) {
    // CPU: with hot-add, PVE plugs `vcpus` of cores×sockets live, so the ceiling is the host's threads.
    params['sockets'] = 1;
    params['cores'] = Math.max(spec.cpus, inputs.hostCpus ?? 2 * spec.cpus, maxCpus(config));
    params['vcpus'] = spec.cpus;
  } else {
    params['sockets'] = 1;
    params['cores'] = spec.cpus;
    if (config['vcpus'] !== undefined) remove.push('vcpus');
  }
  params['memory'] = spec.memoryBytes / MiB;
  if (spec.limits?.cpuShares !== undefined) params['cpuunits'] = spec.limits.cpuShares;
  if (spec.features.nestedVirtualization) params['cpu'] = 'host';
  if (spec.machine !== undefined) params['machine'] = spec.machine;

  if (spec.firmware === 'uefi' || (spec.firmware === undefined && firmwareOf(config) === 'uefi') || spec.features.secureBoot) {
    params['bios'] = 'ovmf';
    if (str(config['efidisk0']) === undefined) {
      // 4m vars are required for secure boot; pre-enrolled keys turn it on (qemu-server schema).
      params['efidisk0'] = `${storage()}:1,efitype=4m${spec.features.secureBoot ? ',pre-enrolled-keys=1' : ''}`;
    }
  }
  if (spec.features.tpm && str(config['tpmstate0']) === undefined) params['tpmstate0'] = `${storage()}:1,version=v2.0`;
  // The guest agent is on unless the spec turns it off: describe reads guest addresses through it.
  const { osType, balloon, protection } = spec.settings ?? {};
  const others = settingsChange({ osType, guestAgent: spec.settings?.guestAgent ?? true, balloon, protection }, config, { network: [], cdrom: [] });
  Object.assign(params, others.set);
  remove.push(...others.remove);
  if (spec.features.cpuHotAdd || spec.features.memoryHotAdd) {
    // CPU and memory hotplug both need NUMA (NOTES §7).
    params['numa'] = 1;
    params['hotplug'] = ['network', 'disk', 'usb', ...(spec.features.cpuHotAdd ? ['cpu'] : []), ...(spec.features.memoryHotAdd ? ['memory'] : [])].join(',');
  } else if (hotplugFeatures(config).has('cpu') || hotplugFeatures(config).has('memory')) {
    // The template's hot-plug would show as features the spec did not ask for.
    params['hotplug'] = 'network,disk,usb';
  }

  // NICs into their planned slots; template NICs beyond the spec's are removed, as the spec lists
  // every NIC. A NIC or disk the spec gained since the clone gets a slot now.
  const slotsOf = completeSlots(spec, config, marker);
  const existingNics = nics(config);
  const cloudInitUsed = spec.userData !== undefined || spec.metaData !== undefined || spec.nics.some((nic) => nic.staticIP !== undefined);
  for (const nic of spec.nics) {
    const slot = slotsOf.nics[nic.name] ?? '';
    params[slot] = nicValue(nic, existingNics.find((candidate) => candidate.slot === slot));
    if (cloudInitUsed) params[`ipconfig${slot.slice(3)}`] = ipconfigValue(nic);
  }
  const wanted = new Set(Object.values(slotsOf.nics));
  for (const nic of existingNics) {
    if (wanted.has(nic.slot)) continue;
    remove.push(nic.slot);
    if (config[`ipconfig${nic.index}`] !== undefined) remove.push(`ipconfig${nic.index}`);
  }

  // Extra disks into their slots; a slot already filled is from an earlier, failed attempt (or,
  // for a blank VM, made with it).
  const slots = new Set(drives(config).map((drive) => drive.slot));
  for (const disk of spec.disks.filter((candidate) => !candidate.root)) {
    const slot = slotsOf.disks[disk.name];
    if (slot === undefined || slots.has(slot)) continue;
    params[slot] = newVolume(storage(disk), gibibytes(disk.sizeBytes), disk);
    slots.add(slot);
  }
  // The root disk's cache mode, on the volume the clone (or create) made.
  const rootCache = spec.disks.find((disk) => disk.root)?.cache;
  const rootValue = rootSlot === undefined ? undefined : str(config[rootSlot]);
  if (rootSlot !== undefined && rootValue !== undefined && rootCache !== undefined && parseDrive(rootSlot, rootValue)?.cache !== rootCache) {
    params[rootSlot] = withDriveOption(rootValue, 'cache', rootCache);
  }

  if (cloudInitUsed) {
    if (!drives(config).some((drive) => drive.cloudinit)) {
      // q35 machines have no ide1/ide3 (NOTES §7): ide2, then ide0, then a SCSI slot.
      const slot = ['ide2', 'ide0'].find((candidate) => !slots.has(candidate)) ?? freeScsi(slots);
      params[slot] = `${storage()}:cloudinit`;
      slots.add(slot);
    }
    Object.assign(params, cloudInitParams(inputs.cloudInit, custom.user !== undefined));
    const servers = [...nameservers(spec.nics), ...inputs.cloudInit.nameservers.filter((server) => !nameservers(spec.nics).includes(server))];
    // Both are space-separated lists: the generator splits on whitespace (NOTES §8).
    if (servers.length > 0) params['nameserver'] = servers.join(' ');
    if (inputs.cloudInit.searchdomains.length > 0) params['searchdomain'] = inputs.cloudInit.searchdomains.join(' ');
  }

  const order = spec.settings?.bootOrder;
  if (order === undefined) {
    const diskSlots = new Set([...disks(config).map((disk) => disk.slot), ...Object.keys(params).filter((key) => isNewDisk(key, params[key]))]);
    const disksOnly = bootOrder([...diskSlots], rootSlot);
    params['boot'] = spec.image.kind === 'iso' ? installerFirst(disksOnly, cdromSlots(config)) : disksOnly;
  } else {
    const network = spec.nics.map((nic) => slotsOf.nics[nic.name] ?? '');
    params['boot'] = `order=${bootDevicesFor(order, { ...(rootSlot === undefined ? {} : { disk: rootSlot }), network, cdrom: cdromSlots(config) }).join(';')}`;
  }
  // Also without cloud-init in the spec: a clone may carry another owner's snippets (cicustomValue).
  const cicustom = cicustomValue(str(config['cicustom']), custom, settings);
  if (cicustom !== undefined && cicustom !== str(config['cicustom'])) params['cicustom'] = cicustom;
  if (cicustom === undefined && str(config['cicustom']) !== undefined) remove.push('cicustom');
  // The record of the create that cloned the VM, not a later spec's: it is the placement that was
  // decided. A clone made for another owner (cloneVM) has none yet and takes the spec's.
  const record = marker.placement ?? spec.placementRecord;
  params['tags'] = tagsFor(spec.owner.uid, spec.tags ?? [], record);
  const final: Marker = { uid: marker.uid, namespace: marker.namespace, name: marker.name, disks: slotsOf.disks, nics: slotsOf.nics };
  if (record !== undefined) final.placement = record;
  params['description'] = descriptionWithMarker(str(config['description']), final);
  if (remove.length > 0) params['delete'] = remove.join(',');
  return params;
}

/** The marker's slots, completed for disks and NICs it does not know (the spec changed since the clone). */
function completeSlots(spec: CreateSpec, config: Row, marker: Marker): { disks: Record<string, string>; nics: Record<string, string> } {
  const disks: Record<string, string> = {};
  const rootName = rootDiskName(spec);
  const root = bootDiskSlot(config, marker.disks[rootName]);
  if (root !== undefined) disks[rootName] = root;
  const usedDisks = new Set([...drives(config).map((drive) => drive.slot), ...Object.values(marker.disks)]);
  const q35 = isQ35(spec.machine ?? machineType(config));
  for (const disk of spec.disks.filter((candidate) => !candidate.root)) {
    const planned = marker.disks[disk.name];
    if (planned !== undefined) {
      disks[disk.name] = planned;
      continue;
    }
    const slot = requireFreeSlot(disk.bus ?? 'scsi', usedDisks, q35, `disk '${disk.name}'`);
    usedDisks.add(slot);
    disks[disk.name] = slot;
  }
  const nicSlots: Record<string, string> = {};
  const usedNics = new Set(Object.values(marker.nics));
  spec.nics.forEach((nic, index) => {
    const planned = marker.nics[nic.name];
    if (planned !== undefined) {
      nicSlots[nic.name] = planned;
      return;
    }
    let next = index;
    while (usedNics.has(`net${next}`)) next += 1;
    usedNics.add(`net${next}`);
    nicSlots[nic.name] = `net${next}`;
  });
  return { disks, nics: nicSlots };
}

/**
 * `order=<CD-ROM drives>;<disks>`: a VM installed from an ISO boots the installer first (the
 * contract's isoInstall), and the boot disk once the CD-ROM drive is emptied or the installer's
 * menu falls through.
 */
function installerFirst(order: string, cdroms: readonly string[]): string {
  const disks = order.slice('order='.length).split(';').filter((slot) => slot !== '');
  return `order=${[...cdroms, ...disks].join(';')}`;
}

function freeScsi(slots: ReadonlySet<string>): string {
  for (let index = 0; index <= 30; index += 1) if (!slots.has(`scsi${index}`)) return `scsi${index}`;
  throw new InvalidSpecError('no free slot for the cloud-init drive');
}

function isNewDisk(key: string, value: string | number | undefined): boolean {
  if (typeof value !== 'string') return false;
  const drive = parseDrive(key, value);
  return drive !== undefined && !drive.cdrom && parsePropertyString(value, 'file').get('media') !== 'cdrom';
}
