import t from 'tap';
import { XSD, child, parseXml, textAt, type XmlElement } from '../../../src/hypervisors/vsphere/xml.js';
import { fixture } from '../../helpers/vcsim.js';

function body(name: string): XmlElement {
  const document = parseXml(fixture(name));
  const first = child(document, 'Body')?.children[0];
  if (first === undefined) throw new Error(`no body in ${name}`);
  return first;
}

t.test('a propSet value typed under the XMLSchema-instance prefix resolves by namespace URI', async (t) => {
  const response = body('06-RetrievePropertiesEx-ListVMs.response.xml');
  const vals = response.children[0]?.children[0]?.children.filter((item) => item.name === 'propSet').map((prop) => child(prop, 'val'));
  t.same(vals?.map((val) => val?.type), [
    { ns: XSD, name: 'string' },
    { ns: XSD, name: 'string' },
    { ns: XSD, name: 'string' },
    { ns: XSD, name: 'boolean' },
    { ns: 'urn:vim25', name: 'VirtualMachinePowerState' },
  ]);
  t.equal(vals?.[0]?.text, 'DC0_C0_RP0_VM0');
});

t.test('a type attribute whose prefix was declared on an ancestor still resolves (TaskInfo.result)', async (t) => {
  const response = body('17-RetrievePropertiesEx-TaskInfo-Clone.response.xml');
  const info = child(child(child(child(response, 'returnval'), 'objects'), 'propSet'), 'val');
  t.equal(info?.type?.name, 'TaskInfo');
  const result = child(info, 'result');
  t.equal(result?.type?.name, 'ManagedObjectReference');
  t.equal(result?.attributes['type'], 'VirtualMachine', 'the unprefixed moref type stays an ordinary attribute');
  t.equal(result?.text, 'vm-43');
});

t.test('faults use the conventional xsi prefix, which resolves the same way', async (t) => {
  const fault = body('02-Fault-NotAuthenticated.response.xml');
  t.equal(fault.name, 'Fault');
  t.equal(child(fault, 'detail')?.children[0]?.type?.name, 'NotAuthenticated');
});

t.test('a prefix named xsi bound to another namespace is not a type', async (t) => {
  const element = parseXml('<a xmlns:xsi="urn:not-schema-instance" xsi:type="Evil"><b xmlns:t="http://www.w3.org/2001/XMLSchema-instance" t:type="Good"/></a>');
  t.equal(element.type, undefined);
  t.equal(element.children[0]?.type?.name, 'Good');
});

t.test('numeric character references (Go writes &#34;) and entities decode once', async (t) => {
  t.equal(parseXml('<v>[&#34;lan&#34;] &amp;lt; &lt;x&gt;</v>').text, '["lan"] &lt; <x>');
});

t.test('a moid with brackets, slashes and @ comes back exactly', async (t) => {
  const response = body('capture-RetrievePropertiesEx-VM-details.response.xml');
  const text = JSON.stringify(response);
  t.match(text, '/tmp/govcsim-DC0-LocalDS_0-3747285440@folder-5');
  t.equal(textAt(response, 'returnval', 'objects', 'obj'), 'vm-57');
});

t.test('text that is not XML is refused', async (t) => {
  t.throws(() => parseXml('this is not xml <'), { name: 'Error' });
  t.throws(() => parseXml(''));
});
