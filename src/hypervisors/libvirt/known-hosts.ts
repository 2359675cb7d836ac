// known_hosts lines → the host keys pinned for one host and port. Supports plain and hashed
// (`|1|salt|hmac`) host patterns, comma lists, `*`/`?` wildcards and `!` negation, the
// `[host]:port` form for non-22 ports, and `@revoked` (a revoked key is refused even if pinned
// elsewhere). `@cert-authority` lines are ignored: host certificates are not supported.

import { createHash, createHmac } from 'node:crypto';

export interface PinnedKeys {
  /** Base64 key blobs accepted for the host. */
  accepted: Set<string>;
  revoked: Set<string>;
  /** The key types of the accepted keys (ssh-ed25519, ecdsa-sha2-nistp256, …), for algorithm negotiation. */
  types: Set<string>;
}

function hostToken(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function globMatches(pattern: string, text: string): boolean {
  const regex = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return regex.test(text);
}

function hashedMatches(entry: string, token: string): boolean {
  const [, magic, salt, hash] = entry.split('|');
  if (magic !== '1' || salt === undefined || hash === undefined) return false;
  const digest = createHmac('sha1', Buffer.from(salt, 'base64')).update(token).digest('base64');
  return digest === hash;
}

function patternListMatches(patterns: string, token: string): boolean {
  if (patterns.startsWith('|')) return hashedMatches(patterns, token);
  let matched = false;
  for (const pattern of patterns.split(',')) {
    if (pattern.startsWith('!')) {
      if (globMatches(pattern.slice(1), token)) return false;
    } else if (globMatches(pattern, token)) {
      matched = true;
    }
  }
  return matched;
}

export function pinnedKeys(knownHosts: string, host: string, port: number): PinnedKeys {
  const token = hostToken(host, port);
  const result: PinnedKeys = { accepted: new Set(), revoked: new Set(), types: new Set() };
  for (const raw of knownHosts.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let marker: string | undefined;
    if (fields[0]?.startsWith('@')) marker = fields.shift();
    const [patterns, type, blob] = fields;
    if (patterns === undefined || type === undefined || blob === undefined) continue;
    if (!patternListMatches(patterns, token)) continue;
    if (marker === '@revoked') result.revoked.add(blob);
    else if (marker === undefined) {
      result.accepted.add(blob);
      result.types.add(type);
    }
  }
  return result;
}

/** OpenSSH's fingerprint format: `SHA256:<unpadded base64>`. */
export function fingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}
