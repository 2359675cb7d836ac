// The children of a Remote Provider: the runtime that holds its credentials. Metacontroller
// creates and updates them (InPlace); the hook server only describes them and never sees a
// credential: the user's Secret is referenced by name, read by the kubelet into the runtime pod.
import { createHash } from 'node:crypto';
import type { ProviderObject } from '../contracts/crds/provider.js';
import type { KubeObject } from '../contracts/metacontroller.js';
import { providerRuntimeName, providerRuntimeToken } from '../contracts/provider-token.js';
import { DEFAULT_RUNTIME_PORT } from './virtualmachine/resolve.js';

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

export function runtimeChildren(provider: ProviderObject, settings: RuntimeSettings): KubeObject[] {
  const name = providerRuntimeName(provider.metadata);
  const namespace = provider.metadata.namespace ?? '';
  const labels = runtimeLabels(provider);
  const spec = provider.spec;
  const port = spec.runtime?.service?.port ?? DEFAULT_RUNTIME_PORT;
  const token = providerRuntimeToken(settings.tokenSecret, { namespace, name: provider.metadata.name, ...(provider.metadata.uid ? { uid: provider.metadata.uid } : {}) });
  const credentials = spec.credentialSecretRef?.name;

  const env: Record<string, unknown>[] = [
    { name: 'PROVIDER_TYPE', value: spec.type },
    { name: 'PORT', value: String(port) },
    { name: 'PROVIDER_TOKEN_FILE', value: `${TOKEN_DIR}/token` },
  ];
  const endpointEnv = ENDPOINT_ENV[spec.type];
  if (endpointEnv && spec.endpoint) env.push({ name: endpointEnv, value: spec.endpoint });
  if (credentials) {
    // Files, not environment variables: the kubelet updates a mounted Secret in place, and the
    // runtime reads them again when the hypervisor refuses a rotated credential.
    for (const [variable, key] of CREDENTIAL_ENV[spec.type] ?? []) env.push({ name: `${variable}_FILE`, value: `${CREDENTIALS_DIR}/${key}` });
  }
  for (const entry of spec.runtime?.env ?? []) {
    const index = env.findIndex((existing) => existing['name'] === entry.name);
    const value = { name: entry.name, value: entry.value ?? '' };
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
  if (credentials) {
    // optional: a Secret created after the Provider is picked up once it exists.
    volumes.push({ name: 'credentials', secret: { secretName: credentials, optional: true, defaultMode: 0o440 } });
    mounts.push({ name: 'credentials', mountPath: CREDENTIALS_DIR, readOnly: true });
  }
  const resources = spec.runtime?.resources ?? { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '512Mi' } };

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
        replicas: spec.runtime?.replicas ?? 1,
        selector: { matchLabels: runtimeSelector(provider) },
        template: {
          // The runtime reads its token at start: a new token (a rotated hook secret, a re-created
          // Provider) must change the pod template so Kubernetes rolls the runtime.
          metadata: { labels, annotations: { 'virtrigaud.io/token-checksum': createHash('sha256').update(token).digest('hex').slice(0, 16) } },
          spec: {
            serviceAccountName: name,
            automountServiceAccountToken: false,
            // A runtime told to stop keeps serving while calls still come (the VMs of a Provider
            // being deleted along with its namespace), then exits; this bounds that drain.
            terminationGracePeriodSeconds: RUNTIME_DRAIN_LIMIT_SECONDS,
            securityContext: { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } },
            containers: [
              {
                name: 'provider',
                image: spec.runtime?.image ?? settings.defaultImage,
                args: ['provider'],
                ports: [{ name: 'http', containerPort: port }],
                env,
                volumeMounts: mounts,
                resources,
                readinessProbe: { httpGet: { path: '/readyz', port: 'http' }, periodSeconds: 10 },
                livenessProbe: { httpGet: { path: '/healthz', port: 'http' }, periodSeconds: 20 },
                securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
              },
            ],
            volumes,
          },
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
