// What the libvirt driver derives from a spec before any host call: the user tags it stores, and
// the seed's meta-data with the user's laid over the driver's.
import t from 'tap';
import { parse } from 'yaml';
import { metaData } from '../../../src/hypervisors/libvirt/cloudinit.js';
import { requireIgnition } from '../../../src/hypervisors/libvirt/ignition.js';
import { userTags, withTags } from '../../../src/hypervisors/libvirt/tags.js';

const owner = { uid: '0d0e0f00-0000-4000-8000-000000000001', namespace: 'ns', name: 'web' };

t.test('tags are stored sorted and once; a tag outside TAG_PATTERN is InvalidSpec', async (t) => {
  t.same(userTags(['web', 'env-prod', 'web']), ['env-prod', 'web']);
  t.same(userTags([]), []);
  t.same(userTags(['env:prod', 'Owner=team/web@corp']), ['Owner=team/web@corp', 'env:prod'], "upstream's key:value style is a tag like any other");
  t.throws(() => userTags(['ok', 'Has Space']), { code: 'InvalidSpec', message: /"Has Space" is not a valid tag/ });
  t.throws(() => userTags(["x'/><owner uid='evil"]), { code: 'InvalidSpec' });
});

t.test('replacing tags keeps the identity and everything else in the metadata', async (t) => {
  const metadata = { owner, disks: [{ name: 'root', target: 'vda', volume: 'v' }], nics: [], bases: [], cpuHotAdd: false, memoryHotAdd: false, seed: 's', tags: ['old'] };
  t.same(withTags(metadata, ['a', 'b']), { ...metadata, tags: ['a', 'b'] });
  t.same(withTags(metadata, []), { owner, disks: metadata.disks, nics: [], bases: [], cpuHotAdd: false, memoryHotAdd: false, seed: 's' }, 'no tags: no tag element');
});

t.test("the user's meta-data is merged over the driver's; instance-id stays the owner's UID", async (t) => {
  t.same(parse(metaData({ name: 'Web 01', owner })), { 'instance-id': owner.uid, 'local-hostname': 'web-01' });
  const merged = parse(metaData({ name: 'web', owner }, 'local-hostname: custom\npublic-keys:\n  - ssh-ed25519 AAAA\nregion: eu\n')) as Record<string, unknown>;
  t.same(merged, { 'instance-id': owner.uid, 'local-hostname': 'custom', 'public-keys': ['ssh-ed25519 AAAA'], region: 'eu' });
  t.throws(() => metaData({ name: 'web', owner }, 'instance-id: mine\n'), { code: 'InvalidSpec', message: /instance-id/ });
  t.throws(() => metaData({ name: 'web', owner }, '- a list\n'), { code: 'InvalidSpec', message: /not a YAML mapping/ });
});

t.test('an Ignition config that cannot be one is InvalidSpec, and the message never quotes it', async (t) => {
  t.doesNotThrow(() => requireIgnition('{"ignition":{"version":"3.4.0"}}'));
  for (const bad of ['{"secret":"hunter2"', '["hunter2"]', '{"passwd":"hunter2"}']) {
    t.throws(() => requireIgnition(bad), { code: 'InvalidSpec', message: /^the Ignition config (is not JSON|has no ignition\.version)/ });
    let message = '';
    try {
      requireIgnition(bad);
    } catch (error) {
      message = error instanceof Error ? error.message : '';
    }
    t.notMatch(message, 'hunter2', 'not quoted');
  }
});
