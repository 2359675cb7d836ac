// Reading a tar stream entry by entry without keeping it: how an OVA (a tar whose first entry is
// the OVF descriptor, DMTF DSP0243 "OVF package") is imported while it downloads. POSIX ustar
// headers, with the pax (`x`) and GNU long-name (`L`) entries OVA tools write for long names, and
// GNU's base-256 sizes for files of 8 GiB and more.

import { HypervisorError } from '../../contracts/driver.js';

const BLOCK = 512;

/** Exactly-n reads over a stream of chunks. */
class ChunkReader {
  readonly #source: AsyncIterator<Buffer>;
  #pending: Buffer = Buffer.alloc(0);

  constructor(source: AsyncIterable<Buffer>) {
    this.#source = source[Symbol.asyncIterator]();
  }

  /** Up to `max` bytes, as they come; an empty buffer at the end of the stream. */
  async some(max: number): Promise<Buffer> {
    if (this.#pending.length === 0) {
      const next = await this.#source.next();
      if (next.done === true) return Buffer.alloc(0);
      this.#pending = next.value;
    }
    const taken = this.#pending.subarray(0, max);
    this.#pending = this.#pending.subarray(taken.length);
    return taken;
  }

  async exactly(bytes: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let left = bytes;
    while (left > 0) {
      const part = await this.some(left);
      if (part.length === 0) throw new HypervisorError(`the archive ended ${left} bytes early`);
      parts.push(part);
      left -= part.length;
    }
    return Buffer.concat(parts);
  }
}

function text(header: Buffer, from: number, length: number): string {
  const field = header.subarray(from, from + length);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? field.length : end).toString('utf8');
}

function size(header: Buffer): number {
  const field = header.subarray(124, 136);
  // GNU base-256: the high bit of the first byte set, the value big-endian in the rest.
  if (((field[0] ?? 0) & 0x80) !== 0) return field.subarray(1).reduce((value, byte) => value * 256 + byte, 0);
  const octal = text(header, 124, 12).trim();
  return octal === '' ? 0 : Number.parseInt(octal, 8);
}

/** pax extended header records (`<length> <key>=<value>\n`). */
function paxRecords(body: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let at = 0;
  while (at < body.length) {
    const space = body.indexOf(0x20, at);
    const length = Number(body.subarray(at, space).toString('latin1'));
    if (space === -1 || !Number.isInteger(length) || length <= 0) break;
    const record = body.subarray(space + 1, at + length - 1).toString('utf8');
    const equals = record.indexOf('=');
    if (equals > 0) records.set(record.slice(0, equals), record.slice(equals + 1));
    at += length;
  }
  return records;
}

export interface TarEntry {
  name: string;
  size: number;
  /** The entry's bytes; read them (or not) before asking for the next entry. */
  body: AsyncIterable<Buffer>;
}

/** The regular files of a tar stream, in order. */
export async function* tarEntries(source: AsyncIterable<Buffer>): AsyncGenerator<TarEntry> {
  const reader = new ChunkReader(source);
  let longName: string | undefined;
  let pax = new Map<string, string>();
  for (;;) {
    const header = await reader.exactly(BLOCK);
    if (header.every((byte) => byte === 0)) return;
    const type = String.fromCharCode(header[156] ?? 0);
    const bytes = size(header);
    const padded = Math.ceil(bytes / BLOCK) * BLOCK;
    if (type === 'x' || type === 'L' || type === 'g') {
      const body = (await reader.exactly(padded)).subarray(0, bytes);
      if (type === 'x') pax = paxRecords(body);
      if (type === 'L') longName = text(body, 0, body.length);
      continue;
    }
    const prefix = text(header, 257, 6) === 'ustar' ? text(header, 345, 155) : '';
    const name = pax.get('path') ?? longName ?? (prefix === '' ? text(header, 0, 100) : `${prefix}/${text(header, 0, 100)}`);
    const length = pax.has('size') ? Number(pax.get('size')) : bytes;
    const dataBlocks = pax.has('size') ? Math.ceil(length / BLOCK) * BLOCK : padded;
    longName = undefined;
    pax = new Map();
    let left = length;
    const body = {
      async *[Symbol.asyncIterator]() {
        while (left > 0) {
          const chunk = await reader.some(left);
          if (chunk.length === 0) throw new HypervisorError(`the archive ended within ${name}`);
          left -= chunk.length;
          yield chunk;
        }
      },
    };
    if (type === '0' || type === '\0' || type === '7') yield { name, size: length, body };
    // What the consumer left unread, then the padding to the next header.
    while (left > 0) {
      const chunk = await reader.some(left);
      if (chunk.length === 0) throw new HypervisorError(`the archive ended within ${name}`);
      left -= chunk.length;
    }
    if (dataBlocks > length) await reader.exactly(dataBlocks - length);
  }
}
