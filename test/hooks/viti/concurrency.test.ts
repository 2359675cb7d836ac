// MAX_CONCURRENT_RECONCILES: a hook replica runs at most that many Machine syncs at once; one that
// finds no slot within RECONCILE_SLOT_WAIT_MS is answered 429 with one line (Metacontroller retries).
import t from 'tap';
import { VITI_API_VERSION } from '../../../src/contracts/crds/common.js';
import { UnreachableError, type DriverRegistry } from '../../../src/contracts/driver.js';
import { RECONCILE_SLOT_WAIT_MS, buildServer } from '../../../src/hooks/server.js';

const cluster = {
  apiVersion: VITI_API_VERSION,
  kind: 'ProxmoxCluster',
  metadata: { name: 'pve', uid: 'c-1' },
  spec: { endpoint: 'https://pve.example.com:8006', credentials: { tokenID: 'a@pve!b', tokenSecret: { secretRef: { name: 's', key: 'k' } } } },
  status: { ready: true },
};

function body(name: string) {
  return {
    controller: {},
    parent: {
      apiVersion: VITI_API_VERSION,
      kind: 'Machine',
      metadata: { name, namespace: 'default', uid: `m-${name}`, generation: 1, labels: { 'cluster.vitistack.io/cluster-name': 'pve' } },
      spec: { template: 'ubuntu' },
    },
    children: {},
    related: { 'ProxmoxCluster.vitistack.io/v1alpha1': { pve: cluster } },
  };
}

t.test('past MAX_CONCURRENT_RECONCILES a Machine sync waits for a slot, then gets 429', async (t) => {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let entered = 0;
  // Every call reaches the registry and then waits: a slow hypervisor.
  const registry: DriverRegistry = {
    driverFor: async () => {
      entered += 1;
      await held;
      throw new UnreachableError('the runtime is slow');
    },
  };
  const app = buildServer({ registry, logger: false, maxConcurrentReconciles: 1, budgetMs: 10_000 });
  t.teardown(() => app.close());
  const first = app.inject({ method: 'POST', url: '/hooks/machine/sync', payload: body('a') });
  await new Promise((resolve) => setTimeout(resolve, 50));
  const started = Date.now();
  const second = await app.inject({ method: 'POST', url: '/hooks/machine/sync', payload: body('b') });
  t.equal(second.statusCode, 429);
  t.match(second.body, /^busy: 1 Machine reconciles in progress \(MAX_CONCURRENT_RECONCILES\); retry later\n?$/);
  t.ok(Date.now() - started >= RECONCILE_SLOT_WAIT_MS - 50, 'it waited for a slot first');
  t.equal(entered, 1, 'the refused call never reached the hypervisor');
  release();
  t.equal((await first).statusCode, 200, 'the one in flight is answered');
  t.equal((await app.inject({ method: 'POST', url: '/hooks/machine/sync', payload: body('c') })).statusCode, 200, 'the slot is free again');
});
