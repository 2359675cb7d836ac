// The parts of built-in Kubernetes objects that hooks read, as contracts: a related Secret's data
// and a runtime Deployment's status. Everything else on them passes through unread.
import { Type, type Static } from '@sinclair/typebox';
import { ObjectMeta } from './crds/common.js';

export const SecretObject = Type.Object(
  {
    apiVersion: Type.Literal('v1'),
    kind: Type.Literal('Secret'),
    metadata: ObjectMeta,
    data: Type.Optional(Type.Record(Type.String(), Type.String())),
  },
  { additionalProperties: true },
);
export type SecretObject = Static<typeof SecretObject>;

const Count = Type.Integer({ minimum: 0 });

export const DeploymentObject = Type.Object(
  {
    apiVersion: Type.Literal('apps/v1'),
    kind: Type.Literal('Deployment'),
    metadata: ObjectMeta,
    status: Type.Optional(
      Type.Object(
        {
          availableReplicas: Type.Optional(Count),
          updatedReplicas: Type.Optional(Count),
          observedGeneration: Type.Optional(Count),
          conditions: Type.Optional(
            Type.Array(
              Type.Object(
                {
                  type: Type.String({ maxLength: 316 }),
                  status: Type.String({ maxLength: 16 }),
                  reason: Type.Optional(Type.String({ maxLength: 1024 })),
                  message: Type.Optional(Type.String({ maxLength: 32768 })),
                },
                { additionalProperties: true },
              ),
              { maxItems: 32 },
            ),
          ),
        },
        { additionalProperties: true },
      ),
    ),
  },
  { additionalProperties: true },
);
export type DeploymentObject = Static<typeof DeploymentObject>;
