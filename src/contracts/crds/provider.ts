import { Type, type Static } from '@sinclair/typebox';
import {
  AGE_COLUMN,
  CommonStatusFields,
  Duration,
  NamespaceName,
  ObjectName,
  READY_COLUMN,
  REASON_COLUMN,
  ResourceObject,
  StringEnum,
  celRules,
  type KindDefinition,
} from './common.js';
import {
  Affinity,
  EnvVarSource,
  LocalObjectName,
  PROBE_HANDLER_RULE,
  Probe,
  ResourceRequirements,
  SecurityContext,
  Toleration,
} from './core-v1.js';

export const PROVIDER_TYPES = ['simulator', 'vsphere', 'libvirt', 'proxmox', 'firecracker', 'qemu'] as const;
export const ProviderType = StringEnum(PROVIDER_TYPES, {
  maxLength: 16,
  description:
    'The hypervisor: vsphere, libvirt or proxmox; simulator is the in-memory one for trying things out. firecracker and ' +
    'qemu are accepted as upstream VirtRigaud spells them, but no driver serves them (Ready=False, reason Unsupported).',
});
export type ProviderType = Static<typeof ProviderType>;
/** The types a driver serves (the others are accepted and answered Unsupported). */
export const SERVED_PROVIDER_TYPES = ['simulator', 'vsphere', 'libvirt', 'proxmox'] as const satisfies readonly ProviderType[];
export type ServedProviderType = (typeof SERVED_PROVIDER_TYPES)[number];

export const RuntimeMode = StringEnum(['Remote', 'InProcess'] as const, {
  description:
    'Remote: a provider runtime Deployment holds the credentials and serves the driver. InProcess: the hook ' +
    'server runs the driver itself (the embedded simulator). Defaults to InProcess for simulator, Remote otherwise.',
});
export type RuntimeMode = Static<typeof RuntimeMode>;

// Environment variables of the runtime that a Provider field also sets (the seeds write
// PVE_INSECURE_SKIP_VERIFY in runtime.env): one spelling or the other, not both.

/** The prefix of the runtime's variables for each driver with an HTTPS client. */
export const HTTP_DRIVER_ENV_PREFIX = { proxmox: 'PVE', vsphere: 'VSPHERE' } as const;
export const INSECURE_SKIP_VERIFY_ENV = ['PVE_INSECURE_SKIP_VERIFY', 'VSPHERE_INSECURE_SKIP_VERIFY'] as const;
/** spec.rateLimit and spec.connectionPooling as the runtime reads them: <PREFIX>_<suffix>. */
export const HTTP_CLIENT_ENV = {
  qps: 'RATE_LIMIT_QPS',
  burst: 'RATE_LIMIT_BURST',
  maxConnections: 'MAX_CONNECTIONS',
  connectionTimeout: 'CONNECT_TIMEOUT',
  idleTimeout: 'IDLE_TIMEOUT',
} as const;
const prefixed = (...suffixes: string[]) => Object.values(HTTP_DRIVER_ENV_PREFIX).flatMap((prefix) => suffixes.map((suffix) => `${prefix}_${suffix}`));

const envNamed = (names: readonly string[]) => `self.runtime.env.exists(e, ${names.map((name) => `e.name == '${name}'`).join(' || ')})`;

const ProviderDefaultsSpec = Type.Object(
  {
    datastore: Type.Optional(
      Type.String({ maxLength: 255, description: 'Datastore (vSphere) or storage (Proxmox) of a VM\'s disks when neither the VM nor its class names one.' }),
    ),
    storagePod: Type.Optional(
      Type.String({
        maxLength: 255,
        description: 'vSphere datastore cluster to pick a datastore from when none is named. No driver does this yet (Unsupported).',
      }),
    ),
    cluster: Type.Optional(Type.String({ maxLength: 255, description: 'Compute cluster of a VM that names none (vSphere).' })),
    folder: Type.Optional(Type.String({ maxLength: 255, description: 'VM folder of a VM that names none (vSphere).' })),
    resourcePool: Type.Optional(Type.String({ maxLength: 255, description: 'Resource pool of a VM that names none (vSphere).' })),
    network: Type.Optional(
      Type.String({
        maxLength: 255,
        description: 'Network of a VM\'s NIC that names neither a network attachment nor a bridge (every driver).',
      }),
    ),
  },
  {
    additionalProperties: false,
    description: 'Placement of the VMs of this Provider where they name none. Each needs the matching placement capability of the driver.',
  },
);

const RateLimitSpec = Type.Object(
  {
    qps: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 10, description: 'Hypervisor API requests per second, sustained.' })),
    burst: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 2000, default: 20, description: 'Requests that may go at once before qps applies.' }),
    ),
  },
  {
    additionalProperties: false,
    description:
      'Rate limit of the runtime\'s requests to the hypervisor API (vSphere and Proxmox; libvirt has no HTTP API). The runtime ' +
      'reads it as <PVE|VSPHERE>_RATE_LIMIT_QPS and _RATE_LIMIT_BURST; runtime.env may set those instead, not both.',
  },
);

const HealthCheckSpec = Type.Object(
  {
    enabled: Type.Optional(
      Type.Boolean({ default: true, description: 'Probe the hypervisor; false: Ready follows the runtime alone and nothing is probed.' }),
    ),
    interval: Type.Optional({ ...Duration, default: '30s', description: 'How often the hypervisor is probed.' }),
    timeout: Type.Optional({
      ...Duration,
      default: '10s',
      description: 'How long one probe may take; the hook\'s own budget (a few seconds) bounds it too.',
    }),
    failureThreshold: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 10, default: 3, description: 'Failed probes in a row, an interval apart, before Ready turns False.' }),
    ),
    successThreshold: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 10, default: 1, description: 'Successful probes in a row, an interval apart, before Ready turns True again.' }),
    ),
  },
  {
    additionalProperties: false,
    description:
      'How the Provider checks its hypervisor and when it changes Ready. Without this block every sync probes and Ready ' +
      'follows the latest probe; with it, upstream VirtRigaud\'s defaults apply.',
  },
);

const ConnectionPoolingSpec = Type.Object(
  {
    maxConnections: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 100, default: 10, description: 'Open connections to the hypervisor API at most.' }),
    ),
    maxIdleConnections: Type.Optional(
      Type.Integer({
        minimum: 1,
        description: 'Idle connections kept at most. Not honoured: idle connections close after idleTimeout, not by count.',
      }),
    ),
    connectionTimeout: Type.Optional({ ...Duration, default: '30s', description: 'How long opening a connection (TCP and TLS) may take.' }),
    idleTimeout: Type.Optional({ ...Duration, default: '5m', description: 'How long an unused connection stays open.' }),
  },
  {
    additionalProperties: false,
    description:
      'Connections of the runtime to the hypervisor API (vSphere and Proxmox; libvirt uses one SSH connection). The runtime ' +
      'reads it as <PVE|VSPHERE>_MAX_CONNECTIONS, _CONNECT_TIMEOUT and _IDLE_TIMEOUT; runtime.env may set those instead, not both.',
  },
);

const ProbeSpec = (what: string, ours: string) => ({
  ...Probe,
  description:
    `The runtime container's ${what} probe, replacing ours (${ours}). A probe naming no handler (exec, httpGet, tcpSocket, ` +
    'grpc) keeps our handler and takes its timing.',
});

const EnvVar = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z_][A-Za-z0-9_]*$', description: 'Variable name.' }),
    value: Type.Optional(Type.String({ maxLength: 4096, description: 'Its value.' })),
    valueFrom: Type.Optional({ ...EnvVarSource, description: 'Where the value comes from instead: a ConfigMap or Secret key, a pod field or a resource.' }),
  },
  {
    additionalProperties: false,
    description: 'One environment variable of the runtime container.',
    ...celRules({ rule: "!has(self.valueFrom) || !has(self.value) || self.value == ''", message: 'set value or valueFrom, not both' }),
  },
);

const RuntimeSpec = Type.Object(
  {
    mode: Type.Optional(RuntimeMode),
    image: Type.Optional(Type.String({ minLength: 1, maxLength: 512, description: 'Runtime image; default the hook server\'s own.' })),
    imagePullPolicy: Type.Optional(
      StringEnum(['Always', 'Never', 'IfNotPresent'] as const, {
        description: 'When the kubelet pulls the image; unset: Kubernetes\' rule (Always for :latest, else IfNotPresent).',
      }),
    ),
    imagePullSecrets: Type.Optional(
      Type.Array(LocalObjectName, { maxItems: 10, description: 'Secrets (of this namespace) with registry credentials for the image.' }),
    ),
    replicas: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, default: 1, description: 'Runtime pods.' })),
    resources: Type.Optional({
      ...ResourceRequirements,
      description:
        'Requests and limits of the runtime container (default: requests cpu 100m, memory 128Mi; limits memory 512Mi). ' +
        'claims is not honoured: a Provider cannot declare the pod\'s resourceClaims.',
    }),
    service: Type.Optional(
      Type.Object(
        {
          port: Type.Optional(
            Type.Integer({
              minimum: 1,
              maximum: 65535,
              default: 9090,
              description: 'Port the runtime serves the hook server on (internal; upstream\'s default 9443 means nothing here).',
            }),
          ),
          tls: Type.Optional(
            Type.Object(
              {
                enabled: Type.Optional(
                  Type.Boolean({
                    description:
                      'TLS between hook server and runtime. Only false is honoured: the runtime serves HTTP inside the cluster, ' +
                      'every call authenticated by a bearer token of this Provider alone.',
                  }),
                ),
                insecureSkipVerify: Type.Optional(Type.Boolean({ description: 'Skip verifying the runtime\'s certificate (no TLS: not honoured).' })),
                secretRef: Type.Optional({ ...LocalObjectName, description: 'Secret with tls.crt, tls.key and ca.crt (no TLS: not honoured).' }),
              },
              { additionalProperties: false, description: 'TLS of the runtime\'s service (upstream VirtRigaud\'s gRPC TLS).' },
            ),
          ),
        },
        { additionalProperties: false, description: 'The Service in front of the runtime pods.' },
      ),
    ),
    env: Type.Optional(
      Type.Array(EnvVar, {
        maxItems: 64,
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['name'],
        description: 'Environment of the runtime container (PVE_*, VSPHERE_*, LIBVIRT_* settings); replaces ours of the same name.',
      }),
    ),
    nodeSelector: Type.Optional(
      Type.Record(Type.String(), Type.String({ description: 'The label value the node must have.' }), {
        description: 'Node labels the runtime pods must be scheduled on.',
      }),
    ),
    tolerations: Type.Optional(Type.Array(Toleration, { maxItems: 20, description: 'Taints the runtime pods tolerate.' })),
    affinity: Type.Optional({ ...Affinity, description: 'Scheduling constraints of the runtime pods.' }),
    securityContext: Type.Optional({
      ...SecurityContext,
      description:
        'Security settings of the runtime container, over ours: no privilege escalation, read-only root filesystem, all ' +
        'capabilities dropped (the pod runs as UID 65532, non-root, seccomp RuntimeDefault). Each field set here wins.',
    }),
    livenessProbe: Type.Optional({
      ...ProbeSpec('liveness', 'GET /healthz every 20s'),
      ...celRules(PROBE_HANDLER_RULE, {
        rule: '!has(self.successThreshold) || self.successThreshold == 1',
        message: 'a liveness probe\'s successThreshold must be 1',
      }),
    }),
    readinessProbe: Type.Optional(ProbeSpec('readiness', 'GET /readyz every 10s')),
    logLevel: Type.Optional(
      StringEnum(['debug', 'info', 'warn', 'error'] as const, { description: 'Log level of the runtime (LOG_LEVEL); default info.' }),
    ),
    logFormat: Type.Optional(
      StringEnum(['text', 'json'] as const, { description: 'Log format of the runtime (LOG_FORMAT): json lines (the default) or text lines.' }),
    ),
  },
  {
    additionalProperties: false,
    description: 'The runtime that holds the credentials and serves the driver (Remote mode): its image, pods and Service.',
    ...celRules(
      { rule: "!has(self.logLevel) || !has(self.env) || !self.env.exists(e, e.name == 'LOG_LEVEL')", message: 'set logLevel or env LOG_LEVEL, not both' },
      { rule: "!has(self.logFormat) || !has(self.env) || !self.env.exists(e, e.name == 'LOG_FORMAT')", message: 'set logFormat or env LOG_FORMAT, not both' },
    ),
  },
);

export const ProviderSpec = Type.Object(
  {
    type: ProviderType,
    endpoint: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 2048,
        description: 'Hypervisor API address: https://vcenter:443, https://pve:8006, qemu+ssh://host/system.',
      }),
    ),
    credentialSecretRef: Type.Optional(
      Type.Object(
        {
          name: { ...ObjectName, description: 'Name of the Secret.' },
          namespace: Type.Optional({
            ...NamespaceName,
            description:
              'Namespace of the Secret; only the Provider\'s own is allowed (the runtime pod can mount no other), so this is ' +
              'for manifests that spell it out. Another namespace: Ready=False, reason CredentialsNotAllowed.',
          }),
        },
        { additionalProperties: false, description: 'Secret with the hypervisor credentials, mounted only into the provider runtime.' },
      ),
    ),
    insecureSkipVerify: Type.Optional(
      Type.Boolean({
        description:
          'Skip verifying the hypervisor\'s TLS certificate (vSphere, Proxmox; libvirt always verifies the SSH host key). ' +
          'Verification is on unless this says true; the status then says it is off (condition TLSVerified). Same as the ' +
          'runtime.env variable PVE_INSECURE_SKIP_VERIFY or VSPHERE_INSECURE_SKIP_VERIFY: set one or the other.',
      }),
    ),
    allowedNamespaces: Type.Optional(
      Type.Array(
        Type.String({
          minLength: 1,
          maxLength: 63,
          pattern: '^(\\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$',
          description: 'A namespace name, or * for all.',
        }),
        {
          maxItems: 64,
          description: 'Namespaces whose VirtualMachines may use this Provider besides its own; "*" admits all.',
        },
      ),
    ),
    defaults: Type.Optional(ProviderDefaultsSpec),
    rateLimit: Type.Optional(RateLimitSpec),
    healthCheck: Type.Optional(HealthCheckSpec),
    connectionPooling: Type.Optional(ConnectionPoolingSpec),
    runtime: Type.Optional(RuntimeSpec),
  },
  {
    additionalProperties: false,
    description: 'A hypervisor endpoint, its credentials, and the runtime that talks to it.',
    ...celRules(
      { rule: "self.type == 'simulator' || has(self.endpoint)", message: 'endpoint is required' },
      {
        rule: `!has(self.insecureSkipVerify) || !has(self.runtime) || !has(self.runtime.env) || !(${envNamed(INSECURE_SKIP_VERIFY_ENV)})`,
        message: 'set insecureSkipVerify or runtime.env PVE_INSECURE_SKIP_VERIFY / VSPHERE_INSECURE_SKIP_VERIFY, not both',
      },
      {
        rule: `!has(self.rateLimit) || !has(self.runtime) || !has(self.runtime.env) || !(${envNamed(prefixed(HTTP_CLIENT_ENV.qps, HTTP_CLIENT_ENV.burst))})`,
        message: 'set rateLimit or runtime.env *_RATE_LIMIT_QPS / *_RATE_LIMIT_BURST, not both',
      },
      {
        rule:
          '!has(self.connectionPooling) || !has(self.runtime) || !has(self.runtime.env) || ' +
          `!(${envNamed(prefixed(HTTP_CLIENT_ENV.maxConnections, HTTP_CLIENT_ENV.connectionTimeout, HTTP_CLIENT_ENV.idleTimeout))})`,
        message: 'set connectionPooling or runtime.env *_MAX_CONNECTIONS / *_CONNECT_TIMEOUT / *_IDLE_TIMEOUT, not both',
      },
    ),
  },
);
export type ProviderSpec = Static<typeof ProviderSpec>;

export const ProviderStatus = Type.Object(
  {
    version: Type.Optional(Type.String({ description: 'Hypervisor version as it reports it.' })),
    capabilities: Type.Optional(
      Type.Array(Type.String({ description: 'A capability flag.' }), { description: 'Driver capability flags that are on.' }),
    ),
    hosts: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.String({ description: 'Host (node) name.' }),
            cpus: Type.Integer({ description: 'Physical CPU threads.' }),
            cpusAllocated: Type.Integer({ description: 'Virtual CPUs of the VMs on it.' }),
            memory: Type.String({ description: 'Memory, e.g. 256Gi.' }),
            memoryAllocated: Type.String({ description: 'Memory of the VMs on it.' }),
            vms: Type.Integer({ description: 'VMs on it.' }),
          },
          { additionalProperties: false, description: 'One host of the hypervisor.' },
        ),
        { description: 'The hypervisor\'s hosts, as the last probe found them.' },
      ),
    ),
    datastores: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.String({ description: 'Datastore (storage) name.' }),
            capacity: Type.String({ description: 'Its size.' }),
            used: Type.String({ description: 'How much of it is used.' }),
          },
          { additionalProperties: false, description: 'One datastore of the hypervisor.' },
        ),
        { description: 'The hypervisor\'s datastores, as the last probe found them.' },
      ),
    ),
    health: Type.Optional(
      Type.Object(
        {
          healthy: Type.Boolean({ description: 'Whether the thresholds of spec.healthCheck count the hypervisor as healthy.' }),
          consecutiveFailures: Type.Integer({ minimum: 0, maximum: 10, description: 'Failed probes in a row (counted an interval apart).' }),
          consecutiveSuccesses: Type.Integer({ minimum: 0, maximum: 10, description: 'Successful probes in a row (counted an interval apart).' }),
          lastCountedTime: Type.Optional(
            Type.String({ format: 'date-time', description: 'When a probe last changed the counts; the next one counts an interval later.' }),
          ),
        },
        { additionalProperties: false, description: 'Probe counts against spec.healthCheck\'s thresholds (only with spec.healthCheck).' },
      ),
    ),
    runtimeEndpoints: Type.Optional(
      Type.Array(
        Type.String({ maxLength: 64, pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[0-9.]+):[0-9]{1,5}$', description: 'A runtime pod\'s address and port.' }),
        {
          maxItems: 10,
          description:
            'While the Provider is being deleted: its runtime pods\' addresses, so VMs still being deleted can reach the ' +
            'runtime after its Service is gone (a namespace deletion removes it first).',
        },
      ),
    ),
    ...CommonStatusFields,
  },
  { additionalProperties: false, description: 'What the Provider found: hypervisor version, capabilities, inventory and conditions.' },
);
export type ProviderStatus = Static<typeof ProviderStatus>;

export const ProviderKind: KindDefinition = {
  kind: 'Provider',
  plural: 'providers',
  singular: 'provider',
  shortNames: ['vrprovider', 'prov'],
  description: 'A hypervisor endpoint that VirtualMachines are placed on.',
  spec: ProviderSpec,
  status: ProviderStatus,
  printerColumns: [
    { name: 'Type', type: 'string', jsonPath: '.spec.type' },
    { name: 'Endpoint', type: 'string', jsonPath: '.spec.endpoint' },
    { name: 'Version', type: 'string', jsonPath: '.status.version' },
    READY_COLUMN,
    AGE_COLUMN,
    REASON_COLUMN,
  ],
};

export const ProviderObject = ResourceObject('Provider', ProviderSpec);
export type ProviderObject = Static<typeof ProviderObject>;
