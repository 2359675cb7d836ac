// What callers can read: VMs as ObservedVM copies, inventory sums, and the guest's addresses.
// Everything returned is built fresh, so no caller can reach into the world's records.

import type { Inventory, ObservedVM, PlacedVMInfo } from '../../contracts/driver.js';
import { filterGuestAddresses } from '../common/addresses.js';
import type { NicRecord, VMRecord } from './model.js';
import type { SimWorld } from './world.js';

export function observe(world: SimWorld, vm: VMRecord): ObservedVM {
  const observed: ObservedVM = {
    id: vm.id,
    name: vm.name,
    powerState: vm.powerState,
    cpus: vm.cpus,
    memoryBytes: vm.memoryBytes,
    firmware: vm.firmware,
    features: { ...vm.features },
    disks: vm.disks.map((disk) => ({ ...disk })),
    nics: vm.nics.map(observeNic),
    ips: guestAddresses(world, vm),
    host: vm.host,
  };
  if (vm.owner !== undefined) observed.owner = { ...vm.owner };
  if (vm.lock !== undefined) observed.lock = vm.lock.name;
  if (vm.machine !== undefined) observed.machine = vm.machine;
  if (world.capabilities.tags) observed.tags = [...(vm.tags ?? [])];
  if (world.capabilities.consoleURL) {
    // PVE numbers VNC displays after the VMID; any stable per-VM port will do.
    observed.consoleURL = `vnc://${vm.host}.simulator.invalid:${5900 + (Number(vm.id) % 10_000)}`;
  }
  return observed;
}

function observeNic(nic: NicRecord): ObservedVM['nics'][number] {
  const observed: ObservedVM['nics'][number] = { name: nic.name, mac: nic.mac, network: nic.network };
  if (nic.vlan !== undefined) observed.vlan = nic.vlan;
  if (nic.model !== undefined) observed.model = nic.model;
  if (nic.mtu !== undefined) observed.mtu = nic.mtu;
  if (nic.firewall !== undefined) observed.firewall = nic.firewall;
  if (nic.rateLimitMBps !== undefined) observed.rateLimitMBps = nic.rateLimitMBps;
  return observed;
}

/** What a guest agent reports, loopback and link-local included, filtered like every driver does. */
function guestAddresses(world: SimWorld, vm: VMRecord): string[] {
  if (vm.powerState !== 'On' || vm.ipsVisibleAt === undefined || world.clock.now() < vm.ipsVisibleAt) return [];
  if (vm.guestAddresses?.since === vm.ipsVisibleAt) return [...vm.guestAddresses.ips];
  const hostIndex = Math.max(0, world.hosts.findIndex((host) => host.name === vm.host));
  const reported = ['127.0.0.1', '::1'];
  vm.nics.forEach((nic, index) => {
    reported.push(nic.staticAddress ?? dhcpAddress(hostIndex, index, Number(vm.id)), linkLocalAddress(nic.mac));
  });
  // Cached because describe() runs in tight loops over many VMs and the filter parses every address.
  vm.guestAddresses = { since: vm.ipsVisibleAt, ips: filterGuestAddresses(reported) };
  return [...vm.guestAddresses.ips];
}

// Deterministic, distinct per (host, NIC, VM) for any realistic VM count, and never .0/.1/.255.
function dhcpAddress(hostIndex: number, nicIndex: number, vmNumber: number): string {
  const second = ((hostIndex % 16) * 16 + (nicIndex % 16)) % 256;
  return `10.${second}.${Math.floor(vmNumber / 250) % 256}.${(vmNumber % 250) + 2}`;
}

/** The EUI-64 address a guest gives itself on each NIC (RFC 4291 appendix A). */
function linkLocalAddress(mac: string): string {
  const bytes = mac.split(':').map((part) => Number.parseInt(part, 16));
  const [a = 0, b = 0, c = 0, d = 0, e = 0, f = 0] = bytes;
  const hex = (high: number, low: number): string => ((high << 8) | low).toString(16);
  return `fe80::${hex(a ^ 0x02, b)}:${hex(c, 0xff)}:${hex(0xfe, d)}:${hex(e, f)}`;
}

/** 52:54:00 is the QEMU/KVM prefix; the rest follows from the VM and NIC so it is stable across runs. */
export function generatedMac(vmId: string, nicIndex: number): string {
  const n = (Number(vmId) * 16 + nicIndex) % 0x1000000;
  const bytes = [(n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
  return `52:54:00:${bytes.map((byte) => byte.toString(16).padStart(2, '0')).join(':')}`;
}

export function inventory(world: SimWorld): Inventory {
  const hosts = new Map(world.hosts.map((host) => [host.name, { cpus: 0, memoryBytes: 0, vms: 0, placed: [] as PlacedVMInfo[] }]));
  const used = new Map(world.datastores.map((datastore) => [datastore.name, 0]));
  for (const vm of world.vms.values()) {
    const usage = hosts.get(vm.host);
    if (usage !== undefined) {
      usage.cpus += vm.cpus;
      usage.memoryBytes += vm.memoryBytes;
      usage.vms += 1;
      usage.placed.push(placedInfo(vm));
    }
    for (const disk of vm.disks) used.set(disk.datastore, (used.get(disk.datastore) ?? 0) + disk.sizeBytes);
  }
  return {
    hosts: world.hosts.map((host) => {
      const usage = hosts.get(host.name) ?? { cpus: 0, memoryBytes: 0, vms: 0, placed: [] };
      const row: Inventory['hosts'][number] = {
        name: host.name,
        cpus: host.cpus,
        memoryBytes: host.memoryBytes,
        cpusAllocated: usage.cpus,
        memoryAllocatedBytes: usage.memoryBytes,
        vms: usage.vms,
      };
      if (world.capabilities.placementPolicy) row.placed = usage.placed;
      return row;
    }),
    datastores: world.datastores.map((datastore) => ({
      name: datastore.name,
      capacityBytes: datastore.capacityBytes,
      usedBytes: used.get(datastore.name) ?? 0,
    })),
    networks: [...world.networks],
  };
}

/** A VM as placement sees it: the simulator makes a VM whole within the create call, so none is settling. */
function placedInfo(vm: VMRecord): PlacedVMInfo {
  const info: PlacedVMInfo = { name: vm.name, labels: { ...(vm.placementRecord?.labels ?? {}) }, cpus: vm.cpus, memoryBytes: vm.memoryBytes };
  if (vm.owner !== undefined) info.owner = vm.owner.uid;
  if (vm.placementRecord !== undefined) info.order = vm.placementRecord.order;
  return info;
}
