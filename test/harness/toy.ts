// A toy CompositeController ("widgets") and its hook server, for testing the stand-in itself.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Test } from 'tap';
import { FakeClock } from '../helpers/clock.js';
import { FakeCluster, MetacontrollerStandIn, type KubeObject, type ObjectValidator } from './index.js';

export const GROUP = 'toy.example.io';
export const API_VERSION = `${GROUP}/v1`;
export const FINALIZER = 'metacontroller.io/compositecontroller-widgets';

export interface HookRequest {
  parent: KubeObject;
  children?: Record<string, Record<string, KubeObject>>;
  related?: Record<string, Record<string, KubeObject>>;
  finalizing?: boolean;
}
export interface Reply {
  status?: number;
  body?: unknown;
  raw?: string;
  headers?: Record<string, string>;
  delayMs?: number;
}
export type Handler = (hook: string, request: HookRequest) => Reply;

export const widgetCrd = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: `widgets.${GROUP}` },
  spec: {
    group: GROUP,
    scope: 'Namespaced',
    names: { kind: 'Widget', plural: 'widgets' },
    versions: [{ name: 'v1', served: true, storage: true, subresources: { status: {} } }],
  },
};

export function widgetController(spec: Record<string, unknown> = {}, hooks: string[] = ['sync']) {
  const webhook = (hook: string) => ({ version: 'v2', webhook: { url: `http://hooks.invalid/widgets/${hook}`, timeout: '10s' } });
  return {
    apiVersion: 'metacontroller.k8s.io/v1alpha1',
    kind: 'CompositeController',
    metadata: { name: 'widgets' },
    spec: {
      generateSelector: true,
      parentResource: { apiVersion: API_VERSION, resource: 'widgets' },
      hooks: Object.fromEntries(hooks.map((hook) => [hook, webhook(hook)])),
      ...spec,
    },
  };
}

export async function hookServer(t: Test, handler: Handler): Promise<string> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let data = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (data += chunk));
    req.on('end', () => {
      const reply = handler(String(req.url).replace('/widgets/', ''), JSON.parse(data) as HookRequest);
      const send = () => {
        res.writeHead(reply.status ?? 200, { 'content-type': 'application/json', ...reply.headers });
        res.end(reply.raw ?? JSON.stringify(reply.body ?? {}));
      };
      if (reply.delayMs) setTimeout(send, reply.delayMs);
      else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export interface Setup {
  clock: FakeClock;
  cluster: FakeCluster;
  mc: MetacontrollerStandIn;
}

export async function setup(
  t: Test,
  handler: Handler,
  options: { controller?: object; keyStyle?: 'v1' | 'v2'; requestTimeoutMs?: number; validators?: Map<string, ObjectValidator> } = {},
): Promise<Setup> {
  const clock = new FakeClock();
  const cluster = new FakeCluster({ clock, ...(options.validators ? { validators: options.validators } : {}) });
  const mc = new MetacontrollerStandIn({
    cluster,
    clock,
    baseUrl: await hookServer(t, handler),
    controllers: [options.controller ?? widgetController()],
    crds: [widgetCrd],
    ...(options.keyStyle ? { keyStyle: options.keyStyle } : {}),
    ...(options.requestTimeoutMs ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
  });
  t.teardown(() => mc.stop());
  return { clock, cluster, mc };
}

export function widget(name: string, spec: Record<string, unknown> = {}): KubeObject {
  return { apiVersion: API_VERSION, kind: 'Widget', metadata: { name, namespace: 'team-a' }, spec };
}

export const getWidget = (cluster: FakeCluster, name: string) => cluster.get(API_VERSION, 'Widget', 'team-a', name);
export const syncOk = (status: Record<string, unknown> = {}) => ({ body: { status, children: [] } });
