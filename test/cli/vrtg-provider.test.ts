// `vrtg-provider new <name>`: a skeleton driver in a temporary copy of the project that type-checks
// with the whole project, claims no capability and answers every Driver method Unsupported.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import ts from 'typescript';
import { EXIT } from '../../src/cli/common.js';
import { main } from '../../src/cli/vrtg-provider.js';

const run = promisify(execFile);
const PROJECT = fileURLToPath(new URL('../../', import.meta.url));
const PROBE = fileURLToPath(new URL('../fixtures/cli/vrtg-provider/probe-skeleton.ts', import.meta.url));
const SKELETON_FILES = ['README.md', 'config.ts', 'driver.ts', 'index.ts'];

const checkout = await mkdtemp(join(tmpdir(), 'vrtg-provider-'));
t.teardown(() => rm(checkout, { recursive: true, force: true }));
await cp(join(PROJECT, 'src'), join(checkout, 'src'), { recursive: true });
for (const file of ['package.json', 'tsconfig.json', 'tsconfig.build.json']) await cp(join(PROJECT, file), join(checkout, file));
await symlink(join(PROJECT, 'node_modules'), join(checkout, 'node_modules'), 'dir');
const hypervisors = join(checkout, 'src', 'hypervisors');

async function tool(argv: string[], cwd = PROJECT): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, {}, { out: (text) => (out += text), err: (text) => (err += text) }, cwd);
  return { code, out, err };
}

/** The methods of the Driver interface as the checkout's contract declares them today. */
async function driverMethods(): Promise<string[]> {
  const path = join(checkout, 'src', 'contracts', 'driver.ts');
  const source = ts.createSourceFile(path, await readFile(path, 'utf8'), ts.ScriptTarget.ES2022);
  const driver = source.statements.find((node): node is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(node) && node.name.text === 'Driver');
  return (driver?.members ?? []).flatMap((member) => (ts.isMethodSignature(member) ? [member.name.getText(source)] : []));
}

t.test('new acme writes the four files of the skeleton and says what to do next', async (t) => {
  const { code, out, err } = await tool(['new', 'acme', '--root', checkout]);
  t.equal(code, EXIT.ok, err);
  t.same((await readdir(join(hypervisors, 'acme'))).sort(), SKELETON_FILES);
  for (const file of SKELETON_FILES) t.match(out, `wrote ${join('src', 'hypervisors', 'acme', file)}`);
  t.match(out, /PROVIDER_TYPES and SERVED_PROVIDER_TYPES/);
  t.match(out, /RUNTIME_DRIVERS in src\/main\.ts/);
  t.match(out, /acmeDriverFromEnv/);
  t.match(out, /conformance/);
  t.match(await readFile(join(hypervisors, 'acme', 'README.md'), 'utf8'), /## Filling it in/);
});

t.test('the project type-checks with the skeleton in it', async (t) => {
  const tsc = join(PROJECT, 'node_modules', 'typescript', 'bin', 'tsc');
  const result = await run(process.execPath, [tsc, '-p', 'tsconfig.json', '--noEmit'], { cwd: checkout }).then(
    () => ({ code: 0, output: '' }),
    (error: { code?: number; stdout?: string }) => ({ code: error.code ?? -1, output: error.stdout ?? '' }),
  );
  t.equal(result.code, 0, `tsc: ${result.output.split('\n').slice(0, 10).join('\n')}`);
});

t.test('the skeleton claims no capability and answers every Driver method with UnsupportedError naming it', async (t) => {
  const methods = await driverMethods();
  t.ok(methods.length >= 20, `the Driver interface was read (${methods.join(', ')})`);
  const { stdout } = await run(process.execPath, ['--import', 'tsx', PROBE, checkout, 'acme', JSON.stringify(methods)], { cwd: checkout });
  const probe = JSON.parse(stdout) as {
    type: string;
    contractCapabilities: string[];
    capabilities: Record<string, unknown>;
    calls: { method: string; outcome: string; unsupported?: boolean; code?: string; message?: string }[];
    withoutEndpoint?: { name: string; message: string };
    endpointWithPassword?: { name: string; message: string };
    cases: { id: string; capability: string; result: string; message: string }[];
  };
  t.equal(probe.type, 'acme');
  t.same(Object.keys(probe.capabilities).sort(), [...probe.contractCapabilities].sort(), 'one flag for each capability of the contract');
  t.same(Object.entries(probe.capabilities).filter(([, value]) => value !== false), [], 'every flag false');
  for (const call of probe.calls) {
    t.equal(call.outcome, 'rejected', `${call.method} rejects`);
    t.equal(call.unsupported, true, `${call.method} rejects with UnsupportedError`);
    t.equal(call.code, 'Unsupported', call.method);
    t.match(call.message, new RegExp(`\\bacme\\b.*\\b${call.method}\\b`), `${call.method}: the message names the driver and the method`);
  }
  t.equal(probe.calls.length, methods.length);
  t.match(probe.withoutEndpoint, { name: 'AcmeConfigError', message: 'ACME_ENDPOINT is required' });
  t.match(probe.endpointWithPassword, { name: 'AcmeConfigError', message: /ACME_ENDPOINT must not hold credentials/ });
  t.notMatch(probe.endpointWithPassword?.message ?? '', /hunter2/);

  // The conformance suite, run against the skeleton, fails honestly: nothing verified, the core
  // cases stopped by the skeleton's own Unsupported answers, every capability case unsupported.
  t.ok(probe.cases.length >= 20, `the suite ran (${probe.cases.length} cases)`);
  t.same(probe.cases.filter((entry) => entry.result === 'verified').map((entry) => entry.id), [], 'no case passes on a skeleton');
  for (const entry of probe.cases.filter((candidate) => candidate.capability === 'core' && candidate.result !== 'skipped')) {
    t.match(entry, { result: /^(failed|driver-unsupported)$/, message: /skeleton|Unsupported|not written yet/ }, `${entry.id} fails on the skeleton`);
  }
  for (const entry of probe.cases.filter((candidate) => candidate.capability !== 'core')) {
    t.match(entry.result, /^(unsupported|skipped|failed|driver-unsupported)$/, `${entry.id}: ${entry.result}`);
  }
});

t.test('a name that is not a lowercase DNS label of at most 16 characters, or is reserved, is refused with exit 2', async (t) => {
  const before = await readdir(hypervisors);
  const refused: [string, RegExp][] = [
    ['Acme', /not a driver name/],
    ['9lives', /starting with a letter/],
    ['acme_2', /not a driver name/],
    ['acme-', /not a driver name/],
    ['a.b', /not a driver name/],
    ['', /not a driver name/],
    ['a'.repeat(17), /longer than 16 characters/],
    ['proxmox', /reserved/],
    ['common', /reserved/],
    ['registry', /reserved/],
  ];
  for (const [name, message] of refused) {
    const { code, err } = await tool(['new', name, '--root', checkout, '--force']);
    t.equal(code, EXIT.usage, `"${name}"`);
    t.match(err, message, `"${name}"`);
  }
  t.same(await readdir(hypervisors), before, 'nothing written');
  t.ok(existsSync(join(hypervisors, 'proxmox', 'client.ts')));
});

t.test('an existing driver folder is kept without --force; --force replaces only the skeleton files', async (t) => {
  const driverFile = join(hypervisors, 'acme', 'driver.ts');
  const ownFile = join(hypervisors, 'acme', 'client.ts');
  await writeFile(driverFile, '// filled in\n');
  await writeFile(ownFile, '// the wire protocol\n');

  const refused = await tool(['new', 'acme', '--root', checkout]);
  t.equal(refused.code, EXIT.usage);
  t.match(refused.err, /src\/hypervisors\/acme exists; --force/);
  t.equal(await readFile(driverFile, 'utf8'), '// filled in\n');

  const forced = await tool(['new', 'acme', '--root', checkout, '--force']);
  t.equal(forced.code, EXIT.ok, forced.err);
  t.match(forced.out, `replaced ${join('src', 'hypervisors', 'acme', 'driver.ts')}`);
  t.match(await readFile(driverFile, 'utf8'), /class AcmeDriver implements Driver/);
  t.equal(await readFile(ownFile, 'utf8'), '// the wire protocol\n');
});

t.test('without --root the nearest checkout above the current directory is used; a --root that is none is refused', async (t) => {
  const found = await tool(['new', 'my-hv'], join(checkout, 'src', 'hypervisors'));
  t.equal(found.code, EXIT.ok, found.err);
  t.match(await readFile(join(hypervisors, 'my-hv', 'index.ts'), 'utf8'), /export function myHvDriverFromEnv/);
  t.match(found.out, /'my-hv': \{ client: 'MyHv'/);

  const none = await tool(['new', 'acme', '--root', join(checkout, 'src')]);
  t.equal(none.code, EXIT.usage);
  t.match(none.err, /is not a VirtRigaud-TS checkout/);
});

t.test('bad usage exits 2 with one line; --help prints the usage and exits 0', async (t) => {
  for (const argv of [[], ['create', 'acme'], ['new'], ['new', 'a', 'b'], ['new', 'acme', '--bogus']]) {
    const { code, out, err } = await tool(argv);
    t.equal(code, EXIT.usage, argv.join(' '));
    t.equal(out, '');
    t.match(err, /^vrtg-provider: .*\n$/);
  }
  for (const argv of [['--help'], ['-h'], ['help'], ['new', 'acme', '--help']]) {
    const { code, out } = await tool(argv);
    t.equal(code, EXIT.ok, argv.join(' '));
    t.match(out, /^usage: vrtg-provider new <name> \[--root DIR\] \[--force\]/);
  }
});

t.test('runs as a program', async (t) => {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', join(PROJECT, 'src', 'cli', 'vrtg-provider.ts'), '--help']);
  t.match(stdout, /^usage: vrtg-provider new/);
  const failed = await run(process.execPath, ['--import', 'tsx', join(PROJECT, 'src', 'cli', 'vrtg-provider.ts'), 'new', 'Bad']).catch(
    (error: { code?: number; stderr?: string }) => error,
  );
  t.match(failed, { code: EXIT.usage, stderr: /not a driver name/ });
});
