// Driver behaviour the conformance suite does not reach, against the real libvirtd over SSH:
// image import from a URL (downloaded on the host, checksum verified), guest shutdown and the
// destroy after its timeout, live vCPU hot-add, and the host features this CI host lacks, which
// must be refused as Unsupported before anything is created.
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import type { CreateSpec, Driver, Identity, Started } from '../../../src/contracts/driver.js';
import { GiB, MiB } from '../../../src/contracts/quantity.js';
import { libvirtPeer, waitFor, type LibvirtPeer } from '../../helpers/libvirt-peer.js';

t.setTimeout(300_000);

const owner = (name: string): Identity => ({ uid: `0d0e0f00-0000-4000-8000-${name.padEnd(12, '0').slice(0, 12)}`, namespace: 'driver-peer', name });

function spec(peer: LibvirtPeer, name: string, overrides: Partial<CreateSpec> = {}): CreateSpec {
  return {
    name,
    owner: owner(name),
    cpus: 1,
    memoryBytes: 256 * MiB,
    features: { tpm: false, secureBoot: false, nestedVirtualization: false, cpuHotAdd: false, memoryHotAdd: false },
    image: { kind: 'template', ref: peer.baseVolume, fullClone: false },
    disks: [{ name: 'root', sizeBytes: GiB, root: true }],
    storage: { provisioning: 'thin' },
    nics: [{ name: 'lan' }],
    placement: {},
    ...overrides,
  };
}

async function taskDone(driver: Driver, started: Started): Promise<void> {
  const task = started.task;
  if (task === undefined) return;
  await waitFor(async () => {
    const status = await driver.taskStatus(task);
    if (status.state === 'failed') throw new Error(`task failed: ${status.error ?? ''}`);
    return status.state === 'succeeded';
  }, 'task', 120_000);
}

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

  t.test('a URL image is downloaded on the host once, checksum verified', async (t) => {
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
    t.teardown(async () => {
      const volume = `virtrigaud-image-${createHash('sha256').update(url).digest('hex').slice(0, 24)}.qcow2`;
      await peer.virsh(['vol-delete', '--pool', peer.pool, volume]);
    });

    await t.rejects(driver.create(spec(peer, 'url-bad', { image: { kind: 'url', url, checksum: `sha256:${'0'.repeat(64)}`, fullClone: true } })), {
      code: 'InvalidSpec',
      message: /checksum mismatch/,
    });
    t.equal(await driver.findByIdentity(owner('url-bad').uid), undefined, 'nothing created on a mismatch');

    removeAfter(t, 'url-one');
    removeAfter(t, 'url-two');
    const first = await driver.create(spec(peer, 'url-one', { image: { kind: 'url', url, checksum: `sha256:${sha256}`, fullClone: true } }));
    const second = await driver.create(spec(peer, 'url-two', { image: { kind: 'url', url, checksum: `sha256:${sha256}`, fullClone: false } }));
    t.equal(downloads, 2, 'one download for the failed checksum, one for both VMs');
    t.equal((await driver.describe(first.id)).disks[0]?.sizeBytes, GiB, 'the full copy is grown to the class size');
    t.equal((await driver.describe(second.id)).disks[0]?.sizeBytes, GiB);
    await t.rejects(driver.create(spec(peer, 'url-404', { image: { kind: 'url', url: url.replace('tinyvm', 'missing'), fullClone: true } })), { code: 'InvalidSpec' });
  });

  t.test('a guest shutdown powers the tiny guest off; a guest that ignores it is destroyed after the timeout', async (t) => {
    removeAfter(t, 'shut-acpi');
    const vm = await driver.create(spec(peer, 'shut-acpi'));
    const ref = { id: vm.id, owner: owner('shut-acpi') };
    await driver.power(ref, 'on');
    // acpid starts late in the tiny guest's boot; the agent answering means init is done.
    await waitFor(async () => (await driver.describe(vm.id)).ips.length > 0, 'guest booted', 90_000);
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

  t.test('what this host lacks is Unsupported before anything is created', async (t) => {
    const none = { tpm: false, secureBoot: false, nestedVirtualization: false, cpuHotAdd: false, memoryHotAdd: false };
    const refused: [string, Partial<CreateSpec>, RegExp][] = [
      ['nested', { features: { ...none, nestedVirtualization: true } }, /nested virtualization needs KVM/],
      ['thick', { storage: { provisioning: 'thick' } }, /thick/],
      ['placed', { placement: { host: 'other' } }, /placement/],
    ];
    const caps = (await peer.virsh(['domcapabilities', '--virttype', 'qemu'])).stdout;
    if (!/<value>efi<\/value>/.test(caps)) refused.push(['uefi', { firmware: 'uefi' }, /UEFI firmware is not available/]);
    if (!/<tpm supported='yes'>[\s\S]*?emulator/.test(caps)) refused.push(['tpm', { features: { ...none, tpm: true } }, /TPM emulator is not available/]);
    for (const [name, overrides, message] of refused) {
      await t.rejects(driver.create(spec(peer, `unsup-${name}`, overrides)), { code: 'Unsupported', message }, name);
      t.equal(await driver.findByIdentity(owner(`unsup-${name}`).uid), undefined, `${name}: nothing defined`);
    }
    const volumes = (await peer.virsh(['vol-list', '--pool', peer.pool])).stdout;
    t.notMatch(volumes, 'unsup-', 'no volumes left behind');
  });
}
