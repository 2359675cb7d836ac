// The real libvirt peer for tests: test/libvirt/setup.sh starts libvirtd + sshd on 127.0.0.1 and
// writes the connection details to $VIRTRIGAUD_LIBVIRT_STATE/env. Tests ask `libvirtPeer(t)`:
// it answers the peer, or skips the test with the reason (or fails it when
// VIRTRIGAUD_REQUIRE_PEERS=1, as in CI).
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Test } from 'tap';
import type { CreateSpec, Driver, Identity, Started, TaskStatus } from '../../src/contracts/driver.js';
import { GiB, MiB } from '../../src/contracts/quantity.js';
import { LibvirtDriver, libvirtConfigFromEnv } from '../../src/hypervisors/libvirt/index.js';
import { shellQuote } from '../../src/hypervisors/libvirt/shell.js';
import { SshTransport, type RunOptions, type RunResult } from '../../src/hypervisors/libvirt/ssh.js';
import { LOCKS_SCRIPT, START_SCRIPT, STATUS_SCRIPT, STEP_LIB } from '../../src/hypervisors/libvirt/task-scripts.js';

export const LIBVIRT_STATE = process.env['VIRTRIGAUD_LIBVIRT_STATE'] ?? '/tmp/virtrigaud-libvirt';

export interface LibvirtPeer {
  /** The provider environment a runtime would get (LIBVIRT_* variables, with the key text inlined). */
  env: Record<string, string>;
  pool: string;
  network: string;
  baseVolume: string;
  /** Whether the base image boots a guest with an agent (tiny Linux guest), so addresses appear. */
  guest: boolean;
  /** An unprivileged user that may only log in with a password (for the transport's password path). */
  passwordLogin?: { username: string; password: string };
  /** Runs virsh on the host over the same SSH path, for test setup and assertions. */
  virsh(args: string[], stdin?: string): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** Runs any command on the host (an argument vector, quoted like the driver's). */
  exec(argv: string[], stdin?: string): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** Where the drivers record their tasks on the host (LIBVIRT_TASK_DIR). */
  taskDirectory: string;
  /** The drivers' MIGRATION_DIR (local to this process, like a runtime's PVC): a temp directory removed in teardown. */
  migrationDir: string;
  /** A driver for the peer; `overrides` replace LIBVIRT_* settings (a shorter shutdown timeout, say). */
  driver(log?: (line: string) => void, overrides?: Record<string, string>): LibvirtDriver;
  close(): void;
}

function readEnvFile(path: string): Record<string, string> {
  const values: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (match?.[1] !== undefined && match[2] !== undefined) values[match[1]] = match[2];
  }
  return values;
}

async function reachable(env: Record<string, string>): Promise<string | undefined> {
  const transport = new SshTransport(libvirtConfigFromEnv(env).ssh, () => undefined);
  try {
    const result = await transport.run(['virsh', '-c', 'qemu:///system', 'version'], { timeoutMs: 15_000 });
    return result.code === 0 ? undefined : `virsh on the peer failed: ${result.stderr.trim()}`;
  } catch (error) {
    return `the libvirt peer does not answer: ${error instanceof Error ? error.message : String(error)}`;
  } finally {
    transport.close();
  }
}

/** The peer, or undefined after skipping (or failing, with VIRTRIGAUD_REQUIRE_PEERS=1) the test. */
export async function libvirtPeer(t: Test): Promise<LibvirtPeer | undefined> {
  const envFile = `${LIBVIRT_STATE}/env`;
  let why: string | undefined;
  let env: Record<string, string> = {};
  let file: Record<string, string> = {};
  if (!existsSync(envFile)) {
    why = `no libvirt peer: ${envFile} is missing (run test/libvirt/setup.sh)`;
  } else {
    file = readEnvFile(envFile);
    env = {
      LIBVIRT_URI: file['LIBVIRT_URI'] ?? '',
      LIBVIRT_SSH_PRIVATE_KEY: readFileSync(file['LIBVIRT_SSH_PRIVATE_KEY_FILE'] ?? '', 'utf8'),
      LIBVIRT_KNOWN_HOSTS: readFileSync(file['LIBVIRT_KNOWN_HOSTS_FILE'] ?? '', 'utf8'),
      LIBVIRT_STORAGE_POOL: file['LIBVIRT_STORAGE_POOL'] ?? '',
      LIBVIRT_DEFAULT_NETWORK: file['LIBVIRT_NETWORK'] ?? '',
      LIBVIRT_DOMAIN_TYPE: file['LIBVIRT_DOMAIN_TYPE'] ?? 'qemu',
      LIBVIRT_SHUTDOWN_TIMEOUT: '30',
      // Task records next to the rest of the peer's state, not in the test machine's /var/lib.
      LIBVIRT_TASK_DIR: `${LIBVIRT_STATE}/tasks`,
    };
    why = await reachable(env);
  }
  if (why !== undefined) {
    if (process.env['VIRTRIGAUD_REQUIRE_PEERS'] === '1') t.fail(`VIRTRIGAUD_REQUIRE_PEERS=1 but ${why}`);
    else t.plan(0, why);
    return undefined;
  }
  const migrationDir = mkdtempSync(join(tmpdir(), 'virtrigaud-migration-'));
  t.teardown(() => rmSync(migrationDir, { recursive: true, force: true }));
  env['MIGRATION_DIR'] = migrationDir;
  const transport = new SshTransport(libvirtConfigFromEnv(env).ssh, () => undefined);
  const passwordUser = file['LIBVIRT_PASSWORD_USER'];
  const passwordFile = file['LIBVIRT_PASSWORD_FILE'];
  const passwordLogin =
    passwordUser !== undefined && passwordFile !== undefined && existsSync(passwordFile)
      ? { username: passwordUser, password: readFileSync(passwordFile, 'utf8').trim() }
      : undefined;
  return {
    ...(passwordLogin ? { passwordLogin } : {}),
    env,
    pool: file['LIBVIRT_STORAGE_POOL'] ?? '',
    network: file['LIBVIRT_NETWORK'] ?? '',
    baseVolume: file['LIBVIRT_BASE_VOLUME'] ?? '',
    guest: file['LIBVIRT_GUEST'] === '1',
    virsh: (args, stdin) => transport.run(['virsh', '-q', '-c', 'qemu:///system', ...args], stdin === undefined ? {} : { stdin }),
    exec: (argv, stdin) => transport.run(argv, stdin === undefined ? { timeoutMs: 300_000 } : { stdin, timeoutMs: 300_000 }),
    taskDirectory: env['LIBVIRT_TASK_DIR'] ?? '',
    migrationDir,
    driver: (log, overrides = {}) => new LibvirtDriver(libvirtConfigFromEnv({ ...env, ...overrides }), log ? { log } : {}),
    close: () => transport.close(),
  };
}

/** Polls `done` with real sleeps until it holds or `timeoutMs` passes. */
export async function waitFor(done: () => Promise<boolean>, what: string, timeoutMs = 90_000, stepMs = 500): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await done()) return;
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${timeoutMs} ms`);
    await sleep(stepMs);
  }
}

/** Defines a domain without our identity tag (someone else's VM), returns its UUID. */
export async function defineForeignDomain(peer: LibvirtPeer, name: string, running: boolean): Promise<string> {
  const xml = `<domain type='qemu'><name>${name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
<os><type arch='x86_64' machine='pc'>hvm</type></os><devices><graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'/></devices></domain>`;
  const defined = await peer.virsh(['define', '/dev/stdin'], xml);
  if (defined.code !== 0) throw new Error(`define ${name}: ${defined.stderr}`);
  if (running) {
    const started = await peer.virsh(['start', name]);
    if (started.code !== 0) throw new Error(`start ${name}: ${started.stderr}`);
  }
  const uuid = await peer.virsh(['domuuid', name]);
  return uuid.stdout.trim();
}

export async function removeDomainByName(peer: LibvirtPeer, name: string): Promise<void> {
  await peer.virsh(['destroy', name]);
  await peer.virsh(['undefine', name, '--snapshots-metadata']);
}

/** What a host command was, for counting: `virsh <verb>`, `task-start <kind>`, `task-status`, … */
function describeCommand(argv: readonly string[], stdin: unknown): string {
  if (argv[0] === 'virsh') return `virsh ${argv[argv.indexOf('-c') + 2] ?? ''}`;
  if (argv[0] === 'sh' && argv[1] === '-c') {
    if (argv[2] === START_SCRIPT) return `task-start ${String(argv.slice(7).join(' '))}${typeof stdin === 'string' && stdin.includes("'vol-create-from'") ? ' copy' : ''}`;
    if (argv[2] === STATUS_SCRIPT) return 'task-status';
    if (argv[2] === LOCKS_SCRIPT) return 'task-locks';
    return 'script';
  }
  return argv[0] ?? '';
}

/** Runs instead of a host command; `run` runs the real one. */
export type AroundCommand = (argv: readonly string[], options: RunOptions, run: () => Promise<RunResult>) => Promise<RunResult>;

export interface HostInstrument {
  /** Every host command any driver (and the peer helper) ran since the instrument was installed. */
  commands: string[];
  /** Makes every task started from now on wait before its first step until the returned release is called. */
  hold(): Promise<() => Promise<void>>;
  /** Wraps every host command from now on (a fault injected around the real command); undefined stops it. */
  around(wrapper: AroundCommand | undefined): void;
}

/**
 * Instruments the SSH transport of every driver in this test process: counts host commands, and
 * can hold new tasks before their first step (a fault that persists until released), so a test
 * sees a task running for as long as it needs without depending on how fast the host is.
 */
export function instrumentHost(t: Test, peer: LibvirtPeer): HostInstrument {
  const commands: string[] = [];
  let holdFile: string | undefined;
  let wrapper: AroundCommand | undefined;
  const original = SshTransport.prototype.run;
  SshTransport.prototype.run = function (this: SshTransport, argv, options = {}) {
    commands.push(describeCommand(argv, options.stdin));
    if (holdFile !== undefined && argv[2] === START_SCRIPT && typeof options.stdin === 'string') {
      const wait = `while [ -e ${shellQuote(holdFile)} ]; do sleep 0.2; done`;
      options = { ...options, stdin: options.stdin.replace(`${STEP_LIB}\n`, `${STEP_LIB}\n${wait}\n`) };
    }
    const run = () => original.call(this, argv, options);
    return wrapper ? wrapper(argv, options, run) : run();
  };
  t.teardown(() => {
    SshTransport.prototype.run = original;
    wrapper = undefined;
  });
  let holds = 0;
  return {
    commands,
    around(next) {
      wrapper = next;
    },
    async hold() {
      const file = `${LIBVIRT_STATE}/hold-${process.pid}-${holds++}`;
      await peer.exec(['touch', file]);
      holdFile = file;
      let released = false;
      const release = async () => {
        if (released) return;
        released = true;
        if (holdFile === file) holdFile = undefined;
        await peer.exec(['rm', '-f', file]);
      };
      t.teardown(release);
      return release;
    },
  };
}

/** The task IDs on the host holding or having held `key` (a domain UUID), with their kinds. */
export async function tasksOf(peer: LibvirtPeer, key: string): Promise<string[]> {
  const script = 'cd "$1" 2>/dev/null || exit 0; for d in libvirt-*; do [ -f "$d/keys" ] && grep -q "^$2=" "$d/keys" && echo "$d"; done; true';
  const out = await peer.exec(['sh', '-c', script, 'sh', peer.taskDirectory, key]);
  return out.stdout.split('\n').filter((line) => line !== '');
}

/** A small VM on the peer: a linked overlay of the base volume, one NIC, the rest from `overrides`. */
export function peerSpec(peer: LibvirtPeer, name: string, owner: Identity, overrides: Partial<CreateSpec> = {}): CreateSpec {
  return {
    name,
    owner,
    cpus: 1,
    memoryBytes: 128 * MiB,
    features: { tpm: false, secureBoot: false, nestedVirtualization: false, cpuHotAdd: false, memoryHotAdd: false },
    image: { kind: 'template', ref: peer.baseVolume, fullClone: false },
    disks: [{ name: 'root', sizeBytes: GiB, root: true }],
    storage: { provisioning: 'thin' },
    nics: [{ name: 'lan' }],
    placement: {},
    ...overrides,
  };
}

/** The task's end state, polled until it has ended (2 minutes at most). */
export async function taskSettled(driver: Driver, task: string | undefined): Promise<TaskStatus> {
  if (task === undefined) throw new Error('the call started no task');
  let status: TaskStatus = { state: 'running' };
  await waitFor(async () => {
    status = await driver.taskStatus(task);
    return status.state !== 'running' && status.state !== 'queued';
  }, `task ${task}`, 120_000);
  return status;
}

/** Waits for the task a call started, if any; throws when it failed. */
export async function taskDone(driver: Driver, started: Started): Promise<void> {
  if (started.task === undefined) return;
  const status = await taskSettled(driver, started.task);
  if (status.state !== 'succeeded') throw new Error(`task failed: ${status.error ?? ''}`);
}
