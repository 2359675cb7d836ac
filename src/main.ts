// Entry point. `serve`: the hook server with the embedded simulator (npm start). `provider`: one
// Provider's runtime, serving its Driver over HTTP to the hook server (src/hypervisors/remote).
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Server } from 'node:http';
import { parseDuration } from './contracts/quantity.js';
import { DEFAULT_VITI_NAMESPACE, buildServer } from './hooks/server.js';
import type { VitiSettings } from './hooks/viti/cluster.js';
import { parseBindAddress, startSideListener, type BindAddress } from './http/side-listeners.js';
import { parseLogFormat, textLine, textLogStream, type LogFormat } from './http/log-format.js';
import { DEFAULT_SIMULATOR_WORLDS, ProviderRegistry, type EmbeddedSimulator } from './hypervisors/registry.js';
import { ProviderRuntimeMetrics, RuntimeActivity, buildProviderRuntime } from './hypervisors/remote/index.js';
import { RUNTIME_DRIVERS, isRuntimeDriverType, runtimeDriverFromEnv, type ClosableDriver } from './hypervisors/runtime-drivers.js';
import { SimulatedHypervisor, SimulatorDriver } from './hypervisors/simulator/index.js';

function usage(): never {
  console.error(
    [
      'usage: node dist/main.js serve [--insecure]',
      '                                    (env: PORT=8080, HOST, LOG_LEVEL=info, LOG_FORMAT=json|text, HOOK_TOKEN_FILE, PROVIDER_TOKEN_SECRET_FILE,',
      '                                     RUNTIME_IMAGE, TLS_CERT_FILE + TLS_KEY_FILE, EMBEDDED_SIMULATOR=true, SIMULATOR_MAX_WORLDS=8,',
      '                                     METRICS_BIND_ADDRESS, HEALTH_PROBE_BIND_ADDRESS; Viti API: VITI_NAMESPACE (else POD_NAMESPACE),',
      '                                     PROXMOX_DEFAULT_CLUSTER, RECONCILE_INTERVAL=30s, MAX_CONCURRENT_RECONCILES)',
      '                                    Without HOOK_TOKEN_FILE the hooks are open, so HOST defaults to 127.0.0.1 and',
      '                                    any other address needs --insecure.',
      '       node dist/main.js provider   (env: PROVIDER_TYPE=simulator|proxmox|libvirt|vsphere, PROVIDER_TOKEN_FILE, PORT=9090,',
      '                                      HOST=0.0.0.0, LOG_LEVEL=info, LOG_FORMAT=json|text, PVE_* | LIBVIRT_* | VSPHERE_*)',
    ].join('\n'),
  );
  process.exit(2);
}

/** Prints one line and exits: a runtime that cannot work says why at startup. */
function refuse(message: string, code = 1): never {
  console.error(message);
  process.exit(code);
}

function listenPort(defaultPort: number): number {
  const port = Number(process.env['PORT'] ?? defaultPort);
  if (!Number.isInteger(port) || port < 0 || port > 65535) refuse(`PORT must be a port number, not "${process.env['PORT']}"`, 2);
  return port;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** LOG_FORMAT: json lines (default) or text lines (a Provider's spec.runtime.logFormat). */
function logFormat(): LogFormat {
  const format = parseLogFormat(process.env['LOG_FORMAT']);
  if (format === undefined) refuse(`LOG_FORMAT must be json or text, not "${process.env['LOG_FORMAT']}"`, 2);
  return format;
}

function logger() {
  const level = process.env['LOG_LEVEL'] ?? 'info';
  return logFormat() === 'text' ? { level, stream: textLogStream(process.stdout) } : { level };
}

/** A log line written outside the servers' loggers, in LOG_FORMAT. */
function logLine(level: number, message: string): void {
  const json = JSON.stringify({ level, time: Date.now(), msg: message });
  console.log(logFormat() === 'text' ? textLine(json) : json);
}

/** Hooks in flight finish within their budget (7 s); past this, shutdown stops waiting. */
const SHUTDOWN_GRACE_MS = 20_000;

/**
 * Listens, and stops gracefully on `signals` (and when the returned function is called): no new
 * requests, the ones in flight answered, then `cleanup` (connection pools) and exit.
 */
async function run(
  app: FastifyInstance,
  address: { port: number; host: string },
  cleanup: () => Promise<void> = async () => {},
  signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT'],
): Promise<(reason: string) => void> {
  let stopping = false;
  const shutdown = (reason: string) => {
    if (stopping) return;
    stopping = true;
    app.log.info({ reason }, 'shutting down: no new requests, finishing those in flight');
    setTimeout(() => {
      app.log.warn({ graceMs: SHUTDOWN_GRACE_MS }, 'requests still in flight after the grace period; exiting');
      process.exit(1);
    }, SHUTDOWN_GRACE_MS).unref();
    app
      .close()
      .then(cleanup)
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  };
  for (const signal of signals) process.on(signal, () => shutdown(signal));
  await app.listen(address);
  return shutdown;
}

/** EMBEDDED_SIMULATOR (default true: `npm start` serves it; the chart turns it off) and SIMULATOR_MAX_WORLDS. */
function embeddedSimulator(): EmbeddedSimulator {
  const enabled = process.env['EMBEDDED_SIMULATOR'] ?? 'true';
  if (enabled !== 'true' && enabled !== 'false') refuse(`EMBEDDED_SIMULATOR must be true or false, not "${enabled}"`, 2);
  if (enabled === 'false') return { enabled: false };
  const worlds = Number(process.env['SIMULATOR_MAX_WORLDS'] ?? DEFAULT_SIMULATOR_WORLDS);
  if (!Number.isInteger(worlds) || worlds < 1 || worlds > 1000) refuse(`SIMULATOR_MAX_WORLDS must be a whole number from 1 to 1000, not "${process.env['SIMULATOR_MAX_WORLDS']}"`, 2);
  // The hook server mounts no PVC: migrations between embedded simulators stage their files in a
  // directory of its own (its /tmp, writable under a read-only root) unless MIGRATION_DIR says where.
  const migrationDir = process.env['MIGRATION_DIR'] || join(tmpdir(), 'virtrigaud-migrations');
  return { enabled: true, maxWorlds: worlds, options: { migrationDir } };
}

/** A secret read from the file an environment variable names, or undefined when the variable is unset. */
function optionalSecretFile(variable: string): string | undefined {
  const file = process.env[variable];
  if (file === undefined || file === '') return undefined;
  return readSecretFile(variable, file);
}

/** The Viti API's settings from the environment (seed 003's variables). */
function vitiSettings(): VitiSettings {
  const settings: VitiSettings = { namespace: process.env['VITI_NAMESPACE'] || process.env['POD_NAMESPACE'] || DEFAULT_VITI_NAMESPACE };
  const defaultCluster = process.env['PROXMOX_DEFAULT_CLUSTER'];
  if (defaultCluster) settings.defaultCluster = defaultCluster;
  const interval = process.env['RECONCILE_INTERVAL'];
  if (interval) {
    const ms = parseDuration(interval);
    if (ms === undefined || ms < 1000 || ms > 86_400_000) refuse(`RECONCILE_INTERVAL must be a duration from 1s to 24h, such as 30s or 5m, not "${interval}"`, 2);
    settings.reconcileSeconds = Math.round(ms / 1000);
  }
  return settings;
}

/** MAX_CONCURRENT_RECONCILES: undefined when unset. */
function maxConcurrentReconciles(): number | undefined {
  const raw = process.env['MAX_CONCURRENT_RECONCILES'];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || value < 1 || value > 1000) refuse(`MAX_CONCURRENT_RECONCILES must be a whole number from 1 to 1000, not "${raw}"`, 2);
  return value;
}

/** METRICS_BIND_ADDRESS / HEALTH_PROBE_BIND_ADDRESS: undefined when unset. */
function bindAddress(variable: string): BindAddress | undefined {
  const raw = process.env[variable];
  if (raw === undefined || raw === '') return undefined;
  const address = parseBindAddress(raw);
  if (address === undefined) refuse(`${variable} must look like :8080 or 127.0.0.1:8080, not "${raw}"`, 2);
  return address;
}

async function serve(flags: string[]): Promise<void> {
  const unknown = flags.filter((flag) => flag !== '--insecure');
  if (unknown.length > 0) usage();
  const insecure = flags.includes('--insecure');
  const port = listenPort(8080);
  const hookToken = optionalSecretFile('HOOK_TOKEN_FILE');
  // Open hooks create and delete VMs for whoever can reach them: without a token the server stays
  // on loopback unless the operator says, in so many words, that the network is trusted.
  const host = process.env['HOST'] ?? (hookToken === undefined && !insecure ? '127.0.0.1' : '0.0.0.0');
  if (hookToken === undefined && !insecure && !isLoopback(host)) {
    refuse(`HOST=${host} without HOOK_TOKEN_FILE would open the hooks to the network: set HOOK_TOKEN_FILE, or pass --insecure to accept that`, 2);
  }
  const tokenSecret = optionalSecretFile('PROVIDER_TOKEN_SECRET_FILE');
  const certFile = process.env['TLS_CERT_FILE'];
  const keyFile = process.env['TLS_KEY_FILE'];
  if ((certFile === undefined) !== (keyFile === undefined)) refuse('TLS_CERT_FILE and TLS_KEY_FILE go together');
  const registry = ProviderRegistry.withSimulators(embeddedSimulator(), tokenSecret === undefined ? undefined : { tokenSecret });
  const metricsAddress = bindAddress('METRICS_BIND_ADDRESS');
  const healthAddress = bindAddress('HEALTH_PROBE_BIND_ADDRESS');
  const concurrency = maxConcurrentReconciles();
  const app = buildServer({
    registry,
    logger: logger(),
    viti: vitiSettings(),
    ...(concurrency === undefined ? {} : { maxConcurrentReconciles: concurrency }),
    ...(hookToken === undefined ? {} : { hookToken }),
    ...(tokenSecret === undefined
      ? {}
      : { runtime: { tokenSecret, defaultImage: process.env['RUNTIME_IMAGE'] ?? 'ghcr.io/virtrigaud/virtrigaud-ts:0.1.0' } }),
    ...(certFile && keyFile ? { tls: { cert: readFileSync(certFile), key: readFileSync(keyFile) } } : {}),
  });
  if (hookToken === undefined) {
    app.log.warn(
      { host, port, insecure },
      insecure
        ? 'hooks are open to anyone who can reach this address (no HOOK_TOKEN_FILE, --insecure)'
        : 'hooks are open to local callers (no HOOK_TOKEN_FILE); listening on loopback only',
    );
  }
  // The seed's separate listeners: /metrics and the probes on addresses of their own, besides the hook port.
  const side: Server[] = [];
  await run(app, { host, port }, async () => {
    await Promise.all(side.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    await registry.close();
  });
  if (metricsAddress) side.push(await startSideListener(app, metricsAddress, ['/metrics']));
  if (healthAddress) side.push(await startSideListener(app, healthAddress, ['/healthz', '/readyz']));
}

function readToken(): string {
  const file = process.env['PROVIDER_TOKEN_FILE'];
  if (file === undefined || file === '') refuse('PROVIDER_TOKEN_FILE is required: the runtime never serves without a token');
  return readSecretFile('PROVIDER_TOKEN_FILE', file);
}

function readSecretFile(variable: string, file: string): string {
  let token: string;
  try {
    token = readFileSync(file, 'utf8').trim();
  } catch (error) {
    refuse(`${variable} ${file} cannot be read: ${(error as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (token === '') refuse(`${variable} ${file} is empty`);
  return token;
}

/** Debug lines of a driver (VMIDs, node names; never credentials), written when LOG_LEVEL asks for them. */
function driverDebug(message: string): void {
  const level = process.env['LOG_LEVEL'] ?? 'info';
  if (level === 'debug' || level === 'trace') logLine(20, message);
}

function providerDriver(log: (message: string) => void, metricsRegistry: Registry): ClosableDriver {
  const type = process.env['PROVIDER_TYPE'] ?? '';
  if (type === 'simulator') return new SimulatorDriver(new SimulatedHypervisor());
  if (!isRuntimeDriverType(type)) refuse(`PROVIDER_TYPE must be simulator, ${Object.keys(RUNTIME_DRIVERS).join(', ')}, not "${type}"`);
  try {
    return runtimeDriverFromEnv(type, process.env, { log, debug: driverDebug, metricsRegistry });
  } catch (error) {
    // Config errors name variables, never secret values.
    refuse(error instanceof Error ? error.message : String(error));
  }
}

/** How long a draining runtime waits without a driver call before it stops (RUNTIME_DRAIN_IDLE_SECONDS). */
function drainIdleMs(): number {
  const seconds = Number(process.env['RUNTIME_DRAIN_IDLE_SECONDS'] ?? 30);
  if (!Number.isFinite(seconds) || seconds < 0 || seconds > 86_400) refuse(`RUNTIME_DRAIN_IDLE_SECONDS must be a number of seconds, not "${process.env['RUNTIME_DRAIN_IDLE_SECONDS']}"`, 2);
  return seconds * 1000;
}

async function provider(flags: string[]): Promise<void> {
  if (flags.length > 0) usage();
  const token = readToken();
  const address = { port: listenPort(9090), host: process.env['HOST'] ?? '0.0.0.0' };
  const idleMs = drainIdleMs();
  const metrics = new ProviderRuntimeMetrics();
  const driver = providerDriver((message) => logLine(30, message), metrics.registry);
  const activity = new RuntimeActivity();
  const app = buildProviderRuntime({ driver, token, logger: logger(), activity, metrics });
  app.log.info({ type: driver.type }, 'provider runtime starting');
  // SIGTERM comes with a rollout, and with the deletion of the runtime's namespace while VMs there
  // still need it to be deleted: keep serving those calls, stop once they have ended (the pod's
  // terminationGracePeriodSeconds bounds the wait).
  const stop = await run(app, address, async () => driver.close?.(), ['SIGINT']);
  process.on('SIGTERM', () => {
    if (activity.draining) return;
    activity.draining = true;
    app.log.info({ signal: 'SIGTERM', idleSeconds: idleMs / 1000 }, 'draining: serving calls until none has come for the idle time');
    const check = setInterval(() => {
      if (activity.idleMs() < idleMs) return;
      clearInterval(check);
      stop('drained');
    }, Math.min(1000, Math.max(50, idleMs / 4)));
  });
}

const commands: Record<string, (flags: string[]) => Promise<void>> = { serve, provider };
const [command = 'serve', ...flags] = process.argv.slice(2);
const start = commands[command];
if (start === undefined) usage();
start(flags).catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
