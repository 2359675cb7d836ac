// The VMSnapshotSchedule controller: its children are VMSnapshots, one per cron fire, named after
// the fire time (so a repeated sync names the same child). Retention is the children it leaves
// out: Metacontroller deletes those, and each VMSnapshot's finalize deletes its hypervisor snapshot.
import { createHash } from 'node:crypto';
import { API_VERSION } from '../contracts/crds/common.js';
import { Value } from '@sinclair/typebox/value';
import { VMSnapshotScheduleStatus, type VMSnapshotScheduleObject } from '../contracts/crds/vmsnapshot.js';
import { lastFireAtOrBefore, nextFire, parseCron } from '../contracts/cron.js';
import { findObject, objectsOfKind, type CustomizeResponse, type KubeObject, type SyncRequestBody, type SyncResponse } from '../contracts/metacontroller.js';
import { parseDuration } from '../contracts/quantity.js';
import { buildConditions, previousConditions, type ConditionUpdate } from './conditions.js';
import { rfc3339 } from './time.js';

export const SCHEDULE_LABEL = 'virtrigaud.io/schedule';
export const SCHEDULED_AT_ANNOTATION = 'virtrigaud.io/scheduled-at';

/** status.snapshots names the newest this many; a schedule without retention keeps growing. */
export const MAX_LISTED_SNAPSHOTS = 100;

/** Metacontroller's resync is a safety net; a schedule asks for its next fire, at most this far ahead. */
const MAX_RESYNC_SECONDS = 3600;

export function customizeVMSnapshotSchedule(schedule: VMSnapshotScheduleObject): CustomizeResponse {
  return {
    relatedResources: [
      { apiVersion: API_VERSION, resource: 'virtualmachines', namespace: schedule.metadata.namespace ?? '', names: [schedule.spec.vmRef.name] },
    ],
  };
}

/** `<schedule>-<yyyymmddhhmm>`, shortened with a hash when the schedule's name is long. */
export function childName(schedule: string, fireMs: number): string {
  const stamp = new Date(fireMs).toISOString().slice(0, 16).replace(/[-T:]/g, '');
  const room = 253 - stamp.length - 1;
  if (schedule.length <= room) return `${schedule}-${stamp}`;
  const hash = createHash('sha256').update(schedule).digest('hex').slice(0, 8);
  return `${schedule.slice(0, room - 9)}-${hash}-${stamp}`;
}

interface Kept {
  name: string;
  firedAt: number;
}

function scheduledAt(child: KubeObject): number {
  const annotated = child.metadata.annotations?.[SCHEDULED_AT_ANNOTATION];
  const parsed = annotated ? Date.parse(annotated) : NaN;
  if (!Number.isNaN(parsed)) return parsed;
  const created = child.metadata['creationTimestamp'];
  return typeof created === 'string' ? Date.parse(created) : 0;
}

export function syncVMSnapshotSchedule(request: SyncRequestBody<VMSnapshotScheduleObject>, now: number): SyncResponse {
  const schedule = request.parent;
  const spec = schedule.spec;
  const namespace = schedule.metadata.namespace;
  const status = schedule.status ?? {};
  const retention = spec.retentionPolicy ?? {};

  // The children as they are, oldest first; those being deleted are already on their way out.
  const existing: Kept[] = objectsOfKind(request.children, API_VERSION, 'VMSnapshot')
    .filter((child) => child.metadata.deletionTimestamp === undefined)
    .map((child) => ({ name: child.metadata.name, firedAt: scheduledAt(child) }))
    .sort((a, b) => a.firedAt - b.firedAt || a.name.localeCompare(b.name));

  const updates: ConditionUpdate[] = [];
  let kept = existing;
  const recorded = status['lastScheduleTime'];
  let lastScheduleTime = Value.Check(VMSnapshotScheduleStatus.properties.lastScheduleTime, recorded) ? recorded : undefined;
  let nextScheduleTime: string | undefined;
  let resyncAfterSeconds = MAX_RESYNC_SECONDS;

  const found = findObject(request.related, { apiVersion: API_VERSION, kind: 'VirtualMachine', namespace, name: spec.vmRef.name });
  // A VM being deleted is as good as gone: no new snapshots of it.
  const vm = found?.metadata.deletionTimestamp === undefined ? found : undefined;
  const cron = parseCron(spec.schedule);
  if (!vm) {
    const deleteOnVMDelete = retention.deleteOnVMDelete ?? true;
    if (deleteOnVMDelete) kept = [];
    const what = deleteOnVMDelete ? 'its snapshots are deleted (deleteOnVMDelete)' : 'its snapshots are kept (deleteOnVMDelete: false)';
    updates.push({ type: 'Ready', status: false, reason: 'VMNotFound', message: `VirtualMachine ${spec.vmRef.name} is gone; ${what}` });
  } else if (!cron.ok) {
    updates.push({ type: 'Ready', status: false, reason: 'InvalidSchedule', message: `schedule: ${cron.problem}` });
  } else {
    const created = Date.parse(String(schedule.metadata.creationTimestamp ?? '')) || now;
    const last = lastScheduleTime ? Date.parse(lastScheduleTime) : undefined;
    // Only the latest fire due counts; fires missed while nothing synced are not made up for.
    const due = lastFireAtOrBefore(cron.schedule, now, last !== undefined ? last + 1 : created);
    if (due !== undefined && !spec.suspend) {
      const name = childName(schedule.metadata.name, due);
      if (!kept.some((child) => child.name === name)) kept = [...kept, { name, firedAt: due }];
      lastScheduleTime = rfc3339(due);
    }
    const next = spec.suspend ? undefined : nextFire(cron.schedule, now);
    if (next !== undefined) {
      nextScheduleTime = rfc3339(next);
      resyncAfterSeconds = Math.min(resyncAfterSeconds, Math.max(1, Math.ceil((next - now) / 1000)));
    }
    updates.push(
      spec.suspend
        ? { type: 'Ready', status: true, reason: 'Suspended', message: 'suspended: no new snapshots; retention still applies' }
        : { type: 'Ready', status: true, reason: 'Scheduled', message: next === undefined ? 'the schedule never fires again' : `next snapshot at ${nextScheduleTime}` },
    );
  }

  // Retention: by age, then by count (oldest first).
  const maxAgeMs = retention.maxAge ? parseDuration(retention.maxAge) : undefined;
  if (maxAgeMs !== undefined) {
    kept = kept.filter((child) => child.firedAt + maxAgeMs > now);
    const oldest = kept[0];
    if (oldest) resyncAfterSeconds = Math.min(resyncAfterSeconds, Math.max(1, Math.ceil((oldest.firedAt + maxAgeMs - now) / 1000)));
  }
  if (retention.maxCount !== undefined && kept.length > retention.maxCount) kept = kept.slice(kept.length - retention.maxCount);

  // Children are never updated (OnDelete), so each is described from the schedule rather than by
  // echoing what the request says it holds.
  const childSpec = snapshotSpec(schedule);
  const children: KubeObject[] = kept.map((child) => ({
    apiVersion: API_VERSION,
    kind: 'VMSnapshot',
    metadata: {
      name: child.name,
      labels: { [SCHEDULE_LABEL]: schedule.metadata.name.slice(0, 63) },
      annotations: { [SCHEDULED_AT_ANNOTATION]: rfc3339(child.firedAt) },
    },
    spec: childSpec,
  }));

  const generation = schedule.metadata.generation;
  const newStatus: Record<string, unknown> = {};
  if (lastScheduleTime) newStatus['lastScheduleTime'] = lastScheduleTime;
  if (nextScheduleTime) newStatus['nextScheduleTime'] = nextScheduleTime;
  newStatus['snapshots'] = kept.slice(-MAX_LISTED_SNAPSHOTS).map((child) => child.name);
  newStatus['conditions'] = buildConditions(previousConditions(status), updates, now, generation);
  if (generation !== undefined) newStatus['observedGeneration'] = generation;
  return { status: newStatus, children, resyncAfterSeconds };
}

function snapshotSpec(schedule: VMSnapshotScheduleObject): Record<string, unknown> {
  const template = schedule.spec.snapshot ?? {};
  const spec: Record<string, unknown> = { vmRef: { name: schedule.spec.vmRef.name } };
  spec['description'] = template.description ?? `scheduled by VMSnapshotSchedule ${schedule.metadata.name}`;
  if (template.includeMemory !== undefined) spec['includeMemory'] = template.includeMemory;
  if (template.quiesce !== undefined) spec['quiesce'] = template.quiesce;
  return spec;
}
