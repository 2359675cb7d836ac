// An image a driver fetches from a URL (ImageSpec `url`, `iso` with a url): the URL and the
// checksum taken apart the same way by every driver that downloads, refused as InvalidSpec before
// anything is made. Neither is ever echoed: a URL may hold credentials.

import { InvalidSpecError } from '../../contracts/driver.js';

/** `<algorithm>:<hex>`, as drivers verify it (or hand it to PVE as `checksum-algorithm` and `checksum`). */
export interface ImageChecksum {
  algorithm: 'sha256' | 'sha512';
  hex: string;
}

const CHECKSUM_LENGTH: Readonly<Record<ImageChecksum['algorithm'], number>> = { sha256: 64, sha512: 128 };

export function parseImageChecksum(text: string): ImageChecksum {
  const match = /^(sha256|sha512):([0-9a-fA-F]+)$/.exec(text.trim());
  const algorithm = match?.[1] as ImageChecksum['algorithm'] | undefined;
  const hex = match?.[2]?.toLowerCase() ?? '';
  if (algorithm === undefined || hex.length !== CHECKSUM_LENGTH[algorithm]) {
    throw new InvalidSpecError('the image checksum must be "sha256:<64 hex digits>" or "sha512:<128 hex digits>"');
  }
  return { algorithm, hex };
}

/** The URL, refused unless it is http(s); `fetcher` says who downloads it ("Proxmox VE downloads"). */
export function parseImageURL(url: string, fetcher: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new InvalidSpecError('the image URL is not a URL');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new InvalidSpecError(`${fetcher} images over http or https only`);
  return parsed;
}
