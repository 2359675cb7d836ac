// A tiny PVE stand-in for unit tests: a node:http server on 127.0.0.1 that answers from a route
// table (usually with recorded bodies from test/fixtures/proxmox/recorded) and records every
// request as received on the wire.

import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { proxmoxConfigFromEnv, type ProxmoxConfig } from '../../../src/hypervisors/proxmox/config.js';

const RECORDED = fileURLToPath(new URL('../../fixtures/proxmox/recorded/', import.meta.url));

/** A recorded response body (the whole envelope). */
export function recorded(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(`${RECORDED}${name}.json`, 'utf8')) as Record<string, unknown>;
}

/** The `data` of a recorded body. */
export function recordedData(name: string): unknown {
  return recorded(name)['data'];
}

export interface StubRequest {
  method: string;
  /** Below /api2/json, without the query, percent-decoded. */
  path: string;
  /** The path as sent, still encoded. */
  rawPath: string;
  query: URLSearchParams;
  /** The raw body bytes as sent. */
  body: string;
  form: URLSearchParams;
  headers: IncomingHttpHeaders;
}

export interface StubResponse {
  status?: number;
  reason?: string;
  /** Sent as JSON; `{data}` is added when `data` is given instead. */
  body?: unknown;
  data?: unknown;
  delayMs?: number;
}

export type Handler = (request: StubRequest) => StubResponse | Promise<StubResponse>;

export interface Stub {
  url: string;
  requests: StubRequest[];
  close: () => Promise<void>;
  /** Requests matching `METHOD /path` (path may be a RegExp). */
  calls: (method: string, path: string | RegExp) => StubRequest[];
}

export async function startStub(handler: Handler): Promise<Stub> {
  const requests: StubRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://stub');
      const body = Buffer.concat(chunks).toString('utf8');
      const request: StubRequest = {
        method: req.method ?? 'GET',
        path: decodeURIComponent(url.pathname.replace(/^\/api2\/json/, '')),
        rawPath: url.pathname,
        query: url.searchParams,
        body,
        form: new URLSearchParams(body),
        headers: req.headers,
      };
      requests.push(request);
      void Promise.resolve(handler(request)).then(async (response) => {
        if (response.delayMs !== undefined) await new Promise((resolve) => setTimeout(resolve, response.delayMs));
        const payload = response.body !== undefined ? response.body : { data: response.data ?? null };
        res.statusCode = response.status ?? 200;
        if (response.reason !== undefined) res.statusMessage = response.reason;
        res.setHeader('content-type', 'application/json;charset=UTF-8');
        res.end(payload === '' ? '' : JSON.stringify(payload));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
    calls: (method, path) =>
      requests.filter((request) => request.method === method && (typeof path === 'string' ? request.path === path : path.test(request.path))),
  };
}

/** Routes keyed `METHOD /path`; a value is a handler or a fixed response. Unknown routes answer 501 like PVE. */
export function routes(table: Record<string, Handler | StubResponse>): Handler {
  return (request) => {
    const route = table[`${request.method} ${request.path}`];
    if (route === undefined) {
      const message = `Method '${request.method} ${request.path}' not implemented`;
      return { status: 501, reason: message, body: { data: null, message } };
    }
    return typeof route === 'function' ? route(request) : route;
  };
}

export const TOKEN_ENV = { PVE_TOKEN_ID: 'virtrigaud@pve!vrtg', PVE_TOKEN_SECRET: 'secret-token' };

export function stubConfig(stub: Stub, env: Record<string, string> = {}): ProxmoxConfig {
  return proxmoxConfigFromEnv({ PVE_ENDPOINT: stub.url, ...TOKEN_ENV, ...env });
}

/** A PVE error answer: the reason phrase and, since PVE 8.4, the body's `message` carry the text. */
export function pveError(status: number, message: string, errors?: Record<string, string>): StubResponse {
  const body: Record<string, unknown> = { data: null, message: `${message}\n` };
  if (errors !== undefined) body['errors'] = errors;
  return { status, reason: message, body };
}
