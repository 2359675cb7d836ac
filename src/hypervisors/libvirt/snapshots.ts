// Internal qcow2 snapshots: with the guest's memory when the domain runs (QEMU savevm), disk-only
// when it is shut off. External (--disk-only) snapshots are not used: libvirt 9.0 can neither
// revert nor delete them (NOTES §3). The snapshot ID is its name.

import {
  InvalidSpecError,
  NotFoundError,
  UnsupportedError,
  type SnapshotInfo,
  type SnapshotRequest,
  type Started,
  type VMRef,
} from '../../contracts/driver.js';
import type { LibvirtContext } from './context.js';
import type { TaskStep } from './tasks.js';
import { domainState, isActive, requireCreated, requireOwned } from './observe.js';

const SNAPSHOT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

function checkName(name: string): void {
  if (!SNAPSHOT_NAME.test(name)) throw new InvalidSpecError('snapshot names are letters, digits, ".", "_" and "-", starting with a letter or digit');
}

export async function createSnapshot(ctx: LibvirtContext, ref: VMRef, request: SnapshotRequest, signal?: AbortSignal): Promise<{ id: string } & Started> {
  checkName(request.name);
  if (request.quiesce) throw new UnsupportedError('quiesced snapshots are not supported by the libvirt driver');
  const domain = await requireCreated(ctx, ref, signal);
  // QEMU's internal snapshot of a running domain always includes its memory (a disk-only one would
  // have to be external, which libvirt 9.0 cannot revert), so a running VM's snapshot has memory
  // whether asked or not, and a stopped VM's has none; snapshotList reports which.
  const args = ['virsh', '-q', '-c', ctx.host.uri, 'snapshot-create-as', '--domain', domain.uuid, '--name', request.name, '--atomic'];
  if (request.description !== undefined) args.push('--description', request.description);
  // Saving the guest's memory takes as long as writing it out: a task, not a hook-deadline call.
  if (await snapshotExists(ctx, domain.uuid, request.name, signal)) return { id: request.name };
  return { id: request.name, task: await ctx.tasks.start([{ key: domain.uuid, kind: 'snapshot' }], [args], signal) };
}

interface SnapshotXml {
  name: string;
  description?: string;
  state: string;
  creationTime: number;
}

function parseSnapshotXml(xml: string): SnapshotXml {
  const tag = (name: string) => new RegExp(`^  <${name}>([^<]*)</${name}>`, 'm').exec(xml)?.[1];
  const unescape = (text: string) =>
    text.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
  const result: SnapshotXml = { name: unescape(tag('name') ?? ''), state: tag('state') ?? '', creationTime: Number(tag('creationTime') ?? 0) };
  const description = tag('description');
  if (description !== undefined) result.description = unescape(description);
  return result;
}

export async function listSnapshots(ctx: LibvirtContext, ref: VMRef, signal?: AbortSignal): Promise<SnapshotInfo[]> {
  const domain = await requireOwned(ctx, ref, signal);
  const names = (await ctx.host.virsh(['snapshot-list', '--domain', domain.uuid, '--name'], { signal }))
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
  const infos: SnapshotInfo[] = [];
  for (const name of names) {
    const snapshot = parseSnapshotXml(await ctx.host.virsh(['snapshot-dumpxml', '--domain', domain.uuid, '--snapshotname', name], { signal }));
    const info: SnapshotInfo = {
      id: name,
      name,
      createdAt: new Date(snapshot.creationTime * 1000).toISOString(),
      // The state the domain was in: running (or paused) means its memory was saved too.
      memory: snapshot.state === 'running' || snapshot.state === 'paused',
    };
    if (snapshot.description !== undefined) info.description = snapshot.description;
    infos.push(info);
  }
  return infos;
}

async function snapshotExists(ctx: LibvirtContext, id: string, name: string, signal?: AbortSignal): Promise<boolean> {
  try {
    await ctx.host.virsh(['snapshot-info', '--domain', id, '--snapshotname', name], { signal });
    return true;
  } catch (error) {
    // Only libvirt saying so means there is none: a failure to ask is not an answer.
    if (error instanceof NotFoundError) return false;
    throw error;
  }
}

async function requireSnapshot(ctx: LibvirtContext, id: string, name: string, signal?: AbortSignal): Promise<void> {
  if (!(await snapshotExists(ctx, id, name, signal))) throw new NotFoundError(`snapshot ${name} not found`);
}

/** Reverts and keeps the VM's power state: a running VM runs on from the snapshot, a suspended one stays paused, a stopped one stays off. */
export async function revertSnapshot(ctx: LibvirtContext, ref: VMRef, snapshotId: string, signal?: AbortSignal): Promise<Started> {
  checkName(snapshotId);
  const domain = await requireCreated(ctx, ref, signal);
  await requireSnapshot(ctx, domain.uuid, snapshotId, signal);
  const state = await domainState(ctx, domain.uuid, signal);
  const wasRunning = isActive(state);
  const keep = state === 'paused' ? ['--paused'] : wasRunning ? ['--running'] : [];
  const steps: TaskStep[] = [['virsh', '-q', '-c', ctx.host.uri, 'snapshot-revert', '--domain', domain.uuid, '--snapshotname', snapshotId, ...keep]];
  // A memory snapshot brings the domain back running; it was off before the revert.
  if (!wasRunning) steps.push(['vr_stop', ctx.host.uri, domain.uuid]);
  return { task: await ctx.tasks.start([{ key: domain.uuid, kind: 'revert' }], steps, signal) };
}

export async function deleteSnapshot(ctx: LibvirtContext, ref: VMRef, snapshotId: string, signal?: AbortSignal): Promise<Started> {
  checkName(snapshotId);
  const domain = await requireOwned(ctx, ref, signal);
  await requireSnapshot(ctx, domain.uuid, snapshotId, signal);
  const step: TaskStep = ['virsh', '-q', '-c', ctx.host.uri, 'snapshot-delete', '--domain', domain.uuid, '--snapshotname', snapshotId];
  return { task: await ctx.tasks.start([{ key: domain.uuid, kind: 'snapshot-delete' }], [step], signal) };
}
