// The bytes of an NFC transfer: plain HTTP(S) to one of a lease's device URLs, GET to read a
// disk (export), POST of a streamOptimized VMDK to write one (import, as govmomi's nfc.Lease does:
// `Content-Type: application/x-vnd.vmware-streamVmdk` and the length up front).
//
// A device URL whose host is `*` means "the host you are talking to" (an ESXi host reached
// directly, and vcsim, which also says `https` when it serves plain HTTP): it is reached with this
// client's own scheme, host, TLS settings and session cookie. vCenter names the ESXi host that
// holds the disk instead, with that host's certificate thumbprint: the thumbprint came over the
// verified SOAP session, so a certificate with that thumbprint is trusted even when no CA in the
// bundle signed it (as govc and ovftool do); one the CA bundle verifies is trusted as always.

import { createWriteStream } from 'node:fs';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { rootCertificates, type TLSSocket } from 'node:tls';
import { Pool, buildConnector } from 'undici';
import { HypervisorError, UnreachableError } from '../../contracts/driver.js';
import type { VsphereConfig } from './config.js';
import { errorFromTransport } from './errors.js';

export const STREAM_VMDK_TYPE = 'application/x-vnd.vmware-streamVmdk';

const CONNECT_TIMEOUT_MS = 10_000;
const HEADERS_TIMEOUT_MS = 120_000;
// vSphere may pause a stream while it reads or writes a slow datastore.
const BODY_TIMEOUT_MS = 300_000;

/** The URL a device URL stands for, `*` resolved to the SOAP endpoint (see the header). */
export function deviceURL(url: string, soapOrigin: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new HypervisorError('vSphere listed a disk transfer URL that is not a URL');
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new HypervisorError(`vSphere listed a disk transfer URL of scheme ${parsed.protocol}`);
  if (parsed.hostname === '*') {
    const origin = new URL(soapOrigin);
    parsed.protocol = origin.protocol;
    parsed.host = origin.host;
  }
  return parsed;
}

function normalizedThumbprint(value: string): string {
  return value.replace(/:/g, '').toLowerCase();
}

/** Whether a certificate's SHA-1 (vSphere's sslThumbprint) or SHA-256 fingerprint is `thumbprint`. */
export function thumbprintMatches(certificate: { fingerprint?: string; fingerprint256?: string }, thumbprint: string): boolean {
  const wanted = normalizedThumbprint(thumbprint);
  return [certificate.fingerprint, certificate.fingerprint256].some((fingerprint) => fingerprint !== undefined && normalizedThumbprint(fingerprint) === wanted);
}

function pinnedConnector(config: VsphereConfig, thumbprint: string): buildConnector.connector {
  const base = buildConnector({
    rejectUnauthorized: false,
    timeout: CONNECT_TIMEOUT_MS,
    ...(config.caBundle === undefined ? {} : { ca: [...rootCertificates, config.caBundle] }),
  });
  return (options, callback) => {
    base(options, (error, socket) => {
      if (error !== null) return callback(error, null);
      const tls = socket as TLSSocket;
      if (tls.authorized || thumbprintMatches(tls.getPeerCertificate(), thumbprint)) return callback(null, socket);
      socket.destroy();
      return callback(new UnreachableError(`the certificate of ${options.hostname} is neither trusted nor the one vSphere named for the disk transfer`), null);
    });
  };
}

/** One device URL's connection: opened for one transfer, closed after it. */
export class NfcConnection {
  readonly #url: URL;
  readonly #pool: Pool;
  readonly #cookie: string | undefined;

  /** `cookie`: the SOAP session, sent only to the SOAP endpoint's own host. */
  constructor(config: VsphereConfig, url: URL, thumbprint: string | undefined, cookie: string | undefined) {
    this.#url = url;
    const ownHost = url.origin === new URL(config.origin).origin;
    this.#cookie = ownHost ? cookie : undefined;
    const pin = !ownHost && url.protocol === 'https:' && thumbprint !== undefined && !config.insecureSkipVerify;
    this.#pool = new Pool(url.origin, {
      connections: 1,
      headersTimeout: HEADERS_TIMEOUT_MS,
      bodyTimeout: BODY_TIMEOUT_MS,
      connect: pin
        ? pinnedConnector(config, thumbprint)
        : {
            timeout: CONNECT_TIMEOUT_MS,
            rejectUnauthorized: !config.insecureSkipVerify,
            ...(config.caBundle === undefined ? {} : { ca: [...rootCertificates, config.caBundle] }),
          },
    });
  }

  get host(): string {
    return this.#url.host;
  }

  #headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...extra, ...(this.#cookie === undefined ? {} : { cookie: this.#cookie }) };
  }

  /**
   * Writes the device's content to `path`; `counted` hears of every chunk with the total the server
   * announced (undefined when it streams without a length).
   */
  async download(path: string, counted: (bytes: number, total: number | undefined) => void, signal: AbortSignal): Promise<number> {
    let done = 0;
    try {
      const response = await this.#pool.request({ method: 'GET', path: `${this.#url.pathname}${this.#url.search}`, headers: this.#headers(), signal });
      if (response.statusCode !== 200) {
        await response.body.dump().catch(() => undefined);
        throw new HypervisorError(`${this.host} answered the disk download with HTTP ${response.statusCode}`);
      }
      const length = Number(response.headers['content-length']);
      const total = Number.isSafeInteger(length) && length > 0 ? length : undefined;
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, callback) {
          done += chunk.length;
          counted(chunk.length, total);
          callback(null, chunk);
        },
      });
      await pipeline(response.body, counter, createWriteStream(path, { mode: 0o644 }), { signal });
      if (total !== undefined && done !== total) throw new HypervisorError(`${this.host} ended the disk download after ${done} of ${total} bytes`);
      return done;
    } catch (error) {
      throw this.#failure(error, signal);
    }
  }

  /**
   * Sends `bytes` bytes from `source`: a streamOptimized VMDK by POST; a file the lease creates
   * whole (an OVF's ISO or NVRAM, its fileItem `create`) by PUT, as govmomi's nfc.Lease does.
   */
  async upload(source: Readable, bytes: number, signal: AbortSignal, method: 'POST' | 'PUT' = 'POST'): Promise<void> {
    try {
      const response = await this.#pool.request({
        method,
        path: `${this.#url.pathname}${this.#url.search}`,
        headers: this.#headers({ 'content-type': STREAM_VMDK_TYPE, 'content-length': String(bytes) }),
        body: source,
        signal,
      });
      await response.body.dump().catch(() => undefined);
      if (response.statusCode !== 200 && response.statusCode !== 201) throw new HypervisorError(`${this.host} answered the disk upload with HTTP ${response.statusCode}`);
    } catch (error) {
      throw this.#failure(error, signal);
    }
  }

  close(): Promise<void> {
    return this.#pool.destroy();
  }

  #failure(error: unknown, signal: AbortSignal): Error {
    // Stopped from here: the job's reason says why, not the broken stream.
    if (signal.aborted && signal.reason instanceof Error) return signal.reason;
    if (error instanceof HypervisorError || error instanceof UnreachableError) return error;
    // A local file error (ENOSPC, EACCES: fs errors carry the path) is not the host's.
    const local = typeof error === 'object' && error !== null && 'path' in error ? (error as NodeJS.ErrnoException) : undefined;
    if (local !== undefined) return new HypervisorError(`writing the disk file failed: ${local.code ?? local.message}`);
    return errorFromTransport(error, this.host);
  }
}
