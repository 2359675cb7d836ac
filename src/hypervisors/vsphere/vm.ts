// The per-endpoint state the verb modules share, and the reads they all need: a VM's properties,
// whether vSphere can read it at all, the owner check before every change, and the VM list
// snapshot behind findByIdentity.

import { ConflictError, NotFoundError, UnreachableError, type Identity, type VMRef } from '../../contracts/driver.js';
import type { VsphereClient } from './client.js';
import type { VsphereConfig } from './config.js';
import { extraConfigMap, ownerOf, type CreateState, stateOf } from './identity.js';
import { retrieveAll, retrieveOne, type ObjectContent } from './property-collector.js';
import type { MoRef } from './soap.js';
import { textAt } from './xml.js';
import { SnapshotCache } from './snapshot-cache.js';

export interface VsphereContext {
  client: VsphereClient;
  config: VsphereConfig;
  /** Every VM's name, identity, placement record, template flag, readability, host and size: one list call serves many syncs. */
  vmList: SnapshotCache<ObjectContent[]>;
  /** Names of hosts, datastores and port groups by moid; names seldom change, a stale one is harmless. */
  names: Map<string, string>;
}

export const VM_PATHS = [
  'name',
  'config.extraConfig',
  'config.template',
  'config.instanceUuid',
  'config.version',
  'config.firmware',
  'config.hardware.numCPU',
  'config.hardware.memoryMB',
  'config.hardware.device',
  'config.cpuHotAddEnabled',
  'config.memoryHotAddEnabled',
  'config.nestedHVEnabled',
  'config.bootOptions',
  'runtime.connectionState',
  'runtime.powerState',
  'runtime.host',
  'guest.net',
  'summary.guest.ipAddress',
  'recentTask',
  'snapshot',
  'resourcePool',
  'parent',
  'summary.config.vmPathName',
] as const;

// `runtime.connectionState` and the vmx path are known to vCenter even when the VM's `config` is
// not (files on an inaccessible datastore, a VM still being created): they tell an unreadable VM
// that may be ours from one that cannot be. The host and size serve the inventory, which reads
// every VM's placement record from the same list (placed.ts).
export const LIST_PATHS = [
  'name',
  'config.extraConfig',
  'config.template',
  'runtime.connectionState',
  'summary.config.vmPathName',
  'runtime.host',
  'config.hardware.numCPU',
  'config.hardware.memoryMB',
] as const;

export function vmRef(id: string): MoRef {
  return { type: 'VirtualMachine', value: id };
}

export interface VmRecord {
  ref: MoRef;
  object: ObjectContent;
  extraConfig: Map<string, string>;
  /** From extraConfig: undefined for a VM we did not create, and for one whose config is unreadable. */
  owner: Identity | undefined;
  state: CreateState | undefined;
  name: string;
  template: boolean;
  /** Whether vSphere returned the VM's `config` (`config.template` is a boolean every config has). */
  configReadable: boolean;
  /** The fault vSphere gave for `config` paths it could not read (missingSet), if it gave one. */
  configFault: string | undefined;
  /** `runtime.connectionState`: connected, disconnected, inaccessible, invalid or orphaned. */
  connectionState: string | undefined;
  /** `[datastore] directory/file.vmx`, named after the VM at creation and kept through renames. */
  vmPathName: string | undefined;
}

export function record(object: ObjectContent): VmRecord {
  const extraConfig = extraConfigMap(object.props.get('config.extraConfig'));
  const configFault = [...object.missing].find(([path]) => path === 'config' || path.startsWith('config.'))?.[1];
  return {
    ref: object.ref,
    object,
    extraConfig,
    owner: ownerOf(extraConfig),
    state: stateOf(extraConfig),
    name: object.props.get('name')?.text ?? object.ref.value,
    template: object.props.get('config.template')?.text === 'true',
    configReadable: object.props.has('config.template') && configFault === undefined,
    configFault,
    connectionState: textAt(object.props.get('runtime.connectionState')),
    vmPathName: textAt(object.props.get('summary.config.vmPathName')),
  };
}

// vim.VirtualMachine.ConnectionState, in the words a user needs.
const CONNECTION: Record<string, string> = {
  disconnected: 'its host is not connected to vCenter',
  inaccessible: 'its files cannot be reached (datastore inaccessible or all paths down)',
  invalid: 'its configuration file cannot be read or is corrupt',
  orphaned: 'vCenter lists it but its host no longer does',
};

/** Why vSphere cannot tell what this VM is right now, or undefined when it can. */
export function unreadableWhy(vm: VmRecord): string | undefined {
  const state = vm.connectionState;
  if (state !== undefined && state !== 'connected') return `it is ${state}: ${CONNECTION[state] ?? 'vSphere cannot read it'}`;
  if (!vm.configReadable) {
    const fault = vm.configFault === undefined ? '' : `, vSphere says ${vm.configFault}`;
    return `its configuration cannot be read (a VM still being created, or one whose files are inaccessible${fault})`;
  }
  return undefined;
}

/**
 * "I cannot see it" is not "it is gone" (Driver contract): a VM vSphere lists but cannot read is
 * Unreachable, so the hooks neither replace it nor let its object go.
 */
export function requireReadable(vm: VmRecord): VmRecord {
  const why = unreadableWhy(vm);
  if (why !== undefined) throw new UnreachableError(`VM ${vm.ref.value} (${vm.name}) is unknown, not gone: ${why}`);
  return vm;
}

/**
 * A template is not a VM virtrigaud manages: vSphere refuses to power it on or reconfigure it, and
 * someone made it one on purpose (MarkAsTemplate, e.g. to make a golden image of a configured VM).
 * NotFound, not Conflict: the VM the object stood for no longer exists as a VM, so its object may
 * be deleted (the template is left alone) or get a new VM; Conflict would hold that deletion for
 * good. The template itself is never changed or deleted.
 */
export function templateIsNotAVM(vm: VmRecord): NotFoundError {
  return new NotFoundError(`VM ${vm.ref.value} (${vm.name}) is now a template; templates are not VMs virtrigaud manages, and this one is left as it is`);
}

export async function readVM(ctx: VsphereContext, id: string, signal?: AbortSignal): Promise<VmRecord> {
  return record(await retrieveOne(ctx.client, vmRef(id), VM_PATHS, signal));
}

export function listVMs(ctx: VsphereContext, signal?: AbortSignal): Promise<VmRecord[]> {
  return ctx.vmList.current(signal).then((objects) => objects.map(record));
}

export async function fetchVmList(ctx: Pick<VsphereContext, 'client'>, signal?: AbortSignal): Promise<ObjectContent[]> {
  const { rootFolder } = await ctx.client.serviceContent(signal);
  return retrieveAll(ctx.client, rootFolder, 'VirtualMachine', LIST_PATHS, signal);
}

/**
 * The VM, if it is `ref.owner`'s: a VM without our identity, or with another owner's, is never
 * touched (ConflictError). A VM that is gone, or is now a template, is NotFound; one vSphere cannot
 * read is Unreachable (its owner cannot be told).
 */
export async function requireOwned(ctx: VsphereContext, ref: VMRef, signal?: AbortSignal): Promise<VmRecord> {
  const vm = requireReadable(await readVM(ctx, ref.id, signal));
  if (vm.template) throw templateIsNotAVM(vm);
  if (vm.owner === undefined) throw new ConflictError(`VM ${ref.id} (${vm.name}) was not created by virtrigaud; it is never changed`);
  if (vm.owner.uid !== ref.owner.uid) {
    throw new ConflictError(`VM ${ref.id} (${vm.name}) belongs to ${vm.owner.namespace}/${vm.owner.name}, not to ${ref.owner.namespace}/${ref.owner.name}`);
  }
  return vm;
}

/** The name of a managed object, cached by moid. */
export async function nameOf(ctx: VsphereContext, ref: MoRef | undefined, signal?: AbortSignal): Promise<string | undefined> {
  if (ref === undefined) return undefined;
  const key = `${ref.type}:${ref.value}`;
  const known = ctx.names.get(key);
  if (known !== undefined) return known;
  try {
    const object = await retrieveOne(ctx.client, ref, ['name'], signal);
    const name = textAt(object.props.get('name'));
    if (name !== undefined) ctx.names.set(key, name);
    return name;
  } catch (error) {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  }
}
