// The children of a Remote Provider: the runtime that holds its credentials. Metacontroller
// creates and updates them (InPlace); the hook server only describes them and never sees a
// credential: the user's Secret is referenced by name, read by the kubelet into the runtime pod.
import { createHash } from 'node:crypto';
import type { Probe, ResourceRequirements, SecurityContext } from '../contracts/crds/core-v1.js';
import { HTTP_CLIENT_ENV, HTTP_DRIVER_ENV_PREFIX, type ProviderObject, type ProviderSpec } from '../contracts/crds/provider.js';
import { normalizeProvider, type CanonicalProvider } from '../contracts/normalize/provider.js';
import type { KubeObject } from '../contracts/metacontroller.js';
import { providerRuntimeName, providerRuntimeToken } from '../contracts/provider-token.js';
import { DEFAULT_RUNTIME_PORT } from './virtualmachine/resolve.js';
import { DEFAULT_MIGRATION_DIR } from '../contracts/driver.js';

export interface RuntimeSettings {
  /** Image when the Provider names none: this server's own. */
  defaultImage: string;
  /** Secret the per-Provider runtime tokens are derived from. */
  tokenSecret: string;
}

const TOKEN_DIR = '/var/run/virtrigaud/token';
const CREDENTIALS_DIR = '/var/run/virtrigaud/credentials';

/** How long a stopping runtime may keep serving (pod terminationGracePeriodSeconds). */
export const RUNTIME_DRAIN_LIMIT_SECONDS = 3600;

/** Credential keys the seed documents per provider type, as the environment variables the runtime reads. */
const CREDENTIAL_ENV: Record<string, [env: string, key: string][]> = {
  proxmox: [
    ['PVE_TOKEN_ID', 'token_id'],
    ['PVE_TOKEN_SECRET', 'token_secret'],
    ['PVE_USERNAME', 'username'],
    ['PVE_PASSWORD', 'password'],
    ['PVE_CA_BUNDLE', 'ca.crt'],
    ['PVE_CLIENT_CERT', 'tls.crt'],
    ['PVE_CLIENT_KEY', 'tls.key'],
  ],
  vsphere: [
    ['VSPHERE_USERNAME', 'username'],
    ['VSPHERE_PASSWORD', 'password'],
    ['VSPHERE_CA_BUNDLE', 'ca.crt'],
  ],
  libvirt: [
    ['LIBVIRT_USERNAME', 'username'],
    ['LIBVIRT_PASSWORD', 'password'],
    ['LIBVIRT_SSH_PRIVATE_KEY', 'ssh-privatekey'],
    ['LIBVIRT_KNOWN_HOSTS', 'known_hosts'],
  ],
};

const ENDPOINT_ENV: Record<string, string> = { proxmox: 'PVE_ENDPOINT', vsphere: 'VSPHERE_ENDPOINT', libvirt: 'LIBVIRT_URI' };

export function runtimeLabels(provider: ProviderObject): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'virtrigaud-provider',
    'app.kubernetes.io/instance': provider.metadata.name,
    'app.kubernetes.io/component': 'provider-runtime',
    'app.kubernetes.io/part-of': 'virtrigaud',
  };
}

/** The labels that select a Provider's runtime pods (the Deployment's and the Service's selector). */
export function runtimeSelector(provider: ProviderObject): Record<string, string> {
  return { 'app.kubernetes.io/instance': provider.metadata.name, 'app.kubernetes.io/component': 'provider-runtime' };
}

/** The variables our side sets from Provider fields (before the user's runtime.env, which the CRD keeps from naming them twice). */
function fieldEnv(spec: ProviderSpec, canonical: CanonicalProvider): Record<string, string>[] {
  const env: Record<string, string>[] = [];
  // The fields only: the seeds' spelling is already a runtime.env variable of that name.
  if (spec.runtime?.logLevel !== undefined) env.push({ name: 'LOG_LEVEL', value: spec.runtime.logLevel });
  if (spec.runtime?.logFormat !== undefined) env.push({ name: 'LOG_FORMAT', value: spec.runtime.logFormat });
  if (spec.type !== 'proxmox' && spec.type !== 'vsphere') return env;
  const prefix = HTTP_DRIVER_ENV_PREFIX[spec.type];
  // Only spec.insecureSkipVerify: the seeds' spelling is already a runtime.env variable of this name.
  if (spec.insecureSkipVerify !== undefined) env.push({ name: `${prefix}_INSECURE_SKIP_VERIFY`, value: String(spec.insecureSkipVerify) });
  const http = canonical.http;
  const settings: [suffix: string, value: string | number | undefined][] = [
    [HTTP_CLIENT_ENV.qps, http.rateLimit?.qps],
    [HTTP_CLIENT_ENV.burst, http.rateLimit?.burst],
    [HTTP_CLIENT_ENV.maxConnections, http.maxConnections],
    [HTTP_CLIENT_ENV.connectionTimeout, http.connectionTimeout],
    [HTTP_CLIENT_ENV.idleTimeout, http.idleTimeout],
  ];
  for (const [suffix, value] of settings) if (value !== undefined) env.push({ name: `${prefix}_${suffix}`, value: String(value) });
  return env;
}

const OUR_CONTAINER_SECURITY = { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } };

/**
 * The runtime container's securityContext: ours, with each field the Provider sets taking its
 * place. A privileged container or one adding SYS_ADMIN cannot keep our allowPrivilegeEscalation
 * false (Kubernetes refuses the pair), and runAsUser 0 cannot run under the pod's runAsNonRoot:
 * those defaults give way unless the Provider sets them itself.
 */
export function containerSecurityContext(written: SecurityContext | undefined): Record<string, unknown> {
  if (written === undefined) return structuredClone(OUR_CONTAINER_SECURITY);
  const merged: Record<string, unknown> = { ...structuredClone(OUR_CONTAINER_SECURITY), ...written };
  merged['capabilities'] = { ...OUR_CONTAINER_SECURITY.capabilities, ...written.capabilities };
  const escalates = written.privileged === true || (written.capabilities?.add ?? []).some((capability) => /^(CAP_)?SYS_ADMIN$/.test(capability));
  if (escalates && written.allowPrivilegeEscalation === undefined) delete merged['allowPrivilegeEscalation'];
  if (written.runAsUser === 0 && written.runAsNonRoot === undefined) merged['runAsNonRoot'] = false;
  return merged;
}

const HANDLERS = ['exec', 'httpGet', 'tcpSocket', 'grpc'] as const;

/** A probe of the Provider's: as written when it names a handler; without one, our handler with its timing. */
export function runtimeProbe(written: Probe | undefined, ours: Record<string, unknown>): Record<string, unknown> {
  if (written === undefined) return ours;
  if (HANDLERS.some((handler) => written[handler] !== undefined)) return { ...written };
  return { ...ours, ...written };
}

const DEFAULT_RESOURCES = { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } };

/** Limits and requests as written (resource claims are Unsupported: the pod declares no resourceClaims); none: ours. */
function runtimeResources(written: ResourceRequirements | undefined): Record<string, unknown> {
  const amounts: Record<string, unknown> = {};
  if (written?.limits !== undefined && Object.keys(written.limits).length > 0) amounts['limits'] = written.limits;
  if (written?.requests !== undefined && Object.keys(written.requests).length > 0) amounts['requests'] = written.requests;
  return Object.keys(amounts).length > 0 ? amounts : structuredClone(DEFAULT_RESOURCES);
}

/** A Secret mounted into the runtime, each `[variable, key]` read by it from `<variable>_FILE`. */
export interface CredentialMount {
  secretName: string;
  files: [variable: string, key: string][];
}

export interface RuntimeOptions {
  /** Replaces the Provider's one credentials Secret with its per-type keys (a ProxmoxCluster names its own keys). */
  credentialMounts?: CredentialMount[];
}

/**
 * The runtime of a Provider: ServiceAccount, token Secret, Deployment, Service. `canonical` is the
 * Provider normalized (normalizeProvider); every scheduling and pod field of spec.runtime goes
 * into the Deployment as written, our defaults only where it sets nothing.
 */
export function runtimeChildren(
  provider: ProviderObject,
  settings: RuntimeSettings,
  canonical?: CanonicalProvider,
  migrationVolumes: readonly string[] = [],
  options: RuntimeOptions = {},
): KubeObject[] {
  const normalized = canonical ?? normalizedOrThrow(provider);
  const name = providerRuntimeName(provider.metadata);
  const namespace = provider.metadata.namespace ?? '';
  const labels = runtimeLabels(provider);
  const spec = provider.spec;
  const runtime = spec.runtime ?? {};
  const port = runtime.service?.port ?? DEFAULT_RUNTIME_PORT;
  const token = providerRuntimeToken(settings.tokenSecret, { namespace, name: provider.metadata.name, ...(provider.metadata.uid ? { uid: provider.metadata.uid } : {}) });
  const credentials = normalized.credentials?.name;
  const credentialMounts: CredentialMount[] =
    options.credentialMounts ?? (credentials ? [{ secretName: credentials, files: CREDENTIAL_ENV[spec.type] ?? [] }] : []);
  const credentialDir = (index: number) => (options.credentialMounts ? `${CREDENTIALS_DIR}/${index}` : CREDENTIALS_DIR);

  const env: Record<string, unknown>[] = [
    { name: 'PROVIDER_TYPE', value: spec.type },
    { name: 'PORT', value: String(port) },
    { name: 'PROVIDER_TOKEN_FILE', value: `${TOKEN_DIR}/token` },
  ];
  const endpointEnv = ENDPOINT_ENV[spec.type];
  if (endpointEnv && spec.endpoint) env.push({ name: endpointEnv, value: spec.endpoint });
  // Files, not environment variables: the kubelet updates a mounted Secret in place, and the
  // runtime reads them again when the hypervisor refuses a rotated credential.
  credentialMounts.forEach((mount, index) => {
    for (const [variable, key] of mount.files) env.push({ name: `${variable}_FILE`, value: `${credentialDir(index)}/${key}` });
  });
  env.push(...fieldEnv(spec, normalized));
  // The PVCs of the VMMigrations moving VMs from or to this Provider (hooks/vmmigration.ts), each
  // mounted at MIGRATION_DIR/<PVC>; the runtime refuses a volume not listed here as not mounted yet.
  env.push({ name: 'MIGRATION_DIR', value: DEFAULT_MIGRATION_DIR }, { name: 'MIGRATION_VOLUMES', value: migrationVolumes.join(',') });
  for (const entry of runtime.env ?? []) {
    const index = env.findIndex((existing) => existing['name'] === entry.name);
    const value = entry.valueFrom !== undefined ? { name: entry.name, valueFrom: entry.valueFrom } : { name: entry.name, value: entry.value ?? '' };
    if (index >= 0) env[index] = value;
    else env.push(value);
  }

  const volumes: Record<string, unknown>[] = [
    { name: 'token', secret: { secretName: `${name}-token`, defaultMode: 0o440 } },
    { name: 'tmp', emptyDir: {} },
  ];
  const mounts: Record<string, unknown>[] = [
    { name: 'token', mountPath: TOKEN_DIR, readOnly: true },
    { name: 'tmp', mountPath: '/tmp' },
  ];
  for (const pvc of migrationVolumes) {
    const volume = `migration-${createHash('sha256').update(pvc).digest('hex').slice(0, 16)}`;
    volumes.push({ name: volume, persistentVolumeClaim: { claimName: pvc } });
    mounts.push({ name: volume, mountPath: `${DEFAULT_MIGRATION_DIR}/${pvc}` });
  }
  credentialMounts.forEach((mount, index) => {
    // optional: a Secret created after the Provider is picked up once it exists.
    const volume = options.credentialMounts ? `credentials-${index}` : 'credentials';
    volumes.push({ name: volume, secret: { secretName: mount.secretName, optional: true, defaultMode: 0o440 } });
    mounts.push({ name: volume, mountPath: credentialDir(index), readOnly: true });
  });

  const container: Record<string, unknown> = {
    name: 'provider',
    image: runtime.image ?? settings.defaultImage,
    args: ['provider'],
    ports: [{ name: 'http', containerPort: port }],
    env,
    volumeMounts: mounts,
    resources: runtimeResources(runtime.resources),
    readinessProbe: runtimeProbe(runtime.readinessProbe, { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 10 }),
    livenessProbe: runtimeProbe(runtime.livenessProbe, { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 20 }),
    securityContext: containerSecurityContext(runtime.securityContext),
  };
  if (runtime.imagePullPolicy !== undefined) container['imagePullPolicy'] = runtime.imagePullPolicy;

  const pod: Record<string, unknown> = {
    serviceAccountName: name,
    automountServiceAccountToken: false,
    // A runtime told to stop keeps serving while calls still come (the VMs of a Provider
    // being deleted along with its namespace), then exits; this bounds that drain.
    terminationGracePeriodSeconds: RUNTIME_DRAIN_LIMIT_SECONDS,
    securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
    containers: [container],
    volumes,
  };
  if (runtime.imagePullSecrets !== undefined && runtime.imagePullSecrets.length > 0) pod['imagePullSecrets'] = runtime.imagePullSecrets;
  if (runtime.nodeSelector !== undefined && Object.keys(runtime.nodeSelector).length > 0) pod['nodeSelector'] = runtime.nodeSelector;
  if (runtime.tolerations !== undefined && runtime.tolerations.length > 0) pod['tolerations'] = runtime.tolerations;
  if (runtime.affinity !== undefined && Object.keys(runtime.affinity).length > 0) pod['affinity'] = runtime.affinity;

  return [
    {
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name, namespace, labels },
      // The runtime talks to its hypervisor, never to the Kubernetes API.
      automountServiceAccountToken: false,
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `${name}-token`, namespace, labels },
      type: 'Opaque',
      data: { token: Buffer.from(token).toString('base64') },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace, labels },
      spec: {
        replicas: runtime.replicas ?? 1,
        selector: { matchLabels: runtimeSelector(provider) },
        template: {
          // The runtime reads its token at start: a new token (a rotated hook secret, a re-created
          // Provider) must change the pod template so Kubernetes rolls the runtime.
          metadata: { labels, annotations: { 'virtrigaud.io/token-checksum': createHash('sha256').update(token).digest('hex').slice(0, 16) } },
          spec: pod,
        },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace, labels },
      spec: {
        selector: runtimeSelector(provider),
        ports: [{ name: 'http', port, targetPort: 'http' }],
      },
    },
  ].map((child) => child as unknown as KubeObject);
}

function normalizedOrThrow(provider: ProviderObject): CanonicalProvider {
  const normalized = normalizeProvider(provider.spec, provider.metadata.namespace);
  if (!normalized.ok) throw new Error(`Provider ${provider.metadata.name}: ${normalized.problem}`);
  return normalized.value;
}
