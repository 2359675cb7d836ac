// Virtual hardware as vim25 reports it (`config.hardware.device`, an ArrayOfVirtualDevice whose
// elements say their class in xsi:type) and the device specs that change it.

import { el, moref, typed, type MoRef, type Xml } from './soap.js';
import { child, intAt, textAt, typeName, type XmlElement } from './xml.js';
import { morefOf } from './client.js';

export const ETHERNET_TYPES = new Set([
  'VirtualE1000',
  'VirtualE1000e',
  'VirtualVmxnet',
  'VirtualVmxnet2',
  'VirtualVmxnet3',
  'VirtualVmxnet3Vrdma',
  'VirtualPCNet32',
  'VirtualSriovEthernetCard',
]);

export interface Disk {
  key: number;
  controllerKey: number;
  unitNumber: number | undefined;
  capacityBytes: number;
  datastore: MoRef | undefined;
  thin: boolean | undefined;
  element: XmlElement;
}

export interface Nic {
  key: number;
  type: string;
  mac: string | undefined;
  /** Standard network: the network name. */
  networkName: string | undefined;
  /** Distributed port group: its key. */
  portgroupKey: string | undefined;
  /** Where it connects, as a spec can send it again; undefined for backings the driver does not make (opaque networks). */
  target: NetworkTarget | undefined;
  element: XmlElement;
}

/** The disk a spec name means: by its recorded slot, else `root` is the first disk. */
export function findDisk(devices: Devices, slots: Record<string, string>, name: string): Disk | undefined {
  const slot = slots[name];
  if (slot !== undefined) return devices.disks.find((disk) => `${disk.controllerKey}:${disk.unitNumber ?? 0}` === slot);
  if (name === 'root') return devices.disks[0];
  return devices.disks.find((disk) => `disk-${disk.key}` === name);
}

export interface Devices {
  disks: Disk[];
  nics: Nic[];
  tpm: boolean;
  /** Keys of SCSI/SATA/NVMe controllers with their used unit numbers. */
  controllers: Map<number, Set<number>>;
}

const CONTROLLER = /SCSIController$|^VirtualLsiLogic|^VirtualBusLogic|^VirtualAHCIController$|^VirtualNVMEController$|^VirtualSATAController$/;

export function readDevices(value: XmlElement | undefined): Devices {
  const devices: Devices = { disks: [], nics: [], tpm: false, controllers: new Map() };
  for (const device of value?.children ?? []) {
    const type = typeName(device) ?? device.name;
    const key = intAt(device, 'key') ?? 0;
    if (CONTROLLER.test(type)) {
      if (!devices.controllers.has(key)) devices.controllers.set(key, new Set());
      continue;
    }
    if (type === 'VirtualTPM') devices.tpm = true;
    if (type === 'VirtualDisk') {
      // vcsim sets only capacityInKB (NOTES): capacityInBytes wins when present.
      const bytes = intAt(device, 'capacityInBytes') ?? (intAt(device, 'capacityInKB') ?? 0) * 1024;
      const backing = child(device, 'backing');
      const thin = textAt(backing, 'thinProvisioned');
      devices.disks.push({
        key,
        controllerKey: intAt(device, 'controllerKey') ?? 0,
        unitNumber: intAt(device, 'unitNumber'),
        capacityBytes: bytes,
        datastore: morefOf(child(backing, 'datastore')),
        thin: thin === undefined ? undefined : thin === 'true',
        element: device,
      });
    } else if (ETHERNET_TYPES.has(type)) {
      const backing = child(device, 'backing');
      const networkName = backing?.type?.name === 'VirtualEthernetCardNetworkBackingInfo' ? textAt(backing, 'deviceName') : undefined;
      const portgroupKey = textAt(backing, 'port', 'portgroupKey');
      devices.nics.push({ key, type, mac: textAt(device, 'macAddress'), networkName, portgroupKey, target: targetOf(backing, networkName, portgroupKey), element: device });
    }
  }
  for (const disk of devices.disks) {
    if (disk.unitNumber !== undefined) devices.controllers.get(disk.controllerKey)?.add(disk.unitNumber);
  }
  devices.disks.sort((a, b) => a.key - b.key);
  devices.nics.sort((a, b) => a.key - b.key);
  return devices;
}

/** Where a NIC connects: a standard network, or a distributed port group. */
export type NetworkTarget =
  | { kind: 'network'; name: string; ref: MoRef }
  | { kind: 'portgroup'; name: string; ref: MoRef; key: string; switchUuid: string };

function targetOf(backing: XmlElement | undefined, networkName: string | undefined, portgroupKey: string | undefined): NetworkTarget | undefined {
  const network = morefOf(child(backing, 'network'));
  if (networkName !== undefined && network !== undefined) return { kind: 'network', name: networkName, ref: network };
  const switchUuid = textAt(backing, 'port', 'switchUuid');
  if (portgroupKey !== undefined && switchUuid !== undefined) {
    // vCenter's port group keys are the port groups' moids (vcsim's too).
    return { kind: 'portgroup', name: portgroupKey, ref: { type: 'DistributedVirtualPortgroup', value: portgroupKey }, key: portgroupKey, switchUuid };
  }
  return undefined;
}

/**
 * The VirtualEthernetCard subtypes by the model words of NicSpec.model and ObservedNic.model. A
 * create may ask for those in NIC_MODELS; the SR-IOV and RDMA adapters need host hardware and
 * settings a NicSpec cannot give, so they are only reported.
 */
export const NIC_MODELS: Readonly<Record<string, string>> = {
  e1000: 'VirtualE1000',
  e1000e: 'VirtualE1000e',
  pcnet32: 'VirtualPCNet32',
  vmxnet: 'VirtualVmxnet',
  vmxnet2: 'VirtualVmxnet2',
  vmxnet3: 'VirtualVmxnet3',
};
const REPORTED_ONLY: Readonly<Record<string, string>> = { vmxnet3vrdma: 'VirtualVmxnet3Vrdma', sriov: 'VirtualSriovEthernetCard' };

export function modelOf(type: string): string | undefined {
  return Object.entries({ ...NIC_MODELS, ...REPORTED_ONLY }).find(([, name]) => name === type)?.[0];
}

/** What a NIC spec sets on the adapter beyond its type: where it connects and a manual MAC. */
export interface NicSettings {
  target: NetworkTarget | undefined;
  mac: string | undefined;
}

export function nicBacking(target: NetworkTarget): Xml {
  if (target.kind === 'network') {
    return typed('backing', 'VirtualEthernetCardNetworkBackingInfo', [el('deviceName', target.name), moref('network', target.ref)]);
  }
  return typed('backing', 'VirtualEthernetCardDistributedVirtualPortBackingInfo', [
    el('port', [el('switchUuid', target.switchUuid), el('portgroupKey', target.key)]),
  ]);
}

function connectable(): Xml {
  return el('connectable', [el('startConnected', true), el('allowGuestControl', true), el('connected', false)]);
}

/**
 * A device as the server sent it, with some of its elements replaced (a replacement of `[]`
 * drops the element). Edits send the whole device: vim25 wants it complete and in schema order,
 * which is the order the server sends (vcsim dereferences deviceInfo of an edited device).
 */
function editedDevice(device: XmlElement, replace: Record<string, Xml | Xml[]>): Xml {
  const children = device.children.flatMap((item) => {
    const replacement = replace[item.name];
    if (replacement === undefined) return [reencode(item)];
    return Array.isArray(replacement) ? replacement : [replacement];
  });
  return typed('device', typeName(device) ?? 'VirtualDevice', children);
}

// A MAC the user chose is `manual`; vSphere only takes one from its manual range (nics.ts).
function addressElements(mac: string | undefined): Xml[] {
  return mac === undefined ? [el('addressType', 'generated')] : [el('addressType', 'manual'), el('macAddress', mac)];
}

// VirtualEthernetCard's elements after macAddress, in schema order (vim25 WSDL).
const AFTER_MAC = new Set(['wakeOnLanEnabled', 'resourceAllocation', 'externalId', 'uptCompatibilityEnabled', 'uptv2Enabled']);

/** Edits a NIC's backing and MAC, keeping its type and key; undefined when nothing changes. */
export function editNicSpec(nic: Nic, settings: NicSettings): Xml | undefined {
  const mac = settings.mac !== undefined && settings.mac !== nic.mac?.toLowerCase() ? settings.mac : undefined;
  if (settings.target === undefined && mac === undefined) return undefined;
  const backing = (item: XmlElement): Xml => (item.name === 'backing' && settings.target !== undefined ? nicBacking(settings.target) : reencode(item));
  // A new MAC's addressType and macAddress go where the schema has them, whether or not the server sent them.
  const kept = mac === undefined ? nic.element.children : nic.element.children.filter((item) => item.name !== 'addressType' && item.name !== 'macAddress');
  const children = kept.map(backing);
  if (mac !== undefined) {
    const at = kept.findIndex((item) => AFTER_MAC.has(item.name));
    children.splice(at === -1 ? children.length : at, 0, ...addressElements(mac));
  }
  const device = typed('device', typeName(nic.element) ?? 'VirtualEthernetCard', children);
  return typed('deviceChange', 'VirtualDeviceConfigSpec', [el('operation', 'edit'), device]);
}

/** A new NIC of this VirtualEthernetCard type (vmxnet3 unless asked), connected at power-on. */
export function addNicSpec(tempKey: number, type: string, target: NetworkTarget, mac: string | undefined): Xml {
  return typed('deviceChange', 'VirtualDeviceConfigSpec', [
    el('operation', 'add'),
    typed('device', type, [el('key', tempKey), nicBacking(target), connectable(), ...addressElements(mac)]),
  ]);
}

export function removeDeviceSpec(device: { key: number; type: string }): Xml {
  return typed('deviceChange', 'VirtualDeviceConfigSpec', [el('operation', 'remove'), typed('device', device.type, [el('key', device.key)])]);
}

/** A disk's new capacity; the rest of the device is sent back as it was. */
export function growDiskSpec(disk: Disk, bytes: number): Xml {
  return typed('deviceChange', 'VirtualDeviceConfigSpec', [
    el('operation', 'edit'),
    editedDevice(disk.element, { capacityInKB: [el('capacityInKB', Math.ceil(bytes / 1024)), el('capacityInBytes', bytes)], capacityInBytes: [] }),
  ]);
}

/** An element as the server sent it, to send back (its xsi:type and `type` attribute kept). */
export function reencode(element: XmlElement): Xml {
  const content: Xml[] | string = element.children.length > 0 ? element.children.map(reencode) : element.text;
  const attributes: Record<string, string | undefined> = { type: element.attributes['type'] };
  if (element.type !== undefined) attributes['xsi:type'] = element.type.name;
  return el(element.name, content, attributes);
}

export function addDiskSpec(tempKey: number, controllerKey: number, unitNumber: number, bytes: number, thin: boolean, datastore: MoRef | undefined): Xml {
  return typed('deviceChange', 'VirtualDeviceConfigSpec', [
    el('operation', 'add'),
    el('fileOperation', 'create'),
    typed('device', 'VirtualDisk', [
      el('key', tempKey),
      typed('backing', 'VirtualDiskFlatVer2BackingInfo', [
        // An empty file name lets the server name the new file in the VM's directory.
        el('fileName', ''),
        moref('datastore', datastore),
        el('diskMode', 'persistent'),
        el('thinProvisioned', thin),
      ]),
      el('controllerKey', controllerKey),
      el('unitNumber', unitNumber),
      el('capacityInKB', Math.ceil(bytes / 1024)),
      el('capacityInBytes', bytes),
    ]),
  ]);
}

export function addTpmSpec(tempKey: number): Xml {
  return typed('deviceChange', 'VirtualDeviceConfigSpec', [el('operation', 'add'), typed('device', 'VirtualTPM', [el('key', tempKey)])]);
}

/** The next free unit on a controller; SCSI unit 7 is the controller itself. */
export function freeUnit(devices: Devices, controllerKey: number): number | undefined {
  const used = devices.controllers.get(controllerKey) ?? new Set<number>();
  for (let unit = 0; unit < 30; unit++) {
    if (unit === 7) continue;
    if (!used.has(unit)) {
      used.add(unit);
      return unit;
    }
  }
  return undefined;
}
