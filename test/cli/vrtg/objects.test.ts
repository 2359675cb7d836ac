// Merge patches, field paths and the schema check before writing (src/cli/vrtg/objects.ts), and
// ages as kubectl prints them (src/cli/vrtg/views.ts).
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { VM, applyMergePatch, checkPatched, fieldPath } from '../../../src/cli/vrtg/objects.js';
import { age } from '../../../src/cli/vrtg/views.js';
import { CLUSTER, clusterObject, crd } from './stand-in.js';

t.test('a merge patch merges objects, replaces arrays and removes keys set to null', async (t) => {
  const target = { spec: { a: 1, list: [1, 2], nested: { keep: true, drop: 'x' } } };
  t.same(applyMergePatch(target, { spec: { list: [3], nested: { drop: null }, b: 2 } }), { spec: { a: 1, list: [3], nested: { keep: true }, b: 2 } });
  t.same(target.spec.nested, { keep: true, drop: 'x' }, 'the target is left as it was');
});

t.test('JSON pointers are shown as people write field paths', async (t) => {
  t.equal(fieldPath('/spec/disks/0/size'), 'spec.disks[0].size');
  t.equal(fieldPath('/metadata/labels/app.kubernetes.io~1name'), 'metadata.labels["app.kubernetes.io/name"]');
  t.equal(fieldPath(''), '');
});

t.test('a patch is refused for what it breaks, naming the field', async (t) => {
  const web = clusterObject('virtualmachines', 'web');
  t.throws(() => checkPatched(VM, web, applyMergePatch(web, { spec: { powerState: 'Paused' } })), {
    message: 'refusing to write virtualmachine/web: spec.powerState: must be one of "On", "Off", "OffGraceful", "Suspended", true, false (got "Paused")',
    exitCode: 2,
  });
  t.throws(() => checkPatched(VM, web, applyMergePatch(web, { spec: { lifecycle: { restartRequest: 'x'.repeat(65) } } })), {
    message: /spec\.lifecycle\.restartRequest: Expected string length less or equal to 64 \(got "x+"\)$/,
  });
});

t.test('a field the object already has wrong does not stop a patch of another', async (t) => {
  const old = applyMergePatch(clusterObject('virtualmachines', 'web'), { spec: { tags: ['x'.repeat(200)] } });
  t.doesNotThrow(() => checkPatched(VM, old, applyMergePatch(old, { spec: { powerState: 'Off' } })));
});

t.test('ages read as kubectl prints them', async (t) => {
  const now = new Date('2026-12-07T12:00:00Z');
  const ago = (seconds: number) => new Date(now.getTime() - seconds * 1000).toISOString();
  t.same(
    [45, 119, 270, 600, 7200, 3 * 3600 + 120, 30 * 3600, 3 * 86400 + 4 * 3600, 400 * 86400, 3 * 365 * 86400 + 86400, 9 * 365 * 86400].map((s) => age(ago(s), now)),
    ['45s', '119s', '4m30s', '10m', '120m', '3h2m', '30h', '3d4h', '400d', '3y1d', '9y'],
  );
  t.equal(age(undefined, now), undefined);
});

t.test('the stand-in cluster holds only objects the CRDs accept, so what vrtg reads is real', async (t) => {
  for (const plural of readdirSync(CLUSTER)) {
    for (const file of readdirSync(join(CLUSTER, plural))) {
      const data = JSON.parse(readFileSync(join(CLUSTER, plural, file), 'utf8')) as unknown;
      for (const object of Array.isArray(data) ? data : [data]) {
        const kind = (object as { kind: string }).kind;
        t.same(crd(kind).validate(object), [], `${plural}/${file}`);
      }
    }
  }
});
