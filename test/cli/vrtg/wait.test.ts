// `vrtg wait` (src/cli/vrtg/commands/wait.ts): polling `kubectl get -o json` until a condition
// holds at the object's current generation, progress on stderr, exit 1 on timeout.
import t from 'tap';
import { assess, parseGoal, waitTarget } from '../../../src/cli/vrtg/commands/wait.js';
import { SNAPSHOT, VM } from '../../../src/cli/vrtg/objects.js';
import { clusterObject, vrtg } from './stand-in.js';

t.test('wait polls until Ready is True at the current generation, telling progress once per change', async (t) => {
  const run = await vrtg(t, ['wait', 'booting']);
  t.equal(run.code, 0, run.err);
  t.equal(run.calls.length, 4);
  t.ok(run.calls.every((c) => c.argv.join(' ') === 'get virtualmachines.infra.virtrigaud.io booting -o json'));
  t.equal(run.slept, 3 * 2000);
  t.equal(
    run.err,
    [
      'waiting for virtualmachine/booting: Ready=False (Provisioning: creating the VM on pve-1) [observed at generation 1, the spec is at 2]',
      'waiting for virtualmachine/booting: Ready=True (Running: the VM is running and matches its spec) [observed at generation 1, the spec is at 2]',
      '',
    ].join('\n'),
  );
  t.equal(run.out, 'virtualmachine/booting condition met\n');
});

t.test('wait for a condition that already holds returns at once', async (t) => {
  const run = await vrtg(t, ['wait', 'vmsnapshot/before-upgrade']);
  t.equal(run.code, 0, run.err);
  t.same(run.calls[0]?.argv, ['get', 'vmsnapshots.infra.virtrigaud.io', 'before-upgrade', '-o', 'json']);
  t.equal(run.err, '');
  t.equal(run.out, 'vmsnapshot/before-upgrade condition met\n');
});

t.test('wait gives up after --timeout with exit 1, naming where the object stands', async (t) => {
  const run = await vrtg(t, ['wait', 'vm/db', '--timeout=5s']);
  t.equal(run.code, 1);
  t.equal(run.slept, 5000);
  t.equal(run.calls.length, 4);
  t.match(
    run.err,
    /\nvrtg: timed out after 5s waiting for virtualmachine\/db: Ready=False \(HypervisorError: PowerOff failed 3 times in a row; next attempt at 2026-12-07T11:59:04Z\)\n$/,
  );
});

t.test('wait --for=delete is met once kubectl says NotFound', async (t) => {
  const run = await vrtg(t, ['wait', 'vmsnapshot/gone', '--for=delete']);
  t.equal(run.code, 0, run.err);
  t.equal(run.out, 'vmsnapshot/gone deleted\n');
});

t.test('wait for a condition of an object that is not there fails with kubectl\'s NotFound', async (t) => {
  const run = await vrtg(t, ['wait', 'gone']);
  t.equal(run.code, 1);
  t.equal(run.err, 'vrtg: kubectl: Error from server (NotFound): virtualmachines.infra.virtrigaud.io "gone" not found\n');
});

t.test('wait --for=phase=Stopped is met by the phase', async (t) => {
  const run = await vrtg(t, ['wait', 'db', '--for=phase=Stopped']);
  t.equal(run.code, 0, run.err);
  t.equal(run.out, 'virtualmachine/db phase Stopped\n');
});

t.test('wait refuses a --for or --timeout it cannot read, before calling kubectl', async (t) => {
  const badFor = await vrtg(t, ['wait', 'web', '--for=jsonpath={.status.phase}']);
  t.equal(badFor.code, 2);
  t.equal(badFor.err, 'vrtg: --for must be condition=TYPE[=True|False|Unknown], phase=PHASE or delete, not "jsonpath={.status.phase}"\n');
  const badTimeout = await vrtg(t, ['wait', 'web', '--timeout=ten']);
  t.equal(badTimeout.code, 2);
  t.equal(badTimeout.err, 'vrtg: --timeout must be a duration such as 90s or 10m, not "ten"\n');
  t.same([...badFor.calls, ...badTimeout.calls], []);
});

t.test('wait targets: a bare name is a VM; kinds go by their names and short names', async (t) => {
  t.same(waitTarget('web'), { kind: VM, name: 'web' });
  t.same(waitTarget('vrsnap/a'), { kind: SNAPSHOT, name: 'a' });
  t.same(waitTarget('vmsnapshots.infra.virtrigaud.io/a'), { kind: SNAPSHOT, name: 'a' });
  t.throws(() => waitTarget('pod/a'), { message: 'cannot wait for "pod": use vm, vmsnapshot, vmclone or vmset', exitCode: 2 });
});

t.test('wait goals: condition status defaults to True and is spelled as Kubernetes does', async (t) => {
  t.same(parseGoal('condition=Ready'), { kind: 'condition', type: 'Ready', status: 'True' });
  t.same(parseGoal('condition=Ready=false'), { kind: 'condition', type: 'Ready', status: 'False' });
  t.same(parseGoal('delete'), { kind: 'delete' });
});

t.test('a condition observed at an older generation does not count', async (t) => {
  const web = clusterObject('virtualmachines', 'web') as { metadata: { generation: number } };
  t.equal(assess(web, parseGoal('condition=Ready')).met, true);
  web.metadata.generation = 4;
  t.same(assess(web, parseGoal('condition=Ready')), {
    met: false,
    state: 'Ready=True (Running: the VM is running and matches its spec) [observed at generation 3, the spec is at 4]',
  });
});
