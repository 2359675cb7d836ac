// The ProxmoxNode controller: a node of a ProxmoxCluster as that cluster's inventory lists it
// (the runtime's shared snapshot: one resource list serves every node and Machine of the cluster).
// Its maxVMs is read by the Machine controller when it places a Machine (machine.ts machinePolicy).
import { VITI_API_VERSION } from '../../contracts/crds/common.js';
import type { ProxmoxNodeObject, ProxmoxNodeStatus } from '../../contracts/crds/viti.js';
import { isDriverError } from '../../contracts/driver.js';
import type { CustomizeResponse, SyncRequestBody, SyncResponse } from '../../contracts/metacontroller.js';
import { buildConditions, previousConditions, type ConditionUpdate } from '../conditions.js';
import { DriverCalls } from '../driver-calls.js';
import { reportDriverError, retryDelaySeconds } from '../driver-errors.js';
import { clusterReady, clusterTarget, relatedCluster, type ClusterHookDeps } from './cluster.js';

export type NodeHookDeps = Omit<ClusterHookDeps, 'runtime'>;

export function customizeProxmoxNode(node: ProxmoxNodeObject): CustomizeResponse {
  return { relatedResources: [{ apiVersion: VITI_API_VERSION, resource: 'proxmoxclusters', names: [node.spec.cluster] }] };
}

function condition(type: string, status: boolean | 'Unknown', reason: string, message: string): ConditionUpdate {
  return { type, status, reason, message };
}

export async function syncProxmoxNode(request: SyncRequestBody<ProxmoxNodeObject>, deps: NodeHookDeps, signal: AbortSignal = AbortSignal.timeout(deps.budgetMs)): Promise<SyncResponse> {
  const node = request.parent;
  const now = deps.clock.now();
  const previous = previousConditions(node.status);
  const respond = (status: ProxmoxNodeStatus, ready: ConditionUpdate, resyncAfterSeconds: number): SyncResponse => {
    status.conditions = buildConditions(previous, [ready], now, node.metadata.generation);
    if (node.metadata.generation !== undefined) status.observedGeneration = node.metadata.generation;
    return { status: status as Record<string, unknown>, children: [], resyncAfterSeconds };
  };
  const found = relatedCluster(request.related, node.spec.cluster);
  if (!found.ok) return respond({ ready: false }, condition('Ready', false, found.reason, found.message), deps.steadyResyncSeconds);
  if (!clusterReady(found.cluster)) {
    return respond({ ready: false }, condition('Ready', false, 'ClusterNotReady', `ProxmoxCluster ${node.spec.cluster} has not answered its health check yet`), deps.steadyResyncSeconds);
  }
  const target = clusterTarget(found.cluster, deps.viti);
  let hosts;
  try {
    const driver = await deps.registry.driverFor(target);
    const calls = new DriverCalls(driver, `${target.namespace}/${target.name}`, deps.metrics, signal);
    hosts = (await calls.call('inventory', (options) => driver.inventory(options))).hosts;
  } catch (error) {
    if (!isDriverError(error)) throw error;
    const failure = reportDriverError(error, 'reading the cluster\'s inventory');
    return respond({ ready: false }, condition('Ready', false, failure.reason, failure.message), retryDelaySeconds(previous, now, failure.retryable));
  }
  const host = hosts.find((candidate) => candidate.name === node.spec.nodeName);
  if (!host) {
    const message = `node '${node.spec.nodeName}' is not online in ProxmoxCluster ${node.spec.cluster}`;
    return respond({ ready: false }, condition('Ready', false, 'NodeUnavailable', message), deps.steadyResyncSeconds);
  }
  const status: ProxmoxNodeStatus = {
    ready: true,
    resources: {
      cpu: { total: host.cpus, used: host.cpusAllocated },
      memory: { total: host.memoryBytes, used: host.memoryAllocatedBytes },
      storage: { total: host.storageBytes ?? 0, used: host.storageUsedBytes ?? 0 },
    },
    vmCount: host.vms,
  };
  const max = node.spec.maxVMs;
  const ready =
    max !== undefined && host.vms >= max
      ? condition('Ready', true, 'Full', `${host.vms} VMs, at maxVMs ${max}: no new Machine is placed here`)
      : condition('Ready', true, 'Online', `${host.vms} VMs${max !== undefined ? ` of at most ${max}` : ''}`);
  return respond(status, ready, deps.steadyResyncSeconds);
}
