// A Remote Provider end to end: the Provider hook lays out its runtime (children), a stand-in
// kubelet marks the Deployment available, the hook server reaches the runtime over HTTP with the
// Provider's own derived token, and a VirtualMachine reconciles through it.
import t, { type Test } from 'tap';
import { providerRuntimeToken } from '../../src/contracts/provider-token.js';
import { ProviderRegistry } from '../../src/hypervisors/registry.js';
import { buildProviderRuntime } from '../../src/hypervisors/remote/index.js';
import { SimulatedHypervisor, SimulatorDriver } from '../../src/hypervisors/simulator/index.js';
import { FakeClock } from '../helpers/clock.js';
import { API, lifecycle } from '../helpers/lifecycle.js';

const TOKEN_SECRET = 'hook-server-secret';

async function remoteLifecycle(t: Test, runtimeToken?: (uid: string) => string) {
  const clock = new FakeClock();
  const world = new SimulatedHypervisor({ clock });
  let runtimeURL = '';
  const env = await lifecycle(t, {
    clock,
    registry: () => ProviderRegistry.withSimulators({ enabled: true, maxWorlds: 8, options: { clock } }, { tokenSecret: TOKEN_SECRET, url: () => runtimeURL }),
    runtime: { tokenSecret: TOKEN_SECRET, defaultImage: 'registry.example/virtrigaud:test' },
  });
  const provider = env.cluster.create({
    apiVersion: API,
    kind: 'Provider',
    metadata: { name: 'remote-sim', namespace: 'default' },
    spec: { type: 'simulator', runtime: { mode: 'Remote' } },
  });
  const uid = provider.metadata.uid ?? '';
  const token = runtimeToken ? runtimeToken(uid) : providerRuntimeToken(TOKEN_SECRET, { namespace: 'default', name: 'remote-sim', uid });
  const runtime = buildProviderRuntime({ driver: new SimulatorDriver(world), token, logger: false });
  runtimeURL = await runtime.listen({ port: 0, host: '127.0.0.1' });
  t.teardown(() => runtime.close());
  const stopRuntime = () => runtime.close();

  await env.metacontroller.settle(() => env.cluster.get('apps/v1', 'Deployment', 'default', 'virtrigaud-provider-remote-sim') !== undefined);
  // What the kubelet and the Deployment controller would do once the pod is ready.
  const deployment = env.cluster.get('apps/v1', 'Deployment', 'default', 'virtrigaud-provider-remote-sim');
  env.cluster.updateStatus('apps/v1', 'Deployment', 'default', 'virtrigaud-provider-remote-sim', {
    observedGeneration: deployment?.metadata.generation ?? 1,
    availableReplicas: 1,
  });
  return { ...env, world, uid, stopRuntime };
}

t.test('a Remote Provider becomes Ready through its runtime, and a VM reconciles through it', async (t) => {
  const env = await remoteLifecycle(t);
  const readyProvider = () =>
    (env.get('Provider', 'remote-sim')?.['status'] as { conditions?: { type: string; status: string }[] } | undefined)?.conditions?.some(
      (c) => c.type === 'Ready' && c.status === 'True',
    ) === true;
  await env.metacontroller.settle(readyProvider);
  const secret = env.cluster.get('v1', 'Secret', 'default', 'virtrigaud-provider-remote-sim-token');
  t.equal(
    Buffer.from(String((secret?.['data'] as Record<string, string>)['token']), 'base64').toString(),
    providerRuntimeToken(TOKEN_SECRET, { namespace: 'default', name: 'remote-sim', uid: env.uid }),
    'the runtime mounts the token the hook server uses',
  );
  t.match(env.get('Provider', 'remote-sim')?.['status'], { version: /simulator/, conditions: [{ type: 'Ready' }, { type: 'RuntimeAvailable', status: 'True' }] });

  env.cluster.create({ apiVersion: API, kind: 'VMClass', metadata: { name: 'small', namespace: 'default' }, spec: { cpus: 2, memory: '4Gi' } });
  env.cluster.create({ apiVersion: API, kind: 'VMImage', metadata: { name: 'ubuntu-22', namespace: 'default' }, spec: { source: 'ubuntu-22-template' } });
  env.createVM('web', { providerRef: { name: 'remote-sim' } });
  await env.metacontroller.settle(() => env.isReady() && (env.status()['ips'] as string[]).length > 0);
  t.equal(env.world.listVMs().length, 1, 'the VM lives behind the runtime');
  env.cluster.delete(API, 'VirtualMachine', 'default', 'web');
  await env.metacontroller.settle(() => env.vm() === undefined);
  t.equal(env.world.listVMs().length, 0);
});

t.test('a runtime holding another token refuses the hook server; the Provider says so and its VMs wait', async (t) => {
  const env = await remoteLifecycle(t, () => 'some-other-token');
  await env.metacontroller.settle(() =>
    JSON.stringify(env.get('Provider', 'remote-sim')?.['status'] ?? {}).includes('"reason":"Unauthorized"'),
  );
  t.match(env.get('Provider', 'remote-sim')?.['status'], { conditions: [{ type: 'Ready', status: 'False', reason: 'Unauthorized' }] });
  env.cluster.create({ apiVersion: API, kind: 'VMClass', metadata: { name: 'small', namespace: 'default' }, spec: { cpus: 2, memory: '4Gi' } });
  env.cluster.create({ apiVersion: API, kind: 'VMImage', metadata: { name: 'ubuntu-22', namespace: 'default' }, spec: { source: 'ubuntu-22-template' } });
  env.createVM('web', { providerRef: { name: 'remote-sim' } });
  await env.metacontroller.settle(() => env.condition('Ready')?.reason === 'ProviderNotReady');
  t.equal(env.world.callCount('create'), 0, 'no VM without a working runtime');
  t.equal(env.world.callCount('probe'), 0, 'the runtime never called its driver');
});

t.test('a runtime that goes down shows as not Connected', async (t) => {
  const env = await remoteLifecycle(t);
  await env.metacontroller.settle(() => JSON.stringify(env.get('Provider', 'remote-sim')?.['status'] ?? {}).includes('"reason":"Connected"'));
  await env.stopRuntime();
  await env.metacontroller.advance(61_000);
  await env.metacontroller.settle(() => JSON.stringify(env.get('Provider', 'remote-sim')?.['status'] ?? {}).includes('"reason":"HypervisorUnreachable"'));
  t.match(env.get('Provider', 'remote-sim')?.['status'], { conditions: [{ type: 'Ready', status: 'False', reason: 'HypervisorUnreachable' }] });
});

t.test('a Provider spec change updates its runtime, and deleting the Provider removes it', async (t) => {
  const env = await remoteLifecycle(t);
  const image = () =>
    (env.cluster.get('apps/v1', 'Deployment', 'default', 'virtrigaud-provider-remote-sim')?.['spec'] as { template: { spec: { containers: { image: string }[] } } })
      .template.spec.containers[0]?.image;
  t.equal(image(), 'registry.example/virtrigaud:test');
  env.cluster.patchSpec(API, 'Provider', 'default', 'remote-sim', { runtime: { mode: 'Remote', image: 'registry.example/virtrigaud:next', replicas: 2 } });
  await env.metacontroller.settle(() => image() === 'registry.example/virtrigaud:next');
  t.equal((env.cluster.get('apps/v1', 'Deployment', 'default', 'virtrigaud-provider-remote-sim')?.['spec'] as { replicas: number }).replicas, 2);
  env.cluster.delete(API, 'Provider', 'default', 'remote-sim');
  await env.metacontroller.settle(() => env.get('Provider', 'remote-sim') === undefined);
  for (const [apiVersion, kind, name] of [
    ['apps/v1', 'Deployment', 'virtrigaud-provider-remote-sim'],
    ['v1', 'Service', 'virtrigaud-provider-remote-sim'],
    ['v1', 'ServiceAccount', 'virtrigaud-provider-remote-sim'],
    ['v1', 'Secret', 'virtrigaud-provider-remote-sim-token'],
  ] as const) {
    t.equal(env.cluster.get(apiVersion, kind, 'default', name), undefined, `${kind} removed with the Provider`);
  }
});
