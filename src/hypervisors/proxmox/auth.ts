// How requests prove who they are (NOTES §2, pve-http-server AnyEvent.pm):
// - an API token is one header on every request, stateless, and needs no CSRF token;
// - a password login yields a ticket (cookie) plus a CSRFPreventionToken that every non-GET must
//   carry. Tickets live 2 h; we renew at 90 min by posting the old ticket as the password, and
//   log in again once when PVE answers 401 (a restarted cluster forgets nothing, but a rotated
//   authkey invalidates every ticket).

import { UnauthorizedError } from '../../contracts/driver.js';
import type { ProxmoxAuth } from './config.js';
import { isRow, str } from './values.js';

export const TICKET_RENEW_AFTER_MS = 90 * 60 * 1000;

/** Sends one unauthenticated form POST and returns the envelope's `data`; throws typed errors. */
export type LoginTransport = (path: string, form: Record<string, string>) => Promise<unknown>;

export interface Credentials {
  headers: Record<string, string>;
  /** Identifies the ticket used, so a 401 invalidates only that one. */
  ticket?: string;
}

interface Ticket {
  ticket: string;
  csrf: string;
  obtainedAt: number;
}

export class Authenticator {
  readonly #auth: ProxmoxAuth;
  readonly #login: LoginTransport;
  readonly #now: () => number;
  #ticket: Ticket | undefined;
  #pending: Promise<Ticket> | undefined;

  constructor(auth: ProxmoxAuth, login: LoginTransport, now: () => number) {
    this.#auth = auth;
    this.#login = login;
    this.#now = now;
  }

  get usesTickets(): boolean {
    return this.#auth.kind === 'password';
  }

  async credentials(method: string): Promise<Credentials> {
    const auth = this.#auth;
    if (auth.kind === 'token') {
      return { headers: { authorization: `PVEAPIToken=${auth.tokenId}=${auth.secret.reveal()}` } };
    }
    const ticket = await this.#currentTicket();
    const headers: Record<string, string> = { cookie: `PVEAuthCookie=${ticket.ticket}` };
    // pve-http-server checks the CSRF token only on state-changing methods.
    if (method !== 'GET') headers['csrfpreventiontoken'] = ticket.csrf;
    return { headers, ticket: ticket.ticket };
  }

  /** Forgets `ticket` after PVE refused it, so the next request logs in again. */
  rejected(ticket: string | undefined): void {
    if (ticket !== undefined && this.#ticket?.ticket === ticket) this.#ticket = undefined;
  }

  #currentTicket(): Promise<Ticket> {
    const ticket = this.#ticket;
    if (ticket !== undefined && this.#now() - ticket.obtainedAt < TICKET_RENEW_AFTER_MS) return Promise.resolve(ticket);
    // One login at a time: a burst of requests at expiry must not become a burst of logins.
    this.#pending ??= this.#obtain(ticket).finally(() => {
      this.#pending = undefined;
    });
    return this.#pending;
  }

  async #obtain(previous: Ticket | undefined): Promise<Ticket> {
    const auth = this.#auth;
    if (auth.kind !== 'password') throw new Error('tickets are only used with password authentication');
    if (previous !== undefined) {
      try {
        return (this.#ticket = await this.#request(auth.username, previous.ticket));
      } catch (error) {
        if (!(error instanceof UnauthorizedError)) throw error;
        // The old ticket expired or was revoked: fall through to a fresh login.
      }
    }
    return (this.#ticket = await this.#request(auth.username, auth.password.reveal()));
  }

  async #request(username: string, password: string): Promise<Ticket> {
    let data: unknown;
    try {
      data = await this.#login('/access/ticket', { username, password });
    } catch (error) {
      // The seed's wording for a refused login; PVE itself only says 401 "authentication failure".
      if (error instanceof UnauthorizedError) throw new UnauthorizedError('authentication failed: invalid credentials');
      throw error;
    }
    const row = isRow(data) ? data : {};
    const ticket = str(row['ticket']);
    const csrf = str(row['CSRFPreventionToken']);
    if (row['NeedTFA'] !== undefined && row['NeedTFA'] !== 0) {
      throw new UnauthorizedError(`user ${username} needs two-factor authentication; use an API token (PVE_TOKEN_ID) instead`);
    }
    if (ticket === undefined || csrf === undefined) throw new UnauthorizedError('authentication failed: PVE returned no ticket');
    return { ticket, csrf, obtainedAt: this.#now() };
  }
}
