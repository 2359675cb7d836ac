// The Driver conformance suite (src/conformance) as tap subtests: each driver's test file supplies
// a target and runs every case against a fresh one; a check that holds is a tap pass, the first
// that fails is a tap failure with its reason.
import type { Test } from 'tap';
import type { CreateSpec, Identity, ObservedVM } from '../../src/contracts/driver.js';
import {
  CONFORMANCE_CASES,
  createFully as createThroughSteps,
  CaseSkipped,
  CaseUnsupported,
  Checks,
  ConformanceFailure,
  type CaseContext,
  type ConformanceTarget as SuiteTarget,
} from '../../src/conformance/index.js';

export { basicSpec } from '../../src/conformance/index.js';

export interface ConformanceTarget extends SuiteTarget {
  /** A VM the driver did not create and must never change. */
  addForeignVM(name: string): Promise<string>;
  close(): Promise<void>;
}

/** Creates a VM through every step its hypervisor needs (create, then continue while incomplete). */
export function createFully(target: ConformanceTarget, spec: CreateSpec): Promise<ObservedVM> {
  return createThroughSteps(target, spec);
}

const owner = (name: string): Identity => ({ uid: `0a1b2c3d-0000-4000-8000-${name.padEnd(12, '0').slice(0, 12)}`, namespace: 'conformance', name });

export function driverConformance(t: Test, name: string, makeTarget: () => Promise<ConformanceTarget>): void {
  for (const conformanceCase of CONFORMANCE_CASES) {
    t.test(`${name}: ${conformanceCase.title}`, async (t) => {
      const target = await makeTarget();
      t.teardown(() => target.close());
      const context: CaseContext = {
        target,
        check: new Checks((message) => t.pass(message)),
        owner,
        vmName: (key) => `conf-${key}`,
        scratch: 'conformance',
        unknownId: '987654',
        requestedId: 4321,
        recordImport: () => undefined,
      };
      try {
        await conformanceCase.run(context);
      } catch (error) {
        if (error instanceof CaseUnsupported) t.pass(`unsupported: ${error.message}`);
        else if (error instanceof CaseSkipped) t.fail(`every CI target provides what the case needs: ${error.message}`);
        else if (error instanceof ConformanceFailure) t.fail(error.message);
        else throw error;
      }
    });
  }
}
