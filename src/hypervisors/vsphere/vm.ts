// The per-endpoint state the verb modules share, and the reads they all need: a VM's properties,
// the owner check before every change, and the VM list snapshot behind findByIdentity.

import { ConflictError, NotFoundError, type Identity, type VMRef } from '../../contracts/driver.js';
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
  /** Every VM's name, identity and template flag: one list call serves many syncs. */
  vmList: SnapshotCache<ObjectContent[]>;
  /** Names of hosts, datastores and port groups by moid; names seldom change, a stale one is harmless. */
  names: Map<string, string>;
  /**
   * Clone tasks still running when create answered, by owner UID. vCenter may not list the new VM
   * until its clone has gone some way; until then this is what stops a second clone for the owner
   * (a lost status, a create retried while the task runs). Lost on restart, as caches may be.
   */
  pendingClones: Map<string, string>;
  /** How long create waits for a clone task before answering with the task (ms). */
  cloneWaitMs: number;
  sleep: (ms: number) => Promise<void>;
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
  'runtime.powerState',
  'runtime.host',
  'guest.net',
  'summary.guest.ipAddress',
  'recentTask',
  'snapshot',
  'resourcePool',
  'parent',
] as const;

export const LIST_PATHS = ['name', 'config.extraConfig', 'config.template'] as const;

export function vmRef(id: string): MoRef {
  return { type: 'VirtualMachine', value: id };
}

export interface VmRecord {
  ref: MoRef;
  object: ObjectContent;
  extraConfig: Map<string, string>;
  owner: Identity | undefined;
  state: CreateState | undefined;
  name: string;
  template: boolean;
}

export function record(object: ObjectContent): VmRecord {
  const extraConfig = extraConfigMap(object.props.get('config.extraConfig'));
  return {
    ref: object.ref,
    object,
    extraConfig,
    owner: ownerOf(extraConfig),
    state: stateOf(extraConfig),
    name: object.props.get('name')?.text ?? object.ref.value,
    template: object.props.get('config.template')?.text === 'true',
  };
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
 * touched (ConflictError). A VM that is gone is NotFound.
 */
export async function requireOwned(ctx: VsphereContext, ref: VMRef, signal?: AbortSignal): Promise<VmRecord> {
  const vm = await readVM(ctx, ref.id, signal);
  if (vm.owner === undefined) throw new ConflictError(`VM ${ref.id} (${vm.name}) was not created by virtrigaud; it is never changed`);
  if (vm.owner.uid !== ref.owner.uid) {
    throw new ConflictError(`VM ${ref.id} (${vm.name}) belongs to ${vm.owner.namespace}/${vm.owner.name}, not to ${ref.owner.namespace}/${ref.owner.name}`);
  }
  if (vm.template) throw new ConflictError(`VM ${ref.id} is a template`);
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
