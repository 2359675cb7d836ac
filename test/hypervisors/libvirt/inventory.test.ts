// The inventory's listing of every domain for placement, from what the host script prints: each
// domain's name, owner, record, vCPUs and memory; foreign domains without owner or labels; and
// "settling" only where what a domain records cannot be read yet.
import t from 'tap';
import { parseDomainStats, placedVM } from '../../../src/hypervisors/libvirt/inventory.js';
import { parseDomainList, statsSection } from '../../../src/hypervisors/libvirt/observe.js';

const A = '0a0a0a0a-0000-4000-8000-00000000000a';
const B = '0b0b0b0b-0000-4000-8000-00000000000b';
const C = '0c0c0c0c-0000-4000-8000-00000000000c';
const D = '0d0d0d0d-0000-4000-8000-00000000000d';

const STATS = `Domain: 'web-1'
  balloon.current=262144
  balloon.maximum=524288
  vcpu.current=2
  vcpu.maximum=4

Domain: 'someone's vm'
  balloon.current=65536
  vcpu.current=1

Domain: 'broken'
  balloon.current=131072
  vcpu.current=1
`;

const RECORD = `labels="{&quot;app.kubernetes.io/name&quot;:&quot;Web&quot;,&quot;empty&quot;:&quot;&quot;}"`;

/** What LIST_SCRIPT prints with `placed`: the statistics, then each domain with its name and metadata. */
const LISTING = [
  '#virtrigaud-stats',
  STATS.trimEnd(),
  '',
  `#virtrigaud-domain ${A} web-1`,
  `<vm>\n  <owner uid="u1" namespace="n" name="web-1"/>\n  <placement order="1767225600123" ${RECORD}/>\n  <pending origin="create"/>\n</vm>`,
  '',
  `#virtrigaud-domain ${B} someone's vm`,
  '',
  `#virtrigaud-domain ${C} broken`,
  '#virtrigaud-unreadable error: internal error: cannot parse metadata',
  '',
  `#virtrigaud-domain ${D} just-defined`,
  `<vm>\n  <owner uid="u4" namespace="n" name="just-defined"/>\n</vm>`,
  '',
].join('\n');

t.test('the statistics are read per domain name: current vCPUs and memory in bytes', async (t) => {
  const stats = parseDomainStats(statsSection(LISTING));
  t.same([...stats], [
    ['web-1', { cpus: 2, memoryBytes: 256 * 1024 * 1024 }],
    ["someone's vm", { cpus: 1, memoryBytes: 64 * 1024 * 1024 }],
    ['broken', { cpus: 1, memoryBytes: 128 * 1024 * 1024 }],
  ]);
  t.equal(statsSection(`\n#virtrigaud-domain ${A}\n`), '', 'a listing without statistics has none');
});

t.test('the listing names each domain beside its UUID', async (t) => {
  t.same(
    parseDomainList(LISTING).map((domain) => [domain.uuid, domain.name]),
    [[A, 'web-1'], [B, "someone's vm"], [C, 'broken'], [D, 'just-defined']],
  );
  t.same(parseDomainList(`\n#virtrigaud-domain ${A}\n`), [{ uuid: A }], 'the plain listing (findByIdentity) has no names');
});

t.test('each domain is listed for placement as its metadata and statistics say', async (t) => {
  const stats = parseDomainStats(statsSection(LISTING));
  const placed = parseDomainList(LISTING).map((domain) => placedVM(domain, stats));
  t.strictSame(placed, [
    // Still filling its disks, but its define wrote owner and record: nothing to wait for.
    { name: 'web-1', owner: 'u1', labels: { 'app.kubernetes.io/name': 'Web', empty: '' }, order: 1_767_225_600_123, cpus: 2, memoryBytes: 256 * 1024 * 1024 },
    { name: "someone's vm", labels: {}, cpus: 1, memoryBytes: 64 * 1024 * 1024 },
    // Its metadata cannot be read: it may be ours, with a record.
    { name: 'broken', labels: {}, cpus: 1, memoryBytes: 128 * 1024 * 1024, settling: true },
    // Defined after the statistics were read: not measured yet.
    { name: 'just-defined', labels: {}, cpus: 0, memoryBytes: 0, settling: true },
  ]);
});

t.test('a VM of ours created without a record has no labels and no order', async (t) => {
  const listing = `\n#virtrigaud-domain ${A} web-1\n<vm><owner uid="u1" namespace="n" name="web-1"/></vm>\n`;
  const [placed] = parseDomainList(listing).map((domain) => placedVM(domain, parseDomainStats(STATS)));
  t.strictSame(placed, { name: 'web-1', owner: 'u1', labels: {}, cpus: 2, memoryBytes: 256 * 1024 * 1024 });
});
