// Snapshot verbs. A snapshot keeps the hardware and disks of the moment it was taken, and the
// running state only when it includes memory, which is what revert gives back.

import {
  ConflictError,
  InvalidSpecError,
  NotFoundError,
  type SnapshotInfo,
  type SnapshotRequest,
  type Started,
  type VMRef,
} from '../../contracts/driver.js';
import { powerDown } from './lifecycle.js';
import { copyDisk, type SnapshotRecord, type VMRecord } from './model.js';
import type { SimWorld } from './world.js';

export function createSnapshot(world: SimWorld, ref: VMRef, request: SnapshotRequest, failWith?: string): { id: string } & Started {
  const vm = world.requireIdle(ref);
  world.requireCapability('snapshots', 'snapshots');
  if (request.memory) world.requireCapability('memorySnapshots', 'memory snapshots');
  if (request.quiesce) world.requireCapability('quiescedSnapshots', 'quiesced snapshots');
  if (request.name.trim() === '') throw new InvalidSpecError('the snapshot name is empty');
  // PVE refuses a second snapshot of the same name; a retried create must find the first one instead.
  for (const existing of vm.snapshots.values()) {
    if (existing.name === request.name) throw new ConflictError(`VM ${vm.id} already has a snapshot named '${request.name}'`);
  }
  const snapshot: SnapshotRecord = {
    id: world.allocateSnapshotId(),
    name: request.name,
    createdAt: world.clock.now(),
    // A stopped VM has no memory to save: the request is honoured as a disk-only snapshot.
    memory: request.memory && vm.powerState === 'On',
    cpus: vm.cpus,
    memoryBytes: vm.memoryBytes,
    disks: vm.disks.map(copyDisk),
  };
  if (request.description !== undefined) snapshot.description = request.description;
  // Listed from the start, as PVE lists a snapshot in "prepare" state, so a retry can see it.
  vm.snapshots.set(snapshot.id, snapshot);
  const task = world.startTask({
    vm,
    kind: 'qmsnapshot',
    lock: 'snapshot',
    duration: world.durations.snapshot,
    ...(failWith === undefined ? {} : { failWith }),
    onSuccess: world.whileExists(vm, () => undefined),
    onFailure: () => vm.snapshots.delete(snapshot.id),
  });
  return { id: snapshot.id, task: task.id };
}

export function listSnapshots(world: SimWorld, ref: VMRef): SnapshotInfo[] {
  const vm = world.requireOwned(ref);
  return [...vm.snapshots.values()].map((snapshot) => {
    const info: SnapshotInfo = {
      id: snapshot.id,
      name: snapshot.name,
      createdAt: new Date(snapshot.createdAt).toISOString(),
      memory: snapshot.memory,
    };
    if (snapshot.description !== undefined) info.description = snapshot.description;
    if (snapshot.memory) info.sizeBytes = snapshot.memoryBytes;
    return info;
  });
}

export function deleteSnapshot(world: SimWorld, ref: VMRef, snapshotId: string, failWith?: string): Started {
  const vm = world.requireIdle(ref);
  world.requireCapability('snapshots', 'snapshots');
  requireSnapshot(vm, snapshotId);
  const task = world.startTask({
    vm,
    kind: 'delsnapshot',
    lock: 'snapshot-delete',
    duration: world.durations.snapshot,
    ...(failWith === undefined ? {} : { failWith }),
    onSuccess: world.whileExists(vm, () => vm.snapshots.delete(snapshotId)),
  });
  return { task: task.id };
}

export function revertSnapshot(world: SimWorld, ref: VMRef, snapshotId: string, failWith?: string): Started {
  const vm = world.requireIdle(ref);
  world.requireCapability('snapshots', 'snapshots');
  const snapshot = requireSnapshot(vm, snapshotId);
  const task = world.startTask({
    vm,
    kind: 'rollback',
    lock: 'rollback',
    duration: world.durations.snapshot,
    ...(failWith === undefined ? {} : { failWith }),
    onSuccess: world.whileExists(vm, (at) => {
      vm.cpus = snapshot.cpus;
      vm.memoryBytes = snapshot.memoryBytes;
      vm.disks = snapshot.disks.map(copyDisk);
      powerDown(vm);
      if (snapshot.memory) {
        // The guest resumes where it was, addresses and all: no boot to wait for.
        vm.powerState = 'On';
        vm.ipsVisibleAt = at;
      }
    }),
  });
  return { task: task.id };
}

function requireSnapshot(vm: VMRecord, snapshotId: string): SnapshotRecord {
  const snapshot = vm.snapshots.get(snapshotId);
  if (snapshot === undefined) throw new NotFoundError(`VM ${vm.id} has no snapshot '${snapshotId}'`);
  return snapshot;
}
