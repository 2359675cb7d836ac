// An HTTP proxy in front of vcsim for the disk transfer tests: vcsim 0.24.2 has no ExportVm
// (its answer is MethodNotFound, "VirtualMachine:vm-57 does not implement: ExportVm"), so the
// proxy plays vSphere's export side itself, the way vSphere serves it (vSphere API reference,
// HttpNfcLease): ExportVm answers a lease that reads `initializing`, then `ready` with one device
// URL per disk (`https://*/nfc/<lease>/disk-<n>.vmdk`, key `/<vm>/<controller type><bus>:<unit>`,
// `disk` true) and one for the NVRAM (`disk` false); a GET of a disk URL streams a
// streamOptimized VMDK (chunked, without a length, as vSphere streams exports); the lease takes
// HttpNfcLeaseProgress, and is gone (ManagedObjectNotFound) after HttpNfcLeaseComplete or
// HttpNfcLeaseAbort. The disks' content is made here: `dataBytes` of deterministic data at the
// start of the disk, zeros after, up to the disk's capacity in vcsim.
//
// Everything else reaches vcsim unchanged, ImportVApp and its uploads included (vcsim takes the
// POST and throws the bytes away): the proxy records each upload's length, type and SHA-256, the
// one place a test can see what the driver sent. Faults on demand: a download or an upload cut
// after some bytes, an export lease that ends in error instead of becoming ready.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { readFile, truncate, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Test } from 'tap';
import { VsphereClient } from '../../src/hypervisors/vsphere/client.js';
import { vsphereConfigFromEnv } from '../../src/hypervisors/vsphere/config.js';
import { retrieveOne } from '../../src/hypervisors/vsphere/property-collector.js';
import { intAt, textAt, typeName } from '../../src/hypervisors/vsphere/xml.js';
import type { Vcsim } from './vcsim.js';

const run = promisify(execFile);

export interface FakeExportLease {
  id: string;
  vm: string;
  /** Percentages of every HttpNfcLeaseProgress, in order. */
  progress: number[];
  completed: boolean;
  aborted: boolean;
  /** The reason of the SystemError fault the abort named, if it named one. */
  abortReason: string | undefined;
}

export interface NfcUpload {
  method: string;
  path: string;
  contentType: string | undefined;
  contentLength: number | undefined;
  bytes: number;
  sha256: string;
  /** Cut by failNextUpload: the bytes never reached vcsim. */
  cut: boolean;
  /** Where the proxy kept the bytes it received. */
  file: string;
  /** Whether the request carried the SOAP session cookie. */
  session: boolean;
}

export interface NfcProxyOptions {
  /** Bytes of data at the start of every exported disk (the rest is zeros); 2 MiB unless set. */
  dataBytes?: number;
  /** State reads of an export lease answered `initializing` before it is ready; 1 unless set. */
  initializingReads?: number;
  /** A pause between the chunks of a download (ms), to keep an export running a while. */
  chunkDelayMs?: number;
}

export interface NfcProxy {
  url: string;
  /** vcsim's environment with the proxy as the endpoint. */
  env: Record<string, string>;
  leases: FakeExportLease[];
  uploads: NfcUpload[];
  /** SOAP requests of a method that went through the proxy (answered by it or by vcsim). */
  calls(method: string): number;
  /** The raw content of disk `index` of `vm` as exports serve it (its whole capacity). */
  diskRaw(vm: string, index: number): Promise<Buffer>;
  failNextDownload(afterBytes: number): void;
  failNextUpload(afterBytes: number): void;
  /** The next export lease ends in error (a SystemError with this reason) instead of becoming ready. */
  failNextLease(reason: string): void;
}

interface LeaseState extends FakeExportLease {
  reads: number;
  disks: { key: string; capacityBytes: number }[];
  error: string | undefined;
}

const ENVELOPE_START =
  '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" ' +
  'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>';
const ENVELOPE_END = '</soapenv:Body></soapenv:Envelope>';

function soapBody(inner: string): string {
  return `${ENVELOPE_START}${inner}${ENVELOPE_END}`;
}

function soapFault(type: string, message: string, detail: string): string {
  return soapBody(
    `<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>${message}</faultstring>` +
      `<detail><${type}Fault xmlns="urn:vim25" xsi:type="${type}">${detail}</${type}Fault></detail></soapenv:Fault>`,
  );
}

/** Deterministic bytes (counter-mode SHA-256 of the VM and disk): the same every run, different per disk. */
function diskData(vm: string, index: number, length: number): Buffer {
  const data = Buffer.alloc(length);
  let offset = 0;
  for (let block = 0; offset < length; block++) offset += createHash('sha256').update(`${vm}/${index}/${block}`).digest().copy(data, offset);
  return data;
}

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function startNfcProxy(t: Test, vcsim: Vcsim, options: NfcProxyOptions = {}): Promise<NfcProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'vrtg-nfc-proxy-'));
  const client = new VsphereClient(vsphereConfigFromEnv(vcsim.env));
  const leases = new Map<string, LeaseState>();
  const uploads: NfcUpload[] = [];
  const requests: string[] = [];
  const vmdks = new Map<string, Promise<string>>();
  let nextLease = 0;
  let cutDownload: number | undefined;
  let cutUpload: number | undefined;
  let leaseError: string | undefined;
  const dataBytes = options.dataBytes ?? 2 * 1024 * 1024;

  const rawPath = async (vm: string, index: number, capacity: number): Promise<string> => {
    const path = join(dir, `${vm}-${index}.raw`);
    await writeFile(path, diskData(vm, index, Math.min(dataBytes, capacity)));
    await truncate(path, capacity);
    return path;
  };
  const vmdkOf = (vm: string, index: number, capacity: number): Promise<string> => {
    const key = `${vm}/${index}`;
    let made = vmdks.get(key);
    if (made === undefined) {
      made = (async () => {
        const raw = await rawPath(vm, index, capacity);
        const vmdk = join(dir, `${vm}-${index}.vmdk`);
        await run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, vmdk]);
        return vmdk;
      })();
      vmdks.set(key, made);
    }
    return made;
  };

  const exportVm = async (vm: string): Promise<string> => {
    const object = await retrieveOne(client, { type: 'VirtualMachine', value: vm }, ['runtime.powerState', 'config.hardware.device']);
    const power = textAt(object.props.get('runtime.powerState'));
    if (power !== 'poweredOff') {
      return soapFault('InvalidPowerState', `VM ${vm} is ${power}`, `<requestedState>poweredOff</requestedState><existingState>${power}</existingState>`);
    }
    const devices = object.props.get('config.hardware.device')?.children ?? [];
    const disks = devices
      .filter((device) => typeName(device) === 'VirtualDisk')
      .sort((a, b) => (intAt(a, 'key') ?? 0) - (intAt(b, 'key') ?? 0))
      .map((disk) => {
        const controller = devices.find((device) => intAt(device, 'key') === intAt(disk, 'controllerKey'));
        const name = `${controller === undefined ? 'Unknown' : typeName(controller)}${intAt(controller, 'busNumber') ?? 0}:${intAt(disk, 'unitNumber') ?? 0}`;
        return { key: `/${vm}/${name}`, capacityBytes: (intAt(disk, 'capacityInKB') ?? 0) * 1024 };
      });
    const id = `fake-export-lease-${++nextLease}`;
    leases.set(id, { id, vm, progress: [], completed: false, aborted: false, abortReason: undefined, reads: 0, disks, error: leaseError });
    leaseError = undefined;
    return soapBody(`<ExportVmResponse xmlns="urn:vim25"><returnval type="HttpNfcLease">${id}</returnval></ExportVmResponse>`);
  };

  const leaseProperties = (lease: LeaseState, paths: string[]): string => {
    lease.reads += 1;
    const initializing = lease.reads <= (options.initializingReads ?? 1);
    const state = initializing ? 'initializing' : lease.error !== undefined ? 'error' : 'ready';
    const props: string[] = [];
    if (paths.includes('state')) props.push(`<propSet><name>state</name><val xsi:type="HttpNfcLeaseState">${state}</val></propSet>`);
    if (paths.includes('error') && state === 'error') {
      props.push(
        `<propSet><name>error</name><val xsi:type="LocalizedMethodFault"><fault xsi:type="SystemError"><reason>${lease.error ?? ''}</reason></fault>` +
          `<localizedMessage>${lease.error ?? ''}</localizedMessage></val></propSet>`,
      );
    }
    if (paths.includes('info') && state === 'ready') {
      const urls = lease.disks.map(
        (disk, index) =>
          `<deviceUrl><key>${disk.key}</key><importKey></importKey><url>https://*/nfc/${lease.id}/disk-${index}.vmdk</url>` +
          `<sslThumbprint></sslThumbprint><disk>true</disk><targetId>disk-${index}.vmdk</targetId></deviceUrl>`,
      );
      urls.push(`<deviceUrl><key>/${lease.vm}/nvram</key><importKey></importKey><url>https://*/nfc/${lease.id}/vm.nvram</url><sslThumbprint></sslThumbprint><disk>false</disk><targetId>vm.nvram</targetId><fileSize>8684</fileSize></deviceUrl>`);
      const capacity = lease.disks.reduce((sum, disk) => sum + disk.capacityBytes / 1024, 0);
      props.push(
        `<propSet><name>info</name><val xsi:type="HttpNfcLeaseInfo"><lease type="HttpNfcLease">${lease.id}</lease>` +
          `<entity type="VirtualMachine">${lease.vm}</entity>${urls.join('')}<totalDiskCapacityInKB>${capacity}</totalDiskCapacityInKB>` +
          `<leaseTimeout>300</leaseTimeout></val></propSet>`,
      );
    }
    return soapBody(
      `<RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><objects><obj type="HttpNfcLease">${lease.id}</obj>${props.join('')}</objects></returnval></RetrievePropertiesExResponse>`,
    );
  };

  /** The proxy's own answer to a SOAP request, or undefined to pass it to vcsim. */
  const answer = async (body: string): Promise<string | undefined> => {
    const method = /<soapenv:Body><([A-Za-z_]+)/.exec(body)?.[1] ?? '';
    if (method === 'ExportVm') return exportVm(/<_this type="VirtualMachine">([^<]+)</.exec(body)?.[1] ?? '');
    const leaseId = /<(?:_this|obj) type="HttpNfcLease">(fake-export-lease-\d+)</.exec(body)?.[1];
    if (leaseId === undefined) return undefined;
    const lease = leases.get(leaseId);
    if (lease === undefined || lease.completed || lease.aborted) {
      return soapFault('ManagedObjectNotFound', 'The object has already been deleted or has not been completely created', `<obj type="HttpNfcLease">${leaseId}</obj>`);
    }
    switch (method) {
      case 'RetrievePropertiesEx':
        return leaseProperties(lease, [...body.matchAll(/<pathSet>([^<]+)<\/pathSet>/g)].map((match) => match[1] ?? ''));
      case 'HttpNfcLeaseProgress':
        lease.progress.push(Number(/<percent>(\d+)</.exec(body)?.[1] ?? -1));
        return soapBody('<HttpNfcLeaseProgressResponse xmlns="urn:vim25"></HttpNfcLeaseProgressResponse>');
      case 'HttpNfcLeaseComplete':
        lease.completed = true;
        return soapBody('<HttpNfcLeaseCompleteResponse xmlns="urn:vim25"></HttpNfcLeaseCompleteResponse>');
      case 'HttpNfcLeaseAbort':
        lease.aborted = true;
        lease.abortReason = /<reason>([^<]*)<\/reason>/.exec(body)?.[1];
        return soapBody('<HttpNfcLeaseAbortResponse xmlns="urn:vim25"></HttpNfcLeaseAbortResponse>');
      default:
        return soapFault('MethodNotFound', `HttpNfcLease does not implement: ${method}`, `<method>${method}</method>`);
    }
  };

  const forward = async (request: IncomingMessage, response: ServerResponse, body: Buffer) => {
    const headers = Object.fromEntries(
      Object.entries(request.headers).filter((entry): entry is [string, string] => typeof entry[1] === 'string' && entry[0] !== 'host' && entry[0] !== 'content-length'),
    );
    const answered = await fetch(`${vcsim.url}${request.url ?? '/'}`, {
      method: request.method ?? 'GET',
      headers,
      ...(request.method === 'GET' || request.method === 'HEAD' ? {} : { body }),
    });
    const text = Buffer.from(await answered.arrayBuffer());
    const cookies = answered.headers.getSetCookie();
    response.writeHead(answered.status, {
      'content-type': answered.headers.get('content-type') ?? 'text/xml',
      ...(cookies.length > 0 ? { 'set-cookie': cookies } : {}),
    });
    response.end(text);
  };

  const download = async (request: IncomingMessage, response: ServerResponse, lease: LeaseState, file: string) => {
    const index = Number(/^disk-(\d+)\.vmdk$/.exec(file)?.[1] ?? -1);
    const disk = lease.disks[index];
    if (disk === undefined || lease.completed || lease.aborted) {
      response.writeHead(404).end();
      return;
    }
    const bytes = await readFile(await vmdkOf(lease.vm, index, disk.capacityBytes));
    response.writeHead(200, { 'content-type': 'application/octet-stream' });
    const cut = cutDownload;
    cutDownload = undefined;
    const chunk = 64 * 1024;
    for (let offset = 0; offset < bytes.length; offset += chunk) {
      if (cut !== undefined && offset >= cut) {
        request.socket.destroy();
        return;
      }
      if (!response.write(bytes.subarray(offset, offset + chunk))) await new Promise((done) => response.once('drain', done));
      if (options.chunkDelayMs !== undefined) await new Promise((done) => setTimeout(done, options.chunkDelayMs));
    }
    response.end();
  };

  const upload = async (request: IncomingMessage, response: ServerResponse) => {
    const cut = cutUpload;
    cutUpload = undefined;
    const hash = createHash('sha256');
    const chunks: Buffer[] = [];
    let bytes = 0;
    const length = request.headers['content-length'];
    const record: NfcUpload = {
      method: request.method ?? '',
      path: request.url ?? '',
      contentType: request.headers['content-type'],
      contentLength: length === undefined ? undefined : Number(length),
      bytes: 0,
      sha256: '',
      cut: false,
      file: join(dir, `upload-${uploads.length + 1}.vmdk`),
      session: (request.headers.cookie ?? '').includes('vmware_soap_session='),
    };
    for await (const chunk of request) {
      const buffer = chunk as Buffer;
      bytes += buffer.length;
      hash.update(buffer);
      chunks.push(buffer);
      if (cut !== undefined && bytes >= cut) {
        uploads.push({ ...record, bytes, sha256: hash.digest('hex'), cut: true });
        request.socket.destroy();
        return;
      }
    }
    uploads.push({ ...record, bytes, sha256: hash.digest('hex') });
    const whole = Buffer.concat(chunks);
    await writeFile(record.file, whole);
    await forward(request, response, whole);
  };

  const server = createServer((request, response) => {
    const url = request.url ?? '/';
    const handle = async () => {
      const nfc = /^\/nfc\/([^/]+)\/([^/?]+)/.exec(url);
      const lease = nfc === null ? undefined : leases.get(decodeURIComponent(nfc[1] ?? ''));
      if (nfc !== null && lease !== undefined) return download(request, response, lease, nfc[2] ?? '');
      if (nfc !== null && (request.method === 'POST' || request.method === 'PUT')) return upload(request, response);
      const body = await readBody(request);
      if (url.startsWith('/sdk')) {
        const text = body.toString('utf8');
        requests.push(text);
        const own = await answer(text);
        if (own !== undefined) {
          response.writeHead(own.includes('<soapenv:Fault>') ? 500 : 200, { 'content-type': 'text/xml; charset=utf-8' });
          response.end(own);
          return;
        }
      }
      return forward(request, response, body);
    };
    handle().catch(() => request.socket.destroy());
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  t.teardown(async () => {
    server.closeAllConnections();
    await new Promise<void>((done) => server.close(() => done()));
    await client.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    env: { ...vcsim.env, VSPHERE_ENDPOINT: url },
    get leases() {
      return [...leases.values()].map(({ id, vm, progress, completed, aborted, abortReason }) => ({ id, vm, progress, completed, aborted, abortReason }));
    },
    uploads,
    calls: (method) => requests.filter((request) => request.includes(`<${method} `) || request.includes(`<${method}>`)).length,
    async diskRaw(vm, index) {
      const lease = [...leases.values()].find((candidate) => candidate.vm === vm && candidate.disks[index] !== undefined);
      const disk = lease?.disks[index];
      if (disk === undefined) throw new Error(`no export of disk ${index} of ${vm} was served`);
      return readFile(await rawPath(vm, index, disk.capacityBytes));
    },
    failNextDownload(afterBytes) {
      cutDownload = afterBytes;
    },
    failNextUpload(afterBytes) {
      cutUpload = afterBytes;
    },
    failNextLease(reason) {
      leaseError = reason;
    },
  };
}
