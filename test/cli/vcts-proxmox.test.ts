// vcts against the PVE fake (test/fakes/proxmox), configured by PVE_* variables exactly as a
// provider runtime is: a whole run in process, and the real command interrupted by SIGINT.
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { main } from '../../src/cli/vcts.js';
import type { RunReport } from '../../src/cli/vcts/report.js';
import { FakePve } from '../fakes/proxmox/index.js';
import { PVE_TOKEN } from '../helpers/proxmox-lifecycle.js';

async function fakePve(t: Test) {
  const fake = await FakePve.start({ taskDurationMs: 40, bootMs: 80 });
  t.teardown(() => fake.close());
  const migrationDir = await mkdtemp(join(tmpdir(), 'vcts-pve-'));
  t.teardown(() => rm(migrationDir, { recursive: true, force: true }));
  const env = { PVE_ENDPOINT: fake.url, ...PVE_TOKEN, MIGRATION_DIR: migrationDir };
  /** VMs carrying VirtRigaud's identity tag: only the run's can. */
  const tagged = () => fake.vms().filter((vm) => vm.tags.includes('virtrigaud'));
  return { fake, env, tagged };
}

t.test('a run against the PVE fake from PVE_* variables: every case verified or unsupported, foreign VMs untouched, nothing of the run left', async (t) => {
  const { fake, env, tagged } = await fakePve(t);
  const target = fake.addForeignVm({ name: 'keep-me', running: true });
  // PVE allows two VMs one name: a foreign VM named exactly like one of the run's.
  const namesake = fake.addForeignVm({ name: 'vcts-pve-find', running: true });
  const before = JSON.stringify([fake.vm(target)?.config, fake.vm(namesake)?.config]);
  fake.addVolume('local', 'iso/installer.iso', 64 * 1024 * 1024);
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(
    ['run', '--provider', 'proxmox', '--template', 'ubuntu-22-template', '--prefix', 'vcts-pve-', '--destructive', '--foreign-vm', String(target), '--iso', 'local:iso/installer.iso'],
    env,
    { out: (text) => void out.push(text), err: (text) => void err.push(text) },
    { pollMs: { first: 20, max: 200 } },
  );
  const stdout = out.join('');
  t.equal(code, 0, err.join(''));
  t.match(stdout, /^foreign-vm\s+core\s+verified\s/m);
  t.match(stdout, /^explicit-id\s+explicitId\s+verified\s/m);
  t.match(stdout, /^deletion-protection\s+deletionProtection\s+verified\s/m);
  t.match(stdout, /^disk-export\s+diskExport\s+unsupported\s+[\d.]+ s\s+no diskExport capability/m);
  t.match(stdout, /^iso-install\s+isoInstall\s+verified\s/m);
  t.match(stdout, /^image-import\s+imageImport\s+skipped\s+[\d.]+ s\s+the target names no image URL/m);
  t.match(stdout, /^39 cases: 37 verified, 1 unsupported, 1 skipped, 0 failed — proxmox /m);
  t.same(tagged(), [], 'no VM of the run is left');
  t.match(fake.vm(target), { status: 'running' });
  t.match(fake.vm(namesake), { status: 'running', name: 'vcts-pve-find' });
  t.equal(JSON.stringify([fake.vm(target)?.config, fake.vm(namesake)?.config]), before, 'the foreign VMs are unchanged');
  t.notOk(`${stdout}${err.join('')}`.includes(PVE_TOKEN.PVE_TOKEN_SECRET), 'the token secret appears nowhere');
});

t.test('the command, interrupted by SIGINT mid-case, removes what it made and exits 130', async (t) => {
  const { fake, env, tagged } = await fakePve(t);
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/cli/vcts.ts', 'run', '--provider', 'proxmox', '--template', 'ubuntu-22-template', '--prefix', 'vcts-sig-', '--cases', 'hardware,power,clone', '-o', 'json'],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => void child.kill('SIGKILL'));
  // The power case waits for guest addresses (PVE's agent answers none for a while): signal then.
  const running = () => tagged().some((vm) => vm.name === 'vcts-sig-power' && vm.status === 'running');
  // Bounded generously: a loaded CI machine starts tsx and the first case slowly.
  for (let step = 0; step < 1200 && !running(); step++) await new Promise((resolve) => setTimeout(resolve, 50));
  t.ok(running(), `the power case's VM runs (${stderr})`);
  child.kill('SIGINT');
  t.equal(await exited, 130, stderr);
  t.same(tagged(), [], 'nothing of the run is left');
  const report = JSON.parse(stdout) as RunReport;
  t.equal(report.run.interrupted, 'SIGINT');
  t.match(report.cases.find((entry) => entry.id === 'power'), { result: 'failed', reason: /^interrupted by SIGINT/ });
  t.match(stderr, /SIGINT: stopping the run/);
});
