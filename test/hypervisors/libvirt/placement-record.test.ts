// The placement record in a domain's virtrigaud metadata: any labels and the order read back
// exactly (also as libvirt prints them back), every metadata rewrite keeps them, and a record we
// did not write is ignored, never a reason to call the VM unreadable.
import t from 'tap';
import type { PlacementRecord } from '../../../src/contracts/driver.js';
import { metadataXml, parseMetadata, type VmMetadata } from '../../../src/hypervisors/libvirt/domain-xml.js';
import { RECORD_MAX_BYTES, parseRecord, recordAttributes, validatePlacementRecord } from '../../../src/hypervisors/libvirt/placement-record.js';
import { withTags } from '../../../src/hypervisors/libvirt/tags.js';

const LABELS: Record<string, string> = {
  'app.kubernetes.io/name': 'Web',
  'example.com/Tier': 'GOLD',
  'a=b': 'c=d',
  empty: '',
  unicode: 'é😀 ü',
  quotes: `it's "quoted" <&>`,
  spaces: ' two\twords\n',
};
const RECORD: PlacementRecord = { labels: LABELS, order: 1_767_225_600_123 };

const metadata = (placement?: PlacementRecord): VmMetadata => ({
  owner: { uid: 'u1', namespace: 'prod', name: 'web' },
  ...(placement ? { placement } : {}),
  disks: [{ name: 'root', target: 'vda', volume: 'virtrigaud-u1-root.qcow2' }],
  nics: [],
  bases: [],
  cpuHotAdd: false,
  memoryHotAdd: false,
});

/** What `virsh metadata --uri` prints: libxml2 writes non-ASCII as character references and `"` as &quot;. */
function asLibvirtPrints(bare: string): string {
  return bare
    .replace(/'([^']*)'/g, (_match, value: string) => `"${value.replace(/&apos;/g, "'").replace(/"/g, '&quot;')}"`)
    .replace(/[^\x00-\x7f]/gu, (char) => `&#x${(char.codePointAt(0) ?? 0).toString(16).toUpperCase()};`);
}

t.test('labels with upper case, dots, slashes, =, unicode and empty values read back exactly', async (t) => {
  const { order, labels } = recordAttributes(RECORD);
  t.match(labels, /^[\x20-\x7e]*$/, 'plain ASCII only: libvirt gives back nothing else as written');
  t.strictSame(parseRecord(order, labels), RECORD);
  t.same(parseMetadata(metadataXml(metadata(RECORD), true))?.placement, RECORD, 'through the metadata element');
  t.same(parseMetadata(asLibvirtPrints(metadataXml(metadata(RECORD), true)))?.placement, RECORD, 'as libvirt prints it back');
});

t.test('a record is written beside the owner, and absent without one', async (t) => {
  t.match(metadataXml(metadata(RECORD)), /<virtrigaud:owner [^>]*\/><virtrigaud:placement order='1767225600123' labels='\{/);
  const plain = parseMetadata(metadataXml(metadata(), true));
  t.equal(plain?.placement, undefined);
  t.notMatch(metadataXml(metadata()), /placement/);
});

t.test('a tag change keeps the record', async (t) => {
  const tagged = withTags(metadata(RECORD), ['db', 'env:prod']);
  t.same(parseMetadata(metadataXml(tagged, true))?.placement, RECORD);
  t.same(parseMetadata(metadataXml(withTags(tagged, []), true))?.placement, RECORD, 'and removing every tag too');
});

t.test('a key like __proto__ is an ordinary label', async (t) => {
  const record: PlacementRecord = { labels: Object.fromEntries([['__proto__', 'x'], ['b', 'y']]), order: 5 };
  const { order, labels } = recordAttributes(record);
  const parsed = parseRecord(order, labels);
  t.same(Object.entries(parsed?.labels ?? {}), [['__proto__', 'x'], ['b', 'y']]);
});

t.test('a malformed record is ignored and the VM stays ours and readable', async (t) => {
  const owner = `<owner uid="u1" namespace="prod" name="web"/>`;
  const cases: [string, string][] = [
    ['labels not JSON', `<placement order="12" labels="{not json"/>`],
    ['labels an array', `<placement order="12" labels="[&quot;a&quot;]"/>`],
    ['a label without text', `<placement order="12" labels="{&quot;a&quot;:1}"/>`],
    ['no labels', `<placement order="12"/>`],
    ['no order', `<placement labels="{}"/>`],
    ['a negative order', `<placement order="-1" labels="{}"/>`],
    ['an order that is no number', `<placement order="soon" labels="{}"/>`],
    ['two records', `<placement order="1" labels="{}"/><placement order="2" labels="{}"/>`],
  ];
  for (const [what, element] of cases) {
    const parsed = parseMetadata(`<vm>${owner}${element}</vm>`);
    t.equal(parsed?.owner.uid, 'u1', `${what}: still ours`);
    t.equal(parsed?.placement, undefined, `${what}: no record`);
  }
});

t.test('create refuses an order that would not read back, and labels too large to record', async (t) => {
  t.throws(() => validatePlacementRecord({ labels: {}, order: -1 }), { code: 'InvalidSpec' });
  t.throws(() => validatePlacementRecord({ labels: {}, order: Number.NaN }), { code: 'InvalidSpec' });
  t.throws(() => validatePlacementRecord({ labels: {}, order: Number.POSITIVE_INFINITY }), { code: 'InvalidSpec' });
  t.throws(() => validatePlacementRecord({ labels: { big: 'x'.repeat(RECORD_MAX_BYTES) }, order: 1 }), { code: 'InvalidSpec', message: /too large/ });
  t.doesNotThrow(() => validatePlacementRecord(RECORD));
  t.doesNotThrow(() => validatePlacementRecord({ labels: {}, order: 0 }));
});
