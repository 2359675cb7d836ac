// How Proxmox VE reads a disk file of this runtime's migration directory: PVE imports only what
// it downloads itself (`POST …/download-url`, wget on the node), so the runtime serves the file
// over HTTP. One file per grant: `GET /files/<token>/<basename>` streams the file the grant names,
// the token being 32 random bytes (hex) made for one import, valid for an hour, revoked once the
// file was sent whole, and never logged. Anything else answers 404, whatever the path says: the
// token alone names the file, so no path reaches another one.
//
// The server listens from the first grant on (PVE_MIGRATION_LISTEN); PVE reaches it at
// PVE_MIGRATION_URL (a NodePort or LoadBalancer address). Whatever sits in front may add a path
// prefix: only the path's end, `/files/<token>/<basename>`, is read.

import { randomBytes } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { HypervisorError } from '../../contracts/driver.js';

export const GRANT_TTL_MS = 60 * 60 * 1000;

const FILE_PATH = /(?:^|\/)files\/([0-9a-f]{64})\/([^/?#]+)$/;

export interface FileServerOptions {
  host: string;
  port: number;
  /** The base URL PVE downloads from: `http://10.0.0.5:30891` or with a path prefix. */
  publicUrl: string;
  ttlMs?: number;
  now?: () => number;
}

export interface FileGrant {
  /** What PVE downloads: carries the token, so it goes nowhere but into the download call. */
  url: string;
  token: string;
  expiresAt: number;
}

interface Grant {
  path: string;
  name: string;
  expiresAt: number;
}

export class MigrationFileServer {
  readonly #options: FileServerOptions;
  readonly #grants = new Map<string, Grant>();
  readonly #now: () => number;
  #server: Server | undefined;
  #listening: Promise<void> | undefined;

  constructor(options: FileServerOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  /** A URL that serves `path` (absolute, in the migration directory) until it expires or was sent whole. */
  async grant(path: string): Promise<FileGrant> {
    await this.listen();
    this.#forgetExpired();
    const token = randomBytes(32).toString('hex');
    const expiresAt = this.#now() + (this.#options.ttlMs ?? GRANT_TTL_MS);
    const name = basename(path);
    this.#grants.set(token, { path, name, expiresAt });
    const base = this.#options.publicUrl.replace(/\/+$/, '');
    return { url: `${base}/files/${token}/${encodeURIComponent(name)}`, token, expiresAt };
  }

  revoke(token: string): void {
    this.#grants.delete(token);
  }

  /** Starts listening once; a failed start is tried again by the next grant. */
  listen(): Promise<void> {
    this.#listening ??= this.#start().catch((error: unknown) => {
      this.#listening = undefined;
      throw error;
    });
    return this.#listening;
  }

  /** Where it listens, once it does (tests bind port 0). */
  address(): AddressInfo | undefined {
    const address = this.#server?.address();
    return typeof address === 'object' && address !== null ? address : undefined;
  }

  async close(): Promise<void> {
    this.#grants.clear();
    const server = this.#server;
    this.#server = undefined;
    this.#listening = undefined;
    if (server === undefined) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }

  #start(): Promise<void> {
    const { host, port } = this.#options;
    const server = createServer((request, response) => void this.#serve(request, response));
    return new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => {
        reject(new HypervisorError(`cannot serve migration files on ${host}:${port} (PVE_MIGRATION_LISTEN): ${error.code ?? error.message}`));
      });
      server.listen(port, host, () => {
        // Errors of single connections are the connections' own; none may end the process.
        server.removeAllListeners('error');
        server.on('error', () => undefined);
        this.#server = server;
        resolve();
      });
    });
  }

  #forgetExpired(): void {
    const now = this.#now();
    for (const [token, grant] of this.#grants) if (grant.expiresAt <= now) this.#grants.delete(token);
  }

  /** The grant a request path names, or undefined (expired, unknown, or another file's name). */
  #granted(url: string | undefined): { token: string; grant: Grant } | undefined {
    const match = FILE_PATH.exec((url ?? '').split('?')[0] ?? '');
    if (!match?.[1] || !match[2]) return undefined;
    const token = match[1];
    const grant = this.#grants.get(token);
    if (grant === undefined) return undefined;
    if (grant.expiresAt <= this.#now()) {
      this.#grants.delete(token);
      return undefined;
    }
    let name: string;
    try {
      name = decodeURIComponent(match[2]);
    } catch {
      return undefined;
    }
    return name === grant.name ? { token, grant } : undefined;
  }

  async #serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    if (request.method !== 'GET' && request.method !== 'HEAD') return answer(response, 405, 'method not allowed');
    const found = this.#granted(request.url);
    if (found === undefined) return answer(response, 404, 'not found');
    let handle: FileHandle | undefined;
    try {
      handle = await open(found.grant.path, 'r');
      const stats = await handle.stat();
      if (!stats.isFile()) return answer(response, 404, 'not found');
      response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': stats.size, 'cache-control': 'no-store' });
      if (request.method === 'HEAD') {
        response.end();
        return;
      }
      const stream = handle.createReadStream({ start: 0, autoClose: false });
      await pipeline(stream, response);
      // Sent whole: nothing needs the token any more (a download that failed later gets a new grant).
      this.revoke(found.token);
    } catch {
      if (!response.headersSent) answer(response, 404, 'not found');
      else response.destroy();
    } finally {
      await handle?.close().catch(() => undefined);
    }
  }
}

function answer(response: ServerResponse, status: number, text: string): void {
  response.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) + 1 });
  response.end(`${text}\n`);
}
