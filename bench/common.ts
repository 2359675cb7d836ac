// Pieces the benchmarks share: request bodies, an HTTP poster, percentiles.
import { readFileSync } from 'node:fs';
import type { Pool } from 'undici';

export type SyncBody = {
  parent: { metadata: Record<string, unknown>; spec: Record<string, unknown>; status?: unknown };
  related: Record<string, Record<string, Record<string, unknown>>>;
  [key: string]: unknown;
};

export const exampleSync = JSON.parse(
  readFileSync(new URL('../examples/hooks/virtualmachine-sync.json', import.meta.url), 'utf8'),
) as SyncBody;

/** The example sync body for VM number `index`, with its own name and UID. */
export function vmBody(index: number, template: SyncBody = exampleSync): SyncBody {
  const body = structuredClone(template);
  body.parent.metadata['name'] = `vm-${index}`;
  body.parent.metadata['uid'] = `00000000-0000-4000-8000-${String(index).padStart(12, '0')}`;
  return body;
}

export async function post(pool: Pool, path: string, body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await pool.request({ method: 'POST', path, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const json = (await response.body.json()) as Record<string, unknown>;
  return { status: response.statusCode, json };
}

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

export function isReady(status: unknown): boolean {
  const conditions = (status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? [];
  return conditions.some((condition) => condition.type === 'Ready' && condition.status === 'True');
}
