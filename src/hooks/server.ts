// The hook server: Metacontroller webhooks for every controller, plus health and metrics.
import { setMaxListeners } from 'node:events';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyServerOptions } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { systemClock, type Clock } from '../contracts/clock.js';
import { ProviderObject } from '../contracts/crds/provider.js';
import { VirtualMachineObject } from '../contracts/crds/virtualmachine.js';
import { VMClassObject } from '../contracts/crds/vmclass.js';
import { VMPlacementPolicyObject } from '../contracts/crds/vmplacementpolicy.js';
import { VMImageObject } from '../contracts/crds/vmimage.js';
import { VMNetworkAttachmentObject } from '../contracts/crds/vmnetworkattachment.js';
import { VMCloneObject } from '../contracts/crds/vmclone.js';
import { VMSetObject } from '../contracts/crds/vmset.js';
import { VMSnapshotObject, VMSnapshotScheduleObject } from '../contracts/crds/vmsnapshot.js';
import type { DriverRegistry } from '../contracts/driver.js';
import { CustomizeRequest, SyncRequest, type SyncResponse } from '../contracts/metacontroller.js';
import { ConcurrencyGate } from '../http/concurrency.js';
import { clientErrorAnswer, hardenedServerOptions, installHardening, sendPlain } from '../http/hardening.js';
import { syncVMClass, syncVMImage, syncVMNetworkAttachment } from './catalog.js';
import { customizeVMPlacementPolicy, syncVMPlacementPolicy } from './placement/policy.js';
import { customizeVMMigration, finalizeVMMigration, syncVMMigration } from './vmmigration.js';
import { VMMigrationObject } from '../contracts/crds/vmmigration.js';
import { InvalidChildError } from './objects.js';
import { HookMetrics } from './metrics.js';
import { finalizeProvider, syncProvider } from './provider.js';
import { customizeProvider } from './provider-deletion.js';
import type { RuntimeSettings } from './provider-runtime.js';
import type { VMHookDeps } from './virtualmachine/context.js';
import { customizeVirtualMachine } from './virtualmachine/customize.js';
import { finalizeVirtualMachine } from './virtualmachine/finalize.js';
import { syncVirtualMachine } from './virtualmachine/sync.js';
import { customizeVMClone, syncVMClone } from './vmclone.js';
import { syncVMSet } from './vmset.js';
import { customizeVMSnapshot, finalizeVMSnapshot, syncVMSnapshot } from './vmsnapshot.js';
import { customizeVMSnapshotSchedule, syncVMSnapshotSchedule } from './vmsnapshotschedule.js';
import { MachineObject, ProxmoxClusterObject, ProxmoxNodeObject } from '../contracts/crds/viti.js';
import { DEFAULT_RECONCILE_SECONDS, customizeProxmoxCluster, finalizeProxmoxCluster, syncProxmoxCluster, type VitiSettings } from './viti/cluster.js';
import { customizeMachine, finalizeMachine, syncMachine } from './viti/machine.js';
import { customizeProxmoxNode, syncProxmoxNode } from './viti/node.js';

export interface ServerOptions {
  registry: DriverRegistry;
  clock?: Clock;
  metrics?: HookMetrics;
  /** Fastify/pino logger settings; false for none. Credentials are redacted and bodies never logged, whatever is passed. */
  logger?: FastifyServerOptions['logger'];
  /** Time for all driver calls of one hook call; below Metacontroller's 10 s webhook timeout. */
  budgetMs?: number;
  steadyResyncSeconds?: number;
  /** Bearer token Metacontroller must send (its webhook `authorization` setting); none: hooks are open. */
  hookToken?: string;
  /** How Remote Providers' runtimes are deployed; without it they report RuntimeNotConfigured. */
  runtime?: RuntimeSettings;
  /** Serve HTTPS with this key and certificate (PEM). */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** A request must have arrived whole within this time (default 30 s). */
  requestTimeoutMs?: number;
  /** The Viti API (Machine, ProxmoxCluster, ProxmoxNode): where cluster runtimes run, the default cluster. */
  viti?: VitiSettings;
  /** MAX_CONCURRENT_RECONCILES: Machine syncs and finalizes this process runs at once; none: no bound. */
  maxConcurrentReconciles?: number;
}

/** How long a Machine hook call waits for a free slot before it is refused with 429 (Metacontroller retries it). */
export const RECONCILE_SLOT_WAIT_MS = 2000;

/** The operator's namespace when the hook server is not told (VITI_NAMESPACE / POD_NAMESPACE). */
export const DEFAULT_VITI_NAMESPACE = 'virtrigaud-system';

/** The Viti controllers, timed as proxmox_operator_reconciliation_duration_seconds too. */
const VITI_CONTROLLERS: ReadonlySet<string> = new Set(['machine', 'proxmoxcluster', 'proxmoxnode']);

/** Keywords of our schemas that only the apiserver acts on; Ajv must know them to compile. */
const KUBERNETES_KEYWORDS = [
  'x-kubernetes-validations',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-int-or-string',
];

/** Routes served without the bearer token. */
export const PUBLIC_ROUTES: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);

/** Requests carry whole objects with managedFields, and related Secrets of up to 1 MiB each. */
const BODY_LIMIT = 16 * 1024 * 1024;

declare module 'fastify' {
  interface FastifyContextConfig {
    controller?: string;
    hook?: string;
  }
}

export function buildServer(options: ServerOptions): FastifyInstance {
  const metrics = options.metrics ?? new HookMetrics();
  const clock = options.clock ?? systemClock;
  const deps: VMHookDeps = {
    registry: options.registry,
    clock,
    metrics,
    budgetMs: options.budgetMs ?? 7000,
    steadyResyncSeconds: options.steadyResyncSeconds ?? 60,
  };
  const app = Fastify({
    ...hardenedServerOptions({
      logger: options.logger ?? { level: 'info' },
      bodyLimit: BODY_LIMIT,
      ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
    }),
    ...(options.tls ? { https: { key: options.tls.key, cert: options.tls.cert } } : {}),
    ajv: {
      customOptions: {
        removeAdditional: false,
        coerceTypes: false,
        useDefaults: false,
        allErrors: false,
        // Kubernetes int-or-string nodes carry a string pattern next to anyOf [integer, string]:
        // valid (Ajv applies it to strings only) but not "strict types"; without this Ajv logs a
        // warning for each such node at every route compile.
        strictTypes: false,
        keywords: KUBERNETES_KEYWORDS,
      },
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  let closing = false;
  app.addHook('onClose', async () => {
    closing = true;
  });
  app.setErrorHandler(errorHandler);
  installHardening(app, { token: options.hookToken, publicRoutes: PUBLIC_ROUTES });
  app.addHook('onResponse', async (request, reply) => {
    const { controller, hook } = request.routeOptions.config;
    if (!controller || !hook) return;
    const outcome = reply.statusCode === 200 ? 'ok' : reply.statusCode < 500 ? 'rejected' : 'error';
    metrics.hookDuration.observe({ controller, hook, outcome }, reply.elapsedTime / 1000);
    if (VITI_CONTROLLERS.has(controller)) metrics.vitiReconcileDuration.observe({ controller }, reply.elapsedTime / 1000);
  });

  const config = (controller: string, hook: string) => ({ config: { controller, hook } });

  app.post(
    '/hooks/virtualmachine/customize',
    { schema: { body: CustomizeRequest(VirtualMachineObject) }, ...config('virtualmachine', 'customize') },
    async (request) => customizeVirtualMachine(request.body.parent),
  );
  app.post(
    '/hooks/virtualmachine/sync',
    { schema: { body: SyncRequest(VirtualMachineObject) }, ...config('virtualmachine', 'sync') },
    async (request) => {
      const response = await withDeadline(deps.budgetMs, (signal) => syncVirtualMachine(request.body, deps, signal));
      logOutcome(request.log, 'virtualmachine', 'sync', request.body.parent.metadata, response.status);
      return response;
    },
  );
  app.post(
    '/hooks/virtualmachine/finalize',
    { schema: { body: SyncRequest(VirtualMachineObject) }, ...config('virtualmachine', 'finalize') },
    async (request, reply) => {
      if (request.body.finalizing !== true) {
        return sendPlain(reply, 400, 'finalize hook called without "finalizing": true');
      }
      const response = await withDeadline(deps.budgetMs, (signal) => finalizeVirtualMachine(request.body, deps, signal));
      logOutcome(request.log, 'virtualmachine', 'finalize', request.body.parent.metadata, response.status);
      return response;
    },
  );
  app.post(
    '/hooks/vmclass/sync',
    { schema: { body: SyncRequest(VMClassObject) }, ...config('vmclass', 'sync') },
    async (request) => syncVMClass(request.body, clock.now()),
  );
  app.post(
    '/hooks/vmimage/sync',
    { schema: { body: SyncRequest(VMImageObject) }, ...config('vmimage', 'sync') },
    async (request) => syncVMImage(request.body, clock.now()),
  );
  app.post(
    '/hooks/vmnetworkattachment/sync',
    { schema: { body: SyncRequest(VMNetworkAttachmentObject) }, ...config('vmnetworkattachment', 'sync') },
    async (request) => syncVMNetworkAttachment(request.body, clock.now()),
  );
  const providerDeps = { ...deps, ...(options.runtime ? { runtime: options.runtime } : {}) };
  app.post(
    '/hooks/provider/customize',
    { schema: { body: CustomizeRequest(ProviderObject) }, ...config('provider', 'customize') },
    async (request) => customizeProvider(request.body.parent),
  );
  app.post(
    '/hooks/provider/sync',
    { schema: { body: SyncRequest(ProviderObject) }, ...config('provider', 'sync') },
    async (request) => withDeadline(deps.budgetMs, (signal) => syncProvider(request.body, providerDeps, signal)),
  );
  app.post(
    '/hooks/provider/finalize',
    { schema: { body: SyncRequest(ProviderObject) }, ...config('provider', 'finalize') },
    async (request, reply) => {
      if (request.body.finalizing !== true) return sendPlain(reply, 400, 'finalize hook called without "finalizing": true');
      const response = finalizeProvider(request.body, providerDeps);
      logOutcome(request.log, 'provider', 'finalize', request.body.parent.metadata, response.status);
      return response;
    },
  );

  app.post(
    '/hooks/vmsnapshot/customize',
    { schema: { body: CustomizeRequest(VMSnapshotObject) }, ...config('vmsnapshot', 'customize') },
    async (request) => customizeVMSnapshot(request.body.parent),
  );
  app.post(
    '/hooks/vmsnapshot/sync',
    { schema: { body: SyncRequest(VMSnapshotObject) }, ...config('vmsnapshot', 'sync') },
    async (request) => {
      const response = await withDeadline(deps.budgetMs, (signal) => syncVMSnapshot(request.body, deps, signal));
      logOutcome(request.log, 'vmsnapshot', 'sync', request.body.parent.metadata, response.status);
      return response;
    },
  );
  app.post(
    '/hooks/vmsnapshot/finalize',
    { schema: { body: SyncRequest(VMSnapshotObject) }, ...config('vmsnapshot', 'finalize') },
    async (request, reply) => {
      if (request.body.finalizing !== true) {
        return sendPlain(reply, 400, 'finalize hook called without "finalizing": true');
      }
      const response = await withDeadline(deps.budgetMs, (signal) => finalizeVMSnapshot(request.body, deps, signal));
      logOutcome(request.log, 'vmsnapshot', 'finalize', request.body.parent.metadata, response.status);
      return response;
    },
  );
  app.post(
    '/hooks/vmsnapshotschedule/customize',
    { schema: { body: CustomizeRequest(VMSnapshotScheduleObject) }, ...config('vmsnapshotschedule', 'customize') },
    async (request) => customizeVMSnapshotSchedule(request.body.parent),
  );
  app.post(
    '/hooks/vmsnapshotschedule/sync',
    { schema: { body: SyncRequest(VMSnapshotScheduleObject) }, ...config('vmsnapshotschedule', 'sync') },
    async (request) => syncVMSnapshotSchedule(request.body, clock.now()),
  );
  app.post(
    '/hooks/vmclone/customize',
    { schema: { body: CustomizeRequest(VMCloneObject) }, ...config('vmclone', 'customize') },
    async (request) => customizeVMClone(request.body.parent),
  );
  app.post(
    '/hooks/vmclone/sync',
    { schema: { body: SyncRequest(VMCloneObject) }, ...config('vmclone', 'sync') },
    async (request) => syncVMClone(request.body, deps),
  );
  app.post(
    '/hooks/vmplacementpolicy/customize',
    { schema: { body: CustomizeRequest(VMPlacementPolicyObject) }, ...config('vmplacementpolicy', 'customize') },
    async (request) => customizeVMPlacementPolicy(request.body.parent),
  );
  app.post(
    '/hooks/vmplacementpolicy/sync',
    { schema: { body: SyncRequest(VMPlacementPolicyObject) }, ...config('vmplacementpolicy', 'sync') },
    async (request) => syncVMPlacementPolicy(request.body, clock.now()),
  );
  app.post(
    '/hooks/vmmigration/customize',
    { schema: { body: CustomizeRequest(VMMigrationObject) }, ...config('vmmigration', 'customize') },
    async (request) => customizeVMMigration(request.body.parent),
  );
  app.post(
    '/hooks/vmmigration/sync',
    { schema: { body: SyncRequest(VMMigrationObject) }, ...config('vmmigration', 'sync') },
    async (request) => {
      const response = await withDeadline(deps.budgetMs, (signal) => syncVMMigration(request.body, deps, signal));
      logOutcome(request.log, 'vmmigration', 'sync', request.body.parent.metadata, response.status);
      return response;
    },
  );
  app.post(
    '/hooks/vmmigration/finalize',
    { schema: { body: SyncRequest(VMMigrationObject) }, ...config('vmmigration', 'finalize') },
    async (request, reply) => {
      if (request.body.finalizing !== true) return sendPlain(reply, 400, 'finalize hook called without "finalizing": true');
      const response = await withDeadline(deps.budgetMs, (signal) => finalizeVMMigration(request.body, deps, signal));
      logOutcome(request.log, 'vmmigration', 'finalize', request.body.parent.metadata, response.status);
      return response;
    },
  );
  app.post(
    '/hooks/vmset/sync',
    { schema: { body: SyncRequest(VMSetObject) }, ...config('vmset', 'sync') },
    async (request) => syncVMSet(request.body, clock.now()),
  );

  const viti = options.viti ?? { namespace: DEFAULT_VITI_NAMESPACE };
  const vitiDeps = { ...providerDeps, steadyResyncSeconds: viti.reconcileSeconds ?? DEFAULT_RECONCILE_SECONDS, viti };
  app.post(
    '/hooks/proxmoxcluster/customize',
    { schema: { body: CustomizeRequest(ProxmoxClusterObject) }, ...config('proxmoxcluster', 'customize') },
    async () => customizeProxmoxCluster(),
  );
  app.post(
    '/hooks/proxmoxcluster/sync',
    { schema: { body: SyncRequest(ProxmoxClusterObject) }, ...config('proxmoxcluster', 'sync') },
    async (request) => withDeadline(deps.budgetMs, (signal) => syncProxmoxCluster(request.body, vitiDeps, signal)),
  );
  app.post(
    '/hooks/proxmoxcluster/finalize',
    { schema: { body: SyncRequest(ProxmoxClusterObject) }, ...config('proxmoxcluster', 'finalize') },
    async (request, reply) => {
      if (request.body.finalizing !== true) return sendPlain(reply, 400, 'finalize hook called without "finalizing": true');
      return finalizeProxmoxCluster(request.body, vitiDeps);
    },
  );
  app.post(
    '/hooks/proxmoxnode/customize',
    { schema: { body: CustomizeRequest(ProxmoxNodeObject) }, ...config('proxmoxnode', 'customize') },
    async (request) => customizeProxmoxNode(request.body.parent),
  );
  app.post(
    '/hooks/proxmoxnode/sync',
    { schema: { body: SyncRequest(ProxmoxNodeObject) }, ...config('proxmoxnode', 'sync') },
    async (request) => withDeadline(deps.budgetMs, (signal) => syncProxmoxNode(request.body, vitiDeps, signal)),
  );
  app.post(
    '/hooks/machine/customize',
    { schema: { body: CustomizeRequest(MachineObject) }, ...config('machine', 'customize') },
    async () => customizeMachine(),
  );
  // MAX_CONCURRENT_RECONCILES bounds the Machine calls in flight in this process; a call that finds
  // no slot within RECONCILE_SLOT_WAIT_MS is answered 429 and Metacontroller tries it again later.
  const gate = options.maxConcurrentReconciles === undefined ? undefined : new ConcurrencyGate(options.maxConcurrentReconciles);
  const gated = async (reply: FastifyReply, work: () => Promise<SyncResponse>) => {
    if (!gate) return work();
    const answer = await gate.run(RECONCILE_SLOT_WAIT_MS, work);
    if (answer !== undefined) return answer;
    return sendPlain(reply, 429, `busy: ${gate.limit} Machine reconciles in progress (MAX_CONCURRENT_RECONCILES); retry later`);
  };
  app.post(
    '/hooks/machine/sync',
    { schema: { body: SyncRequest(MachineObject) }, ...config('machine', 'sync') },
    async (request, reply) =>
      gated(reply, async () => {
        const response = await withDeadline(deps.budgetMs, (signal) => syncMachine(request.body, vitiDeps, signal));
        logOutcome(request.log, 'machine', 'sync', request.body.parent.metadata, response.status);
        return response;
      }),
  );
  app.post(
    '/hooks/machine/finalize',
    { schema: { body: SyncRequest(MachineObject) }, ...config('machine', 'finalize') },
    async (request, reply) => {
      if (request.body.finalizing !== true) return sendPlain(reply, 400, 'finalize hook called without "finalizing": true');
      return gated(reply, async () => {
        const response = await withDeadline(deps.budgetMs, (signal) => finalizeMachine(request.body, vitiDeps, signal));
        logOutcome(request.log, 'machine', 'finalize', request.body.parent.metadata, response.status);
        return response;
      });
    },
  );

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => (closing ? reply.code(503).send({ status: 'closing' }) : { status: 'ok' }));
  app.get('/metrics', async (_request, reply) => {
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  return app;
}

/**
 * Runs a hook with a deadline for its driver calls. A plain timer (not AbortSignal.timeout, whose
 * timer does not keep the process alive) that is cleared as soon as the hook answers.
 */
async function withDeadline<T>(ms: number, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  // One signal serves every driver call of the hook; each HTTP request adds a listener to it.
  setMaxListeners(100, controller.signal);
  const timer = setTimeout(() => controller.abort(), ms);
  try {
    return await run(controller.signal);
  } finally {
    clearTimeout(timer);
  }
}

interface Logger {
  info(object: object, message: string): void;
  debug(object: object, message: string): void;
}

function logOutcome(
  log: Logger,
  controller: string,
  hook: string,
  metadata: { namespace?: string | undefined; name: string },
  status: Record<string, unknown>,
): void {
  const conditions = Array.isArray(status['conditions']) ? (status['conditions'] as { type: string; status: string; reason: string }[]) : [];
  const ready = conditions.find((condition) => condition.type === 'Ready');
  const task = status['task'] as { operation?: string } | undefined;
  const fields = {
    controller,
    hook,
    object: `${metadata.namespace ?? ''}/${metadata.name}`,
    phase: status['phase'],
    ready: ready?.status,
    reason: ready?.reason,
    task: task?.operation,
  };
  // Steady syncs are the bulk of the traffic; only changes in flight are worth an info line.
  if (ready?.status === 'True') log.debug(fields, 'hook');
  else log.info(fields, 'hook');
}

/** Bad input answers 400/422 with one plain line (Metacontroller shows it in a SyncError event). */
function errorHandler(error: FastifyError, request: { log: { error(object: object, message: string): void } }, reply: FastifyReply) {
  if (error.validation) {
    const semantic = error.validation.some((issue) => issue.instancePath.startsWith('/parent/spec'));
    return sendPlain(reply, semantic ? 422 : 400, `invalid ${error.validationContext ?? 'request'}: ${error.message}`);
  }
  if (error instanceof InvalidChildError) return sendPlain(reply, 422, error.message);
  const refused = clientErrorAnswer(error);
  if (refused) return sendPlain(reply, refused.status, refused.message);
  request.log.error({ err: error }, 'hook failed');
  // The detail goes to the log only: a message could quote data from the request.
  return sendPlain(reply, 500, 'internal error; see the hook server log');
}
