// CPU shares against the fake PVE (schema-checked): `cpuunits`, set at creation, within the
// weight range cgroup v2 enforces.

import t from 'tap';
import { basicSpec } from '../../conformance/driver-suite.js';
import { createVM, fakeCluster, owner } from './fake-pve.js';

t.test('CPU shares become cpuunits at creation, and the VM starts with them', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const web = owner('c1');
  const id = await createVM(cluster, driver, basicSpec('web', web, { limits: { cpuShares: 10_000 } }));
  t.equal(cluster.fake.vm(Number(id))?.config['cpuunits'], 10_000);
  await cluster.finish(driver, (await driver.power({ id, owner: web }, 'on')).task, 'start');
  t.equal(cluster.fake.vm(Number(id))?.status, 'running');
});

t.test('without CPU shares the clone keeps the default weight', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const id = await createVM(cluster, driver, basicSpec('web', owner('c2')));
  t.equal(cluster.fake.vm(Number(id))?.config['cpuunits'], undefined);
  t.equal(cluster.calls('POST', /\/config$/).filter((request) => request.params['cpuunits'] !== undefined).length, 0);
});

t.test('CPU shares above 10000 are refused naming the range, before any call', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  await t.rejects(driver.create(basicSpec('web', owner('c3'), { limits: { cpuShares: 262_144 } })), {
    code: 'InvalidSpec',
    message: 'cpuShares must be an integer from 1 to 10000 on Proxmox VE (cpuunits under cgroup v2), not 262144',
  });
  t.equal(cluster.calls().length, 0);
});
