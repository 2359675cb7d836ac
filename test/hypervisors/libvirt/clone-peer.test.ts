// Linked clones against the real libvirtd when the source's freeze is interrupted: the answer of
// the source's `define` lost after libvirt applied it, and the source powered on between the
// state check and the freeze. Faults are injected around the real host commands.
import t, { type Test } from 'tap';
import { UnreachableError, type CreateSpec, type Identity, type VMRef } from '../../../src/contracts/driver.js';
import { METADATA_NS, parseDomain, parseMetadata, type ParsedDomain } from '../../../src/hypervisors/libvirt/domain-xml.js';
import { frozenOverlayName } from '../../../src/hypervisors/libvirt/names.js';
import { instrumentHost, type LibvirtPeer, libvirtPeer, peerSpec, taskDone, taskSettled } from '../../helpers/libvirt-peer.js';

t.setTimeout(300_000);

const owner = (name: string): Identity => ({ uid: `0c0e0f00-0000-4000-8000-${name.padEnd(12, '0').slice(0, 12)}`, namespace: 'clones', name });

const spec = (peer: LibvirtPeer, name: string, overrides: Partial<CreateSpec> = {}): CreateSpec => peerSpec(peer, name, owner(name), { ...overrides });

const peer = await libvirtPeer(t);
if (peer) {
  t.teardown(() => peer.close());
  const host = instrumentHost(t, peer);
  const driver = peer.driver();
  t.teardown(() => driver.close());

  const remove = async (who: Identity) => {
    const vm = await driver.findByIdentity(who.uid);
    if (vm) await taskDone(driver, await driver.delete({ id: vm.id, owner: who }));
  };
  const vmFor = async (t: Test, name: string): Promise<VMRef> => {
    await remove(owner(name));
    const created = await driver.create(spec(peer, name));
    await taskDone(driver, created);
    return { id: created.id, owner: owner(name) };
  };
  const definition = async (id: string): Promise<ParsedDomain> => parseDomain((await peer.virsh(['dumpxml', '--inactive', id])).stdout);
  const bases = async (id: string): Promise<string[]> => parseMetadata((await peer.virsh(['metadata', '--domain', id, '--uri', METADATA_NS])).stdout)?.bases ?? [];
  const volumeExists = async (volume: string) => (await peer.virsh(['vol-info', '--pool', peer.pool, volume])).code === 0;
  /** Fires `fault` once, around the define that moves `source` onto its overlays. */
  const onFreezeDefine = (source: string, fault: (run: () => Promise<{ code: number | null; stdout: string; stderr: string }>) => Promise<{ code: number | null; stdout: string; stderr: string }>) =>
    host.around(async (argv, options, run) => {
      if (!argv.includes('define') || typeof options.stdin !== 'string' || !options.stdin.includes(`<uuid>${source}</uuid>`)) return run();
      host.around(undefined);
      return fault(run);
    });

  t.test('a linked clone whose freeze answer was lost keeps the source on its overlays, and the retry freezes nothing twice', async (t) => {
    const source = await vmFor(t, 'cl-src-a');
    const target = { name: 'cl-lost', owner: owner('cl-lost'), linked: true };
    t.teardown(async () => {
      await remove(target.owner);
      await remove(source.owner);
    });
    const before = await definition(source.id);
    onFreezeDefine(source.id, async (run) => {
      await run();
      throw new UnreachableError('SSH connection lost while running virsh (injected)');
    });
    await t.rejects(driver.clone(source, target), { code: 'Unreachable' });

    const frozen = await definition(source.id);
    const overlay = frozenOverlayName(source.owner.uid, 'vda', target.owner.uid);
    t.equal(frozen.disks.find((disk) => disk.target === 'vda')?.volume, overlay, 'libvirt applied the freeze');
    t.ok(await volumeExists(overlay), 'the overlay the source now uses is still there');
    t.equal(await driver.findByIdentity(target.owner.uid), undefined, 'no clone yet');

    const cloned = await driver.clone(source, target);
    await taskDone(driver, cloned);
    t.equal((await definition(source.id)).disks.find((disk) => disk.target === 'vda')?.volume, overlay, 'not frozen a second time');
    const original = before.disks.find((disk) => disk.target === 'vda')?.volume ?? '';
    t.same(await bases(source.id), [original], 'one frozen base');
    t.same(await bases(cloned.id), [original], 'the clone overlays the same base');
    // Both run on valid chains.
    await driver.power(source, 'on');
    await driver.power({ id: cloned.id, owner: target.owner }, 'on');
    t.equal((await driver.describe(source.id)).powerState, 'On');
    t.equal((await driver.describe(cloned.id)).powerState, 'On');
    await driver.power(source, 'off');
    await driver.power({ id: cloned.id, owner: target.owner }, 'off');
    await remove(target.owner);
    await remove(source.owner);
    t.notMatch((await peer.virsh(['vol-list', '--pool', peer.pool])).stdout, source.owner.uid, 'the base went with the last VM naming it');
  });

  t.test('a source powered on just before its freeze keeps its disks: the clone is refused and leaves nothing', async (t) => {
    const source = await vmFor(t, 'cl-src-b');
    const target = { name: 'cl-raced', owner: owner('cl-raced'), linked: true };
    t.teardown(async () => {
      await remove(target.owner);
      await remove(source.owner);
    });
    const before = await definition(source.id);
    onFreezeDefine(source.id, async (run) => {
      const started = await peer.virsh(['start', source.id]);
      if (started.code !== 0) throw new Error(`start: ${started.stderr}`);
      return run();
    });
    await t.rejects(driver.clone(source, target), { code: 'Conflict', message: /powered on while being cloned/ });
    const after = await definition(source.id);
    t.same(after.disks, before.disks, 'its definition names the disks it runs on');
    t.same(after.metadata, before.metadata, 'and no frozen base');
    t.equal((await driver.describe(source.id)).powerState, 'On', 'still running');
    t.notOk(await volumeExists(frozenOverlayName(source.owner.uid, 'vda', target.owner.uid)), 'the overlay is gone');
    t.notMatch((await peer.virsh(['vol-list', '--pool', peer.pool])).stdout, target.owner.uid, 'no clone volumes');
    t.equal(await driver.findByIdentity(target.owner.uid), undefined, 'no clone');
    await driver.power(source, 'off');
  });
}
