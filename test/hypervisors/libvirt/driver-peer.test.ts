// Driver behaviour the conformance suite does not reach, against the real libvirtd over SSH:
// image import from a URL (downloaded on the host by a task, checksum verified), full copies as
// host tasks that retries join, "cannot see" (libvirtd refusing us, an inactive pool) never read
// as "gone", guest shutdown and the destroy after its timeout, live vCPU hot-add, and the host
// features this CI host lacks, which must be refused as Unsupported before anything is created.
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import t, { type Test } from 'tap';
import type { CreateSpec, Driver, Identity } from '../../../src/contracts/driver.js';
import { GiB, MiB } from '../../../src/contracts/quantity.js';
import { importedVolume, isoVolume } from '../../../src/hypervisors/libvirt/images.js';
import { runtimeDriverFromEnv } from '../../../src/hypervisors/runtime-drivers.js';
import { LIBVIRT_STATE, instrumentHost, type LibvirtPeer, libvirtPeer, peerSpec, taskDone, taskSettled, tasksOf, waitFor } from '../../helpers/libvirt-peer.js';

t.setTimeout(300_000);

const owner = (name: string): Identity => ({ uid: `0d0e0f00-0000-4000-8000-${name.padEnd(12, '0').slice(0, 12)}`, namespace: 'driver-peer', name });

const spec = (peer: LibvirtPeer, name: string, overrides: Partial<CreateSpec> = {}): CreateSpec => peerSpec(peer, name, owner(name), { memoryBytes: 256 * MiB, ...overrides });

const peer = await libvirtPeer(t);
if (peer) {
  t.teardown(() => peer.close());
  const driver = peer.driver();
  t.teardown(() => driver.close());
  const removeAfter = (t: Test, name: string, who = driver) =>
    t.teardown(async () => {
      const vm = await who.findByIdentity(owner(name).uid);
      if (vm) await taskDone(who, await who.delete({ id: vm.id, owner: owner(name) }));
    });

  t.test('a URL image is downloaded on the host once, by a task, checksum verified', async (t) => {
    const poolPath = (await peer.virsh(['vol-path', '--pool', peer.pool, peer.baseVolume])).stdout.trim();
    const image = readFileSync(poolPath);
    const sha256 = createHash('sha256').update(image).digest('hex');
    let downloads = 0;
    const server = createServer((request, response) => {
      downloads++;
      if (new URL(request.url ?? '/', 'http://x').pathname !== '/tinyvm.qcow2') return void response.writeHead(404).end();
      response.writeHead(200, { 'content-length': image.length });
      createReadStream(poolPath).pipe(response);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/tinyvm.qcow2?run=${process.pid}-${Date.now()}`;
    t.teardown(async () => void (await peer.virsh(['vol-delete', '--pool', peer.pool, importedVolume(url)])));

    // A wrong checksum: the VM is defined (its identity findable at once), its download task fails
    // as InvalidSpec, and it waits, incomplete, for a corrected spec.
    removeAfter(t, 'url-bad');
    const bad = spec(peer, 'url-bad', { image: { kind: 'url', url, checksum: `sha256:${'0'.repeat(64)}`, fullClone: true } });
    const refused = await driver.create(bad);
    t.equal((await driver.findByIdentity(owner('url-bad').uid))?.id, refused.id);
    t.match(await taskSettled(driver, refused.task), { state: 'failed', errorCode: 'InvalidSpec', error: /checksum mismatch/ });
    t.match(await driver.describe(refused.id), { incomplete: true }, 'waits for a corrected spec');
    t.equal((await peer.virsh(['vol-info', '--pool', peer.pool, importedVolume(url)])).code, 1, 'nothing imported');
    const partials = (await peer.exec(['sh', '-c', 'ls -a "$(dirname "$1")"', 'sh', poolPath])).stdout;
    t.notMatch(partials, '.virtrigaud-download.', 'no partial download left');
    // Corrected: create continues the same VM with the spec it is given now.
    const fixed = await driver.create({ ...bad, image: { kind: 'url', url, checksum: `sha256:${sha256}`, fullClone: true } });
    t.equal(fixed.id, refused.id, 'the same VM');
    t.same(await taskSettled(driver, fixed.task), { state: 'succeeded' });
    t.equal((await driver.describe(fixed.id)).disks[0]?.sizeBytes, GiB, 'the full copy is grown to the class size');

    removeAfter(t, 'url-two');
    const second = await driver.create(spec(peer, 'url-two', { image: { kind: 'url', url, checksum: `sha256:${sha256}`, fullClone: false } }));
    await taskDone(driver, second);
    t.equal(downloads, 2, 'one download for the failed checksum, one for both VMs');
    t.equal((await driver.describe(second.id)).disks[0]?.sizeBytes, GiB);

    removeAfter(t, 'url-404');
    const missing = await driver.create(spec(peer, 'url-404', { image: { kind: 'url', url: url.replace('tinyvm', 'missing'), fullClone: true } }));
    t.match(await taskSettled(driver, missing.task), { state: 'failed', errorCode: 'InvalidSpec', error: /404/ });
  });

  t.test('an ISO install: empty disks, the ISO (a volume, or a URL fetched once, checksum verified) booted before the root disk', async (t) => {
    // A tiny data ISO made with the peer's seed tool: it boots nothing, SeaBIOS then tries the disk.
    const iso = `virtrigaud-test-installer-${process.pid}.iso`;
    const isoPath = `${dirname((await peer.virsh(['vol-path', '--pool', peer.pool, peer.baseVolume])).stdout.trim())}/${iso}`;
    const made = await peer.exec(['sh', '-c', 'd=$(mktemp -d) && echo installer >"$d/README" && genisoimage -quiet -V INSTALLER -o "$1" "$d" && rm -rf "$d"', 'sh', isoPath]);
    t.equal(made.code, 0, made.stderr);
    await peer.virsh(['pool-refresh', peer.pool]);
    t.teardown(async () => void (await peer.virsh(['vol-delete', '--pool', peer.pool, iso])));

    removeAfter(t, 'iso-ref');
    const fromRef = await driver.create(spec(peer, 'iso-ref', { image: { kind: 'iso', ref: iso }, userData: '#cloud-config\n{}\n' }));
    await taskDone(driver, fromRef);
    const vm = await driver.describe(fromRef.id);
    t.match(vm.disks, [{ name: 'root', sizeBytes: GiB }], 'the root disk is empty, of the asked size');
    const allocated = (await peer.virsh(['vol-info', '--pool', peer.pool, '--vol', `virtrigaud-${owner('iso-ref').uid}-root.qcow2`, '--bytes'])).stdout;
    t.ok(Number(/^Allocation:\s+(\d+)/m.exec(allocated)?.[1]) < 1024 * 1024, 'and holds no image');
    const xml = (await peer.virsh(['dumpxml', fromRef.id])).stdout;
    t.match(xml, new RegExp(`<source file='${isoPath}'[^]*?<target dev='sdb' bus='sata'/>[^]*?<boot order='1'/>`), 'the ISO, booted first');
    t.match(xml, /<target dev='vda' bus='virtio'\/>\s*<boot order='2'\/>/, 'then the root disk');
    t.match(xml, /virtrigaud-[^']*-seed\.iso'/, 'beside the cloud-init seed');
    await driver.power({ id: fromRef.id, owner: owner('iso-ref') }, 'on');
    t.equal((await driver.describe(fromRef.id)).powerState, 'On', 'QEMU takes the domain');
    await driver.power({ id: fromRef.id, owner: owner('iso-ref') }, 'off');

    const bytes = readFileSync(isoPath);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    let downloads = 0;
    const server = createServer((_request, response) => {
      downloads++;
      response.writeHead(200, { 'content-length': bytes.length }).end(bytes);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/installer.iso?run=${process.pid}-${Date.now()}`;
    const checksum = `sha256:${sha256}`;
    t.teardown(async () => void (await peer.virsh(['vol-delete', '--pool', peer.pool, isoVolume(url, checksum)])));
    removeAfter(t, 'iso-url');
    const bad = await driver.create(spec(peer, 'iso-url', { image: { kind: 'iso', url, checksum: `sha256:${'0'.repeat(64)}` } }));
    t.match(await taskSettled(driver, bad.task), { state: 'failed', errorCode: 'InvalidSpec', error: /checksum mismatch/ });
    const fixed = await driver.create(spec(peer, 'iso-url', { image: { kind: 'iso', url, checksum } }));
    t.equal(fixed.id, bad.id, 'a corrected checksum continues the same VM');
    await taskDone(driver, fixed);
    removeAfter(t, 'iso-url2');
    await taskDone(driver, await driver.create(spec(peer, 'iso-url2', { image: { kind: 'iso', url, checksum } })));
    t.equal(downloads, 2, 'one download for the bad checksum, one for both VMs');
    const kept = (await peer.exec(['sha256sum', `${dirname(isoPath)}/${isoVolume(url, checksum)}`])).stdout;
    t.match(kept, sha256, 'kept byte for byte (not converted)');
  });

  t.test('a VLAN NIC joins the Open vSwitch network as an access port of its VLAN; a firewall is refused there', async (t) => {
    const vlanNetwork = /^LIBVIRT_VLAN_NETWORK=(.+)$/m.exec(readFileSync(`${LIBVIRT_STATE}/env`, 'utf8'))?.[1];
    if (vlanNetwork === undefined) throw new Error('the peer has no Open vSwitch network (re-run test/libvirt/setup.sh)');
    const switched = peer.driver(undefined, { LIBVIRT_VLAN_NETWORK: vlanNetwork });
    t.teardown(() => switched.close());
    await switched.probe();
    t.equal(switched.capabilities.vlan, true, 'Open vSwitch answers: VLANs claimed');
    removeAfter(t, 'vlan-ovs', switched);
    const created = await switched.create(spec(peer, 'vlan-ovs', { nics: [{ name: 'lan', vlan: 100, mtu: 1400 }] }));
    await taskDone(switched, created);
    t.match((await switched.describe(created.id)).nics, [{ name: 'lan', network: vlanNetwork, vlan: 100, mtu: 1400 }]);
    // Running, it has its port on the switch (an empty disk is enough: nothing needs to boot).
    await switched.power({ id: created.id, owner: owner('vlan-ovs') }, 'on');
    const port = /^\s*(\S+)\s/m.exec((await peer.virsh(['domiflist', created.id])).stdout)?.[1] ?? '';
    t.equal((await peer.exec(['ovs-vsctl', 'get', 'port', port, 'tag'])).stdout.trim(), '100', `port ${port} is tagged 100`);
    const trace = async (vlan: string) =>
      (await peer.exec(['ovs-appctl', '-t', `${LIBVIRT_STATE}/run/ovs-vswitchd.ctl`, 'ofproto/trace', 'vrovs0', `in_port=LOCAL,dl_src=02:00:00:00:00:01,dl_dst=ff:ff:ff:ff:ff:ff${vlan}`])).stdout;
    t.match(await trace(''), /Datapath actions: drop/, 'an untagged broadcast does not reach it');
    t.match(await trace(',dl_vlan=100'), /Datapath actions: pop_vlan,\d+/, 'one on VLAN 100 does, untagged');
    await t.rejects(switched.create(spec(peer, 'vlan-fw', { nics: [{ name: 'lan', vlan: 100, firewall: true }] })), { code: 'InvalidSpec', message: /nwfilter firewall does not apply/ });
    t.equal(await switched.findByIdentity(owner('vlan-fw').uid), undefined, 'nothing made');
  });

  t.test('a full copy is one host task: callers that retry, on any replica or after a restart, join it', async (t) => {
    const host = instrumentHost(t, peer);
    // Large enough to be a real copy, small enough to cost a second or two.
    const base = `virtrigaud-test-big-${process.pid}.qcow2`;
    const path = `${dirname((await peer.virsh(['vol-path', '--pool', peer.pool, peer.baseVolume])).stdout.trim())}/${base}`;
    const made = await peer.exec(['sh', '-c', 'qemu-img create -q -f qcow2 -o compat=1.1 "$1" 256M && qemu-io -f qcow2 -c "write -P 90 0 256M" "$1" >/dev/null', 'sh', path]);
    t.equal(made.code, 0, made.stderr);
    await peer.virsh(['pool-refresh', peer.pool]);
    t.teardown(async () => void (await peer.virsh(['vol-delete', '--pool', peer.pool, base])));
    removeAfter(t, 'full-copy');
    const full = spec(peer, 'full-copy', { image: { kind: 'template', ref: base, fullClone: true } });

    const release = await host.hold();
    const first = await driver.create(full, { signal: AbortSignal.timeout(60_000) });
    t.match(first.task, /^libvirt-create-/, 'answered with the task at once');
    t.match(await driver.describe(first.id), { lock: 'create' }, 'the VM is locked while its disks are made');
    const other = peer.driver();
    t.teardown(() => other.close());
    t.same(await other.create(full), first, 'a retry on another replica joins the running task');
    await other.close();
    const restarted = peer.driver();
    t.teardown(() => restarted.close());
    t.same(await restarted.create(full), first, 'so does a restarted runtime');
    await release();
    t.same(await taskSettled(restarted, first.task), { state: 'succeeded' });
    const vm = await restarted.describe(first.id);
    t.equal(vm.incomplete, undefined);
    t.equal(vm.lock, undefined);
    t.equal(vm.disks[0]?.sizeBytes, GiB, 'copied and grown');
    t.same(await restarted.create(full), { id: first.id }, 'a complete VM: nothing left to do');
    t.equal(host.commands.filter((command) => command.endsWith(' copy')).length, 1, 'one copy started');
    t.same((await tasksOf(peer, first.id)).length, 1, 'one task on the host');
  });

  t.test('a host that does not answer for libvirt is "cannot see", never "no such VM"', async (t) => {
    const login = peer.passwordLogin;
    if (!login) throw new Error('the peer has no password login (re-run test/libvirt/setup.sh)');
    // This user logs in over SSH, but libvirtd refuses it: every virsh fails to connect.
    const { LIBVIRT_SSH_PRIVATE_KEY: _key, ...withoutKey } = peer.env;
    const blind = peer.driver(undefined, { ...withoutKey, LIBVIRT_URI: `qemu+ssh://${login.username}@127.0.0.1:${new URL(peer.env['LIBVIRT_URI'] ?? '').port}/system`, LIBVIRT_PASSWORD: login.password });
    t.teardown(() => blind.close());
    await t.rejects(blind.findByIdentity(owner('nobody').uid), { code: 'Unreachable' }, 'not undefined');
    await t.rejects(blind.describe('0d0e0f00-0000-4000-8000-000000000000'), { code: 'Unreachable' }, 'not NotFound');
    // The task records are root's: this user cannot read them, which is not "no such task".
    await t.rejects(blind.taskStatus('libvirt-delete-0d0e0f00-0000-4000-8000-000000000000'), { code: 'Unreachable', message: /cannot be read/ });
  });

  t.test('a VM on an inactive storage pool is "cannot see": describe and findByIdentity are Unreachable', async (t) => {
    const pool = `virtrigaud-test-${process.pid}`;
    const dir = `${dirname((await peer.virsh(['vol-path', '--pool', peer.pool, peer.baseVolume])).stdout.trim())}-${pool}`;
    const basePath = (await peer.virsh(['vol-path', '--pool', peer.pool, peer.baseVolume])).stdout.trim();
    t.equal((await peer.virsh(['pool-define-as', pool, 'dir', '--target', dir])).code, 0);
    await peer.virsh(['pool-build', pool]);
    t.equal((await peer.virsh(['pool-start', pool])).code, 0);
    const other = peer.driver(undefined, { LIBVIRT_STORAGE_POOL: pool });
    t.teardown(async () => {
      await peer.virsh(['pool-start', pool]);
      const vm = await other.findByIdentity(owner('pool-off').uid).catch(() => undefined);
      if (vm) await taskDone(other, await other.delete({ id: vm.id, owner: owner('pool-off') }));
      await other.close();
      await peer.virsh(['pool-destroy', pool]);
      await peer.virsh(['pool-delete', pool]);
      await peer.virsh(['pool-undefine', pool]);
    });
    const created = await other.create(spec(peer, 'pool-off', { image: { kind: 'template', ref: basePath, fullClone: false } }));
    await taskDone(other, created);
    t.equal((await other.describe(created.id)).disks[0]?.sizeBytes, GiB);
    t.equal((await peer.virsh(['pool-destroy', pool])).code, 0);
    await t.rejects(other.describe(created.id), { code: 'Unreachable', message: /not active/ }, 'not an empty disk to grow');
    await t.rejects(other.findByIdentity(owner('pool-off').uid), { code: 'Unreachable' }, 'not undefined');
    await t.rejects(other.resizeDisk({ id: created.id, owner: owner('pool-off') }, 'root', 2 * GiB), { code: 'Unreachable' });
    await peer.virsh(['pool-start', pool]);
    t.equal((await other.describe(created.id)).disks[0]?.sizeBytes, GiB, 'seen again once the pool is back');
  });

  t.test('a guest shutdown powers the tiny guest off, suspended or not; a guest that ignores it is destroyed after the timeout', async (t) => {
    removeAfter(t, 'shut-acpi');
    // Its NIC with an MTU and the firewall: the guest still gets its address through them.
    const vm = await driver.create(spec(peer, 'shut-acpi', { nics: [{ name: 'lan', mtu: 1400, firewall: true }] }));
    await taskDone(driver, vm);
    const ref = { id: vm.id, owner: owner('shut-acpi') };
    await driver.power(ref, 'on');
    // acpid starts late in the tiny guest's boot; the agent answering means init is done.
    await waitFor(async () => (await driver.describe(vm.id)).ips.length > 0, 'guest booted', 90_000);
    t.match((await driver.describe(vm.id)).nics[0], { mtu: 1400, firewall: true });
    const tap = /^\s*(\S+)\s+network\s/m.exec((await peer.virsh(['domiflist', vm.id])).stdout)?.[1] ?? '';
    t.match((await peer.exec(['ip', 'link', 'show', tap])).stdout, / mtu 1400 /, `the host's tap device ${tap} has the MTU`);
    // libvirt builds a filter's chains as J- and renames them I- once applied; it rebuilds them when
    // clean-traffic learns the guest's address, so either name may be there at this moment.
    t.match((await peer.exec(['ebtables', '-t', 'nat', '-L'])).stdout, new RegExp(`-j libvirt-[IJ]-${tap}\\b`), 'and goes through the nwfilter');
    await driver.power(ref, 'suspend');
    t.equal((await driver.describe(vm.id)).powerState, 'Suspended');
    await taskDone(driver, await driver.power(ref, 'shutdown'));
    t.equal((await driver.describe(vm.id)).powerState, 'Off');
    t.match((await peer.virsh(['domstate', '--reason', vm.id])).stdout, /shut off \(shutdown\)/, 'the guest shut itself down');

    // An empty disk: SeaBIOS finds nothing to boot, nothing answers ACPI.
    const quick = peer.driver(undefined, { LIBVIRT_SHUTDOWN_TIMEOUT: '3' });
    t.teardown(() => quick.close());
    removeAfter(t, 'shut-deaf', quick);
    const blank = `virtrigaud-test-blank-${process.pid}.qcow2`;
    await peer.virsh(['vol-create-as', '--pool', peer.pool, '--name', blank, '--capacity', '16M', '--format', 'qcow2']);
    t.teardown(async () => void (await peer.virsh(['vol-delete', '--pool', peer.pool, blank])));
    const deaf = await quick.create(spec(peer, 'shut-deaf', { image: { kind: 'template', ref: blank, fullClone: false } }));
    await taskDone(quick, deaf);
    const deafRef = { id: deaf.id, owner: owner('shut-deaf') };
    await quick.power(deafRef, 'on');
    await taskDone(quick, await quick.power(deafRef, 'shutdown'));
    t.equal((await quick.describe(deaf.id)).powerState, 'Off');
    t.match((await peer.virsh(['domstate', '--reason', deaf.id])).stdout, /shut off \(destroyed\)/, 'destroyed after the timeout');
  });

  t.test('vCPUs are hot-added to a running VM up to its maximum; beyond that the change waits for a restart', async (t) => {
    removeAfter(t, 'hotadd');
    const hot = spec(peer, 'hotadd', { features: { tpm: false, secureBoot: false, nestedVirtualization: false, cpuHotAdd: true, memoryHotAdd: false } });
    const vm = await driver.create(hot);
    await taskDone(driver, vm);
    const ref = { id: vm.id, owner: owner('hotadd') };
    t.equal((await driver.describe(vm.id)).features.cpuHotAdd, true);
    await driver.power(ref, 'on');
    await driver.reconfigure(ref, { cpus: 2 });
    t.equal((await driver.describe(vm.id)).cpus, 2, 'applied live');
    await driver.reconfigure(ref, { cpus: 3 });
    t.equal((await driver.describe(vm.id)).cpus, 2, 'above the maximum: still 2 while running (pending restart)');
    await driver.power(ref, 'off');
    t.equal((await driver.describe(vm.id)).cpus, 3, 'the definition has 3 for the next boot');
  });

  t.test('probe narrows the capabilities to this host; a runtime probes once as it builds the driver', async (t) => {
    const fresh = peer.driver();
    t.teardown(() => fresh.close());
    t.equal(fresh.capabilities.uefi, true, 'the driver-type defaults before a probe');
    await fresh.probe();
    const caps = (await peer.virsh(['domcapabilities', '--virttype', 'qemu'])).stdout;
    t.equal(fresh.capabilities.uefi, /<enum name='firmware'>\s*<value>efi/.test(caps), 'UEFI as domcapabilities says');
    t.match(fresh.capabilities, { nestedVirtualization: false, cloudInit: true, nicMTU: true, nicFirewall: true, suspend: true, hardReset: true }, 'type qemu never nests; the seed tool and nwfilter are there');
    const runtime = runtimeDriverFromEnv('libvirt', peer.env);
    t.teardown(() => runtime.close?.());
    await waitFor(async () => runtime.capabilities.nestedVirtualization === false, 'the runtime driver probed');
  });

  t.test('what this host lacks is Unsupported before anything is created', async (t) => {
    const none = { tpm: false, secureBoot: false, nestedVirtualization: false, cpuHotAdd: false, memoryHotAdd: false };
    const refused: [string, Partial<CreateSpec>, RegExp][] = [
      ['nested', { features: { ...none, nestedVirtualization: true } }, /nested virtualization needs KVM/],
      ['thick', { storage: { provisioning: 'thick' } }, /thick/],
      ['placed', { placement: { host: 'other' } }, /placement/],
      // This kernel has no sch_sfq or act_police, which libvirt's <bandwidth> needs.
      ['ratelimit', { nics: [{ name: 'lan', rateLimitMBps: 10 }] }, /rate limit on NIC 'lan'/],
    ];
    const caps = (await peer.virsh(['domcapabilities', '--virttype', 'qemu'])).stdout;
    if (!/<value>efi<\/value>/.test(caps)) refused.push(['uefi', { firmware: 'uefi' }, /UEFI firmware is not available/]);
    if (!/<tpm supported='yes'>[\s\S]*?emulator/.test(caps)) refused.push(['tpm', { features: { ...none, tpm: true } }, /TPM emulator is not available/]);
    for (const [name, overrides, message] of refused) {
      await t.rejects(driver.create(spec(peer, `unsup-${name}`, overrides)), { code: 'Unsupported', message }, name);
      t.equal(await driver.findByIdentity(owner(`unsup-${name}`).uid), undefined, `${name}: nothing defined`);
    }
    // libvirt would take the tag and fail the VM's start ("vlan tag not supported for this connection type").
    await t.rejects(driver.create(spec(peer, 'unsup-vlan', { nics: [{ name: 'lan', vlan: 100 }] })), { code: 'InvalidSpec', message: /network virtrigaud-ci is not Open vSwitch/ });
    t.equal(await driver.findByIdentity(owner('unsup-vlan').uid), undefined, 'VLAN on a NAT network: nothing defined');
    const volumes = (await peer.virsh(['vol-list', '--pool', peer.pool])).stdout;
    t.notMatch(volumes, 'unsup-', 'no volumes left behind');
  });
}
