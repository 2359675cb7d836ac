// The load generator's stand-in for Metacontroller: it posts Metacontroller-shaped sync requests to
// the hook server over HTTP and syncs an object again at once when its status changed, else after
// the resyncAfterSeconds the hook asked for — the way Metacontroller drives the hooks, so what it
// measures is what a user of the cluster waits for.
import { Pool } from 'undici';

export type Json = Record<string, unknown>;

export const API = 'infra.virtrigaud.io/v1beta1';

/** Objects as Metacontroller maps them: `{"<Kind>.<apiVersion>": {"<namespace>/<name>": object}}`. */
export function byType(objects: readonly Json[]): Record<string, Record<string, Json>> {
  const map: Record<string, Record<string, Json>> = {};
  for (const object of objects) {
    const metadata = object['metadata'] as Json;
    const key = `${String(object['kind'])}.${String(object['apiVersion'])}`;
    (map[key] ??= {})[`${String(metadata['namespace'] ?? '')}/${String(metadata['name'])}`] = object;
  }
  return map;
}

export class HookClient {
  readonly #pool: Pool;
  calls = 0;

  constructor(
    url: string,
    connections: number,
    private readonly token?: string,
  ) {
    this.#pool = new Pool(url, { connections });
  }

  /** One hook call; the response body (status, children, resyncAfterSeconds). Non-200 answers throw with their one line. */
  async sync(controller: string, parent: Json, related: readonly Json[] = [], hook: 'sync' | 'finalize' = 'sync'): Promise<Json> {
    this.calls += 1;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.token !== undefined) headers['authorization'] = `Bearer ${this.token}`;
    const body = { controller: {}, parent, children: {}, related: byType(related), ...(hook === 'finalize' ? { finalizing: true } : {}) };
    const response = await this.#pool.request({ method: 'POST', path: `/hooks/${controller}/${hook}`, headers, body: JSON.stringify(body) });
    const text = await response.body.text();
    if (response.statusCode !== 200) throw new Error(`${controller} ${hook} answered ${response.statusCode}: ${text.trim()}`);
    return JSON.parse(text) as Json;
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}

export interface ReconcileOptions {
  /** Gives up after this long (ms). */
  timeoutMs: number;
  /** Multiplies every resyncAfterSeconds wait (1: as Metacontroller waits). */
  resyncScale: number;
  hook?: 'sync' | 'finalize';
}

/**
 * Syncs `object` (its status updated in place from each answer) until `done(status, answer)` holds
 * or, for a finalize, the hook answers finalized. Returns the number of hook calls made.
 */
export async function reconcile(
  client: HookClient,
  controller: string,
  object: Json,
  related: () => readonly Json[],
  done: (status: Json, answer: Json) => boolean,
  options: ReconcileOptions,
): Promise<number> {
  const deadline = Date.now() + options.timeoutMs;
  let calls = 0;
  for (;;) {
    const answer = await client.sync(controller, object, related(), options.hook ?? 'sync');
    calls += 1;
    const status = (answer['status'] ?? {}) as Json;
    const changed = JSON.stringify(status) !== JSON.stringify(object['status'] ?? {});
    object['status'] = status;
    if (done(status, answer) || answer['finalized'] === true) return calls;
    if (Date.now() > deadline) throw new Error(`${controller} ${String((object['metadata'] as Json)['name'])}: not done within ${options.timeoutMs / 1000} s (${describe(status)})`);
    const resync = Number(answer['resyncAfterSeconds'] ?? 0);
    await sleep(changed ? 0 : Math.max(0, resync * 1000 * options.resyncScale));
  }
}

export function conditionOf(status: Json, type: string): { status?: string; reason?: string; message?: string } | undefined {
  const conditions = status['conditions'];
  return Array.isArray(conditions) ? (conditions as { type?: string; status?: string; reason?: string; message?: string }[]).find((c) => c.type === type) : undefined;
}

function describe(status: Json): string {
  const ready = conditionOf(status, 'Ready');
  return ready ? `Ready ${ready.status ?? ''} ${ready.reason ?? ''}: ${ready.message ?? ''}` : 'no Ready condition';
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
