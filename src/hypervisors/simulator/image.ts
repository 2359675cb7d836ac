// URL images: the simulator really downloads them (so checksum and transport failures behave as
// on PVE's download-url), hashes the stream, and keeps only the size and digest.

import { createHash } from 'node:crypto';
import { Agent, interceptors, request, type Dispatcher } from 'undici';
import { DriverError, InvalidSpecError, UnreachableError } from '../../contracts/driver.js';
import { formatBytes } from '../../contracts/quantity.js';

export interface DownloadedImage {
  sizeBytes: number;
  /** "<algorithm>:<hex>" of the bytes received. */
  digest: string;
}

export interface ImageLimits {
  timeoutMs: number;
  maxBytes: number;
}

const CHECKSUM = /^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$/i;

export function isValidChecksum(checksum: string): boolean {
  return CHECKSUM.test(checksum);
}

/** scheme://host/path: what a URL may show in a message, without credentials, query or fragment. */
export function displayURL(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  } catch {
    return '(unparseable URL)';
  }
}

/** One download per URL and checksum; a failed one is forgotten so that a retry downloads again. */
export class ImageCache {
  readonly #limits: ImageLimits;
  readonly #entries = new Map<string, Promise<DownloadedImage>>();
  #dispatcher: Dispatcher | undefined;
  #downloads = 0;

  constructor(limits: ImageLimits) {
    this.#limits = limits;
  }

  /** Downloads actually started, cache hits excluded. */
  get downloads(): number {
    return this.#downloads;
  }

  fetch(url: string, checksum?: string): Promise<DownloadedImage> {
    const key = `${checksum?.toLowerCase() ?? ''} ${url}`;
    const cached = this.#entries.get(key);
    if (cached !== undefined) return cached;
    this.#downloads += 1;
    const pending = download(url, checksum, this.#limits, this.#agent());
    this.#entries.set(key, pending);
    pending.catch(() => {
      if (this.#entries.get(key) === pending) this.#entries.delete(key);
    });
    return pending;
  }

  #agent(): Dispatcher {
    // PVE's download-url and most image mirrors answer with redirects to a CDN.
    this.#dispatcher ??= new Agent().compose(interceptors.redirect({ maxRedirections: 5 }));
    return this.#dispatcher;
  }
}

async function download(url: string, checksum: string | undefined, limits: ImageLimits, dispatcher: Dispatcher): Promise<DownloadedImage> {
  const shown = displayURL(url);
  const target = new URL(url);
  const headers: Record<string, string> = {};
  if (target.username !== '' || target.password !== '') {
    const user = decodeURIComponent(target.username);
    const password = decodeURIComponent(target.password);
    headers.authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    target.username = '';
    target.password = '';
  }
  const algorithm = checksum?.slice(0, checksum.indexOf(':')).toLowerCase() ?? 'sha256';
  const signal = AbortSignal.timeout(limits.timeoutMs);
  try {
    // reset: one image is one request; a kept-alive socket would only hold the server open.
    const response = await request(target, { method: 'GET', headers, signal, dispatcher, reset: true });
    if (response.statusCode < 200 || response.statusCode >= 300) {
      await discard(response.body);
      const message = `download of ${shown} failed: HTTP ${response.statusCode}`;
      // 4xx will not change by asking again; 5xx may.
      throw response.statusCode < 500 ? new InvalidSpecError(message) : new UnreachableError(message);
    }
    const declared = Number(response.headers['content-length']);
    if (Number.isFinite(declared) && declared > limits.maxBytes) {
      await discard(response.body);
      throw tooLarge(shown, limits.maxBytes);
    }
    const hash = createHash(algorithm);
    let sizeBytes = 0;
    for await (const chunk of response.body) {
      const bytes = chunk as Buffer;
      sizeBytes += bytes.length;
      // Leaving the loop destroys the body, which closes the connection mid-transfer.
      if (sizeBytes > limits.maxBytes) throw tooLarge(shown, limits.maxBytes);
      hash.update(bytes);
    }
    const digest = `${algorithm}:${hash.digest('hex')}`;
    if (checksum !== undefined && digest !== checksum.toLowerCase()) {
      throw new InvalidSpecError(`checksum mismatch for ${shown}: expected ${checksum.toLowerCase()}, got ${digest}`);
    }
    return { sizeBytes, digest };
  } catch (error) {
    if (error instanceof DriverError) throw error;
    if (signal.aborted) throw new UnreachableError(`download of ${shown} timed out after ${limits.timeoutMs / 1000}s`);
    // Only the error code: transport messages can echo the request line, query string included.
    const code = (error as { code?: unknown }).code;
    throw new UnreachableError(`download of ${shown} failed (${typeof code === 'string' ? code : 'network error'})`);
  }
}

/** Drops an unwanted body; undici closes the connection rather than reading a large one to the end. */
async function discard(body: Dispatcher.ResponseData['body']): Promise<void> {
  await body.dump({ limit: 64 * 1024 }).catch(() => undefined);
}

function tooLarge(shown: string, maxBytes: number): InvalidSpecError {
  return new InvalidSpecError(`image at ${shown} is larger than ${formatBytes(maxBytes)}`);
}
