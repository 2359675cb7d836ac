// The entry (src/cli/vrtg.ts) and how it runs kubectl (src/cli/vrtg/kubectl.ts): command
// selection, --help for the tool and each command, usage errors as one line with exit 2, the
// user's cluster flags on every kubectl call, an argument array (never a shell), kubectl's
// failures as one line, and the process as `vrtg` and as the kubectl plugin.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import t from 'tap';
import { COMMANDS } from '../../../src/cli/vrtg.js';
import { BIN, ROOT, golden, onlyOnPath, vrtg } from './stand-in.js';

t.test('--help lists every command with its summary, exit 0', async (t) => {
  const run = await vrtg(t, ['--help']);
  t.equal(run.code, 0);
  golden(t, 'help.txt', run.out);
  for (const command of COMMANDS) t.match(run.out, `  ${command.name} `);
  t.same(run.calls, []);
});

t.test('no command at all prints the help on stderr, exit 2', async (t) => {
  const run = await vrtg(t, []);
  t.equal(run.code, 2);
  t.equal(run.out, '');
  t.match(run.err, /^Everyday VirtRigaud VirtualMachine operations/);
});

t.test('each command has --help with its usage, flags and the global flags', async (t) => {
  for (const command of COMMANDS) {
    const run = await vrtg(t, [...command.name.split(' '), '--help']);
    t.equal(run.code, 0, command.name);
    t.match(run.out, `Usage: vrtg ${command.name} ${command.usage}\n`);
    t.match(run.out, /\nGlobal flags:\n.*--namespace=NS/);
    for (const flag of command.flags) t.match(run.out, `--${flag.name}`, `${command.name} --${flag.name}`);
  }
});

t.test('snapshot create --help shows the seed\'s flags', async (t) => {
  const run = await vrtg(t, ['snapshot', 'create', '--help']);
  golden(t, 'help-snapshot-create.txt', run.out);
});

t.test('help COMMAND is the same as COMMAND --help', async (t) => {
  const a = await vrtg(t, ['help', 'snapshot', 'revert']);
  const b = await vrtg(t, ['snapshot', 'revert', '--help']);
  t.equal(a.code, 0);
  t.equal(a.out, b.out);
});

t.test('as the kubectl plugin, help names the command kubectl vrtg', async (t) => {
  const run = await vrtg(t, ['restart', '--help'], {}, 'kubectl vrtg');
  t.match(run.out, /^Usage: kubectl vrtg restart VM /);
  t.match(run.out, /\n  kubectl vrtg restart web\n/);
});

t.test('an unknown command is one line, exit 2', async (t) => {
  const run = await vrtg(t, ['start', 'web']);
  t.equal(run.code, 2);
  t.equal(run.err, 'vrtg: unknown command "start" (see vrtg --help)\n');
  const sub = await vrtg(t, ['snapshot', 'take', 'x']);
  t.equal(sub.err, 'vrtg: unknown command "snapshot take" (see vrtg snapshot --help)\n');
});

t.test('an unknown flag is one line naming the command, exit 2, and nothing is run', async (t) => {
  const run = await vrtg(t, ['snapshot', 'create', 'x', '--vm=web', '--memory']);
  t.equal(run.code, 2);
  t.equal(run.err, 'vrtg: unknown flag --memory for "vrtg snapshot create" (see vrtg snapshot create --help)\n');
  t.same(run.calls, []);
});

t.test('a flag of another command is unknown here too', async (t) => {
  const run = await vrtg(t, ['list', '--replicas=3']);
  t.equal(run.code, 2);
  t.equal(run.err, 'vrtg: unknown flag --replicas for "vrtg list" (see vrtg list --help)\n');
});

t.test('an extra argument is a usage error', async (t) => {
  const run = await vrtg(t, ['restart', 'web', 'db']);
  t.equal(run.code, 2);
  t.equal(run.err, 'vrtg: vrtg restart: unexpected argument "db" (see vrtg restart --help)\n');
});

t.test('--kubeconfig, --context and -n go before every kubectl call, also when given before the command', async (t) => {
  const run = await vrtg(t, ['-n', 'prod', '--context=lab', 'power', 'off', 'api', '--kubeconfig', '/tmp/k.yaml']);
  t.equal(run.code, 0, run.err);
  t.same(
    run.calls.map((c) => c.argv.slice(0, 4)),
    [
      ['--kubeconfig=/tmp/k.yaml', '--context=lab', '--namespace=prod', 'get'],
      ['--kubeconfig=/tmp/k.yaml', '--context=lab', '--namespace=prod', 'patch'],
    ],
  );
});

t.test('names reach kubectl as one argument each, shell characters and all', async (t) => {
  const run = await vrtg(t, ['describe', 'web; rm -rf ~ $(id)']);
  t.equal(run.code, 1);
  t.same(run.calls[0]?.argv, ['get', 'virtualmachines.infra.virtrigaud.io', 'web; rm -rf ~ $(id)', '-o', 'json']);
});

t.test('kubectl\'s stderr is shown as one line after "vrtg: kubectl:", exit 1', async (t) => {
  const run = await vrtg(t, ['list'], {
    VRTG_FAKE_STDERR: 'Error from server (Forbidden): virtualmachines.infra.virtrigaud.io is forbidden:\n  User "dev" cannot list resource "virtualmachines"\n\n',
  });
  t.equal(run.code, 1);
  t.equal(
    run.err,
    'vrtg: kubectl: Error from server (Forbidden): virtualmachines.infra.virtrigaud.io is forbidden: User "dev" cannot list resource "virtualmachines"\n',
  );
  t.equal(run.out, '');
});

t.test('what kubectl says on stderr when it succeeds (warnings) is passed on to stderr', async (t) => {
  const run = await vrtg(t, ['power', 'on', 'web'], { VRTG_FAKE_WARNING: 'Warning: infra.virtrigaud.io/v1beta1 VirtualMachine is deprecated' });
  t.equal(run.code, 0);
  t.equal(run.err, 'Warning: infra.virtrigaud.io/v1beta1 VirtualMachine is deprecated\n'.repeat(2));
  t.equal(run.out, 'virtualmachine/web: powerState "On" (was "On")\n');
});

t.test('client-go\'s log lines before kubectl\'s own sentence are left out of that line', async (t) => {
  const klog =
    'E1207 22:21:44.528074   31912 memcache.go:265] "Unhandled Error" err="couldn\'t get current server API group list: connection refused"\n';
  const run = await vrtg(t, ['list'], {
    VRTG_FAKE_STDERR: `${klog.repeat(3)}The connection to the server localhost:8080 was refused - did you specify the right host or port?`,
  });
  t.equal(run.code, 1);
  t.equal(run.err, 'vrtg: kubectl: The connection to the server localhost:8080 was refused - did you specify the right host or port?\n');
});

t.test('a kubectl that is not on the PATH is a usage error that says how to fix it, exit 2', async (t) => {
  const run = await vrtg(t, ['list'], { PATH: onlyOnPath(t, []) });
  t.equal(run.code, 2);
  t.equal(run.err, 'vrtg: kubectl not found on PATH: install kubectl (https://kubernetes.io/docs/tasks/tools/) or set VRTG_KUBECTL to the one to use\n');
});

t.test('VRTG_KUBECTL names the kubectl to run', async (t) => {
  const path = onlyOnPath(t, ['kubectl']);
  const run = await vrtg(t, ['list'], { PATH: onlyOnPath(t, []), VRTG_KUBECTL: `${path}/kubectl` });
  t.equal(run.code, 0, run.err);
  t.equal(run.calls.length, 1);
});

function runProcess(script: string, args: string[], env: Record<string, string>): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString('utf8')));
    child.on('close', (code) => resolve({ code, out, err }));
  });
}

t.test('run as kubectl-vrtg (how kubectl runs plugins), the process says kubectl vrtg and exits with main\'s code', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vrtg-plugin-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const plugin = join(dir, 'kubectl-vrtg.ts');
  symlinkSync(join(ROOT, 'src/cli/vrtg.ts'), plugin);
  const run = await runProcess(plugin, ['snapshot'], { PATH: `${BIN}${delimiter}${process.env['PATH'] ?? ''}`, HOME: dir, VRTG_FAKE_LOG: join(dir, 'log') });
  t.equal(run.code, 2, run.err);
  t.equal(run.out, '');
  t.match(run.err, /\nUsage: kubectl vrtg snapshot SUBCOMMAND /);
});
