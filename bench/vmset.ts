// A VMSet of 100 replicas on the simulator, from apply to every VM Ready, through the whole system
// (the Metacontroller stand-in, the real hook server on loopback, the CRD-validating fake API
// server, one fake clock): wall time, fake time and hook calls per VM. Then a rolling class change
// in place across all of them (maxUnavailable 10%).
//
//   npm run bench:vmset            (REPLICAS=100 by default)
import type { Test } from 'tap';
import { API, lifecycle } from '../test/helpers/lifecycle.js';

const REPLICAS = Number(process.env['REPLICAS'] ?? 100);

async function main(): Promise<void> {
  const teardowns: (() => unknown)[] = [];
  const fakeTest = { teardown: (fn: () => unknown) => teardowns.push(fn) } as unknown as Test;
  const env = await lifecycle(fakeTest);
  // The simulator's two hosts have 128 GiB each: 1 GiB VMs, 2 GiB after the class change.
  await env.basics({ cpus: 1, memory: '1Gi' });
  env.cluster.create({ apiVersion: API, kind: 'VMClass', metadata: { name: 'large', namespace: 'default' }, spec: { cpus: 2, memory: '2Gi' } });
  const template = (classRef: string) => ({
    metadata: { labels: { app: 'web' } },
    spec: {
      providerRef: { name: 'sim' },
      classRef: { name: classRef },
      imageRef: { name: 'ubuntu-22' },
      networks: [{ name: 'lan' }],
      disks: [{ name: 'root', size: '40Gi' }],
      lifecycle: { powerCyclePolicy: 'Automatic' },
    },
  });
  const status = () => (env.get('VMSet', 'web')?.['status'] ?? {}) as Record<string, unknown>;
  const allReady = () => status()['availableReplicas'] === REPLICAS && status()['updatedReplicas'] === REPLICAS && env.world.listVMs().length === REPLICAS;

  const phase = async (name: string, start: () => void) => {
    const calls = env.metacontroller.calls.length;
    const fakeStart = env.clock.now();
    const wall = performance.now();
    start();
    await env.metacontroller.settle(allReady, { maxSyncs: 200 * REPLICAS, maxFakeMs: 24 * 3600_000 });
    const hookCalls = env.metacontroller.calls.length - calls;
    console.log(
      `${name}: ${REPLICAS} VMs in ${((performance.now() - wall) / 1000).toFixed(1)} s wall, ` +
        `${((env.clock.now() - fakeStart) / 1000).toFixed(0)} s fake time, ${hookCalls} hook calls (${(hookCalls / REPLICAS).toFixed(1)} per VM)`,
    );
  };
  await phase('apply → all Ready', () =>
    env.cluster.create({ apiVersion: API, kind: 'VMSet', metadata: { name: 'web', namespace: 'default' }, spec: { replicas: REPLICAS, selector: { matchLabels: { app: 'web' } }, template: template('small') } }),
  );
  await phase('class change rolled out in place (maxUnavailable 10%)', () =>
    env.cluster.patchSpec(API, 'VMSet', 'default', 'web', { template: template('large'), updateStrategy: { rollingUpdate: { maxUnavailable: '10%', maxSurge: 0 } } }),
  );
  for (const teardown of teardowns.reverse()) await teardown();
}

await main();
