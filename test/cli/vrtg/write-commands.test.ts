// The commands that change a VM or a VMSet (src/cli/vrtg/commands/power.ts, clone.ts, scale.ts):
// a read, then one merge patch or one new object, which the CRD accepts.
import t from 'tap';
import { parse } from 'yaml';
import { applyMergePatch } from '../../../src/cli/vrtg/objects.js';
import { NOW, clusterObject, crd, patchOf, vrtg } from './stand-in.js';

const VMS = 'virtualmachines.infra.virtrigaud.io';
const VMSETS = 'vmsets.infra.virtrigaud.io';

t.test('power off-graceful patches spec.powerState to the string "OffGraceful" after reading the VM', async (t) => {
  const run = await vrtg(t, ['power', 'off-graceful', 'web']);
  t.equal(run.code, 0, run.err);
  t.same(
    run.calls.map((c) => c.argv),
    [
      ['get', VMS, 'web', '-o', 'json'],
      ['patch', VMS, 'web', '--type', 'merge', '-p', '{"spec":{"powerState":"OffGraceful"}}', '-o', 'json'],
    ],
  );
  t.equal(run.out, 'virtualmachine/web: powerState "OffGraceful" (was "On")\n');
  const current = clusterObject('virtualmachines', 'web');
  t.same(crd('VirtualMachine').validate(applyMergePatch(current, patchOf(run.calls[1])), current), []);
});

t.test('power on writes "On" over a powerState that YAML 1.1 made the boolean true', async (t) => {
  const run = await vrtg(t, ['power', 'on', 'api', '-n', 'prod']);
  t.equal(run.code, 0, run.err);
  t.same(patchOf(run.calls[1]), { spec: { powerState: 'On' } });
  t.equal(run.out, 'virtualmachine/api: powerState "On" (was "On")\n');
  const current = clusterObject('virtualmachines', 'api');
  t.same(crd('VirtualMachine').validate(applyMergePatch(current, patchOf(run.calls[1])), current), []);
});

t.test('power suspend patches spec.powerState to "Suspended", which the CRD accepts', async (t) => {
  const run = await vrtg(t, ['power', 'suspend', 'web']);
  t.equal(run.code, 0, run.err);
  t.same(patchOf(run.calls[1]), { spec: { powerState: 'Suspended' } });
  t.equal(run.out, 'virtualmachine/web: powerState "Suspended" (was "On")\n');
  const current = clusterObject('virtualmachines', 'web');
  t.same(crd('VirtualMachine').validate(applyMergePatch(current, patchOf(run.calls[1])), current), []);
});

t.test('power refuses a state it does not know, before calling kubectl', async (t) => {
  const run = await vrtg(t, ['power', 'hibernate', 'web']);
  t.equal(run.code, 2);
  t.equal(run.err, 'vrtg: power state must be on, off, off-graceful or suspend, not "hibernate"\n');
  t.same(run.calls, []);
});

t.test('power -o yaml prints the object kubectl answered with', async (t) => {
  const run = await vrtg(t, ['power', 'off', 'web', '-o', 'yaml']);
  t.equal(run.code, 0, run.err);
  t.match(run.out, /^apiVersion: infra\.virtrigaud\.io\/v1beta1\nkind: VirtualMachine\n/);
  t.match(run.out, /\n  powerState: "Off"\n/);
});

t.test('restart sets spec.lifecycle.restartRequest to the current time, keeping the rest of lifecycle', async (t) => {
  const run = await vrtg(t, ['restart', 'db']);
  t.equal(run.code, 0, run.err);
  const token = NOW.toISOString();
  t.same(patchOf(run.calls[1]), { spec: { lifecycle: { restartRequest: token } } });
  t.equal(run.out, `virtualmachine/db: restart requested (restartRequest "${token}")\n`);
  const current = clusterObject('virtualmachines', 'db');
  const patched = applyMergePatch(current, patchOf(run.calls[1]));
  t.same(crd('VirtualMachine').validate(patched, current), []);
  t.equal((patched as { spec: { lifecycle: { gracefulShutdownTimeout: string } } }).spec.lifecycle.gracefulShutdownTimeout, '90s');
});

t.test('restart --dry-run prints the patch and only reads', async (t) => {
  const run = await vrtg(t, ['restart', 'web', '--dry-run']);
  t.equal(run.code, 0, run.err);
  t.same(parse(run.out), { spec: { lifecycle: { restartRequest: NOW.toISOString() } } });
  t.same(
    run.calls.map((c) => c.argv[0]),
    ['get'],
  );
});

t.test('restart --dry-run=server lets kubectl send the patch as a server dry run', async (t) => {
  const run = await vrtg(t, ['restart', 'web', '--dry-run=server']);
  t.equal(run.code, 0, run.err);
  t.same(run.calls[1]?.argv.slice(-3), ['--dry-run=server', '-o', 'json']);
  t.match(run.out, /\(server dry run\)\n$/);
});

t.test('clone checks the source exists, then creates a linked VMClone whose target is named like it', async (t) => {
  const run = await vrtg(t, ['clone', 'web', 'web-test']);
  t.equal(run.code, 0, run.err);
  t.same(
    run.calls.map((c) => c.argv),
    [
      ['get', 'virtualmachines.infra.virtrigaud.io', 'web', '-o', 'json'],
      ['create', '-f', '-', '-o', 'json'],
    ],
  );
  const written = JSON.parse(run.calls[1]?.stdin ?? '') as unknown;
  t.same(written, {
    apiVersion: 'infra.virtrigaud.io/v1beta1',
    kind: 'VMClone',
    metadata: { name: 'web-test' },
    spec: { sourceVMRef: { name: 'web' }, linkedClone: true, target: { name: 'web-test' } },
  });
  t.same(crd('VMClone').validate(written), []);
  t.equal(run.out, 'vmclone/web-test created: linked clone of virtualmachine/web as virtualmachine/web-test\n');
});

t.test('clone --full --power=off writes a full clone that stays off', async (t) => {
  const run = await vrtg(t, ['clone', 'web', 'web-copy', '--full', '--power=off']);
  t.equal(run.code, 0, run.err);
  const written = JSON.parse(run.calls[1]?.stdin ?? '') as { spec: unknown };
  t.same(written.spec, { sourceVMRef: { name: 'web' }, linkedClone: false, target: { name: 'web-copy', powerState: 'Off' } });
  t.same(crd('VMClone').validate(written), []);
});

t.test('clone -o json prints the VMClone as kubectl answered', async (t) => {
  const run = await vrtg(t, ['clone', 'web', 'web-test', '-o', 'json']);
  t.equal(run.code, 0, run.err);
  t.match(JSON.parse(run.out), { kind: 'VMClone', metadata: { name: 'web-test', uid: 'uid-web-test' } });
});

t.test('clone refuses a target name the CRD would refuse, before calling kubectl', async (t) => {
  const run = await vrtg(t, ['clone', 'web', 'Web Copy']);
  t.equal(run.code, 2);
  t.match(run.err, /^vrtg: refusing to write vmclone\/Web Copy: metadata\.name: /);
  t.same(run.calls, []);
});

t.test('clone of a source that does not exist creates nothing', async (t) => {
  const run = await vrtg(t, ['clone', 'nope', 'nope-copy']);
  t.equal(run.code, 1);
  t.equal(run.err, 'vrtg: kubectl: Error from server (NotFound): virtualmachines.infra.virtrigaud.io "nope" not found\n');
  t.equal(run.calls.length, 1);
});

t.test('scale reads the VMSet and patches spec.replicas', async (t) => {
  const run = await vrtg(t, ['scale', 'web-set', '--replicas=5']);
  t.equal(run.code, 0, run.err);
  t.same(
    run.calls.map((c) => c.argv),
    [
      ['get', VMSETS, 'web-set', '-o', 'json'],
      ['patch', VMSETS, 'web-set', '--type', 'merge', '-p', '{"spec":{"replicas":5}}', '-o', 'json'],
    ],
  );
  t.equal(run.out, 'vmset/web-set scaled to 5 (was 3)\n');
  const current = clusterObject('vmsets', 'web-set');
  t.same(crd('VMSet').validate(applyMergePatch(current, patchOf(run.calls[1])), current), []);
});

t.test('scale to zero is allowed', async (t) => {
  const run = await vrtg(t, ['scale', 'web-set', '--replicas', '0']);
  t.equal(run.code, 0, run.err);
  t.same(patchOf(run.calls[1]), { spec: { replicas: 0 } });
});

t.test('scale refuses more replicas than the CRD allows, naming spec.replicas, without patching', async (t) => {
  const run = await vrtg(t, ['scale', 'web-set', '--replicas=501']);
  t.equal(run.code, 2);
  t.equal(run.err, 'vrtg: refusing to write vmset/web-set: spec.replicas: Expected integer to be less or equal to 500 (got 501)\n');
  t.same(
    run.calls.map((c) => c.argv[0]),
    ['get'],
  );
});

t.test('scale refuses a replica count that is not a whole number', async (t) => {
  const run = await vrtg(t, ['scale', 'web-set', '--replicas=-1']);
  t.equal(run.code, 2);
  t.equal(run.err, 'vrtg: --replicas must be a whole number, not "-1"\n');
  t.same(run.calls, []);
});

t.test('scale without --replicas is a usage error', async (t) => {
  const run = await vrtg(t, ['scale', 'web-set']);
  t.equal(run.code, 2);
  t.equal(run.err, 'vrtg: vrtg scale: --replicas is required\n');
});
