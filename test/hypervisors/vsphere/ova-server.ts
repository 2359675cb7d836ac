// A tiny image for the vSphere image-import tests, made here and served from loopback: an OVF
// descriptor of one VM (1 CPU, 64 MiB, one 16 MiB disk on an LSI Logic controller) and its disk,
// a streamOptimized VMDK qemu-img makes from 1 MiB of deterministic data. Served as an OVA (the
// descriptor first, as the OVF standard wants, then the disk, in a ustar archive) and as the OVF
// with the disk beside it; every request is recorded, so a test can count downloads.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Test } from 'tap';

const run = promisify(execFile);

export const DISK_FILE = 'tiny-disk1.vmdk';

function descriptor(diskBytes: number): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
    xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
    xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
  <References>
    <File ovf:id="disk-file" ovf:href="${DISK_FILE}" ovf:size="${diskBytes}"/>
  </References>
  <DiskSection>
    <Info>The disk of the test image</Info>
    <Disk ovf:diskId="root" ovf:fileRef="disk-file" ovf:capacity="16" ovf:capacityAllocationUnits="byte * 2^20"
        ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <VirtualSystem ovf:id="tiny">
    <Info>The test image</Info>
    <Name>tiny</Name>
    <OperatingSystemSection ovf:id="101">
      <Info>Guest OS</Info>
    </OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Hardware</Info>
      <System>
        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>
        <vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType>
      </System>
      <Item>
        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>
        <rasd:ElementName>1 virtual CPU</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>1</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits>
        <rasd:ElementName>64 MB of memory</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:ResourceType>4</rasd:ResourceType>
        <rasd:VirtualQuantity>64</rasd:VirtualQuantity>
      </Item>
      <Item>
        <rasd:Address>0</rasd:Address>
        <rasd:ElementName>SCSI controller 0</rasd:ElementName>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/root</rasd:HostResource>
        <rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
`;
}

/** A ustar header for a regular file (POSIX.1-1988: octal fields, the checksum over the header with its own field as spaces). */
function tarHeader(name: string, size: number): Buffer {
  const header = Buffer.alloc(512);
  const put = (text: string, at: number) => header.write(text, at, 'ascii');
  put(name, 0);
  put('0000644\0', 100);
  put('0000000\0', 108);
  put('0000000\0', 116);
  put(`${size.toString(8).padStart(11, '0')}\0`, 124);
  put(`${Math.floor(Date.UTC(2024, 0, 1) / 1000).toString(8).padStart(11, '0')}\0`, 136);
  put('        ', 148);
  put('0', 156);
  put('ustar\0', 257);
  put('00', 263);
  const sum = header.reduce((total, byte) => total + byte, 0);
  put(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  return header;
}

function tar(files: { name: string; data: Buffer }[]): Buffer {
  const parts: Buffer[] = [];
  for (const file of files) {
    parts.push(tarHeader(file.name, file.data.length), file.data, Buffer.alloc((512 - (file.data.length % 512)) % 512));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

export interface OvaServer {
  /** `http://127.0.0.1:<port>/<path>` */
  url(path: string): string;
  /** `sha256:<hex>` of the OVA */
  ovaChecksum: string;
  /** The SHA-256 of the disk, as vSphere should receive it. */
  diskSha256: string;
  diskBytes: number;
  /** Paths requested, in order. */
  requests: string[];
  /** The Authorization header of each request, in order. */
  authorizations: (string | undefined)[];
}

/** Builds the image and serves it until the test ends: `/tiny.ova`, `/tiny.ovf`, `/tiny-disk1.vmdk`. */
export async function startOvaServer(t: Test): Promise<OvaServer> {
  const dir = await mkdtemp(join(tmpdir(), 'vrtg-ova-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const raw = Buffer.alloc(1024 * 1024);
  for (let at = 0; at < raw.length; at += 4) raw.writeUInt32LE((at * 2654435761) >>> 0, at);
  await writeFile(join(dir, 'disk.raw'), raw);
  await run('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', join(dir, 'disk.raw'), join(dir, DISK_FILE)]);
  const disk = await readFile(join(dir, DISK_FILE));
  const ovf = Buffer.from(descriptor(disk.length), 'utf8');
  const ova = tar([
    { name: 'tiny.ovf', data: ovf },
    { name: DISK_FILE, data: disk },
  ]);
  const files: Record<string, Buffer> = { '/tiny.ova': ova, '/tiny.ovf': ovf, [`/${DISK_FILE}`]: disk };
  const requests: string[] = [];
  const authorizations: (string | undefined)[] = [];
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    requests.push(path);
    authorizations.push(request.headers.authorization);
    const body = files[path];
    if (body === undefined) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  t.teardown(() => new Promise<void>((done) => server.close(() => done())));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return {
    url: (path) => `http://127.0.0.1:${port}/${path}`,
    ovaChecksum: `sha256:${createHash('sha256').update(ova).digest('hex')}`,
    diskSha256: createHash('sha256').update(disk).digest('hex'),
    diskBytes: disk.length,
    requests,
    authorizations,
  };
}
