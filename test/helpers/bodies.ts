import { readFileSync } from 'node:fs';

type Json = Record<string, unknown>;

/** A request body from examples/hooks, parsed afresh each time so tests can change it. */
export function exampleBody(name: string): Json & { parent: Json & { metadata: Json; spec: Json; status?: Json }; related: Record<string, Record<string, Json>> } {
  return JSON.parse(readFileSync(new URL(`../../examples/hooks/${name}.json`, import.meta.url), 'utf8'));
}

export function capturedBody(name: string): Json {
  return JSON.parse(readFileSync(new URL(`../fixtures/metacontroller/captured-v4.11.10/${name}`, import.meta.url), 'utf8'));
}

/** Secret data as the apiserver sends it: base64 values. */
export function secret(namespace: string, name: string, data: Record<string, string>): Json {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace, uid: `secret-${name}` },
    type: 'Opaque',
    data: Object.fromEntries(Object.entries(data).map(([key, value]) => [key, Buffer.from(value).toString('base64')])),
  };
}
