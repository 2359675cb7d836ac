// VMs installed from an ISO on Proxmox VE (isoInstall): a blank VM with empty disks of the spec's
// sizes and the ISO in its CD-ROM drive, booting from it first; the ISO one PVE has, or one it
// downloads (once per URL and checksum) into a storage with `iso` content.

import t from 'tap';
import type { CreateSpec, Identity, ImageSpec } from '../../../src/contracts/driver.js';
import { GiB, MiB } from '../../../src/contracts/quantity.js';
import { basicSpec } from '../../conformance/driver-suite.js';
import { createVM, fakeCluster, owner } from './fake-pve.js';
import { imageServer, sha256 } from './image-server.js';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq0b3BlcmF0b3Ita2V5LWZvci10ZXN0aW5nLW9ubHk operator@k8s';

function isoSpec(name: string, me: Identity, image: ImageSpec, overrides: Partial<CreateSpec> = {}): CreateSpec {
  return basicSpec(name, me, {
    image,
    disks: [{ name: 'root', sizeBytes: 8 * GiB, root: true }, { name: 'data', sizeBytes: 2 * GiB, root: false }],
    ...overrides,
  });
}

t.test('a VM installed from an ISO on a storage has empty disks of the spec, the ISO as CD-ROM and boots from it first', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  cluster.fake.addVolume('local', 'iso/debian-12.7.0-amd64-netinst.iso', 600 * MiB);
  const me = owner('i1', 'installer');
  const spec = isoSpec('installer', me, { kind: 'iso', ref: 'local:iso/debian-12.7.0-amd64-netinst.iso' }, {
    nics: [{ name: 'lan', staticIP: { address: '10.0.0.5/24', gateway: '10.0.0.1' } }],
    userData: ['#cloud-config', 'users:', '  - name: admin', '    ssh_authorized_keys:', `      - ${KEY}`].join('\n'),
  });
  const before = cluster.fake.requests.length;
  const first = await driver.create(spec);
  t.ok(first.id !== '' && first.task !== undefined, 'the VM at once: the ISO is there');
  const firstStep = cluster.fake.requests.length - before;
  const id = await createVM(cluster, driver, spec);
  t.equal(id, first.id);
  t.match(cluster.calls('POST', /^\/nodes\/[^/]+\/qemu$/)[0]?.params, {
    scsi0: 'local-lvm:8',
    scsi1: 'local-lvm:2',
    ide2: 'local:iso/debian-12.7.0-amd64-netinst.iso,media=cdrom',
  });
  const config = cluster.fake.vm(Number(id))?.config ?? {};
  t.equal(config['boot'], 'order=ide2;scsi0;scsi1', 'the CD-ROM first, then the boot disk');
  t.match(String(config['ide0']), /^local-lvm:vm-\d+-cloudinit,media=cdrom/, 'a cloud-init drive beside the ISO');
  t.equal(config['ipconfig0'], 'ip=10.0.0.5/24,gw=10.0.0.1');
  const vm = await driver.describe(id);
  t.same(vm.owner, me);
  t.notOk(vm.incomplete);
  t.match(vm.disks, [{ name: 'root', sizeBytes: 8 * GiB }, { name: 'data', sizeBytes: 2 * GiB }]);
  t.same(cluster.calls('POST', /\/download-url$/), [], 'nothing downloaded');
  t.ok(firstStep <= 10, `first step: ${firstStep} PVE requests`);
});

t.test('an ISO no storage lists is InvalidSpec, and no VM is made', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const vms = cluster.fake.vms().length;
  for (const ref of ['local:iso/missing.iso', 'nowhere:iso/missing.iso']) {
    await t.rejects(driver.create(isoSpec('lost', owner('i2'), { kind: 'iso', ref })), { code: 'InvalidSpec', message: `ISO '${ref}' not found: no storage lists it with content type iso` });
  }
  await t.rejects(driver.create(isoSpec('lost', owner('i2'), { kind: 'iso', ref: 'local:images/x.qcow2' })), { code: 'InvalidSpec', message: /not an ISO volume/ });
  await t.rejects(driver.create(isoSpec('lost', owner('i2'), { kind: 'iso' })), { code: 'InvalidSpec', message: /exactly one of ref/ });
  t.equal(cluster.fake.vms().length, vms);
  t.same(cluster.calls('POST', /^\/nodes\/[^/]+\/qemu$/), []);
});

t.test('an ISO from a URL is downloaded once into an iso storage, verified, then the VM is made from it', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  const iso = Buffer.from('CD001'.repeat(1000));
  const server = await imageServer(t, { '/alpine-virt-3.20.3-x86_64.iso': iso });
  const image: ImageSpec = { kind: 'iso', url: `${server.url}/alpine-virt-3.20.3-x86_64.iso`, checksum: `sha256:${sha256(iso)}` };
  const me = owner('i3', 'alpine');

  const first = await driver.create(isoSpec('alpine', me, image));
  t.equal(first.id, '');
  t.match(first.task, /:download:vr-iso-[0-9a-f]{16}-alpine-virt-3-20-3-x86_64\.iso:/);
  t.match(cluster.calls('POST', /\/download-url$/)[0]?.params, { content: 'iso', 'checksum-algorithm': 'sha256', checksum: sha256(iso) });
  const id = await createVM(cluster, driver, isoSpec('alpine', me, image));
  t.match(cluster.fake.vm(Number(id))?.config, { ide2: /^local:iso\/vr-iso-[0-9a-f]{16}-alpine-virt-3-20-3-x86_64\.iso,media=cdrom/, boot: 'order=ide2;scsi0;scsi1' });

  const again = await driver.create(isoSpec('alpine2', owner('i4', 'alpine2'), image));
  t.not(again.id, '', 'the second VM uses the ISO at once');
  t.equal(cluster.calls('POST', /\/download-url$/).length, 1, 'one download');
  t.equal(server.hits.get('/alpine-virt-3.20.3-x86_64.iso'), 1);
});

t.test('an ISO VM with a boot order of its own keeps it', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  cluster.fake.addVolume('local', 'iso/installer.iso', 10 * MiB);
  const spec = isoSpec('ordered', owner('i5'), { kind: 'iso', ref: 'local:iso/installer.iso' }, { settings: { bootOrder: ['disk', 'cdrom'] } });
  const id = await createVM(cluster, driver, spec);
  t.equal(cluster.fake.vm(Number(id))?.config['boot'], 'order=scsi0;ide2');
});
