// Issue 22's fields against the real libvirtd over SSH: user tags in the domain's metadata (set
// at create, replaced live on a running domain, identity untouched), CPU shares as cputune,
// the user's cloud-init meta-data merged into the seed, and an Ignition config passed to QEMU
// through fw_cfg from a private per-VM volume that delete removes.
import { execFileSync } from 'node:child_process';
import t, { type Test } from 'tap';
import type { CreateSpec, Identity } from '../../../src/contracts/driver.js';
import { GiB, MiB } from '../../../src/contracts/quantity.js';
import { instrumentHost, LIBVIRT_STATE, type LibvirtPeer, libvirtPeer, peerSpec, taskDone, taskSettled } from '../../helpers/libvirt-peer.js';

t.setTimeout(300_000);

const owner = (name: string): Identity => ({ uid: `0d0e0f22-0000-4000-8000-${name.padEnd(12, '0').slice(0, 12)}`, namespace: 'guest-config-peer', name });

const spec = (peer: LibvirtPeer, name: string, overrides: Partial<CreateSpec> = {}): CreateSpec => peerSpec(peer, name, owner(name), { memoryBytes: 256 * MiB, ...overrides });

// A secret the Ignition config carries: it must reach the volume QEMU reads and nothing else.
const SECRET = `hash-${process.pid}-f00dfeed`;
const IGNITION = JSON.stringify({ ignition: { version: '3.4.0' }, passwd: { users: [{ name: 'core', passwordHash: SECRET }] } });

/** The tag names in our metadata element of a domain XML. */
function metadataTags(xml: string): string[] {
  return [...xml.matchAll(/<virtrigaud:tag name=["']([^"']*)["']\/>/g)].map((match) => match[1] ?? '');
}

const peer = await libvirtPeer(t);
if (peer) {
  t.teardown(() => peer.close());
  const driver = peer.driver();
  t.teardown(() => driver.close());
  const removeAfter = (t: Test, name: string) =>
    t.teardown(async () => {
      const vm = await driver.findByIdentity(owner(name).uid);
      if (vm) await taskDone(driver, await driver.delete({ id: vm.id, owner: owner(name) }));
    });
  const volumeFile = async (volume: string) => {
    const out = await peer.virsh(['vol-path', '--pool', peer.pool, volume]);
    return out.code === 0 ? out.stdout.trim() : undefined;
  };
  const hostHas = async (argv: string[]) => (await peer.exec(argv)).code === 0;

  t.test('tags, CPU shares, meta-data and an Ignition config reach the domain; delete removes the Ignition volume', async (t) => {
    removeAfter(t, 'gc-full');
    const full = spec(peer, 'gc-full', {
      tags: ['web', 'env:prod'],
      limits: { cpuShares: 512 },
      userData: '#cloud-config\n{}\n',
      metaData: 'local-hostname: custom-host\nregion: eu-1\n',
      ignition: IGNITION,
    });
    const created = await driver.create(full);
    const ref = { id: created.id, owner: owner('gc-full') };
    t.same((await driver.findByIdentity(ref.owner.uid))?.tags, ['env:prod', 'web'], 'findable with its tags while still being created');
    await taskDone(driver, created);
    t.same((await driver.describe(ref.id)).tags, ['env:prod', 'web'], 'describe: sorted');

    const inactive = (await peer.virsh(['dumpxml', '--inactive', ref.id])).stdout;
    t.match(inactive, /<cputune>\s*<shares>512<\/shares>\s*<\/cputune>/, 'libvirt kept the shares');
    t.same(metadataTags(inactive), ['env:prod', 'web']);
    const ignitionVolume = `virtrigaud-${ref.owner.uid}-ignition.json`;
    const ignitionPath = await volumeFile(ignitionVolume);
    if (ignitionPath === undefined) throw new Error('no Ignition volume');
    t.match(inactive, new RegExp(`<sysinfo type='fwcfg'>\\s*<entry name='opt/com.coreos/config' file='${ignitionPath}'/>`), 'the fw_cfg entry names the volume');
    t.equal((await peer.exec(['cat', ignitionPath])).stdout, IGNITION, 'the volume holds the config byte for byte');
    t.equal((await peer.exec(['stat', '-c', '%a', ignitionPath])).stdout.trim(), '600', 'readable by its owner only');
    t.equal(await hostHas(['grep', '-rqF', SECRET, `${LIBVIRT_STATE}/tasks`, `${LIBVIRT_STATE}/logs`]), false, 'the config is in no task script and no log');
    t.equal(await hostHas(['sh', '-c', 'ls -d /tmp/virtrigaud-ignition.* >/dev/null 2>&1']), false, 'no temporary copy left');

    const seed = await volumeFile(`virtrigaud-${ref.owner.uid}-seed.iso`);
    if (seed === undefined) throw new Error('no seed');
    const metaData = execFileSync('isoinfo', ['-i', seed, '-R', '-x', '/meta-data'], { encoding: 'utf8' });
    t.match(metaData, `instance-id: ${ref.owner.uid}`, 'instance-id stays the driver');
    t.match(metaData, 'local-hostname: custom-host', "the user's hostname wins");
    t.match(metaData, 'region: eu-1', "the user's keys are added");

    await driver.power(ref, 'on');
    const qemu = (await peer.exec(['sh', '-c', 'ps -ww -eo args | grep -F -- "$1" | grep -v grep', 'sh', ref.id])).stdout;
    t.match(qemu, `-fw_cfg name=opt/com.coreos/config,file=${ignitionPath}`, 'QEMU hands the file to the guest');
    t.notMatch(qemu, SECRET, 'by path, never by content');
    t.match((await peer.virsh(['schedinfo', ref.id])).stdout, /cpu_shares\s*:\s*512/, 'the running domain has the shares');

    // Tags on the running domain: live and persistent at once, the identity untouched.
    const host = instrumentHost(t, peer);
    await driver.reconfigure(ref, { tags: ['db', 'env:prod'] });
    const running = await driver.describe(ref.id);
    t.equal(running.powerState, 'On');
    t.same(running.tags, ['db', 'env:prod'], 'describe reads the live definition');
    t.same(metadataTags((await peer.virsh(['dumpxml', '--inactive', ref.id])).stdout), ['db', 'env:prod'], 'and the persistent one has them');
    t.same((await driver.findByIdentity(ref.owner.uid))?.id, ref.id, 'still found by its identity');
    t.same(running.owner, ref.owner);
    t.equal(host.commands.filter((command) => command === 'virsh metadata').length, 1, 'one metadata write');
    await driver.reconfigure(ref, { tags: ['db', 'env:prod'] });
    t.equal(host.commands.filter((command) => command === 'virsh metadata').length, 1, 'the same tags again write nothing');
    await t.rejects(driver.reconfigure(ref, { cpus: 1, tags: ['ok', 'Not Valid'] }), { code: 'InvalidSpec' });
    t.same((await driver.describe(ref.id)).tags, ['db', 'env:prod'], 'a bad tag changes nothing');

    await driver.power(ref, 'off');
    await driver.reconfigure(ref, { tags: [] });
    const off = await driver.describe(ref.id);
    t.same(off.tags, [], 'all removed while off');
    t.same(metadataTags((await peer.virsh(['dumpxml', '--inactive', ref.id])).stdout), []);
    t.same(off.owner, ref.owner, 'the identity stays');

    await taskDone(driver, await driver.delete(ref));
    t.equal(await driver.findByIdentity(ref.owner.uid), undefined);
    t.equal(await volumeFile(ignitionVolume), undefined, 'the Ignition volume is gone with the VM');
    t.equal(await hostHas(['test', '-e', ignitionPath]), false, 'and its file');
  });

  t.test('a linked clone keeps the CPU shares but not the tags or the Ignition config; the frozen source keeps both', async (t) => {
    removeAfter(t, 'gc-source');
    removeAfter(t, 'gc-clone');
    const source = await driver.create(spec(peer, 'gc-source', { tags: ['golden'], limits: { cpuShares: 300 }, ignition: IGNITION }));
    await taskDone(driver, source);
    const clone = await driver.clone({ id: source.id, owner: owner('gc-source') }, { name: 'gc-clone', owner: owner('gc-clone'), linked: true });
    await taskDone(driver, clone);
    const copy = await driver.describe(clone.id);
    t.same(copy.tags, [], 'no tags inherited');
    const cloneXml = (await peer.virsh(['dumpxml', '--inactive', clone.id])).stdout;
    t.match(cloneXml, /<shares>300<\/shares>/, 'the shares are hardware: copied');
    t.notMatch(cloneXml, 'fwcfg', 'no Ignition config');
    t.same((await driver.describe(source.id)).tags, ['golden'], 'the source, redefined onto overlays, keeps its tags');
    t.match((await peer.virsh(['dumpxml', '--inactive', source.id])).stdout, "name='opt/com.coreos/config'", 'and its Ignition entry');
    await driver.reconfigure({ id: clone.id, owner: owner('gc-clone') }, { tags: ['copy'] });
    t.same((await driver.describe(clone.id)).tags, ['copy']);
    t.same((await driver.describe(source.id)).tags, ['golden'], 'tags are per VM');
  });

  t.test('CPU shares outside 2–10000 are InvalidSpec and limits without a libvirt mapping Unsupported, before anything exists', async (t) => {
    for (const shares of [1, 10_001, 2.5]) {
      await t.rejects(driver.create(spec(peer, 'gc-shares', { limits: { cpuShares: shares } })), { code: 'InvalidSpec', message: /CPU shares/ }, String(shares));
    }
    await t.rejects(driver.create(spec(peer, 'gc-limits', { limits: { cpuLimitMHz: 1000 } })), { code: 'Unsupported' });
    await t.rejects(driver.create(spec(peer, 'gc-limits', { limits: { memoryReservationBytes: GiB } })), { code: 'Unsupported' });
    await t.rejects(driver.create(spec(peer, 'gc-limits', { extraConfig: { a: 'b' } })), { code: 'Unsupported' });
    await t.rejects(driver.create(spec(peer, 'gc-tags', { tags: ['has space'] })), { code: 'InvalidSpec' });
    await t.rejects(driver.create(spec(peer, 'gc-ign', { ignition: 'variant: fcos\n' })), { code: 'InvalidSpec', message: /Ignition config is not JSON/ });
    for (const name of ['gc-shares', 'gc-limits', 'gc-tags', 'gc-ign']) t.equal(await driver.findByIdentity(owner(name).uid), undefined, `${name}: nothing defined`);
  });
}
