// The transport: one ssh2 connection per host, reused by every command, with a bounded number of
// concurrent exec channels (sshd's MaxSessions defaults to 10). Commands are argument vectors,
// quoted by shell.ts; payloads (domain XML, cloud-init data) travel on the channel's stdin.
// The host key must match a pinned known_hosts entry unless trust-on-first-use was asked for,
// in which case the first key seen is pinned for the life of the process and its fingerprint logged.

import { Client, type ConnectConfig } from 'ssh2';
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

const DEFAULT_TIMEOUT_MS = 120_000;
const CONNECT_TIMEOUT_MS = 15_000;

type Log = (line: string) => void;

export class SshTransport {
  readonly #target: SshTarget;
  readonly #log: Log;
  #connection: Promise<Client> | undefined;
  #tofuKey: string | undefined;
  #active = 0;
  readonly #waiting: (() => void)[] = [];
  /** Why the last connection attempt was refused, for the error message. */
  #hostKeyProblem: string | undefined;

  constructor(target: SshTarget, log: Log = (line) => process.stderr.write(`${line}\n`)) {
    this.#target = target;
    this.#log = log;
  }

  /** Runs one command; resolves with its exit code and output, rejects only when the transport fails. */
  async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const command = commandLine(argv);
    options.signal?.throwIfAborted();
    await this.#acquire();
    try {
      const client = await this.#connect();
      return await this.#exec(client, command, argv[0] ?? 'command', options);
    } finally {
      this.#release();
    }
  }

  close(): void {
    const connection = this.#connection;
    this.#connection = undefined;
    void connection?.then((client) => client.end()).catch(() => undefined);
  }

  async #acquire(): Promise<void> {
    if (this.#active < this.#target.maxChannels) {
      this.#active++;
      return;
    }
    await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  #release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#active--;
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
}
