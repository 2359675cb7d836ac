// Who is on which host, as placement reads it (Inventory.hosts[].placed): pure, from the VM list
// and vCenter's running clones that inventory.ts reads, so it costs no call per VM.
//
// A VM is listed on its `runtime.host` with the record its extraConfig holds (placement-record.ts)
// and the owner its identity names. It is `settling`, its record not to be trusted yet, while
// - vSphere cannot read its configuration, and its name or vmx path bears one of our placeholders:
//   one of our clones being made (or one of our VMs whose files cannot be reached). Any other VM
//   vSphere cannot read was made by no clone of ours, so it has no record to miss: it is listed
//   without one (and without a size, which the host's allocation cannot count either);
// - it bears a placeholder its identity does not name: a clone of another VM whose configuration
//   vCenter has not rewritten yet still carries its source's identity and record (find.ts);
// - a clone task still makes it.
// A clone vCenter has not registered yet is listed as settling on the host its VmBeingClonedEvent
// names, or on every host when vSphere does not say (vcsim links no event to its tasks): the
// placement of every VM then waits until the clone ends, which is safe. Its placeholder names its
// owner, so an owner's own clone never has it wait for itself.
// vcsim 0.24.2 clones onto the source's host whatever the spec asks, and create.ts moves the VM
// within the same create call: until then it is listed where vSphere says it is.

import type { PlacedVMInfo } from '../../contracts/driver.js';
import { MiB } from '../../contracts/quantity.js';
import { morefOf } from './client.js';
import type { RunningClone } from './find.js';
import { placeholderOwner, placeholderOwnerOf } from './identity.js';
import { recordOf } from './placement-record.js';
import { intAt } from './xml.js';
import type { VmRecord } from './vm.js';

/** The host a VM runs on (its moid), when vSphere says. */
export function hostOf(vm: VmRecord): string | undefined {
  return morefOf(vm.object.props.get('runtime.host'))?.value;
}

/** What the host's allocation counts for a VM: its configured CPUs and memory (none while unreadable). */
export function sizeOf(vm: VmRecord): { cpus: number; memoryBytes: number } {
  return {
    cpus: intAt(vm.object.props.get('config.hardware.numCPU')) ?? 0,
    memoryBytes: (intAt(vm.object.props.get('config.hardware.memoryMB')) ?? 0) * MiB,
  };
}

/** A listed VM (not a template) as placement sees it. */
export function placedVM(vm: VmRecord): PlacedVMInfo {
  const placed: PlacedVMInfo = { name: vm.name, labels: {}, ...sizeOf(vm) };
  if (!vm.configReadable) {
    const owner = placeholderOwnerOf(vm);
    return owner === undefined ? placed : { ...placed, owner, settling: true };
  }
  const cloned = placeholderOwner(vm.name);
  if (cloned !== undefined && cloned !== vm.owner?.uid) return { ...placed, owner: cloned, settling: true };
  if (vm.owner !== undefined) placed.owner = vm.owner.uid;
  const record = recordOf(vm.extraConfig);
  placed.labels = record.labels;
  if (record.order !== undefined) placed.order = record.order;
  return placed;
}

/**
 * A clone still running, on one host. Its VM is in no host's allocation until vCenter registers
 * it, so it counts no CPUs or memory here either.
 */
function settlingClone(clone: RunningClone): PlacedVMInfo {
  const placed: PlacedVMInfo = { labels: {}, cpus: 0, memoryBytes: 0, settling: true };
  if (clone.destination === undefined) return placed;
  const owner = placeholderOwner(clone.destination);
  return owner === undefined ? { ...placed, name: clone.destination } : { ...placed, name: clone.destination, owner };
}

/** The hosts a running clone is listed on: the one vSphere names, else every host. */
function cloneHosts(clone: RunningClone, hosts: readonly string[]): readonly string[] {
  const named = clone.destinationHost?.value;
  return named !== undefined && hosts.includes(named) ? [named] : hosts;
}

/**
 * Every VM that is not a template, and every running clone, by host moid (each of `hosts` has a
 * list, empty or not). A clone whose VM is already listed on its host marks that entry settling
 * instead of being listed twice.
 */
export function placedByHost(vms: readonly VmRecord[], clones: readonly RunningClone[], hosts: readonly string[]): Map<string, PlacedVMInfo[]> {
  const byHost = new Map<string, PlacedVMInfo[]>(hosts.map((host) => [host, []]));
  for (const vm of vms) {
    if (vm.template) continue;
    const host = hostOf(vm);
    if (host !== undefined) byHost.get(host)?.push(placedVM(vm));
  }
  for (const clone of clones) {
    for (const host of cloneHosts(clone, hosts)) {
      const list = byHost.get(host) ?? [];
      const registered = clone.destination === undefined ? undefined : list.find((placed) => placed.name === clone.destination);
      if (registered === undefined) {
        list.push(settlingClone(clone));
        continue;
      }
      registered.settling = true;
      const owner = registered.owner ?? placeholderOwner(registered.name ?? '');
      if (owner !== undefined) registered.owner = owner;
    }
  }
  return byHost;
}
