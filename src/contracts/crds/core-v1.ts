// Kubernetes core/v1 types that our kinds embed and pass on to the Pods they describe (a
// Provider's runtime Deployment today; VMSet and VMMigration templates later): Affinity,
// Toleration, SecurityContext, Probe, EnvVarSource, ResourceRequirements.
//
// Typed, field by field, with a description on every node, so the apiserver refuses a bad value
// when the object is applied rather than Metacontroller failing to create the Pod's owner later.
// The enums and rules are Kubernetes' own validation of these types (what the apiserver would
// refuse in a Pod); nothing stricter. Strings that a CEL rule reads carry a maxLength, so the
// apiserver's cost estimate of each rule stays bounded.
import { Type, type Static } from '@sinclair/typebox';
import { QUANTITY_PATTERN } from '../quantity.js';
import { IntOrString, ObjectName, StringEnum, celRules, type CelRule } from './common.js';

export { Affinity, LabelSelector, LabelSelectorRequirement, NodeAffinity, NodeSelectorTerm, PodAffinityTerm, Toleration } from './core-v1-scheduling.js';

const ProfileType = (what: string) =>
  StringEnum(['Unconfined', 'RuntimeDefault', 'Localhost'] as const, {
    maxLength: 16,
    description: `Unconfined, RuntimeDefault (the container runtime's ${what} profile) or Localhost (a profile on the node).`,
  });
const localhostRule = {
  rule: "self.type == 'Localhost' ? has(self.localhostProfile) : !has(self.localhostProfile)",
  message: 'localhostProfile is required with type Localhost and allowed only with it',
};

export const SecurityContext = Type.Object(
  {
    allowPrivilegeEscalation: Type.Optional(
      Type.Boolean({ description: 'Whether a process may gain more privileges than its parent (no_new_privs unset).' }),
    ),
    appArmorProfile: Type.Optional(
      Type.Object(
        {
          type: ProfileType('AppArmor'),
          localhostProfile: Type.Optional(Type.String({ description: 'Name of the AppArmor profile loaded on the node (type Localhost).' })),
        },
        { additionalProperties: false, description: 'The AppArmor profile of the container.', ...celRules(localhostRule) },
      ),
    ),
    capabilities: Type.Optional(
      Type.Object(
        {
          add: Type.Optional(
            Type.Array(Type.String({ maxLength: 64, description: 'A Linux capability, e.g. NET_ADMIN.' }), {
              maxItems: 64,
              description: 'Linux capabilities added to the container runtime\'s default set.',
            }),
          ),
          drop: Type.Optional(
            Type.Array(Type.String({ maxLength: 64, description: 'A Linux capability, or ALL.' }), {
              maxItems: 64,
              description: 'Linux capabilities removed from the default set (ALL: every one).',
            }),
          ),
        },
        { additionalProperties: false, description: 'Linux capabilities added to and dropped from the container.' },
      ),
    ),
    privileged: Type.Optional(Type.Boolean({ description: 'Run the container privileged, like a root process on the node.' })),
    procMount: Type.Optional(
      StringEnum(['Default', 'Unmasked'] as const, { description: 'Default masks parts of /proc; Unmasked does not (needs a user namespace).' }),
    ),
    readOnlyRootFilesystem: Type.Optional(Type.Boolean({ description: 'Mount the container\'s root filesystem read-only.' })),
    runAsGroup: Type.Optional(Type.Integer({ minimum: 0, description: 'The GID the container\'s processes run with.' })),
    runAsNonRoot: Type.Optional(Type.Boolean({ description: 'Refuse to start the container if it would run as UID 0.' })),
    runAsUser: Type.Optional(Type.Integer({ minimum: 0, description: 'The UID the container\'s processes run as.' })),
    seLinuxOptions: Type.Optional(
      Type.Object(
        {
          level: Type.Optional(Type.String({ description: 'SELinux level label.' })),
          role: Type.Optional(Type.String({ description: 'SELinux role label.' })),
          type: Type.Optional(Type.String({ description: 'SELinux type label.' })),
          user: Type.Optional(Type.String({ description: 'SELinux user label.' })),
        },
        { additionalProperties: false, description: 'The SELinux context of the container.' },
      ),
    ),
    seccompProfile: Type.Optional(
      Type.Object(
        {
          type: ProfileType('seccomp'),
          localhostProfile: Type.Optional(
            Type.String({ description: 'Path of the seccomp profile below the kubelet\'s seccomp directory (type Localhost).' }),
          ),
        },
        { additionalProperties: false, description: 'The seccomp profile of the container.', ...celRules(localhostRule) },
      ),
    ),
    windowsOptions: Type.Optional(
      Type.Object(
        {
          gmsaCredentialSpec: Type.Optional(Type.String({ description: 'The GMSA credential spec itself (Windows).' })),
          gmsaCredentialSpecName: Type.Optional(Type.String({ description: 'Name of the GMSACredentialSpec object to use (Windows).' })),
          hostProcess: Type.Optional(Type.Boolean({ description: 'Run as a Windows host process container.' })),
          runAsUserName: Type.Optional(Type.String({ description: 'The Windows user the entrypoint runs as.' })),
        },
        { additionalProperties: false, description: 'Windows-specific settings (ignored on Linux nodes).' },
      ),
    ),
  },
  {
    additionalProperties: false,
    description: 'Security settings of a container; they override the pod\'s where both are set.',
    ...celRules({
      rule: '!has(self.privileged) || !self.privileged || !has(self.allowPrivilegeEscalation) || self.allowPrivilegeEscalation',
      message: 'a privileged container cannot have allowPrivilegeEscalation false',
    }),
  },
);
export type SecurityContext = Static<typeof SecurityContext>;

const PortNumberOrName = (description: string) =>
  IntOrString({ pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 15, description });

/** A probe has one handler (Kubernetes); none keeps the one it replaces (see the embedding field). */
export const PROBE_HANDLER_RULE: CelRule = {
  rule: '(has(self.exec) ? 1 : 0) + (has(self.httpGet) ? 1 : 0) + (has(self.tcpSocket) ? 1 : 0) + (has(self.grpc) ? 1 : 0) <= 1',
  message: 'set at most one of exec, httpGet, tcpSocket and grpc',
};

export const Probe = Type.Object(
  {
    exec: Type.Optional(
      Type.Object(
        {
          command: Type.Optional(
            Type.Array(Type.String({ description: 'One argument.' }), {
              description: 'Command run in the container (not in a shell); exit status 0 is healthy.',
            }),
          ),
        },
        { additionalProperties: false, description: 'Probe by running a command in the container.' },
      ),
    ),
    httpGet: Type.Optional(
      Type.Object(
        {
          host: Type.Optional(Type.String({ description: 'Host to connect to; default the pod IP.' })),
          httpHeaders: Type.Optional(
            Type.Array(
              Type.Object(
                {
                  name: Type.String({ description: 'Header name.' }),
                  value: Type.String({ description: 'Header value.' }),
                },
                { additionalProperties: false, description: 'One request header.' },
              ),
              { description: 'Headers sent with the request.' },
            ),
          ),
          path: Type.Optional(Type.String({ description: 'Path requested.' })),
          port: PortNumberOrName('Port number, or the name of a container port.'),
          scheme: Type.Optional(StringEnum(['HTTP', 'HTTPS'] as const, { description: 'HTTP (the default) or HTTPS (certificate not verified).' })),
        },
        { additionalProperties: false, description: 'Probe by an HTTP GET; a status from 200 to 399 is healthy.' },
      ),
    ),
    tcpSocket: Type.Optional(
      Type.Object(
        {
          host: Type.Optional(Type.String({ description: 'Host to connect to; default the pod IP.' })),
          port: PortNumberOrName('Port number, or the name of a container port.'),
        },
        { additionalProperties: false, description: 'Probe by opening a TCP connection.' },
      ),
    ),
    grpc: Type.Optional(
      Type.Object(
        {
          port: Type.Integer({ minimum: 1, maximum: 65535, description: 'Port of the gRPC health service.' }),
          service: Type.Optional(Type.String({ description: 'Service name sent in the gRPC HealthCheckRequest.' })),
        },
        { additionalProperties: false, description: 'Probe by the gRPC health checking protocol.' },
      ),
    ),
    initialDelaySeconds: Type.Optional(Type.Integer({ minimum: 0, description: 'Seconds after the container starts before the first probe.' })),
    periodSeconds: Type.Optional(Type.Integer({ minimum: 1, description: 'Seconds between probes.' })),
    timeoutSeconds: Type.Optional(Type.Integer({ minimum: 1, description: 'Seconds a probe may take.' })),
    successThreshold: Type.Optional(Type.Integer({ minimum: 1, description: 'Consecutive successes after a failure to count as healthy again.' })),
    failureThreshold: Type.Optional(Type.Integer({ minimum: 1, description: 'Consecutive failures to count as unhealthy.' })),
    terminationGracePeriodSeconds: Type.Optional(
      Type.Integer({ minimum: 1, description: 'Grace period for stopping the container after this probe failed (overrides the pod\'s).' }),
    ),
  },
  {
    additionalProperties: false,
    description: 'How the kubelet checks a container: one of exec, httpGet, tcpSocket or grpc, and its timing.',
    ...celRules(PROBE_HANDLER_RULE),
  },
);
export type Probe = Static<typeof Probe>;

/** A quantity as Kubernetes writes resource amounts: 500m, 2, 4Gi, or a plain integer. */
export const ResourceQuantity = (description: string) => IntOrString({ pattern: QUANTITY_PATTERN, description });

const KeyReference = (what: string) =>
  Type.Object(
    {
      name: Type.Optional({ ...ObjectName, description: `Name of the ${what} in the pod's namespace.` }),
      key: Type.String({ minLength: 1, maxLength: 253, description: `The key of the ${what} whose value is used.` }),
      optional: Type.Optional(Type.Boolean({ description: `Start the container even if the ${what} or its key does not exist.` })),
    },
    { additionalProperties: false, description: `A key of a ${what} in the pod's namespace.` },
  );

export const EnvVarSource = Type.Object(
  {
    configMapKeyRef: Type.Optional(KeyReference('ConfigMap')),
    secretKeyRef: Type.Optional(KeyReference('Secret')),
    fieldRef: Type.Optional(
      Type.Object(
        {
          apiVersion: Type.Optional(Type.String({ description: 'Version of the schema fieldPath is written in; default v1.' })),
          fieldPath: Type.String({
            maxLength: 512,
            pattern:
              "^(metadata\\.(name|namespace|uid)|metadata\\.(labels|annotations)\\['[^']+'\\]|spec\\.(nodeName|serviceAccountName)|status\\.(hostIP|hostIPs|podIP|podIPs))$",
            description:
              "A field of the pod: metadata.name, metadata.namespace, metadata.uid, metadata.labels['<key>'], " +
              "metadata.annotations['<key>'], spec.nodeName, spec.serviceAccountName, status.hostIP(s) or status.podIP(s).",
          }),
        },
        { additionalProperties: false, description: 'A field of the pod (the downward API).' },
      ),
    ),
    resourceFieldRef: Type.Optional(
      Type.Object(
        {
          containerName: Type.Optional(Type.String({ description: 'The container whose resources are read; default this one.' })),
          resource: Type.String({
            pattern: '^(limits|requests)\\.(cpu|memory|ephemeral-storage|hugepages-[a-zA-Z0-9]+)$',
            description: 'limits.cpu, limits.memory, limits.ephemeral-storage, requests.cpu, … or a hugepages-<size> amount.',
          }),
          divisor: Type.Optional(ResourceQuantity('The amount is divided by this (default 1), e.g. 1Mi for memory in MiB.')),
        },
        { additionalProperties: false, description: 'A resource limit or request of a container.' },
      ),
    ),
  },
  {
    additionalProperties: false,
    description: 'Where an environment variable takes its value from: exactly one of its fields.',
    ...celRules({
      rule: '(has(self.configMapKeyRef) ? 1 : 0) + (has(self.secretKeyRef) ? 1 : 0) + (has(self.fieldRef) ? 1 : 0) + (has(self.resourceFieldRef) ? 1 : 0) == 1',
      message: 'set exactly one of configMapKeyRef, secretKeyRef, fieldRef and resourceFieldRef',
    }),
  },
);
export type EnvVarSource = Static<typeof EnvVarSource>;

const ResourceList = (description: string) =>
  Type.Record(Type.String(), ResourceQuantity('An amount of the resource named by the key.'), { description });

export const ResourceRequirements = Type.Object(
  {
    limits: Type.Optional(ResourceList('The most of each resource (cpu, memory, ephemeral-storage, …) the container may use.')),
    requests: Type.Optional(ResourceList('The amount of each resource the scheduler reserves for the container.')),
    claims: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.String({ minLength: 1, maxLength: 63, description: 'Name of an entry of the pod\'s spec.resourceClaims.' }),
            request: Type.Optional(Type.String({ description: 'One request of that claim; default all of them.' })),
          },
          { additionalProperties: false, description: 'A dynamically allocated resource the container uses.' },
        ),
        {
          'x-kubernetes-list-type': 'map',
          'x-kubernetes-list-map-keys': ['name'],
          description: 'Dynamic resource claims (DRA) of the pod that the container uses.',
        },
      ),
    ),
  },
  { additionalProperties: false, description: 'Compute resources of a container: limits, requests and resource claims.' },
);
export type ResourceRequirements = Static<typeof ResourceRequirements>;

export const LocalObjectName = Type.Object(
  { name: { ...ObjectName, description: 'Name of the object in the same namespace.' } },
  { additionalProperties: false, description: 'An object of the same namespace, by name.' },
);

