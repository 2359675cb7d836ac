// Extra listeners for the seed's METRICS_BIND_ADDRESS and HEALTH_PROBE_BIND_ADDRESS: a plain HTTP
// server on its own address that answers only the named GET paths, by asking the main server
// (so /metrics and the probes stay one implementation), and 404 to everything else.
import { createServer, type Server } from 'node:http';
import type { FastifyInstance } from 'fastify';

export interface BindAddress {
  host: string;
  port: number;
}

/** `:8080`, `0.0.0.0:8080`, `127.0.0.1:9090` or `[::1]:8081` (controller-runtime's spelling); undefined when malformed. */
export function parseBindAddress(value: string): BindAddress | undefined {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]*)):([0-9]{1,5})$/.exec(value.trim());
  if (!match) return undefined;
  const port = Number(match[3]);
  if (port > 65535) return undefined;
  const host = match[1] ?? match[2] ?? '';
  return { host: host === '' ? '0.0.0.0' : host, port };
}

/** Serves `paths` (GET only) of `app` on `address`; resolves once listening. */
export async function startSideListener(app: FastifyInstance, address: BindAddress, paths: readonly string[]): Promise<Server> {
  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0] ?? '/';
    if (request.method !== 'GET' || !paths.includes(path)) {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
      response.end(`not found: this listener serves ${paths.join(', ')}\n`);
      return;
    }
    app.inject({ method: 'GET', url: path }).then(
      (answer) => {
        const type = answer.headers['content-type'];
        response.writeHead(answer.statusCode, typeof type === 'string' ? { 'content-type': type } : {});
        response.end(answer.body);
      },
      () => {
        response.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' });
        response.end('unavailable\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}
