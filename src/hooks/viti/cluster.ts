// The ProxmoxCluster controller. A ProxmoxCluster is a Proxmox provider: its runtime (the
// Deployment holding its credentials, as for a Remote Provider, hooks/provider-runtime.ts) runs in
// the operator's namespace, and its status is a health check through that runtime — PVE's version
// and the cluster's nodes. Machines and ProxmoxNodes reach PVE through the same runtime.
import { Value } from '@sinclair/typebox/value';
import { API_VERSION, VITI_API_VERSION } from '../../contracts/crds/common.js';
import type { ProviderObject } from '../../contracts/crds/provider.js';
import { CLUSTER_LABEL, OPERATOR_VMID_RANGE, ProxmoxClusterObject, ProxmoxClusterStatus, type ProxmoxClusterSpec } from '../../contracts/crds/viti.js';
import { isDriverError, type Inventory, type ProviderTarget } from '../../contracts/driver.js';
import { findObject, objectsOfKind, type CustomizeResponse, type KubeObject, type ObjectsByType, type SyncRequestBody, type SyncResponse } from '../../contracts/metacontroller.js';
import { providerRuntimeName } from '../../contracts/provider-token.js';
import { buildConditions, previousConditions, type ConditionUpdate } from '../conditions.js';
import { DriverCalls } from '../driver-calls.js';
import { reportDriverError, retryDelaySeconds } from '../driver-errors.js';
import { runtimeAvailability, type ProviderHookDeps } from '../provider.js';
import { runtimeChildren, type CredentialMount, type RuntimeSettings } from '../provider-runtime.js';
import { providerTarget } from '../virtualmachine/resolve.js';
import { rfc3339 } from '../time.js';

/** Where the Viti API's runtimes run and which cluster a Machine without the label uses. */
export interface VitiSettings {
  /** The namespace of every ProxmoxCluster's runtime and of the Secrets its credentials name (the operator's). */
  namespace: string;
  /** PROXMOX_DEFAULT_CLUSTER: the ProxmoxCluster of a Machine without the cluster.vitistack.io/cluster-name label. */
  defaultCluster?: string;
  /** RECONCILE_INTERVAL in seconds (default 30, the seed's): the resync of a steady Machine, cluster or node. */
  reconcileSeconds?: number;
}

export const DEFAULT_RECONCILE_SECONDS = 30;

/** A Provider's hook dependencies (RECONCILE_INTERVAL as its steady resync), and where the Viti API's runtimes run. */
export interface ClusterHookDeps extends ProviderHookDeps {
  viti: VitiSettings;
}

/** lastHealthCheck moves at most this often while the outcome stays the same: a status write is a Kubernetes write. */
export const HEALTH_STAMP_SECONDS = 300;

const TLS_KEY = 'client.key';

/** The Provider a ProxmoxCluster is, in the operator's namespace; never applied, only served. */
export function clusterProvider(cluster: ProxmoxClusterObject, settings: VitiSettings): ProviderObject {
  const spec = cluster.spec;
  const env: { name: string; value: string }[] = [{ name: 'PVE_VMID_RANGE', value: `${OPERATOR_VMID_RANGE.min}-${OPERATOR_VMID_RANGE.max}` }];
  const credentials = spec.credentials;
  if (credentials.tokenID !== undefined) {
    env.push({ name: 'PVE_TOKEN_ID', value: credentials.tokenID.includes('!') ? credentials.tokenID : `${credentials.username ?? ''}!${credentials.tokenID}` });
  } else if (credentials.username !== undefined) {
    env.push({ name: 'PVE_USERNAME', value: credentials.username });
  }
  if (spec.nodes !== undefined && spec.nodes.length > 0) env.push({ name: 'PVE_NODE_SELECTOR', value: spec.nodes.join(',') });
  // Certificates are public: plain values. The client key goes through a Secret (clusterTLSSecret).
  if (spec.caCertificate !== undefined) env.push({ name: 'PVE_CA_BUNDLE', value: spec.caCertificate });
  if (spec.clientCertificate !== undefined) env.push({ name: 'PVE_CLIENT_CERT', value: spec.clientCertificate });
  const metadata: ProviderObject['metadata'] = { name: clusterProviderName(cluster.metadata.name), namespace: settings.namespace };
  if (cluster.metadata.uid !== undefined) metadata.uid = cluster.metadata.uid;
  if (cluster.metadata.generation !== undefined) metadata.generation = cluster.metadata.generation;
  return {
    apiVersion: API_VERSION,
    kind: 'Provider',
    metadata,
    spec: {
      type: 'proxmox',
      endpoint: spec.endpoint,
      ...(spec.insecureSkipTLSVerify !== undefined ? { insecureSkipVerify: spec.insecureSkipTLSVerify } : {}),
      runtime: { mode: 'Remote', env },
    },
  };
}

/** The Provider name a cluster's runtime is derived from (its Deployment: virtrigaud-provider-proxmoxcluster-<name>). */
export function clusterProviderName(cluster: string): string {
  return `proxmoxcluster-${cluster}`;
}

export function clusterTarget(cluster: ProxmoxClusterObject, settings: VitiSettings): ProviderTarget {
  return providerTarget(clusterProvider(cluster, settings));
}

function credentialMounts(spec: ProxmoxClusterSpec, runtime: string): CredentialMount[] {
  const mounts: CredentialMount[] = [];
  const { password, tokenSecret } = spec.credentials;
  if (password !== undefined) mounts.push({ secretName: password.secretRef.name, files: [['PVE_PASSWORD', password.secretRef.key]] });
  if (tokenSecret !== undefined) mounts.push({ secretName: tokenSecret.secretRef.name, files: [['PVE_TOKEN_SECRET', tokenSecret.secretRef.key]] });
  if (spec.clientKey !== undefined) mounts.push({ secretName: `${runtime}-tls`, files: [['PVE_CLIENT_KEY', TLS_KEY]] });
  return mounts;
}

/** The runtime of a cluster, plus the Secret holding its client key when it has one. */
export function clusterChildren(cluster: ProxmoxClusterObject, deps: Pick<ClusterHookDeps, 'viti'> & { runtime: RuntimeSettings }): KubeObject[] {
  const provider = clusterProvider(cluster, deps.viti);
  const runtime = providerRuntimeName(provider.metadata);
  const children = runtimeChildren(provider, deps.runtime, undefined, [], { credentialMounts: credentialMounts(cluster.spec, runtime) });
  if (cluster.spec.clientKey !== undefined) {
    children.push({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `${runtime}-tls`, namespace: deps.viti.namespace, labels: { 'app.kubernetes.io/part-of': 'virtrigaud', 'app.kubernetes.io/component': 'provider-runtime' } },
      type: 'Opaque',
      data: { [TLS_KEY]: Buffer.from(cluster.spec.clientKey).toString('base64') },
    } as KubeObject);
  }
  return children;
}

function condition(type: string, status: boolean | 'Unknown', reason: string, message: string): ConditionUpdate {
  return { type, status, reason, message };
}

/** The previous status, each field checked before it is trusted. */
function previousStatus(status: Record<string, unknown> | undefined): ProxmoxClusterStatus {
  const raw = status ?? {};
  const kept: ProxmoxClusterStatus = {};
  if (typeof raw['ready'] === 'boolean') kept.ready = raw['ready'];
  if (Value.Check(ProxmoxClusterStatus.properties.lastHealthCheck, raw['lastHealthCheck'])) kept.lastHealthCheck = raw['lastHealthCheck'];
  return kept;
}

/** Every Machine: the cluster counts its own (proxmox_operator_machines_total) and waits for them before it goes. */
export function customizeProxmoxCluster(): CustomizeResponse {
  return { relatedResources: [{ apiVersion: VITI_API_VERSION, resource: 'machines', labelSelector: {} }] };
}

/** The Machines of a cluster (by label, or without one through PROXMOX_DEFAULT_CLUSTER), as `namespace/name` with their status. */
export function clusterMachines(cluster: string, related: ObjectsByType | undefined, settings: VitiSettings): { name: string; status: Record<string, unknown> }[] {
  return objectsOfKind(related, VITI_API_VERSION, 'Machine')
    .filter((machine) => (machine.metadata.labels?.[CLUSTER_LABEL] ?? settings.defaultCluster) === cluster)
    .map((machine) => {
      const status = machine['status'];
      return { name: `${machine.metadata.namespace ?? ''}/${machine.metadata.name}`, status: status !== null && typeof status === 'object' && !Array.isArray(status) ? (status as Record<string, unknown>) : {} };
    });
}

export async function syncProxmoxCluster(request: SyncRequestBody<ProxmoxClusterObject>, deps: ClusterHookDeps, signal: AbortSignal = AbortSignal.timeout(deps.budgetMs)): Promise<SyncResponse> {
  const cluster = request.parent;
  const now = deps.clock.now();
  const previous = previousConditions(cluster.status);
  const before = previousStatus(cluster.status);
  const name = cluster.metadata.name;
  const provider = clusterProvider(cluster, deps.viti);
  const runtimeName = providerRuntimeName(provider.metadata);
  deps.metrics.countMachines(
    name,
    clusterMachines(name, request.related, deps.viti).map(({ status }) => ({
      phase: typeof status['phase'] === 'string' ? status['phase'] : 'Pending',
      node: typeof status['node'] === 'string' ? status['node'] : '',
    })),
  );

  const respond = (status: ProxmoxClusterStatus, updates: ConditionUpdate[], resyncAfterSeconds: number, children: KubeObject[]): SyncResponse => {
    const failing = updates.find((update) => update.status !== true);
    const ready = failing ? condition('Ready', false, failing.reason, failing.message) : condition('Ready', true, 'Connected', `PVE ${status.version ?? ''} answered`.trim());
    status.conditions = buildConditions(previous, [ready, ...updates], now, cluster.metadata.generation);
    if (cluster.metadata.generation !== undefined) status.observedGeneration = cluster.metadata.generation;
    status.runtime = `${deps.viti.namespace}/${runtimeName}`;
    deps.metrics.clusterConnection(name, status.ready === true, status.nodes?.filter((node) => node.ready).length ?? 0);
    return { status: status as Record<string, unknown>, children, resyncAfterSeconds };
  };

  if (!deps.runtime) {
    const message = 'this hook server has no provider token secret (PROVIDER_TOKEN_SECRET_FILE), so it cannot run the cluster\'s runtime';
    return respond({ ready: false }, [condition('Connected', false, 'RuntimeNotConfigured', message)], deps.steadyResyncSeconds, []);
  }
  const children = clusterChildren(cluster, { viti: deps.viti, runtime: deps.runtime });
  const available = runtimeAvailability(provider, request.children);
  if (available.status !== true) {
    return respond({ ready: false }, [available, condition('Connected', 'Unknown', available.reason, 'the cluster runtime is not available yet')], 10, children);
  }

  const target = providerTarget(provider);
  let inventory: Inventory;
  let version: string;
  try {
    const driver = await deps.registry.driverFor(target);
    const calls = new DriverCalls(driver, `${target.namespace}/${target.name}`, deps.metrics, signal);
    version = (await calls.call('probe', (options) => driver.probe(options))).version;
    inventory = await calls.call('inventory', (options) => driver.inventory(options));
  } catch (error) {
    if (!isDriverError(error)) throw error;
    const failure = reportDriverError(error, 'checking the cluster');
    const updates = [
      available,
      error.code === 'Unauthorized'
        ? condition('Connected', false, 'AuthenticationFailed', failure.message)
        : condition('Connected', false, failure.reason, failure.message),
    ];
    const status: ProxmoxClusterStatus = { ready: false, lastHealthCheck: healthStamp(before, false, now) };
    return respond(status, updates, retryDelaySeconds(previous, now, failure.retryable), children);
  }

  const listed = new Map(inventory.hosts.map((host) => [host.name, host]));
  const names = [...new Set([...inventory.hosts.map((host) => host.name), ...(cluster.spec.nodes ?? [])])].sort();
  const status: ProxmoxClusterStatus = {
    ready: true,
    version,
    nodes: names.map((node) => {
      const host = listed.get(node);
      return host ? { name: node, ready: true, cpu: host.cpus, memory: host.memoryBytes, vmCount: host.vms } : { name: node, ready: false };
    }),
    lastHealthCheck: healthStamp(before, true, now),
  };
  const missing = (cluster.spec.nodes ?? []).filter((node) => !listed.has(node));
  const updates = [available, condition('Connected', true, 'Connected', `PVE ${version} with ${inventory.hosts.length} node(s) online`)];
  if (missing.length > 0) {
    updates.push(condition('NodesAvailable', false, 'NodeUnavailable', `allowed node(s) not online: ${missing.join(', ')}`));
  }
  const healthDue = HEALTH_STAMP_SECONDS - Math.floor((now - Date.parse(status.lastHealthCheck ?? rfc3339(now))) / 1000);
  return respond(status, updates, Math.max(1, Math.min(deps.steadyResyncSeconds, healthDue)), children);
}

/**
 * Deleting a cluster: its runtime stays while Machines of it remain (they need it to delete their
 * VMs); it goes, and the cluster with it, once none is left.
 */
export function finalizeProxmoxCluster(request: SyncRequestBody<ProxmoxClusterObject>, deps: ClusterHookDeps): SyncResponse {
  const cluster = request.parent;
  const machines = clusterMachines(cluster.metadata.name, request.related, deps.viti);
  const now = deps.clock.now();
  const status: ProxmoxClusterStatus = previousStatus(cluster.status);
  if (machines.length === 0) {
    status.conditions = buildConditions(previousConditions(cluster.status), [condition('Ready', false, 'Deleted', 'no Machine uses the cluster any more')], now, cluster.metadata.generation);
    return { status: status as Record<string, unknown>, children: [], resyncAfterSeconds: 0, finalized: true };
  }
  const names = machines.slice(0, 10).map((machine) => machine.name).join(', ');
  const message = `deletion waits for ${machines.length} Machine(s) of the cluster to be deleted: ${names}${machines.length > 10 ? ', …' : ''}`;
  status.conditions = buildConditions(previousConditions(cluster.status), [condition('Ready', false, 'WaitingForMachines', message)], now, cluster.metadata.generation);
  const children = deps.runtime ? clusterChildren(cluster, { viti: deps.viti, runtime: deps.runtime }) : [];
  return { status: status as Record<string, unknown>, children, resyncAfterSeconds: 10, finalized: false };
}

/** Now, unless the last check had the same outcome less than HEALTH_STAMP_SECONDS ago. */
function healthStamp(before: ProxmoxClusterStatus, ready: boolean, now: number): string {
  const last = before.lastHealthCheck === undefined ? Number.NaN : Date.parse(before.lastHealthCheck);
  if (before.ready === ready && Number.isFinite(last) && now - last < HEALTH_STAMP_SECONDS * 1000 && now >= last) return before.lastHealthCheck ?? rfc3339(now);
  return rfc3339(now);
}

/** The ProxmoxCluster named `name`, from related objects; the problem when it is not there or not usable. */
export function relatedCluster(related: ObjectsByType | undefined, name: string): { ok: true; cluster: ProxmoxClusterObject } | { ok: false; reason: string; message: string } {
  const found = findObject(related, { apiVersion: VITI_API_VERSION, kind: 'ProxmoxCluster', namespace: undefined, name });
  if (found === undefined) return { ok: false, reason: 'ClusterNotFound', message: `ProxmoxCluster ${name} not found` };
  if (!Value.Check(ProxmoxClusterObject, found)) return { ok: false, reason: 'ClusterInvalid', message: `ProxmoxCluster ${name} does not fit its contract` };
  return { ok: true, cluster: found };
}

/** A cluster is usable once its runtime answered a health check (status.ready). */
export function clusterReady(cluster: ProxmoxClusterObject): boolean {
  return cluster.status?.['ready'] === true;
}
