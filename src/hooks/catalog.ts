// Sync hooks of the kinds that describe rather than do: VMClass, VMImage, VMNetworkAttachment.
// They check what the schema cannot and publish Ready, so `kubectl wait` works for every kind.
import type { VMClassObject } from '../contracts/crds/vmclass.js';
import type { VMImageObject } from '../contracts/crds/vmimage.js';
import type { VMNetworkAttachmentObject } from '../contracts/crds/vmnetworkattachment.js';
import type { SyncRequestBody, SyncResponse } from '../contracts/metacontroller.js';
import { MiB, parseQuantity } from '../contracts/quantity.js';
import { buildConditions, previousConditions } from './conditions.js';

interface CatalogObject {
  metadata: { generation?: number | undefined };
  status?: Record<string, unknown> | undefined;
}

function respond(object: CatalogObject, problem: string | undefined, now: number, extra: Record<string, unknown> = {}): SyncResponse {
  const generation = object.metadata.generation;
  const conditions = buildConditions(
    previousConditions(object.status),
    [
      problem
        ? { type: 'Ready', status: false, reason: 'InvalidSpec', message: problem }
        : { type: 'Ready', status: true, reason: 'Valid', message: 'the spec is valid' },
    ],
    now,
    generation,
  );
  const status: Record<string, unknown> = { ...extra, conditions };
  if (generation !== undefined) status['observedGeneration'] = generation;
  return { status, children: [] };
}

/** The memory of a VMClass in bytes, or why it is not usable. */
export function classMemory(memory: string): { ok: true; bytes: number } | { ok: false; problem: string } {
  const bytes = parseQuantity(memory);
  if (bytes === undefined || bytes < 64 * MiB || bytes % MiB !== 0) {
    return { ok: false, problem: `memory ${memory} is not a whole number of MiB of at least 64Mi` };
  }
  return { ok: true, bytes };
}

export function syncVMClass(request: SyncRequestBody<VMClassObject>, now: number): SyncResponse {
  const memory = classMemory(request.parent.spec.memory);
  return respond(request.parent, memory.ok ? undefined : memory.problem, now);
}

export function syncVMImage(request: SyncRequestBody<VMImageObject>, now: number): SyncResponse {
  const spec = request.parent.spec;
  const problem = (spec.source === undefined) === (spec.url === undefined) ? 'set exactly one image source: source or url' : undefined;
  return respond(request.parent, problem, now, problem ? {} : { sourceType: spec.url ? 'URL' : 'Template' });
}

export function syncVMNetworkAttachment(request: SyncRequestBody<VMNetworkAttachmentObject>, now: number): SyncResponse {
  const spec = request.parent.spec;
  const problem = (spec.bridge === undefined) === (spec.network === undefined) ? 'set exactly one of bridge and network' : undefined;
  return respond(request.parent, problem, now);
}

