import t from 'tap';
import { readTaskInfo, statusOf } from '../../../src/hypervisors/vsphere/tasks.js';
import { child, parseXml, type XmlElement } from '../../../src/hypervisors/vsphere/xml.js';
import { fixture } from '../../helpers/vcsim.js';

function info(name: string): XmlElement | undefined {
  const body = child(parseXml(fixture(name)), 'Body')?.children[0];
  return child(child(child(child(body, 'returnval'), 'objects'), 'propSet'), 'val');
}

t.test('a queued task is queued, without progress', async (t) => {
  t.same(statusOf(readTaskInfo(info('derived-TaskInfo-queued.response.xml'))), { state: 'queued' });
});

t.test('a running task reports its progress and no result yet', async (t) => {
  const read = readTaskInfo(info('derived-TaskInfo-running.response.xml'));
  t.equal(read.result, undefined);
  t.same(statusOf(read), { state: 'running', progress: 42 });
});

t.test('a finished clone succeeded and names the new VM', async (t) => {
  const read = readTaskInfo(info('17-RetrievePropertiesEx-TaskInfo-Clone.response.xml'));
  t.same(read.result, { type: 'VirtualMachine', value: 'vm-43' });
  t.same(read.entity, { type: 'VirtualMachine', value: 'vm-36' });
  t.equal(read.descriptionId, 'VirtualMachine.cloneVm');
  t.same(statusOf(read), { state: 'succeeded', progress: 100 });
});

t.test('a failed task carries a safe message and the typed error code', async (t) => {
  t.same(statusOf(readTaskInfo(info('26-RetrievePropertiesEx-TaskInfo-Error.response.xml'))), {
    state: 'failed',
    error: 'vSphere fault InvalidPowerState: the VM is poweredOn',
    errorCode: 'Conflict',
  });
  t.same(statusOf(readTaskInfo(info('derived-TaskInfo-TaskInProgress.response.xml'))), {
    state: 'failed',
    error: 'Another task is already in progress.',
    errorCode: 'Busy',
  });
});
