// User tags. libvirt has no tags of its own: they live in the domain's virtrigaud metadata, next
// to the identity, so every read of the identity reads them too. `virsh metadata --set` replaces
// that element in the live and the persistent definition at once, without a redefine, so tags
// change on a running domain and never need a restart.

import { InvalidSpecError, TAG_PATTERN } from '../../contracts/driver.js';
import type { LibvirtContext } from './context.js';
import { METADATA_NS, metadataXml, type ParsedDomain, type VmMetadata } from './domain-xml.js';
import type { OwnedDomain } from './observe.js';

/** The tags as stored: each checked against TAG_PATTERN, without duplicates, sorted. */
export function userTags(tags: readonly string[]): string[] {
  const bad = tags.find((tag) => !TAG_PATTERN.test(tag));
  if (bad !== undefined) throw new InvalidSpecError(`tag ${JSON.stringify(bad.slice(0, 140))} is not a valid tag`);
  return [...new Set(tags)].sort();
}

/** The metadata with these tags instead of its own; no tag element at all for none. */
export function withTags(metadata: VmMetadata, tags: readonly string[]): VmMetadata {
  const { tags: _old, ...rest } = metadata;
  return tags.length > 0 ? { ...rest, tags: [...tags] } : rest;
}

function sameTags(metadata: VmMetadata | undefined, tags: readonly string[]): boolean {
  const current = metadata?.tags ?? [];
  return current.length === tags.length && current.every((tag, index) => tag === tags[index]);
}

/**
 * Gives an owned, created domain exactly these tags (from userTags), the rest of its metadata as
 * the persistent definition has it. `live` is the running domain's live definition, undefined
 * when it is off. Nothing is written when both already carry these tags.
 */
export async function replaceTags(ctx: LibvirtContext, domain: OwnedDomain, live: ParsedDomain | undefined, tags: readonly string[], signal?: AbortSignal): Promise<void> {
  if (sameTags(domain.metadata, tags) && (live === undefined || sameTags(live.metadata, tags))) return;
  const { pending: _pending, ...metadata } = withTags(domain.metadata, tags);
  await ctx.host.virsh(
    ['metadata', '--domain', domain.uuid, '--uri', METADATA_NS, '--key', 'virtrigaud', ...(live !== undefined ? ['--live'] : []), '--config', '--set', metadataXml(metadata, true)],
    { signal },
  );
}
