/**
 * HTTP(S) front of the fake: transport limits, faults, authentication, routing against the
 * schema, parameter verification, and the PVE response envelope (reason phrase = message).
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Sessions } from './auth.js';
import { Params, type AuthInfo, type Handler, type Reply } from './context.js';
import { collectPairs, decodeJsonBody, decodeUrlencoded, normalizeArrays } from './decode.js';
import { FormatError, PveError, lockedMessage } from './errors.js';
import type { FaultSet } from './faults.js';
import { HTTP_METHODS, pveSchema, type HttpMethod } from './schema.js';
import type { World } from './state.js';
import type { Tasks } from './tasks.js';
import { verifyParameters, type ParamValue } from './validate.js';

const BODY_LIMIT = 512 * 1024;

export interface RequestRecord {
  method: string;
  path: string;
  params: Record<string, unknown>;
  status: number;
  at: number;
}

export interface ServerDeps {
  world: World;
  tasks: Tasks;
  faults: FaultSet;
  sessions: Sessions;
  handlers: ReadonlyMap<string, Handler>;
  requests: RequestRecord[];
}

/** HTTPS for the fake: its key and certificate (PEM), and for mutual TLS the CA clients must be signed by. */
export interface FakeTlsOptions {
  key: string;
  cert: string;
  /**
   * Demand a client certificate signed by this CA (PEM): `requestCert` and `rejectUnauthorized`.
   * Without one, the handshake fails (TLS 1.3 alert "certificate required"); with one of another
   * CA, Node's TLS server hangs up right after the handshake, without an alert.
   */
  clientCa?: string;
}

interface Outcome {
  status: number;
  reason: string;
  body: string;
}

/** Perl's uri_unescape: `%XX` sequences only. */
function uriUnescape(text: string): string {
  return Buffer.from(
    text.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16))),
    'latin1',
  ).toString('utf8');
}

/** The status line may only carry printable latin1 text. */
const reasonOf = (message: string): string => (message.split('\n')[0] ?? '').replace(/[^\x20-\x7e\xa0-\xff]/g, '?');

function errorOutcome(error: unknown): Outcome {
  if (error instanceof PveError) {
    const message = error.newline ? `${error.message}\n` : error.message;
    const body: Record<string, unknown> = { data: null };
    if (error.errors) body['errors'] = error.errors;
    body['message'] = message;
    return { status: error.status, reason: reasonOf(error.message), body: JSON.stringify(body) };
  }
  const message = error instanceof FormatError ? error.toString() : error instanceof Error ? error.message : String(error);
  return { status: 500, reason: reasonOf(message), body: JSON.stringify({ data: null, message: message.endsWith('\n') ? message : `${message}\n` }) };
}

function paramsForLog(params: ReadonlyMap<string, ParamValue>): Record<string, unknown> {
  return Object.fromEntries([...params].map(([key, value]) => [key, value]));
}

export class PveHttpServer {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  url = '';

  constructor(
    private readonly deps: ServerDeps,
    tls: FakeTlsOptions | undefined,
  ) {
    const listener = (req: IncomingMessage, res: ServerResponse): void => {
      this.handle(req, res).catch((error: unknown) => {
        if (!res.headersSent && !res.destroyed) this.write(res, errorOutcome(error));
      });
    };
    const mutual = tls?.clientCa === undefined ? {} : { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true };
    this.server = tls ? createHttpsServer({ key: tls.key, cert: tls.cert, ...mutual }, listener) : createHttpServer(listener);
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    this.server.on('secureConnection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  listen(): Promise<string> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        const { port } = this.server.address() as AddressInfo;
        this.url = `${this.deps.world.options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
        resolve(this.url);
      });
    });
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    await closed;
  }

  private write(res: ServerResponse, outcome: Outcome): void {
    if (res.destroyed || res.headersSent) return;
    res.statusCode = outcome.status;
    res.statusMessage = outcome.reason;
    res.setHeader('Server', 'pve-api-daemon/3.0');
    res.setHeader('Cache-Control', 'max-age=0');
    res.setHeader('Pragma', 'no-cache');
    if (outcome.body !== '') res.setHeader('Content-Type', 'application/json;charset=UTF-8');
    res.setHeader('Content-Length', Buffer.byteLength(outcome.body));
    res.end(outcome.body);
  }

  private readBody(req: IncomingMessage): Promise<Buffer | undefined> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= BODY_LIMIT) chunks.push(chunk);
      });
      req.on('end', () => resolve(size > BODY_LIMIT ? undefined : Buffer.concat(chunks)));
      req.on('error', reject);
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { world } = this.deps;
    const method = (req.method ?? 'GET').toUpperCase();
    const rawUrl = req.url ?? '/';
    const queryAt = rawUrl.indexOf('?');
    const path = uriUnescape(queryAt < 0 ? rawUrl : rawUrl.slice(0, queryAt));
    const query = queryAt < 0 ? '' : rawUrl.slice(queryAt + 1);
    const api = /^\/api2\/([a-z][a-z0-9]+)(\/.*)?$/.exec(path);
    const rel = api?.[2] && api[2] !== '' ? api[2].replace(/\/+$/, '') || '/' : '/';
    let logged: Map<string, ParamValue> = new Map();
    const finish = async (outcome: Outcome | 'hang' | 'drop', extraDelay = 0): Promise<void> => {
      const status = outcome === 'hang' ? 0 : outcome === 'drop' ? 0 : outcome.status;
      this.deps.requests.push({ method, path: rel, params: paramsForLog(logged), status, at: Date.now() });
      if (outcome === 'hang') return; // never answered; close() destroys the socket
      const delay = world.options.latencyMs + extraDelay + (status === 401 ? world.options.authFailureDelayMs : 0);
      await world.sleep(delay);
      if (outcome === 'drop') {
        req.socket.destroy();
        return;
      }
      this.write(res, outcome);
    };

    if (!(HTTP_METHODS as readonly string[]).includes(method)) {
      return finish({ status: 501, reason: `method '${method}' not available`, body: '' });
    }
    if (!api) return finish({ status: 501, reason: `no such file '${path}'`, body: '' });
    if (api[1] !== 'json') return finish({ status: 501, reason: `FakePve only serves /api2/json`, body: '' });
    const te = req.headers['transfer-encoding'];
    if (te !== undefined) {
      return finish({ status: 501, reason: te.toLowerCase() === 'chunked' ? 'chunked transfer encoding not supported' : `Unknown transfer encoding '${te}'`, body: '' });
    }
    if (Number(req.headers['content-length'] ?? 0) > BODY_LIMIT) {
      req.resume();
      return finish({ status: 413, reason: 'Request Entity Too Large', body: '' });
    }
    const body = await this.readBody(req);
    if (body === undefined) return finish({ status: 413, reason: 'Request Entity Too Large', body: '' });
    if (body.length > 0 && method !== 'POST' && method !== 'PUT') {
      return finish({ status: 501, reason: `Unexpected content for method '${method}'`, body: '' });
    }
    const contentType = (req.headers['content-type'] ?? '').split(/\s*[;,]\s*/)[0]?.toLowerCase() ?? '';
    if (body.length > 0 && contentType !== '' && contentType !== 'application/x-www-form-urlencoded' && contentType !== 'application/json') {
      return finish({ status: 506, reason: `upload 'Content-Type '${req.headers['content-type'] ?? ''}' not implemented`, body: '' });
    }

    const { faults } = this.deps;
    if (faults.takeForRequest(['hang'], method, rel)) return finish('hang');
    const statusFault = faults.takeForRequest(['status'], method, rel);
    if (statusFault) return finish(this.statusFaultOutcome(statusFault.code, statusFault.message));
    const slow = faults.takeForRequest(['slow'], method, rel);
    const drop = faults.takeForRequest(['dropResponse'], method, rel) !== undefined;
    const respond = (outcome: Outcome): Promise<void> => finish(drop ? 'drop' : outcome, slow?.ms ?? 0);

    const open = rel === '/access/ticket' || (rel === '/access/domains' && method === 'GET');
    const authResult = this.deps.sessions.authenticate(req.headers, method, open, world.now());
    if (!authResult.ok) return respond({ status: authResult.status, reason: reasonOf(authResult.message), body: '' });
    world.settle();

    const lookup = pveSchema().lookup(method as HttpMethod, rel);
    if (lookup.kind !== 'found') {
      return respond(errorOutcome(new PveError(501, `Method '${method} ${rel}' not implemented`, undefined, false)));
    }
    const { match } = lookup;
    if (authResult.auth.kind === 'token' && match.info.allowtoken === 0) {
      return respond(errorOutcome(new PveError(403, `URI '${rel}' not available with API token, need proper ticket.`)));
    }
    // pveproxy forwards a node's calls before their parameters are checked (on that node); one
    // that is down answers AnyEvent::HTTP's 595 with an empty body (NOTES §1).
    const nodeOfPath = /^\/nodes\/([^/]+)/.exec(rel)?.[1];
    if (nodeOfPath !== undefined && world.isNodeDown(nodeOfPath)) return respond({ status: 595, reason: 'Connection refused', body: '' });

    let outcome: Outcome;
    try {
      const errors: Record<string, string> = {};
      let params: Map<string, ParamValue>;
      if ((method === 'POST' || method === 'PUT') && contentType === 'application/json') {
        params = decodeJsonBody(body.toString('utf8'));
      } else {
        params = collectPairs(decodeUrlencoded(body.toString('latin1')), match.info, errors);
      }
      for (const [key, value] of collectPairs(decodeUrlencoded(query), match.info, errors)) params.set(key, value);
      logged = new Map(params);
      for (const [key, value] of Object.entries(match.pathParams)) params.set(key, value);
      normalizeArrays(params, match.info);
      Object.assign(errors, verifyParameters(match.info, params));
      if (Object.keys(errors).length > 0) throw new PveError(400, 'Parameter verification failed.', errors);
      this.lockFaults(method, rel, params);
      // pveproxy forwards `proxyto: node` methods; an unknown node fails in the proxy, before any handler.
      const proxyNode = params.get('node');
      if (match.info.proxyto === 'node' && typeof proxyNode === 'string') world.node(proxyNode);
      outcome = await this.dispatch(match.template, method as HttpMethod, rel, params, authResult.auth, match.childSegments);
    } catch (error) {
      outcome = errorOutcome(error);
    }
    return respond(outcome);
  }

  private statusFaultOutcome(code: number, message: string | undefined): Outcome {
    if (code === 595 || code === 596) {
      return { status: code, reason: message ?? (code === 595 ? 'Connection refused' : 'Connection timed out'), body: '' };
    }
    if (code === 401) return { status: 401, reason: message ?? 'No ticket', body: '' };
    const text = message ?? (code === 403 ? 'Permission check failed (/vms, VM.Audit)' : 'internal error');
    return errorOutcome(new PveError(code, text));
  }

  /** Injected flock timeouts and foreign locks, raised where the handler would take the VM lock. */
  private lockFaults(method: string, rel: string, params: ReadonlyMap<string, ParamValue>): void {
    const vmid = params.get('vmid');
    if (typeof vmid !== 'string') return;
    const { faults } = this.deps;
    const defaultToWrites = (fault: { method?: string }): boolean => fault.method !== undefined || method !== 'GET';
    if (faults.takeForRequest(['lockTimeout'], method, rel, defaultToWrites)) {
      throw new PveError(500, `can't lock file '/var/lock/qemu-server/lock-${vmid}.conf' - got timeout`);
    }
    if (method !== 'GET' && faults.takeForRequest(['vmLocked'], method, rel)) throw new PveError(500, lockedMessage('backup'));
  }

  private async dispatch(
    template: string,
    method: HttpMethod,
    rel: string,
    params: Map<string, ParamValue>,
    auth: AuthInfo,
    childSegments: string[],
  ): Promise<Outcome> {
    const { world, tasks, faults, sessions } = this.deps;
    const handler = this.deps.handlers.get(`${method} ${template}`);
    let result: Reply;
    if (handler) {
      result = await handler({ method, path: rel, template, params: new Params(params), auth, world, tasks, faults, sessions, childSegments });
    } else if (method === 'GET' && childSegments.length > 0) {
      result = { data: childSegments.filter((segment) => !segment.startsWith('{')).map((subdir) => ({ subdir })) };
    } else {
      throw new PveError(500, `FakePve does not model ${method} ${template}`);
    }
    const envelope: Record<string, unknown> = { data: result.data ?? null };
    if (result.total !== undefined) envelope['total'] = result.total;
    return { status: 200, reason: 'OK', body: JSON.stringify(envelope) };
  }
}
