// The vim25 SOAP wire protocol and nothing else: one keep-alive pool per endpoint, the service
// content, the session cookie, envelopes, and faults as typed Driver errors. It knows no VM
// semantics; the verb modules decide what to ask.

import type { Pool } from 'undici';
import { httpsPool } from '../common/https-pool.js';
import { UnauthorizedError, UnreachableError } from '../../contracts/driver.js';
import type { VsphereConfig } from './config.js';
import { SoapFault, errorFromFault, errorFromTransport, readSoapFault } from './errors.js';
import { el, envelope, moref, type MoRef, type Xml } from './soap.js';
import { SOAP_ENV, XmlParseError, child, childrenNamed, parseXml, textAt, type XmlElement } from './xml.js';

export interface VsphereClientOptions {
  connections?: number;
  requestTimeoutMs?: number;
}

export interface ServiceContent {
  rootFolder: MoRef;
  propertyCollector: MoRef;
  viewManager: MoRef;
  sessionManager: MoRef;
  searchIndex: MoRef;
  /** Absent only on a server without task or event history; every vCenter and ESXi has both. */
  taskManager: MoRef | undefined;
  eventManager: MoRef | undefined;
  /** Parses OVF descriptors (CreateImportSpec); absent on a server without OVF support. */
  ovfManager: MoRef | undefined;
  about: { fullName: string; version: string; apiVersion: string; instanceUuid: string | undefined; apiType: string };
}

const DEFAULTS = { connections: 8, requestTimeoutMs: 60_000 };
const SERVICE_INSTANCE: MoRef = { type: 'ServiceInstance', value: 'ServiceInstance' };
const SESSION_COOKIE = 'vmware_soap_session';
/** Shown in vCenter's session list, so an admin can tell whose sessions these are. */
export const USER_AGENT = 'virtrigaud-vsphere';

export function morefOf(element: XmlElement | undefined): MoRef | undefined {
  if (element === undefined) return undefined;
  const type = element.attributes['type'];
  return type === undefined ? undefined : { type, value: element.text };
}

function requireRef(content: XmlElement | undefined, name: string): MoRef {
  const ref = morefOf(child(content, name));
  if (ref === undefined) throw new UnreachableError(`the vSphere service content has no ${name}`);
  return ref;
}

/** The session cookie from `Set-Cookie` headers: vcsim sends it bare, vCenter quoted with Path and Secure. */
export function sessionCookie(setCookie: string | string[] | undefined): string | undefined {
  const headers = setCookie === undefined ? [] : Array.isArray(setCookie) ? setCookie : [setCookie];
  for (const header of headers) {
    const pair = header.split(';')[0]?.trim() ?? '';
    if (pair.startsWith(`${SESSION_COOKIE}=`)) return pair;
  }
  return undefined;
}

/**
 * A property read answered without a session: the PropertyCollector may answer every property
 * with a NotAuthenticated missingSet entry instead of a fault (govmomi's simulator does, for
 * RetrieveProperties[Ex] reaches it without a session; NOTES). That is the session gone, not
 * objects vSphere cannot read: it is raised as the NotAuthenticated fault it stands for.
 */
function sessionHeld(response: XmlElement): XmlElement {
  const returned = childrenNamed(response, 'returnval');
  const objects = [...returned, ...returned.flatMap((value) => childrenNamed(value, 'objects'))];
  for (const object of objects) {
    for (const missing of childrenNamed(object, 'missingSet')) {
      if (child(child(missing, 'fault'), 'fault')?.type?.name === 'NotAuthenticated') {
        throw new SoapFault({ type: 'NotAuthenticated', message: 'vSphere answered a property read as not authenticated: the session has ended' });
      }
    }
  }
  return response;
}

export class VsphereClient {
  readonly config: VsphereConfig;
  readonly host: string;
  readonly #pool: Pool;
  #content: Promise<ServiceContent> | undefined;
  #cookie: string | undefined;
  #login: Promise<string> | undefined;
  #closing: Promise<void> | undefined;
  /** How many logins this client has made; tests read it to see a re-login. */
  logins = 0;

  constructor(config: VsphereConfig, options: VsphereClientOptions = {}) {
    this.config = config;
    this.host = new URL(config.origin).host;
    const timeout = options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
    this.#pool = httpsPool(config.origin, {
      connections: options.connections ?? DEFAULTS.connections,
      timeoutMs: timeout,
      insecureSkipVerify: config.insecureSkipVerify,
      caBundle: config.caBundle,
      limits: config.http,
    });
  }

  /** RetrieveServiceContent, once per client (it needs no session). */
  serviceContent(signal?: AbortSignal): Promise<ServiceContent> {
    if (this.#content === undefined) {
      const pending = this.#fetchServiceContent(signal);
      this.#content = pending;
      pending.catch(() => {
        if (this.#content === pending) this.#content = undefined;
      });
    }
    return this.#content;
  }

  async #fetchServiceContent(signal?: AbortSignal): Promise<ServiceContent> {
    // Before `about` is known there is no apiVersion to name: the unversioned action selects the
    // server's base version, in which every vim25 server answers this one method.
    const response = await this.#send('RetrieveServiceContent', [moref('_this', SERVICE_INSTANCE)], 'urn:vim25', undefined, signal);
    const content = child(response, 'returnval');
    const about = child(content, 'about');
    return {
      rootFolder: requireRef(content, 'rootFolder'),
      propertyCollector: requireRef(content, 'propertyCollector'),
      viewManager: requireRef(content, 'viewManager'),
      sessionManager: requireRef(content, 'sessionManager'),
      searchIndex: requireRef(content, 'searchIndex'),
      taskManager: morefOf(child(content, 'taskManager')),
      eventManager: morefOf(child(content, 'eventManager')),
      ovfManager: morefOf(child(content, 'ovfManager')),
      about: {
        fullName: textAt(about, 'fullName') ?? 'vSphere',
        version: textAt(about, 'version') ?? '',
        apiVersion: textAt(about, 'apiVersion') ?? '6.5',
        instanceUuid: textAt(about, 'instanceUuid'),
        apiType: textAt(about, 'apiType') ?? '',
      },
    };
  }

  /**
   * Calls a vim25 method with a session; answers the `<MethodResponse>` element. A
   * NotAuthenticated fault (the session expired or was terminated) means the call did not run,
   * so it is retried once after a fresh login.
   */
  async call(method: string, params: readonly (Xml | undefined)[], signal?: AbortSignal): Promise<XmlElement> {
    const content = await this.serviceContent(signal);
    const action = `urn:vim25/${content.about.apiVersion}`;
    const cookie = await this.#session(signal);
    try {
      return sessionHeld(await this.#send(method, params, action, cookie, signal));
    } catch (error) {
      if (!(error instanceof SoapFault)) throw error;
      if (error.fault.type !== 'NotAuthenticated') throw errorFromFault(error.fault);
      if (this.#cookie === cookie) this.#cookie = undefined;
      const fresh = await this.#session(signal);
      try {
        return sessionHeld(await this.#send(method, params, action, fresh, signal));
      } catch (retryError) {
        if (retryError instanceof SoapFault) throw errorFromFault(retryError.fault);
        throw retryError;
      }
    }
  }

  /** The `returnval` of a call (undefined when the method answered nothing, as FindByInventoryPath does). */
  async returnval(method: string, params: readonly (Xml | undefined)[], signal?: AbortSignal): Promise<XmlElement | undefined> {
    return child(await this.call(method, params, signal), 'returnval');
  }

  /**
   * The session cookie (`vmware_soap_session=…`), logging in when there is none: disk transfers
   * send it to this endpoint's own host, as govmomi's client does for NFC device URLs there.
   */
  currentSession(signal?: AbortSignal): Promise<string> {
    return this.#session(signal);
  }

  /** Logs out and closes the pool; a failed Logout (session already gone, server down) is not an error. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const cookie = this.#cookie;
    this.#cookie = undefined;
    if (cookie !== undefined) {
      try {
        const content = await this.serviceContent();
        await this.#send('Logout', [moref('_this', content.sessionManager)], `urn:vim25/${content.about.apiVersion}`, cookie, AbortSignal.timeout(5_000));
      } catch {
        // Sessions also expire on their own.
      }
    }
    await this.#pool.close();
  }

  #session(signal?: AbortSignal): Promise<string> {
    if (this.#cookie !== undefined) return Promise.resolve(this.#cookie);
    if (this.#login === undefined) {
      const pending = this.#doLogin(signal).finally(() => {
        if (this.#login === pending) this.#login = undefined;
      });
      this.#login = pending;
    }
    return this.#login;
  }

  async #doLogin(signal?: AbortSignal): Promise<string> {
    const content = await this.serviceContent(signal);
    const action = `urn:vim25/${content.about.apiVersion}`;
    let cookie: string | undefined;
    try {
      await this.#send(
        'Login',
        [moref('_this', content.sessionManager), el('userName', this.config.username), el('password', this.config.password.reveal())],
        action,
        undefined,
        signal,
        (value) => {
          cookie = value;
        },
      );
    } catch (error) {
      if (error instanceof SoapFault) {
        if (error.fault.type === 'InvalidLogin') throw new UnauthorizedError(`vSphere rejected the login of ${this.config.username}: check VSPHERE_USERNAME and VSPHERE_PASSWORD`);
        throw errorFromFault(error.fault, 'login failed');
      }
      throw error;
    }
    if (cookie === undefined) throw new UnreachableError(`${this.host} answered the login without a ${SESSION_COOKIE} cookie`);
    this.logins += 1;
    this.#cookie = cookie;
    return cookie;
  }

  async #send(
    method: string,
    params: readonly (Xml | undefined)[],
    action: string,
    cookie: string | undefined,
    signal: AbortSignal | undefined,
    onCookie?: (cookie: string) => void,
  ): Promise<XmlElement> {
    if (signal?.aborted) throw new UnreachableError(`${method} aborted before it was sent`);
    const headers: Record<string, string> = { 'content-type': 'text/xml; charset=utf-8', soapaction: `"${action}"`, 'user-agent': USER_AGENT };
    if (cookie !== undefined) headers['cookie'] = cookie;
    let status: number;
    let text: string;
    try {
      const response = await this.#pool.request({
        method: 'POST',
        path: this.config.sdkPath,
        headers,
        body: envelope(method, params),
        ...(signal === undefined ? {} : { signal }),
      });
      status = response.statusCode;
      const set = sessionCookie(response.headers['set-cookie']);
      if (set !== undefined) onCookie?.(set);
      text = await response.body.text();
    } catch (error) {
      throw errorFromTransport(error, this.host);
    }
    let document: XmlElement;
    try {
      document = parseXml(text);
    } catch (error) {
      if (error instanceof XmlParseError) throw new UnreachableError(`${this.host} answered ${method} with HTTP ${status} and no SOAP envelope`);
      throw error;
    }
    const body = child(document, 'Body');
    const first = body?.children[0];
    if (document.ns !== SOAP_ENV || first === undefined) throw new UnreachableError(`${this.host} answered ${method} with HTTP ${status} and no SOAP body`);
    if (first.name === 'Fault') throw new SoapFault(readSoapFault(first));
    if (status !== 200) throw new UnreachableError(`${this.host} answered ${method} with HTTP ${status}`);
    return first;
  }
}
