// The undici pool of an HTTPS hypervisor API (Proxmox REST, vSphere SOAP): TLS verified unless
// explicitly skipped, and a configured CA bundle added to the public roots instead of replacing
// them, so a CA-signed endpoint keeps working when a private CA is configured too. The Provider's
// spec.connectionPooling and spec.rateLimit reach it as `limits` (read from the runtime's
// environment by the driver's config reader).
import { rootCertificates } from 'node:tls';
import { Pool, type Dispatcher } from 'undici';

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

export function httpsPool(origin: string, options: HttpsPoolOptions): Pool {
  const limits = options.limits ?? {};
  const poolOptions: Pool.Options = {
    connections: limits.maxConnections ?? options.connections,
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
    connect: {
      timeout: limits.connectTimeoutMs ?? Math.min(options.timeoutMs, 10_000),
      rejectUnauthorized: !options.insecureSkipVerify,
      ...(options.caBundle === undefined ? {} : { ca: [...rootCertificates, options.caBundle] }),
    },
    ...(limits.idleTimeoutMs === undefined ? {} : { keepAliveTimeout: limits.idleTimeoutMs, keepAliveMaxTimeout: limits.idleTimeoutMs }),
  };
  if (limits.rateLimit === undefined) return new Pool(origin, poolOptions);
  return new RateLimitedPool(origin, poolOptions, new TokenBucket(limits.rateLimit.qps, limits.rateLimit.burst));
}
