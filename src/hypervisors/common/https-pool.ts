// The undici pool of an HTTPS hypervisor API (Proxmox REST, vSphere SOAP): TLS verified unless
// explicitly skipped, and a configured CA bundle added to the public roots instead of replacing
// them, so a CA-signed endpoint keeps working when a private CA is configured too. The Provider's
// spec.connectionPooling and spec.rateLimit reach it as `limits` (read from the runtime's
// environment by the driver's config reader). A client certificate, when configured, is
// presented to servers that demand one (mutual TLS).
import { rootCertificates } from 'node:tls';
import { Pool, buildConnector, type Dispatcher } from 'undici';
import type { Secret } from './secret.js';

/** What a Provider may set about the HTTP client; unset: the driver's own defaults. */
export interface HttpClientLimits {
  /** Requests started per second, sustained, and how many may start at once before that rate applies. */
  rateLimit?: { qps: number; burst: number };
  maxConnections?: number;
  /** Opening a connection (TCP and TLS handshake). */
  connectTimeoutMs?: number;
  /** An unused connection is closed after this long (whatever keep-alive the server offers). */
  idleTimeoutMs?: number;
}

export interface HttpsPoolOptions {
  connections: number;
  timeoutMs: number;
  insecureSkipVerify: boolean;
  caBundle?: string | undefined;
  limits?: HttpClientLimits | undefined;
  /** Mutual TLS: the certificate (PEM, the leaf first, then any intermediates) and its key. */
  clientCertificate?: { cert: string; key: Secret } | undefined;
  /**
   * Fail a request with the TLS alert its server sent rather than undici's "other side closed".
   * Under TLS 1.3 the client's handshake is over before the server has looked at its certificate,
   * so a refusal (alert 116 "certificate required", 48 "unknown CA", 45 "certificate expired")
   * arrives as an error on a connection that already carries the request, and undici then reports
   * the end of the stream that follows instead (its client-h1 onHttpSocketEnd).
   */
  reportTlsAlerts?: boolean | undefined;
}

/**
 * A token bucket that hands out start times: `burst` requests may start at once, then one every
 * 1/qps seconds. Reserving a slot for each request keeps them in arrival order.
 */
export class TokenBucket {
  readonly #qps: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #updated: number;

  constructor(qps: number, burst: number, now: () => number = Date.now) {
    this.#qps = qps;
    this.#burst = Math.max(1, burst);
    this.#now = now;
    this.#tokens = this.#burst;
    this.#updated = now();
  }

  /** Takes one token; answers how many milliseconds the caller must wait before using it. */
  take(): number {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#updated) / 1000) * this.#qps);
    this.#updated = now;
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens / this.#qps) * 1000);
  }
}

/** A pool whose requests start no faster than its bucket allows; a request waiting for its slot holds no connection. */
class RateLimitedPool extends Pool {
  readonly #bucket: TokenBucket;

  constructor(origin: string, options: Pool.Options, bucket: TokenBucket) {
    super(origin, options);
    this.#bucket = bucket;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const wait = this.#bucket.take();
    if (wait === 0) return super.dispatch(options, handler);
    // An abort while waiting is seen by the handler once dispatched: it then fails at once.
    setTimeout(() => super.dispatch(options, handler), wait);
    return true;
  }
}

const TLS_ALERT = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_/;

/** Ends a connection at the first TLS alert on it, so the request it carries fails with that alert. */
function failingOnTlsAlerts(connector: buildConnector.connector): buildConnector.connector {
  return (options, callback) =>
    connector(options, (...args) => {
      const socket = args[1];
      socket?.on('error', (error: Error & { code?: unknown }) => {
        if (typeof error.code === 'string' && TLS_ALERT.test(error.code) && !socket.destroyed) socket.destroy(error);
      });
      callback(...args);
    });
}

export function httpsPool(origin: string, options: HttpsPoolOptions): Pool {
  const limits = options.limits ?? {};
  const client = options.clientCertificate;
  const connect: buildConnector.BuildOptions = {
    timeout: limits.connectTimeoutMs ?? Math.min(options.timeoutMs, 10_000),
    rejectUnauthorized: !options.insecureSkipVerify,
    ...(options.caBundle === undefined ? {} : { ca: [...rootCertificates, options.caBundle] }),
    ...(client === undefined ? {} : { cert: client.cert, key: client.key.reveal() }),
  };
  const poolOptions: Pool.Options = {
    connections: limits.maxConnections ?? options.connections,
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    connect: options.reportTlsAlerts === true ? failingOnTlsAlerts(buildConnector(connect)) : connect,
    ...(limits.idleTimeoutMs === undefined ? {} : { keepAliveTimeout: limits.idleTimeoutMs, keepAliveMaxTimeout: limits.idleTimeoutMs }),
  };
  if (limits.rateLimit === undefined) return new Pool(origin, poolOptions);
  return new RateLimitedPool(origin, poolOptions, new TokenBucket(limits.rateLimit.qps, limits.rateLimit.burst));
}
