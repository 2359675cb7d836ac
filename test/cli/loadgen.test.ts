// virtrigaud-loadgen: the seed's operations through the hook path, against the simulator and the
// PVE fake; what it prints; that it deletes everything it made — also when operations fail for
// good and when it is interrupted; and that bad usage is one line and exit 2. Timings are
// printed, never asserted.
import { spawn } from 'node:child_process';
import t from 'tap';
import { OPERATIONS } from '../../src/cli/loadgen/operations.js';
import { main, runLoadgen, targetFor } from '../../src/cli/loadgen.js';
import { FakePve } from '../fakes/proxmox/index.js';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (text: string) => out.push(text), err: (text: string) => err.push(text) }, out: () => out.join(''), err: () => err.join('') };
}

const FAST = { count: 1, concurrency: 2, template: 'ubuntu-22-template', network: 'vmbr0', timeoutMs: 20_000, resyncScale: 0.1 };

t.test('against the PVE fake: every operation of the seed\'s table succeeds, and nothing the run made is left', async (t) => {
  const pve = await FakePve.start({ taskDurationMs: 100, bootMs: 100 });
  t.teardown(() => pve.close());
  const { io, err } = capture();
  const target = targetFor('proxmox', { PVE_ENDPOINT: pve.url, PVE_TOKEN_ID: 'virtrigaud@pve!vrtg', PVE_TOKEN_SECRET: 'secret-token' });
  const results = await runLoadgen(target, { ...FAST, count: 2, operations: [...OPERATIONS] }, io);
  t.same(results.map((result) => result.operation), [...OPERATIONS]);
  for (const result of results) {
    t.same(result.errors, [], `${result.operation}: no errors`);
    t.equal(result.latenciesMs.length, 2, `${result.operation}: two measured`);
    t.ok(result.hookCalls >= 2, `${result.operation}: through the hooks`);
  }
  t.equal(pve.vms().filter((vm) => (vm.tags ?? []).includes('virtrigaud')).length, 0, 'every VM deleted');
  t.ok(pve.requests.some((request) => request.method === 'POST' && /\/snapshot$/.test(request.path)), 'snapshots were taken on PVE');
  t.ok(pve.requests.some((request) => request.method === 'POST' && /\/clone$/.test(request.path) && request.params['full'] === '0'), 'linked clones were made');
  t.match(err(), /cleanup: everything the run made is deleted/);
});

t.test('a create that always fails: counted as errors, exit 1, and still nothing left behind', async (t) => {
  const pve = await FakePve.start({ taskDurationMs: 100, bootMs: 100 });
  t.teardown(() => pve.close());
  pve.injectFault({ kind: 'failTask', type: 'qmclone', message: 'storage full', times: 'always' });
  const { io } = capture();
  const target = targetFor('proxmox', { PVE_ENDPOINT: pve.url, PVE_TOKEN_ID: 'virtrigaud@pve!vrtg', PVE_TOKEN_SECRET: 'secret-token' });
  const results = await runLoadgen(target, { ...FAST, timeoutMs: 3000, operations: ['create'] }, io);
  t.equal(results[0]?.errors.length, 1);
  t.match(results[0]?.errors[0], /not done within 3 s/);
  const clones = pve.requests.filter((request) => request.method === 'POST' && /\/clone$/.test(request.path)).length;
  t.ok(clones >= 1 && clones <= 4, `the failing clone was retried with back-off, not in a loop (${clones} clone calls in 3 s)`);
  t.equal(pve.vms().filter((vm) => (vm.tags ?? []).includes('virtrigaud')).length, 0);
});

t.test('main on the simulator prints the table or JSON; exit codes and one-line usage errors', async (t) => {
  const table = capture();
  t.equal(await main(['--count', '1', '--operations', 'create,describe', '--resync-scale', '0.05'], {}, table.io), 0);
  t.match(table.out(), /^Operation\s+P50 Latency\s+P95 Latency\s+Throughput\s+Count\s+Errors\s+Hook calls\/op\nCreate VM\s+\S+\s+\S+\s+[\d.]+ ops\/min\s+1\s+0\s+[\d.]+\nDescribe\s/);
  const json = capture();
  t.equal(await main(['--count', '1', '--operations', 'describe', '--resync-scale', '0.05', '-o', 'json'], {}, json.io), 0);
  t.match(JSON.parse(json.out()), [{ operation: 'Describe', count: 1, errors: [], p50Ms: Number }]);

  for (const [args, message] of [
    [['--count', '0'], /--count must be a whole number from 1 to 100000/],
    [['--operations', 'create,teleport'], /--operations takes create, .*; not teleport/],
    [['--provider', 'hyperv'], /--provider must be simulator or proxmox/],
    [['--provider', 'proxmox'], /--provider proxmox needs PVE_ENDPOINT/],
    [['-o', 'yaml'], /-o must be table or json/],
    [['--bogus'], /Unknown option '--bogus'/],
  ] as const) {
    const run = capture();
    t.equal(await main([...args], {}, run.io), 2, args.join(' '));
    t.match(run.err(), message);
    t.equal(run.err().trim().split('\n').length, 1, 'one line');
  }
  const help = capture();
  t.equal(await main(['--help'], {}, help.io), 0);
  t.match(help.out(), /usage: virtrigaud-loadgen/);
});

t.test('Ctrl-C: no new operation starts, the run deletes what it made, and exits 130', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/loadgen.ts', '--count', '40', '--concurrency', '2', '--operations', 'create', '--resync-scale', '0.05'], {
    cwd: new URL('../../', import.meta.url),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
    if (/Create VM: \d+\/40/.test(stderr) && !child.killed) child.kill('SIGINT');
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  t.equal(code, 130);
  t.match(stderr, /stopping — finishing the operations in flight, then deleting what the run made/);
  t.match(stderr, /cleanup: everything the run made is deleted/);
});
