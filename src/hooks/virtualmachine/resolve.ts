// Step 1 of a sync: turn the VirtualMachine and the objects Metacontroller sent along into the
// complete desired VM, or into the reason why that is not possible yet. Pure: no I/O.
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { API_VERSION } from '../../contracts/crds/common.js';
import { ProviderObject, ProviderStatus } from '../../contracts/crds/provider.js';
import { MAX_USERDATA_LENGTH, VirtualMachineObject, type VirtualMachineSpec } from '../../contracts/crds/virtualmachine.js';
import { VMClassObject, type VMClassSpec } from '../../contracts/crds/vmclass.js';
import { VMImageObject } from '../../contracts/crds/vmimage.js';
import { VMNetworkAttachmentObject } from '../../contracts/crds/vmnetworkattachment.js';
import { VMSnapshotObject, VMSnapshotStatus } from '../../contracts/crds/vmsnapshot.js';
import type { Capability, CreateSpec, DiskSpec, Identity, ImageSpec, NicSpec, ProviderTarget, VMRef } from '../../contracts/driver.js';
import { SecretObject } from '../../contracts/kube.js';
import type { ObjectsByType } from '../../contracts/metacontroller.js';
import { parseDuration, parseQuantity } from '../../contracts/quantity.js';
import { classMemory } from '../catalog.js';
import { previousConditions } from '../conditions.js';
import { checkedObject } from '../objects.js';

export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 60_000;
export const DEFAULT_USERDATA_KEY = 'userdata';
export const DEFAULT_RUNTIME_PORT = 9090;

export interface ResolvedVM {
  identity: Identity;
  provider: ProviderTarget;
  create: CreateSpec;
  powerState: 'On' | 'Off' | 'OffGraceful';
  shutdownTimeoutMs: number;
  powerCyclePolicy: 'Manual' | 'Automatic';
  restartRequest?: string;
  /** spec.cloneFrom: the source is resolved only while the VM still has to be created. */
  clone?: { sourceName: string; linked: boolean; source?: VMRef };
  /** spec.lifecycle.revertRequest, with the snapshot it names when that is ready to revert to. */
  revert?: RevertWanted;
  deletionPolicy: 'Delete' | 'Retain';
  /** Driver capabilities the spec relies on; a driver lacking one gets an Unsupported condition, not a call. */
  requires: Capability[];
}

export interface Unresolved {
  reason: string;
  message: string;
}

export interface RevertWanted {
  snapshot: string;
  request: string;
  /** Set when the VMSnapshot is Ready and of this VM; otherwise `problem` says why not. */
  snapshotID?: string;
  problem?: Unresolved;
}

export type Resolution = { ok: true; vm: ResolvedVM } | ({ ok: false } & Unresolved);

function missing(reason: string, message: string): Resolution {
  return { ok: false, reason, message };
}

export function identityOf(vm: VirtualMachineObject): Identity {
  return { uid: vm.metadata.uid ?? '', namespace: vm.metadata.namespace ?? '', name: vm.metadata.name };
}

/** The Provider object a VirtualMachine points at, checked for existence and readiness. */
export function resolveProvider(
  vm: VirtualMachineObject,
  related: ObjectsByType | undefined,
  options: { requireReady: boolean } = { requireReady: true },
): { ok: true; provider: ProviderTarget } | ({ ok: false } & Unresolved) {
  return resolveProviderRef(vm.spec.providerRef, vm.metadata.namespace, related, options);
}

/** A Provider reference made by an object of namespace `from`: found, admitted to that namespace, and (optionally) Ready. */
export function resolveProviderRef(
  ref: { name: string; namespace?: string | undefined },
  from: string | undefined,
  related: ObjectsByType | undefined,
  options: { requireReady: boolean },
): { ok: true; provider: ProviderTarget } | ({ ok: false } & Unresolved) {
  const namespace = ref.namespace ?? from;
  const name = ref.name;
  const found = checkedObject(related, { apiVersion: API_VERSION, kind: 'Provider', namespace, name }, ProviderObject);
  if (!found.found) return { ok: false, reason: 'ProviderNotFound', message: `Provider ${namespace}/${name} not found` };
  if (found.problem !== undefined) return { ok: false, reason: 'ProviderInvalid', message: found.problem };
  const object = found.object;
  const spec = object.spec;
  // Checked before anything else is read from it: a Provider of another team's namespace is not ours to use.
  const allowed = spec.allowedNamespaces ?? [];
  if (namespace !== from && !allowed.includes('*') && !allowed.includes(from ?? '')) {
    return {
      ok: false,
      reason: 'ProviderNotAllowed',
      message: `Provider ${namespace}/${name} does not admit namespace ${from ?? ''} (spec.allowedNamespaces)`,
    };
  }
  const ready = previousConditions(object.status).find((c) => c.type === 'Ready');
  if (options.requireReady && ready?.status !== 'True') {
    const why = ready ? `: ${ready.reason}: ${ready.message}` : '';
    return { ok: false, reason: 'ProviderNotReady', message: `Provider ${namespace}/${name} is not ready${why}` };
  }
  return { ok: true, provider: providerTarget(object) };
}

export function providerTarget(provider: ProviderObject): ProviderTarget {
  const target: ProviderTarget = {
    namespace: provider.metadata.namespace ?? '',
    name: provider.metadata.name,
    type: provider.spec.type,
    mode: provider.spec.runtime?.mode ?? (provider.spec.type === 'simulator' ? 'InProcess' : 'Remote'),
    port: provider.spec.runtime?.service?.port ?? DEFAULT_RUNTIME_PORT,
  };
  if (provider.metadata.uid !== undefined) target.uid = provider.metadata.uid;
  if (provider.spec.endpoint !== undefined) target.endpoint = provider.spec.endpoint;
  // A Provider being deleted may have lost its runtime Service (a namespace deletion): its status
  // names the runtime pods that still drain, and VMs still being deleted reach them directly.
  const endpoints = provider.status?.['runtimeEndpoints'];
  if (provider.metadata.deletionTimestamp !== undefined && Value.Check(ProviderStatus.properties.runtimeEndpoints, endpoints) && endpoints.length > 0) {
    target.endpoints = endpoints;
  }
  return target;
}

type Lookup<T> = { found: false } | { found: true; valid: false; problem: string } | { found: true; valid: true; spec: T };

/** A related object's spec, checked against its kind's contract first. */
function lookup<S extends TSchema & { static: { spec: unknown } }>(
  related: ObjectsByType | undefined,
  kind: string,
  namespace: string | undefined,
  name: string,
  schema: S,
): Lookup<S['static']['spec']> {
  const found = checkedObject(related, { apiVersion: API_VERSION, kind, namespace, name }, schema);
  if (!found.found) return { found: false };
  if (found.problem !== undefined) return { found: true, valid: false, problem: found.problem };
  return { found: true, valid: true, spec: (found.object as { spec: S['static']['spec'] }).spec };
}

/** Kubernetes encodes Secret data as standard base64 with padding; anything else is refused, not guessed at. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

function decodeSecret(
  related: ObjectsByType | undefined,
  namespace: string | undefined,
  name: string,
  key: string,
): { ok: true; value: string } | ({ ok: false } & Unresolved) {
  const found = checkedObject(related, { apiVersion: 'v1', kind: 'Secret', namespace, name }, SecretObject);
  if (!found.found) return { ok: false, reason: 'SecretNotFound', message: `Secret ${namespace}/${name} not found` };
  if (found.problem !== undefined) return { ok: false, reason: 'SecretInvalid', message: found.problem };
  const encoded = found.object.data?.[key];
  if (encoded === undefined) {
    return { ok: false, reason: 'SecretKeyNotFound', message: `Secret ${namespace}/${name} has no key "${key}"` };
  }
  // The same rules as inline user-data; messages never quote the data.
  const invalid = (why: string): { ok: false } & Unresolved => ({ ok: false, reason: 'SecretInvalid', message: `Secret ${namespace}/${name} key "${key}" ${why}` });
  if (!BASE64.test(encoded)) return invalid('is not valid base64');
  let value: string;
  try {
    value = UTF8.decode(Buffer.from(encoded, 'base64'));
  } catch {
    return invalid('is not UTF-8 text: cloud-init user-data must be text');
  }
  if (value.length > MAX_USERDATA_LENGTH) return invalid(`holds ${value.length} characters; user-data is limited to ${MAX_USERDATA_LENGTH}`);
  return { ok: true, value };
}

/** Everything but the Provider, which the caller has resolved already (it is needed before anything else). */
export function resolve(
  vm: VirtualMachineObject,
  related: ObjectsByType | undefined,
  provider: ProviderTarget,
  options: { vmExists: boolean } = { vmExists: false },
): Resolution {
  const spec = vm.spec;
  const namespace = vm.metadata.namespace;

  const vmClass = lookup(related, 'VMClass', namespace, spec.classRef.name, VMClassObject);
  if (!vmClass.found) return missing('ClassNotFound', `VMClass ${spec.classRef.name} not found`);
  if (!vmClass.valid) return missing('ClassInvalid', vmClass.problem);
  const memory = classMemory(vmClass.spec.memory);
  if (!memory.ok) return missing('ClassInvalid', `VMClass ${spec.classRef.name}: ${memory.problem}`);
  const memoryBytes = memory.bytes;

  const source = resolveSource(vm, related, options.vmExists);
  if (!source.ok) return source;

  const nics: NicSpec[] = [];
  for (const network of spec.networks ?? []) {
    const nic: NicSpec = { name: network.name };
    if (network.networkRef) {
      const attachment = lookup(related, 'VMNetworkAttachment', namespace, network.networkRef.name, VMNetworkAttachmentObject);
      if (!attachment.found) return missing('NetworkNotFound', `VMNetworkAttachment ${network.networkRef.name} not found`);
      if (!attachment.valid) return missing('NetworkInvalid', attachment.problem);
      Object.assign(nic, definedOnly(attachment.spec));
    }
    if (network.bridge !== undefined) {
      nic.bridge = network.bridge;
      delete nic.network;
    }
    if (network.vlan !== undefined) nic.vlan = network.vlan;
    if (network.mac !== undefined) nic.mac = network.mac.toLowerCase();
    if (network.staticIP !== undefined) nic.staticIP = network.staticIP;
    nics.push(nic);
  }

  let userData: string | undefined;
  const cloudInit = spec.userData?.cloudInit;
  if (cloudInit?.inline !== undefined) userData = cloudInit.inline;
  if (cloudInit?.secretRef) {
    const secret = decodeSecret(related, namespace, cloudInit.secretRef.name, cloudInit.secretRef.key ?? DEFAULT_USERDATA_KEY);
    if (!secret.ok) return secret;
    userData = secret.value;
  }

  const disks = resolveDisks(spec, vmClass.spec);
  if (!disks.ok) return disks;

  const security = vmClass.spec.securityProfile ?? {};
  const performance = vmClass.spec.performanceProfile ?? {};
  const needsUefi = security.tpmEnabled === true || security.secureBoot === true;
  const create: CreateSpec = {
    name: vm.metadata.name,
    owner: identityOf(vm),
    cpus: vmClass.spec.cpus,
    memoryBytes,
    features: {
      tpm: security.tpmEnabled === true,
      secureBoot: security.secureBoot === true,
      nestedVirtualization: performance.nestedVirtualization === true,
      cpuHotAdd: performance.cpuHotAddEnabled === true,
      memoryHotAdd: performance.memoryHotAddEnabled === true,
    },
    image: source.image,
    disks: disks.disks,
    storage: {
      provisioning: vmClass.spec.storage?.type ?? 'thin',
      ...definedOnly({ datastore: spec.placement?.datastore ?? vmClass.spec.storage?.class }),
    },
    nics,
    placement: definedOnly({
      host: spec.placement?.host,
      folder: spec.placement?.folder,
      cluster: spec.placement?.cluster,
      resourcePool: spec.placement?.resourcePool,
    }),
  };
  const firmware = needsUefi ? 'uefi' : vmClass.spec.spec?.bios;
  if (firmware !== undefined) create.firmware = firmware;
  if (vmClass.spec.spec?.machine !== undefined) create.machine = vmClass.spec.spec.machine;
  if (userData !== undefined) create.userData = userData;

  const shutdownTimeoutMs = spec.lifecycle?.gracefulShutdownTimeout
    ? (parseDuration(spec.lifecycle.gracefulShutdownTimeout) ?? DEFAULT_SHUTDOWN_TIMEOUT_MS)
    : DEFAULT_SHUTDOWN_TIMEOUT_MS;

  const resolved: ResolvedVM = {
    identity: identityOf(vm),
    provider,
    create,
    powerState: spec.powerState ?? 'On',
    shutdownTimeoutMs,
    powerCyclePolicy: spec.lifecycle?.powerCyclePolicy ?? 'Manual',
    deletionPolicy: spec.deletionPolicy ?? 'Delete',
    requires: requiredCapabilities(create, vmClass.spec.spec?.machine !== undefined),
  };
  if (spec.lifecycle?.restartRequest !== undefined) resolved.restartRequest = spec.lifecycle.restartRequest;
  if (source.clone) resolved.clone = source.clone;
  if (spec.lifecycle?.revertRequest) resolved.revert = resolveRevert(vm, related, spec.lifecycle.revertRequest);
  return { ok: true, vm: resolved };
}

type SourceResolution = { ok: true; image: ImageSpec; clone?: ResolvedVM['clone'] } | ({ ok: false } & Unresolved);

/** What the VM is made from: a VMImage, or another VirtualMachine (only needed while this one does not exist). */
function resolveSource(vm: VirtualMachineObject, related: ObjectsByType | undefined, vmExists: boolean): SourceResolution {
  const spec = vm.spec;
  const namespace = vm.metadata.namespace;
  if (spec.cloneFrom) {
    const linked = spec.cloneFrom.linkedClone ?? true;
    const sourceName = spec.cloneFrom.vmRef.name;
    const clone: NonNullable<ResolvedVM['clone']> = { sourceName, linked };
    // The clone is independent of its source once it exists: the source may change or go away.
    const image: ImageSpec = { kind: 'template', ref: '', fullClone: !linked };
    if (vmExists) return { ok: true, image, clone };
    const found = checkedObject(related, { apiVersion: API_VERSION, kind: 'VirtualMachine', namespace, name: sourceName }, VirtualMachineObject);
    if (!found.found) return { ok: false, reason: 'CloneSourceNotFound', message: `source VirtualMachine ${sourceName} not found` };
    if (found.problem !== undefined) return { ok: false, reason: 'CloneSourceInvalid', message: found.problem };
    const source = found.object;
    const sourceProvider = source.spec.providerRef;
    if (sourceProvider.name !== spec.providerRef.name || (sourceProvider.namespace ?? namespace) !== (spec.providerRef.namespace ?? namespace)) {
      return { ok: false, reason: 'CloneSourceInvalid', message: `source VirtualMachine ${sourceName} is on another Provider` };
    }
    const uid = source.metadata.uid;
    const providerID = source.status?.['providerID'];
    const provisioned = previousConditions(source.status).find((condition) => condition.type === 'Provisioned');
    if (typeof providerID !== 'string' || providerID === '' || !uid || provisioned?.status !== 'True') {
      return { ok: false, reason: 'CloneSourceNotReady', message: `source VirtualMachine ${sourceName} has not been created yet` };
    }
    clone.source = { id: providerID, owner: { uid, namespace: namespace ?? '', name: sourceName } };
    return { ok: true, image: { ...image, ref: providerID }, clone };
  }
  const imageName = spec.imageRef?.name ?? '';
  const image = lookup(related, 'VMImage', namespace, imageName, VMImageObject);
  if (!image.found) return { ok: false, reason: 'ImageNotFound', message: `VMImage ${imageName} not found` };
  if (!image.valid) return { ok: false, reason: 'ImageInvalid', message: image.problem };
  const fullClone = image.spec.fullClone ?? true;
  return {
    ok: true,
    image: image.spec.url
      ? { kind: 'url', url: image.spec.url.url, fullClone, ...definedOnly({ checksum: image.spec.url.checksum }) }
      : { kind: 'template', ref: image.spec.source ?? '', fullClone },
  };
}

function resolveRevert(
  vm: VirtualMachineObject,
  related: ObjectsByType | undefined,
  request: { snapshotRef: { name: string }; request: string },
): RevertWanted {
  const wanted: RevertWanted = { snapshot: request.snapshotRef.name, request: request.request };
  const problem = (reason: string, message: string): RevertWanted => ({ ...wanted, problem: { reason, message } });
  const found = checkedObject(related, { apiVersion: API_VERSION, kind: 'VMSnapshot', namespace: vm.metadata.namespace, name: wanted.snapshot }, VMSnapshotObject);
  if (!found.found) return problem('RevertSnapshotNotFound', `VMSnapshot ${wanted.snapshot} not found`);
  if (found.problem !== undefined) return problem('RevertSnapshotInvalid', found.problem);
  const status = found.object.status;
  const ofThisVM = found.object.spec.vmRef.name === vm.metadata.name;
  if (!ofThisVM || (Value.Check(VMSnapshotStatus, status) && status.vm !== undefined && status.vm.uid !== vm.metadata.uid)) {
    return problem('RevertSnapshotInvalid', `VMSnapshot ${wanted.snapshot} is not a snapshot of this VM`);
  }
  if (!Value.Check(VMSnapshotStatus, status) || status.phase !== 'Ready' || !status.snapshotID) {
    return problem('RevertSnapshotNotReady', `VMSnapshot ${wanted.snapshot} is not Ready`);
  }
  return { ...wanted, snapshotID: status.snapshotID };
}

function resolveDisks(spec: VirtualMachineSpec, vmClass: VMClassSpec): { ok: true; disks: DiskSpec[] } | ({ ok: false } & Unresolved) {
  const disks: DiskSpec[] = [];
  const declared = spec.disks ?? [];
  const rootSize = declared.find((disk) => disk.name === 'root')?.size ?? vmClass.diskDefaults?.size;
  if (rootSize !== undefined) {
    const sizeBytes = parseQuantity(rootSize);
    if (sizeBytes === undefined) return { ok: false, reason: 'InvalidSpec', message: `disk root: invalid size ${rootSize}` };
    disks.push({ name: 'root', sizeBytes, root: true });
  }
  for (const disk of declared) {
    if (disk.name === 'root') continue;
    const sizeBytes = parseQuantity(disk.size);
    if (sizeBytes === undefined) return { ok: false, reason: 'InvalidSpec', message: `disk ${disk.name}: invalid size ${disk.size}` };
    disks.push({ name: disk.name, sizeBytes, root: false });
  }
  return { ok: true, disks };
}

/** The capability flags a create spec depends on. */
export function requiredCapabilities(spec: CreateSpec, machineSet: boolean): Capability[] {
  const needs = new Set<Capability>();
  if (spec.firmware === 'uefi') needs.add('uefi');
  if (spec.features.tpm) needs.add('tpm');
  if (spec.features.secureBoot) needs.add('secureBoot');
  if (spec.features.nestedVirtualization) needs.add('nestedVirtualization');
  if (spec.features.cpuHotAdd) needs.add('cpuHotAdd');
  if (spec.features.memoryHotAdd) needs.add('memoryHotAdd');
  if (machineSet) needs.add('machineType');
  if (spec.storage.provisioning === 'thick') needs.add('thickProvisioning');
  if (spec.storage.datastore !== undefined) needs.add('placementDatastore');
  if (spec.placement.host !== undefined) needs.add('placementHost');
  if (spec.placement.folder !== undefined) needs.add('placementFolder');
  if (spec.placement.cluster !== undefined) needs.add('placementCluster');
  if (spec.placement.resourcePool !== undefined) needs.add('placementResourcePool');
  if (spec.image.kind === 'url') needs.add('imageImport');
  if (!spec.image.fullClone) needs.add('linkedClones');
  if (spec.userData !== undefined) needs.add('cloudInit');
  for (const nic of spec.nics) {
    if (nic.vlan !== undefined) needs.add('vlan');
    if (nic.mac !== undefined) needs.add('macAddress');
    if (nic.model !== undefined && nic.model !== 'virtio') needs.add('nicModel');
    if (nic.firewall) needs.add('nicFirewall');
    if (nic.rateLimitMBps !== undefined) needs.add('nicRateLimit');
    if (nic.mtu !== undefined) needs.add('nicMTU');
    if (nic.staticIP !== undefined) {
      needs.add('staticIP');
      needs.add('cloudInit');
    }
  }
  return [...needs].sort();
}

/** Copies the keys whose value is not undefined (exactOptionalPropertyTypes-friendly). */
function definedOnly<T extends object>(object: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}
