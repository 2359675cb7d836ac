// Placement policies against the real libvirtd over SSH: the record a create writes beside the
// identity (labels of any shape, the order) is listed back by the inventory with the VM's owner,
// name, vCPUs and memory, from the moment the domain is defined; every metadata rewrite keeps it;
// domains defined by hand are listed too, without owner or labels; the inventory costs the same
// few host commands whatever the number of domains; and create takes only this host's name.
import t, { type Test } from 'tap';
import type { CreateSpec, Identity, PlacedVMInfo, PlacementRecord } from '../../../src/contracts/driver.js';
import { MiB } from '../../../src/contracts/quantity.js';
import { METADATA_NS, parseDomain } from '../../../src/hypervisors/libvirt/domain-xml.js';
import { LIBVIRT_STATE, defineForeignDomain, instrumentHost, libvirtPeer, peerSpec, removeDomainByName, taskDone } from '../../helpers/libvirt-peer.js';

t.setTimeout(300_000);

const NAMESPACE = 'placement-peer';
const owner = (name: string): Identity => ({ uid: `0d0d0e0f-0000-4000-8000-${name.padEnd(12, '0').slice(0, 12)}`, namespace: NAMESPACE, name });

const RECORD: PlacementRecord = {
  labels: {
    'app.kubernetes.io/name': 'Web',
    'example.com/Tier': 'GOLD',
    'a=b': 'c=d',
    empty: '',
    unicode: 'é😀 ü',
    quote: `it's "x" <&>`,
  },
  order: 1_767_225_600_123,
};

const FOREIGN = ['pl-foreign', 'pl-extra-1', 'pl-extra-2', 'pl-extra-3'];

const peer = await libvirtPeer(t);
if (peer) {
  t.teardown(() => peer.close());
  const driver = peer.driver();
  t.teardown(() => driver.close());
  const host = instrumentHost(t, peer);

  // Leftovers of an interrupted earlier run would be found by identity, or counted as foreign.
  for (const line of (await peer.virsh(['list', '--all', '--uuid'])).stdout.split('\n')) {
    const vm = line.trim() === '' ? undefined : await driver.describe(line.trim()).catch(() => undefined);
    if (vm?.owner?.namespace === NAMESPACE) await taskDone(driver, await driver.delete({ id: vm.id, owner: vm.owner }));
  }
  for (const name of FOREIGN) await removeDomainByName(peer, name);

  const hostName = async (): Promise<string> => (await driver.inventory()).hosts[0]?.name ?? '';
  const placedOf = async (uid: string): Promise<PlacedVMInfo | undefined> => (await driver.inventory()).hosts[0]?.placed?.find((vm) => vm.owner === uid);
  const create = async (t: Test, name: string, overrides: Partial<CreateSpec>) => {
    const spec = peerSpec(peer, name, owner(name), overrides);
    const created = await driver.create(spec);
    const ref = { id: created.id, owner: owner(name) };
    t.teardown(async () => {
      const vm = await driver.findByIdentity(ref.owner.uid);
      if (vm) await taskDone(driver, await driver.delete({ id: vm.id, owner: ref.owner }));
    });
    return { spec, created, ref };
  };

  t.test('a VM created with a record is listed on the host with exactly its labels, order, owner, name, CPUs and memory', async (t) => {
    const release = await host.hold();
    const { spec, created, ref } = await create(t, 'pl-web', { cpus: 2, memoryBytes: 192 * MiB, placement: { host: await hostName() }, placementRecord: RECORD });
    const expected: PlacedVMInfo = { name: 'pl-web', owner: ref.owner.uid, labels: RECORD.labels, order: RECORD.order, cpus: 2, memoryBytes: spec.memoryBytes };
    t.strictSame(await placedOf(ref.owner.uid), expected, 'while its disks are still being made: readable, so not settling');
    await release();
    await taskDone(driver, created);
    t.strictSame(await placedOf(ref.owner.uid), expected, 'once created: completing the create kept the record');
    const stored = (await peer.virsh(['metadata', '--domain', ref.id, '--uri', METADATA_NS])).stdout;
    t.match(stored, /<placement order="1767225600123" labels="/, 'beside the owner in our metadata');
    t.notMatch(stored, /&#/, 'plain ASCII: libvirt gives it back exactly');
  });

  t.test('a tag change keeps the record, on a VM that is off and on one that runs', async (t) => {
    const { created, ref } = await create(t, 'pl-tags', { placement: { host: await hostName() }, placementRecord: RECORD, tags: ['web'] });
    await taskDone(driver, created);
    await taskDone(driver, await driver.reconfigure(ref, { tags: ['db', 'env:prod'] }));
    t.strictSame((await placedOf(ref.owner.uid))?.labels, RECORD.labels, 'off');
    t.same((await driver.describe(ref.id)).tags, ['db', 'env:prod'], 'the tags did change');

    await taskDone(driver, await driver.power(ref, 'on'));
    await taskDone(driver, await driver.reconfigure(ref, { tags: [] }));
    const placed = await placedOf(ref.owner.uid);
    t.strictSame([placed?.labels, placed?.order], [RECORD.labels, RECORD.order], 'running: the live metadata keeps it');
    const persistent = parseDomain((await peer.virsh(['dumpxml', '--inactive', ref.id])).stdout).metadata;
    t.strictSame(persistent?.placement, RECORD, 'and the persistent definition');
    t.same(persistent?.tags, undefined);
    await taskDone(driver, await driver.power(ref, 'off'));
  });

  t.test('a VM created without a record has no labels and no order; a domain defined by hand has no owner either', async (t) => {
    t.teardown(() => removeDomainByName(peer, 'pl-foreign'));
    const { created, ref } = await create(t, 'pl-plain', {});
    await taskDone(driver, created);
    await defineForeignDomain(peer, 'pl-foreign', false);
    const placed = (await driver.inventory()).hosts[0]?.placed ?? [];
    t.strictSame(placed.find((vm) => vm.owner === ref.owner.uid), { name: 'pl-plain', owner: ref.owner.uid, labels: {}, cpus: 1, memoryBytes: 128 * MiB });
    t.strictSame(placed.find((vm) => vm.name === 'pl-foreign'), { name: 'pl-foreign', labels: {}, cpus: 1, memoryBytes: 64 * MiB });
  });

  t.test('the inventory costs the same few host commands whatever the number of domains', async (t) => {
    const extra = FOREIGN.slice(1);
    t.teardown(async () => {
      for (const name of extra) await removeDomainByName(peer, name);
    });
    const commands = async () => {
      const before = host.commands.length;
      const inventory = await driver.inventory();
      return { commands: host.commands.slice(before), listed: inventory.hosts[0]?.placed?.length ?? 0 };
    };
    const few = await commands();
    for (const name of extra) await defineForeignDomain(peer, name, false);
    const more = await commands();
    t.equal(more.listed, few.listed + extra.length, 'the new domains are listed');
    t.same(more.commands, few.commands, `the same commands: ${more.commands.join(', ')}`);
    t.ok(more.commands.length <= 4, 'node, pool and network information, and one listing of every domain');
    t.equal(more.commands.filter((command) => command === 'script').length, 1, 'one run lists the domains');
  });

  t.test('an older virsh that refuses --uuid with --name gives the same listing, names asked for one by one', async (t) => {
    t.teardown(() => removeDomainByName(peer, 'pl-foreign'));
    await defineForeignDomain(peer, 'pl-foreign', false);
    const dir = `${LIBVIRT_STATE}/old-virsh-${process.pid}`;
    const wrapper = `#!/bin/sh\ncase "$*" in *--uuid*--name*|*--name*--uuid*) echo x >>"$0.refused"; echo "error: Options --name and --uuid are mutually exclusive" >&2; exit 1 ;; esac\nexec "$REAL_VIRSH" "$@"\n`;
    t.equal((await peer.exec(['sh', '-c', 'mkdir -p "$1" && cat >"$1/virsh" && chmod 755 "$1/virsh"', 'sh', dir], wrapper)).code, 0);
    t.teardown(() => peer.exec(['rm', '-rf', dir]));
    const real = (await peer.exec(['sh', '-c', 'command -v virsh'])).stdout.trim();
    const current = (await driver.inventory()).hosts[0]?.placed;
    let inner = false;
    host.around(async (argv, _options, run) => {
      if (inner || argv[0] !== 'sh' || argv.at(-1) !== 'placed') return run();
      inner = true;
      try {
        return await peer.exec(['env', `PATH=${dir}:/usr/sbin:/usr/bin:/sbin:/bin`, `REAL_VIRSH=${real}`, ...argv]);
      } finally {
        inner = false;
      }
    });
    t.teardown(() => host.around(undefined));
    const refused = await peer.exec(['env', `PATH=${dir}:/usr/bin:/bin`, `REAL_VIRSH=${real}`, 'virsh', '-q', 'list', '--all', '--uuid', '--name']);
    t.not(refused.code, 0, 'the stand-in refuses the combination');
    const old = (await driver.inventory()).hosts[0]?.placed;
    t.equal((await peer.exec(['cat', `${dir}/virsh.refused`])).stdout, 'x\nx\n', 'the listing met the refusal');
    t.ok(old?.some((vm) => vm.name === 'pl-foreign' && vm.settling === undefined), 'a domain is named and measured');
    t.strictSame(old, current);
  });

  t.test("create takes the inventory's own host name with a record, and refuses any other host", async (t) => {
    const name = 'pl-elsewhere';
    await t.rejects(driver.create(peerSpec(peer, name, owner(name), { placement: { host: 'another-host' }, placementRecord: RECORD })), { code: 'Unsupported', message: /serves host/ });
    await t.rejects(driver.create(peerSpec(peer, name, owner(name), { placement: { host: await hostName() } })), { code: 'Unsupported' }, 'a host without a policy record is not a choice');
    await t.rejects(driver.create(peerSpec(peer, name, owner(name), { placementRecord: { labels: {}, order: -1 } })), { code: 'InvalidSpec' });
    t.equal(await driver.findByIdentity(owner(name).uid), undefined, 'nothing made');
  });
}
