/**
 * Storages and their volumes, named the way the PVE storage plugins name them
 * (`local-lvm:vm-100-disk-0`, `local:100/vm-100-disk-0.qcow2`, linked clones
 * `local-lvm:base-9000-disk-0/vm-101-disk-0`), with the plugins' feature tables.
 */
import { fail } from './errors.js';
import type { FakePveStorage, StorageType } from './options.js';

export interface VolumeRec {
  volid: string;
  storage: string;
  /** Owning node for local storages; undefined on shared ones. */
  node: string | undefined;
  volname: string;
  vmid?: number;
  size: number;
  format: string;
  content: string;
  ctime: number;
  /** Template base volume (`base-…`). */
  base: boolean;
  /** Base volume a linked clone is built on. */
  parent?: string;
  /** File content (snippets). */
  data?: string;
  /** SHA-256 of a downloaded file's bytes. */
  sha256?: string;
}

export interface StorageRec extends FakePveStorage {
  shared: boolean;
}

export type Feature = 'snapshot' | 'clone' | 'copy' | 'template' | 'rename';
type Kinds = Partial<Record<'current' | 'base' | 'snap', boolean>>;

const BLOCK_FEATURES: Record<'lvmthin' | 'zfspool' | 'lvm', Partial<Record<Feature, Kinds>>> = {
  lvmthin: {
    snapshot: { current: true, snap: true },
    clone: { base: true, snap: true },
    template: { current: true },
    copy: { base: true, current: true, snap: true },
    rename: { current: true },
  },
  zfspool: {
    snapshot: { current: true, snap: true },
    clone: { base: true },
    template: { current: true },
    copy: { base: true, current: true },
    rename: { current: true },
  },
  lvm: { template: { current: true }, copy: { base: true, current: true }, rename: { current: true } },
};

/** Plugin.pm's default table for file-based storages: snapshots and snapshot copies need qcow2. */
function fileFeature(feature: Feature, kind: 'current' | 'base' | 'snap', format: string): boolean {
  const qcow2 = format === 'qcow2';
  switch (feature) {
    case 'snapshot':
      return kind !== 'base' && qcow2;
    case 'clone':
      return kind === 'base';
    case 'template':
    case 'rename':
      return kind === 'current';
    case 'copy':
      return kind === 'snap' ? qcow2 : true;
  }
}

export const isFileBased = (type: StorageType): boolean => type === 'dir' || type === 'nfs';

const VOLID = /^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$/is;

export function splitVolid(volid: string): { storage: string; volname: string } | undefined {
  const match = VOLID.exec(volid);
  return match ? { storage: match[1] ?? '', volname: match[2] ?? '' } : undefined;
}

export interface ParsedVolname {
  vtype: string;
  vmid?: number;
  base: boolean;
  format: string;
}

export class Volumes {
  readonly storages = new Map<string, StorageRec>();
  private readonly byKey = new Map<string, VolumeRec>();

  constructor(
    storages: FakePveStorage[],
    private readonly nodeNames: string[],
  ) {
    for (const storage of storages) this.storages.set(storage.id, { ...storage, shared: storage.shared ?? storage.type === 'nfs' });
  }

  /** `storage_config`. */
  config(id: string): StorageRec {
    const storage = this.storages.get(id);
    if (!storage) fail(`storage '${id}' does not exist`);
    return storage;
  }

  availableOn(storage: StorageRec, node: string): boolean {
    return !storage.nodes || storage.nodes.includes(node);
  }

  /** `storage_check_enabled`. */
  checkEnabled(id: string, node: string): StorageRec {
    const storage = this.config(id);
    if (!this.availableOn(storage, node)) fail(`storage '${id}' is not available on node '${node}'`);
    return storage;
  }

  nodesOf(storage: StorageRec): string[] {
    return this.nodeNames.filter((node) => this.availableOn(storage, node));
  }

  private key(storage: StorageRec, node: string, volname: string): string {
    return `${storage.shared ? '*' : node}|${storage.id}|${volname}`;
  }

  /** A volume as seen from `node` (local storages hold different volumes on each node). */
  get(node: string, volid: string): VolumeRec | undefined {
    const parts = splitVolid(volid);
    const storage = parts && this.storages.get(parts.storage);
    if (!parts || !storage) return undefined;
    return this.byKey.get(this.key(storage, node, parts.volname));
  }

  add(volume: Omit<VolumeRec, 'volid'>): VolumeRec {
    const storage = this.config(volume.storage);
    const record: VolumeRec = { ...volume, node: storage.shared ? undefined : volume.node, volid: `${volume.storage}:${volume.volname}` };
    this.byKey.set(this.key(storage, volume.node ?? '', volume.volname), record);
    return record;
  }

  remove(node: string, volid: string): void {
    const volume = this.get(node, volid);
    if (!volume) return;
    const storage = this.config(volume.storage);
    this.byKey.delete(this.key(storage, node, volume.volname));
  }

  list(storageId: string, node: string): VolumeRec[] {
    const storage = this.config(storageId);
    return [...this.byKey.values()].filter(
      (volume) => volume.storage === storageId && (storage.shared || volume.node === node),
    );
  }

  all(): VolumeRec[] {
    return [...this.byKey.values()];
  }

  usedBytes(storageId: string, node: string): number {
    return this.list(storageId, node).reduce((sum, volume) => sum + volume.size, 0);
  }

  defaultFormat(storage: StorageRec): string {
    return isFileBased(storage.type) ? 'qcow2' : 'raw';
  }

  /** `parse_volname` of the storage plugin; dies like the plugins for unparsable names. */
  parseVolname(volid: string): ParsedVolname {
    const parts = splitVolid(volid);
    if (!parts) fail(`unable to parse volume ID '${volid}'`);
    const storage = this.config(parts.storage);
    const name = parts.volname;
    if (isFileBased(storage.type)) {
      const special = /^(iso|snippets|import|template\/cache|dump)\/[^/]+$/.exec(name);
      if (special) {
        const vtype = { iso: 'iso', snippets: 'snippets', import: 'import', 'template/cache': 'vztmpl', dump: 'backup' }[
          special[1] as 'iso'
        ];
        const format = /\.(qcow2|raw|vmdk|ova|img)$/.exec(name)?.[1] ?? 'raw';
        return { vtype, base: false, format };
      }
      const image = /^(?:\d+\/(?:base-\d+-disk-\d+)\.\w+\/)?(\d+)\/((?:vm|base)-\d+-[\w-]+)\.(qcow2|raw|vmdk)$/.exec(name);
      if (!image) fail(`unable to parse directory volume name '${name}'`);
      return { vtype: 'images', vmid: Number(image[1]), base: (image[2] ?? '').startsWith('base-'), format: image[3] ?? 'raw' };
    }
    const block = /^(?:base-\d+-disk-\d+\/)?((vm|base)-(\d+)-[\w-]+)$/.exec(name);
    if (!block) fail(`unable to parse ${storage.type === 'zfspool' ? 'zfs' : 'lvm'} volume name '${name}'`);
    return { vtype: 'images', vmid: Number(block[3]), base: block[2] === 'base', format: 'raw' };
  }

  /** `volume_has_feature`. */
  hasFeature(feature: Feature, volid: string, snapname?: string): boolean {
    const parts = splitVolid(volid);
    const storage = parts && this.storages.get(parts.storage);
    if (!parts || !storage) return false;
    let parsed: ParsedVolname;
    try {
      parsed = this.parseVolname(volid);
    } catch {
      return false;
    }
    const kind = snapname ? 'snap' : parsed.base ? 'base' : 'current';
    if (isFileBased(storage.type)) return fileFeature(feature, kind, parsed.format);
    return BLOCK_FEATURES[storage.type as 'lvmthin' | 'zfspool' | 'lvm'][feature]?.[kind] === true;
  }

  private freeDiskIndex(storage: StorageRec, node: string, vmid: number): number {
    const taken = new Set<number>();
    for (const volume of this.list(storage.id, node)) {
      const match = new RegExp(`(?:vm|base)-${vmid}-disk-(\\d+)`).exec(volume.volname);
      if (match) taken.add(Number(match[1]));
    }
    let index = 0;
    while (taken.has(index)) index++;
    return index;
  }

  /**
   * The formats a storage holds and the one it picks when asked for none (`storage_default_format`:
   * Plugin.pm's raw/qcow2/vmdk with qcow2 first for directory storages; raw only for LVM, LVM-thin
   * and ZFS).
   */
  formats(storage: StorageRec): readonly string[] {
    return isFileBased(storage.type) ? ['qcow2', 'raw', 'vmdk'] : ['raw'];
  }

  /**
   * `vdisk_alloc`: a new image volume for `vmid` (a name like `vm-100-cloudinit` may be given).
   * A format the storage cannot hold dies like the plugins' alloc_image: `die "unsupported format
   * '$fmt'"` in LVMPlugin, LvmThinPlugin and ZFSPoolPlugin (no newline, so real PVE appends Perl's
   * " at <file> line <n>."), and a file name Plugin.pm's parse_name_dir cannot parse for the
   * directory plugins.
   */
  allocate(options: { storage: string; node: string; vmid: number; size: number; format?: string; name?: string; now: number }): VolumeRec {
    const storage = this.checkEnabled(options.storage, options.node);
    const format = options.format ?? this.defaultFormat(storage);
    if (!this.formats(storage).includes(format)) {
      if (!isFileBased(storage.type)) fail(`unsupported format '${format}'`);
      fail(`unable to parse volume filename '${options.name ?? `vm-${options.vmid}-disk-0`}.${format}'`);
    }
    const base = options.name ?? `vm-${options.vmid}-disk-${this.freeDiskIndex(storage, options.node, options.vmid)}`;
    const volname = isFileBased(storage.type) ? `${options.vmid}/${base}.${format}` : base;
    if (this.get(options.node, `${storage.id}:${volname}`)) fail(`disk image '${storage.id}:${volname}' already exists`);
    return this.add({
      storage: storage.id,
      node: options.node,
      volname,
      vmid: options.vmid,
      size: options.size,
      format,
      content: 'images',
      ctime: Math.floor(options.now / 1000),
      base: false,
    });
  }

  /** `vdisk_create_base`: renames `vm-N-disk-M` to `base-N-disk-M`. */
  createBase(node: string, volid: string): VolumeRec {
    const volume = this.get(node, volid);
    if (!volume) fail(`volume '${volid}' does not exist`);
    if (volume.base) return volume;
    this.remove(node, volid);
    return this.add({ ...volume, volname: volume.volname.replace(/(^|\/)vm-(\d+)-disk-/, '$1base-$2-disk-'), base: true });
  }

  /** `vdisk_clone`: a linked clone of a base volume. */
  linkedClone(node: string, baseVolid: string, vmid: number, now: number): VolumeRec {
    const baseVolume = this.get(node, baseVolid);
    if (!baseVolume) fail(`volume '${baseVolid}' does not exist`);
    const storage = this.config(baseVolume.storage);
    const index = this.freeDiskIndex(storage, node, vmid);
    const volname = isFileBased(storage.type)
      ? `${baseVolume.volname}/${vmid}/vm-${vmid}-disk-${index}.${baseVolume.format}`
      : `${baseVolume.volname}/vm-${vmid}-disk-${index}`;
    return this.add({
      storage: storage.id,
      node,
      volname,
      vmid,
      size: baseVolume.size,
      format: baseVolume.format,
      content: 'images',
      ctime: Math.floor(now / 1000),
      base: false,
      parent: baseVolume.volid,
    });
  }

  /** All image volumes owned by `vmid` that `node` can see. */
  ownedBy(node: string, vmid: number): VolumeRec[] {
    return this.all().filter(
      (volume) =>
        volume.vmid === vmid &&
        volume.content === 'images' &&
        (volume.node === undefined || volume.node === node) &&
        this.availableOn(this.config(volume.storage), node),
    );
  }
}
