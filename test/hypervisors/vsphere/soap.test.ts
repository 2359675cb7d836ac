import t from 'tap';
import { el, envelope, escapeXml, moref, optionValue, typed } from '../../../src/hypervisors/vsphere/soap.js';
import { child, parseXml, type XmlElement } from '../../../src/hypervisors/vsphere/xml.js';
import { fixture } from '../../helpers/vcsim.js';

function method(xml: string): XmlElement | undefined {
  return child(parseXml(xml), 'Body')?.children[0];
}

function shape(element: XmlElement | undefined): unknown {
  if (element === undefined) return undefined;
  return { name: element.name, ns: element.ns, attributes: element.attributes, type: element.type?.name, text: element.text, children: element.children.map(shape) };
}

t.test('a CloneVM_Task envelope matches the captured request element for element', async (t) => {
  const ours = envelope('CloneVM_Task', [
    moref('_this', { type: 'VirtualMachine', value: 'vm-36' }),
    moref('folder', { type: 'Folder', value: 'folder-3' }),
    el('name', 'op-clone-1'),
    el('spec', [el('location', [moref('pool', { type: 'ResourcePool', value: 'resgroup-15' })]), el('template', false), el('powerOn', false)]),
  ]);
  t.same(shape(method(ours)), shape(method(fixture('16-CloneVM_Task.request.xml'))));
  t.match(ours, /^<\?xml version="1\.0" encoding="UTF-8"\?><soapenv:Envelope xmlns:soapenv="http:\/\/schemas\.xmlsoap\.org\/soap\/envelope\/"/);
});

t.test('a RetrievePropertiesEx with a TraversalSpec carries xsi:type on selectSet', async (t) => {
  const ours = envelope('RetrievePropertiesEx', [
    moref('_this', { type: 'PropertyCollector', value: 'propertyCollector' }),
    el('specSet', [
      el('propSet', [el('type', 'VirtualMachine'), el('all', false), ...['name', 'config.instanceUuid', 'config.uuid', 'config.template', 'runtime.powerState', 'summary.guest.ipAddress'].map((path) => el('pathSet', path))]),
      el('objectSet', [
        moref('obj', { type: 'ContainerView', value: 'session[SESSION-KEY-REDACTED]85e27ad0-9f43-489d-80aa-62d04e91fc19' }),
        el('skip', true),
        typed('selectSet', 'TraversalSpec', [el('name', 'traverseEntities'), el('type', 'ContainerView'), el('path', 'view'), el('skip', false)]),
      ]),
    ]),
    el('options', []),
  ]);
  t.same(shape(method(ours)), shape(method(fixture('06-RetrievePropertiesEx-ListVMs.request.xml'))));
});

t.test('moids and values are escaped, whatever they hold', async (t) => {
  const hostile = `session[<a>]&"x'/tmp/govcsim-DC0-LocalDS_0-123@folder-5`;
  const xml = envelope('Destroy_Task', [moref('_this', { type: 'VirtualMachine', value: hostile }), el('name', '</name><evil/>')]);
  const parsed = method(xml);
  t.equal(child(parsed, '_this')?.text, hostile, 'round-trips exactly');
  t.equal(child(parsed, 'name')?.text, '</name><evil/>');
  t.equal(parsed?.children.length, 2, 'nothing injected');
  t.equal(escapeXml('a&b<c>d"e\'f'), 'a&amp;b&lt;c&gt;d&quot;e&apos;f');
  t.equal(escapeXml('bell\u0007'), 'bell\uFFFD', 'characters XML cannot carry are replaced, not sent');
});

t.test('extraConfig entries are OptionValues with a typed string value', async (t) => {
  const option = parseXml(`<r xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">${optionValue('extraConfig', 'guestinfo.userdata', 'a<b').toString()}</r>`).children[0];
  t.equal(option?.type?.name, 'OptionValue');
  t.equal(child(option, 'key')?.text, 'guestinfo.userdata');
  t.equal(child(option, 'value')?.type?.name, 'string');
  t.equal(child(option, 'value')?.text, 'a<b');
});

t.test('unset optional elements are left out, empty ones are sent', async (t) => {
  t.equal(el('location', [moref('pool', undefined), el('host', undefined)]).toString(), '<location></location>');
  t.equal(el('description', '').toString(), '<description></description>');
  t.throws(() => el('bad name', 'x'));
  t.throws(() => envelope('Bad<Method', []));
});
