// Names the driver gives what it creates (volume names derive from the owner's UID, never from
// user-chosen names), the checks on names that reach libvirt, and the step that ends a pending
// creation.

import { createHash, randomBytes } from 'node:crypto';
import { InvalidSpecError, type Identity } from '../../contracts/driver.js';
import type { LibvirtContext } from './context.js';
import { METADATA_NS, metadataXml, type VmMetadata } from './domain-xml.js';
import type { TaskStep } from './tasks.js';

const UID = /^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/;

/** Volume names derive from the owner's UID, never from user-chosen names. */
export function volumeNames(uid: string) {
  return {
    disk: (index: number) => (index === 0 ? `virtrigaud-${uid}-root.qcow2` : `virtrigaud-${uid}-disk${index}.qcow2`),
    seed: `virtrigaud-${uid}-seed.iso`,
    ignition: `virtrigaud-${uid}-ignition.json`,
  };
}

const IMPORT_PREFIX = 'virtrigaud-import-';

/**
 * The volume an owner's disk import named `name` becomes: the same owner and name, the same
 * volume. The name is the caller's, so it is reduced to safe characters, with a hash of it that
 * keeps two names apart that reduce alike. Always qcow2 (import.ts).
 */
export function importVolumeName(uid: string, name: string): string {
  if (name === '' || name.length > 253) throw new InvalidSpecError('an imported image needs a name of 1-253 characters');
  // 30: with the longest UID the volume name still fits a task lock key (128 characters).
  const safe = name.replace(/[^A-Za-z0-9_-]+/g, '-').slice(0, 30);
  return `${IMPORT_PREFIX}${uid}-${safe}-${createHash('sha256').update(name).digest('hex').slice(0, 8)}.qcow2`;
}

export function isImportVolume(volume: string): boolean {
  return volume.startsWith(IMPORT_PREFIX);
}

export function validateIdentity(owner: Identity): void {
  if (!UID.test(owner.uid)) throw new InvalidSpecError('owner UID must be alphanumeric with dashes');
}

export function validateName(name: string): void {
  // libvirt refuses '/' in domain names; control characters would only confuse tools reading `virsh list`.
  if (name === '' || name.length > 200 || name.includes('/') || /[\u0000-\u001f\u007f]/.test(name)) {
    throw new InvalidSpecError('the VM name must be 1-200 characters without "/" or control characters');
  }
}

export function randomMac(): string {
  const bytes = randomBytes(3);
  return `52:54:00:${[...bytes].map((byte) => byte.toString(16).padStart(2, '0')).join(':')}`;
}

/**
 * The overlay a linked clone moves its source onto: named after the clone, so a clone retried
 * after it froze the source finds the source frozen for it already.
 */
export function frozenOverlayName(sourceUid: string, target: string, cloneUid: string): string {
  return `virtrigaud-${sourceUid}-${target}-${createHash('sha256').update(cloneUid).digest('hex').slice(0, 8)}.qcow2`;
}

/** The last step of a pending creation: the metadata without `pending`, so describe reports the VM complete. */
export function completeStep(ctx: LibvirtContext, uuid: string, metadata: VmMetadata): TaskStep {
  const { pending: _pending, ...complete } = metadata;
  return ['virsh', '-q', '-c', ctx.host.uri, 'metadata', '--domain', uuid, '--uri', METADATA_NS, '--key', 'virtrigaud', '--config', '--set', metadataXml(complete, true)];
}

