// All cluster access goes through the user's own kubectl: their kubeconfig, contexts, auth
// plugins and proxies work unchanged, and this package carries no Kubernetes client. kubectl is
// spawned with an argument array, never through a shell, so names and JSON bodies are never
// re-parsed.
import { spawn } from 'node:child_process';
import { CliError, EXIT } from '../common.js';

export type Env = Readonly<Record<string, string | undefined>>;

/** kubectl said no: its stderr as one line, and whether the object was not there. */
export class KubectlError extends CliError {
  constructor(
    readonly stderr: string,
    readonly code: number,
  ) {
    super(`kubectl: ${oneLine(withoutKlog(stderr)) || `exited with code ${code}`}`, EXIT.failed);
    this.name = 'KubectlError';
  }

  get notFound(): boolean {
    return /\(NotFound\)/.test(this.stderr);
  }
}

// client-go logs through klog (`E1207 22:21:44.528074   31912 memcache.go:265] ...`) before the
// sentence kubectl itself prints; the log lines repeat that sentence's cause, several times over.
const KLOG_LINE = /^[IWEF]\d{4} \d{2}:\d{2}:\d{2}\.\d+\s+\d+ [^\s\]]+:\d+\]/;

/** kubectl's stderr without client-go's log lines, unless they are all there is. */
export function withoutKlog(stderr: string): string {
  const lines = stderr.split('\n');
  const said = lines.filter((line) => line.trim() !== '' && !KLOG_LINE.test(line.trim()));
  return said.length === 0 ? stderr : said.join('\n');
}

/** Several lines (kubectl's warnings, wrapped messages) as one. */
export function oneLine(text: string): string {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .join(' ');
}

/** The user's kubectl flags passed on to every call. */
export interface ClusterFlags {
  namespace?: string | undefined;
  context?: string | undefined;
  kubeconfig?: string | undefined;
}

export function clusterArgs(flags: ClusterFlags): string[] {
  const args: string[] = [];
  if (flags.kubeconfig !== undefined) args.push(`--kubeconfig=${flags.kubeconfig}`);
  if (flags.context !== undefined) args.push(`--context=${flags.context}`);
  if (flags.namespace !== undefined) args.push(`--namespace=${flags.namespace}`);
  return args;
}

export class Kubectl {
  readonly program: string;

  /**
   * kubectl is looked up on the PATH of `env` (VRTG_KUBECTL names another, e.g. `microk8s.kubectl`);
   * `cluster` goes before every call's own arguments; what kubectl says on stderr when it succeeds
   * (deprecation and admission warnings) goes to `warn`.
   */
  constructor(
    readonly env: Env,
    readonly cluster: readonly string[],
    readonly warn: (text: string) => void = () => undefined,
  ) {
    this.program = env['VRTG_KUBECTL'] ?? 'kubectl';
  }

  /** Runs kubectl; its stdout on success, a KubectlError (one line, exit 1) otherwise. */
  run(args: readonly string[], stdin?: string): Promise<string> {
    const argv = [...this.cluster, ...args];
    return new Promise((resolve, reject) => {
      const child = spawn(this.program, argv, { env: { ...this.env }, stdio: ['pipe', 'pipe', 'pipe'], shell: false });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
      child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
      child.on('error', (error: NodeJS.ErrnoException) => {
        reject(
          error.code === 'ENOENT'
            ? new CliError(
                `${this.program} not found on PATH: install kubectl (https://kubernetes.io/docs/tasks/tools/) or set VRTG_KUBECTL to the one to use`,
                EXIT.usage,
              )
            : new CliError(`cannot run ${this.program}: ${error.message}`, EXIT.usage),
        );
      });
      child.on('close', (code) => {
        const stderr = Buffer.concat(err).toString('utf8');
        if (code !== 0) {
          reject(new KubectlError(stderr, code ?? 1));
          return;
        }
        if (stderr !== '') this.warn(stderr);
        resolve(Buffer.concat(out).toString('utf8'));
      });
      // kubectl may exit before reading stdin (a bad flag); the close handler reports that.
      child.stdin.on('error', () => undefined);
      child.stdin.end(stdin ?? '');
    });
  }

  /** `kubectl <args> -o json`, parsed. */
  async json(args: readonly string[], stdin?: string): Promise<unknown> {
    const stdout = await this.run([...args, '-o', 'json'], stdin);
    try {
      return JSON.parse(stdout) as unknown;
    } catch {
      throw new CliError(`kubectl ${args[0] ?? ''} printed something that is not JSON: ${oneLine(stdout).slice(0, 200)}`, EXIT.failed);
    }
  }
}
