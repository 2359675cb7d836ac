// Tasks that always fail, against the fake PVE: the failure is classified for the hook's back-off
// (retryable unless PVE names the request itself), and no failed attempt leaves a VM behind.

import t from 'tap';
import { basicSpec } from '../../conformance/driver-suite.js';
import { HOUR, MINUTE, fakeCluster, owner } from './fake-pve.js';

const failures = [
  { message: "clone failed: cfs-lock 'storage-local-lvm' error: got lock request timeout", code: 'Busy' },
  { message: "clone failed: storage 'local-lvm' is not online", code: 'HypervisorError' },
  { message: 'clone failed: something nobody has seen before', code: 'HypervisorError' },
  { message: "Linked clone feature is not supported for 'local-lvm:base-9000-disk-0' (scsi0)", code: 'InvalidSpec' },
] as const;

for (const failure of failures) {
  t.test(`a clone that fails for hours with "${failure.message}" is ${failure.code} and leaves nothing behind`, async (t) => {
    const cluster = await fakeCluster(t);
    cluster.fake.injectFault({ kind: 'failTask', type: 'qmclone', message: failure.message, times: 'always' });
    const driver = cluster.driver();
    const web = owner('e1');
    const spec = basicSpec('web', web);
    let attempts = 0;
    for (let elapsed = 0; elapsed < 2 * HOUR; elapsed += 10 * MINUTE, attempts += 1) {
      const created = await driver.create(spec);
      cluster.clock.advance(5000);
      const status = await driver.taskStatus(created.task ?? '');
      t.match(status, { state: 'failed', errorCode: failure.code });
      t.match(status.error, failure.message);
      t.equal(await driver.findByIdentity(web.uid), undefined, 'no VM left by the failed clone');
      cluster.clock.advance(10 * MINUTE);
    }
    t.equal(cluster.calls('POST', /\/clone$/).length, attempts, 'one clone per create call, never more');
    t.equal(cluster.fake.vms().filter((vm) => vm.config['template'] === undefined).length, 0);
  });
}
