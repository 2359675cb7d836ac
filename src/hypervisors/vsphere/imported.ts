// The templates importDisk makes, and how any process finds them again. An owner's image `name`
// is a VM of two deterministic names: `importingName` while its disk is uploaded, `finalName`
// (what the image ref names) once it is whole and a template. create resolves a template ref by
// name (create.ts resolveTemplate, templates first, else a VM of that name), so a half-imported
// VM is never under the name an image names.
//
// Its identity is in extraConfig under `virtrigaud.image.*`, not the `virtrigaud.owner.*` keys of
// a VM (identity.ts): the importing VM is no template yet, and under the VM keys findByIdentity
// would take it for the owner's VM. The keys alone do not identify it either: a VM cloned from the
// template copies its extraConfig, so only a VM of one of the two names, with the keys naming the
// same owner and image, is the image.

import { createHash } from 'node:crypto';
import { ConflictError, type Identity } from '../../contracts/driver.js';
import { listVMs, requireReadable, type VmRecord, type VsphereContext } from './vm.js';

export const IMAGE_KEY = {
  uid: 'virtrigaud.image.owner.uid',
  namespace: 'virtrigaud.image.owner.namespace',
  owner: 'virtrigaud.image.owner.name',
  name: 'virtrigaud.image.name',
  /** The SHA-256 of the file it was imported from: the same name from another file is a Conflict. */
  sha256: 'virtrigaud.image.sha256',
} as const;

// vSphere's limit for an inventory name.
const NAME_LIMIT = 80;

export interface ImportNames {
  importing: string;
  final: string;
}

/**
 * The two names of an owner's image: `vr-import-<uid>-<name>` when the name is already a plain
 * lower-case word that fits, else a slug of it with a hash of the owner and name, so two names
 * never share one.
 */
export function importNames(uid: string, name: string): ImportNames {
  const owner = uid.toLowerCase();
  const hash = createHash('sha256').update(`${owner}\n${name}`).digest('hex');
  const base = `vr-import-${owner}`;
  const slug = name.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
  const plain = `${base}-${slug}`;
  const room = NAME_LIMIT - base.length - 12;
  const final =
    slug === name && slug !== '' && plain.length <= NAME_LIMIT
      ? plain
      : `${base}-${slug.slice(0, Math.max(0, room)).replace(/-+$/, '')}-${hash.slice(0, 10)}`.replace(/--+/g, '-').slice(0, NAME_LIMIT);
  return { importing: `vr-importing-${owner}-${hash.slice(0, 12)}`.slice(0, NAME_LIMIT), final };
}

export function imageEntries(owner: Identity, name: string, sha256: string): [string, string][] {
  return [
    [IMAGE_KEY.uid, owner.uid],
    [IMAGE_KEY.namespace, owner.namespace],
    [IMAGE_KEY.owner, owner.name],
    [IMAGE_KEY.name, name],
    [IMAGE_KEY.sha256, sha256],
  ];
}

export interface ImportedVM {
  vm: VmRecord;
  /** Whole and a template under the name the image names. */
  finished: boolean;
  sha256: string | undefined;
}

/**
 * The VMs of the owner's image `name` (normally none or one), read afresh. A VM of one of its
 * names that vSphere cannot read is Unreachable; one whose keys name another owner or image is
 * Conflict: it is never taken, changed or destroyed.
 */
export async function findImported(ctx: VsphereContext, owner: Identity, name: string, signal?: AbortSignal): Promise<ImportedVM[]> {
  const names = importNames(owner.uid, name);
  ctx.vmList.invalidate();
  const found: ImportedVM[] = [];
  for (const listed of await listVMs(ctx, signal)) {
    if (listed.name !== names.final && listed.name !== names.importing) continue;
    const vm = requireReadable(listed);
    if (vm.extraConfig.get(IMAGE_KEY.uid) !== owner.uid || vm.extraConfig.get(IMAGE_KEY.name) !== name) {
      throw new ConflictError(`VM ${vm.ref.value} is named ${vm.name}, the name of image ${JSON.stringify(name)} of ${owner.namespace}/${owner.name}, but was not imported for it`);
    }
    found.push({ vm, finished: vm.template && vm.name === names.final, sha256: vm.extraConfig.get(IMAGE_KEY.sha256) });
  }
  return found;
}
