// A small disk image served on loopback, for the image-import conformance case of targets whose
// hypervisor downloads from this machine (the simulator, a runtime in front of it).
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const IMAGE = Buffer.from('QFI\xfb a conformance disk image '.repeat(256));

export interface ImageServer {
  image: { url: string; checksum: string };
  close(): Promise<void>;
}

export async function imageServer(): Promise<ImageServer> {
  const server = createServer((_request, response) => response.end(IMAGE));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    image: { url: `http://127.0.0.1:${port}/disk.qcow2`, checksum: `sha256:${createHash('sha256').update(IMAGE).digest('hex')}` },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
