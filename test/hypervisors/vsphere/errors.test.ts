import t from 'tap';
import { UnreachableError } from '../../../src/contracts/driver.js';
import { codeOfFault, errorFromFault, errorFromTransport, readSoapFault, readTaskError } from '../../../src/hypervisors/vsphere/errors.js';
import { child, parseXml, textAt, type XmlElement } from '../../../src/hypervisors/vsphere/xml.js';
import { fixture } from '../../helpers/vcsim.js';

function fault(name: string): XmlElement {
  const first = child(parseXml(fixture(name)), 'Body')?.children[0];
  if (first?.name !== 'Fault') throw new Error(`${name} is not a fault`);
  return first;
}

function taskError(name: string): XmlElement | undefined {
  const body = child(parseXml(fixture(name)), 'Body')?.children[0];
  const info = child(child(child(child(body, 'returnval'), 'objects'), 'propSet'), 'val');
  return child(info, 'error');
}

t.test('SOAP faults map to typed errors by their xsi:type', async (t) => {
  const cases: [string, string, string, RegExp][] = [
    ['02-Fault-NotAuthenticated.response.xml', 'NotAuthenticated', 'Unauthorized', /NotAuthenticated/],
    ['03-Fault-InvalidLogin.response.xml', 'InvalidLogin', 'Unauthorized', /./],
    ['38-RebootGuest-unimplemented.response.xml', 'MethodNotFound', 'Unsupported', /does not implement: RebootGuest/],
    ['43-Fault-ManagedObjectNotFound.response.xml', 'ManagedObjectNotFound', 'NotFound', /./],
    ['45-Fault-AfterLogout.response.xml', 'NotAuthenticated', 'Unauthorized', /./],
  ];
  for (const [file, type, code, message] of cases) {
    const read = readSoapFault(fault(file));
    t.equal(read.type, type, file);
    const error = errorFromFault(read);
    t.equal(error.code, code, file);
    t.match(error.message, message, file);
  }
});

t.test('a fault without a faultstring is named by its type and details', async (t) => {
  t.equal(readSoapFault(fault('02-Fault-NotAuthenticated.response.xml')).message, 'vSphere fault NotAuthenticated');
});

t.test('a failed task says what failed, not a Go type name', async (t) => {
  const read = readTaskError(taskError('26-RetrievePropertiesEx-TaskInfo-Error.response.xml'));
  t.equal(read.type, 'InvalidPowerState');
  t.equal(read.message, 'vSphere fault InvalidPowerState: the VM is poweredOn');
  t.equal(errorFromFault(read).code, 'Conflict');
  const off = readTaskError(taskError('40-RetrievePropertiesEx-TaskInfo-PowerOffError.response.xml'));
  t.equal(off.message, 'vSphere fault InvalidPowerState: the VM is poweredOff');
});

t.test("a task error with vCenter's own message keeps it, and TaskInProgress is Busy", async (t) => {
  const read = readTaskError(taskError('derived-TaskInfo-TaskInProgress.response.xml'));
  t.same(read, { type: 'TaskInProgress', message: 'Another task is already in progress.' });
  const error = errorFromFault(read);
  t.equal(error.code, 'Busy');
  t.equal(error.retryable, true);
});

t.test('fault types the driver branches on', async (t) => {
  t.equal(codeOfFault('DuplicateName'), 'Conflict');
  t.equal(codeOfFault('FileAlreadyExists'), 'Conflict');
  t.equal(codeOfFault('NoPermission'), 'Unauthorized');
  t.equal(codeOfFault('NotSupported'), 'Unsupported');
  t.equal(codeOfFault('InvalidArgument'), 'InvalidSpec');
  t.equal(codeOfFault('HostNotConnected'), 'Unreachable');
  t.equal(codeOfFault(undefined), 'InvalidSpec');
});

t.test('transport failures are Unreachable, TLS ones with advice', async (t) => {
  const tls = errorFromTransport(Object.assign(new Error('self-signed'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }), 'vc:443');
  t.type(tls, UnreachableError);
  t.match(tls.message, /VSPHERE_CA_BUNDLE/);
  t.match(errorFromTransport(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }), 'vc:443').message, 'cannot reach vc:443: ECONNREFUSED');
  t.match(errorFromTransport(Object.assign(new Error('aborted'), { name: 'AbortError' }), 'vc:443').message, 'aborted');
  t.equal(textAt(fault('43-Fault-ManagedObjectNotFound.response.xml'), 'faultcode'), 'ServerFaultCode');
});
