// Commands on the libvirt host: `virsh -c <uri> …`, the few host tools the driver needs
// (qemu-img, genisoimage, mktemp, rm, sha256sum) and the fixed scripts of tasks.ts and observe.ts. All go through
// SshTransport.run (or .stream, for a disk's bytes) as argument vectors; a non-zero exit becomes a typed error (errors.ts).

import type { CallOptions } from '../../contracts/driver.js';
import { virshError } from './errors.js';
import type { RunOptions, RunResult, SshTransport, StreamOptions } from './ssh.js';

export interface HostRunOptions extends CallOptions {
  stdin?: string | Buffer;
  timeoutMs?: number;
  /** What the command does, for error messages (a script's argv[0] is just `sh`). */
  what?: string;
}

function runOptions(options: HostRunOptions): RunOptions {
  const result: RunOptions = {};
  if (options.stdin !== undefined) result.stdin = options.stdin;
  if (options.signal !== undefined) result.signal = options.signal;
  if (options.timeoutMs !== undefined) result.timeoutMs = options.timeoutMs;
  return result;
}

export class LibvirtHost {
  constructor(
    readonly transport: SshTransport,
    readonly uri: string,
  ) {}

  /** `virsh -q -c <uri> args…`; the raw result, whatever the exit code. */
  virshResult(args: readonly string[], options: HostRunOptions = {}): Promise<RunResult> {
    return this.transport.run(['virsh', '-q', '-c', this.uri, ...args], runOptions(options));
  }

  /** `virsh -q -c <uri> args…`; stdout, or the typed error of the failure. */
  async virsh(args: readonly string[], options: HostRunOptions = {}): Promise<string> {
    const result = await this.virshResult(args, options);
    if (result.code !== 0) throw virshError(result.stderr, result.code, `virsh ${args[0] ?? ''}`);
    return result.stdout;
  }

  /** Any host command; stdout, or the typed error of the failure. */
  async exec(argv: readonly string[], options: HostRunOptions = {}): Promise<string> {
    const result = await this.transport.run(argv, runOptions(options));
    if (result.code !== 0) throw virshError(result.stderr, result.code, options.what ?? argv[0] ?? 'command');
    return result.stdout;
  }

  /** A command whose stdin or stdout is a stream (a disk's bytes); the typed error of a failure. */
  async stream(argv: readonly string[], options: StreamOptions & { what?: string }): Promise<void> {
    const result = await this.transport.stream(argv, options);
    if (result.code !== 0) throw virshError(result.stderr, result.code, options.what ?? argv[0] ?? 'command');
  }

  execResult(argv: readonly string[], options: HostRunOptions = {}): Promise<RunResult> {
    return this.transport.run(argv, runOptions(options));
  }
}
