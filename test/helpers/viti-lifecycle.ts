// The Viti API end to end against the schema-validating fake PVE: the real hook server, the
// generated CRDs and controllers (Machine, ProxmoxCluster, ProxmoxNode), and a ProxmoxCluster whose
// runtime is the Proxmox driver in this process (production runs it in the cluster's Deployment).
import type { Test } from 'tap';
import { VITI_API_VERSION } from '../../src/contracts/crds/common.js';
import type { Driver } from '../../src/contracts/driver.js';
import { proxmoxConfigFromEnv, ProxmoxDriver } from '../../src/hypervisors/proxmox/index.js';
import { FakePve, type FakePveOptions } from '../fakes/proxmox/index.js';
import { FakeClock } from './clock.js';
import { lifecycle, type Conditionish } from './lifecycle.js';
import { PVE_TOKEN } from './proxmox-lifecycle.js';

export const VITI = VITI_API_VERSION;
export const OPERATOR_NAMESPACE = 'pve-operator';
const RUNTIME = 'virtrigaud-provider-proxmoxcluster-pve';

export interface VitiSystemOptions extends FakePveOptions {
  /** Drivers for the cluster's runtime: one per "replica"; each call goes to the next. */
  drivers?: number;
  defaultCluster?: string;
}

export async function vitiSystem(t: Test, options: VitiSystemOptions = {}) {
  const clock = new FakeClock();
  const { drivers: replicas = 1, defaultCluster, ...fake } = options;
  // A copy of the template on each node: a template on local storage clones only on its own node.
  const templates = [
    { vmid: 9000, name: 'ubuntu-22-template', node: 'pve1', diskGiB: 10, bus: 'scsi' as const, cloudInit: true },
    { vmid: 9010, name: 'ubuntu-22-template', node: 'pve2', diskGiB: 10, bus: 'scsi' as const, cloudInit: true },
  ];
  const pve = await FakePve.start({ clock, taskDurationMs: 1000, bootMs: 1500, templates, ...fake });
  t.teardown(() => pve.close());
  const env = { PVE_ENDPOINT: pve.url, ...PVE_TOKEN, PVE_VMID_RANGE: '10000-99999' };
  const drivers: Driver[] = Array.from({ length: replicas }, () => new ProxmoxDriver(proxmoxConfigFromEnv(env), { now: () => clock.now() }));
  let next = 0;
  const system = await lifecycle(t, {
    clock,
    runtime: { tokenSecret: 'viti-test-secret', defaultImage: 'registry.example/virtrigaud:test' },
    viti: { namespace: OPERATOR_NAMESPACE, ...(defaultCluster !== undefined ? { defaultCluster } : {}) },
    registry: (simulators) => ({
      driverFor: async (provider) => {
        if (provider.type !== 'proxmox') return simulators.driverFor(provider);
        const driver = drivers[next % drivers.length] as Driver;
        next += 1;
        return driver;
      },
    }),
  });
  const { cluster, metacontroller } = system;

  const clusterStatus = () => (cluster.get(VITI, 'ProxmoxCluster', '', 'pve')?.['status'] ?? {}) as Record<string, unknown> & { conditions?: Conditionish[] };
  const machine = (name: string, namespace = 'default') => cluster.get(VITI, 'Machine', namespace, name);
  const machineStatus = (name: string, namespace = 'default') =>
    (machine(name, namespace)?.['status'] ?? {}) as Record<string, unknown> & { conditions?: Conditionish[]; phase?: string; vmid?: number; node?: string };
  const machineCondition = (name: string, type: string) => machineStatus(name).conditions?.find((c) => c.type === type);

  /** The ProxmoxCluster `pve`, its runtime made available as the Deployment controller would, until it is Ready. */
  async function createCluster(spec: Record<string, unknown> = {}, expectReady = true) {
    cluster.create({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'proxmox-credentials', namespace: OPERATOR_NAMESPACE },
      type: 'Opaque',
      data: { 'token-secret': Buffer.from(PVE_TOKEN.PVE_TOKEN_SECRET).toString('base64') },
    });
    cluster.create({
      apiVersion: VITI,
      kind: 'ProxmoxCluster',
      metadata: { name: 'pve' },
      spec: {
        endpoint: 'https://pve.example.test:8006',
        credentials: { tokenID: 'virtrigaud@pve!vrtg', tokenSecret: { secretRef: { name: 'proxmox-credentials', key: 'token-secret' } } },
        ...spec,
      },
    });
    await metacontroller.settle(() => cluster.get('apps/v1', 'Deployment', OPERATOR_NAMESPACE, RUNTIME) !== undefined);
    const deployment = cluster.get('apps/v1', 'Deployment', OPERATOR_NAMESPACE, RUNTIME);
    cluster.updateStatus('apps/v1', 'Deployment', OPERATOR_NAMESPACE, RUNTIME, { observedGeneration: deployment?.metadata.generation ?? 1, availableReplicas: 1 });
    await metacontroller.settle(() => (expectReady ? clusterStatus()['ready'] === true : clusterStatus().conditions?.some((c) => c.type === 'Connected' && c.status !== 'Unknown') === true));
  }

  function createMachine(name: string, spec: Record<string, unknown> = {}, labels: Record<string, string> = { 'cluster.vitistack.io/cluster-name': 'pve' }) {
    return cluster.create({ apiVersion: VITI, kind: 'Machine', metadata: { name, namespace: 'default', labels }, spec });
  }

  /** The VMs a Machine made on the fake PVE (tagged with our identity). */
  const ours = () => pve.vms().filter((vm) => (vm.tags ?? []).includes('virtrigaud'));
  return { ...system, pve, drivers, clusterStatus, machine, machineStatus, machineCondition, createCluster, createMachine, ours, runtimeName: RUNTIME };
}
