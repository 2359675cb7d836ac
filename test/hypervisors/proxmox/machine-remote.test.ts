// The Machine fields over the remote-provider API: a RemoteDriver → provider runtime (real HTTP,
// TypeBox-validated both ways) → ProxmoxDriver → fake PVE. The same CreateSpec arrives, the same
// settings come back, the same typed errors reach the caller.

import t from 'tap';
import type { CreateSpec, Driver } from '../../../src/contracts/driver.js';
import { GiB } from '../../../src/contracts/quantity.js';
import { proxmoxConfigFromEnv } from '../../../src/hypervisors/proxmox/config.js';
import { ProxmoxDriver } from '../../../src/hypervisors/proxmox/driver.js';
import { RemoteDriver } from '../../../src/hypervisors/remote/index.js';
import { FakePve } from '../../fakes/proxmox/index.js';
import { basicSpec } from '../../conformance/driver-suite.js';
import { TOKEN, startRuntime } from '../remote/helpers.js';
import { TOKEN_ENV, owner } from './fake-pve.js';

async function settled(driver: Driver, task: string | undefined): Promise<void> {
  for (let step = 0; task !== undefined && step < 500; step += 1) {
    const status = await driver.taskStatus(task);
    if (status.state === 'failed') throw new Error(`task failed: ${status.error ?? ''}`);
    if (status.state === 'succeeded') return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  if (task !== undefined) throw new Error('task did not end');
}

t.test('a blank Machine with settings, a chosen VMID and a disk layout is made through a provider runtime', async (t) => {
  const fake = await FakePve.start({ taskDurationMs: 40, bootMs: 80 });
  t.teardown(() => fake.close());
  const pve = new ProxmoxDriver(proxmoxConfigFromEnv({ PVE_ENDPOINT: fake.url, ...TOKEN_ENV }));
  t.teardown(() => pve.close());
  const runtime = await startRuntime({ driver: () => pve });
  t.teardown(() => runtime.close());
  const driver = await RemoteDriver.connect(runtime.url, TOKEN);
  t.teardown(() => driver.close());

  for (const capability of ['cpuTopology', 'diskLayout', 'osType', 'bootOrder', 'memoryBalloon', 'deletionProtection', 'guestAgent', 'explicitId', 'blankVM'] as const) {
    t.equal(driver.capabilities[capability], true, capability);
  }
  const who = owner('e1');
  const settings = { cpuTopology: { sockets: 2, cores: 1 }, osType: 'linux' as const, bootOrder: ['disk' as const, 'network' as const], guestAgent: true, balloon: false, protection: true };
  const spec: CreateSpec = basicSpec('remote', who, {
    image: { kind: 'blank' },
    requestedId: 6100,
    disks: [{ name: 'root', sizeBytes: 4 * GiB, root: true, bus: 'sata', cache: 'writethrough', datastore: 'local-lvm', format: 'raw' }],
    settings,
  });
  for (let step = 0; step < 5; step += 1) {
    const created = await driver.create(spec);
    t.equal(created.id, '6100');
    await settled(driver, created.task);
    const vm = await driver.describe(created.id);
    if (!vm.incomplete && vm.lock === undefined) break;
  }
  const vm = await driver.describe('6100');
  t.same(vm.settings, settings, 'every setting comes back over HTTP');
  t.match(vm.disks, [{ name: 'root', bus: 'sata', cache: 'writethrough', datastore: 'local-lvm', sizeBytes: 4 * GiB }]);
  t.match(fake.vm(6100)?.config, { sata0: /^local-lvm:vm-6100-disk-0,cache=writethrough,size=4G$/, sockets: 2, cores: 1, balloon: 0, protection: 1 });

  await t.rejects(driver.create({ ...spec, owner: owner('e2') }), { code: 'Conflict', message: 'VM 6100 already exists' });
  await t.rejects(driver.delete({ id: '6100', owner: who }), { code: 'Conflict', message: /deletion protection on/ });
  t.ok(fake.vm(6100));
});
