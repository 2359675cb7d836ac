// Sync hooks of the kinds that describe rather than do: VMClass, VMImage, VMNetworkAttachment.
// They check what the schema cannot and publish Ready, so `kubectl wait` works for every kind.
import type { VMClassObject } from '../contracts/crds/vmclass.js';
import type { VMImageObject } from '../contracts/crds/vmimage.js';
import type { VMNetworkAttachmentObject } from '../contracts/crds/vmnetworkattachment.js';
import type { SyncRequestBody, SyncResponse } from '../contracts/metacontroller.js';
import { normalizeVMClass } from '../contracts/normalize/vmclass.js';
import { checkVMImage, imageSourceSummary } from '../contracts/normalize/vmimage.js';
import { checkVMNetworkAttachment, networkBranches } from '../contracts/normalize/vmnetworkattachment.js';
import { formatBytes } from '../contracts/quantity.js';
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

export function syncVMClass(request: SyncRequestBody<VMClassObject>, now: number): SyncResponse {
  const normalized = normalizeVMClass(request.parent.spec);
  if (!normalized.ok) return respond(request.parent, normalized.problem, now);
  const vmClass = normalized.value;
  const summary: Record<string, unknown> = { cpus: vmClass.cpus, memory: formatBytes(vmClass.memoryBytes) };
  if (vmClass.firmware !== undefined) summary['firmware'] = vmClass.firmware;
  return respond(request.parent, undefined, now, summary);
}

export function syncVMImage(request: SyncRequestBody<VMImageObject>, now: number): SyncResponse {
  const spec = request.parent.spec;
  const problem = checkVMImage(spec);
  if (problem !== undefined) return respond(request.parent, problem, now);
  const summary: Record<string, unknown> = { ...imageSourceSummary(spec) };
  return respond(request.parent, undefined, now, summary);
}

export function syncVMNetworkAttachment(request: SyncRequestBody<VMNetworkAttachmentObject>, now: number): SyncResponse {
  const spec = request.parent.spec;
  const problem = checkVMNetworkAttachment(spec);
  if (problem !== undefined) return respond(request.parent, problem, now);
  const branches = networkBranches(spec);
  return respond(request.parent, undefined, now, branches === undefined ? {} : { branches });
}
