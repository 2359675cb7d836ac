// Step 1 of a sync: turn the VirtualMachine and the objects Metacontroller sent along into the
// complete desired VM, or into the reason why that is not possible yet. Pure: no I/O. Every spec is
// read through its kind's normalize step (src/contracts/normalize), never as written.
import { migrationHolding } from '../vmmigration.js';
import { createHash } from 'node:crypto';
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { API_VERSION } from '../../contracts/crds/common.js';
import { ProviderObject, ProviderStatus } from '../../contracts/crds/provider.js';
import { MAX_USERDATA_LENGTH, VirtualMachineObject } from '../../contracts/crds/virtualmachine.js';
import { VMClassObject } from '../../contracts/crds/vmclass.js';
import { VMImageObject } from '../../contracts/crds/vmimage.js';
import { VMNetworkAttachmentObject } from '../../contracts/crds/vmnetworkattachment.js';
import { VMPlacementPolicyObject } from '../../contracts/crds/vmplacementpolicy.js';
import { VMSnapshotObject, VMSnapshotStatus } from '../../contracts/crds/vmsnapshot.js';
import { TAG_PATTERN, type Capabilities, type CreateSpec, type DiskSpec, type Identity, type ImageSpec, type NicSpec, type ProviderTarget, type VMRef } from '../../contracts/driver.js';
import { checkIgnition, parseMetaData } from '../../contracts/guest-data.js';
import { SecretObject } from '../../contracts/kube.js';
import type { ObjectsByType } from '../../contracts/metacontroller.js';
import { describeUnsupported, unsupportedUses, type FieldUse } from '../../contracts/normalize/common.js';
import { providerDefaults, DEFAULT_CAPABILITIES, type ProviderDefaults } from '../../contracts/normalize/provider.js';
import { normalizeVMClass, type CanonicalClass } from '../../contracts/normalize/vmclass.js';
import { normalizeVMImage } from '../../contracts/normalize/vmimage.js';
import { normalizeVMNetworkAttachment } from '../../contracts/normalize/vmnetworkattachment.js';
import { normalizeVMPlacementPolicy, type CanonicalPolicy } from '../../contracts/normalize/vmplacementpolicy.js';
import { normalizeVirtualMachine, type CanonicalRef, type CanonicalVM, type DataSource } from '../../contracts/normalize/virtualmachine.js';
import { fieldUses } from '../../contracts/support.js';
import { previousConditions } from '../conditions.js';
import { checkedObject } from '../objects.js';

export const DEFAULT_RUNTIME_PORT = 9090;

export interface ResolvedVM {
  identity: Identity;
  provider: ProviderTarget;
  create: CreateSpec;
  /** Suspended needs the suspend capability. */
  powerState: 'On' | 'Off' | 'OffGraceful' | 'Suspended';
  shutdownTimeoutMs: number;
  powerCyclePolicy: 'Manual' | 'Automatic';
  restartRequest?: string;
  /** How restartRequest restarts: Graceful (default: shutdown, pending changes applied, start) or Reset (needs hardReset). */
  restartMode?: 'Graceful' | 'Reset';
  /** spec.cloneFrom: the source is resolved only while the VM still has to be created. */
  clone?: { sourceName: string; linked: boolean; source?: VMRef };
  /** spec.lifecycle.revertRequest, with the snapshot it names when that is ready to revert to. */
  revert?: RevertWanted;
  deletionPolicy: 'Delete' | 'Retain';
  /** Disks whose growth waits until the VM is off (expandPolicy Offline). */
  offlineGrowth: string[];
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

function missing(reason: string, message: string): { ok: false } & Unresolved {
  return { ok: false, reason, message };
}

export function identityOf(vm: Pick<VirtualMachineObject, 'metadata'>): Identity {
  return { uid: vm.metadata.uid ?? '', namespace: vm.metadata.namespace ?? '', name: vm.metadata.name };
}

/** The Provider object a VirtualMachine points at, checked for existence and readiness. */
export function resolveProvider(
  vm: VirtualMachineObject,
  related: ObjectsByType | undefined,
  options: { requireReady: boolean } = { requireReady: true },
): ProviderResolution {
  return resolveProviderRef(vm.spec.providerRef, vm.metadata.namespace, related, options);
}

/** A Provider reference made by an object of namespace `from`: found, admitted to that namespace, and (optionally) Ready. */
export function resolveProviderRef(
  ref: { name: string; namespace?: string | undefined },
  from: string | undefined,
  related: ObjectsByType | undefined,
  options: { requireReady: boolean },
): ProviderResolution {
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
  return { ok: true, provider: providerTarget(object), defaults: providerDefaults(spec) };
}

export type ProviderResolution = { ok: true; provider: ProviderTarget; defaults: ProviderDefaults } | ({ ok: false } & Unresolved);

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

type Lookup<T> = { found: false } | { found: true; valid: false; problem: string } | { found: true; valid: true; object: T };

/** A related object, checked against its kind's contract first. */
function lookup<S extends TSchema>(
  related: ObjectsByType | undefined,
  kind: string,
  namespace: string | undefined,
  name: string,
  schema: S,
): Lookup<S['static']> {
  const found = checkedObject(related, { apiVersion: API_VERSION, kind, namespace, name }, schema);
  if (!found.found) return { found: false };
  if (found.problem !== undefined) return { found: true, valid: false, problem: found.problem };
  return { found: true, valid: true, object: found.object };
}

/** Kubernetes encodes Secret data as standard base64 with padding; anything else is refused, not guessed at. */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

function decodeSecret(
  related: ObjectsByType | undefined,
  namespace: string | undefined,
  name: string,
  keys: readonly string[],
): { ok: true; value: string } | ({ ok: false } & Unresolved) {
  const found = checkedObject(related, { apiVersion: 'v1', kind: 'Secret', namespace, name }, SecretObject);
  if (!found.found) return { ok: false, reason: 'SecretNotFound', message: `Secret ${namespace}/${name} not found` };
  if (found.problem !== undefined) return { ok: false, reason: 'SecretInvalid', message: found.problem };
  const key = keys.find((candidate) => found.object.data?.[candidate] !== undefined);
  const encoded = key === undefined ? undefined : found.object.data?.[key];
  if (key === undefined || encoded === undefined) {
    const named = keys.map((candidate) => `"${candidate}"`).join(', ');
    return { ok: false, reason: 'SecretKeyNotFound', message: `Secret ${namespace}/${name} has no key ${keys.length === 1 ? named : `of ${named}`}` };
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

/** What the VM names, found and normalized: everything a create needs but the clone source and the revert. */
export interface References {
  vm: CanonicalVM;
  vmClass: CanonicalClass;
  /** Undefined for clones (the source is resolved by `resolve`) and imported disks. */
  image?: ImageSpec;
  /** The image's storage for a full clone's disks (`source.proxmox.storage`), weakest of the datastore choices. */
  imageDatastore?: string;
  nics: NicSpec[];
  /** The VM's cloud-init user-data with the guest-tools part its class asks for, if any. */
  userData?: string;
  metaData?: string;
  ignition?: string;
  /** Sorted, without duplicates. */
  tags: string[];
  /** Each object's fields that ask something of the driver, named by the object. */
  uses: { owner: string; uses: FieldUse[] }[];
  /** spec.placementRef's policy. */
  placement?: { policy: string; value: CanonicalPolicy };
}

type Resolved<T> = ({ ok: true } & T) | ({ ok: false } & Unresolved);

/** A reference to a namespace other than the referrer's is refused, never looked up in the referrer's. */
function sameNamespace(kind: string, ref: CanonicalRef, namespace: string | undefined): Unresolved | undefined {
  if (ref.namespace === undefined || ref.namespace === namespace) return undefined;
  return {
    reason: 'CrossNamespaceReference',
    message: `${kind} ${ref.namespace}/${ref.name}: references to another namespace are not served; use a ${kind} of namespace ${namespace ?? ''}`,
  };
}

/**
 * The VM's own spec, its class, image, network attachments and user-data, resolved for `provider`.
 * Pure; needs nothing of the hypervisor, so the Unsupported check runs before any call.
 */
export function resolveReferences(vm: VirtualMachineObject, related: ObjectsByType | undefined, provider: ProviderTarget): Resolved<{ references: References }> {
  const namespace = vm.metadata.namespace;
  const normalized = normalizeVirtualMachine(vm.spec);
  if (!normalized.ok) return missing('InvalidSpec', normalized.problem);
  const spec = normalized.value;
  const uses: References['uses'] = [{ owner: 'VirtualMachine', uses: fieldUses('VirtualMachine', vm) }];

  const classRef = spec.classRef;
  const crossClass = sameNamespace('VMClass', classRef, namespace);
  if (crossClass) return { ok: false, ...crossClass };
  const classObject = lookup(related, 'VMClass', namespace, classRef.name, VMClassObject);
  if (!classObject.found) return missing('ClassNotFound', `VMClass ${classRef.name} not found`);
  if (!classObject.valid) return missing('ClassInvalid', classObject.problem);
  const normalizedClass = normalizeVMClass(classObject.object.spec);
  if (!normalizedClass.ok) return missing('ClassInvalid', `VMClass ${classRef.name}: ${normalizedClass.problem}`);
  uses.push({ owner: `VMClass ${classRef.name}`, uses: fieldUses('VMClass', classObject.object) });

  const vmClass = normalizedClass.value;
  const references: References = { vm: spec, vmClass, nics: [], uses, tags: [...spec.tags].sort() };
  const cloneKeeps = spec.source.kind === 'clone' ? classFieldsAClonedVMKeeps(vmClass) : [];
  if (cloneKeeps.length > 0) {
    return missing(
      'Unsupported',
      `VMClass ${classRef.name}: ${cloneKeeps.join(', ')} ${cloneKeeps.length === 1 ? 'is' : 'are'} applied when a VM is made from an image; a clone (spec.cloneFrom) keeps its source's`,
    );
  }
  if (spec.placementRef !== undefined) {
    const policyObject = lookup(related, 'VMPlacementPolicy', namespace, spec.placementRef, VMPlacementPolicyObject);
    if (!policyObject.found) return missing('PlacementPolicyNotFound', `VMPlacementPolicy ${spec.placementRef} not found`);
    if (!policyObject.valid) return missing('PlacementPolicyInvalid', policyObject.problem);
    const policy = normalizeVMPlacementPolicy(policyObject.object.spec);
    if (!policy.ok) return missing('PlacementPolicyInvalid', `VMPlacementPolicy ${spec.placementRef}: ${policy.problem}`);
    references.placement = { policy: spec.placementRef, value: policy.value };
    uses.push({ owner: `VMPlacementPolicy ${spec.placementRef}`, uses: fieldUses('VMPlacementPolicy', policyObject.object) });
  }
  const badTag = spec.tags.find((tag) => !TAG_PATTERN.test(tag));
  if (badTag !== undefined) return missing('InvalidSpec', `spec.tags: "${badTag}" is not a tag (letters, digits and _-+.:=/@, at most 128 characters)`);
  if (spec.source.kind === 'image') {
    const imageRef = spec.source.ref;
    const crossImage = sameNamespace('VMImage', imageRef, namespace);
    if (crossImage) return { ok: false, ...crossImage };
    const imageObject = lookup(related, 'VMImage', namespace, imageRef.name, VMImageObject);
    if (!imageObject.found) return missing('ImageNotFound', `VMImage ${imageRef.name} not found`);
    if (!imageObject.valid) return missing('ImageInvalid', imageObject.problem);
    const image = normalizeVMImage(imageObject.object.spec, provider.type);
    if (!image.ok) return missing(image.unsupported ? 'Unsupported' : 'ImageInvalid', `VMImage ${imageRef.name}: ${image.problem}`);
    references.image = image.value.image;
    if (image.value.datastore !== undefined) references.imageDatastore = image.value.datastore;
    uses.push({ owner: `VMImage ${imageRef.name}`, uses: fieldUses('VMImage', imageObject.object, image.value.branch) });
  }

  for (const network of spec.networks) {
    const nic: NicSpec = { name: network.name };
    if (network.networkRef) {
      const attachmentRef = network.networkRef;
      const crossNetwork = sameNamespace('VMNetworkAttachment', attachmentRef, namespace);
      if (crossNetwork) return { ok: false, ...crossNetwork };
      const attachment = lookup(related, 'VMNetworkAttachment', namespace, attachmentRef.name, VMNetworkAttachmentObject);
      if (!attachment.found) return missing('NetworkNotFound', `VMNetworkAttachment ${attachmentRef.name} not found`);
      if (!attachment.valid) return missing('NetworkInvalid', attachment.problem);
      const normalizedNic = normalizeVMNetworkAttachment(attachment.object.spec, provider.type);
      if (!normalizedNic.ok) {
        return missing(normalizedNic.unsupported ? 'Unsupported' : 'NetworkInvalid', `VMNetworkAttachment ${attachmentRef.name}: ${normalizedNic.problem}`);
      }
      Object.assign(nic, normalizedNic.value.nic);
      uses.push({ owner: `VMNetworkAttachment ${attachmentRef.name}`, uses: fieldUses('VMNetworkAttachment', attachment.object, normalizedNic.value.branch) });
    }
    if (network.bridge !== undefined) {
      nic.bridge = network.bridge;
      delete nic.network;
    }
    if (network.vlan !== undefined) nic.vlan = network.vlan;
    if (network.mac !== undefined) nic.mac = network.mac;
    if (network.staticIP !== undefined) nic.staticIP = network.staticIP;
    references.nics.push(nic);
  }

  const tools = guestToolsPart(vmClass, provider.type);
  if (tools !== undefined && spec.ignition !== undefined) {
    return missing('InvalidSpec', `VMClass ${classRef.name}: guestToolsPolicy ${vmClass.guestTools} installs through cloud-init, and this VM boots with Ignition (spec.userData.ignition)`);
  }
  if (spec.userData !== undefined || tools !== undefined) {
    const userData = resolveGuestData(related, namespace, spec.userData ?? {}, USER_DATA, tools === undefined ? [] : [tools]);
    if (!userData.ok) return userData;
    references.userData = userData.value;
  }
  if (spec.metaData !== undefined) {
    const metaData = resolveGuestData(related, namespace, spec.metaData, META_DATA);
    if (!metaData.ok) return metaData;
    const parsed = parseMetaData(metaData.value);
    if (!parsed.ok) return missing('InvalidSpec', `${META_DATA.field} ${parsed.problem}`);
    references.metaData = metaData.value;
  }
  if (spec.ignition !== undefined) {
    const ignition = resolveGuestData(related, namespace, spec.ignition, IGNITION);
    if (!ignition.ok) return ignition;
    const checked = checkIgnition(ignition.value);
    if (!checked.ok) return missing('InvalidSpec', `${IGNITION.field} ${checked.problem}`);
    references.ignition = ignition.value;
  }
  return { ok: true, references };
}

/** The class settings only a VM made from an image gets: a clone is its source's configuration. */
function classFieldsAClonedVMKeeps(vmClass: CanonicalClass): string[] {
  const fields: string[] = [];
  if (vmClass.extraConfig !== undefined) fields.push('extraConfig');
  if (vmClass.limits !== undefined) fields.push('resourceLimits');
  if (vmClass.guestTools !== 'skip') fields.push(`guestToolsPolicy ${vmClass.guestTools}`);
  return fields;
}

/**
 * guestToolsPolicy install/upgrade: a cloud-config part that installs the hypervisor's guest agent
 * at first boot and starts it (open-vm-tools on vSphere, the QEMU guest agent elsewhere); upgrade
 * also upgrades the guest's packages first. Joined to the VM's own user-data as one more MIME part.
 */
function guestToolsPart(vmClass: CanonicalClass, providerType: string): string | undefined {
  if (vmClass.guestTools !== 'install' && vmClass.guestTools !== 'upgrade') return undefined;
  const [agentPackage, service] = providerType === 'vsphere' ? ['open-vm-tools', 'open-vm-tools'] : ['qemu-guest-agent', 'qemu-guest-agent'];
  const lines = ['#cloud-config', 'package_update: true'];
  if (vmClass.guestTools === 'upgrade') lines.push('package_upgrade: true');
  lines.push('packages:', `  - ${agentPackage}`, 'runcmd:', `  - [systemctl, enable, --now, ${service}]`);
  return `${lines.join('\n')}\n`;
}

/** One line naming every field the driver cannot honour, object by object; undefined when there is none. */
export function unsupportedMessage(references: Pick<References, 'uses'>, driverType: string, capabilities: Capabilities): string | undefined {
  const parts = references.uses.flatMap(({ owner, uses }) => {
    const unsupported = unsupportedUses(uses, capabilities);
    return unsupported.length === 0 ? [] : [describeUnsupported(owner, driverType, unsupported)];
  });
  return parts.length === 0 ? undefined : parts.join('; ');
}

const MIME_BOUNDARY_PREFIX = 'virtrigaud-part-';

/** cloud-init's MIME type for a user-data part, from its first line (what cloud-init itself reads). */
function partType(part: string): string {
  if (part.startsWith('#!')) return 'text/x-shellscript';
  if (part.startsWith('#include')) return 'text/x-include-url';
  if (part.startsWith('#cloud-boothook')) return 'text/cloud-boothook';
  if (part.startsWith('#part-handler')) return 'text/part-handler';
  return 'text/cloud-config';
}

/** Inline and Secret user-data together: one MIME multipart document, as cloud-init reads it. */
function multipart(parts: string[]): string {
  const boundary = MIME_BOUNDARY_PREFIX + createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 24);
  const body = parts.map((part) => `--${boundary}\nContent-Type: ${partType(part)}; charset="utf-8"\nMIME-Version: 1.0\n\n${part}\n`).join('');
  return `Content-Type: multipart/mixed; boundary="${boundary}"\nMIME-Version: 1.0\n\n${body}--${boundary}--\n`;
}

/** How one kind of guest data combines when it comes from several places. */
interface GuestData {
  field: string;
  /** user-data: MIME multipart parts; meta-data: YAML documents of disjoint keys; Ignition: one config only. */
  combine: 'multipart' | 'lines' | 'one';
}
const USER_DATA: GuestData = { field: 'spec.userData.cloudInit', combine: 'multipart' };
const META_DATA: GuestData = { field: 'spec.metaData.cloudInit', combine: 'lines' };
const IGNITION: GuestData = { field: 'spec.userData.ignition', combine: 'one' };

/** The data inline, from its Secret, and (user-data) generated parts, as one document. */
function resolveGuestData(
  related: ObjectsByType | undefined,
  namespace: string | undefined,
  source: DataSource,
  kind: GuestData,
  generated: string[] = [],
): Resolved<{ value: string }> {
  const parts: string[] = [];
  if (source.inline !== undefined) parts.push(source.inline);
  if (source.secretRef !== undefined) {
    const secret = decodeSecret(related, namespace, source.secretRef.name, source.secretRef.keys);
    if (!secret.ok) return secret;
    parts.push(secret.value);
  }
  parts.push(...generated);
  if (parts.length === 1) return { ok: true, value: parts[0] ?? '' };
  let value: string;
  if (kind.combine === 'one') {
    return missing('InvalidSpec', `${kind.field}: set inline or secretRef, not both (one Ignition config is read)`);
  } else if (kind.combine === 'lines') {
    value = parts.map((part) => (part.endsWith('\n') ? part : `${part}\n`)).join('');
  } else {
    if (parts.some((part) => /^content-type:/i.test(part))) {
      return missing('InvalidSpec', `${kind.field}: the user-data parts (inline, secretRef, the VMClass's guestToolsPolicy) are combined into one MIME document; none may be MIME already`);
    }
    value = multipart(parts);
  }
  if (value.length > MAX_USERDATA_LENGTH) {
    return missing('InvalidSpec', `${kind.field}: its parts together make ${value.length} characters; guest data is limited to ${MAX_USERDATA_LENGTH}`);
  }
  return { ok: true, value };
}

/** Everything but the Provider, resolved by the caller first, and the references, resolved before any hypervisor call. */
export function resolve(
  vm: VirtualMachineObject,
  related: ObjectsByType | undefined,
  provider: ProviderTarget,
  references: References,
  options: ResolveOptions = { vmExists: false },
): Resolution {
  const spec = references.vm;
  const vmClass = references.vmClass;

  let image: ImageSpec;
  let clone: ResolvedVM['clone'];
  if (spec.source.kind === 'clone') {
    const source = resolveCloneSource(vm, related, spec.source, options.vmExists);
    if (!source.ok) return source;
    image = source.image;
    clone = source.clone;
  } else if (references.image !== undefined) {
    image = references.image;
  } else if (spec.source.kind === 'importedDisk') {
    // A disk importDisk made (a VMMigration's): the driver copies it for the VM, as from a template.
    image = { kind: 'template', ref: spec.source.diskID, fullClone: true };
  } else {
    return missing('InvalidSpec', 'the VM names no image');
  }

  const disks = resolveDisks(spec, vmClass);
  if (!disks.ok) return disks;
  // An installer writes to an empty disk: its size has to come from somewhere, not the image.
  if (image.kind === 'iso' && !disks.disks.some((disk) => disk.root)) {
    return missing('InvalidSpec', 'an install from an ISO needs the size of its root disk: set spec.disks (name root, size) or the VMClass\'s diskDefaults.size');
  }

  const create: CreateSpec = {
    name: vm.metadata.name,
    owner: identityOf(vm),
    cpus: spec.resources.cpus ?? vmClass.cpus,
    memoryBytes: spec.resources.memoryBytes ?? vmClass.memoryBytes,
    features: { ...vmClass.features },
    image,
    disks: disks.disks,
    storage: {
      provisioning: disks.provisioning,
      ...definedOnly({ datastore: spec.placement.datastore ?? vmClass.storageClass ?? references.imageDatastore }),
    },
    nics: references.nics,
    placement: definedOnly({
      host: spec.placement.host,
      folder: spec.placement.folder,
      cluster: spec.placement.cluster,
      resourcePool: spec.placement.resourcePool,
    }),
  };
  if (vmClass.firmware !== undefined) create.firmware = vmClass.firmware;
  if (vmClass.machine !== undefined) create.machine = vmClass.machine;
  if (references.userData !== undefined) create.userData = references.userData;
  if (references.metaData !== undefined) create.metaData = references.metaData;
  if (references.ignition !== undefined) create.ignition = references.ignition;
  if (references.tags.length > 0) create.tags = references.tags;
  if (vmClass.extraConfig !== undefined) create.extraConfig = { ...vmClass.extraConfig };
  if (vmClass.limits !== undefined) create.limits = { ...vmClass.limits };
  applyProviderDefaults(create, options.defaults ?? {}, options.capabilities);

  const resolved: ResolvedVM = {
    identity: identityOf(vm),
    provider,
    create,
    // A VMMigration with source.powerOffBeforeMigration holds its source off while it needs it.
    powerState: migrationHolding(vm, related) !== undefined ? 'OffGraceful' : spec.powerState,
    shutdownTimeoutMs: spec.shutdownTimeoutMs,
    powerCyclePolicy: spec.powerCyclePolicy,
    deletionPolicy: spec.deletionPolicy,
    offlineGrowth: spec.disks.filter((disk) => disk.expandPolicy === 'Offline').map((disk) => disk.name),
  };
  if (spec.restartRequest !== undefined) resolved.restartRequest = spec.restartRequest;
  if (clone) resolved.clone = clone;
  if (spec.revert) resolved.revert = resolveRevert(vm, related, spec.revert);
  return { ok: true, vm: resolved };
}

export interface ResolveOptions {
  vmExists: boolean;
  /** The Provider's spec.defaults, used where the VM and its class name nothing. */
  defaults?: ProviderDefaults;
  /** The driver's; a default it has no capability for is left out (the Provider's Supported condition names it). */
  capabilities?: Capabilities;
}

/** Provider defaults fill what the VM, its class and its image left unset; NICs with no network of their own get the default network. */
function applyProviderDefaults(create: CreateSpec, defaults: ProviderDefaults, capabilities: Capabilities | undefined): void {
  const usable = (key: keyof typeof DEFAULT_CAPABILITIES): string | undefined => {
    const capability = DEFAULT_CAPABILITIES[key];
    return capability === undefined || capabilities?.[capability] === true ? defaults[key] : undefined;
  };
  const datastore = usable('datastore');
  if (create.storage.datastore === undefined && datastore !== undefined) create.storage.datastore = datastore;
  for (const key of ['cluster', 'folder', 'resourcePool'] as const) {
    const value = usable(key);
    if (create.placement[key] === undefined && value !== undefined) create.placement[key] = value;
  }
  const network = usable('network');
  if (network === undefined) return;
  for (const nic of create.nics) if (nic.network === undefined && nic.bridge === undefined) nic.network = network;
}

type SourceResolution = { ok: true; image: ImageSpec; clone: NonNullable<ResolvedVM['clone']> } | ({ ok: false } & Unresolved);

/** A VM cloned from another VirtualMachine: the source is only needed while this one does not exist. */
function resolveCloneSource(
  vm: VirtualMachineObject,
  related: ObjectsByType | undefined,
  source: { vm: string; linked: boolean },
  vmExists: boolean,
): SourceResolution {
  const namespace = vm.metadata.namespace;
  const sourceName = source.vm;
  const clone: NonNullable<ResolvedVM['clone']> = { sourceName, linked: source.linked };
  // The clone is independent of its source once it exists: the source may change or go away.
  const image: ImageSpec = { kind: 'template', ref: '', fullClone: !source.linked };
  if (vmExists) return { ok: true, image, clone };
  const found = checkedObject(related, { apiVersion: API_VERSION, kind: 'VirtualMachine', namespace, name: sourceName }, VirtualMachineObject);
  if (!found.found) return { ok: false, reason: 'CloneSourceNotFound', message: `source VirtualMachine ${sourceName} not found` };
  if (found.problem !== undefined) return { ok: false, reason: 'CloneSourceInvalid', message: found.problem };
  const sourceVM = found.object;
  const sourceProvider = sourceVM.spec.providerRef;
  const providerRef = vm.spec.providerRef;
  if (sourceProvider.name !== providerRef.name || (sourceProvider.namespace ?? namespace) !== (providerRef.namespace ?? namespace)) {
    return { ok: false, reason: 'CloneSourceInvalid', message: `source VirtualMachine ${sourceName} is on another Provider` };
  }
  const uid = sourceVM.metadata.uid;
  const providerID = sourceVM.status?.['providerID'];
  const provisioned = previousConditions(sourceVM.status).find((condition) => condition.type === 'Provisioned');
  if (typeof providerID !== 'string' || providerID === '' || !uid || provisioned?.status !== 'True') {
    return { ok: false, reason: 'CloneSourceNotReady', message: `source VirtualMachine ${sourceName} has not been created yet` };
  }
  clone.source = { id: providerID, owner: { uid, namespace: namespace ?? '', name: sourceName } };
  return { ok: true, image: { ...image, ref: providerID }, clone };
}

function resolveRevert(vm: VirtualMachineObject, related: ObjectsByType | undefined, request: { snapshot: string; request: string }): RevertWanted {
  const wanted: RevertWanted = { snapshot: request.snapshot, request: request.request };
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

/**
 * The disks to create, and the VM's provisioning: the VMClass's, else what the disks that name
 * one agree on, else thin. A disk naming another is refused (no driver provisions disk by disk).
 */
function resolveDisks(spec: CanonicalVM, vmClass: CanonicalClass): Resolved<{ disks: DiskSpec[]; provisioning: 'thin' | 'thick' }> {
  const declared = new Set(spec.disks.flatMap((disk) => (disk.provisioning ? [disk.provisioning] : [])));
  const provisioning = vmClass.provisioning ?? (declared.size === 1 ? [...declared][0] : undefined) ?? 'thin';
  const other = spec.disks.find((disk) => disk.provisioning !== undefined && disk.provisioning !== provisioning);
  if (other) {
    return missing(
      'Unsupported',
      `spec.disks ${other.name}: type ${other.provisioning ?? ''} differs from the VM's provisioning ${provisioning}; every disk of a VM is provisioned alike (VMClass diskDefaults.type)`,
    );
  }
  const disks: DiskSpec[] = [];
  const rootSize = spec.disks.find((disk) => disk.name === 'root')?.sizeBytes ?? vmClass.rootDiskBytes;
  if (rootSize !== undefined) disks.push({ name: 'root', sizeBytes: rootSize, root: true });
  for (const disk of spec.disks) {
    if (disk.name !== 'root') disks.push({ name: disk.name, sizeBytes: disk.sizeBytes, root: false });
  }
  return { ok: true, disks, provisioning };
}

/** Copies the keys whose value is not undefined (exactOptionalPropertyTypes-friendly). */
function definedOnly<T extends object>(object: T): { [K in keyof T]?: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(object).filter(([, value]) => value !== undefined)) as {
    [K in keyof T]?: Exclude<T[K], undefined>;
  };
}
