// VMClone, either spelling → one clone. Pure and table-tested (test/contracts/vmclone-shapes.test.ts).
import type { VMCloneSpec } from '../crds/vmclone.js';
import type { PowerState } from '../crds/virtualmachine.js';
import { parseDuration } from '../quantity.js';
import { NO_DRIVER, problem, type FieldRule, type Normalized } from './common.js';

export type CloneShape = 'seed' | 'upstream';

export interface CanonicalClone {
  /** Which spelling named the source: the defaults that differ follow it. */
  shape: CloneShape;
  /** The VirtualMachine to clone; undefined when the source is something else (which no driver clones from). */
  sourceVM?: string;
  targetName: string;
  linked: boolean;
  /** Whether linkedClone or options.type said so (else the shape's default did). */
  linkedWritten: boolean;
  /** The clone's power state; `enforced` (the seeds' target.powerState) keeps it so, else it is only the first. */
  power: { state: PowerState; enforced: boolean };
  /** The clone's VMClass, when not the source's. */
  classRef?: string;
  /** The Provider the clone is asked on (it must be the source's). */
  providerRef?: { name: string; namespace?: string };
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** Disks of the source to grow, by name. */
  disks: { name: string; sizeGiB: number }[];
  /** Past this (from the VMClone's creation) an unfinished clone is reported Failed. */
  timeoutMs?: number;
}

/** Upstream's options.timeout default (its CRD), for VMClones written in its spelling. */
export const UPSTREAM_CLONE_TIMEOUT = '30m';

/** Metacontroller labels every child with it (generateSelector); a label of that name would be overwritten. */
export const RESERVED_LABELS = ['controller-uid'] as const;

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const MAX_ANNOTATIONS_BYTES = 256 * 1024;

/** Why a key is not a Kubernetes label or annotation key (prefix/name), or undefined. */
export function keyProblem(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !DNS_SUBDOMAIN.test(prefix))) return 'its prefix is not a DNS subdomain';
  if (name.length === 0 || name.length > 63 || !QUALIFIED_NAME.test(name)) return 'its name is not 1-63 letters, digits, -, _ or . starting and ending with a letter or digit';
  return undefined;
}

function checkLabels(labels: Record<string, string>): string | undefined {
  for (const [key, value] of Object.entries(labels)) {
    if ((RESERVED_LABELS as readonly string[]).includes(key)) return `spec.target.labels: ${key} is set by Metacontroller on every clone`;
    const why = keyProblem(key);
    if (why) return `spec.target.labels: key "${key}" is not a label key: ${why}`;
    if (value.length > 63 || !LABEL_VALUE.test(value)) return `spec.target.labels: the value of ${key} is not a label value (at most 63 letters, digits, -, _ or .)`;
  }
  return undefined;
}

function checkAnnotations(annotations: Record<string, string>): string | undefined {
  let bytes = 0;
  for (const [key, value] of Object.entries(annotations)) {
    const why = keyProblem(key);
    if (why) return `spec.target.annotations: key "${key}" is not an annotation key: ${why}`;
    bytes += Buffer.byteLength(key) + Buffer.byteLength(value);
  }
  return bytes > MAX_ANNOTATIONS_BYTES ? `spec.target.annotations: ${bytes} bytes; Kubernetes allows 256 KiB of annotations` : undefined;
}

export function normalizeVMClone(spec: VMCloneSpec, objectName: string): Normalized<CanonicalClone> {
  // The CRD's CEL requires exactly one of them; the hook does not rely on it.
  if ((spec.sourceVMRef === undefined) === (spec.source === undefined)) return problem('set exactly one of spec.sourceVMRef and spec.source');
  const shape: CloneShape = spec.sourceVMRef !== undefined ? 'seed' : 'upstream';
  const target = spec.target ?? {};
  const options = spec.options ?? {};
  if (spec.linkedClone !== undefined && options.type !== undefined) return problem('set spec.linkedClone or spec.options.type, not both');
  if (target.powerState !== undefined && options.powerOn !== undefined) return problem('set spec.target.powerState or spec.options.powerOn, not both');

  const typeLinked = options.type === undefined ? undefined : options.type === 'LinkedClone';
  const linkedWritten = spec.linkedClone ?? typeLinked;
  const value: CanonicalClone = {
    shape,
    targetName: target.name ?? objectName,
    linked: linkedWritten ?? shape === 'seed',
    linkedWritten: linkedWritten !== undefined,
    power:
      target.powerState !== undefined
        ? { state: target.powerState, enforced: true }
        : { state: (options.powerOn ?? shape === 'seed') ? 'On' : 'Off', enforced: false },
    labels: { ...(target.labels ?? {}) },
    annotations: { ...(target.annotations ?? {}) },
    disks: [],
  };
  const sourceVM = spec.sourceVMRef?.name ?? spec.source?.vmRef?.name;
  if (sourceVM !== undefined) value.sourceVM = sourceVM;
  if (target.classRef !== undefined) value.classRef = target.classRef.name;
  if (target.providerRef !== undefined) {
    value.providerRef = { name: target.providerRef.name };
    if (target.providerRef.namespace !== undefined) value.providerRef.namespace = target.providerRef.namespace;
  }

  const labels = checkLabels(value.labels) ?? checkAnnotations(value.annotations);
  if (labels !== undefined) return problem(labels);

  for (const [index, disk] of (target.disks ?? []).entries()) {
    if (value.disks.some((other) => other.name === disk.name)) return problem(`spec.target.disks[${index}]: disk ${disk.name} is listed twice`);
    value.disks.push({ name: disk.name, sizeGiB: disk.sizeGiB });
  }

  const timeout = options.timeout ?? (shape === 'upstream' ? UPSTREAM_CLONE_TIMEOUT : undefined);
  if (timeout !== undefined) {
    const timeoutMs = parseDuration(timeout);
    if (timeoutMs === undefined) return problem(`spec.options.timeout ${timeout} is not a duration (e.g. 30m)`);
    value.timeoutMs = timeoutMs;
  }
  return { ok: true, value };
}

const NOT_A_VM_SOURCE = 'a VM made from an image or template is a VirtualMachine with spec.imageRef; a VMClone clones a VirtualMachine';
const CUSTOMIZE = 'no driver customizes a clone\'s guest: it boots as a copy of its source (cloud-init runs only for VMs made from an image)';
const BESIDE_SOURCE = 'no driver places a clone: it is made beside its source';
const COPIED_AS_IS = 'a clone\'s disks keep the provisioning they are copied with';

/** The VMClone fields whose meaning needs something of the driver, or that no driver honours (support.ts). */
export const VMCLONE_FIELDS: readonly FieldRule[] = [
  { path: 'spec.linkedClone', values: [true], capability: 'linkedClones' },
  { path: 'spec.options.type', values: ['LinkedClone'], capability: 'linkedClones' },
  { path: 'spec.options.type', values: ['InstantClone'], why: 'no driver makes instant (forked, running) clones' },
  { path: 'spec.source.snapshotRef', example: { name: 'before-upgrade' }, why: 'no driver clones from a snapshot (revert the VM to it, or clone the VM)' },
  { path: 'spec.source.templateRef', example: { name: 'ubuntu-22' }, why: NOT_A_VM_SOURCE },
  { path: 'spec.source.imageRef', example: { name: 'ubuntu-22' }, why: NOT_A_VM_SOURCE },
  // The hook leaves these two out of the object it asks about when they name the clone's own (they cannot see it).
  {
    path: 'spec.target.namespace',
    when: { text: 'another namespace than the VMClone\'s', test: () => true },
    example: 'elsewhere',
    why: 'the clone is made in the VMClone\'s namespace (a Metacontroller child lives beside its parent)',
  },
  {
    path: 'spec.target.providerRef',
    when: { text: 'another Provider than the source\'s', test: () => true },
    example: { name: 'elsewhere' },
    why: 'a clone is made on its source\'s Provider; moving a VM to another is a migration',
  },
  { path: 'spec.target.placementRef', example: { name: 'spread' }, why: 'a clone is placed by the hypervisor next to its source' },
  { path: 'spec.target.networks', example: [{ name: 'nic0', ipAddress: '10.0.0.5', prefix: 24 }], why: 'a clone keeps its source\'s NICs; no driver rewires or readdresses a clone' },
  { path: 'spec.target.disks[].type', example: 'thick', why: COPIED_AS_IS },
  { path: 'spec.target.disks[].storageClass', example: 'fast-ssd', why: BESIDE_SOURCE },
  { path: 'spec.target.disks[].scsi', example: { controllerType: 'pvscsi' }, why: 'no driver chooses SCSI controllers' },
  { path: 'spec.options.includeSnapshots', values: [true], why: 'no driver copies snapshots into a clone' },
  { path: 'spec.options.parallel', values: [true], why: NO_DRIVER },
  {
    path: 'spec.options.retryPolicy',
    example: { maxRetries: 3 },
    why: 'the VirtualMachine controller retries a failed clone with its own back-off (1 s doubling to 5 min, without limit)',
  },
  { path: 'spec.options.storage.preferThinProvisioning', values: [false], why: COPIED_AS_IS },
  { path: 'spec.options.storage.diskFormat', example: 'thick', why: COPIED_AS_IS },
  { path: 'spec.options.storage.storageClass', example: 'fast-ssd', why: BESIDE_SOURCE },
  { path: 'spec.options.storage.datastore', example: 'datastore2', why: BESIDE_SOURCE },
  { path: 'spec.options.storage.folder', example: 'clones', why: BESIDE_SOURCE },
  { path: 'spec.options.storage.enableCompression', values: [true], why: NO_DRIVER },
  { path: 'spec.options.performance.priority', values: ['Low', 'High'], why: NO_DRIVER },
  { path: 'spec.options.performance.ioThrottling', values: [true], why: NO_DRIVER },
  { path: 'spec.options.performance.maxIOPS', example: 1000, why: NO_DRIVER },
  { path: 'spec.options.performance.concurrentDisks', example: 4, why: NO_DRIVER },
  { path: 'spec.customization.hostname', example: 'web-02', why: CUSTOMIZE },
  { path: 'spec.customization.domain', example: 'example.com', why: CUSTOMIZE },
  { path: 'spec.customization.timeZone', example: 'Europe/Berlin', why: CUSTOMIZE },
  { path: 'spec.customization.networks', example: [{ name: 'nic0', dhcp: true }], why: CUSTOMIZE },
  { path: 'spec.customization.userData.cloudInit', example: { inline: '#cloud-config\n{}\n' }, why: CUSTOMIZE },
  { path: 'spec.customization.userData.ignition', example: { inline: '{"ignition":{"version":"3.4.0"}}' }, why: 'no driver passes Ignition configs' },
  { path: 'spec.customization.sysprep.enabled', values: [true], why: 'no driver runs sysprep' },
  { path: 'spec.customization.tags', example: ['web'], why: NO_DRIVER },
  { path: 'spec.customization.guestCommands', example: [{ command: 'systemctl restart app' }], why: CUSTOMIZE },
  { path: 'spec.customization.certificates', example: [{ name: 'ca', data: '-----BEGIN CERTIFICATE-----' }], why: CUSTOMIZE },
];
