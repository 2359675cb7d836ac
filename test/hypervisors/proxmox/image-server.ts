// An HTTP server the fake PVE downloads images from (download-url fetches over loopback), and the
// smallest files PVE takes as images: a qcow2 header of a given virtual size, an ISO's bytes.

import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { Test } from 'tap';

export interface ImageServer {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** GETs of each path so far. */
  hits: Map<string, number>;
}

/** Serves `files` (path → bytes); anything else is a 404. */
export async function imageServer(t: Test, files: Record<string, Buffer>): Promise<ImageServer> {
  const hits = new Map<string, number>();
  const server: Server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    const body = files[path];
    if (body === undefined) {
      response.writeHead(404).end('not found');
      return;
    }
    response.writeHead(200, { 'content-length': body.length }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { url: `http://127.0.0.1:${address.port}`, hits };
}

/** A qcow2 (version 3) header without backing file, of `virtualBytes`: what qemu-img reads the size from. */
export function qcow2Header(virtualBytes: number): Buffer {
  const header = Buffer.alloc(512);
  header.writeUInt32BE(0x514649fb, 0);
  header.writeUInt32BE(3, 4);
  header.writeBigUInt64BE(0n, 8);
  header.writeUInt32BE(16, 20);
  header.writeBigUInt64BE(BigInt(virtualBytes), 24);
  return header;
}

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}
