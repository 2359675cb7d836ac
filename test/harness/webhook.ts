// One webhook call the way Metacontroller makes it (CONTRACT.md §2.1): POST JSON, success is
// HTTP 200 with a JSON body that fits the strict v2 shape; 429 + Retry-After is a delay.
import { Value } from '@sinclair/typebox/value';
import { request, type Dispatcher } from 'undici';
import type { TSchema } from '@sinclair/typebox';

/** Anything that fails a sync the way Metacontroller reports it: a SyncError event and a rate-limited retry. */
export class SyncFailure extends Error {
  override name = 'SyncFailure';
}

/** A failed hook call: nothing applied. */
export class HookFailure extends SyncFailure {
  override name = 'HookFailure';
}

/** A 429: retry after the given delay (back-off when absent), no event. */
export class RetryLater extends Error {
  override name = 'RetryLater';
  constructor(readonly delayMs: number | undefined) {
    super('429 Too Many Requests');
  }
}

export interface WebhookAnswer {
  /** 0 when no HTTP answer arrived (timeout, connection error). */
  statusCode: number;
  /** Parsed JSON, or the raw text when the body was not JSON. */
  response: unknown;
}

export interface WebhookCall {
  url: URL;
  hook: string;
  body: object;
  schema: TSchema;
  timeoutMs: number;
  dispatcher: Dispatcher;
  /** Fake-clock now, for Retry-After given as an HTTP date. */
  now: number;
  /** Told about the answer before it is judged, so failed calls are recorded too. */
  record: (answer: WebhookAnswer) => void;
}

/** Returns the validated response body or throws HookFailure / RetryLater. */
export async function callWebhook(call: WebhookCall): Promise<unknown> {
  let statusCode: number;
  let text: string;
  let retryAfter: string | string[] | undefined;
  try {
    const answer = await request(call.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(call.body),
      dispatcher: call.dispatcher,
      signal: AbortSignal.timeout(call.timeoutMs),
    });
    statusCode = answer.statusCode;
    retryAfter = answer.headers['retry-after'];
    text = await answer.body.text();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    call.record({ statusCode: 0, response: message });
    throw new HookFailure(`${call.hook} hook failed: ${message}`);
  }
  let parsed: unknown;
  let parseError: string | undefined;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    parseError = error instanceof Error ? error.message : String(error);
  }
  call.record({ statusCode, response: parseError === undefined ? parsed : text });
  if (statusCode === 429) throw new RetryLater(retryAfterMs(retryAfter, call.now));
  if (statusCode !== 200) throw new HookFailure(`${call.hook} hook failed: HTTP ${statusCode}: ${text}`);
  if (parseError !== undefined) throw new HookFailure(`${call.hook} hook failed: invalid JSON response: ${parseError}`);
  if (!Value.Check(call.schema, parsed)) {
    const issues = [...Value.Errors(call.schema, parsed)].slice(0, 5).map((e) => `${e.path || '/'}: ${e.message}`);
    throw new HookFailure(`${call.hook} hook failed: response does not fit the strict v2 shape: ${issues.join('; ')}`);
  }
  return parsed;
}

function retryAfterMs(header: string | string[] | undefined, now: number): number | undefined {
  const value = (Array.isArray(header) ? header[0] : header)?.trim();
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}
