import t from 'tap';
import { GiB, MiB } from '../../../src/contracts/quantity.js';
import {
  bootDiskSlot,
  bootOrder,
  disks,
  featuresOf,
  firmwareOf,
  nics,
  observedCpus,
  observedMemoryBytes,
} from '../../../src/hypervisors/proxmox/hardware.js';
import { observedDisks, observedNics } from '../../../src/hypervisors/proxmox/observe.js';
import { recordedData } from './pve-stub.js';

const templateCloudinit = recordedData('qemu-config.template-cloudinit.pve9') as Record<string, unknown>;
const vmCloudinit = recordedData('qemu-config.vm-cloudinit.pve6') as Record<string, unknown>;
const cloudinit = recordedData('qemu-config.cloudinit.pve9') as Record<string, unknown>;
const simpleTemplate = recordedData('qemu-config.template') as Record<string, unknown>;

t.test('the boot order lists disks by bus priority, virtio before scsi before sata before ide', async (t) => {
  t.equal(bootOrder(['ide0', 'sata1', 'scsi2', 'virtio1', 'scsi0', 'virtio0'], undefined), 'order=virtio0;virtio1;scsi0;scsi2;sata1;ide0');
});

t.test('the boot order starts with the root disk', async (t) => {
  t.equal(bootOrder(['scsi0', 'scsi1', 'virtio0'], 'scsi0'), 'order=scsi0;virtio0;scsi1');
});

t.test('CD-ROMs and the cloud-init drive are not disks', async (t) => {
  t.same(disks(templateCloudinit).map((disk) => disk.slot), ['scsi0']);
  t.same(disks(vmCloudinit).map((disk) => disk.slot), ['scsi0']);
});

t.test('the boot disk comes from the boot order, the legacy bootdisk, or bus priority', async (t) => {
  t.equal(bootDiskSlot(templateCloudinit), 'scsi0', 'order=scsi0;ide2;net0');
  t.equal(bootDiskSlot(vmCloudinit), 'scsi0', 'bootdisk');
  t.equal(bootDiskSlot(simpleTemplate), 'scsi0', 'bootdisk scsi0 although sata0 exists');
  t.equal(bootDiskSlot({ sata0: 'local:base-1-disk-0,size=1G', virtio3: 'local:base-1-disk-1,size=1G' }), 'virtio3');
  t.equal(bootDiskSlot(simpleTemplate, 'sata0'), 'sata0', 'the marker wins');
});

t.test('disk sizes are read from size=', async (t) => {
  t.equal(disks(templateCloudinit)[0]?.sizeBytes, 3584 * MiB);
  t.equal(disks(simpleTemplate)[0]?.sizeBytes, 104858 * 1024);
  t.equal(disks(vmCloudinit)[0]?.sizeBytes, 8 * GiB);
  t.equal(disks(cloudinit)[0]?.storage, 'nfs');
});

t.test('memory is read as a string (PVE 8.1+) or an integer', async (t) => {
  t.equal(observedMemoryBytes(templateCloudinit), 2048 * MiB);
  t.equal(observedMemoryBytes(vmCloudinit), 1000 * MiB);
  t.equal(observedMemoryBytes({ memory: 'current=4096' }), 4096 * MiB);
  t.equal(observedMemoryBytes({}), 512 * MiB);
});

t.test('CPUs are vcpus when set, else cores times sockets', async (t) => {
  t.equal(observedCpus(templateCloudinit), 2);
  t.equal(observedCpus({ cores: 4, sockets: 2 }), 8);
  t.equal(observedCpus({ cores: 16, sockets: 1, vcpus: 3 }), 3);
});

t.test('NICs are read with model, MAC, bridge, tag, firewall, rate and MTU', async (t) => {
  t.same(nics(cloudinit), [{ slot: 'net0', index: 0, model: 'vmxnet3', mac: 'bc:24:11:2c:69:ec', bridge: 'vnet0', firewall: true }]);
  t.same(observedNics({ net1: 'virtio=BC:24:11:00:00:01,bridge=vmbr1,tag=100,rate=12.5,mtu=9000' }, { uid: 'u', namespace: 'n', name: 'v', disks: {}, nics: { dmz: 'net1' } }), [
    { name: 'dmz', mac: 'bc:24:11:00:00:01', network: 'vmbr1', vlan: 100, model: 'virtio', mtu: 9000, rateLimitMBps: 12.5 },
  ]);
});

t.test('observed disks take their names from the marker, the boot disk is root', async (t) => {
  const config = { scsi0: 'local-lvm:vm-120-disk-0,size=20G', scsi1: 'local-lvm:vm-120-disk-1,size=5G', ide2: 'local-lvm:vm-120-cloudinit,media=cdrom' };
  t.same(observedDisks(config, undefined), [
    { name: 'root', sizeBytes: 20 * GiB, datastore: 'local-lvm', bus: 'scsi' },
    { name: 'scsi1', sizeBytes: 5 * GiB, datastore: 'local-lvm', bus: 'scsi' },
  ]);
  t.same(
    observedDisks(config, { uid: 'u', namespace: 'n', name: 'v', disks: { root: 'scsi0', data: 'scsi1' }, nics: {} }).map((disk) => disk.name),
    ['root', 'data'],
  );
});

t.test('features come from tpmstate0, efidisk0 keys, cpu type and hotplug', async (t) => {
  t.same(featuresOf(templateCloudinit), { tpm: false, secureBoot: false, nestedVirtualization: false, cpuHotAdd: false, memoryHotAdd: false });
  t.same(
    featuresOf({
      bios: 'ovmf',
      efidisk0: 'local-lvm:vm-1-disk-1,efitype=4m,pre-enrolled-keys=1,size=4M',
      tpmstate0: 'local-lvm:vm-1-disk-2,size=4M,version=v2.0',
      cpu: 'host',
      hotplug: 'network,disk,usb,cpu,memory',
    }),
    { tpm: true, secureBoot: true, nestedVirtualization: true, cpuHotAdd: true, memoryHotAdd: true },
  );
  t.equal(featuresOf({ hotplug: '1' }).cpuHotAdd, false, 'hotplug 1 is the default network,disk,usb');
  t.equal(featuresOf({ cpu: 'x86-64-v2-AES,flags=+vmx' }).nestedVirtualization, true);
});

t.test('firmware is uefi only with bios=ovmf', async (t) => {
  t.equal(firmwareOf(vmCloudinit), 'bios');
  t.equal(firmwareOf({ bios: 'ovmf' }), 'uefi');
});
