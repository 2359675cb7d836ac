import { Type, type Static } from '@sinclair/typebox';
import {
  AGE_COLUMN,
  CommonStatusFields,
  LocalObjectReference,
  Quantity,
  READY_COLUMN,
  REASON_COLUMN,
  ResourceObject,
  StringEnum,
  celRules,
  type KindDefinition,
} from './common.js';

export const ProviderType = StringEnum(['simulator', 'vsphere', 'libvirt', 'proxmox'] as const);
export type ProviderType = Static<typeof ProviderType>;

export const RuntimeMode = StringEnum(['Remote', 'InProcess'] as const, {
  description:
    'Remote: a provider runtime Deployment holds the credentials and serves the driver. InProcess: the hook ' +
    'server runs the driver itself (the embedded simulator). Defaults to InProcess for simulator, Remote otherwise.',
});
export type RuntimeMode = Static<typeof RuntimeMode>;

const ResourceAmounts = Type.Object(
  {
    cpu: Type.Optional(Type.String({ maxLength: 16, pattern: '^[0-9]+(\\.[0-9]+)?m?$' })),
    memory: Type.Optional(Quantity),
  },
  { additionalProperties: false },
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
    credentialSecretRef: Type.Optional({
      ...LocalObjectReference,
      description: 'Secret with the hypervisor credentials, mounted only into the provider runtime.',
    }),
    allowedNamespaces: Type.Optional(
      Type.Array(Type.String({ minLength: 1, maxLength: 63, pattern: '^(\\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$' }), {
        maxItems: 64,
        description: 'Namespaces whose VirtualMachines may use this Provider besides its own; "*" admits all.',
      }),
    ),
    runtime: Type.Optional(
      Type.Object(
        {
          mode: Type.Optional(RuntimeMode),
          image: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
          replicas: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, default: 1 })),
          resources: Type.Optional(
            Type.Object(
              {
                requests: Type.Optional(ResourceAmounts),
                limits: Type.Optional(ResourceAmounts),
              },
              { additionalProperties: false, description: 'Requests and limits of the runtime container.' },
            ),
          ),
          service: Type.Optional(
            Type.Object(
              { port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, default: 9090 })) },
              { additionalProperties: false },
            ),
          ),
          env: Type.Optional(
            Type.Array(
              Type.Object(
                {
                  name: Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }),
                  value: Type.Optional(Type.String({ maxLength: 4096 })),
                },
                { additionalProperties: false },
              ),
              { maxItems: 64, 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'] },
            ),
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  {
    additionalProperties: false,
    ...celRules({ rule: "self.type == 'simulator' || has(self.endpoint)", message: 'endpoint is required' }),
  },
);
export type ProviderSpec = Static<typeof ProviderSpec>;

export const ProviderStatus = Type.Object(
  {
    version: Type.Optional(Type.String({ description: 'Hypervisor version as it reports it.' })),
    capabilities: Type.Optional(Type.Array(Type.String(), { description: 'Driver capability flags that are on.' })),
    hosts: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.String(),
            cpus: Type.Integer(),
            cpusAllocated: Type.Integer(),
            memory: Type.String(),
            memoryAllocated: Type.String(),
            vms: Type.Integer(),
          },
          { additionalProperties: false },
        ),
      ),
    ),
    datastores: Type.Optional(
      Type.Array(
        Type.Object(
          { name: Type.String(), capacity: Type.String(), used: Type.String() },
          { additionalProperties: false },
        ),
      ),
    ),
    runtimeEndpoints: Type.Optional(
      Type.Array(Type.String({ maxLength: 64, pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[0-9.]+):[0-9]{1,5}$' }), {
        maxItems: 10,
        description:
          'While the Provider is being deleted: its runtime pods\' addresses, so VMs still being deleted can reach the ' +
          'runtime after its Service is gone (a namespace deletion removes it first).',
      }),
    ),
    ...CommonStatusFields,
  },
  { additionalProperties: false },
);
export type ProviderStatus = Static<typeof ProviderStatus>;

export const ProviderKind: KindDefinition = {
  kind: 'Provider',
  plural: 'providers',
  singular: 'provider',
  shortNames: ['vrprovider'],
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
