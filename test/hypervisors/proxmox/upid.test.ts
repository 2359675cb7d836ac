import t from 'tap';
import { parseUpid } from '../../../src/hypervisors/proxmox/upid.js';
import { recordedData } from './pve-stub.js';

t.test('a clone UPID names the node, the worker type and the source VMID', async (t) => {
  t.same(parseUpid(recordedData('qemu-clone.upid') as string), {
    node: 'pve1',
    pid: 0x0003a2f1,
    pstart: 0x01c3b2a4,
    starttime: 0x67f0c1a0,
    type: 'qmclone',
    id: '9000',
    user: 'root@pam',
  });
});

t.test('a UPID of a task started with an API token keeps user@realm!token', async (t) => {
  const status = recordedData('task-status.api-token-user') as { upid: string };
  t.match(parseUpid(status.upid), { node: 'pve1', type: 'qmclone', user: 'k8s-operator@pve!capi' });
});

t.test('every recorded UPID parses', async (t) => {
  for (const name of ['qemu-create.upid', 'qemu-start.upid', 'qemu-stop.upid', 'qemu-delete.upid', 'qemu-resize.upid.pve8', 'qemu-snapshot-rollback.upid', 'qemu-start.ha-managed.upid']) {
    t.ok(parseUpid(recordedData(name) as string), name);
  }
});

t.test('a nine-digit pstart and an empty id are valid', async (t) => {
  t.match(parseUpid('UPID:node-2:0000ABCD:123456789:67F0C1A0:srvreload::root@pam:'), { node: 'node-2', pstart: 0x123456789, id: '' });
});

t.test('strings that are not UPIDs do not parse', async (t) => {
  for (const value of ['', 'UPID:pve1', 'UPID:pve1:0003A2F1:01C3B2A4:67F0C1A0:qmclone:9000:root@pam', 'UPID:-bad:0003A2F1:01C3B2A4:67F0C1A0:qmclone:9000:root@pam:', 'sim-1']) {
    t.equal(parseUpid(value), undefined, value);
  }
});
