// VMs from image URLs (ImageSpec kind `url`) against vcsim: the OVA or OVF is imported once into a
// template (OvfManager.CreateImportSpec, ImportVApp, the disk POSTed to the lease), then cloned.
// The image comes from a loopback server (ova-server.ts); the driver reaches vcsim through the NFC
// proxy (test/helpers/vcsim-nfc.ts), which records what each upload carried: vcsim itself throws
// uploaded bytes away.
import t, { type Test } from 'tap';
import type { CreateSpec, Driver, Identity, ObservedVM, TaskStatus } from '../../../src/contracts/driver.js';
import { vsphereDriverFromEnv } from '../../../src/hypervisors/vsphere/index.js';
import { urlImageNames } from '../../../src/hypervisors/vsphere/url-image.js';
import { basicSpec } from '../../conformance/driver-suite.js';
import { startNfcProxy } from '../../helpers/vcsim-nfc.js';
import { prepareTemplate, requireVcsim, startVcsim, vmsOwnedBy } from '../../helpers/vcsim.js';
import { DISK_FILE, startOvaServer } from './ova-server.js';

t.setTimeout(120_000);

const owner = (name: string): Identity => ({ uid: `0a7a0000-0000-4000-8000-${name.padEnd(12, '0').slice(0, 12)}`, namespace: 'images', name });

async function settled(driver: Driver, task: string): Promise<TaskStatus> {
  for (let round = 0; round < 1500; round++) {
    const status = await driver.taskStatus(task);
    if (status.state !== 'running' && status.state !== 'queued') return status;
    await new Promise((done) => setTimeout(done, 20));
  }
  throw new Error(`task ${task} still runs`);
}

/** As the hook does: follow each task, call create again until the VM is there and configured. */
async function createFromURL(driver: Driver, spec: CreateSpec): Promise<{ vm: ObservedVM; steps: number }> {
  for (let step = 1; step <= 6; step++) {
    const { id, task } = await driver.create(spec);
    if (task !== undefined) {
      const status = await settled(driver, task);
      if (status.state === 'failed') throw Object.assign(new Error(status.error), { code: status.errorCode });
    }
    const vm = id === '' ? await driver.findByIdentity(spec.owner.uid) : await driver.describe(id);
    if (vm !== undefined && !vm.incomplete && vm.lock === undefined) return { vm, steps: step };
  }
  throw new Error('create did not complete');
}

async function setup(t: Test) {
  const vcsim = await startVcsim(t);
  await prepareTemplate(vcsim);
  const proxy = await startNfcProxy(t, vcsim);
  const driver = vsphereDriverFromEnv(proxy.env, { leaseTiming: { pollMs: 20, keepAliveMs: 50 } });
  t.teardown(() => driver.close());
  const images = await startOvaServer(t);
  const spec = (name: string, image: { url: string; checksum?: string }) =>
    basicSpec(name, owner(name), { image: { kind: 'url', ...image, fullClone: true }, nics: [{ name: 'lan', network: 'VM Network' }] });
  return { vcsim, proxy, driver, images, spec };
}

if (requireVcsim(t)) {
  t.test('an OVA is imported once into a template, its disk uploaded as served, and every VM of the same URL and checksum is cloned from it', async (t) => {
    const { vcsim, proxy, driver, images, spec } = await setup(t);
    const image = { url: images.url('tiny.ova'), checksum: images.ovaChecksum };
    const first = await createFromURL(driver, spec('from-ova', image));
    t.equal(first.steps, 2, 'the import task, then the clone');
    t.same(first.vm.owner, owner('from-ova'));
    t.match(first.vm.nics, [{ name: 'lan', network: 'VM Network' }], "the spec's NIC on an image that had none");
    t.ok(first.vm.disks.some((disk) => disk.name === 'root'), 'the root disk from the image');
    const uploads = proxy.uploads.filter((upload) => upload.path.endsWith('.vmdk'));
    t.equal(uploads.length, 1, 'one disk uploaded');
    t.match(uploads[0], { method: 'POST', bytes: images.diskBytes, sha256: images.diskSha256, contentType: 'application/x-vnd.vmware-streamVmdk' }, 'the disk as the OVA carried it');
    const names = urlImageNames(image.url, image.checksum);
    t.equal((await vcsim.govc('object.collect', '-s', `/DC0/vm/${names.final}`, 'config.template')).trim(), 'true', 'the image is a template');

    const second = await createFromURL(driver, spec('from-ova-2', image));
    t.equal(second.steps, 1, 'the template is there: cloned at once');
    t.not(second.vm.id, first.vm.id);
    t.same(images.requests.filter((path) => path === '/tiny.ova'), ['/tiny.ova'], 'downloaded once');
    t.equal((await vcsim.govc('find', '/DC0/vm', '-name', 'vr-imag*')).trim().split('\n').length, 1, 'one template');
    t.notOk(images.requests.some((path) => path.includes('?')), 'nothing but the path was asked');
  });

  t.test('an OVF with its disk beside it is imported the same way; credentials in the URL go as Basic authentication', async (t) => {
    const { driver, images, spec } = await setup(t);
    const url = images.url('tiny.ovf').replace('http://', 'http://reader:not-shown@');
    const { vm } = await createFromURL(driver, spec('from-ovf', { url }));
    t.same(vm.owner, owner('from-ovf'));
    t.same(images.requests, ['/tiny.ovf', `/${DISK_FILE}`]);
    const basic = `Basic ${Buffer.from('reader:not-shown').toString('base64')}`;
    t.same(images.authorizations, [basic, basic]);
  });

  t.test('an image that does not match its checksum, or is not there, fails its task as InvalidSpec and leaves nothing; a bad checksum is refused at once', async (t) => {
    const { vcsim, proxy, driver, images, spec } = await setup(t);
    const wrong = `sha256:${'0'.repeat(64)}`;
    await t.rejects(createFromURL(driver, spec('mismatch', { url: images.url('tiny.ova'), checksum: wrong })), { code: 'InvalidSpec', message: /the image OVA does not match its checksum/ });
    t.ok(proxy.uploads.some((upload) => upload.path.endsWith('.vmdk')), 'checked as it streamed: the disk went up before the end');
    await t.rejects(createFromURL(driver, spec('missing', { url: images.url('missing.ova') })), { code: 'InvalidSpec', message: /answered HTTP 404/ });
    await t.rejects(driver.create(spec('bad-sum', { url: images.url('tiny.ova'), checksum: 'md5:abc' })), { code: 'InvalidSpec', message: /checksum must be/ });
    await t.rejects(driver.create(spec('bad-url', { url: 'ftp://127.0.0.1/tiny.ova' })), { code: 'InvalidSpec', message: /http or https only/ });
    t.equal((await vcsim.govc('find', '/DC0/vm', '-name', 'vr-imag*')).trim(), '', 'no template, no half-imported VM');
    for (const name of ['mismatch', 'missing', 'bad-sum', 'bad-url']) t.same(await vmsOwnedBy(vcsim, owner(name).uid), [], `no VM for ${name}`);
  });
}
