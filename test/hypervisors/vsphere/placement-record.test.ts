// The placement record in extraConfig (placement-record.ts) and who is on which host for placement
// (placed.ts): pure, table-tested on the entries a clone writes and on VM records and clone tasks
// as the inventory reads them. vcsim runs no clone for long (NOTES "Tasks are synchronous"), so
// the running-clone cases here are also covered against vcsim behind a proxy that holds clones
// (placement-vcsim.test.ts).
import t from 'tap';
import type { PlacementRecord } from '../../../src/contracts/driver.js';
import { GiB } from '../../../src/contracts/quantity.js';
import type { RunningClone } from '../../../src/hypervisors/vsphere/find.js';
import { userExtraConfigEntries } from '../../../src/hypervisors/vsphere/guestinfo.js';
import { placeholderName } from '../../../src/hypervisors/vsphere/identity.js';
import { placedByHost, placedVM } from '../../../src/hypervisors/vsphere/placed.js';
import { MAX_LABELS_BYTES, placementEntries, recordOf } from '../../../src/hypervisors/vsphere/placement-record.js';
import type { ObjectContent } from '../../../src/hypervisors/vsphere/property-collector.js';
import { record, type VmRecord } from '../../../src/hypervisors/vsphere/vm.js';
import type { XmlElement } from '../../../src/hypervisors/vsphere/xml.js';
import { basicSpec } from '../../conformance/driver-suite.js';

const UID = '7b1d2e3f-0000-4000-8000-000000000001';
const OTHER = '7b1d2e3f-0000-4000-8000-000000000002';

const LABELS: Record<string, string> = {
  'App.Kubernetes.io/Name': 'Web-Frontend',
  'example.com/a=b': 'x=y',
  city: 'Zürich/東京 ☃ 𝄞',
  odd: '"quoted" \\ back\nline \u0001 \ufffe',
  empty: '',
  ['__proto__']: 'not a prototype',
};
const RECORD: PlacementRecord = { labels: LABELS, order: 1_767_225_600_123 };

const entryMap = (entries: [string, string][]): Map<string, string> => new Map(entries);

t.test('a record written into extraConfig reads back exactly, whatever its labels hold', async (t) => {
  const entries = placementEntries(RECORD);
  t.same(
    entries.map(([key]) => key),
    ['virtrigaud.placement.labels', 'virtrigaud.placement.order'],
  );
  t.match(entries[0]?.[1], /^[\x20-\x7e]*$/, 'the labels are ASCII JSON: nothing XML 1.0 cannot carry');
  const read = recordOf(entryMap(entries));
  t.same(read, RECORD);
  t.ok(Object.prototype.hasOwnProperty.call(read.labels, '__proto__'), '`__proto__` is a label like any other');
  t.equal(Object.getPrototypeOf(read.labels), Object.prototype);
});

t.test('labels are written in key order, so one record always reads as one value', async (t) => {
  const [forward] = placementEntries({ labels: { b: '2', a: '1' }, order: 1 });
  const [backward] = placementEntries({ labels: { a: '1', b: '2' }, order: 1 });
  t.equal(forward?.[1], '{"a":"1","b":"2"}');
  t.same(forward, backward);
});

t.test('without a record both keys are written empty, clearing any record a clone copied from its source', async (t) => {
  t.same(placementEntries(undefined), [
    ['virtrigaud.placement.labels', ''],
    ['virtrigaud.placement.order', ''],
  ]);
  t.same(recordOf(entryMap(placementEntries(undefined))), { labels: {} });
  t.same(recordOf(new Map()), { labels: {} }, 'a VM without the keys records nothing');
});

t.test('a record that cannot be written and read back as it is is InvalidSpec', async (t) => {
  const big: Record<string, string> = {};
  for (let i = 0; i < 200; i++) big[`example.com/label-${i}`] = 'v'.repeat(40);
  t.throws(() => placementEntries({ labels: big, order: 1 }), { code: 'InvalidSpec', message: new RegExp(`at most ${MAX_LABELS_BYTES}`) });
  // Each non-ASCII character is written as a 6-byte escape, and counted so.
  t.throws(() => placementEntries({ labels: { k: '☃'.repeat(1400) }, order: 1 }), { code: 'InvalidSpec' });
  t.doesNotThrow(() => placementEntries({ labels: { k: '☃'.repeat(1300) }, order: 1 }));
  for (const order of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
    t.throws(() => placementEntries({ labels: {}, order }), { code: 'InvalidSpec', message: /order/ }, String(order));
  }
});

t.test("a user's extraConfig can never write the record's keys, in any case", async (t) => {
  for (const key of ['virtrigaud.placement.labels', 'Virtrigaud.Placement.Order']) {
    t.throws(() => userExtraConfigEntries(basicSpec('web', { uid: UID, namespace: 'ns', name: 'web' }, { extraConfig: { [key]: '{}' } })), { code: 'InvalidSpec', message: /written by the driver/ }, key);
  }
});

t.test('a record that does not decode is read as none, never as an error', async (t) => {
  const table: [string, string, { labels: Record<string, string>; order?: number }][] = [
    ['not JSON', '5', { labels: {}, order: 5 }],
    ['[]', '5', { labels: {}, order: 5 }],
    ['{"a":1}', '5', { labels: {}, order: 5 }],
    ['null', '-5', { labels: {} }],
    ['{"a":"b"}', 'soon', { labels: { a: 'b' } }],
    ['{"a":"b"}', '1e400', { labels: { a: 'b' } }],
    ['{"a":"b"}', '1.5', { labels: { a: 'b' }, order: 1.5 }],
  ];
  for (const [labels, order, expected] of table) {
    t.same(recordOf(new Map([['virtrigaud.placement.labels', labels], ['virtrigaud.placement.order', order]])), expected, `${labels} / ${order}`);
  }
});

function text(name: string, value: string): XmlElement {
  return { name, ns: 'urn:vim25', attributes: {}, type: undefined, text: value, children: [] };
}

function ref(name: string, type: string, value: string): XmlElement {
  return { ...text(name, value), attributes: { type } };
}

interface Shape {
  id: string;
  name: string;
  host?: string;
  /** Undefined: vSphere returned no `config` at all. */
  extraConfig?: Record<string, string>;
  template?: boolean;
  vmPathName?: string;
  cpus?: number;
  memoryMB?: number;
}

function vm(shape: Shape): VmRecord {
  const props = new Map<string, XmlElement>([['name', text('val', shape.name)]]);
  if (shape.host !== undefined) props.set('runtime.host', ref('val', 'HostSystem', shape.host));
  if (shape.extraConfig !== undefined) {
    const options = Object.entries(shape.extraConfig).map(([key, value]) => ({ ...text('OptionValue', ''), children: [text('key', key), text('value', value)] }));
    props.set('config.extraConfig', { ...text('val', ''), children: options });
    props.set('config.template', text('val', String(shape.template ?? false)));
    props.set('config.hardware.numCPU', text('val', String(shape.cpus ?? 2)));
    props.set('config.hardware.memoryMB', text('val', String(shape.memoryMB ?? 2048)));
  }
  props.set('runtime.connectionState', text('val', 'connected'));
  if (shape.vmPathName !== undefined) props.set('summary.config.vmPathName', text('val', shape.vmPathName));
  const object: ObjectContent = { ref: { type: 'VirtualMachine', value: shape.id }, props, missing: new Map() };
  return record(object);
}

const identity = (uid: string): Record<string, string> => ({ 'virtrigaud.owner.uid': uid, 'virtrigaud.owner.namespace': 'ns', 'virtrigaud.owner.name': 'web' });
const recorded = (uid: string, state = 'ready'): Record<string, string> => ({ ...identity(uid), 'virtrigaud.state': state, ...Object.fromEntries(placementEntries(RECORD)) });
const placeholder = placeholderName(UID);

t.test('a VM is listed with its owner, record, name and size; one without a record or owner with none', async (t) => {
  t.same(placedVM(vm({ id: 'vm-1', name: 'web', host: 'host-1', extraConfig: recorded(UID), cpus: 3, memoryMB: 3072 })), {
    name: 'web',
    owner: UID,
    labels: LABELS,
    order: RECORD.order,
    cpus: 3,
    memoryBytes: 3 * GiB,
  });
  t.same(placedVM(vm({ id: 'vm-2', name: 'plain', extraConfig: identity(UID) })), { name: 'plain', owner: UID, labels: {}, cpus: 2, memoryBytes: 2 * GiB }, 'ours, created without a policy');
  t.same(placedVM(vm({ id: 'vm-3', name: 'foreign', extraConfig: { 'disk.EnableUUID': 'TRUE' }, cpus: 1, memoryMB: 32 })), { name: 'foreign', labels: {}, cpus: 1, memoryBytes: 32 * 1024 * 1024 });
  t.same(
    placedVM(vm({ id: 'vm-4', name: placeholder, extraConfig: recorded(UID, 'configuring') })),
    { name: placeholder, owner: UID, labels: LABELS, order: RECORD.order, cpus: 2, memoryBytes: 2 * GiB },
    'a clone awaiting its configuration step already reads its own record',
  );
});

t.test('a VM whose record cannot be trusted yet is settling, with the owner its placeholder names', async (t) => {
  t.same(placedVM(vm({ id: 'vm-5', name: placeholder })), { name: placeholder, owner: UID, labels: {}, cpus: 0, memoryBytes: 0, settling: true }, 'registered, configuration not readable');
  t.same(
    placedVM(vm({ id: 'vm-6', name: 'web', vmPathName: `[ds] ${placeholder} (0)/${placeholder}.vmx` })),
    { name: 'web', owner: UID, labels: {}, cpus: 0, memoryBytes: 0, settling: true },
    'renamed, unreadable: its vmx path names the owner',
  );
  t.same(
    placedVM(vm({ id: 'vm-7', name: placeholder, extraConfig: recorded(OTHER) })),
    { name: placeholder, owner: UID, labels: {}, cpus: 2, memoryBytes: 2 * GiB, settling: true },
    "a copy still carrying its source's identity and record",
  );
  t.same(placedVM(vm({ id: 'vm-8', name: 'someone-elses', vmPathName: '[ds] someone-elses/someone-elses.vmx' })), { name: 'someone-elses', labels: {}, cpus: 0, memoryBytes: 0 }, 'unreadable and bearing no placeholder of ours: no record to miss');
});

const clone = (fields: Partial<RunningClone>): RunningClone => ({ task: 'task-9', source: 'ubuntu-22-template', destination: undefined, destinationHost: undefined, ...fields });

t.test('VMs are listed on their hosts, templates nowhere, and every host has a list', async (t) => {
  const byHost = placedByHost(
    [
      vm({ id: 'vm-1', name: 'web', host: 'host-1', extraConfig: recorded(UID) }),
      vm({ id: 'vm-2', name: 'template', host: 'host-1', extraConfig: {}, template: true }),
      vm({ id: 'vm-3', name: 'foreign', host: 'host-2', extraConfig: {} }),
      vm({ id: 'vm-4', name: 'nowhere', extraConfig: {} }),
    ],
    [],
    ['host-1', 'host-2', 'host-3'],
  );
  t.same([...byHost.keys()], ['host-1', 'host-2', 'host-3']);
  t.same(byHost.get('host-1')?.map((placed) => placed.name), ['web']);
  t.same(byHost.get('host-2')?.map((placed) => placed.name), ['foreign']);
  t.same(byHost.get('host-3'), []);
});

t.test('a running clone is settling on the host vSphere names for it, or on every host when it names none', async (t) => {
  const hosts = ['host-1', 'host-2'];
  const named = placedByHost([], [clone({ destination: placeholder, destinationHost: { type: 'HostSystem', value: 'host-2' } })], hosts);
  t.same(named.get('host-1'), []);
  t.same(named.get('host-2'), [{ name: placeholder, owner: UID, labels: {}, cpus: 0, memoryBytes: 0, settling: true }], 'its placeholder names its owner');

  const untold = placedByHost([], [clone({})], hosts);
  for (const host of hosts) t.same(untold.get(host), [{ labels: {}, cpus: 0, memoryBytes: 0, settling: true }], `${host}: a clone vSphere does not place`);

  const elsewhere = placedByHost([], [clone({ destination: 'copy', destinationHost: { type: 'HostSystem', value: 'host-9' } })], hosts);
  for (const host of hosts) t.same(elsewhere.get(host), [{ name: 'copy', labels: {}, cpus: 0, memoryBytes: 0, settling: true }], `${host}: a host not listed is no host to trust`);
});

t.test('a running clone whose VM is already listed marks that entry settling instead of a second one', async (t) => {
  const byHost = placedByHost(
    [vm({ id: 'vm-5', name: placeholder, host: 'host-1', extraConfig: recorded(UID, 'configuring') })],
    [clone({ destination: placeholder, destinationHost: { type: 'HostSystem', value: 'host-1' } })],
    ['host-1'],
  );
  t.same(byHost.get('host-1'), [{ name: placeholder, owner: UID, labels: LABELS, order: RECORD.order, cpus: 2, memoryBytes: 2 * GiB, settling: true }]);
});
