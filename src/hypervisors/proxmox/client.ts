// The PVE REST wire protocol and nothing else: one keep-alive connection pool per endpoint,
// authentication, parameter encoding, the `{data}` envelope, and errors as typed Driver errors.
// It knows no VM semantics; the verb modules decide what to ask.

import type { Pool } from 'undici';
import { httpsPool } from '../common/https-pool.js';
import { UnreachableError } from '../../contracts/driver.js';
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
}

export class ProxmoxClient {
  readonly config: ProxmoxConfig;
  readonly #pool: Pool;
  readonly #auth: Authenticator;
  readonly #limiter: KeyedLimiter;
  readonly #host: string;

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
    });
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
    throw errorFromResponse(response.status, response.reason, response.body);
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
    try {
      const response = await this.#pool.request({
        method,
        path: fullPath,
        headers: requestHeaders,
        ...(inQuery ? {} : { body: encoded }),
        ...(signal === undefined ? {} : { signal }),
      });
      const text = await response.body.text();
      return { status: response.statusCode, reason: response.statusText ?? '', body: parseJson(text) };
    } catch (error) {
      throw errorFromTransport(error, this.#host);
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
