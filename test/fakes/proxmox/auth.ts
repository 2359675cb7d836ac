/**
 * Authentication as pveproxy does it: stateless API tokens, or tickets (2 h) with a CSRF
 * token on every non-GET request. Failures are 401 with the reason as status text.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { reply, type AuthInfo, type Handler } from './context.js';
import { PveError } from './errors.js';
import type { ResolvedOptions } from './options.js';

interface Session {
  user: string;
  issuedAt: number;
}

export type AuthResult = { ok: true; auth: AuthInfo } | { ok: false; status: 401; message: string };

/** The capability map a ticket login returns (shape of recorded/access-ticket.pve8.json). */
const CAPS = {
  vms: Object.fromEntries(
    ['VM.Allocate', 'VM.Audit', 'VM.Clone', 'VM.Config.CDROM', 'VM.Config.CPU', 'VM.Config.Cloudinit', 'VM.Config.Disk', 'VM.Config.HWType', 'VM.Config.Memory', 'VM.Config.Network', 'VM.Config.Options', 'VM.Console', 'VM.Migrate', 'VM.Monitor', 'VM.PowerMgmt', 'VM.Snapshot', 'VM.Snapshot.Rollback', 'Permissions.Modify'].map((p) => [p, 1]),
  ),
  storage: { 'Datastore.Allocate': 1, 'Datastore.AllocateSpace': 1, 'Datastore.AllocateTemplate': 1, 'Datastore.Audit': 1, 'Permissions.Modify': 1 },
  nodes: { 'Sys.Audit': 1, 'Sys.Console': 1, 'Sys.Modify': 1, 'Sys.PowerMgmt': 1, 'Sys.Syslog': 1, 'Permissions.Modify': 1 },
  access: { 'Group.Allocate': 1, 'User.Modify': 1, 'Permissions.Modify': 1 },
  dc: { 'SDN.Allocate': 1, 'SDN.Audit': 1, 'SDN.Use': 1, 'Sys.Audit': 1 },
  sdn: { 'SDN.Allocate': 1, 'SDN.Audit': 1, 'SDN.Use': 1, 'Permissions.Modify': 1 },
};

const hexTime = (ms: number): string => Math.floor(ms / 1000).toString(16).toUpperCase().padStart(8, '0');

/** PVE::APIServer::Formatter::extract_auth_value, for the Authorization header. */
function headerValue(header: string | undefined, key: string): string | undefined {
  if (!header) return undefined;
  const match = new RegExp(`(?:^|\\s)${key}(?:=|\\s)(\\S+)`).exec(header);
  return match?.[1] === undefined ? undefined : safeUnescape(match[1]);
}

function cookieValue(header: string | undefined, key: string): string | undefined {
  if (!header) return undefined;
  const match = new RegExp(`(?:^|[\\s;])${key}=([^;]*)`).exec(header);
  return match?.[1] === undefined || match[1] === '' ? undefined : safeUnescape(match[1]);
}

function safeUnescape(text: string): string {
  return text.replace(/%([0-9a-fA-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)));
}

export class Sessions {
  private readonly tickets = new Map<string, Session>();
  private readonly csrf = new Map<string, Session>();

  constructor(private readonly options: ResolvedOptions) {}

  private valid(session: Session | undefined, now: number): session is Session {
    return session !== undefined && now - session.issuedAt < this.options.ticketLifetimeMs;
  }

  /** Drops every ticket (tests of re-login). */
  expireAll(): void {
    this.tickets.clear();
    this.csrf.clear();
  }

  /** POST /access/ticket: password, or a still valid ticket of the same user (renewal). */
  login(username: string, password: string, realm: string | undefined, now: number): Record<string, unknown> {
    const user = username.includes('@') || realm === undefined ? username : `${username}@${realm}`;
    const renewal = this.tickets.get(password);
    const ok = this.options.users[user] === password || (this.valid(renewal, now) && renewal.user === user);
    if (!ok) throw new PveError(401, 'authentication failure');
    const signature = createHash('sha256').update(randomBytes(32)).digest('base64');
    const ticket = `PVE:${user}:${hexTime(now)}::${signature}`;
    const csrfToken = `${hexTime(now)}:${randomBytes(32).toString('base64').replace(/=+$/, '')}`;
    this.tickets.set(ticket, { user, issuedAt: now });
    this.csrf.set(csrfToken, { user, issuedAt: now });
    return { username: user, ticket, CSRFPreventionToken: csrfToken, cap: CAPS, clustername: 'pve-cluster' };
  }

  /** pve-manager's auth_handler; `open` marks the calls that need no authentication. */
  authenticate(headers: IncomingHttpHeaders, method: string, open: boolean, now: number): AuthResult {
    const authorization = headers.authorization;
    const ticket = cookieValue(headers.cookie, 'PVEAuthCookie') ?? headerValue(authorization, 'PVEAuthCookie');
    const token = ticket === undefined ? headerValue(authorization, 'PVEAPIToken') : undefined;
    if (open) {
      const tokenUser = token === undefined ? undefined : /^(.*)=/.exec(token)?.[1];
      const [user = 'anonymous', tokenid] = (tokenUser ?? 'anonymous').split('!');
      return { ok: true, auth: tokenid === undefined ? { kind: 'anonymous', user } : { kind: 'token', user, tokenid } };
    }
    if (token !== undefined) {
      // verify_token: the secret follows the last '='.
      const match = /^(.*)=(.*)$/.exec(token);
      if (!match) return { ok: false, status: 401, message: 'no tokenid specified' };
      const tokenFull = match[1] ?? '';
      const [user = '', tokenid] = tokenFull.split('!');
      if (tokenid === undefined || !(tokenFull in this.options.tokens)) {
        return { ok: false, status: 401, message: `no such token '${tokenid ?? ''}' for user '${user}'` };
      }
      if (this.options.tokens[tokenFull] !== match[2]) return { ok: false, status: 401, message: 'invalid token value!' };
      return { ok: true, auth: { kind: 'token', user, tokenid } };
    }
    if (ticket === undefined) return { ok: false, status: 401, message: 'No ticket' };
    const session = this.tickets.get(ticket);
    if (!this.valid(session, now)) return { ok: false, status: 401, message: 'permission denied - invalid PVE ticket' };
    if (method !== 'GET') {
      const header = headers['csrfpreventiontoken'];
      const csrf = this.csrf.get(Array.isArray(header) ? (header[0] ?? '') : (header ?? ''));
      if (!this.valid(csrf, now) || csrf.user !== session.user) {
        return { ok: false, status: 401, message: 'Permission denied - invalid csrf token' };
      }
    }
    return { ok: true, auth: { kind: 'ticket', user: session.user } };
  }
}

export const accessHandlers: Record<string, Handler> = {
  'GET /access/ticket': () => reply(null),
  'POST /access/ticket': (ctx) =>
    reply(ctx.sessions.login(ctx.params.need('username'), ctx.params.need('password'), ctx.params.str('realm'), ctx.world.now())),
};
