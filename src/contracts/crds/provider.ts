import { Type, type Static } from '@sinclair/typebox';
import {
  AGE_COLUMN,
  CommonStatusFields,
  LocalObjectReference,
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
    runtime: Type.Optional(
      Type.Object(
        {
          mode: Type.Optional(RuntimeMode),
          image: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
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
