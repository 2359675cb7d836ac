// `vrtg snapshot create|list|revert|delete` (src/cli/vrtg/commands/snapshot.ts): the VMSnapshot
// it writes is the seeds' shape and one the CRD accepts; a revert is a merge patch of the VM.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { applyMergePatch } from '../../../src/cli/vrtg/objects.js';
import { NOW, ROOT, clusterObject, crd, golden, patchOf, vrtg } from './stand-in.js';

const VMS = 'virtualmachines.infra.virtrigaud.io';
const SNAPS = 'vmsnapshots.infra.virtrigaud.io';

t.test('snapshot create with the seed\'s kubectl flags writes the seed\'s VMSnapshot through kubectl create -f -', async (t) => {
  const run = await vrtg(t, ['snapshot', 'create', 'before-upgrade-2', '--vm=web', '--description=Pre-maintenance snapshot', '--include-memory=true']);
  t.equal(run.code, 0, run.err);
  t.same(
    run.calls.map((c) => c.argv),
    [
      ['get', VMS, 'web', '-o', 'json'],
      ['create', '-f', '-', '-o', 'json'],
    ],
  );
  const written = JSON.parse(run.calls[1]?.stdin ?? '') as unknown;
  const seed = parse(readFileSync(join(ROOT, 'test/fixtures/seeds/001-vmsnapshot-before-upgrade.yaml'), 'utf8')) as {
    metadata: { name: string };
    spec: { vmRef: { name: string } };
  };
  seed.metadata.name = 'before-upgrade-2';
  seed.spec.vmRef.name = 'web';
  t.same(written, seed);
  t.same(crd('VMSnapshot').validate(written), []);
  t.equal(run.out, 'vmsnapshot/before-upgrade-2 created (of virtualmachine/web)\n');
});

t.test('snapshot create writes only the flags given, false ones included', async (t) => {
  const run = await vrtg(t, ['snapshot', 'create', 'quick', '--vm', 'db', '--include-memory=false', '--quiesce']);
  t.equal(run.code, 0, run.err);
  const written = JSON.parse(run.calls[1]?.stdin ?? '') as unknown;
  t.same(written, {
    apiVersion: 'infra.virtrigaud.io/v1beta1',
    kind: 'VMSnapshot',
    metadata: { name: 'quick' },
    spec: { vmRef: { name: 'db' }, includeMemory: false, quiesce: true },
  });
  t.same(crd('VMSnapshot').validate(written), []);
});

t.test('snapshot create refuses a description the CRD would refuse, naming the field, before calling kubectl', async (t) => {
  const run = await vrtg(t, ['snapshot', 'create', 'long', '--vm=web', `--description=${'x'.repeat(1025)}`]);
  t.equal(run.code, 2);
  t.equal(run.err, 'vrtg: refusing to write vmsnapshot/long: spec.description: Expected string length less or equal to 1024\n');
  t.same(run.calls, []);
});

t.test('snapshot create refuses a name that is not a DNS subdomain', async (t) => {
  const run = await vrtg(t, ['snapshot', 'create', 'Before_Upgrade', '--vm=web']);
  t.equal(run.code, 2);
  t.match(run.err, /^vrtg: refusing to write vmsnapshot\/Before_Upgrade: metadata\.name: Expected string to match '.*' \(got "Before_Upgrade"\)\n$/);
  t.same(run.calls, []);
});

t.test('snapshot create without --vm is a usage error', async (t) => {
  const run = await vrtg(t, ['snapshot', 'create', 'x']);
  t.equal(run.code, 2);
  t.equal(run.err, 'vrtg: vrtg snapshot create: --vm is required (the VirtualMachine to snapshot)\n');
});

t.test('snapshot create of a VM that does not exist fails with kubectl\'s NotFound and creates nothing', async (t) => {
  const run = await vrtg(t, ['snapshot', 'create', 'x', '--vm=wbe']);
  t.equal(run.code, 1);
  t.equal(run.err, 'vrtg: kubectl: Error from server (NotFound): virtualmachines.infra.virtrigaud.io "wbe" not found\n');
  t.same(
    run.calls.map((c) => c.argv[0]),
    ['get'],
  );
});

t.test('snapshot create of a name that exists shows kubectl\'s AlreadyExists as one line', async (t) => {
  const run = await vrtg(t, ['snapshot', 'create', 'before-upgrade', '--vm=web']);
  t.equal(run.code, 1);
  t.equal(run.err, 'vrtg: kubectl: Error from server (AlreadyExists): error when creating "STDIN": vmsnapshots.infra.virtrigaud.io "before-upgrade" already exists\n');
});

t.test('snapshot create --dry-run prints the object as YAML and creates nothing', async (t) => {
  const run = await vrtg(t, ['snapshot', 'create', 'pre', '--vm=web', '--dry-run']);
  t.equal(run.code, 0, run.err);
  t.equal(run.out, 'apiVersion: infra.virtrigaud.io/v1beta1\nkind: VMSnapshot\nmetadata:\n  name: pre\nspec:\n  vmRef:\n    name: web\n');
  t.same(
    run.calls.map((c) => c.argv[0]),
    ['get'],
  );
});

t.test('snapshot list prints the namespace\'s snapshots as a table', async (t) => {
  const run = await vrtg(t, ['snapshot', 'list']);
  t.equal(run.code, 0, run.err);
  t.same(run.calls[0]?.argv, ['get', SNAPS, '-o', 'json']);
  golden(t, 'snapshot-list.txt', run.out);
});

t.test('snapshot list -A --vm filters by VM across namespaces, both spellings of description shown', async (t) => {
  const run = await vrtg(t, ['snapshot', 'list', '-A', '--vm=api']);
  t.equal(run.code, 0, run.err);
  t.same(run.calls[0]?.argv, ['get', SNAPS, '--all-namespaces', '-o', 'json']);
  golden(t, 'snapshot-list-all-api.txt', run.out);
});

t.test('snapshot list -o json and -o yaml print the same records', async (t) => {
  const json = await vrtg(t, ['snapshot', 'list', '-A', '-o', 'json']);
  const yaml = await vrtg(t, ['snapshot', 'list', '-A', '-o', 'yaml']);
  golden(t, 'snapshot-list-all.json', json.out);
  golden(t, 'snapshot-list-all.yaml', yaml.out);
  t.same(parse(yaml.out), JSON.parse(json.out));
});

t.test('snapshot list says so on stderr when there is nothing to list', async (t) => {
  const run = await vrtg(t, ['snapshot', 'list', '--vm=nothing']);
  t.equal(run.code, 0);
  t.equal(run.out, '');
  t.equal(run.err, 'No VMSnapshots found of virtualmachine/nothing.\n');
});

t.test('snapshot revert asks the snapshot\'s VM for a revert with a new request, replacing an upstream revertToRef', async (t) => {
  const run = await vrtg(t, ['snapshot', 'revert', 'nightly-1']);
  t.equal(run.code, 0, run.err);
  t.same(
    run.calls.map((c) => c.argv.slice(0, 3)),
    [
      ['get', SNAPS, 'nightly-1'],
      ['get', VMS, 'db'],
      ['patch', VMS, 'db'],
    ],
  );
  const token = NOW.toISOString();
  t.same(patchOf(run.calls[2]), {
    spec: { lifecycle: { revertRequest: { snapshotRef: { name: 'nightly-1' }, request: token } }, snapshot: null },
  });
  t.equal(run.out, `virtualmachine/db: revert to vmsnapshot/nightly-1 requested (request "${token}")\n`);
  t.equal(run.err, 'vrtg: vmsnapshot/nightly-1 is not Ready (phase Creating): the revert starts once it is\n');
  const current = clusterObject('virtualmachines', 'db');
  t.same(crd('VirtualMachine').validate(applyMergePatch(current, patchOf(run.calls[2])), current), []);
});

t.test('snapshot revert of a Ready snapshot patches only lifecycle.revertRequest and warns of nothing', async (t) => {
  const run = await vrtg(t, ['snapshot', 'revert', 'before-upgrade', '--vm=web']);
  t.equal(run.code, 0, run.err);
  t.equal(run.err, '');
  t.same(patchOf(run.calls[2]), { spec: { lifecycle: { revertRequest: { snapshotRef: { name: 'before-upgrade' }, request: NOW.toISOString() } } } });
  const current = clusterObject('virtualmachines', 'web');
  t.same(crd('VirtualMachine').validate(applyMergePatch(current, patchOf(run.calls[2])), current), []);
});

t.test('snapshot revert refuses a --vm the snapshot is not of', async (t) => {
  const run = await vrtg(t, ['snapshot', 'revert', 'before-upgrade', '--vm=db']);
  t.equal(run.code, 2);
  t.equal(run.err, 'vrtg: vmsnapshot/before-upgrade is of virtualmachine/web, not virtualmachine/db\n');
  t.same(
    run.calls.map((c) => c.argv[0]),
    ['get'],
  );
});

t.test('snapshot delete passes every name and --wait=false on, and prints kubectl\'s lines', async (t) => {
  const run = await vrtg(t, ['snapshot', 'delete', 'before-upgrade', 'nightly-1', '--wait=false']);
  t.equal(run.code, 0, run.err);
  t.same(run.calls[0]?.argv, ['delete', SNAPS, 'before-upgrade', 'nightly-1', '--wait=false']);
  t.equal(run.out, 'vmsnapshot.infra.virtrigaud.io "before-upgrade" deleted\nvmsnapshot.infra.virtrigaud.io "nightly-1" deleted\n');
});

t.test('snapshot with no subcommand lists the snapshot commands on stderr, exit 2', async (t) => {
  const run = await vrtg(t, ['snapshot']);
  t.equal(run.code, 2);
  t.match(run.err, /\n  snapshot create NAME --vm=VM +take a snapshot/);
  t.notMatch(run.err, /\n  list /);
});
