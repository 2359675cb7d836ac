import t from 'tap';
import { HypervisorError, UnreachableError } from '../../../src/contracts/driver.js';
import { codeOfFault, errorFromFault, errorFromTransport, faultTypeOf, readSoapFault, readTaskError } from '../../../src/hypervisors/vsphere/errors.js';
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
  t.equal(errorFromFault(read).code, 'Busy');
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

t.test('faults outside the table are HypervisorError: retried, never the user\'s mistake', async (t) => {
  for (const type of ['SystemError', 'RuntimeFault', 'Timedout', 'HostConnectFault', 'CannotAccessFile', 'CannotAccessVmDisk', 'InaccessibleDatastore', 'InvalidRequest', 'SomeFaultOfANewerApi', undefined]) {
    t.equal(codeOfFault(type), 'HypervisorError', String(type));
  }
  const soap = errorFromFault(readSoapFault(fault('derived-Fault-SystemError.response.xml')));
  t.type(soap, HypervisorError);
  t.equal(soap.retryable, true);
  t.equal(soap.message, 'A general system error occurred: Connection timed out');
  const task = errorFromFault(readTaskError(taskError('derived-TaskInfo-CannotAccessFile.response.xml')), 'clone of ubuntu-22-template');
  t.match(task, { code: 'HypervisorError', retryable: true, message: 'clone of ubuntu-22-template: Unable to access file [LocalDS_0] ubuntu-22-template/ubuntu-22-template.vmdk' });
});

t.test('InvalidSpec only for faults that say the request itself is wrong', async (t) => {
  const table: string[] = [
    'InvalidArgument',
    'InvalidName',
    'InvalidDatastorePath',
    'InvalidProperty',
    'InvalidVmConfig',
    'VmConfigFault',
    'InvalidDeviceSpec',
    'InvalidDeviceBacking',
    'InvalidController',
    'MissingController',
    'DeviceUnsupportedForVmVersion',
    'InvalidDiskFormat',
    'NotFound',
    // "No capacity" is InvalidSpec by the Driver contract.
    'InsufficientResourcesFault',
    'NoDiskSpace',
  ];
  for (const type of table) t.equal(codeOfFault(type), 'InvalidSpec', type);
});

t.test('Conflict only for "exists and is not ours" or a name taken; states a retry can outlast are Busy', async (t) => {
  for (const type of ['DuplicateName', 'FileAlreadyExists', 'AlreadyExists']) t.equal(codeOfFault(type), 'Conflict', type);
  for (const type of ['InvalidState', 'InvalidPowerState', 'InvalidHostState', 'TaskInProgress', 'ToolsUnavailable', 'ConcurrentAccess', 'ResourceInUse', 'FileLocked']) {
    t.equal(codeOfFault(type), 'Busy', type);
  }
  const template = errorFromFault(readSoapFault(fault('capture-Fault-InvalidState-PowerOnTemplate.response.xml')));
  t.match(template, { code: 'Busy', retryable: true, message: 'cannot powerOn a template' });
  const running = errorFromFault(readSoapFault(fault('capture-Fault-InvalidPowerState-MarkAsTemplate.response.xml')));
  t.match(running, { code: 'Busy', message: 'vSphere fault InvalidPowerState: the VM is poweredOn' });
  t.equal(faultTypeOf(running), 'InvalidPowerState', 'the driver itself can still tell the fault');
  t.equal(faultTypeOf(new Error('x')), undefined);
});

t.test('fault types the driver branches on', async (t) => {
  t.equal(codeOfFault('NoPermission'), 'Unauthorized');
  t.equal(codeOfFault('NotSupported'), 'Unsupported');
  t.equal(codeOfFault('MethodNotFound'), 'Unsupported');
  t.equal(codeOfFault('HostNotConnected'), 'Unreachable');
  t.equal(codeOfFault('ManagedObjectNotFound'), 'NotFound');
});

t.test('transport failures are Unreachable, TLS ones with advice', async (t) => {
  const tls = errorFromTransport(Object.assign(new Error('self-signed'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' }), 'vc:443');
  t.type(tls, UnreachableError);
  t.match(tls.message, /VSPHERE_CA_BUNDLE/);
  t.match(errorFromTransport(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }), 'vc:443').message, 'cannot reach vc:443: ECONNREFUSED');
  t.match(errorFromTransport(Object.assign(new Error('aborted'), { name: 'AbortError' }), 'vc:443').message, 'aborted');
  t.equal(textAt(fault('43-Fault-ManagedObjectNotFound.response.xml'), 'faultcode'), 'ServerFaultCode');
});
