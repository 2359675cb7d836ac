// VMSet through the whole system (simulator): scaling through the scale subresource's fields,
// rolling updates in place and by replacement within maxUnavailable/maxSurge (checked after every
// single sync), a VM that cannot be created halting the rollout, lost create answers.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { parse } from 'yaml';
import { REVISION_LABEL } from '../../src/hooks/vmset.js';
import { API, lifecycle, type Conditionish } from '../helpers/lifecycle.js';
import { proxmoxSystem } from '../helpers/proxmox-lifecycle.js';

type Env = Awaited<ReturnType<typeof lifecycle>>;
type Json = Record<string, unknown>;

const CRD = parse(readFileSync(new URL('../../manifests/crds/vmsets.infra.virtrigaud.io.yaml', import.meta.url), 'utf8')) as {
  spec: { versions: { subresources: { scale: { specReplicasPath: string; statusReplicasPath: string; labelSelectorPath: string } } }[] };
};
const SCALE = CRD.spec.versions[0]?.subresources.scale;

function vmTemplate(extra: Json = {}): Json {
  return {
    providerRef: { name: 'sim' },
    classRef: { name: 'small' },
    imageRef: { name: 'ubuntu-22' },
    networks: [{ name: 'lan' }],
    disks: [{ name: 'root', size: '40Gi' }],
    ...extra,
  };
}

function createSet(env: Env, spec: Json): void {
  env.cluster.create({
    apiVersion: API,
    kind: 'VMSet',
    metadata: { name: 'web', namespace: 'default' },
    spec: { selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: vmTemplate() }, ...spec },
  });
}

const setStatus = (env: Env) => (env.get('VMSet', 'web')?.['status'] ?? {}) as Json & { conditions?: Conditionish[] };
const setCondition = (env: Env, type: string) => setStatus(env).conditions?.find((condition) => condition.type === type);
/** The set's VirtualMachine objects (being deleted included). */
const members = (env: Env) =>
  env.cluster.list(API, 'VirtualMachine').filter((vm) => vm.metadata.name.startsWith('web-')) as (Json & { metadata: { name: string; labels?: Record<string, string>; generation?: number; deletionTimestamp?: string } })[];
const readyAtGeneration = (vm: Json & { metadata: { generation?: number } }) => {
  const ready = ((vm['status'] as Json | undefined)?.['conditions'] as Conditionish[] | undefined)?.find((condition) => condition.type === 'Ready') as
    | (Conditionish & { observedGeneration?: number })
    | undefined;
  return ready?.status === 'True' && (ready.observedGeneration === undefined || ready.observedGeneration === vm.metadata.generation);
};
const settled = (env: Env, replicas: number) => () =>
  setCondition(env, 'Ready')?.status === 'True' && setStatus(env)['availableReplicas'] === replicas && env.world.listVMs().length === replicas;

/** What `kubectl scale` does: writes the replica count at the scale subresource's spec path. */
function scale(env: Env, replicas: number): void {
  const path = SCALE?.specReplicasPath.split('.').filter(Boolean) ?? [];
  if (path.join('.') !== 'spec.replicas') throw new Error(`unexpected specReplicasPath ${SCALE?.specReplicasPath}`);
  env.cluster.patchSpec(API, 'VMSet', 'default', 'web', { replicas });
}

t.test('the scale subresource points at spec.replicas, status.replicas and status.selector', async (t) => {
  t.same(SCALE, { specReplicasPath: '.spec.replicas', statusReplicasPath: '.status.replicas', labelSelectorPath: '.status.selector' });
});

t.test('scales 0 → 3 → 5 → 2 → 0, names VMs <set>-<ordinal> and removes the newest first', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  createSet(env, { replicas: 0 });
  await env.metacontroller.settle(() => setCondition(env, 'Ready')?.status === 'True');
  t.equal(env.world.listVMs().length, 0);
  for (const replicas of [3, 5, 2, 0]) {
    scale(env, replicas);
    await env.metacontroller.settle(settled(env, replicas), { maxSyncs: 3000 });
    t.equal(setStatus(env)['replicas'], replicas, `status.replicas ${replicas}`);
    t.same(
      members(env).map((vm) => vm.metadata.name).sort(),
      Array.from({ length: replicas }, (_, i) => `web-${i}`),
      `${replicas}: the lowest ordinals stay`,
    );
    if (replicas === 2) {
      const version = env.get('VMSet', 'web')?.metadata.resourceVersion;
      const creates = env.world.callCount('create') + env.world.callCount('delete');
      await env.metacontroller.advance(30 * 60_000);
      t.equal(env.get('VMSet', 'web')?.metadata.resourceVersion, version, 'settled: the same status for 30 minutes of syncs');
      t.equal(env.world.callCount('create') + env.world.callCount('delete'), creates, 'and nothing created or deleted');
    }
  }
  t.equal(setStatus(env)['selector'], 'app=web');
  t.equal(env.world.listVMs().length, 0, 'every hypervisor VM deleted');
});

t.test('a class change rolls through 5 VMs in place, never more than one unready (maxUnavailable 1)', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.cluster.create({ apiVersion: API, kind: 'VMClass', metadata: { name: 'large', namespace: 'default' }, spec: { cpus: 4, memory: '8Gi' } });
  const template = (classRef: string) => ({ metadata: { labels: { app: 'web' } }, spec: vmTemplate({ classRef: { name: classRef }, lifecycle: { powerCyclePolicy: 'Automatic' } }) });
  createSet(env, { replicas: 5, template: template('small'), updateStrategy: { rollingUpdate: { maxUnavailable: 1, maxSurge: 0 } } });
  await env.metacontroller.settle(settled(env, 5), { maxSyncs: 3000 });
  const firstRevision = setStatus(env)['updateRevision'];
  const ids = env.world.listVMs().map((vm) => vm.id).sort();

  let worst = 0;
  env.metacontroller.afterEachSync = () => {
    worst = Math.max(worst, members(env).filter((vm) => !readyAtGeneration(vm)).length);
  };
  env.cluster.patchSpec(API, 'VMSet', 'default', 'web', { template: template('large') });
  await env.metacontroller.settle(() => settled(env, 5)() && setStatus(env)['updatedReplicas'] === 5, { maxSyncs: 5000 });
  env.metacontroller.afterEachSync = undefined;
  t.equal(worst, 1, 'at most one VM unready at any sync');
  t.same(env.world.listVMs().map((vm) => vm.cpus), [4, 4, 4, 4, 4], 'every VM has the new class');
  t.same(env.world.listVMs().map((vm) => vm.id).sort(), ids, 'the same VMs, changed in place');
  t.not(setStatus(env)['updateRevision'], firstRevision, 'a new revision');
  t.equal(setStatus(env)['currentRevision'], setStatus(env)['updateRevision'], 'and it is current once rolled out');
  t.ok(members(env).every((vm) => vm.metadata.labels?.[REVISION_LABEL] === setStatus(env)['updateRevision']));
});

t.test('an image change replaces VMs with maxSurge 1, maxUnavailable 0: never fewer than 5 Ready, never more than 6 VMs', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.cluster.create({ apiVersion: API, kind: 'VMImage', metadata: { name: 'debian-12', namespace: 'default' }, spec: { source: 'debian-12' } });
  createSet(env, { replicas: 5, updateStrategy: { rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } } });
  await env.metacontroller.settle(settled(env, 5), { maxSyncs: 3000 });
  const oldIds = new Set(env.world.listVMs().map((vm) => vm.id));

  let fewestReady = Infinity;
  let mostOnHypervisor = 0;
  env.metacontroller.afterEachSync = () => {
    fewestReady = Math.min(fewestReady, members(env).filter((vm) => vm.metadata.deletionTimestamp === undefined && readyAtGeneration(vm)).length);
    mostOnHypervisor = Math.max(mostOnHypervisor, env.world.listVMs().length);
  };
  env.cluster.patchSpec(API, 'VMSet', 'default', 'web', { template: { metadata: { labels: { app: 'web' } }, spec: vmTemplate({ imageRef: { name: 'debian-12' } }) } });
  await env.metacontroller.settle(() => settled(env, 5)() && setStatus(env)['updatedReplicas'] === 5, { maxSyncs: 8000 });
  env.metacontroller.afterEachSync = undefined;
  t.equal(fewestReady, 5, 'never fewer than 5 Ready VMs');
  t.equal(mostOnHypervisor, 6, 'never more than 6 VMs on the hypervisor');
  t.ok(env.world.listVMs().every((vm) => !oldIds.has(vm.id)), 'every VM replaced');
  t.equal(members(env).length, 5, 'the replaced VMs are gone');
});

t.test('a VM that cannot be created halts the rollout with ReplicaFailure; clearing the fault resumes it', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  createSet(env, { replicas: 2 });
  await env.metacontroller.settle(settled(env, 2), { maxSyncs: 2000 });
  env.world.injectFault('create', { kind: 'taskFailure', times: Infinity, message: 'datastore full' });
  scale(env, 4);
  await env.metacontroller.settle(() => setCondition(env, 'ReplicaFailure')?.status === 'True', { maxSyncs: 2000 });
  t.match(setCondition(env, 'ReplicaFailure')?.message, /VirtualMachine web-[23]: .*datastore full/);
  t.equal(setCondition(env, 'Ready')?.status, 'False');
  await env.metacontroller.advance(3 * 60 * 60_000);
  t.equal(env.world.listVMs().length, 2, 'no VM created while the fault lasts');
  t.equal(members(env).length, 4, 'no VMs beyond replicas either');
  env.world.clearFaults();
  await env.metacontroller.settle(settled(env, 4), { maxSyncs: 3000 });
  t.equal(setCondition(env, 'ReplicaFailure')?.status, 'False');
});

t.test('lost create answers during a scale-up make no extra VMs', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.world.injectFault('create', { kind: 'lostResponse', times: 6 });
  createSet(env, { replicas: 6 });
  await env.metacontroller.settle(settled(env, 6), { maxSyncs: 4000 });
  t.equal(env.world.listVMs().length, 6);
  t.equal(new Set(env.world.listVMs().map((vm) => vm.owner?.uid)).size, 6, 'one VM per VirtualMachine');
});

t.test('OrderedReady creates one VM at a time, each once the others are Ready', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  let mostUnready = 0;
  env.metacontroller.afterEachSync = () => {
    mostUnready = Math.max(mostUnready, members(env).filter((vm) => !readyAtGeneration(vm)).length);
  };
  createSet(env, { replicas: 3, updateStrategy: { rollingUpdate: { podManagementPolicy: 'OrderedReady' } } });
  await env.metacontroller.settle(settled(env, 3), { maxSyncs: 3000 });
  env.metacontroller.afterEachSync = undefined;
  t.equal(mostUnready, 1);
});

t.test('partition keeps the lower ordinals at their revision; OnDelete updates only new VMs', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  createSet(env, { replicas: 4, updateStrategy: { rollingUpdate: { partition: 2 } } });
  await env.metacontroller.settle(settled(env, 4), { maxSyncs: 3000 });
  const before = setStatus(env)['updateRevision'];
  env.cluster.patchSpec(API, 'VMSet', 'default', 'web', { template: { metadata: { labels: { app: 'web', tier: 'canary' } }, spec: vmTemplate() } });
  await env.metacontroller.settle(() => setStatus(env)['updatedReplicas'] === 2 && setCondition(env, 'Progressing')?.reason === 'NewRevisionAvailable', { maxSyncs: 3000 });
  const revisionOf = (name: string) => members(env).find((vm) => vm.metadata.name === name)?.metadata.labels?.[REVISION_LABEL];
  t.equal(revisionOf('web-0'), before);
  t.equal(revisionOf('web-1'), before);
  t.equal(revisionOf('web-2'), setStatus(env)['updateRevision']);
  t.equal(revisionOf('web-3'), setStatus(env)['updateRevision']);
  t.equal(members(env).find((vm) => vm.metadata.name === 'web-3')?.metadata.labels?.['tier'], 'canary', 'labels roll out in place');
});

t.test('fields a set of VMs cannot back are Unsupported and change nothing', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  createSet(env, { replicas: 2, volumeClaimTemplates: [{ metadata: { name: 'data' }, spec: { accessModes: ['ReadWriteOnce'] } }] });
  await env.metacontroller.settle(() => setCondition(env, 'Ready')?.reason === 'Unsupported');
  t.match(setCondition(env, 'Ready')?.message, 'spec.volumeClaimTemplates');
  t.equal(members(env).length, 0);
});

t.test('template labels that do not match the selector are refused', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  createSet(env, { replicas: 1, selector: { matchLabels: { app: 'db' } } });
  await env.metacontroller.settle(() => setCondition(env, 'Ready')?.reason === 'InvalidSpec');
  t.match(setCondition(env, 'Ready')?.message, 'spec.selector.matchLabels app=db');
  t.equal(members(env).length, 0);
});

t.test('on the Proxmox driver against the fake PVE: 2 VMs, scaled to 3, then the set deleted with them', async (t) => {
  const env = await proxmoxSystem(t);
  const { pve, ours } = env;
  await env.basics({ cpus: 2, memory: '2Gi' }, { type: 'proxmox', endpoint: pve.url, runtime: { mode: 'InProcess' } });
  createSet(env, { replicas: 2 });
  const ready = (replicas: number) => () => setCondition(env, 'Ready')?.status === 'True' && setStatus(env)['availableReplicas'] === replicas && ours().length === replicas;
  await env.metacontroller.settle(ready(2), { maxSyncs: 2000 });
  scale(env, 3);
  await env.metacontroller.settle(ready(3), { maxSyncs: 2000 });
  t.same(ours().map((vm) => vm.name).sort(), ['web-0', 'web-1', 'web-2']);
  env.cluster.delete(API, 'VMSet', 'default', 'web');
  await env.metacontroller.settle(() => members(env).length === 0, { maxSyncs: 2000 });
  t.same(ours(), [], 'every VM deleted on PVE');
  t.ok(pve.vm(9000), 'the template is untouched');
});
