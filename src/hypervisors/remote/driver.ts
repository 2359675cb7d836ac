// The Driver over HTTP to a provider runtime: one keep-alive pool per runtime, JSON bodies typed
// by src/contracts/remote.ts, and every answer checked against the same schema before it is
// believed. Typed errors come back as the same classes with the same messages.
import { Value } from '@sinclair/typebox/value';
import type { TSchema, Static } from '@sinclair/typebox';
import { Pool } from 'undici';
import {
  InvalidSpecError,
  UnauthorizedError,
  UnreachableError,
  UnsupportedError,
  type CallOptions,
  type CloneTarget,
  type CloneStarted,
  type Capabilities,
  type CreateSpec,
  type Driver,
  driverErrorOf,
  type Inventory,
  type ObservedVM,
  type PowerOperation,
  type ResourceChange,
  type SnapshotInfo,
  type SnapshotRequest,
  type Started,
  type TaskStatus,
  type VMRef,
  type DiskExportRequest,
  type DiskImportRequest,
  type DiskImported,
  type MigrationVolume,
  type Identity,
} from '../../contracts/driver.js';
import {
  CapabilitiesResponse,
  DRIVER_ERROR_STATUS,
  ErrorEnvelope,
  REMOTE_METHODS,
  remotePath,
  type RemoteMethod,
  type RemoteRequest,
  type RemoteResponse,
} from '../../contracts/remote.js';

export interface RemoteDriverOptions {
  /** Open connections to the runtime at most. */
  connections?: number;
  /** Headers and body must each arrive within this time (callers' signals usually cut in first). */
  requestTimeoutMs?: number;
  /** Aborts the first capabilities call made by `connect`. */
  signal?: AbortSignal;
}

const DEFAULTS = { connections: 16, requestTimeoutMs: 30_000 };

interface RawAnswer {
  status: number;
  text: string;
}

export class RemoteDriver implements Driver {
  readonly #pool: Pool;
  readonly #prefix: string;
  readonly #authorization: string;
  /** Where, for messages: never the token. */
  readonly #where: string;
  #described: CapabilitiesResponse | undefined;

  private constructor(url: URL, token: string, options: RemoteDriverOptions) {
    const timeout = options.requestTimeoutMs ?? DEFAULTS.requestTimeoutMs;
    this.#pool = new Pool(url.origin, {
      connections: options.connections ?? DEFAULTS.connections,
      headersTimeout: timeout,
      bodyTimeout: timeout,
      connect: { timeout: Math.min(timeout, 10_000) },
    });
    this.#prefix = url.pathname.replace(/\/+$/, '');
    this.#authorization = `Bearer ${token}`;
    this.#where = `provider runtime ${url.host}`;
  }

  /** A driver for the runtime at `url` (`http://host:port`, optionally with a path prefix), once it has said what it is. */
  static async connect(url: string, token: string, options: RemoteDriverOptions = {}): Promise<RemoteDriver> {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new InvalidSpecError(`invalid provider runtime URL "${url}"`);
    }
    if ((parsed.protocol !== 'http:' && parsed.protocol !== 'https:') || parsed.username !== '' || parsed.password !== '' || parsed.search !== '') {
      throw new InvalidSpecError(`invalid provider runtime URL "${parsed.origin}${parsed.pathname}": want http(s)://host:port`);
    }
    const driver = new RemoteDriver(parsed, token, options);
    try {
      await driver.refresh(options.signal === undefined ? {} : { signal: options.signal });
    } catch (error) {
      await driver.close();
      throw error;
    }
    return driver;
  }

  get type(): string {
    return this.#description().type;
  }

  get capabilities(): Capabilities {
    return this.#description().capabilities;
  }

  /** Asks the runtime again what it is (a new runtime image may bring new capabilities). */
  async refresh(options?: CallOptions): Promise<void> {
    const answer = await this.#send('GET', remotePath('capabilities'), undefined, options?.signal);
    this.#described = this.#expect('capabilities', CapabilitiesResponse, answer);
  }

  close(): Promise<void> {
    return this.#pool.close();
  }

  async probe(options?: CallOptions): Promise<{ version: string }> {
    const [probed] = await Promise.all([this.#call('probe', {}, options), this.refresh(options)]);
    return probed;
  }

  inventory(options?: CallOptions): Promise<Inventory> {
    return this.#call('inventory', {}, options);
  }

  describe(id: string, options?: CallOptions): Promise<ObservedVM> {
    return this.#call('describe', { id }, options);
  }

  async findByIdentity(uid: string, options?: CallOptions): Promise<ObservedVM | undefined> {
    return (await this.#call('findByIdentity', { uid }, options)).vm;
  }

  create(spec: CreateSpec, options?: CallOptions): Promise<{ id: string } & Started> {
    return this.#call('create', { spec }, options);
  }

  delete(ref: VMRef, options?: CallOptions): Promise<Started> {
    return this.#call('delete', { ref }, options);
  }

  power(ref: VMRef, operation: PowerOperation, options?: CallOptions): Promise<Started> {
    return this.#call('power', { ref, operation }, options);
  }

  reconfigure(ref: VMRef, change: ResourceChange, options?: CallOptions): Promise<Started> {
    return this.#call('reconfigure', { ref, change }, options);
  }

  resizeDisk(ref: VMRef, disk: string, sizeBytes: number, options?: CallOptions): Promise<Started> {
    return this.#call('resizeDisk', { ref, disk, sizeBytes }, options);
  }

  snapshotCreate(ref: VMRef, request: SnapshotRequest, options?: CallOptions): Promise<{ id: string } & Started> {
    return this.#call('snapshotCreate', { ref, request }, options);
  }

  snapshotDelete(ref: VMRef, snapshotId: string, options?: CallOptions): Promise<Started> {
    return this.#call('snapshotDelete', { ref, snapshotId }, options);
  }

  snapshotRevert(ref: VMRef, snapshotId: string, options?: CallOptions): Promise<Started> {
    return this.#call('snapshotRevert', { ref, snapshotId }, options);
  }

  async snapshotList(ref: VMRef, options?: CallOptions): Promise<SnapshotInfo[]> {
    return (await this.#call('snapshotList', { ref }, options)).snapshots;
  }

  clone(ref: VMRef, target: CloneTarget, options?: CallOptions): Promise<CloneStarted> {
    return this.#call('clone', { ref, target }, options);
  }

  taskStatus(task: string, options?: CallOptions): Promise<TaskStatus> {
    return this.#call('taskStatus', { task }, options);
  }

  exportDisk(ref: VMRef, request: DiskExportRequest, options?: CallOptions): Promise<Started> {
    return this.#call('exportDisk', { ref, request }, options);
  }

  importDisk(owner: Identity, request: DiskImportRequest, options?: CallOptions): Promise<DiskImported> {
    return this.#call('importDisk', { owner, request }, options);
  }

  deleteImportedDisk(owner: Identity, name: string, options?: CallOptions): Promise<Started> {
    return this.#call('deleteImportedDisk', { owner, name }, options);
  }

  migrationVolume(volume: string, options?: CallOptions): Promise<MigrationVolume> {
    return this.#call('migrationVolume', { volume }, options);
  }

  async removeMigrationFiles(dir: string, options?: CallOptions): Promise<void> {
    await this.#call('removeMigrationFiles', { dir }, options);
  }

  #description(): CapabilitiesResponse {
    // connect() is the only way to get a RemoteDriver, and it refreshes before it returns.
    if (this.#described === undefined) throw new Error('RemoteDriver used before connect()');
    return this.#described;
  }

  async #call<M extends RemoteMethod>(method: M, body: RemoteRequest<M>, options: CallOptions | undefined): Promise<RemoteResponse<M>> {
    const answer = await this.#send('POST', remotePath(method), JSON.stringify(body), options?.signal);
    return this.#expect(method, REMOTE_METHODS[method].response, answer);
  }

  /** The answer's body when it is a 200 that fits `schema`; otherwise the typed error it stands for. */
  #expect<T extends TSchema>(what: string, schema: T, answer: RawAnswer): Static<T> {
    if (answer.status === 200) return checked(schema, parseJson(answer.text));
    if (answer.status === DRIVER_ERROR_STATUS) {
      const envelope = checked(ErrorEnvelope, parseJson(answer.text));
      throw driverErrorOf(envelope.error.code, envelope.error.message);
    }
    const line = answer.text.replace(/\s+/g, ' ').trim().slice(0, 300);
    switch (answer.status) {
      case 401:
        throw new UnauthorizedError(`${this.#where} refused the token (401)`);
      case 400:
      case 413:
      case 415:
        // The runtime judged the request outside the contract: as asked, it can never succeed.
        throw new InvalidSpecError(`${this.#where} refused ${what}: ${line}`);
      case 404:
        throw new UnsupportedError(`${this.#where} does not serve ${what} (404): a different version?`);
      default:
        throw new UnreachableError(`${this.#where} failed ${what} (${answer.status}): ${line}`);
    }
  }

  async #send(method: 'GET' | 'POST', path: string, body: string | undefined, signal: AbortSignal | undefined): Promise<RawAnswer> {
    if (signal?.aborted) throw new UnreachableError(`${path} aborted before it was sent`);
    const headers: Record<string, string> = { authorization: this.#authorization, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    try {
      const response = await this.#pool.request({
        method,
        path: `${this.#prefix}${path}`,
        headers,
        ...(body === undefined ? {} : { body }),
        ...(signal === undefined ? {} : { signal }),
      });
      return { status: response.statusCode, text: await response.body.text() };
    } catch (error) {
      if (signal?.aborted) throw new UnreachableError(`${path} aborted: the call may or may not have happened`);
      const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : undefined;
      const message = error instanceof Error ? error.message : String(error);
      // A refused connection to a dual-stack name is an AggregateError with a code and no message.
      throw new UnreachableError(`${this.#where} unreachable: ${message !== '' ? message : (code ?? 'connection failed')}`);
    }
  }
}

const NOT_JSON = Symbol('not JSON');

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return NOT_JSON;
  }
}

/** The value when it fits the contract; an answer that does not is never trusted. */
function checked<T extends TSchema>(schema: T, value: unknown): Static<T> {
  if (value === NOT_JSON) throw new UnreachableError('provider runtime answered outside the contract: / not JSON');
  if (Value.Check(schema, value)) return value;
  const first = Value.Errors(schema, value).First();
  throw new UnreachableError(`provider runtime answered outside the contract: ${first?.path || '/'} ${first?.message ?? 'does not fit'}`);
}
