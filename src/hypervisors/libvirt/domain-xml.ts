// Domain XML both ways. Building: every value from a spec is escaped for XML (text and attribute
// contexts alike), and the identity tag (with the user's tags and the placement record beside it)
// goes into <metadata> in our own namespace. Parsing: the few fields the driver observes, from
// `virsh dumpxml` (the live XML when the domain runs).

import { XMLParser } from 'fast-xml-parser';
import type { Identity, PlacementRecord } from '../../contracts/driver.js';
import { parseRecord, recordAttributes } from './placement-record.js';

export const METADATA_NS = 'https://virtrigaud.io/xmlns/libvirt/v1';
const PREFIX = 'virtrigaud';

export function xmlEscape(text: string | number): string {
  return String(text)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;')
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '');
}

/** What the driver records about a VM it created: the identity and which parts are its own. */
export interface VmMetadata {
  owner: Identity;
  /** The VM's labels and placement order, recorded at create for placement policies (placement-record.ts). */
  placement?: PlacementRecord;
  /** Disk name → target device and the pool volume the VM owns. */
  disks: { name: string; target: string; volume: string }[];
  nics: { name: string; mac: string }[];
  /** The NoCloud seed ISO volume, one per VM. */
  seed?: string;
  /** The volume holding the VM's Ignition config, read by QEMU through fw_cfg; one per VM. */
  ignition?: string;
  /** The user's tags, sorted; the identity above is not one of them. */
  tags?: string[];
  /**
   * Frozen volumes this VM's disks are overlays on, shared with its linked clones (or its source):
   * deleted with the last VM that names them.
   */
  bases: string[];
  cpuHotAdd: boolean;
  memoryHotAdd: boolean;
  /**
   * Set while a host task still fills the VM's disks (a full copy, an image download): the VM
   * is not usable yet, and create (called again) continues it. Cleared by that task's last step.
   */
  pending?: PendingCreation;
}

export interface PendingCreation {
  /** A create continues from its spec; a clone from the copies below and its source domain. */
  origin: 'create' | 'clone';
  /** The source domain's UUID (clone). */
  source?: string;
  /** Disks still to be copied (clone): target volume ← source volume path, grown to capacity. */
  copies: { volume: string; from: string; capacityBytes: number }[];
}

/**
 * Our metadata element. `bare` gives the form `virsh metadata --set` takes (libvirt adds the
 * namespace and prefix itself, and refuses an element that already has them).
 */
export function metadataXml(metadata: VmMetadata, bare = false): string {
  const t = (name: string) => (bare ? name : `${PREFIX}:${name}`);
  const { owner, pending, placement } = metadata;
  const record = placement !== undefined ? recordAttributes(placement) : undefined;
  const parts = [
    bare ? '<vm>' : `<${PREFIX}:vm xmlns:${PREFIX}='${METADATA_NS}'>`,
    `<${t('owner')} uid='${xmlEscape(owner.uid)}' namespace='${xmlEscape(owner.namespace)}' name='${xmlEscape(owner.name)}'/>`,
    record !== undefined ? `<${t('placement')} order='${xmlEscape(record.order)}' labels='${xmlEscape(record.labels)}'/>` : '',
    ...metadata.disks.map((disk) => `<${t('disk')} name='${xmlEscape(disk.name)}' target='${xmlEscape(disk.target)}' volume='${xmlEscape(disk.volume)}'/>`),
    ...metadata.nics.map((nic) => `<${t('nic')} name='${xmlEscape(nic.name)}' mac='${xmlEscape(nic.mac)}'/>`),
    metadata.seed !== undefined ? `<${t('seed')} volume='${xmlEscape(metadata.seed)}'/>` : '',
    metadata.ignition !== undefined ? `<${t('ignition')} volume='${xmlEscape(metadata.ignition)}'/>` : '',
    ...(metadata.tags ?? []).map((tag) => `<${t('tag')} name='${xmlEscape(tag)}'/>`),
    ...metadata.bases.map((volume) => `<${t('base')} volume='${xmlEscape(volume)}'/>`),
    `<${t('features')} cpuHotAdd='${metadata.cpuHotAdd}' memoryHotAdd='${metadata.memoryHotAdd}'/>`,
    pending ? `<${t('pending')} origin='${pending.origin}'${pending.source !== undefined ? ` source='${xmlEscape(pending.source)}'` : ''}/>` : '',
    ...(pending?.copies ?? []).map((copy) => `<${t('copy')} volume='${xmlEscape(copy.volume)}' from='${xmlEscape(copy.from)}' capacity='${copy.capacityBytes}'/>`),
    bare ? '</vm>' : `</${PREFIX}:vm>`,
  ];
  return parts.join('');
}

export interface DomainDisk {
  target: string;
  device: 'disk' | 'cdrom';
  /** Pool and volume for `type='volume'` disks. */
  pool: string;
  volume: string;
  format: 'qcow2' | 'raw';
  bus: 'virtio' | 'sata' | 'ide';
}

export interface DomainNic {
  mac: string;
  source: { bridge: string } | { network: string };
  vlan?: number;
  model: string;
  mtu?: number;
  /** `<bandwidth>` average, the same both ways, in libvirt's unit (nic-options.ts: kB/s of 1000 bytes). */
  bandwidthKBps?: number;
  /** The nwfilter the NIC's traffic goes through (`<filterref>`). */
  filter?: string;
}

export interface DomainSpec {
  uuid: string;
  name: string;
  type: 'kvm' | 'qemu';
  memoryKiB: number;
  /** Above memoryKiB when memory may be hot-added (balloon up to this). */
  maxMemoryKiB: number;
  cpus: number;
  maxCpus: number;
  machine?: string;
  uefi: boolean;
  secureBoot: boolean;
  tpm: boolean;
  nested: boolean;
  disks: DomainDisk[];
  nics: DomainNic[];
  vncListen: string;
  metadata: VmMetadata;
  /** `<cputune><shares>`: the domain's CPU weight against other domains. */
  cpuShares?: number;
  /** A file on the host QEMU passes to the guest as fw_cfg `opt/com.coreos/config` (Ignition). */
  ignitionFile?: string;
  /** An installer ISO (a file on the host): a CD-ROM the VM boots from before its first disk. */
  installer?: { file: string; target: string };
}

/** The fw_cfg name Ignition reads its config from on QEMU (Fedora CoreOS, RHCOS). */
export const IGNITION_FW_CFG = 'opt/com.coreos/config';

function cpuXml(spec: DomainSpec): string {
  // host-passthrough exposes vmx/svm to the guest, which is what nested virtualization needs.
  if (spec.nested) return `<cpu mode='host-passthrough' check='none' migratable='on'/>`;
  if (spec.type === 'kvm') return `<cpu mode='host-model' check='partial'/>`;
  // TCG: a named model; host-passthrough needs KVM.
  return `<cpu mode='custom' match='exact' check='none'><model fallback='allow'>qemu64</model></cpu>`;
}

function diskXml(disk: DomainDisk, bootOrder?: number): string {
  return (
    `<disk type='volume' device='${disk.device}'>` +
    `<driver name='qemu' type='${disk.format}'${disk.device === 'disk' ? " discard='unmap'" : ''}/>` +
    `<source pool='${xmlEscape(disk.pool)}' volume='${xmlEscape(disk.volume)}'/>` +
    `<target dev='${xmlEscape(disk.target)}' bus='${disk.bus}'/>` +
    (disk.device === 'cdrom' ? '<readonly/>' : '') +
    (bootOrder !== undefined ? `<boot order='${bootOrder}'/>` : '') +
    `</disk>`
  );
}

function installerXml(installer: NonNullable<DomainSpec['installer']>): string {
  // Raw whatever the file holds: a CD-ROM's bytes are never read as an image format.
  return (
    `<disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='${xmlEscape(installer.file)}'/>` +
    `<target dev='${xmlEscape(installer.target)}' bus='sata'/><readonly/><boot order='1'/></disk>`
  );
}

/**
 * The disks, with per-device boot orders when an installer ISO boots first (then the first disk).
 * libvirt refuses those beside <os><boot dev>, so the domain has one kind or the other.
 */
function disksXml(spec: DomainSpec): string[] {
  if (spec.installer === undefined) return spec.disks.map((disk) => diskXml(disk));
  const first = spec.disks.findIndex((disk) => disk.device === 'disk');
  return [installerXml(spec.installer), ...spec.disks.map((disk, index) => diskXml(disk, index === first ? 2 : undefined))];
}

function nicXml(nic: DomainNic): string {
  const bridged = 'bridge' in nic.source;
  const source = 'bridge' in nic.source ? `<source bridge='${xmlEscape(nic.source.bridge)}'/>` : `<source network='${xmlEscape(nic.source.network)}'/>`;
  // VLAN tags on a plain Linux bridge are ignored by libvirt; they apply to OVS bridges and networks that support them.
  const vlan = nic.vlan !== undefined ? `<vlan><tag id='${nic.vlan}'/></vlan>` : '';
  const virtualport = bridged && nic.vlan !== undefined ? `<virtualport type='openvswitch'/>` : '';
  const bandwidth =
    nic.bandwidthKBps !== undefined ? `<bandwidth><inbound average='${nic.bandwidthKBps}'/><outbound average='${nic.bandwidthKBps}'/></bandwidth>` : '';
  const mtu = nic.mtu !== undefined ? `<mtu size='${nic.mtu}'/>` : '';
  const filter = nic.filter !== undefined ? `<filterref filter='${xmlEscape(nic.filter)}'/>` : '';
  return (
    `<interface type='${bridged ? 'bridge' : 'network'}'><mac address='${xmlEscape(nic.mac)}'/>${source}${vlan}${virtualport}` +
    `<model type='${xmlEscape(nic.model)}'/>${bandwidth}${mtu}${filter}</interface>`
  );
}

export function domainXml(spec: DomainSpec): string {
  const os =
    `<os${spec.uefi ? " firmware='efi'" : ''}>` +
    `<type arch='x86_64'${spec.machine !== undefined ? ` machine='${xmlEscape(spec.machine)}'` : ''}>hvm</type>` +
    (spec.uefi ? `<firmware><feature enabled='${spec.secureBoot ? 'yes' : 'no'}' name='secure-boot'/></firmware>` : '') +
    (spec.secureBoot ? `<loader secure='yes'/>` : '') +
    (spec.installer === undefined ? `<boot dev='hd'/>` : '') +
    `</os>`;
  const features = `<features><acpi/><apic/>${spec.secureBoot ? "<smm state='on'/>" : ''}</features>`;
  const devices = [
    ...disksXml(spec),
    ...spec.nics.map(nicXml),
    `<serial type='pty'><target port='0'/></serial>`,
    `<console type='pty'><target type='serial' port='0'/></console>`,
    `<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>`,
    `<graphics type='vnc' port='-1' autoport='yes' listen='${xmlEscape(spec.vncListen)}'><listen type='address' address='${xmlEscape(spec.vncListen)}'/></graphics>`,
    `<video><model type='vga'/></video>`,
    spec.tpm ? `<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>` : '',
    `<memballoon model='virtio'/>`,
    `<rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>`,
  ];
  return [
    `<domain type='${spec.type}'>`,
    `<name>${xmlEscape(spec.name)}</name>`,
    `<uuid>${xmlEscape(spec.uuid)}</uuid>`,
    `<metadata>${metadataXml(spec.metadata)}</metadata>`,
    `<memory unit='KiB'>${spec.maxMemoryKiB}</memory>`,
    `<currentMemory unit='KiB'>${spec.memoryKiB}</currentMemory>`,
    `<vcpu placement='static' current='${spec.cpus}'>${spec.maxCpus}</vcpu>`,
    spec.cpuShares !== undefined ? `<cputune><shares>${spec.cpuShares}</shares></cputune>` : '',
    // libvirt ≥ 6.5 passes each entry as `-fw_cfg name=…,file=…`: QEMU reads the file, so the
    // config never appears on a command line.
    spec.ignitionFile !== undefined ? `<sysinfo type='fwcfg'><entry name='${IGNITION_FW_CFG}' file='${xmlEscape(spec.ignitionFile)}'/></sysinfo>` : '',
    os,
    features,
    cpuXml(spec),
    `<clock offset='utc'/>`,
    `<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>`,
    `<devices>${devices.join('')}</devices>`,
    `</domain>`,
  ].join('\n');
}

// ------------------------------------------------------------------ parsing

type Node = Record<string, unknown>;

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  textNodeName: '#text',
  parseAttributeValue: false,
  parseTagValue: false,
  isArray: (name) =>
    ['disk', 'interface', 'graphics', 'tpm', 'feature', 'nic', 'base', 'copy', 'entry'].includes(name) ||
    name.endsWith(':disk') ||
    name.endsWith(':tag') ||
    name.endsWith(':nic') ||
    name.endsWith(':base') ||
    name.endsWith(':copy'),
});

function node(value: unknown): Node | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Node) : undefined;
}

function nodes(value: unknown): Node[] {
  if (Array.isArray(value)) return value.map(node).filter((entry): entry is Node => entry !== undefined);
  const single = node(value);
  return single ? [single] : [];
}

function text(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  const n = node(value);
  const inner = n?.['#text'];
  return typeof inner === 'string' || typeof inner === 'number' ? String(inner) : undefined;
}

function attr(value: unknown, name: string): string | undefined {
  const raw = node(value)?.[`@${name}`];
  return typeof raw === 'string' ? raw : undefined;
}

const UNIT_KIB: Record<string, number> = { b: 1 / 1024, bytes: 1 / 1024, k: 1, kib: 1, kb: 1000 / 1024, m: 1024, mib: 1024, mb: 1e6 / 1024, g: 1024 ** 2, gib: 1024 ** 2, gb: 1e9 / 1024 };

function kib(value: unknown): number | undefined {
  const amount = Number(text(value));
  if (!Number.isFinite(amount)) return undefined;
  const unit = (attr(value, 'unit') ?? 'KiB').toLowerCase();
  return Math.round(amount * (UNIT_KIB[unit] ?? 1));
}

/** Our metadata element from a <metadata> node or from `virsh metadata --uri` output. */
function findMetadata(container: Node | undefined, alreadyFiltered = false): VmMetadata | undefined {
  if (!container) return undefined;
  for (const [key, value] of Object.entries(container)) {
    const [prefix, local] = key.includes(':') ? key.split(':') : ['', key];
    if (local !== 'vm') continue;
    const element = node(value);
    if (!element) continue;
    const nsAttr = prefix === '' ? '@xmlns' : `@xmlns:${prefix}`;
    if (element[nsAttr] !== METADATA_NS && !(alreadyFiltered && prefix === '')) continue;
    const q = (name: string) => (prefix === '' ? name : `${prefix}:${name}`);
    const owner = node(element[q('owner')]);
    const uid = attr(owner, 'uid');
    // Ours but unreadable: reading it as "no owner" would make our VM look foreign (and gone).
    if (uid === undefined || uid === '') throw new Error('the virtrigaud metadata names no owner');
    const features = node(element[q('features')]);
    const metadata: VmMetadata = {
      owner: { uid, namespace: attr(owner, 'namespace') ?? '', name: attr(owner, 'name') ?? '' },
      disks: nodes(element[q('disk')]).map((disk) => ({ name: attr(disk, 'name') ?? '', target: attr(disk, 'target') ?? '', volume: attr(disk, 'volume') ?? '' })),
      nics: nodes(element[q('nic')]).map((nic) => ({ name: attr(nic, 'name') ?? '', mac: (attr(nic, 'mac') ?? '').toLowerCase() })),
      bases: nodes(element[q('base')]).map((base) => attr(base, 'volume') ?? '').filter((volume) => volume !== ''),
      cpuHotAdd: attr(features, 'cpuHotAdd') === 'true',
      memoryHotAdd: attr(features, 'memoryHotAdd') === 'true',
    };
    const placement = node(element[q('placement')]);
    const record = parseRecord(attr(placement, 'order'), attr(placement, 'labels'));
    if (record !== undefined) metadata.placement = record;
    const seed = attr(element[q('seed')], 'volume');
    if (seed !== undefined) metadata.seed = seed;
    const ignition = attr(element[q('ignition')], 'volume');
    if (ignition !== undefined) metadata.ignition = ignition;
    const tags = nodes(element[q('tag')])
      .map((tag) => attr(tag, 'name') ?? '')
      .filter((tag) => tag !== '');
    if (tags.length > 0) metadata.tags = [...new Set(tags)].sort();
    const pending = node(element[q('pending')]);
    if (pending) {
      const origin = attr(pending, 'origin') === 'clone' ? 'clone' : 'create';
      const source = attr(pending, 'source');
      metadata.pending = {
        origin,
        ...(source !== undefined ? { source } : {}),
        copies: nodes(element[q('copy')]).map((copy) => ({ volume: attr(copy, 'volume') ?? '', from: attr(copy, 'from') ?? '', capacityBytes: Number(attr(copy, 'capacity') ?? 0) })),
      };
    }
    return metadata;
  }
  return undefined;
}

/**
 * `virsh metadata --uri <ours>` output: libvirt selected the element by namespace and prints it
 * without one. Undefined for no output; throws when there is an element we cannot read.
 */
export function parseMetadata(xml: string): VmMetadata | undefined {
  if (xml.trim() === '') return undefined;
  const metadata = findMetadata(parser.parse(xml) as Node, true);
  if (!metadata) throw new Error('the virtrigaud metadata cannot be read');
  return metadata;
}

export interface ParsedNic {
  mac: string;
  network?: string;
  bridge?: string;
  vlan?: number;
  model?: string;
  mtu?: number;
  /** `<bandwidth>` averages in libvirt's unit, each direction that has one. */
  inboundKBps?: number;
  outboundKBps?: number;
  filter?: string;
}

export interface ParsedDomain {
  uuid: string;
  name: string;
  type: string;
  cpus: number;
  maxCpus: number;
  memoryKiB: number;
  maxMemoryKiB: number;
  machine?: string;
  uefi: boolean;
  secureBoot: boolean;
  tpm: boolean;
  nested: boolean;
  disks: { target: string; device: string; pool?: string; volume?: string; file?: string; format?: string; bootOrder?: number }[];
  nics: ParsedNic[];
  vnc?: { port: number; listen?: string };
  cpuShares?: number;
  /** The file behind fw_cfg `opt/com.coreos/config`, when the domain has one. */
  ignitionFile?: string;
  metadata?: VmMetadata;
}

export function parseDomain(xml: string): ParsedDomain {
  const root = node((parser.parse(xml) as Node)['domain']);
  if (!root) throw new Error('not a domain XML');
  const vcpu = root['vcpu'];
  const maxCpus = Number(text(vcpu) ?? '1');
  const cpus = Number(attr(vcpu, 'current') ?? maxCpus);
  const maxMemoryKiB = kib(root['memory']) ?? 0;
  const os = node(root['os']);
  const type = node(os?.['type']);
  const loader = node(os?.['loader']);
  const devices = node(root['devices']) ?? {};
  const cpu = node(root['cpu']);
  const cpuFeatures = nodes(cpu?.['feature']);
  const parsed: ParsedDomain = {
    uuid: text(root['uuid']) ?? '',
    name: text(root['name']) ?? '',
    type: attr(root, 'type') ?? '',
    cpus,
    maxCpus,
    memoryKiB: kib(root['currentMemory']) ?? maxMemoryKiB,
    maxMemoryKiB,
    uefi: attr(os, 'firmware') === 'efi' || (loader !== undefined && attr(loader, 'type') === 'pflash'),
    secureBoot: attr(loader, 'secure') === 'yes',
    tpm: nodes(devices['tpm']).length > 0,
    nested:
      attr(cpu, 'mode') === 'host-passthrough' ||
      cpuFeatures.some((feature) => ['vmx', 'svm'].includes(attr(feature, 'name') ?? '') && attr(feature, 'policy') === 'require'),
    disks: nodes(devices['disk']).map((disk) => {
      const source = node(disk['source']);
      const entry: ParsedDomain['disks'][number] = { target: attr(disk['target'], 'dev') ?? '', device: attr(disk, 'device') ?? 'disk' };
      const pool = attr(source, 'pool');
      const volume = attr(source, 'volume');
      const file = attr(source, 'file');
      const format = attr(disk['driver'], 'type');
      if (pool !== undefined) entry.pool = pool;
      if (volume !== undefined) entry.volume = volume;
      if (file !== undefined) entry.file = file;
      if (format !== undefined) entry.format = format;
      const bootOrder = Number(attr(disk['boot'], 'order'));
      if (Number.isInteger(bootOrder) && bootOrder > 0) entry.bootOrder = bootOrder;
      return entry;
    }),
    nics: nodes(devices['interface']).map((nic) => {
      const source = node(nic['source']);
      const entry: ParsedNic = { mac: (attr(nic['mac'], 'address') ?? '').toLowerCase() };
      const network = attr(source, 'network');
      const bridge = attr(source, 'bridge');
      const tag = attr(node(node(nic['vlan'])?.['tag']), 'id');
      const model = attr(nic['model'], 'type');
      const mtu = Number(attr(nic['mtu'], 'size'));
      const bandwidth = node(nic['bandwidth']);
      const inbound = Number(attr(bandwidth?.['inbound'], 'average'));
      const outbound = Number(attr(bandwidth?.['outbound'], 'average'));
      const filter = attr(nic['filterref'], 'filter');
      if (network !== undefined) entry.network = network;
      if (bridge !== undefined) entry.bridge = bridge;
      if (tag !== undefined) entry.vlan = Number(tag);
      if (model !== undefined) entry.model = model;
      if (Number.isInteger(mtu) && mtu > 0) entry.mtu = mtu;
      if (Number.isInteger(inbound) && inbound > 0) entry.inboundKBps = inbound;
      if (Number.isInteger(outbound) && outbound > 0) entry.outboundKBps = outbound;
      if (filter !== undefined) entry.filter = filter;
      return entry;
    }),
  };
  const machine = attr(type, 'machine');
  if (machine !== undefined) parsed.machine = machine;
  const vnc = nodes(devices['graphics']).find((graphics) => attr(graphics, 'type') === 'vnc');
  const port = Number(attr(vnc, 'port'));
  if (vnc && Number.isInteger(port) && port > 0) {
    parsed.vnc = { port };
    const listen = attr(vnc, 'listen');
    if (listen !== undefined) parsed.vnc.listen = listen;
  }
  const shares = Number(text(node(root['cputune'])?.['shares']));
  if (Number.isInteger(shares) && shares > 0) parsed.cpuShares = shares;
  const fwcfg = nodes(root['sysinfo']).find((sysinfo) => attr(sysinfo, 'type') === 'fwcfg');
  const ignitionFile = attr(nodes(fwcfg?.['entry']).find((entry) => attr(entry, 'name') === IGNITION_FW_CFG), 'file');
  if (ignitionFile !== undefined) parsed.ignitionFile = ignitionFile;
  const metadata = findMetadata(node(root['metadata']));
  if (metadata) parsed.metadata = metadata;
  return parsed;
}
