// What both HTTP servers (the hook server and the provider runtime) do the same way, because each
// of these was once a hole: the bearer token is checked on the route the router matched (not on
// the URL text), request bodies go through one strict JSON parser, slow clients are cut off, and
// nothing from a request body or an authorization header reaches a log line or an error answer.
import { createHash, timingSafeEqual } from 'node:crypto';
import { STATUS_CODES, createServer, type Server } from 'node:http';
import { createServer as createTLSServer } from 'node:https';
import type { Socket } from 'node:net';
import { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyServerOptions } from 'fastify';
import { RequestInputError, parseJsonBody, printable } from './json-body.js';
import { describeSchemaIssue, type SchemaIssue } from './messages.js';

/** Header fields that may carry credentials; bodies are never logged at all. */
export const REDACTED_LOG_PATHS = ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization'];

/** A request must arrive whole within this time; Metacontroller and the hook server send small bodies at once. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

export interface HardenedOptions {
  logger: FastifyServerOptions['logger'];
  bodyLimit: number;
  /** Whole-request receive deadline (headers and body). */
  requestTimeoutMs?: number;
  /** Serve HTTPS with this key and certificate (PEM). */
  tls?: { key: string | Buffer; cert: string | Buffer } | undefined;
}

/** Server options shared by both servers; the caller adds its own (https, ajv keywords…). */
export function hardenedServerOptions(options: HardenedOptions): FastifyServerOptions {
  const requestTimeout = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  // Node's own limits are off in Fastify by default: a client sending a byte a second kept its
  // connection forever. The checking interval bounds how late past the deadline the cut comes.
  const limits = {
    requestTimeout,
    headersTimeout: Math.min(requestTimeout, 20_000),
    connectionsCheckingInterval: Math.max(100, Math.min(5000, Math.floor(requestTimeout / 4))),
    keepAliveTimeout: 72_000,
  };
  const tls = options.tls;
  return {
    logger: safeLogger(options.logger),
    // One line per call is logged by the handlers; Fastify's per-request lines would double it.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimit,
    serverFactory: (handler) => {
      const server = tls ? (createTLSServer({ ...limits, key: tls.key, cert: tls.cert }, handler) as unknown as Server) : createServer(limits, handler);
      server.keepAliveTimeout = limits.keepAliveTimeout;
      return server;
    },
    clientErrorHandler,
    schemaErrorFormatter: (errors, dataVar) => new Error(describeSchemaIssue(errors[0] as SchemaIssue, dataVar)),
    return503OnClosing: true,
  };
}

/** The logger with credentials redacted and errors reduced to what cannot quote a request. */
function safeLogger(logger: FastifyServerOptions['logger']): FastifyServerOptions['logger'] {
  if (logger === false) return false;
  const base = logger === undefined || logger === true ? { level: 'info' } : logger;
  return {
    ...base,
    redact: { paths: REDACTED_LOG_PATHS, censor: '[redacted]' },
    serializers: { err: errorForLog, error: errorForLog },
  };
}

/**
 * Node's client errors carry the raw request bytes (`rawPacket`), and other errors may carry
 * whatever their producer attached: only the type, code and a bounded message are logged.
 */
export function errorForLog(error: unknown): { type: string; message: string; stack: string; code?: string } {
  if (!(error instanceof Error)) return { type: typeof error, message: 'a non-Error was thrown', stack: '' };
  const code = (error as { code?: unknown }).code;
  // The stack's first line repeats the message; only the frames are kept.
  const frames = (error.stack ?? '').split('\n').slice(1, 8).join('\n');
  return { type: error.name, message: printable(error.message, 300), stack: frames, ...(typeof code === 'string' ? { code: printable(code, 64) } : {}) };
}

/** Malformed HTTP, oversized headers and slow requests: a plain one-line answer, and only the error code logged. */
function clientErrorHandler(this: FastifyInstance, error: NodeJS.ErrnoException, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, text] =
    error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? [408, 'the request did not arrive in time']
    : error.code === 'HPE_HEADER_OVERFLOW' ? [431, 'request headers are too large']
    : [400, 'malformed HTTP request'];
  this.log.debug({ code: error.code }, 'client error');
  if (socket.writable) {
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`);
  }
  socket.destroySoon();
}

export interface InstallOptions {
  /** Bearer token every non-public route needs; undefined: no check (the caller decides whether that is allowed). */
  token: string | undefined;
  /** Route patterns served without a token (health, readiness, metrics). */
  publicRoutes: ReadonlySet<string>;
}

/** The JSON parser, the bearer check on matched routes and the plain 404 answer. */
export function installHardening(app: FastifyInstance, options: InstallOptions): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    try {
      done(null, parseJsonBody(body as Buffer, request.headers['content-type']));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).type('text/plain; charset=utf-8').send(`no route ${printable(request.method, 10)} ${printable(request.url.split('?')[0] ?? '', 100)}`),
  );
  // While the server shuts down, answers in flight close their connection: a kept-alive one would
  // hold the shutdown open until the client's keep-alive ran out.
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    if (closing) reply.header('connection', 'close');
    return payload;
  });
  const token = options.token;
  if (token === undefined) return;
  const expected = createHash('sha256').update(token).digest();
  // Deny by default: whatever the router did not match to a public route needs the token, so no
  // spelling of a path (%68ooks, absolute-form targets, dot segments) can reach a hook without it.
  app.addHook('onRequest', async (request, reply) => {
    if (options.publicRoutes.has(request.routeOptions.url ?? '')) return;
    const bearer = /^Bearer (.+)$/i.exec(request.headers.authorization ?? '')?.[1] ?? '';
    // Hashes have equal length, so the comparison takes the same time whatever was sent.
    if (!timingSafeEqual(createHash('sha256').update(bearer).digest(), expected)) {
      return reply.code(401).type('text/plain; charset=utf-8').send('missing or wrong bearer token');
    }
  });
}

/** Fastify's own refusals (media type, size, content length) and ours, as status and one line; undefined for anything else. */
export function clientErrorAnswer(error: FastifyError): { status: number; message: string } | undefined {
  if (error instanceof RequestInputError) return { status: error.statusCode, message: error.message };
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return { status: 415, message: 'content type not supported: send the body as application/json' };
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return { status: 413, message: 'request body is too large' };
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return { status: 400, message: 'Content-Length does not match the body' };
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return { status: 400, message: 'body is empty: a JSON object is expected' };
  }
  // The client hung up while its body was read: nobody is left to answer.
  if (error.code === 'ECONNRESET' || error.message === 'aborted') return { status: 400, message: 'request aborted by the client' };
  const status = error.statusCode ?? 500;
  if (error.code?.startsWith('FST_') && status >= 400 && status < 500) return { status, message: oneLine(error.message) };
  return undefined;
}

export function oneLine(text: string): string {
  return printable(text.replace(/\s+/g, ' ').trim(), 500);
}

/** Driver error messages go back to the hook server as JSON and end up in conditions (at most 32 KiB each). */
export const MAX_MESSAGE_CHARS = 1024;

/**
 * A message for a JSON answer field: one line (each run of control characters and line or
 * paragraph separators becomes a space) of at most MAX_MESSAGE_CHARS characters. Unlike oneLine,
 * other text stays as it is: a driver's message often quotes what the request named (an ID, a
 * path), and JSON carries any Unicode.
 */
export function messageLine(text: string): string {
  const line = text.replace(/[\p{Cc}\u2028\u2029]+/gu, ' ');
  return line.length > MAX_MESSAGE_CHARS ? `${line.slice(0, MAX_MESSAGE_CHARS)}…` : line;
}

export function sendPlain(reply: FastifyReply, status: number, message: string): FastifyReply {
  return reply.code(status).type('text/plain; charset=utf-8').send(oneLine(message));
}

