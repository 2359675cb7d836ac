// The Driver conformance suite: one set of behaviours every driver must show, whatever the
// hypervisor behind it. The tap suites (test/conformance) run it against every driver in CI;
// `vcts` (src/cli/vcts.ts) runs it against a hypervisor an admin names.
import { diskGrow, deleteVM, foreignVM, hardware, identity, notFound, otherOwner, power, probe, reconfigure } from './cases/core.js';
import { imageImport, isoInstall, quiescedSnapshot } from './cases/images.js';
import { hardResetCase, machineCases, suspendCase } from './cases/machine.js';
import { diskExport, migrationVolume, placementRecord } from './cases/migration.js';
import { nicCases } from './cases/nics.js';
import { fullClone, linkedClone, memorySnapshot, snapshotName, snapshotRevert } from './cases/snapshots.js';
import type { ConformanceCase } from './target.js';

export { CaseSkipped, CaseUnsupported, Checks, ConformanceFailure, sameValue, matches, show, skipped, unsupported, type ErrorPattern } from './checks.js';
export {
  basicSpec,
  createFully,
  deleteFully,
  powerTo,
  taskDone,
  type CaseCapability,
  type CaseContext,
  type ConformanceCase,
  type ConformanceTarget,
} from './target.js';

/** Every case, in the order they run. */
export const CONFORMANCE_CASES: readonly ConformanceCase[] = [
  probe,
  identity,
  hardware,
  power,
  reconfigure,
  diskGrow,
  foreignVM,
  otherOwner,
  deleteVM,
  placementRecord,
  diskExport,
  migrationVolume,
  ...machineCases,
  ...nicCases,
  imageImport,
  isoInstall,
  suspendCase,
  hardResetCase,
  notFound,
  snapshotRevert,
  snapshotName,
  memorySnapshot,
  quiescedSnapshot,
  linkedClone,
  fullClone,
];
