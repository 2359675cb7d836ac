// A whole system for lifecycle tests: the real hook server on loopback, the simulator behind it,
// the generated CRDs enforced by an in-memory API server, and the Metacontroller stand-in wired
// with the generated CompositeControllers. One fake clock drives all of them.
import { readdirSync, readFileSync } from 'node:fs';
import { parse } from 'yaml';
import type { Test } from 'tap';
import { FakeCluster, MetacontrollerStandIn, type KubeObject, type ObjectValidator, type StatusPruner } from '../harness/index.js';
import type { DriverRegistry } from '../../src/contracts/driver.js';
import type { RuntimeSettings } from '../../src/hooks/provider-runtime.js';
import type { VitiSettings } from '../../src/hooks/viti/cluster.js';
import type { ProviderRegistry } from '../../src/hypervisors/registry.js';
import type { SimulatorOptions } from '../../src/hypervisors/simulator/index.js';
import { FakeClock } from './clock.js';
import { loadCrdValidators } from './crd-validator.js';
import { testServer } from './server.js';

export const API = 'infra.virtrigaud.io/v1beta1';
const MANIFESTS = new URL('../../manifests/', import.meta.url);

function yamlDir(dir: string): object[] {
  const url = new URL(`${dir}/`, MANIFESTS);
  return readdirSync(url)
    .filter((name) => name.endsWith('.yaml'))
    .sort()
    .map((name) => parse(readFileSync(new URL(name, url), 'utf8')) as object);
}

export interface Conditionish {
  type: string;
  status: string;
  reason: string;
  message: string;
}

export async function lifecycle(
  t: Test,
  options: {
    simulator?: SimulatorOptions;
    keyStyle?: 'v1' | 'v2';
    registry?: (simulator: ProviderRegistry) => DriverRegistry;
    clock?: FakeClock;
    runtime?: RuntimeSettings;
    /** The hook's budget for driver calls; real peers get the production default (7 s). */
    budgetMs?: number;
    viti?: VitiSettings;
  } = {},
) {
  const clock = options.clock ?? new FakeClock();
  const { app, world, logs } = testServer({
    clock,
    ...(options.simulator ? { simulator: options.simulator } : {}),
    ...(options.registry ? { registry: options.registry } : {}),
    ...(options.runtime ? { runtime: options.runtime } : {}),
    ...(options.budgetMs !== undefined ? { budgetMs: options.budgetMs } : {}),
    ...(options.viti !== undefined ? { viti: options.viti } : {}),
  });
  const baseUrl = await app.listen({ port: 0, host: '127.0.0.1' });
  const validators = new Map<string, ObjectValidator>();
  const pruners = new Map<string, StatusPruner>();
  for (const [kind, validator] of loadCrdValidators(new URL('crds', MANIFESTS).pathname)) {
    validators.set(kind, (object, old) => validator.validate(object, old).map((issue) => `${issue.path}: ${issue.message}`));
    pruners.set(kind, (object) => validator.prune(object) as KubeObject);
  }
  const cluster = new FakeCluster({ clock, validators, pruners });
  const metacontroller = new MetacontrollerStandIn({
    cluster,
    clock,
    baseUrl,
    controllers: yamlDir('metacontroller'),
    crds: yamlDir('crds'),
    keyStyle: options.keyStyle ?? 'v2',
  });
  t.teardown(async () => {
    metacontroller.stop();
    await app.close();
  });

  const get = (kind: string, name: string, namespace = 'default') => cluster.get(API, kind, namespace, name);
  const vm = (name = 'web') => get('VirtualMachine', name);
  const status = (name = 'web') => (vm(name)?.['status'] ?? {}) as Record<string, unknown> & { conditions?: Conditionish[] };
  const condition = (type: string, name = 'web') => status(name).conditions?.find((c) => c.type === type);
  const isReady = (name = 'web') => condition('Ready', name)?.status === 'True';

  return {
    app,
    clock,
    world,
    logs,
    cluster,
    metacontroller,
    get,
    vm,
    status,
    condition,
    isReady,
    /** A Provider, a VMClass and a VMImage, all Ready, for VirtualMachines to use. */
    async basics(
      vmClass: Record<string, unknown> = { cpus: 2, memory: '4Gi' },
      provider: Record<string, unknown> = { type: 'simulator' },
      image: Record<string, unknown> = { source: 'ubuntu-22-template' },
    ) {
      cluster.create({ apiVersion: API, kind: 'Provider', metadata: { name: 'sim', namespace: 'default' }, spec: provider });
      cluster.create({ apiVersion: API, kind: 'VMClass', metadata: { name: 'small', namespace: 'default' }, spec: vmClass });
      cluster.create({ apiVersion: API, kind: 'VMImage', metadata: { name: 'ubuntu-22', namespace: 'default' }, spec: image });
      await metacontroller.settle(() =>
        ['Provider/sim', 'VMClass/small', 'VMImage/ubuntu-22'].every((ref) => {
          const [kind = '', name = ''] = ref.split('/');
          const conditions = (get(kind, name)?.['status'] as { conditions?: Conditionish[] } | undefined)?.conditions;
          return conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
        }),
      );
    },
    createVM(name: string, spec: Record<string, unknown> = {}, labels?: Record<string, string>) {
      return cluster.create({
        apiVersion: API,
        kind: 'VirtualMachine',
        metadata: labels ? { name, namespace: 'default', labels } : { name, namespace: 'default' },
        spec: {
          providerRef: { name: 'sim' },
          classRef: { name: 'small' },
          imageRef: { name: 'ubuntu-22' },
          networks: [{ name: 'lan' }],
          disks: [{ name: 'root', size: '40Gi' }],
          ...spec,
        },
      });
    },
    patchVM(name: string, patch: Record<string, unknown>) {
      return cluster.patchSpec(API, 'VirtualMachine', 'default', name, patch);
    },
  };
}
