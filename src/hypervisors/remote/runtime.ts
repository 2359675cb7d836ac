// The provider runtime: one Driver served over HTTP to the hook server, from the pod that holds
// the hypervisor credentials. Routes take their schemas from src/contracts/remote.ts; every /v1
// route needs the bearer token; health, readiness and metrics do not.
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { isDriverError, type CallOptions, type Driver, type DriverErrorCode } from '../../contracts/driver.js';
import {
  CapabilitiesResponse,
  DRIVER_ERROR_STATUS,
  ErrorEnvelope,
  REMOTE_METHODS,
  REMOTE_METHOD_NAMES,
  remotePath,
  type RemoteMethod,
  type RemoteRequest,
  type RemoteResponse,
} from '../../contracts/remote.js';
import { clientErrorAnswer, hardenedServerOptions, installHardening, messageLine, oneLine, sendPlain } from '../../http/hardening.js';

export interface ProviderRuntimeOptions {
  driver: Driver;
  /** The bearer token every /v1 call must carry. */
  token: string;
  /** Fastify/pino logger settings; false for none. Authorization headers are always redacted, bodies never logged. */
  logger?: FastifyServerOptions['logger'];
  metrics?: ProviderRuntimeMetrics;
  readiness?: ReadinessOptions;
  /** A request must have arrived whole within this time (default 30 s). */
  requestTimeoutMs?: number;
  /** Told of every driver call served; drain() makes readiness fail while calls are still served. */
  activity?: RuntimeActivity;
}

/**
 * When driver calls were last served, and whether the runtime is draining. A runtime told to stop
 * (SIGTERM: a rollout, or its namespace being deleted) keeps serving whoever still calls it — the
 * VMs of a Provider being deleted, which reach its pods directly once the Service is gone — and
 * stops once nobody has called for a while (main.ts).
 */
export class RuntimeActivity {
  lastCallAt: number;
  draining = false;

  constructor(private readonly now: () => number = Date.now) {
    this.lastCallAt = now();
  }

  called(): void {
    this.lastCallAt = this.now();
  }

  idleMs(): number {
    return this.now() - this.lastCallAt;
  }
}

export interface ReadinessOptions {
  /** Ready while the last successful probe is at most this old. */
  windowMs?: number;
  /** A readiness call starts a new probe when the last one began at least this long ago. */
  refreshMs?: number;
  /** How long a readiness call waits for a probe before answering from what it knows. */
  waitMs?: number;
  /** A probe still running after this is given up. */
  probeTimeoutMs?: number;
  now?: () => number;
}

export class ProviderRuntimeMetrics {
  readonly registry = new Registry();

  readonly calls = new Counter({
    name: 'virtrigaud_provider_calls_total',
    help: 'Driver calls served, by method and outcome (ok, a typed error code, badRequest, tokenRejected, internal).',
    labelNames: ['method', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly callDuration = new Histogram({
    name: 'virtrigaud_provider_call_duration_seconds',
    help: 'Time to answer a Driver call, by method and outcome.',
    labelNames: ['method', 'outcome'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'virtrigaud_provider_' });
  }
}

const PUBLIC_ROUTES = new Set(['/healthz', '/readyz', '/metrics']);
const DEFAULT_READINESS = { windowMs: 60_000, refreshMs: 15_000, waitMs: 800, probeTimeoutMs: 10_000 };

declare module 'fastify' {
  interface FastifyContextConfig {
    remoteMethod?: string;
  }
}

export function buildProviderRuntime(options: ProviderRuntimeOptions): FastifyInstance {
  if (options.token === '') throw new Error('the provider runtime never serves without a token');
  const { driver } = options;
  const metrics = options.metrics ?? new ProviderRuntimeMetrics();
  // The typed error code a call failed with, for its metric.
  const outcomes = new WeakMap<FastifyRequest, DriverErrorCode>();

  const app = Fastify({
    ...hardenedServerOptions({
      logger: options.logger ?? { level: 'info' },
      // Create bodies carry cloud-init user-data.
      bodyLimit: 4 * 1024 * 1024,
      ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
    }),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  const readiness = new Readiness(driver, { ...DEFAULT_READINESS, now: Date.now, ...options.readiness }, app.log);
  let closing = false;
  app.addHook('onClose', async () => {
    closing = true;
  });
  app.setErrorHandler(errorHandler);
  installHardening(app, { token: options.token, publicRoutes: PUBLIC_ROUTES });

  app.addHook('onResponse', async (request, reply) => {
    const method = request.routeOptions.config.remoteMethod;
    if (method === undefined) return;
    options.activity?.called();
    const status = reply.statusCode;
    const outcome =
      status === 200 ? 'ok'
      : status === DRIVER_ERROR_STATUS ? (outcomes.get(request) ?? 'internal')
      : status === 401 ? 'tokenRejected'
      : status < 500 ? 'badRequest'
      : 'internal';
    metrics.calls.inc({ method, outcome });
    metrics.callDuration.observe({ method, outcome }, reply.elapsedTime / 1000);
  });

  app.get(
    remotePath('capabilities'),
    { schema: { response: { 200: CapabilitiesResponse } }, config: { remoteMethod: 'capabilities' } },
    async (): Promise<CapabilitiesResponse> => ({ type: driver.type, capabilities: { ...driver.capabilities } }),
  );

  const route = <M extends RemoteMethod>(method: M): void => {
    const handler = HANDLERS[method];
    app.post(
      remotePath(method),
      {
        schema: { body: REMOTE_METHODS[method].request, response: { 200: REMOTE_METHODS[method].response, [DRIVER_ERROR_STATUS]: ErrorEnvelope } },
        config: { remoteMethod: method },
      },
      async (request, reply) => {
        const options = { signal: callerGone(request, reply) };
        try {
          // Fastify validated the body against the very schema RemoteRequest<M> is derived from.
          return await handler(driver, request.body as RemoteRequest<M>, options);
        } catch (error) {
          if (!isDriverError(error)) throw error;
          outcomes.set(request, error.code);
          // A driver's message may quote the request (an ID, a path): it goes back one line long and bounded.
          const message = messageLine(error.message);
          // NotFound is an ordinary answer (a VM already gone), not news.
          const level = error.code === 'NotFound' ? 'debug' : 'info';
          request.log[level]({ method, code: error.code, reason: oneLine(message) }, 'driver call refused');
          const envelope: ErrorEnvelope = { error: { code: error.code, message } };
          return reply.code(DRIVER_ERROR_STATUS).send(envelope);
        }
      },
    );
  };
  for (const method of REMOTE_METHOD_NAMES) route(method);

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const state = closing || options.activity?.draining ? { ready: false, reason: 'draining: serving the calls that still come, then stopping' } : await readiness.check();
    if (state.ready) return { status: 'ok' };
    return reply.code(503).type('text/plain').send(oneLine(state.reason));
  });
  app.get('/metrics', async (_request, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  return app;
}

type Handlers = {
  [M in RemoteMethod]: (driver: Driver, body: RemoteRequest<M>, options: CallOptions) => Promise<RemoteResponse<M>>;
};

const HANDLERS: Handlers = {
  probe: (driver, _body, options) => driver.probe(options),
  inventory: (driver, _body, options) => driver.inventory(options),
  describe: (driver, body, options) => driver.describe(body.id, options),
  findByIdentity: async (driver, body, options) => {
    const vm = await driver.findByIdentity(body.uid, options);
    return vm === undefined ? {} : { vm };
  },
  create: (driver, body, options) => driver.create(body.spec, options),
  delete: (driver, body, options) => driver.delete(body.ref, options),
  power: (driver, body, options) => driver.power(body.ref, body.operation, options),
  reconfigure: (driver, body, options) => driver.reconfigure(body.ref, body.change, options),
  resizeDisk: (driver, body, options) => driver.resizeDisk(body.ref, body.disk, body.sizeBytes, options),
  snapshotCreate: (driver, body, options) => driver.snapshotCreate(body.ref, body.request, options),
  snapshotDelete: (driver, body, options) => driver.snapshotDelete(body.ref, body.snapshotId, options),
  snapshotRevert: (driver, body, options) => driver.snapshotRevert(body.ref, body.snapshotId, options),
  snapshotList: async (driver, body, options) => ({ snapshots: await driver.snapshotList(body.ref, options) }),
  clone: (driver, body, options) => driver.clone(body.ref, body.target, options),
  taskStatus: (driver, body, options) => driver.taskStatus(body.task, options),
  exportDisk: (driver, body, options) => driver.exportDisk(body.ref, body.request, options),
  importDisk: (driver, body, options) => driver.importDisk(body.owner, body.request, options),
  deleteImportedDisk: (driver, body, options) => driver.deleteImportedDisk(body.owner, body.name, options),
  migrationVolume: (driver, body, options) => driver.migrationVolume(body.volume, options),
  removeMigrationFiles: async (driver, body, options) => {
    await driver.removeMigrationFiles(body.dir, options);
    return {};
  },
};

/**
 * Aborts when the caller hangs up before the answer is sent: RemoteDriver aborting its request
 * (its own signal, its deadline) closes the connection, and the driver call stops with it.
 */
function callerGone(request: FastifyRequest, reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  if (request.raw.destroyed) controller.abort();
  return controller.signal;
}

/** Ready while the wrapped driver's probe succeeded within the window; probes are made lazily, one at a time. */
class Readiness {
  #lastSuccess: number | undefined;
  #lastAttempt: number | undefined;
  #failure: string | undefined;
  #inFlight: Promise<void> | undefined;

  constructor(
    private readonly driver: Driver,
    private readonly options: Required<ReadinessOptions>,
    private readonly log: { warn(object: object, message: string): void },
  ) {}

  async check(): Promise<{ ready: true } | { ready: false; reason: string }> {
    const now = this.options.now();
    if (this.#inFlight === undefined && (this.#lastAttempt === undefined || now - this.#lastAttempt >= this.options.refreshMs)) {
      this.#lastAttempt = now;
      this.#inFlight = this.#probe().finally(() => {
        this.#inFlight = undefined;
      });
    }
    if (!this.#fresh() && this.#inFlight !== undefined) await waitAtMost(this.#inFlight, this.options.waitMs);
    if (this.#fresh()) return { ready: true };
    return { ready: false, reason: this.#failure ?? 'the hypervisor probe has not answered yet' };
  }

  #fresh(): boolean {
    return this.#lastSuccess !== undefined && this.options.now() - this.#lastSuccess <= this.options.windowMs;
  }

  async #probe(): Promise<void> {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.options.probeTimeoutMs);
    try {
      await this.driver.probe({ signal: controller.signal });
      this.#lastSuccess = this.options.now();
      this.#failure = undefined;
    } catch (error) {
      if (!isDriverError(error)) this.log.warn({ err: error }, 'readiness probe failed');
      this.#failure = controller.signal.aborted
        ? `the hypervisor probe did not answer within ${this.options.probeTimeoutMs} ms`
        : `the hypervisor probe failed: ${isDriverError(error) ? error.message : 'internal error'}`;
    } finally {
      clearTimeout(timer);
    }
  }
}

async function waitAtMost(promise: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/** Bad requests answer 4xx with one plain line; anything unexpected is a 500 whose detail only the log sees. */
function errorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  if (error.validation) return sendPlain(reply, 400, `invalid ${error.validationContext ?? 'request'}: ${error.message}`);
  const refused = clientErrorAnswer(error);
  if (refused) return sendPlain(reply, refused.status, refused.message);
  request.log.error({ err: error, method: request.routeOptions.config.remoteMethod }, 'driver call failed');
  return sendPlain(reply, 500, 'internal error');
}
