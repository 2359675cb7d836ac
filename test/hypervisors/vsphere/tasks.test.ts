import t from 'tap';
import { VsphereClient, vsphereConfigFromEnv } from '../../../src/hypervisors/vsphere/index.js';
import type { ObjectContent } from '../../../src/hypervisors/vsphere/property-collector.js';
import { SnapshotCache } from '../../../src/hypervisors/vsphere/snapshot-cache.js';
import { readTaskInfo, readTasks, statusOf } from '../../../src/hypervisors/vsphere/tasks.js';
import type { VsphereContext } from '../../../src/hypervisors/vsphere/vm.js';
import { child, parseXml, type XmlElement } from '../../../src/hypervisors/vsphere/xml.js';
import { fixture, startFakeVim } from '../../helpers/vcsim.js';

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
    errorCode: 'Busy',
  });
  t.same(statusOf(readTaskInfo(info('derived-TaskInfo-TaskInProgress.response.xml'))), {
    state: 'failed',
    error: 'Another task is already in progress.',
    errorCode: 'Busy',
  });
  t.same(statusOf(readTaskInfo(info('derived-TaskInfo-CannotAccessFile.response.xml'))), {
    state: 'failed',
    error: 'Unable to access file [LocalDS_0] ubuntu-22-template/ubuntu-22-template.vmdk',
    errorCode: 'HypervisorError',
  }, 'a fault outside the table fails the task as retryable');
});

t.test('one forgotten task among several does not hide the others: they are read one by one', async (t) => {
  const fake = await startFakeVim(t, (request) => {
    if (request.method !== 'RetrievePropertiesEx') return undefined;
    // vSphere fails the whole read with ManagedObjectNotFound when one of its objects is gone.
    if (request.body.includes('task-99')) return { status: 500, fixture: '43-Fault-ManagedObjectNotFound.response.xml' };
    return { fixture: '26-RetrievePropertiesEx-TaskInfo-Error.response.xml' };
  });
  const config = vsphereConfigFromEnv({ VSPHERE_ENDPOINT: fake.url, VSPHERE_USERNAME: 'u', VSPHERE_PASSWORD: 'p' });
  const client = new VsphereClient(config);
  t.teardown(() => client.close());
  const ctx: VsphereContext = { client, config, vmList: new SnapshotCache<ObjectContent[]>(async () => []), names: new Map() };
  const infos = await readTasks(ctx, [{ type: 'Task', value: 'task-45' }, { type: 'Task', value: 'task-99' }]);
  t.same([...infos.keys()], ['task-45']);
  t.equal(fake.requests.filter((request) => request.method === 'RetrievePropertiesEx').length, 3, 'the pair, then each task');
});
