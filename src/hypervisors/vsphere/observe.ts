// describe and findByIdentity: vim25 VM properties → ObservedVM.

import { BusyError, type ObservedDisk, type ObservedNic, type ObservedVM, type PowerState } from '../../contracts/driver.js';
import { MiB } from '../../contracts/quantity.js';
import { filterGuestAddresses } from '../common/addresses.js';
import { morefOf } from './client.js';
import { modelOf, readDevices } from './devices.js';
import { KEY, askedNicSettings, diskSlotsOf, namesOf, slotOf } from './identity.js';
import { nicVlan } from './portgroups.js';
import { readTasks } from './tasks.js';
import type { MoRef } from './soap.js';
import { boolAt, childrenNamed, textAt } from './xml.js';
import { readOwned } from './find.js';
import { nameOf, readVM, requireReadable, templateIsNotAVM, type VmRecord, type VsphereContext } from './vm.js';

const POWER: Record<string, PowerState> = { poweredOn: 'On', poweredOff: 'Off', suspended: 'Suspended' };

/** The vSphere Client's page for a VM: the server's instance UUID and the VM's moid. */
export function consoleURL(origin: string, serverGuid: string | undefined, moid: string): string | undefined {
  if (serverGuid === undefined || serverGuid === '') return undefined;
  return `${origin}/ui/app/vm;nav=v/urn:vmomi:VirtualMachine:${encodeURIComponent(moid)}:${encodeURIComponent(serverGuid)}/summary`;
}

function guestAddresses(vm: VmRecord): string[] {
  const addresses: string[] = [];
  for (const nic of vm.object.props.get('guest.net')?.children ?? []) {
    for (const address of childrenNamed(nic, 'ipAddress')) addresses.push(address.text);
  }
  const summary = vm.object.props.get('summary.guest.ipAddress')?.text;
  if (summary !== undefined) addresses.push(summary);
  return filterGuestAddresses(addresses);
}

async function lockOf(ctx: VsphereContext, vm: VmRecord, signal?: AbortSignal): Promise<string | undefined> {
  const refs = (vm.object.props.get('recentTask')?.children ?? []).map(morefOf).filter((ref): ref is MoRef => ref !== undefined);
  if (refs.length === 0) return undefined;
  const infos = await readTasks(ctx, refs, signal);
  for (const info of infos.values()) {
    if (info.state === 'queued' || info.state === 'running') return (info.descriptionId ?? 'task').replace(/^VirtualMachine\./, '');
  }
  return undefined;
}

export async function observe(ctx: VsphereContext, vm: VmRecord, signal?: AbortSignal): Promise<ObservedVM> {
  const props = vm.object.props;
  const devices = readDevices(props.get('config.hardware.device'));
  const slots = Object.entries(diskSlotsOf(vm.extraConfig));
  const root = devices.disks[0];
  const nicNames = namesOf(vm.extraConfig, KEY.nics);
  const disks: ObservedDisk[] = [];
  for (const disk of devices.disks) {
    const named = slots.find(([, slot]) => slot === slotOf(disk))?.[0];
    const observed: ObservedDisk = { name: named ?? (slots.length === 0 && disk === root ? 'root' : `disk-${disk.key}`), sizeBytes: disk.capacityBytes };
    const datastore = await nameOf(ctx, disk.datastore, signal);
    if (datastore !== undefined) observed.datastore = datastore;
    if (disk.thin !== undefined) observed.provisioning = disk.thin ? 'thin' : 'thick';
    disks.push(observed);
  }
  const nics: ObservedNic[] = [];
  const asked = askedNicSettings(vm.extraConfig);
  for (const [index, nic] of devices.nics.entries()) {
    const observed: ObservedNic = { name: nicNames[index] ?? `nic-${nic.key}` };
    if (nic.mac !== undefined) observed.mac = nic.mac;
    const network = nic.networkName ?? (nic.portgroupKey === undefined ? undefined : await nameOf(ctx, { type: 'DistributedVirtualPortgroup', value: nic.portgroupKey }, signal));
    if (network !== undefined) observed.network = network;
    // Only what the NIC asked for (identity.ts): the template's model and network's VLAN are what it asked otherwise.
    const fields = asked[observed.name] ?? [];
    const model = fields.includes('model') ? modelOf(nic.type) : undefined;
    if (model !== undefined) observed.model = model;
    const vlan = fields.includes('vlan') ? await nicVlan(ctx, nic, morefOf(props.get('runtime.host')), signal) : undefined;
    if (vlan !== undefined) observed.vlan = vlan;
    nics.push(observed);
  }
  const bootOptions = props.get('config.bootOptions');
  const firmware = textAt(props.get('config.firmware')) === 'efi' ? 'uefi' : 'bios';
  const content = await ctx.client.serviceContent(signal);
  const observed: ObservedVM = {
    id: vm.ref.value,
    name: vm.name,
    powerState: POWER[textAt(props.get('runtime.powerState')) ?? ''] ?? 'Unknown',
    cpus: Number(textAt(props.get('config.hardware.numCPU')) ?? 0),
    memoryBytes: Number(textAt(props.get('config.hardware.memoryMB')) ?? 0) * MiB,
    firmware,
    features: {
      tpm: devices.tpm,
      secureBoot: boolAt(bootOptions, 'efiSecureBootEnabled') ?? false,
      nestedVirtualization: textAt(props.get('config.nestedHVEnabled')) === 'true',
      cpuHotAdd: textAt(props.get('config.cpuHotAddEnabled')) === 'true',
      memoryHotAdd: textAt(props.get('config.memoryHotAddEnabled')) === 'true',
    },
    disks,
    nics,
    ips: guestAddresses(vm),
  };
  if (vm.owner !== undefined) observed.owner = vm.owner;
  if (vm.owner !== undefined && vm.state === 'configuring') observed.incomplete = true;
  const lock = await lockOf(ctx, vm, signal);
  if (lock !== undefined) observed.lock = lock;
  const host = await nameOf(ctx, morefOf(props.get('runtime.host')), signal);
  if (host !== undefined) observed.host = host;
  const url = consoleURL(ctx.config.origin, content.about.instanceUuid, vm.ref.value);
  if (url !== undefined) observed.consoleURL = url;
  return observed;
}

/** The VM with this ID: NotFound when vSphere has none (or it is now a template), Unreachable when it cannot read it. */
export async function describeVM(ctx: VsphereContext, id: string, signal?: AbortSignal): Promise<ObservedVM> {
  const vm = requireReadable(await readVM(ctx, id, signal));
  if (vm.template) throw templateIsNotAVM(vm);
  return observe(ctx, vm, signal);
}

/**
 * The owner's VM, found from any process (find.ts). Never "none" while a VM or a clone that may be
 * the owner's is there: Unreachable for a VM vSphere cannot read, Busy for a clone still running.
 */
export async function findByIdentity(ctx: VsphereContext, uid: string, signal?: AbortSignal): Promise<ObservedVM | undefined> {
  const located = await readOwned(ctx, uid, signal);
  switch (located.kind) {
    case 'none':
      return undefined;
    case 'cloning':
      throw new BusyError(`clone task ${located.task} (of ${located.source}) is making the VM of owner ${uid}; it is found once vCenter registers it`);
    case 'vm':
      return observe(ctx, located.vm, signal);
  }
}
