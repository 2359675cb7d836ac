// Which VM in vCenter's list is an owner's, and what a VM vSphere cannot read means (find.ts
// pickOwned, identity.ts bearsPlaceholder): pure decisions, table-tested on VM records.
import t from 'tap';
import { bearsPlaceholder, placeholderName } from '../../../src/hypervisors/vsphere/identity.js';
import { pickOwned } from '../../../src/hypervisors/vsphere/find.js';
import type { ObjectContent } from '../../../src/hypervisors/vsphere/property-collector.js';
import { record, type VmRecord } from '../../../src/hypervisors/vsphere/vm.js';
import type { XmlElement } from '../../../src/hypervisors/vsphere/xml.js';

const UID = '6a0c1d2e-0000-4000-8000-000000000001';
const OTHER = '6a0c1d2e-0000-4000-8000-000000000002';

function text(name: string, value: string): XmlElement {
  return { name, ns: 'urn:vim25', attributes: {}, type: undefined, text: value, children: [] };
}

function extraConfig(entries: Record<string, string>): XmlElement {
  const options = Object.entries(entries).map(([key, value]) => ({ ...text('OptionValue', ''), children: [text('key', key), text('value', value)] }));
  return { ...text('val', ''), children: options };
}

interface Shape {
  id: string;
  name: string;
  /** Undefined: vSphere returned no `config` at all. */
  owner?: string | null;
  state?: 'configuring' | 'ready';
  template?: boolean;
  connectionState?: string;
  vmPathName?: string;
}

function vm(shape: Shape): VmRecord {
  const props = new Map<string, XmlElement>([['name', text('val', shape.name)]]);
  if (shape.owner !== undefined) {
    const entries: Record<string, string> = shape.owner === null ? {} : { 'virtrigaud.owner.uid': shape.owner, 'virtrigaud.owner.namespace': 'ns', 'virtrigaud.owner.name': 'n' };
    if (shape.state !== undefined) entries['virtrigaud.state'] = shape.state;
    props.set('config.extraConfig', extraConfig(entries));
    props.set('config.template', text('val', String(shape.template ?? false)));
  }
  props.set('runtime.connectionState', text('val', shape.connectionState ?? 'connected'));
  if (shape.vmPathName !== undefined) props.set('summary.config.vmPathName', text('val', shape.vmPathName));
  const object: ObjectContent = { ref: { type: 'VirtualMachine', value: shape.id }, props, missing: new Map() };
  return record(object);
}

const placeholder = placeholderName(UID);

t.test('a readable VM is the owner’s by its extraConfig identity, never by its name', async (t) => {
  t.equal(pickOwned([vm({ id: 'vm-1', name: 'web', owner: UID, state: 'ready' })], UID)?.ref.value, 'vm-1');
  t.equal(pickOwned([vm({ id: 'vm-2', name: 'web', owner: OTHER, state: 'ready' })], UID), undefined);
  t.equal(pickOwned([vm({ id: 'vm-3', name: 'web', owner: null })], UID), undefined, 'a VM we did not create');
  t.equal(pickOwned([], UID), undefined);
});

t.test('a VM vSphere cannot read is unknown when it may be the owner’s, skipped when it cannot be', async (t) => {
  const table: [string, Shape, 'Unreachable' | 'skipped'][] = [
    ['placeholder name, no config', { id: 'vm-10', name: placeholder }, 'Unreachable'],
    ['renamed, vmx path under the placeholder', { id: 'vm-11', name: 'web', vmPathName: `[ds1] ${placeholder}/${placeholder}.vmx` }, 'Unreachable'],
    ['vmx directory with vCenter’s suffix', { id: 'vm-12', name: 'web', vmPathName: `[ds1] ${placeholder}_1/web.vmx` }, 'Unreachable'],
    ['vSAN namespace directory, vmx file named after the placeholder', { id: 'vm-13', name: 'web', vmPathName: `[vsanDatastore] 5c4f9a1e-aaaa-bbbb/${placeholder}.vmx` }, 'Unreachable'],
    ['inaccessible, no config, another name and path', { id: 'vm-14', name: 'db', connectionState: 'inaccessible', vmPathName: '[ds1] db/db.vmx' }, 'skipped'],
    ['another owner’s placeholder', { id: 'vm-15', name: placeholderName(OTHER) }, 'skipped'],
    ['orphaned, nothing known', { id: 'vm-16', name: 'x', connectionState: 'orphaned' }, 'skipped'],
    ['readable identity, host disconnected', { id: 'vm-17', name: 'web', owner: UID, state: 'ready', connectionState: 'disconnected' }, 'Unreachable'],
    ['readable identity of another owner, inaccessible', { id: 'vm-18', name: 'web', owner: OTHER, connectionState: 'inaccessible' }, 'skipped'],
  ];
  for (const [what, shape, outcome] of table) {
    if (outcome === 'skipped') {
      t.equal(pickOwned([vm(shape)], UID), undefined, what);
    } else {
      t.throws(() => pickOwned([vm(shape)], UID), { code: 'Unreachable', message: new RegExp(`VM ${shape.id} .* is unknown, not gone`) }, what);
    }
  }
});

t.test('one unreadable VM does not hide the owner’s readable one', async (t) => {
  const vms = [vm({ id: 'vm-20', name: placeholder }), vm({ id: 'vm-21', name: 'web', owner: UID, state: 'ready' })];
  t.equal(pickOwned(vms, UID)?.ref.value, 'vm-21');
});

t.test('a template is not a VM virtrigaud manages, even with the owner’s identity', async (t) => {
  t.equal(pickOwned([vm({ id: 'vm-30', name: 'golden', owner: UID, state: 'ready', template: true })], UID), undefined);
});

t.test('a VM named with the owner’s placeholder but without its identity is waited for, not taken or replaced', async (t) => {
  t.throws(() => pickOwned([vm({ id: 'vm-40', name: placeholder, owner: null })], UID), { code: 'Busy', message: /vm-40 bears the placeholder name/ });
  t.throws(() => pickOwned([vm({ id: 'vm-41', name: placeholder, owner: OTHER, state: 'ready' })], UID), { code: 'Busy' }, 'a copy still carrying its source’s identity');
});

t.test('a copy still carrying its source’s identity is not the source owner’s VM', async (t) => {
  const source = vm({ id: 'vm-50', name: 'web', owner: UID, state: 'ready' });
  const copy = vm({ id: 'vm-51', name: placeholderName(OTHER), owner: UID, state: 'ready' });
  t.equal(pickOwned([copy, source], UID)?.ref.value, 'vm-50');
  t.equal(pickOwned([copy], UID), undefined);
});

t.test('of two VMs with the owner’s identity, a configured one wins over one still configuring', async (t) => {
  const vms = [vm({ id: 'vm-60', name: placeholder, owner: UID, state: 'configuring' }), vm({ id: 'vm-61', name: 'web', owner: UID, state: 'ready' })];
  t.equal(pickOwned(vms, UID)?.ref.value, 'vm-61');
});

t.test('the placeholder is a valid vSphere name made of the UID, and bears only its own owner', async (t) => {
  t.equal(placeholder, 'vr-6a0c1d2e-0000-4000-8000-000000000001');
  t.equal(placeholderName('AB/C%d'), 'vr-ab-c-d');
  t.ok(bearsPlaceholder({ name: placeholder, vmPathName: undefined }, UID));
  t.notOk(bearsPlaceholder({ name: `${placeholder}x`, vmPathName: undefined }, UID));
  t.ok(bearsPlaceholder({ name: 'web', vmPathName: `[LocalDS_0] ${placeholder} (0)/web.vmx` }, UID), "vcsim's suffix for a taken directory");
  t.notOk(bearsPlaceholder({ name: 'web', vmPathName: '[LocalDS_0] web/web.vmx' }, UID));
  t.notOk(bearsPlaceholder({ name: 'web', vmPathName: `[LocalDS_0] ${placeholderName(OTHER)}/${placeholderName(OTHER)}.vmx` }, UID));
});
