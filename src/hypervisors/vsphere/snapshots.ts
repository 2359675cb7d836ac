// Snapshot verbs. A snapshot's ID is its moid (`snapshot-70`); vSphere snapshot names need not be
// unique, so a name is accepted as an ID only when exactly one snapshot carries it.

import { HypervisorError, InvalidSpecError, NotFoundError, type SnapshotInfo, type SnapshotRequest, type Started, type VMRef } from '../../contracts/driver.js';
import { morefOf } from './client.js';
import { powerStateOf, startTask } from './power.js';
import { el, type MoRef } from './soap.js';
import { settledNow } from './tasks.js';
import { child, childrenNamed, textAt, type XmlElement } from './xml.js';
import { requireOwned, type VsphereContext } from './vm.js';

interface TreeNode {
  ref: MoRef;
  name: string;
  description: string | undefined;
  createdAt: string;
  state: string | undefined;
}

/** The snapshot tree (`snapshot` property, a VirtualMachineSnapshotInfo) flattened, oldest first. */
export function flattenSnapshots(info: XmlElement | undefined): TreeNode[] {
  const result: TreeNode[] = [];
  const walk = (nodes: XmlElement[]) => {
    for (const node of nodes) {
      const ref = morefOf(child(node, 'snapshot'));
      if (ref !== undefined) {
        result.push({
          ref,
          name: textAt(node, 'name') ?? ref.value,
          description: textAt(node, 'description'),
          createdAt: textAt(node, 'createTime') ?? '',
          state: textAt(node, 'state'),
        });
      }
      walk(childrenNamed(node, 'childSnapshotList'));
    }
  };
  walk(childrenNamed(info, 'rootSnapshotList'));
  return result.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

function findSnapshot(nodes: TreeNode[], idOrName: string, vmId: string): TreeNode {
  const byId = nodes.find((node) => node.ref.value === idOrName);
  if (byId !== undefined) return byId;
  const byName = nodes.filter((node) => node.name === idOrName);
  if (byName.length === 1) return byName[0] as TreeNode;
  if (byName.length > 1) throw new InvalidSpecError(`VM ${vmId} has ${byName.length} snapshots named '${idOrName}'; use the snapshot ID`);
  throw new NotFoundError(`VM ${vmId} has no snapshot '${idOrName}'`);
}

export async function createSnapshot(ctx: VsphereContext, ref: VMRef, request: SnapshotRequest, signal?: AbortSignal): Promise<{ id: string } & Started> {
  const vm = await requireOwned(ctx, ref, signal);
  const running = powerStateOf(vm) === 'poweredOn';
  // A stopped VM has no memory to save and no guest to quiesce: a plain disk snapshot honours both.
  const started = await startTask(
    ctx,
    'CreateSnapshot_Task',
    vm.ref,
    [el('name', request.name), el('description', request.description ?? ''), el('memory', request.memory && running), el('quiesce', request.quiesce && running)],
    signal,
  );
  if (started.task === undefined) throw new HypervisorError(`vSphere answered CreateSnapshot_Task on VM ${ref.id} without a task`);
  // The snapshot's moid is the task's result; a task still running leaves the (then unique) name
  // as the ID, and the caller follows the task: no waiting past the caller's budget.
  const done = await settledNow(ctx, { type: 'Task', value: started.task }, `snapshot of VM ${ref.id}`, signal);
  if (done?.result !== undefined) return { id: done.result.value };
  return { id: request.name, task: started.task };
}

export async function listSnapshots(ctx: VsphereContext, ref: VMRef, signal?: AbortSignal): Promise<SnapshotInfo[]> {
  const vm = await requireOwned(ctx, ref, signal);
  return flattenSnapshots(vm.object.props.get('snapshot')).map((node) => {
    const info: SnapshotInfo = { id: node.ref.value, name: node.name, createdAt: node.createdAt, memory: node.state === 'poweredOn' };
    if (node.description !== undefined && node.description !== '') info.description = node.description;
    return info;
  });
}

export async function deleteSnapshot(ctx: VsphereContext, ref: VMRef, snapshotId: string, signal?: AbortSignal): Promise<Started> {
  const vm = await requireOwned(ctx, ref, signal);
  const node = findSnapshot(flattenSnapshots(vm.object.props.get('snapshot')), snapshotId, ref.id);
  return startTask(ctx, 'RemoveSnapshot_Task', node.ref, [el('removeChildren', false), el('consolidate', true)], signal);
}

/** RevertToSnapshot_Task: a snapshot with memory resumes the VM running; one without leaves it off. */
export async function revertSnapshot(ctx: VsphereContext, ref: VMRef, snapshotId: string, signal?: AbortSignal): Promise<Started> {
  const vm = await requireOwned(ctx, ref, signal);
  const node = findSnapshot(flattenSnapshots(vm.object.props.get('snapshot')), snapshotId, ref.id);
  return startTask(ctx, 'RevertToSnapshot_Task', node.ref, [], signal);
}
