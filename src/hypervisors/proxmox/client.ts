// The PVE REST wire protocol and nothing else: one keep-alive connection pool per endpoint,
// authentication, parameter encoding, the `{data}` envelope, and errors as typed Driver errors.
// It knows no VM semantics; the verb modules decide what to ask. Every request it makes is counted
// in `proxmox_operator_api_requests_total` (the seed's metric) when given a registry.

import { Counter, type Registry } from 'prom-client';
import type { Pool } from 'undici';
import { httpsPool } from '../common/https-pool.js';
import { UnauthorizedError, UnreachableError, type DriverError } from '../../contracts/driver.js';
import { Authenticator } from './auth.js';
import type { ProxmoxConfig } from './config.js';
import { errorFromResponse, errorFromTransport } from './errors.js';
import { KeyedLimiter } from './limiter.js';
import { untilAborted } from './signals.js';
import { isRow } from './values.js';

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';
export type ParamValue = string | number | boolean | readonly string[] | undefined;
export type Params = Readonly<Record<string, ParamValue>>;

export interface RequestOptions {
  signal?: AbortSignal | undefined;
}

export interface ProxmoxClientOptions {
  /** Open connections to the endpoint at most; PVE's pveproxy runs 3 workers by default. */
  connections?: number;
  /** Headers and body must each arrive within this time. */
  requestTimeoutMs?: number;
  /** Parallel state-changing calls per node (see limiter.ts). */
  mutationsPerNode?: number;
  /** For tests of ticket renewal. */
  now?: () => number;
  /** Where `proxmox_operator_api_requests_total` is counted (the provider runtime's /metrics); unset: nowhere. */
  metricsRegistry?: Registry;
}

const DEFAULTS = { connections: 8, requestTimeoutMs: 30_000, mutationsPerNode: 4 };

/**
 * Parameters as PVE decodes them. PVE's form decoder treats `;` like `&` and `+` like a space
 * (pve-http-server `decode_urlencoded`, NOTES §3); URLSearchParams encodes both (`%3B`, `%2B`),
 * which hand-built strings forget. Booleans go as 1/0, arrays as repeated keys.
 */
export function encodeParams(params: Params | undefined): URLSearchParams {
  const encoded = new URLSearchParams();
  for (const [key, value] of Object.entries(params ?? {})) {
    if (value === undefined) continue;
    if (typeof value === 'boolean') encoded.append(key, value ? '1' : '0');
    else if (typeof value === 'string' || typeof value === 'number') encoded.append(key, String(value));
    else for (const item of value) encoded.append(key, item);
  }
  return encoded;
}

/** One path segment, encoded (node names are safe, UPIDs and snapshot names need it). */
export function segment(value: string | number): string {
  return encodeURIComponent(String(value));
}

interface RawResponse {
  status: number;
  reason: string;
  body: unknown;
  /** The body as received, for answers that are not PVE's JSON (a TLS proxy's error page). */
  text: string;
}

export const API_REQUESTS_METRIC = 'proxmox_operator_api_requests_total';
type ApiRequestLabels = 'method' | 'endpoint' | 'status';
/** The `status` of a request that got no answer (refused, reset, timed out, aborted, TLS refused). */
export const NO_ANSWER = 'error';

/**
 * The counter in `registry`, created once: a driver rebuilt after a credential rotation (or a
 * second client of the same runtime) counts on in the same series.
 */
export function apiRequestCounter(registry: Registry): Counter<ApiRequestLabels> {
  const existing = registry.getSingleMetric(API_REQUESTS_METRIC);
  // Only this function registers the name, always with these labels.
  if (existing instanceof Counter) return existing as Counter<ApiRequestLabels>;
  return new Counter({
    name: API_REQUESTS_METRIC,
    help: `Proxmox VE API requests, by method, endpoint (a path template such as /nodes/{node}/qemu/{vmid}/config) and HTTP status ("${NO_ANSWER}": no answer).`,
    labelNames: ['method', 'endpoint', 'status'] as const,
    registers: [registry],
  });
}

// The variable segment that follows each collection of PVE's API tree (pve-apidata.json:
// `/nodes/{node}`, `/nodes/{node}/qemu/{vmid}`, `/nodes/{node}/tasks/{upid}`, …). `status` is
// followed only by a VM's commands (`/status/current`, `/status/start`); elsewhere it is a leaf.
const PATH_VARIABLES: ReadonlyMap<string, string> = new Map([
  ['nodes', '{node}'],
  ['qemu', '{vmid}'],
  ['lxc', '{vmid}'],
  ['tasks', '{upid}'],
  ['storage', '{storage}'],
  ['content', '{volume}'],
  ['snapshot', '{snapname}'],
  ['network', '{iface}'],
  ['pools', '{poolid}'],
  ['users', '{userid}'],
  ['token', '{tokenid}'],
  ['status', '{action}'],
]);
// How PVE spells a fixed segment (`cluster`, `network-get-interfaces`, `download-url`, `move_disk`).
// Any other segment came from data (a name, an ID) and never becomes a label value.
const FIXED_SEGMENT = /^[a-z][a-z_-]*$/;

/**
 * The path template of a request path below the API root, for a metric label: node names, VMIDs,
 * UPIDs, storage, volume and snapshot names become `{node}`, `{vmid}`, … so the label's values
 * are bounded by the API, never by the data.
 */
export function endpointTemplate(path: string): string {
  const template: string[] = [];
  let variable: string | undefined;
  for (const part of path.split('?')[0]?.split('/') ?? []) {
    if (part === '') continue;
    if (variable !== undefined) {
      template.push(variable);
      variable = undefined;
    } else if (FIXED_SEGMENT.test(part)) {
      template.push(part);
      variable = PATH_VARIABLES.get(part);
    } else {
      template.push('{id}');
    }
  }
  return `/${template.join('/')}`;
}

// TLS alerts a server sends about the client's certificate (RFC 8446 §6.2), as Node names them.
const CERTIFICATE_REQUIRED = 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED';
const CERTIFICATE_REFUSED = new Set([
  'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_REVOKED',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED',
  'ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN',
  'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
  'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED',
]);
// TLS 1.2 servers answer a missing client certificate with this generic alert (OpenSSL's
// tls_process_client_certificate); a cipher mismatch sends it too.
const HANDSHAKE_FAILURE = 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE';
// nginx (`ssl_verify_client on`) finishes the handshake and answers 400 with one of these pages
// (ngx_http_special_response.c, its internal codes 496 and 495).
const NGINX_NO_CERTIFICATE = '<title>400 No required SSL certificate was sent</title>';
const NGINX_CERTIFICATE_ERROR = '<title>400 The SSL certificate error</title>';
const SET_CLIENT_CERTIFICATE = 'set PVE_CLIENT_CERT and PVE_CLIENT_KEY';

function errorCode(error: unknown): string | undefined {
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

export class ProxmoxClient {
  readonly config: ProxmoxConfig;
  readonly #pool: Pool;
  readonly #auth: Authenticator;
  readonly #limiter: KeyedLimiter;
  readonly #host: string;
  readonly #requests: Counter<ApiRequestLabels> | undefined;

  constructor(config: ProxmoxConfig, options: ProxmoxClientOptions = {}) {
    this.config = config;
    const timeout = options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
    this.#host = new URL(config.origin).host;
    this.#pool = httpsPool(config.origin, {
      connections: options.connections ?? DEFAULTS.connections,
      timeoutMs: timeout,
      insecureSkipVerify: config.insecureSkipVerify,
      caBundle: config.caBundle,
      limits: config.http,
      clientCertificate: config.clientCertificate,
      reportTlsAlerts: true,
    });
    this.#requests = options.metricsRegistry === undefined ? undefined : apiRequestCounter(options.metricsRegistry);
    this.#limiter = new KeyedLimiter(options.mutationsPerNode ?? DEFAULTS.mutationsPerNode);
    this.#auth = new Authenticator(
      config.auth,
      async (path, form) => this.#unwrap(await this.#send('POST', path, form, {}, undefined)),
      options.now ?? Date.now,
    );
  }

  get(path: string, params?: Params, options?: RequestOptions): Promise<unknown> {
    return this.request('GET', path, params, options);
  }

  /** A GET whose envelope also carries `total` (task logs, task lists: NOTES §1). */
  async getPage(path: string, params?: Params, options?: RequestOptions): Promise<{ data: unknown; total: number | undefined }> {
    const envelope = await this.#request('GET', path, params, options ?? {}, true);
    const total = isRow(envelope) ? envelope['total'] : undefined;
    return { data: isRow(envelope) ? (envelope['data'] ?? null) : null, total: typeof total === 'number' ? total : undefined };
  }

  post(path: string, params?: Params, options?: RequestOptions): Promise<unknown> {
    return this.request('POST', path, params, options);
  }

  put(path: string, params?: Params, options?: RequestOptions): Promise<unknown> {
    return this.request('PUT', path, params, options);
  }

  delete(path: string, params?: Params, options?: RequestOptions): Promise<unknown> {
    return this.request('DELETE', path, params, options);
  }

  /** `path` is below the API root (`/nodes/pve1/qemu`); answers the envelope's `data`. */
  request(method: Method, path: string, params?: Params, options: RequestOptions = {}): Promise<unknown> {
    return this.#request(method, path, params, options, false);
  }

  close(): Promise<void> {
    return this.#pool.close();
  }

  async #request(method: Method, path: string, params: Params | undefined, options: RequestOptions, envelope: boolean): Promise<unknown> {
    const signal = options.signal;
    if (signal?.aborted) throw new UnreachableError(`${method} ${path} aborted before it was sent`);
    const node = method === 'GET' ? undefined : /^\/nodes\/([^/]+)\//.exec(path)?.[1];
    const send = (): Promise<unknown> => this.#authenticated(method, path, params, signal, envelope);
    return node === undefined ? send() : this.#limiter.run(node, signal, send);
  }

  async #authenticated(
    method: Method,
    path: string,
    params: Params | undefined,
    signal: AbortSignal | undefined,
    envelope: boolean,
  ): Promise<unknown> {
    // The login is shared by every request waiting for it: only this request's wait is aborted.
    const first = await untilAborted(this.#auth.credentials(method), signal);
    const response = await this.#send(method, path, params, first.headers, signal);
    if (response.status !== 401 || !this.#auth.usesTickets) return this.#unwrap(response, envelope);
    // A 401 means the request was not executed, so one retry after a fresh login is safe.
    this.#auth.rejected(first.ticket);
    const second = await untilAborted(this.#auth.credentials(method), signal);
    return this.#unwrap(await this.#send(method, path, params, second.headers, signal), envelope);
  }

  #unwrap(response: RawResponse, envelope = false): unknown {
    if (response.status >= 200 && response.status < 300) {
      if (!isRow(response.body)) throw new UnreachableError(`${this.#host} answered without a JSON envelope`);
      return envelope ? response.body : (response.body['data'] ?? null);
    }
    if (response.status === 400 && response.body === undefined) {
      if (response.text.includes(NGINX_NO_CERTIFICATE)) {
        throw new UnauthorizedError(`${this.#host} demanded a client certificate (its TLS proxy answered "No required SSL certificate was sent"): ${SET_CLIENT_CERTIFICATE}`);
      }
      if (response.text.includes(NGINX_CERTIFICATE_ERROR)) {
        throw new UnauthorizedError(`${this.#host} refused the client certificate in PVE_CLIENT_CERT (its TLS proxy answered "The SSL certificate error")`);
      }
    }
    throw errorFromResponse(response.status, response.reason, response.body);
  }

  /** A request that got no answer; a server refusing the TLS client certificate (or its absence) is Unauthorized. */
  #transportError(error: unknown): DriverError {
    const code = errorCode(error) ?? errorCode(typeof error === 'object' && error !== null && 'cause' in error ? error.cause : undefined);
    const presented = this.config.clientCertificate !== undefined;
    if (code === CERTIFICATE_REQUIRED) {
      return new UnauthorizedError(
        presented
          ? `${this.#host} demanded a client certificate and did not take the one in PVE_CLIENT_CERT (${code})`
          : `${this.#host} demanded a client certificate (${code}): ${SET_CLIENT_CERTIFICATE}`,
      );
    }
    if (code !== undefined && CERTIFICATE_REFUSED.has(code)) {
      return new UnauthorizedError(
        presented
          ? `${this.#host} refused the client certificate in PVE_CLIENT_CERT (${code})`
          : `${this.#host} refused the TLS connection (${code}); it may demand a client certificate: ${SET_CLIENT_CERTIFICATE}`,
      );
    }
    if (code === HANDSHAKE_FAILURE && !presented) {
      return new UnreachableError(`TLS handshake with ${this.#host} failed (${code}); if it demands a client certificate, ${SET_CLIENT_CERTIFICATE}`);
    }
    return errorFromTransport(error, this.#host);
  }

  async #send(
    method: Method,
    path: string,
    params: Params | undefined,
    headers: Record<string, string>,
    signal: AbortSignal | undefined,
  ): Promise<RawResponse> {
    const encoded = encodeParams(params).toString();
    const inQuery = method === 'GET' || method === 'DELETE';
    // PVE answers 501 to a body on GET/DELETE (NOTES §3): their parameters go in the query.
    const fullPath = `${this.config.apiPath}${path}${inQuery && encoded !== '' ? `?${encoded}` : ''}`;
    const requestHeaders: Record<string, string> = { accept: 'application/json', ...headers };
    if (!inQuery) requestHeaders['content-type'] = 'application/x-www-form-urlencoded';
    let status = NO_ANSWER;
    try {
      const response = await this.#pool.request({
        method,
        path: fullPath,
        headers: requestHeaders,
        ...(inQuery ? {} : { body: encoded }),
        ...(signal === undefined ? {} : { signal }),
      });
      status = String(response.statusCode);
      const text = await response.body.text();
      return { status: response.statusCode, reason: response.statusText ?? '', body: parseJson(text), text };
    } catch (error) {
      throw this.#transportError(error);
    } finally {
      this.#requests?.inc({ method, endpoint: endpointTemplate(path), status });
    }
  }
}

function parseJson(text: string): unknown {
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
