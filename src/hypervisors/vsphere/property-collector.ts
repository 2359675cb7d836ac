// PropertyCollector reads: RetrievePropertiesEx with paging (ContinueRetrievePropertiesEx while a
// token comes back; vcsim never pages, real vCenter does above maxObjects), container views for
// inventory-wide reads, and the decoding of `propSet` into a name → element map. Unset properties
// are omitted from propSet (NOTES "SOAP gotchas"); a missing name reads as undefined.

import { NotFoundError } from '../../contracts/driver.js';
import type { VsphereClient } from './client.js';
import { morefOf } from './client.js';
import { el, moref, typed, type MoRef, type Xml } from './soap.js';
import { child, childrenNamed, textAt, type XmlElement } from './xml.js';

export interface ObjectContent {
  ref: MoRef;
  props: Map<string, XmlElement>;
  /** Paths the server could not read for this object (missingSet), with the fault type. */
  missing: Map<string, string>;
}

const PAGE_SIZE = 500;

export function propertySpec(type: string, paths: readonly string[]): Xml {
  return el('propSet', [el('type', type), el('all', false), ...paths.map((path) => el('pathSet', path))]);
}

/** Every object of a ContainerView (the view itself skipped). */
export function viewObjectSpec(view: MoRef): Xml {
  return el('objectSet', [
    moref('obj', view),
    el('skip', true),
    typed('selectSet', 'TraversalSpec', [el('name', 'traverseView'), el('type', 'ContainerView'), el('path', 'view'), el('skip', false)]),
  ]);
}

export function objectSpec(ref: MoRef): Xml {
  return el('objectSet', [moref('obj', ref), el('skip', false)]);
}

export function decodeObjects(objects: XmlElement[]): ObjectContent[] {
  return objects.flatMap((object) => {
    const ref = morefOf(child(object, 'obj'));
    if (ref === undefined) return [];
    const props = new Map<string, XmlElement>();
    for (const prop of childrenNamed(object, 'propSet')) {
      const name = textAt(prop, 'name');
      const val = child(prop, 'val');
      if (name !== undefined && val !== undefined) props.set(name, val);
    }
    const missing = new Map<string, string>();
    for (const entry of childrenNamed(object, 'missingSet')) {
      const path = textAt(entry, 'path');
      const fault = child(child(entry, 'fault'), 'fault');
      if (path !== undefined) missing.set(path, fault?.type?.name ?? 'unknown');
    }
    return [{ ref, props, missing }];
  });
}

/** RetrievePropertiesEx, following continuation tokens until the result is complete. */
export async function retrieve(client: VsphereClient, propSets: readonly Xml[], objectSets: readonly Xml[], signal?: AbortSignal): Promise<ObjectContent[]> {
  const { propertyCollector } = await client.serviceContent(signal);
  const result: ObjectContent[] = [];
  let page = await client.returnval(
    'RetrievePropertiesEx',
    [moref('_this', propertyCollector), el('specSet', [...propSets, ...objectSets]), el('options', [el('maxObjects', PAGE_SIZE)])],
    signal,
  );
  for (;;) {
    result.push(...decodeObjects(childrenNamed(page, 'objects')));
    const token = textAt(page, 'token');
    if (token === undefined || token === '') return result;
    page = await client.returnval('ContinueRetrievePropertiesEx', [moref('_this', propertyCollector), el('token', token)], signal);
  }
}

/** One object's properties; NotFoundError when it does not exist (any more). */
export async function retrieveOne(client: VsphereClient, ref: MoRef, paths: readonly string[], signal?: AbortSignal): Promise<ObjectContent> {
  const [object] = await retrieve(client, [propertySpec(ref.type, paths)], [objectSpec(ref)], signal);
  if (object === undefined) throw new NotFoundError(`${ref.type} ${ref.value} not found`);
  if (object.missing.get(paths[0] ?? '') === 'ManagedObjectNotFound') throw new NotFoundError(`${ref.type} ${ref.value} not found`);
  return object;
}

/** Properties of every object of `type` below `container`, through a ContainerView that is destroyed after. */
export async function retrieveAll(
  client: VsphereClient,
  container: MoRef,
  type: string,
  paths: readonly string[],
  signal?: AbortSignal,
): Promise<ObjectContent[]> {
  const { viewManager } = await client.serviceContent(signal);
  const view = morefOf(
    await client.returnval(
      'CreateContainerView',
      [moref('_this', viewManager), moref('container', container), el('type', type), el('recursive', true)],
      signal,
    ),
  );
  if (view === undefined) throw new NotFoundError(`no container view for ${container.type} ${container.value}`);
  try {
    return await retrieve(client, [propertySpec(type, paths)], [viewObjectSpec(view)], signal);
  } finally {
    await client.call('DestroyView', [moref('_this', view)]).catch(() => undefined);
  }
}
