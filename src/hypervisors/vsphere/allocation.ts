// CPU and memory allocation (vim.ResourceAllocationInfo) for the configuration step: limits and
// reservations in MHz and MB, CPU shares as a custom level. Elements follow the WSDL sequence
// (reservation, expandableReservation, limit, shares, overheadLimit; SharesInfo: shares, level),
// which vCenter's and vcsim's decoders hold requests to; expandableReservation is ignored for VMs
// and overheadLimit is vCenter's own (vcsim refuses a spec that sets it).

import { InvalidSpecError, type ResourceLimits } from '../../contracts/driver.js';
import { MiB } from '../../contracts/quantity.js';
import { el, type Xml } from './soap.js';

// SharesInfo.shares is an xsd:int.
const MAX_SHARES = 2 ** 31 - 1;

function wholeNumber(value: number | undefined, what: string): void {
  if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) throw new InvalidSpecError(`${what} must be a whole number, at least 0, not ${value}`);
}

function megabytes(bytes: number | undefined, what: string): number | undefined {
  if (bytes === undefined) return undefined;
  wholeNumber(bytes, what);
  if (bytes % MiB !== 0) throw new InvalidSpecError(`${what} must be a whole number of Mi (MiB)`);
  return bytes / MiB;
}

/** Refuses what vSphere would refuse after the clone: negative or fractional amounts, a reservation above its limit. */
export function checkLimits(limits: ResourceLimits | undefined, memoryBytes: number): void {
  if (limits === undefined) return;
  wholeNumber(limits.cpuLimitMHz, 'the CPU limit (MHz)');
  wholeNumber(limits.cpuReservationMHz, 'the CPU reservation (MHz)');
  megabytes(limits.memoryLimitBytes, 'the memory limit');
  megabytes(limits.memoryReservationBytes, 'the memory reservation');
  if (limits.cpuShares !== undefined && (!Number.isInteger(limits.cpuShares) || limits.cpuShares < 1 || limits.cpuShares > MAX_SHARES)) {
    throw new InvalidSpecError(`CPU shares must be a whole number from 1 to ${MAX_SHARES}, not ${limits.cpuShares}`);
  }
  const { cpuLimitMHz, cpuReservationMHz, memoryLimitBytes, memoryReservationBytes } = limits;
  if (cpuLimitMHz !== undefined && cpuReservationMHz !== undefined && cpuReservationMHz > cpuLimitMHz) {
    throw new InvalidSpecError(`the CPU reservation (${cpuReservationMHz} MHz) is more than the CPU limit (${cpuLimitMHz} MHz)`);
  }
  if (memoryLimitBytes !== undefined && memoryReservationBytes !== undefined && memoryReservationBytes > memoryLimitBytes) {
    throw new InvalidSpecError('the memory reservation is more than the memory limit');
  }
  // vSphere cannot reserve memory the VM does not have (InvalidArgument on the reconfiguration).
  if (memoryReservationBytes !== undefined && memoryReservationBytes > memoryBytes) throw new InvalidSpecError("the memory reservation is more than the VM's memory");
}

function allocation(name: string, reservation: number | undefined, limit: number | undefined, shares: number | undefined): Xml | undefined {
  if (reservation === undefined && limit === undefined && shares === undefined) return undefined;
  return el(name, [
    el('reservation', reservation),
    el('limit', limit),
    shares === undefined ? undefined : el('shares', [el('shares', shares), el('level', 'custom')]),
  ]);
}

/** `cpuAllocation` and `memoryAllocation` of a VirtualMachineConfigSpec, each left out when the spec sets nothing for it. */
export function allocationSpecs(limits: ResourceLimits | undefined): { cpu: Xml | undefined; memory: Xml | undefined } {
  if (limits === undefined) return { cpu: undefined, memory: undefined };
  return {
    cpu: allocation('cpuAllocation', limits.cpuReservationMHz, limits.cpuLimitMHz, limits.cpuShares),
    memory: allocation('memoryAllocation', megabytes(limits.memoryReservationBytes, 'the memory reservation'), megabytes(limits.memoryLimitBytes, 'the memory limit'), undefined),
  };
}
