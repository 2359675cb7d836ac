// The transport: one ssh2 connection per host, reused by every command, with a bounded number of
// concurrent exec channels (sshd's MaxSessions defaults to 10). Commands are argument vectors,
// quoted by shell.ts; payloads (domain XML, cloud-init data) travel on the channel's stdin.
// Disk transfers stream instead (stream()): a volume passes through the channel with
// back-pressure, never whole in memory.
// The host key must match a pinned known_hosts entry unless trust-on-first-use was asked for,
// in which case the first key seen is pinned for the life of the process and its fingerprint logged.

import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client, type ClientChannel, type ConnectConfig } from 'ssh2';
import { UnauthorizedError, UnreachableError } from '../../contracts/driver.js';
import { fingerprint, pinnedKeys } from './known-hosts.js';
import { commandLine } from './shell.js';
import type { Secret } from './config.js';

export interface SshTarget {
  host: string;
  port: number;
  username: string;
  privateKey?: Secret;
  password?: Secret;
  knownHosts?: string;
  trustOnFirstUse: boolean;
  maxChannels: number;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  stdin?: string | Buffer;
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface StreamOptions {
  /** Sent as the command's stdin, then end of file; destroyed when the command ends. */
  stdin?: Readable;
  /** Receives the command's stdout as it comes, with back-pressure. */
  stdout?: Writable;
  signal?: AbortSignal;
  /** A transfer that moves no byte for this long is abandoned (a stalled host, a half-dead link). */
  idleTimeoutMs?: number;
}

export interface StreamResult {
  code: number | null;
  /** The end of the command's stderr (the error message, never a transfer's data). */
  stderr: string;
}

const DEFAULT_TIMEOUT_MS = 120_000;
const DEFAULT_IDLE_TIMEOUT_MS = 300_000;
const STDERR_KEPT = 16_384;
const CONNECT_TIMEOUT_MS = 15_000;

type Log = (line: string) => void;

/** At most `limit` holders at a time; the others wait, in order. */
class Slots {
  #active = 0;
  readonly #waiting: (() => void)[] = [];

  constructor(readonly limit: number) {}

  async acquire(): Promise<void> {
    if (this.#active < this.limit) {
      this.#active++;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#active--;
  }
}

export class SshTransport {
  readonly #target: SshTarget;
  readonly #log: Log;
  #connection: Promise<Client> | undefined;
  #tofuKey: string | undefined;
  readonly #channels: Slots;
  /**
   * A transfer holds its channel for minutes: at most half of them stream at once, so other
   * commands (a transfer's own lease renewals among them) always find a channel.
   */
  readonly #streams: Slots;
  /** Why the last connection attempt was refused, for the error message. */
  #hostKeyProblem: string | undefined;

  constructor(target: SshTarget, log: Log = (line) => process.stderr.write(`${line}\n`)) {
    this.#target = target;
    this.#log = log;
    this.#channels = new Slots(target.maxChannels);
    this.#streams = new Slots(Math.max(1, Math.floor(target.maxChannels / 2)));
  }

  /** Runs one command; resolves with its exit code and output, rejects only when the transport fails. */
  async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const command = commandLine(argv);
    options.signal?.throwIfAborted();
    await this.#channels.acquire();
    try {
      const client = await this.#connect();
      return await this.#exec(client, command, argv[0] ?? 'command', options);
    } finally {
      this.#channels.release();
    }
  }

  /**
   * Runs one command whose stdin and stdout are streams (a disk's bytes), for as long as bytes
   * keep moving; resolves with its exit code once the output is all written.
   */
  async stream(argv: readonly string[], options: StreamOptions = {}): Promise<StreamResult> {
    const command = commandLine(argv);
    options.signal?.throwIfAborted();
    await this.#streams.acquire();
    try {
      await this.#channels.acquire();
      try {
        // Aborted while it waited for a slot: the abort listener would come too late.
        if (options.signal?.aborted) throw new UnreachableError(`${argv[0] ?? 'command'} aborted`);
        const client = await this.#connect();
        return await this.#execStream(client, command, argv[0] ?? 'command', options);
      } finally {
        this.#channels.release();
      }
    } finally {
      this.#streams.release();
      // Consumed or not (no connection), its file is closed.
      options.stdin?.destroy();
    }
  }

  close(): void {
    const connection = this.#connection;
    this.#connection = undefined;
    void connection?.then((client) => client.end()).catch(() => undefined);
  }

  #verifyHostKey(key: Buffer): boolean {
    const blob = key.toString('base64');
    const { host, port, knownHosts, trustOnFirstUse } = this.#target;
    const pinned = pinnedKeys(knownHosts ?? '', host, port);
    if (pinned.revoked.has(blob)) {
      this.#hostKeyProblem = `host key ${fingerprint(key)} of ${host}:${port} is revoked`;
      return false;
    }
    if (pinned.accepted.has(blob)) return true;
    if (pinned.accepted.size === 0 && trustOnFirstUse) {
      if (this.#tofuKey === undefined) {
        this.#tofuKey = blob;
        this.#log(`libvirt: trusting ${host}:${port} on first use, host key ${fingerprint(key)}`);
      }
      if (this.#tofuKey === blob) return true;
    }
    this.#hostKeyProblem =
      pinned.accepted.size === 0 && !trustOnFirstUse
        ? `host key ${fingerprint(key)} of ${host}:${port} is unknown (no known_hosts entry; trust on first use is off)`
        : `host key ${fingerprint(key)} of ${host}:${port} does not match the pinned key`;
    return false;
  }

  #connect(): Promise<Client> {
    if (this.#connection) return this.#connection;
    const { host, port, username, privateKey, password, knownHosts } = this.#target;
    const config: ConnectConfig = {
      host,
      port,
      username,
      readyTimeout: CONNECT_TIMEOUT_MS,
      keepaliveInterval: 15_000,
      hostVerifier: (key: Buffer) => this.#verifyHostKey(key),
    };
    if (privateKey) config.privateKey = privateKey.reveal();
    if (password) {
      config.password = password.reveal();
      // Many sshd setups offer passwords only through keyboard-interactive (PAM).
      config.tryKeyboard = true;
    }
    // Offer only the pinned key types, so the server presents a key we can check.
    const types = [...pinnedKeys(knownHosts ?? '', host, port).types];
    if (types.length > 0) config.algorithms = { serverHostKey: types as NonNullable<NonNullable<ConnectConfig['algorithms']>['serverHostKey']> };

    const connection = new Promise<Client>((resolve, reject) => {
      const client = new Client();
      let ready = false;
      const forget = () => {
        if (this.#connection === connection) this.#connection = undefined;
      };
      client.on('ready', () => {
        ready = true;
        resolve(client);
      });
      client.on('error', (error: Error & { level?: string }) => {
        forget();
        if (ready) return;
        if (this.#hostKeyProblem !== undefined && /verification failed/i.test(error.message)) {
          const problem = this.#hostKeyProblem;
          this.#hostKeyProblem = undefined;
          reject(new UnauthorizedError(`SSH: ${problem}`));
        } else if (error.level === 'client-authentication') {
          reject(new UnauthorizedError(`SSH authentication as ${username} to ${host}:${port} failed`));
        } else {
          reject(new UnreachableError(`SSH to ${host}:${port}: ${error.message}`));
        }
      });
      client.on('keyboard-interactive', (_name, _instructions, _language, prompts, finish) => {
        finish(prompts.map(() => (password ? password.reveal() : '')));
      });
      client.on('close', forget);
      client.on('end', forget);
      try {
        client.connect(config);
      } catch (error) {
        // ssh2 throws synchronously for a key it cannot parse; its message names the format, not the key.
        reject(new UnauthorizedError(`SSH private key cannot be used: ${error instanceof Error ? error.message : String(error)}`));
      }
    });
    this.#connection = connection;
    // A failed attempt is not cached: the next command tries again.
    connection.catch(() => {
      if (this.#connection === connection) this.#connection = undefined;
    });
    return connection;
  }

  #exec(client: Client, command: string, what: string, options: RunOptions): Promise<RunResult> {
    return new Promise<RunResult>((resolve, reject) => {
      client.exec(command, (error, stream) => {
        if (error) {
          // The connection broke between connect and exec: drop it so the next call reconnects.
          this.close();
          reject(new UnreachableError(`SSH exec of ${what} failed: ${error.message}`));
          return;
        }
        const stdout: Buffer[] = [];
        const stderr: Buffer[] = [];
        let code: number | null = null;
        let settled = false;
        const finish = (result: () => void) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          options.signal?.removeEventListener('abort', onAbort);
          result();
        };
        const abandon = (message: string) =>
          finish(() => {
            stream.close();
            reject(new UnreachableError(message));
          });
        const onAbort = () => abandon(`${what} aborted; it may still complete on the host`);
        const timer = setTimeout(() => abandon(`${what} did not finish within ${options.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms`), options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
        options.signal?.addEventListener('abort', onAbort, { once: true });
        stream.on('data', (chunk: Buffer) => stdout.push(chunk));
        stream.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
        stream.on('exit', (exitCode: number | null) => {
          code = exitCode;
        });
        stream.on('close', () =>
          finish(() => {
            if (code === null) {
              reject(new UnreachableError(`SSH connection lost while running ${what}`));
              return;
            }
            resolve({ code, stdout: Buffer.concat(stdout).toString('utf8'), stderr: Buffer.concat(stderr).toString('utf8') });
          }),
        );
        stream.on('error', (streamError: Error) => abandon(`${what}: ${streamError.message}`));
        if (options.stdin !== undefined) stream.end(options.stdin);
        else stream.end();
      });
    });
  }

  #openChannel(client: Client, command: string, what: string): Promise<ClientChannel> {
    return new Promise<ClientChannel>((resolve, reject) => {
      client.exec(command, (error, channel) => {
        if (error) {
          this.close();
          reject(new UnreachableError(`SSH exec of ${what} failed: ${error.message}`));
        } else {
          resolve(channel);
        }
      });
    });
  }

  async #execStream(client: Client, command: string, what: string, options: StreamOptions): Promise<StreamResult> {
    const channel = await this.#openChannel(client, command, what);
    let stderr = '';
    let code: number | null = null;
    /** Why this side stopped the command: a local error (a full disk), an abort, a stall. */
    let failure: Error | undefined;
    const stop = (error: unknown) => {
      failure ??= error instanceof Error ? error : new Error(String(error));
      // Closing the channel closes the command's pipes: virsh stops on EPIPE (download) or end of file (upload).
      channel.close();
      // The channel then merely ends: without this, its pipeline would still wait for a sink stuck
      // on a write. Without an error: the pipeline's premature close is expected, `failure` says why.
      options.stdout?.destroy();
    };
    const idleMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    const stalled = () => stop(new UnreachableError(`${what} moved no data for ${idleMs} ms`));
    let idle = setTimeout(stalled, idleMs);
    const moved = () => {
      clearTimeout(idle);
      idle = setTimeout(stalled, idleMs);
    };
    const onAbort = () => stop(new UnreachableError(`${what} aborted`));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    channel.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_KEPT);
    });
    channel.on('exit', (exitCode: number | null) => {
      code = exitCode;
    });
    const closed = new Promise<void>((resolve) => channel.on('close', () => resolve()));
    let written: Promise<void> = Promise.resolve();
    if (options.stdout) {
      channel.on('data', moved);
      written = pipeline(channel, options.stdout).catch(stop);
    } else {
      channel.resume();
    }
    const source = options.stdin;
    if (source) {
      source.on('data', moved);
      source.once('error', stop);
      // Not awaited: ssh2 never calls back a write pending when the command exits (its channel
      // drops writes once closed), so the command's exit, not the input, ends the transfer.
      source.pipe(channel);
    } else {
      channel.end();
    }
    try {
      await closed;
      await written;
    } finally {
      clearTimeout(idle);
      options.signal?.removeEventListener('abort', onAbort);
      if (source) {
        source.unpipe(channel);
        source.destroy();
      }
    }
    if (failure) throw failure;
    if (code === null) throw new UnreachableError(`SSH connection lost while running ${what}`);
    return { code, stderr };
  }
}
