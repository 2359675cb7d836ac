// The Driver for libvirt/KVM over SSH: wiring only. Each verb lives in its own module; this class
// holds what they share (the SSH connection to the host, the configuration). Tasks live on the
// host (tasks.ts), so nothing here is lost with the process or differs between replicas; a disk
// transfer runs in this process under a task it leases there (transfers.ts).

import type {
  MigrationVolume,
  CallOptions,
  Capabilities,
  CloneStarted,
  CloneTarget,
  CreateSpec,
  DiskExportRequest,
  DiskImported,
  DiskImportRequest,
  Driver,
  Identity,
  Inventory,
  ObservedVM,
  PowerOperation,
  ResourceChange,
  SnapshotInfo,
  SnapshotRequest,
  Started,
  TaskStatus,
  VMRef,
} from '../../contracts/driver.js';
import { WITHOUT_MACHINE_CAPABILITIES, unsupportedSettings } from '../../contracts/driver.js';
import type { LibvirtConfig } from './config.js';
import type { LibvirtContext } from './context.js';
import { createVM } from './create.js';
import { hostCapabilities, readHostFacts } from './host-facts.js';
import { inventory, probe } from './inventory.js';
import { unsupportedNicSetting } from './nics.js';
import { cloneVM } from './clone.js';
import { deleteVM } from './lifecycle.js';
import { exportDisk } from './export.js';
import { deleteImportedDisk, importDisk } from './import.js';
import { checkMigrationVolume, removeMigrationFiles } from '../common/disk-files.js';
import { describeVM, findVMByIdentity } from './observe.js';
import { powerVM, reconfigureVM, resizeVMDisk } from './power.js';
import { createSnapshot, deleteSnapshot, listSnapshots, revertSnapshot } from './snapshots.js';
import { SshTransport } from './ssh.js';
import { HostTasks } from './tasks.js';
import { Transfers } from './transfers.js';
import { LibvirtHost } from './virsh.js';

export const LIBVIRT_CAPABILITIES: Capabilities = Object.freeze({
  // What a host may lack (the seed-ISO tool, OVMF, swtpm, KVM, the nwfilter, Open vSwitch, the
  // kernel's traffic control) is read by probe (host-facts.ts), which narrows these defaults for
  // the host; create checks the same again for what it is asked.
  cloudInit: true,
  staticIP: true,
  // <vlan><tag> on Open vSwitch networks and bridges only: libvirt refuses a tag on a NAT,
  // routed or isolated network or a Linux bridge when the VM starts, so create refuses it first.
  vlan: true,
  nicModel: true,
  // <filterref filter='clean-traffic'/>: libvirt's anti-spoofing filter (no MAC, IP or ARP
  // spoofing), from libvirt-daemon-config-nwfilter.
  nicFirewall: true,
  // <bandwidth> inbound and outbound: needs sch_htb, sch_sfq and act_police in the host's kernel,
  // which the CI peer's kernel lacks; probe claims it where the host can build them (host-facts.ts).
  nicRateLimit: false,
  // <mtu size> on the VM's tap device.
  nicMTU: true,
  macAddress: true,
  // UEFI, secure boot and TPM need OVMF and swtpm on the host: create answers Unsupported without them.
  uefi: true,
  secureBoot: true,
  tpm: true,
  // Needs KVM (type kvm): refused with Unsupported when the provider runs type qemu.
  nestedVirtualization: true,
  machineType: true,
  thickProvisioning: false,
  // vCPUs up to the maximum set at create time (twice the class's count) with `<vcpu current>`.
  cpuHotAdd: true,
  // vCPU unplug fails under TCG and can hang QEMU (NOTES §3): not promised.
  cpuHotRemove: false,
  // Balloon up to the maximum set at create time; needs the guest's virtio-balloon driver.
  memoryHotAdd: true,
  memoryHotRemove: false,
  onlineDiskGrow: true,
  guestShutdown: true,
  snapshots: true,
  memorySnapshots: true,
  quiescedSnapshots: false,
  linkedClones: true,
  imageImport: true,
  consoleURL: true,
  // One host per Provider: nothing to choose. A placement policy's create names this host (the
  // inventory's), which create accepts with the policy's record; any other host is refused.
  placementHost: false,
  placementDatastore: false,
  placementFolder: false,
  placementCluster: false,
  placementResourcePool: false,
  // In the domain's virtrigaud metadata beside the identity; `virsh metadata` changes them live.
  tags: true,
  // Merged into the NoCloud seed's meta-data; instance-id stays the driver's.
  cloudInitMetaData: true,
  // fw_cfg opt/com.coreos/config from a per-VM volume (libvirt ≥ 6.5, a dir pool).
  ignition: true,
  // libvirt has no free-form key/value passthrough short of raw QEMU arguments.
  extraConfig: false,
  // No honest mapping: cgroups cap CPU time (quota/period), not MHz, and reserve none; memtune
  // hard_limit caps (and OOM-kills) the QEMU process, not guest memory; min_guarantee is ESX-only.
  resourceLimits: false,
  // <cputune><shares>, 2–10000 (what cgroup v1 and v2 both take).
  cpuShares: true,
  // The record sits in the domain's metadata beside the owner (placement-record.ts); the inventory
  // lists every domain with it from one host run (inventory.ts), so one host's rules
  // (maxVMsPerNode, free CPU and memory, anti-affinity) hold there too.
  placementPolicy: true,
  // The disk streams over SSH between the host and the runtime's migration directory, flattened
  // (qemu-img where the runtime runs) when it is an overlay or another format was asked for.
  diskExport: true,
  // Uploaded as a qcow2 volume of the pool (a dir pool: the copy is hashed on the host), verified,
  // and used by create as a template.
  diskImport: true,
  // Empty disks, the ISO (a pool volume, a file on the host, or a URL fetched once into the pool,
  // checksum verified) as a SATA CD-ROM booted before the root disk, the seed ISO beside it.
  isoInstall: true,
  // Settings, VM IDs, disk layout and blank VMs (Machines of the Viti API): not on this driver.
  ...WITHOUT_MACHINE_CAPABILITIES,
  // `virsh suspend` (QEMU stops the vCPUs, the memory stays): describe shows the paused domain
  // Suspended, and `on` resumes it.
  suspend: true,
  // `virsh reset`: QEMU's system_reset, the reset button.
  hardReset: true,
});

export interface LibvirtDriverOptions {
  /** Where the driver writes its few log lines (a trusted-on-first-use host key); stderr by default. */
  log?: (line: string) => void;
}

export class LibvirtDriver implements Driver {
  readonly type = 'libvirt';
  readonly #ctx: LibvirtContext;
  #capabilities: Capabilities = LIBVIRT_CAPABILITIES;
  readonly #transport: SshTransport;

  constructor(config: LibvirtConfig, options: LibvirtDriverOptions = {}) {
    this.#transport = new SshTransport(config.ssh, options.log);
    const host = new LibvirtHost(this.#transport, config.libvirtUri);
    const tasks = new HostTasks(host, config.taskDirectory);
    this.#ctx = { host, config, tasks, transfers: new Transfers(tasks) };
  }

  /** Stops the disk transfers this process runs (their tasks fail), then closes the SSH connection. */
  async close(): Promise<void> {
    await this.#ctx.transfers.close();
    this.#transport.close();
  }

  /** The driver-type defaults until a probe answered; then what this host has. */
  get capabilities(): Capabilities {
    return this.#capabilities;
  }

  async probe(options?: CallOptions): Promise<{ version: string }> {
    const [answer, facts] = await Promise.all([probe(this.#ctx, options?.signal), readHostFacts(this.#ctx, options?.signal)]);
    this.#capabilities = hostCapabilities(LIBVIRT_CAPABILITIES, facts, this.#ctx.config);
    return answer;
  }

  inventory(options?: CallOptions): Promise<Inventory> {
    return inventory(this.#ctx, options?.signal);
  }

  describe(id: string, options?: CallOptions): Promise<ObservedVM> {
    return describeVM(this.#ctx, id, options?.signal);
  }

  findByIdentity(uid: string, options?: CallOptions): Promise<ObservedVM | undefined> {
    return findVMByIdentity(this.#ctx, uid, options?.signal);
  }

  async create(spec: CreateSpec, options?: CallOptions): Promise<{ id: string } & Started> {
    const unsupported = unsupportedSettings(spec, this.type, this.capabilities) ?? unsupportedNicSetting(spec.nics, this.capabilities);
    if (unsupported) throw unsupported;
    return createVM(this.#ctx, spec, options?.signal);
  }

  delete(ref: VMRef, options?: CallOptions): Promise<Started> {
    return deleteVM(this.#ctx, ref, options?.signal);
  }

  power(ref: VMRef, operation: PowerOperation, options?: CallOptions): Promise<Started> {
    return powerVM(this.#ctx, ref, operation, options?.signal);
  }

  reconfigure(ref: VMRef, change: ResourceChange, options?: CallOptions): Promise<Started> {
    return reconfigureVM(this.#ctx, ref, change, options?.signal);
  }

  resizeDisk(ref: VMRef, disk: string, sizeBytes: number, options?: CallOptions): Promise<Started> {
    return resizeVMDisk(this.#ctx, ref, disk, sizeBytes, options?.signal);
  }

  snapshotCreate(ref: VMRef, request: SnapshotRequest, options?: CallOptions): Promise<{ id: string } & Started> {
    return createSnapshot(this.#ctx, ref, request, options?.signal);
  }

  snapshotDelete(ref: VMRef, snapshotId: string, options?: CallOptions): Promise<Started> {
    return deleteSnapshot(this.#ctx, ref, snapshotId, options?.signal);
  }

  snapshotRevert(ref: VMRef, snapshotId: string, options?: CallOptions): Promise<Started> {
    return revertSnapshot(this.#ctx, ref, snapshotId, options?.signal);
  }

  snapshotList(ref: VMRef, options?: CallOptions): Promise<SnapshotInfo[]> {
    return listSnapshots(this.#ctx, ref, options?.signal);
  }

  clone(ref: VMRef, target: CloneTarget, options?: CallOptions): Promise<CloneStarted> {
    return cloneVM(this.#ctx, ref, target, options?.signal);
  }

  exportDisk(ref: VMRef, request: DiskExportRequest, options?: CallOptions): Promise<Started> {
    return exportDisk(this.#ctx, ref, request, options?.signal);
  }

  importDisk(owner: Identity, request: DiskImportRequest, options?: CallOptions): Promise<DiskImported> {
    return importDisk(this.#ctx, owner, request, options?.signal);
  }

  deleteImportedDisk(owner: Identity, name: string, options?: CallOptions): Promise<Started> {
    return deleteImportedDisk(this.#ctx, owner, name, options?.signal);
  }

  migrationVolume(volume: string): Promise<MigrationVolume> {
    return checkMigrationVolume(this.#ctx.config.migration, volume);
  }

  removeMigrationFiles(dir: string): Promise<void> {
    return removeMigrationFiles(this.#ctx.config.migration, dir);
  }

  taskStatus(task: string, options?: CallOptions): Promise<TaskStatus> {
    // A transfer this process runs knows its progress before the host's copy does.
    const local = this.#ctx.transfers.status(task);
    return local ? Promise.resolve(local) : this.#ctx.tasks.status(task, options?.signal);
  }
}
