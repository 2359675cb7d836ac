// HTTP/1.1 written by hand over a socket, for requests no client library will send: odd request
// targets, malformed heads, bodies that trickle in.
import { connect, type Socket } from 'node:net';
import type { SimOperation } from '../../src/hypervisors/simulator/model.js';
import type { SimulatedHypervisor } from '../../src/hypervisors/simulator/index.js';

export interface RawAnswer {
  status: number;
  headers: string;
  body: string;
  /** The whole answer as received (several answers on one connection stay concatenated). */
  raw: string;
}

export function parseAnswer(raw: string): RawAnswer {
  const [head = '', ...rest] = raw.split('\r\n\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
  return { status, headers: head, body: rest.join('\r\n\r\n'), raw };
}

/** Sends `request` as is and resolves with what came back once the server closes or `timeoutMs` passes. */
export function rawRequest(port: number, request: string | Buffer, timeoutMs = 5000): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', (error) => {
      clearTimeout(timer);
      if (chunks.length > 0) resolve(parseAnswer(Buffer.concat(chunks).toString('utf8')));
      else reject(error);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(parseAnswer(Buffer.concat(chunks).toString('utf8')));
    });
    socket.write(request);
  });
}

/** A POST with a JSON body to `target` (any request-target text), Connection: close. */
export function postRaw(port: number, target: string, body: unknown, headers: Record<string, string> = {}): Promise<RawAnswer> {
  const payload = Buffer.from(JSON.stringify(body));
  const lines = [
    `POST ${target} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    'Content-Type: application/json',
    `Content-Length: ${payload.length}`,
    'Connection: close',
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  return rawRequest(port, Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`), payload]));
}

/** Opens a socket and returns it once connected. */
export function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => resolve(socket));
    socket.once('error', reject);
  });
}

const OPERATIONS: SimOperation[] = [
  'probe', 'inventory', 'describe', 'findByIdentity', 'create', 'delete', 'power', 'reconfigure', 'resizeDisk',
  'snapshotCreate', 'snapshotDelete', 'snapshotRevert', 'snapshotList', 'clone', 'taskStatus',
];

/** Every driver call the simulated hypervisor has received. */
export function totalCalls(world: SimulatedHypervisor): number {
  return OPERATIONS.reduce((sum, operation) => sum + world.callCount(operation), 0);
}

/**
 * Spellings of one route path that a router may match but a check on the URL text would not:
 * percent-encoded letters and slashes, case, dot segments, doubled slashes, trailing bits, and
 * absolute-form request targets.
 */
export function pathSpellings(path: string, port: number): string[] {
  const [first = '', ...others] = path.split('/').slice(1);
  const rest = others.join('/');
  const encodeAll = (text: string) => [...text].map((c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join('');
  const last = others.at(-1) ?? '';
  const withoutLast = `/${[first, ...others.slice(0, -1)].join('/')}`;
  return [
    path,
    `/%${first.charCodeAt(0).toString(16)}${first.slice(1)}/${rest}`,
    `/%${first.charCodeAt(0).toString(16).toUpperCase()}${first.slice(1)}/${rest}`,
    `/${encodeAll(first)}/${rest}`,
    `/%25${first.charCodeAt(0).toString(16)}${first.slice(1)}/${rest}`,
    `${withoutLast}/%${last.charCodeAt(0).toString(16)}${last.slice(1)}`,
    `/${first}%2F${others.join('%2F')}`,
    `/${first}%2f${others.join('%2f')}`,
    `/${first.toUpperCase()}/${rest}`,
    `//${first}/${rest}`,
    `/${first}//${rest}`,
    `/./${first}/${rest}`,
    `/x/../${first}/${rest}`,
    `/${first}/./${rest}`,
    `/%2e/${first}/${rest}`,
    `${path}/`,
    `${path}?x=1`,
    `${path}?`,
    `${path}#fragment`,
    `${path};x`,
    `${path}%00`,
    `${path}%20`,
    `${path}%3F`,
    `${path}%23`,
    `http://127.0.0.1:${port}${path}`,
    `HTTP://127.0.0.1:${port}${path}`,
    `http://localhost${path}`,
    `http://evil.example${path}`,
    `http://127.0.0.1:${port}/%${first.charCodeAt(0).toString(16)}${first.slice(1)}/${rest}`,
    `https://127.0.0.1:${port}${path}`,
    `//127.0.0.1:${port}${path}`,
    `*`,
  ];
}
