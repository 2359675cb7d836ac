// VirtualMachine, either spelling → one model. Pure and table-tested
// (test/contracts/virtualmachine-shapes.test.ts). The related objects (class, image, networks,
// secrets) are resolved later, by the hook, from the references this model names.
import {
  IGNITION_KEYS,
  METADATA_KEYS,
  USERDATA_KEYS,
  type PowerState,
  type StaticIP,
  type VirtualMachineSpec,
  type VMDisk,
  type VMNetwork,
} from '../crds/virtualmachine.js';
import { GiB, parseDuration, parseQuantity } from '../quantity.js';
import { NO_DRIVER, problem, type FieldRule, type Normalized } from './common.js';

export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 60_000;

export interface CanonicalRef {
  name: string;
  /** Only when written; the referrer's namespace otherwise. */
  namespace?: string;
}

export interface CanonicalNetwork {
  name: string;
  networkRef?: CanonicalRef;
  bridge?: string;
  vlan?: number;
  /** Lower case, colon-separated. */
  mac?: string;
  staticIP?: StaticIP;
}

export interface CanonicalDisk {
  name: string;
  sizeBytes: number;
  /** Written on the disk; the VM's provisioning (VMClass) otherwise. */
  provisioning?: 'thin' | 'thick';
  /** Online: grown while running where the provider can; Offline: only while the VM is off. */
  expandPolicy: 'Online' | 'Offline';
}

/** Guest data from the spec: inline, a Secret (the first of `keys` it holds), or both. */
export interface DataSource {
  inline?: string;
  secretRef?: { name: string; keys: readonly string[] };
}

export type CanonicalSource = { kind: 'image'; ref: CanonicalRef } | { kind: 'clone'; vm: string; linked: boolean } | { kind: 'importedDisk'; diskID: string };

export interface CanonicalVM {
  providerRef: CanonicalRef;
  classRef: CanonicalRef;
  source: CanonicalSource;
  powerState: PowerState;
  networks: CanonicalNetwork[];
  disks: CanonicalDisk[];
  userData?: DataSource;
  ignition?: DataSource;
  metaData?: DataSource;
  placement: { host?: string; datastore?: string; folder?: string; cluster?: string; resourcePool?: string };
  /** spec.placementRef: a VMPlacementPolicy of the VM's namespace. */
  placementRef?: string;
  /** spec.resources: overrides of the VMClass. */
  resources: { cpus?: number; memoryBytes?: number };
  shutdownTimeoutMs: number;
  powerCyclePolicy: 'Manual' | 'Automatic';
  restartRequest?: string;
  /** lifecycle.revertRequest, or snapshot.revertToRef (whose request is the snapshot's name: naming another reverts again). */
  revert?: { snapshot: string; request: string };
  deletionPolicy: 'Delete' | 'Retain';
  tags: string[];
}

function ref(written: { name: string; namespace?: string | undefined }): CanonicalRef {
  return written.namespace === undefined ? { name: written.name } : { name: written.name, namespace: written.namespace };
}

/** The powerState as written (On, Off, OffGraceful, Suspended, or YAML 1.1's true/false for an unquoted On/Off). */
export function desiredPowerState(value: unknown): PowerState | undefined {
  if (value === undefined || value === 'On' || value === true) return 'On';
  if (value === 'Off' || value === false) return 'Off';
  if (value === 'OffGraceful') return 'OffGraceful';
  if (value === 'Suspended') return 'Suspended';
  return undefined;
}

const IP = /^[0-9A-Fa-f:.]+$/;

function network(written: VMNetwork, index: number): Normalized<CanonicalNetwork> {
  const at = `spec.networks[${index}]`;
  const nic: CanonicalNetwork = { name: written.name };
  if (written.networkRef !== undefined) nic.networkRef = ref(written.networkRef);
  if (written.bridge !== undefined) nic.bridge = written.bridge;
  if (written.vlan !== undefined) nic.vlan = written.vlan;
  const mac = written.mac ?? written.macAddress;
  if (mac !== undefined) nic.mac = mac.replaceAll('-', ':').toLowerCase();
  if (written.staticIP !== undefined) nic.staticIP = written.staticIP;
  if (written.ipAddress !== undefined) {
    // A netmask is not guessed: the wrong one cuts the guest off its network.
    if (written.prefix === undefined) return problem(`${at}.prefix is required with ipAddress (e.g. 24)`);
    const staticIP: StaticIP = { address: `${written.ipAddress}/${written.prefix}` };
    if (written.gateway !== undefined) staticIP.gateway = written.gateway;
    if (written.dns !== undefined) {
      const servers = written.dns.split(',').map((server) => server.trim()).filter((server) => server !== '');
      const bad = servers.find((server) => !IP.test(server) || server.length > 45);
      if (bad !== undefined) return problem(`${at}.dns: "${bad}" is not an IP address`);
      if (servers.length > 4) return problem(`${at}.dns names ${servers.length} servers; at most 4`);
      if (servers.length > 0) staticIP.dns = servers;
    }
    nic.staticIP = staticIP;
  }
  return { ok: true, value: nic };
}

function disk(written: VMDisk, index: number): Normalized<CanonicalDisk> {
  // The default follows the spelling: upstream's disks (sizeGiB) grow offline, the seeds' online.
  const upstream = written.sizeGiB !== undefined;
  const sizeBytes = upstream ? (written.sizeGiB ?? 0) * GiB : parseQuantity(written.size ?? '');
  if (sizeBytes === undefined || sizeBytes <= 0) return problem(`spec.disks[${index}]: set size or sizeGiB`);
  const value: CanonicalDisk = { name: written.name, sizeBytes, expandPolicy: written.expandPolicy ?? (upstream ? 'Offline' : 'Online') };
  if (written.type === 'thin' || written.type === 'thick') value.provisioning = written.type;
  return { ok: true, value };
}

function dataSource(
  written: { inline?: string | undefined; secretRef?: { name: string; key?: string | undefined } | undefined } | undefined,
  keys: readonly string[],
): DataSource | undefined {
  if (written === undefined) return undefined;
  const source: DataSource = {};
  if (written.inline !== undefined) source.inline = written.inline;
  if (written.secretRef !== undefined) {
    source.secretRef = { name: written.secretRef.name, keys: written.secretRef.key === undefined ? keys : [written.secretRef.key] };
  }
  return source;
}

export function normalizeVirtualMachine(spec: VirtualMachineSpec): Normalized<CanonicalVM> {
  const powerState = desiredPowerState(spec.powerState);
  if (powerState === undefined) return problem(`spec.powerState ${JSON.stringify(spec.powerState)} is not On, Off, OffGraceful or Suspended`);

  let source: CanonicalSource;
  if (spec.cloneFrom !== undefined) source = { kind: 'clone', vm: spec.cloneFrom.vmRef.name, linked: spec.cloneFrom.linkedClone ?? true };
  else if (spec.imageRef !== undefined) source = { kind: 'image', ref: ref(spec.imageRef) };
  else if (spec.importedDisk !== undefined) source = { kind: 'importedDisk', diskID: spec.importedDisk.diskID };
  else return problem('set exactly one source: spec.imageRef, spec.cloneFrom or spec.importedDisk');

  const networks: CanonicalNetwork[] = [];
  for (const [index, written] of (spec.networks ?? []).entries()) {
    const nic = network(written, index);
    if (!nic.ok) return nic;
    networks.push(nic.value);
  }
  const disks: CanonicalDisk[] = [];
  for (const [index, written] of (spec.disks ?? []).entries()) {
    const normalized = disk(written, index);
    if (!normalized.ok) return normalized;
    disks.push(normalized.value);
  }

  const timeout = spec.lifecycle?.gracefulShutdownTimeout;
  const shutdownTimeoutMs = timeout === undefined ? DEFAULT_SHUTDOWN_TIMEOUT_MS : parseDuration(timeout);
  if (shutdownTimeoutMs === undefined) return problem(`spec.lifecycle.gracefulShutdownTimeout ${timeout ?? ''} is not a duration`);

  const value: CanonicalVM = {
    providerRef: ref(spec.providerRef),
    classRef: ref(spec.classRef),
    source,
    powerState,
    networks,
    disks,
    placement: {},
    resources: {},
    shutdownTimeoutMs,
    powerCyclePolicy: spec.lifecycle?.powerCyclePolicy ?? 'Manual',
    deletionPolicy: spec.deletionPolicy ?? 'Delete',
    tags: [...new Set(spec.tags ?? [])],
  };
  const userData = dataSource(spec.userData?.cloudInit, USERDATA_KEYS);
  if (userData !== undefined) value.userData = userData;
  const ignition = dataSource(spec.userData?.ignition, IGNITION_KEYS);
  if (ignition !== undefined) value.ignition = ignition;
  const metaData = dataSource(spec.metaData?.cloudInit, METADATA_KEYS);
  if (metaData !== undefined) value.metaData = metaData;
  for (const key of ['host', 'datastore', 'folder', 'cluster', 'resourcePool'] as const) {
    const written = spec.placement?.[key];
    if (written !== undefined) value.placement[key] = written;
  }
  if (spec.placementRef !== undefined) value.placementRef = spec.placementRef.name;
  if (spec.resources?.cpu !== undefined) value.resources.cpus = spec.resources.cpu;
  if (spec.resources?.memoryMiB !== undefined) value.resources.memoryBytes = spec.resources.memoryMiB * 2 ** 20;
  if (spec.lifecycle?.restartRequest !== undefined) value.restartRequest = spec.lifecycle.restartRequest;
  const revertRequest = spec.lifecycle?.revertRequest;
  const revertTo = spec.snapshot?.revertToRef;
  if (revertRequest !== undefined) value.revert = { snapshot: revertRequest.snapshotRef.name, request: revertRequest.request };
  else if (revertTo !== undefined) value.revert = { snapshot: revertTo.name, request: revertTo.name };
  return { ok: true, value };
}

const CLONE_KEEPS = 'a clone boots with its source\'s guest configuration; cloud-init data is only given at creation from an image';

const linkedClone = { text: 'linkedClone true (the default)', test: (value: unknown) => (value as { linkedClone?: boolean }).linkedClone !== false };

/** The VirtualMachine fields whose meaning needs something of the driver (support.ts). */
export const VIRTUALMACHINE_FIELDS: readonly FieldRule[] = [
  { path: 'spec.cloneFrom', when: linkedClone, capability: 'linkedClones', example: { vmRef: { name: 'source' } } },
  // A clone is the source's disks as they are: the driver's clone call takes no guest data and no placement.
  { path: 'spec.userData', with: 'spec.cloneFrom', why: CLONE_KEEPS, example: { cloudInit: { inline: '#cloud-config\n' } } },
  { path: 'spec.networks[].staticIP', with: 'spec.cloneFrom', why: CLONE_KEEPS, example: { address: '192.0.2.10/24' } },
  { path: 'spec.networks[].ipAddress', with: 'spec.cloneFrom', why: CLONE_KEEPS, example: '192.0.2.10' },
  { path: 'spec.placement', with: 'spec.cloneFrom', why: 'a clone is placed by the hypervisor next to its source', example: { host: 'node1' } },
  { path: 'spec.importedDisk', capability: 'diskImport', example: { diskID: 'disk-1' } },
  { path: 'spec.importedDisk.path', why: 'the disk is named by importedDisk.diskID', example: '/var/lib/disk.qcow2' },
  { path: 'spec.importedDisk.format', why: 'the provider reads the format from the disk itself', example: 'qcow2' },
  { path: 'spec.importedDisk.sizeGiB', why: 'the root disk is sized by spec.disks (root)', example: 40 },
  { path: 'spec.networks[].vlan', capability: 'vlan', example: 100 },
  { path: 'spec.networks[].mac', capability: 'macAddress', example: '52:54:00:12:34:56' },
  { path: 'spec.networks[].macAddress', capability: 'macAddress', example: '52-54-00-12-34-56' },
  { path: 'spec.networks[].staticIP', capability: 'staticIP', example: { address: '192.0.2.10/24' } },
  { path: 'spec.networks[].staticIP', capability: 'cloudInit', example: { address: '192.0.2.10/24' } },
  { path: 'spec.networks[].ipAddress', capability: 'staticIP', example: '192.0.2.10' },
  { path: 'spec.networks[].ipAddress', capability: 'cloudInit', example: '192.0.2.10' },
  { path: 'spec.disks[].type', values: ['thick'], capability: 'thickProvisioning' },
  { path: 'spec.disks[].type', values: ['eagerzeroedthick'], why: 'no driver zeroes disks at creation' },
  { path: 'spec.disks[].type', values: ['ssd', 'hdd'], why: 'no driver presents a disk medium to the guest' },
  { path: 'spec.disks[].storageClass', why: 'a VM\'s disks share one datastore (placement.datastore or the VMClass\'s)', example: 'fast' },
  { path: 'spec.disks[].scsi', why: 'no driver chooses SCSI controllers per disk', example: { controllerType: 'pvscsi' } },
  { path: 'spec.userData.cloudInit', capability: 'cloudInit', example: { inline: '#cloud-config\n' } },
  { path: 'spec.userData.ignition', capability: 'ignition', example: { inline: '{"ignition":{"version":"3.4.0"}}' } },
  { path: 'spec.userData.ignition', with: 'spec.cloneFrom', why: CLONE_KEEPS, example: { inline: '{"ignition":{"version":"3.4.0"}}' } },
  { path: 'spec.metaData.cloudInit', capability: 'cloudInitMetaData', example: { inline: 'local-hostname: web\n' } },
  { path: 'spec.metaData.cloudInit', with: 'spec.cloneFrom', why: CLONE_KEEPS, example: { inline: 'local-hostname: web\n' } },
  { path: 'spec.placement.host', capability: 'placementHost', example: 'node1' },
  { path: 'spec.placement.datastore', capability: 'placementDatastore', example: 'fast' },
  { path: 'spec.placement.folder', capability: 'placementFolder', example: '/dc1/vm/web' },
  { path: 'spec.placement.cluster', capability: 'placementCluster', example: 'cluster1' },
  { path: 'spec.placement.resourcePool', capability: 'placementResourcePool', example: 'web' },
  { path: 'spec.placement.storagePod', why: 'no driver picks a datastore from a datastore cluster', example: 'pod1' },
  { path: 'spec.placementRef', with: 'spec.cloneFrom', why: 'a clone is placed by the hypervisor next to its source', example: { name: 'spread' } },
  { path: 'spec.placementRef', capability: 'placementPolicy', example: { name: 'spread' } },
  { path: 'spec.tags', capability: 'tags', example: ['web'] },
  { path: 'spec.powerState', values: ['Suspended'], capability: 'suspend' },
  { path: 'spec.resources.gpu', why: 'no driver passes GPUs through', example: { count: 1 } },
  { path: 'spec.lifecycle.preStop', why: NO_DRIVER, example: { exec: { command: ['sync'] } } },
  { path: 'spec.lifecycle.postStart', why: NO_DRIVER, example: { exec: { command: ['true'] } } },
];
