// The commands that only read (src/cli/vrtg/commands/list.ts, describe.ts, console.ts): one
// `kubectl get -o json` each, and what people and scripts are shown (golden files: the table,
// JSON and YAML formats are stable).
import t from 'tap';
import { parse } from 'yaml';
import { golden, onlyOnPath, vrtg } from './stand-in.js';

const VMS = 'virtualmachines.infra.virtrigaud.io';
const URL_OF_WEB = 'https://pve.example.com:8006/?console=kvm&novnc=1&vmid=101&node=pve-1';

t.test('list gets the VirtualMachines by their full resource name and prints a table sorted by name', async (t) => {
  const run = await vrtg(t, ['list']);
  t.equal(run.code, 0, run.err);
  t.same(
    run.calls.map((c) => c.argv),
    [['get', VMS, '-o', 'json']],
  );
  golden(t, 'list.txt', run.out);
});

t.test('list -A adds a NAMESPACE column and passes --all-namespaces on', async (t) => {
  const run = await vrtg(t, ['list', '-A']);
  t.equal(run.code, 0, run.err);
  t.same(run.calls[0]?.argv, ['get', VMS, '--all-namespaces', '-o', 'json']);
  golden(t, 'list-all.txt', run.out);
});

t.test('list -o json and -o yaml print the same records, every key present', async (t) => {
  const json = await vrtg(t, ['list', '-A', '-o', 'json']);
  const yaml = await vrtg(t, ['list', '-A', '-o', 'yaml']);
  golden(t, 'list-all.json', json.out);
  golden(t, 'list-all.yaml', yaml.out);
  t.same(parse(yaml.out), JSON.parse(json.out));
});

t.test('list -l passes the selector on to kubectl', async (t) => {
  const run = await vrtg(t, ['list', '-l', 'app=web']);
  t.equal(run.code, 0, run.err);
  t.same(run.calls[0]?.argv, ['get', VMS, '--selector=app=web', '-o', 'json']);
  t.match(run.out, /^NAME +PHASE.*\nweb +Running/);
  t.equal(run.out.split('\n').length, 3);
});

t.test('list says so on stderr when there is nothing to list', async (t) => {
  const run = await vrtg(t, ['list', '-l', 'app=none']);
  t.equal(run.code, 0);
  t.equal(run.out, '');
  t.equal(run.err, 'No VirtualMachines found.\n');
});

t.test('list refuses an output format it does not have', async (t) => {
  const run = await vrtg(t, ['list', '-o', 'wide']);
  t.equal(run.code, 2);
  t.equal(run.err, 'vrtg: -o must be table, json or yaml, not "wide"\n');
  t.same(run.calls, []);
});

t.test('describe reads the one VM and prints it for people', async (t) => {
  const run = await vrtg(t, ['describe', 'web']);
  t.equal(run.code, 0, run.err);
  t.same(run.calls[0]?.argv, ['get', 'virtualmachines.infra.virtrigaud.io', 'web', '-o', 'json']);
  golden(t, 'describe-web.txt', run.out);
});

t.test('describe shows the task in flight, the failure, a handled restart and a pending revert', async (t) => {
  const run = await vrtg(t, ['describe', 'db']);
  t.equal(run.code, 0, run.err);
  golden(t, 'describe-db.txt', run.out);
});

t.test('describe -o json and -o yaml print the same record', async (t) => {
  const json = await vrtg(t, ['describe', 'db', '-o', 'json']);
  const yaml = await vrtg(t, ['describe', 'db', '-o', 'yaml']);
  golden(t, 'describe-db.json', json.out);
  golden(t, 'describe-db.yaml', yaml.out);
  t.same(parse(yaml.out), JSON.parse(json.out));
});

t.test('describe of a clone whose powerState is YAML 1.1\'s true shows it as desired On', async (t) => {
  const run = await vrtg(t, ['describe', 'api', '-n', 'prod', '-o', 'json']);
  t.equal(run.code, 0, run.err);
  const details = JSON.parse(run.out) as { power: unknown; source: unknown };
  t.same(details.power, { desired: 'On', observed: null });
  t.equal(details.source, 'clone of golden (linked)');
});

t.test('describe without a VM name is a usage error', async (t) => {
  const run = await vrtg(t, ['describe']);
  t.equal(run.code, 2);
  t.equal(run.err, 'vrtg: vrtg describe: missing VM (see vrtg describe --help)\n');
});

t.test('console prints the VM\'s console URL', async (t) => {
  const run = await vrtg(t, ['console', 'web']);
  t.equal(run.code, 0, run.err);
  t.equal(run.out, `${URL_OF_WEB}\n`);
  t.same(run.calls.length, 1);
});

t.test('console --open prints the URL and hands it to xdg-open', { skip: process.platform === 'darwin' ? 'uses open on macOS' : false }, async (t) => {
  const run = await vrtg(t, ['console', 'web', '--open']);
  t.equal(run.code, 0, run.err);
  t.equal(run.out, `${URL_OF_WEB}\n`);
  t.same(run.calls[1], { argv: ['xdg-open', URL_OF_WEB], stdin: '' });
});

t.test('console --open without an opener on the PATH prints the URL and says so', async (t) => {
  const run = await vrtg(t, ['console', 'web', '--open'], { PATH: onlyOnPath(t, ['kubectl']) });
  t.equal(run.code, 0, run.err);
  t.equal(run.out, `${URL_OF_WEB}\n`);
  t.match(run.err, /^vrtg: no (xdg-)?open on the PATH: open the URL yourself\n$/);
});

t.test('console of a VM without a console URL fails with exit 1', async (t) => {
  const run = await vrtg(t, ['console', 'db']);
  t.equal(run.code, 1);
  t.equal(run.err, 'vrtg: virtualmachine/db has no console URL (status.consoleURL) yet\n');
  t.equal(run.out, '');
});
