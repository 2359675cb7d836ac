// The pure parts of the vSphere disk transfers, and the NFC connection against local servers:
// names of imported templates, the lease's device URLs, the import spec, local transfer tasks,
// the streamOptimized check, and the TLS rule for device URLs on other hosts (a thumbprint vSphere
// named is trusted). The transfers themselves run against vcsim in disk-transfer-vcsim.test.ts.
import { execFile, execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { HypervisorError, NotFoundError } from '../../../src/contracts/driver.js';
import { vsphereConfigFromEnv } from '../../../src/hypervisors/vsphere/config.js';
import { errorFromFault } from '../../../src/hypervisors/vsphere/errors.js';
import { deviceKeySuffix, exportedDevice } from '../../../src/hypervisors/vsphere/export.js';
import { bearsPlaceholder, placeholderOwner } from '../../../src/hypervisors/vsphere/identity.js';
import { importSpec } from '../../../src/hypervisors/vsphere/import.js';
import { importNames } from '../../../src/hypervisors/vsphere/imported.js';
import { leaseLost, readLeaseInfo } from '../../../src/hypervisors/vsphere/nfc.js';
import { NfcConnection, deviceURL, thumbprintMatches } from '../../../src/hypervisors/vsphere/nfc-http.js';
import { Transfers, isTransferTask } from '../../../src/hypervisors/vsphere/transfers.js';
import { isStreamOptimized } from '../../../src/hypervisors/vsphere/vmdk.js';
import { parseXml } from '../../../src/hypervisors/vsphere/xml.js';

const run = promisify(execFile);
const UID = '0f1e2d3c-0000-4000-8000-000000000001';

t.test('an image has a plain final name when its name is a plain word, and a hashed one of at most 80 characters otherwise', async (t) => {
  const plain = importNames(UID, 'root');
  t.equal(plain.final, `vr-import-${UID}-root`);
  t.not(plain.importing, plain.final, 'imported under another name than the one the image names');
  const odd = ['Root Disk', 'root disk', 'x'.repeat(200), 'root/disk', '', 'data-1-of-a-very-long-migration-name-indeed'].map((name) => importNames(UID, name));
  for (const names of [plain, ...odd]) {
    t.ok(names.final.length <= 80 && names.importing.length <= 80, `${names.final}: within vSphere's limit`);
    t.equal(placeholderOwner(names.final), undefined, 'never a clone placeholder');
    t.notOk(bearsPlaceholder({ name: names.importing, vmPathName: `[ds] ${names.importing}/${names.importing}.vmx` }, UID), 'never taken for the owner\'s clone');
  }
  t.equal(new Set(odd.map((names) => names.final)).size, odd.length, 'different names, different templates');
  t.not(importNames(UID, 'root').final, importNames('0f1e2d3c-0000-4000-8000-000000000002', 'root').final, 'different owners, different templates');
});

const DEVICES = parseXml(
  `<val xmlns="urn:vim25" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
    <VirtualDevice xsi:type="VirtualIDEController"><key>200</key><busNumber>0</busNumber></VirtualDevice>
    <VirtualDevice xsi:type="ParaVirtualSCSIController"><key>1000</key><busNumber>0</busNumber></VirtualDevice>
    <VirtualDevice xsi:type="VirtualLsiLogicSASController"><key>1001</key><busNumber>1</busNumber></VirtualDevice>
    <VirtualDevice xsi:type="VirtualDisk"><key>2000</key><controllerKey>1000</controllerKey><unitNumber>0</unitNumber></VirtualDevice>
    <VirtualDevice xsi:type="VirtualDisk"><key>2001</key><controllerKey>1001</controllerKey><unitNumber>3</unitNumber></VirtualDevice>
  </val>`,
);

const LEASE_INFO = parseXml(
  `<val xmlns="urn:vim25" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="HttpNfcLeaseInfo">
    <lease type="HttpNfcLease">52a1</lease><entity type="VirtualMachine">vm-70</entity>
    <deviceUrl><key>/vm-70/VirtualLsiLogicSASController1:3</key><importKey></importKey><url>https://esx-2.lab/nfc/52a1/disk-1.vmdk</url><sslThumbprint>AB:CD</sslThumbprint><disk>true</disk><targetId>disk-1.vmdk</targetId></deviceUrl>
    <deviceUrl><key>/vm-70/ParaVirtualSCSIController0:0</key><importKey></importKey><url>https://esx-2.lab/nfc/52a1/disk-0.vmdk</url><sslThumbprint>AB:CD</sslThumbprint><disk>true</disk><targetId>disk-0.vmdk</targetId></deviceUrl>
    <deviceUrl><key>/vm-70/nvram</key><url>https://esx-2.lab/nfc/52a1/vm.nvram</url><sslThumbprint></sslThumbprint><disk>false</disk><fileSize>8684</fileSize></deviceUrl>
    <totalDiskCapacityInKB>2048</totalDiskCapacityInKB><leaseTimeout>300</leaseTimeout>
  </val>`,
);

t.test("a lease's device URLs are read with their keys, thumbprints and disk flags", async (t) => {
  const info = readLeaseInfo(LEASE_INFO);
  t.same(info.entity, { type: 'VirtualMachine', value: 'vm-70' });
  t.same(
    info.devices.map((device) => [device.key, device.disk, device.sslThumbprint, device.importKey]),
    [
      ['/vm-70/VirtualLsiLogicSASController1:3', true, 'AB:CD', undefined],
      ['/vm-70/ParaVirtualSCSIController0:0', true, 'AB:CD', undefined],
      ['/vm-70/nvram', false, undefined, undefined],
    ],
  );
});

t.test("an exported disk's URL is the one whose key names its controller and unit, else the one at its position", async (t) => {
  const info = readLeaseInfo(LEASE_INFO);
  const [root, data] = [
    { controllerKey: 1000, unitNumber: 0 },
    { controllerKey: 1001, unitNumber: 3 },
  ];
  t.equal(deviceKeySuffix(DEVICES, root ?? { controllerKey: 0, unitNumber: 0 }), '/ParaVirtualSCSIController0:0');
  t.equal(exportedDevice(info, deviceKeySuffix(DEVICES, root ?? { controllerKey: 0, unitNumber: 0 }), 0, 2).targetId, 'disk-0.vmdk', 'by key, whatever the order');
  t.equal(exportedDevice(info, deviceKeySuffix(DEVICES, data ?? { controllerKey: 0, unitNumber: 0 }), 1, 2).targetId, 'disk-1.vmdk');
  t.equal(deviceKeySuffix(DEVICES, { controllerKey: 77, unitNumber: 0 }), undefined, 'a controller the VM does not list names nothing');
  const vcsimKeys = readLeaseInfo(parseXml(`<val xmlns="urn:vim25"><deviceUrl><key>/vm-75/disk:0</key><url>https://*/nfc/l/a.vmdk</url><disk>true</disk></deviceUrl><deviceUrl><key>/vm-75/disk:1</key><url>https://*/nfc/l/b.vmdk</url><disk>true</disk></deviceUrl></val>`));
  t.equal(exportedDevice(vcsimKeys, '/ParaVirtualSCSIController0:0', 1, 2).url, 'https://*/nfc/l/b.vmdk', "keys that name no controller (vcsim's): by position");
  t.throws(() => exportedDevice(vcsimKeys, '/ParaVirtualSCSIController0:0', 0, 3), HypervisorError, 'neither: refused, never a guess');
});

t.test("a device URL on `*` is this client's endpoint, with its scheme; any other host is kept", async (t) => {
  t.equal(deviceURL('https://*/nfc/session%5Bab%5D1/disk-0.vmdk', 'http://127.0.0.1:8989').href, 'http://127.0.0.1:8989/nfc/session%5Bab%5D1/disk-0.vmdk');
  t.equal(deviceURL('https://esx-2.lab/nfc/52a1/disk-0.vmdk', 'https://vc.lab').href, 'https://esx-2.lab/nfc/52a1/disk-0.vmdk');
  t.throws(() => deviceURL('ftp://esx-2.lab/disk', 'https://vc.lab'), HypervisorError);
  t.throws(() => deviceURL('not a url', 'https://vc.lab'), HypervisorError);
});

t.test("a certificate matches vSphere's thumbprint by SHA-1 (vSphere's form) or SHA-256, in any case", async (t) => {
  const certificate = { fingerprint: 'AA:BB:CC', fingerprint256: '11:22:33' };
  t.ok(thumbprintMatches(certificate, 'aa:bb:cc'));
  t.ok(thumbprintMatches(certificate, 'AABBCC'));
  t.ok(thumbprintMatches(certificate, '11:22:33'));
  t.notOk(thumbprintMatches(certificate, 'AA:BB:CD'));
});

t.test('the import spec makes one LSI Logic controller and one thin disk of the size, with the identity in extraConfig', async (t) => {
  const xml = importSpec('vr-importing-x', 'Local DS', 3 * 1024 * 1024 + 512, [['virtrigaud.image.name', 'a<b&c']]).toString();
  t.match(xml, /^<spec xsi:type="VirtualMachineImportSpec"><configSpec xsi:type="VirtualMachineConfigSpec"><name>vr-importing-x<\/name>/);
  t.match(xml, /<files><vmPathName>\[Local DS\]<\/vmPathName><\/files>/);
  t.match(xml, /<device xsi:type="VirtualLsiLogicController"><key>-100<\/key><busNumber>0<\/busNumber>/);
  t.match(xml, /<fileOperation>create<\/fileOperation><device xsi:type="VirtualDisk"><key>-101<\/key>.*<thinProvisioned>true<\/thinProvisioned>.*<controllerKey>-100<\/controllerKey><unitNumber>0<\/unitNumber><capacityInKB>3073<\/capacityInKB>/);
  t.match(xml, /<extraConfig xsi:type="OptionValue"><key>virtrigaud.image.name<\/key><value xsi:type="xsd:string">a&lt;b&amp;c<\/value><\/extraConfig><\/configSpec><\/spec>$/, 'escaped, after the devices (schema order)');
});

t.test('a renewal that finds the lease gone or timed out ends the transfer; other failures wait for the next', async (t) => {
  t.ok(leaseLost(new NotFoundError('HttpNfcLease gone')));
  t.ok(leaseLost(errorFromFault({ type: 'Timedout', message: 'timed out' })));
  t.notOk(leaseLost(errorFromFault({ type: 'SystemError', message: 'hiccup' })));
  t.notOk(leaseLost(new Error('socket hang up')));
});

t.test('a transfer task reports running with progress, then its outcome; an id this instance did not start is NotFound', async (t) => {
  const transfers = new Transfers();
  let finish: (() => void) | undefined;
  const id = transfers.start('export:vm-1', 'request', async (job) => {
    job.progress(42.7);
    job.progress(10);
    await new Promise<void>((done) => {
      finish = done;
    });
  });
  t.ok(isTransferTask(id), id);
  t.notOk(isTransferTask('task-12'), 'a vSphere task is not one');
  t.same(transfers.status(id), { state: 'running', progress: 42 }, 'progress never goes back');
  t.same(transfers.running('export:vm-1'), { id, request: 'request' });
  finish?.();
  await new Promise((done) => setImmediate(done));
  t.same(transfers.status(id), { state: 'succeeded', progress: 100 });
  t.equal(transfers.running('export:vm-1'), undefined, 'the key is free again');
  const failed = transfers.start('export:vm-1', 'request', () => Promise.reject(new HypervisorError('cut')));
  await new Promise((done) => setImmediate(done));
  t.same(transfers.status(failed), { state: 'failed', error: 'cut', errorCode: 'HypervisorError' });
  t.throws(() => transfers.status(`${id}0`), NotFoundError);
  t.throws(() => new Transfers().status(id), NotFoundError, 'another instance (a restarted runtime) does not know it');
});

t.test('closing stops running transfers and fails their tasks with the reason', async (t) => {
  const transfers = new Transfers();
  const id = transfers.start('import:a:b', 'request', (job) => new Promise((_resolve, reject) => job.signal.addEventListener('abort', () => reject(new Error('aborted stream')))));
  await transfers.close();
  t.match(transfers.status(id), { state: 'failed', error: /provider runtime stopped/ });
});

t.test('a streamOptimized VMDK is told from other VMDKs and raw files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vrtg-vmdk-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const raw = join(dir, 'disk.raw');
  await writeFile(raw, Buffer.alloc(1024 * 1024, 7));
  await run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, join(dir, 'stream.vmdk')]);
  await run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'vmdk', raw, join(dir, 'sparse.vmdk')]);
  t.ok(await isStreamOptimized(join(dir, 'stream.vmdk')));
  t.notOk(await isStreamOptimized(join(dir, 'sparse.vmdk')), 'monolithicSparse');
  t.notOk(await isStreamOptimized(raw));
  await writeFile(join(dir, 'tiny'), 'KDMV');
  t.notOk(await isStreamOptimized(join(dir, 'tiny')), 'a file too short to hold a header');
});

function throwAwayCertificate(): { key: string; cert: string } | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'vrtg-nfc-tls-'));
  try {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=esx-2.lab', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')],
      { stdio: 'ignore' },
    );
    return { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
  } catch {
    return undefined;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const pair = throwAwayCertificate();

async function startHost(t: Test, body: Buffer, cookies: (string | undefined)[]): Promise<string> {
  if (pair === undefined) throw new Error('no certificate');
  const server = createServer(pair, (request, response) => {
    cookies.push(request.headers.cookie);
    response.writeHead(200, { 'content-length': String(body.length) });
    response.end(body);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  t.teardown(() => new Promise<void>((done) => {
    server.closeAllConnections();
    server.close(() => done());
  }));
  const address = server.address();
  return `https://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}/nfc/52a1/disk-0.vmdk`;
}

t.test("a device URL on another host is trusted by the thumbprint vSphere named, and refused without it", { skip: pair === undefined ? 'openssl is not available' : false }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'vrtg-nfc-download-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const body = Buffer.from('streamOptimized bytes');
  const cookies: (string | undefined)[] = [];
  const url = new URL(await startHost(t, body, cookies));
  const config = vsphereConfigFromEnv({ VSPHERE_ENDPOINT: 'https://vc.lab', VSPHERE_USERNAME: 'svc', VSPHERE_PASSWORD: 'pw' });
  const thumbprint = new X509Certificate(pair?.cert ?? '').fingerprint;
  const download = async (print: string | undefined) => {
    const connection = new NfcConnection(config, url, print, 'vmware_soap_session=secret');
    try {
      const path = join(dir, 'disk.vmdk');
      await rm(path, { force: true });
      const counted: number[] = [];
      await connection.download(path, (bytes, total) => counted.push(bytes, total ?? -1), AbortSignal.timeout(10_000));
      return { content: await readFile(path), counted };
    } finally {
      await connection.close();
    }
  };
  const pinned = await download(thumbprint);
  t.ok(pinned.content.equals(body), 'downloaded whole');
  t.same(pinned.counted, [body.length, body.length], 'counted against the announced length');
  t.same(cookies, [undefined], "the SOAP session is not sent to another host");
  await t.rejects(download('00:11:22'), { code: 'Unreachable', message: /neither trusted nor the one vSphere named/ });
  await t.rejects(download(undefined), { code: 'Unreachable', message: /not trusted/ });
});
