// Reading what vSphere reports about a VM, on a body captured from vcsim: extraConfig, devices,
// guest networking, the snapshot tree, and properties the server could not read.
import t from 'tap';
import { readDevices } from '../../../src/hypervisors/vsphere/devices.js';
import { diskSlotsOf, extraConfigMap, ownerOf, stateOf } from '../../../src/hypervisors/vsphere/identity.js';
import { consoleURL } from '../../../src/hypervisors/vsphere/observe.js';
import { decodeObjects, type ObjectContent } from '../../../src/hypervisors/vsphere/property-collector.js';
import { flattenSnapshots } from '../../../src/hypervisors/vsphere/snapshots.js';
import { child, childrenNamed, parseXml } from '../../../src/hypervisors/vsphere/xml.js';
import { fixture } from '../../helpers/vcsim.js';

function objects(name: string): ObjectContent[] {
  const body = child(parseXml(fixture(name)), 'Body')?.children[0];
  return decodeObjects(childrenNamed(child(body, 'returnval'), 'objects'));
}

const [vm] = objects('capture-RetrievePropertiesEx-VM-details.response.xml');

t.test('properties decode by name; an unknown path is a missingSet entry, not a fault', async (t) => {
  t.same(vm?.ref, { type: 'VirtualMachine', value: 'vm-57' });
  t.same([...(vm?.props.keys() ?? [])].sort(), [
    'config.bootOptions', 'config.extraConfig', 'config.firmware', 'config.hardware.device', 'config.version',
    'guest.net', 'parent', 'recentTask', 'resourcePool', 'runtime.host', 'snapshot',
  ]);
  t.same([...(vm?.missing ?? [])], [['nosuch.prop', 'InvalidProperty']]);
});

t.test('extraConfig reads as a map; a VM without our entries has no owner', async (t) => {
  const extraConfig = extraConfigMap(vm?.props.get('config.extraConfig'));
  t.same([...extraConfig], [['govcsim', 'TRUE'], ['foo', 'bar']]);
  t.equal(ownerOf(extraConfig), undefined);
  t.equal(stateOf(extraConfig), undefined);
  const ours = new Map([
    ['virtrigaud.owner.uid', 'u-1'],
    ['virtrigaud.owner.namespace', 'ns'],
    ['virtrigaud.owner.name', 'web'],
    ['virtrigaud.state', 'configuring'],
    ['virtrigaud.disks', '{"root":"1000:0","data":"1000:1","bad":"x"}'],
  ]);
  t.same(ownerOf(ours), { uid: 'u-1', namespace: 'ns', name: 'web' });
  t.equal(stateOf(ours), 'configuring');
  t.same(diskSlotsOf(ours), { root: '1000:0', data: '1000:1' }, 'an unreadable slot names nothing');
  t.same(diskSlotsOf(new Map([['virtrigaud.disks', 'not json']])), {});
});

t.test('devices: the disk with its capacity in KB, datastore and thin flag; the NIC on a port group', async (t) => {
  const devices = readDevices(vm?.props.get('config.hardware.device'));
  t.equal(devices.disks.length, 1);
  t.match(devices.disks[0], {
    key: 255511522,
    controllerKey: 202,
    unitNumber: 0,
    capacityBytes: 1024 * 1024,
    datastore: { type: 'Datastore', value: '/tmp/govcsim-DC0-LocalDS_0-3747285440@folder-5' },
    thin: true,
  });
  t.equal(devices.nics.length, 1);
  t.match(devices.nics[0], { key: 4000, type: 'VirtualE1000', mac: '00:0c:29:36:63:62', portgroupKey: 'dvportgroup-13', networkName: undefined });
  t.equal(devices.tpm, false);
  t.ok(devices.controllers.has(202), 'the pvscsi controller');
  t.same([...(devices.controllers.get(202) ?? [])], [0], 'unit 0 taken by the disk');
});

t.test('the snapshot tree flattens with name, time and whether memory was kept', async (t) => {
  t.match(flattenSnapshots(vm?.props.get('snapshot')), [{ ref: { type: 'VirtualMachineSnapshot', value: 'snapshot-70' }, name: 'snap1', state: 'poweredOn' }]);
  const [captured] = objects('32-RetrievePropertiesEx-SnapshotTree.response.xml');
  t.match(flattenSnapshots(captured?.props.get('snapshot')), [{ name: 'snap1', description: 'before change', createdAt: '2026-11-22T16:48:35.096497086Z' }]);
  t.same(flattenSnapshots(undefined), []);
});

t.test('the console URL names the server instance and the VM, encoded', async (t) => {
  t.equal(
    consoleURL('https://vc.example.com', 'dbed6e0c-bd88-4ef6-b594-21283e1c677f', 'vm-57'),
    'https://vc.example.com/ui/app/vm;nav=v/urn:vmomi:VirtualMachine:vm-57:dbed6e0c-bd88-4ef6-b594-21283e1c677f/summary',
  );
  t.equal(consoleURL('https://vc', undefined, 'vm-1'), undefined);
  t.match(consoleURL('https://vc', 'g', 'odd/id?x'), 'odd%2Fid%3Fx');
});
