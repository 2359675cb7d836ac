// vcts in-process against the simulator (fast tasks) and a provider runtime: reports, exit codes,
// cleanup after a failed case and on SIGINT, and VMs it did not create left alone.
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { EventEmitter } from 'node:events';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { main, type VctsDeps } from '../../src/cli/vcts.js';
import type { RunReport } from '../../src/cli/vcts/report.js';
import type { SignalSource, StopSignal } from '../../src/cli/vcts/runner.js';
import { SimulatedHypervisor, SimulatorDriver, type SimulatorDurations } from '../../src/hypervisors/simulator/index.js';
import { TOKEN, startRuntime } from '../hypervisors/remote/helpers.js';

const MS = 5;
const FAST: SimulatorDurations = { create: MS, clone: MS, powerOn: MS, powerOff: MS, shutdown: MS, reboot: MS, reconfigure: MS, resizeDisk: MS, delete: MS, snapshot: MS, boot: MS };

function captured() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { out: (text: string) => void out.push(text), err: (text: string) => void err.push(text) },
    stdout: () => out.join(''),
    stderr: () => err.join(''),
  };
}

async function tempDir(t: Test, stem: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), stem));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function simulatorRun(t: Test, durations: Partial<SimulatorDurations> = {}) {
  const dir = await tempDir(t, 'vcts-sim-');
  const simulator = new SimulatedHypervisor({ migrationDir: dir, durations: { ...FAST, ...durations } });
  const output = captured();
  const run = (args: string[], deps: VctsDeps = {}) =>
    main(['run', '--provider', 'simulator', '--migration-dir', dir, ...args], {}, output.io, { simulator, pollMs: { first: 5, max: 50 }, ...deps });
  /** The run's VMs still on the hypervisor. */
  const ours = () => simulator.listVMs().filter((vm) => vm.owner?.namespace === 'vcts');
  return { dir, simulator, output, run, ours };
}

const byId = (report: RunReport) => new Map(report.cases.map((entry) => [entry.id, entry]));

t.test('a run against the simulator verifies what it supports, reports the rest unsupported, and leaves nothing behind', async (t) => {
  const { dir, output, run, ours } = await simulatorRun(t);
  const code = await run(['--prefix', 'vcts-json-', '-o', 'json']);
  t.equal(code, 0, output.stderr());
  const report = JSON.parse(output.stdout()) as RunReport;
  t.equal(report.cases.length, 39, 'every case is reported');
  t.match(report.summary, { cases: 39, failed: 0, skipped: 2 });
  const cases = byId(report);
  for (const id of ['probe', 'identity', 'power', 'disk-export', 'migration-volume', 'snapshot-revert', 'memory-snapshot', 'clone']) t.equal(cases.get(id)?.result, 'verified', id);
  t.match(cases.get('cpu-topology'), { result: 'unsupported', capability: 'cpuTopology', reason: /no cpuTopology capability/ });
  t.match(cases.get('foreign-vm'), { result: 'skipped', destructive: true, reason: /destructive/ });
  t.match(cases.get('image-import'), { result: 'skipped', reason: /no image URL/ });
  t.match(cases.get('iso-install'), { result: 'unsupported', reason: /no isoInstall capability/ });
  t.match(report.run, { prefix: 'vcts-json-', namespace: 'vcts', uid: /^[0-9a-f-]{24}0{12}$/ });
  t.match(report.target, { driver: 'simulator', version: /./ });
  t.match(output.stderr(), /^\[1\/39\] probe … verified \(\d+\.\d s\)$/m);
  t.match(output.stderr(), /^\[13\/39\] cpu-topology … unsupported \(\d+\.\d s\): no cpuTopology capability/m);
  t.same(ours(), [], 'no VM of the run is left');
  t.same((await readdir(dir)).filter((name) => name.startsWith('vcts-json')), [], 'nor a file it wrote');
});

t.test('the table names each case with its capability, result and reason', async (t) => {
  const { output, run } = await simulatorRun(t);
  t.equal(await run(['--cases', 'probe,cpu-*']), 0);
  const lines = output.stdout().split('\n');
  t.match(lines[0], /^CASE\s+CAPABILITY\s+RESULT\s+TIME\s+REASON$/);
  t.match(lines[1], /^probe\s+core\s+verified\s+\d+\.\d s$/);
  t.match(lines[2], /^cpu-topology\s+cpuTopology\s+unsupported\s+\d+\.\d s\s+no cpuTopology capability/);
  t.match(output.stdout(), /^2 cases: 1 verified, 1 unsupported, 0 skipped, 0 failed — simulator /m);
});

t.test('a failing case exits 1 with a JUnit failure, and the VM it made is removed all the same', async (t) => {
  const { dir, simulator, output, run, ours } = await simulatorRun(t);
  simulator.injectFault('reconfigure', { kind: 'taskFailure', times: Infinity, message: 'the disk array said no' });
  const file = join(await tempDir(t, 'vcts-junit-'), 'report.xml');
  const code = await run(['--cases', 'probe,reconfigure,cpu-topology,foreign-vm', '-o', 'junit', '--output', file]);
  t.equal(code, 1);
  t.same(ours(), [], 'the VM the failed case left is gone');
  t.match(output.stderr(), /\[2\/4\] reconfigure … failed \(\d+\.\d s\): reconfigure: task failed: .*the disk array said no/);
  t.match(output.stderr(), /cleanup: removed 1 VM of the run/);
  t.match(output.stdout(), /^reconfigure\s+core\s+failed\s/m, 'the table still goes to stdout');

  const xml = await readFile(file, 'utf8');
  t.equal(XMLValidator.validate(xml), true, 'well-formed XML');
  const parsed = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', isArray: (name) => name === 'testcase' }).parse(xml) as {
    testsuites: { tests: string; failures: string; skipped: string; testsuite: { testcase: { name: string; classname: string; failure?: { message: string }; skipped?: { message: string } }[] } };
  };
  t.match(parsed.testsuites, { tests: '4', failures: '1', skipped: '2' });
  const testcases = parsed.testsuites.testsuite.testcase;
  t.equal(testcases.length, 4, 'one testcase per case');
  const named = (id: string) => testcases.find((entry) => entry.name.startsWith(`${id}: `));
  t.notOk(named('probe')?.failure ?? named('probe')?.skipped, 'a verified case is a bare testcase');
  t.match(named('reconfigure'), { classname: 'vcts.simulator.core', failure: { message: /task failed/ } });
  t.match(named('cpu-topology'), { skipped: { message: /^unsupported: / } });
  t.match(named('foreign-vm'), { skipped: { message: /^skipped: destructive/ } });
  t.same((await readdir(dir)).filter((name) => name.startsWith('vcts-')), []);
});

t.test('VMs the run did not create are never touched: the destructive case with --foreign-vm, and VMs of the same name prefix', async (t) => {
  const { simulator, output, run } = await simulatorRun(t);
  const target = simulator.addForeignVM({ name: 'vcts-keep-target', powerState: 'On', cpus: 3 });
  const lookalike = simulator.addForeignVM({ name: 'vcts-keep-find-old', powerState: 'On' });
  const code = await run(['--prefix', 'vcts-keep-', '--destructive', '--foreign-vm', target, '--cases', 'identity,foreign-vm,other-owner,clone', '-o', 'json']);
  t.equal(code, 0, output.stderr());
  t.equal(byId(JSON.parse(output.stdout()) as RunReport).get('foreign-vm')?.result, 'verified');
  t.match(simulator.describe(target), { powerState: 'On', cpus: 3, name: 'vcts-keep-target' });
  t.match(simulator.describe(lookalike), { powerState: 'On', name: 'vcts-keep-find-old' });
  t.same(
    simulator.listVMs().map((vm) => vm.name).filter((name) => name.startsWith('vcts-keep-')).sort(),
    ['vcts-keep-find-old', 'vcts-keep-target'],
    'only the foreign VMs remain',
  );
});

class TestSignals extends EventEmitter implements SignalSource {
  override on(signal: StopSignal, handler: () => void): this {
    return super.on(signal, handler);
  }
  override off(signal: StopSignal, handler: () => void): this {
    return super.off(signal, handler);
  }
}

t.test('SIGINT ends the case, removes what the run made, reports the interruption and exits 130', async (t) => {
  // Guests never report addresses: the power case waits until the signal comes.
  const { output, run, ours } = await simulatorRun(t, { boot: 3_600_000 });
  const signals = new TestSignals();
  const running = run(['--cases', 'hardware,power,clone', '-o', 'json'], { signals });
  for (let step = 0; step < 400 && !ours().some((vm) => vm.powerState === 'On'); step++) await new Promise((resolve) => setTimeout(resolve, 10));
  t.ok(ours().some((vm) => vm.powerState === 'On'), 'the power case has a running VM');
  signals.emit('SIGINT');
  t.equal(await running, 130);
  t.same(ours(), [], 'nothing of the run is left');
  t.equal(signals.listenerCount('SIGINT'), 0, 'the handlers are gone');
  const report = JSON.parse(output.stdout()) as RunReport;
  t.equal(report.run.interrupted, 'SIGINT');
  const cases = byId(report);
  t.equal(cases.get('hardware')?.result, 'verified');
  // The VM may be on before the case has seen it: either wait of the power case is interrupted.
  t.match(cases.get('power'), { result: 'failed', reason: /^interrupted by SIGINT \(waiting for: (power on|guest addresses)\)$/ });
  t.match(cases.get('clone'), { result: 'skipped', reason: 'not run: interrupted by SIGINT' });
  t.match(output.stderr(), /SIGINT: stopping the run/);
});

t.test('SIGTERM stops the run the same way and exits 143', async (t) => {
  const { output, run, ours } = await simulatorRun(t, { boot: 3_600_000 });
  const signals = new TestSignals();
  const running = run(['--cases', 'power'], { signals });
  for (let step = 0; step < 400 && !ours().some((vm) => vm.powerState === 'On'); step++) await new Promise((resolve) => setTimeout(resolve, 10));
  signals.emit('SIGTERM');
  t.equal(await running, 143);
  t.same(ours(), []);
  t.match(output.stdout(), /^power\s+core\s+failed\s+[\d.]+ s\s+interrupted by SIGTERM/m);
  t.match(output.stdout(), /^interrupted by SIGTERM$/m);
});

t.test('a second SIGINT stops a cleanup that hangs, and names the run whose VMs may be left', async (t) => {
  // Guests never report addresses, and a delete never ends.
  const { output, run, ours } = await simulatorRun(t, { boot: 3_600_000, delete: 3_600_000 });
  const signals = new TestSignals();
  const running = run(['--cases', 'power', '-o', 'json'], { signals });
  for (let step = 0; step < 400 && !ours().some((vm) => vm.powerState === 'On'); step++) await new Promise((resolve) => setTimeout(resolve, 10));
  signals.emit('SIGINT');
  for (let step = 0; step < 400 && ours().every((vm) => vm.lock === undefined); step++) await new Promise((resolve) => setTimeout(resolve, 10));
  signals.emit('SIGINT');
  t.equal(await running, 130);
  const report = JSON.parse(output.stdout()) as RunReport;
  t.match(report.cleanup.left, [/cleanup stopped by a second SIGINT/]);
  t.match(output.stderr(), new RegExp(`SIGINT again: cleanup stopped; VMs of run ${report.run.uid} may be left \\(owner namespace vcts, names vcts-[0-9a-f]{6}-\\*\\)`));
});

t.test('a running provider runtime is checked through its URL and token, and the token is never printed', async (t) => {
  const simulator = new SimulatedHypervisor({ durations: FAST });
  const runtime = await startRuntime({ driver: () => new SimulatorDriver(simulator) });
  t.teardown(() => runtime.close());
  const tokenFile = join(await tempDir(t, 'vcts-token-'), 'token');
  await writeFile(tokenFile, `${TOKEN}\n`);
  const output = captured();
  const code = await main(['run', '--runtime-url', runtime.url, '--token-file', tokenFile, '--cases', 'probe,identity,hardware,snapshot-name', '-o', 'json'], {}, output.io, { pollMs: { first: 5, max: 50 } });
  t.equal(code, 0, output.stderr());
  const report = JSON.parse(output.stdout()) as RunReport;
  t.match(report, { target: { driver: 'simulator', where: `provider runtime ${runtime.url}` }, summary: { verified: 4 } });
  t.same(simulator.listVMs().filter((vm) => vm.owner?.namespace === 'vcts'), []);
  t.notOk(`${output.stdout()}${output.stderr()}`.includes(TOKEN), 'the token appears nowhere');

  await writeFile(tokenFile, 'not-the-token-0123456789abcdef\n');
  const refused = captured();
  t.equal(await main(['run', '--runtime-url', runtime.url, '--token-file', tokenFile], {}, refused.io), 1);
  t.match(refused.stderr(), /^vcts: cannot use the provider runtime: .*\n$/);
  t.notOk(refused.stderr().includes('not-the-token'), 'nor the wrong one');
});

t.test('--image-url gives the image-import case its image: verified on the simulator, two VMs, one download', async (t) => {
  const image = Buffer.from('QFI\xfb a vcts disk image '.repeat(64));
  let downloads = 0;
  const server = createServer((_request, response) => {
    downloads += 1;
    response.end(image);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/disk.qcow2`;
  const checksum = `sha256:${createHash('sha256').update(image).digest('hex')}`;
  const { output, run, ours } = await simulatorRun(t);
  t.equal(await run(['--prefix', 'vcts-img-', '-o', 'json', '--cases', 'image-import', '--image-url', url, '--checksum', checksum]), 0, output.stderr());
  const report = JSON.parse(output.stdout()) as RunReport;
  t.match(byId(report).get('image-import'), { result: 'verified' });
  t.equal(downloads, 1, 'the second VM reused the first download');
  t.same(ours(), [], 'no VM of the run is left');
});

t.test('usage: help, the case list, and one-line errors with exit 2', async (t) => {
  const help = captured();
  t.equal(await main(['--help'], {}, help.io), 0);
  t.match(help.stdout(), /--destructive/);
  t.match(help.stdout(), /foreign-vm/);
  const list = captured();
  t.equal(await main(['list'], {}, list.io), 0);
  t.match(list.stdout(), /^foreign-vm\s+core\s+yes\s+a foreign VM is never changed/m);
  t.match(list.stdout(), /^snapshot-revert\s+snapshots\s+no\s/m);
  const bare = captured();
  t.equal(await main([], {}, bare.io), 2);
  t.match(bare.stderr(), /^usage: vcts run/);

  const refusals: [string[], RegExp][] = [
    [['frobnicate'], /unknown command "frobnicate"/],
    [['run'], /say what to check/],
    [['run', '--provider', 'xen'], /--provider must be proxmox, vsphere, libvirt, simulator, not "xen"/],
    [['run', '--provider', 'simulator', '-o', 'xml'], /-o must be table, json, yaml, junit, not "xml"/],
    [['run', '--provider', 'simulator', '--cases', 'no-such-case'], /leave no case/],
    [['run', '--provider', 'simulator', '--prefix', 'Prod-'], /--prefix must be/],
    [['run', '--provider', 'simulator', '--timeout', 'soon'], /--timeout must be a duration/],
    [['run', '--runtime-url', 'http://127.0.0.1:1'], /needs --token-file/],
    [['run', '--provider', 'simulator', '--bogus'], /Unknown option '--bogus'/],
    [['run', '--provider', 'simulator', '--image-url', 'ftp://x/disk.qcow2'], /--image-url must be an http\(s\) URL/],
    [['run', '--provider', 'simulator', '--image-url', 'http://x/d.qcow2', '--checksum', 'md5:abc'], /--checksum must be sha256/],
    [['run', '--provider', 'simulator', '--checksum', `sha256:${'0'.repeat(64)}`], /--checksum goes with --image-url or --iso/],
    [['run', '--provider', 'proxmox'], /^vcts: Failed to create PVE client error="endpoint is required"$/m],
  ];
  for (const [argv, message] of refusals) {
    const output = captured();
    t.equal(await main(argv, {}, output.io), 2, argv.join(' '));
    t.match(output.stderr(), message, argv.join(' '));
    t.equal(output.stderr().trimEnd().split('\n').length, 1, 'one line');
  }
});
