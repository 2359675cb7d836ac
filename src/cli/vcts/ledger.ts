// What a run made, and how it is removed. Every identity a case uses is minted here: namespace
// `vcts`, name `<prefix><key>`, and a UID whose first 96 bits are the run's own (random) and whose
// last 48 count the identities of the run. The cleanup looks VMs up by those UIDs only
// (findByIdentity) and deletes a VM only when the identity it carries is exactly one the run
// minted: a VM the run did not create is never touched, whatever its name.
import { randomUUID } from 'node:crypto';
import { isDriverError, NotFoundError, type Driver, type Identity } from '../../contracts/driver.js';

export const RUN_NAMESPACE = 'vcts';

export interface ImportRecord {
  owner: Identity;
  name: string;
}

export class RunLedger {
  /** The run's UUID: every identity's UID shares its first 24 characters. */
  readonly uid: string;
  readonly owners: Identity[] = [];
  readonly imports: ImportRecord[] = [];
  #serial = 0;

  constructor(readonly prefix: string, uid: string = randomUUID()) {
    this.uid = `${uid.slice(0, 24)}${'0'.repeat(12)}`;
  }

  mint(key: string): Identity {
    this.#serial++;
    const owner = { namespace: RUN_NAMESPACE, name: `${this.prefix}${key}`, uid: `${this.uid.slice(0, 24)}${this.#serial.toString(16).padStart(12, '0')}` };
    this.owners.push(owner);
    return owner;
  }

  recordImport(owner: Identity, name: string): void {
    this.imports.push({ owner, name });
  }
}

export function sameIdentity(found: Identity | undefined, wanted: Identity): boolean {
  return found !== undefined && found.uid === wanted.uid && found.namespace === wanted.namespace && found.name === wanted.name;
}

export interface CleanupOutcome {
  /** IDs of the run's VMs deleted (and images removed, as `image <owner>/<name>`). */
  removed: string[];
  /** What could not be removed, one line each; the run then fails. */
  left: string[];
}

export interface CleanupPlan {
  driver: Driver;
  /** Sleeps between attempts; rejects when the cleanup must stop (a second Ctrl-C). */
  pause(ms: number): Promise<void>;
  /** How long one VM's removal may take. */
  timeoutMs: number;
  now?: () => number;
}

/** Removes the VMs of these owners and these imported images; never anything else. */
export async function cleanUp(plan: CleanupPlan, owners: readonly Identity[], imports: readonly ImportRecord[]): Promise<CleanupOutcome> {
  const outcome: CleanupOutcome = { removed: [], left: [] };
  for (const owner of owners) await removeVM(plan, owner, outcome);
  if (plan.driver.capabilities.diskImport) for (const record of imports) await removeImage(plan, record, outcome);
  return outcome;
}

function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return (text.split('\n')[0] ?? '').slice(0, 300);
}

async function followTask(plan: CleanupPlan, task: string | undefined, deadline: number, now: () => number): Promise<void> {
  if (task === undefined) return;
  for (let pauseMs = 50; now() < deadline; pauseMs = Math.min(pauseMs * 2, 2000)) {
    const status = await plan.driver.taskStatus(task).catch((error: unknown) => {
      if (error instanceof NotFoundError) return { state: 'succeeded' as const, error: undefined };
      throw error;
    });
    if (status.state === 'succeeded' || status.state === 'failed') return;
    await plan.pause(pauseMs);
  }
}

async function removeVM(plan: CleanupPlan, owner: Identity, outcome: CleanupOutcome): Promise<void> {
  const now = plan.now ?? Date.now;
  const deadline = now() + plan.timeoutMs;
  let lastError = 'not gone in time';
  let removedId: string | undefined;
  let unprotected = false;
  for (let pauseMs = 50; now() < deadline; pauseMs = Math.min(pauseMs * 2, 2000)) {
    try {
      const vm = await plan.driver.findByIdentity(owner.uid);
      if (vm === undefined) {
        if (removedId !== undefined) outcome.removed.push(removedId);
        return;
      }
      if (!sameIdentity(vm.owner, owner)) {
        outcome.left.push(`VM ${vm.id || '(no ID yet)'} answered for ${owner.name} (${owner.uid}) but carries another identity: not touched`);
        return;
      }
      if (vm.lock !== undefined || vm.id === '') {
        lastError = `VM ${vm.id || '(no ID yet)'} stays locked (${vm.lock ?? 'being created'})`;
        await plan.pause(pauseMs);
        continue;
      }
      removedId = vm.id;
      const ref = { id: vm.id, owner };
      try {
        const { task } = await plan.driver.delete(ref);
        await followTask(plan, task, deadline, now);
      } catch (error) {
        // A case that failed between protecting its VM and unprotecting it left a VM delete refuses.
        if (isDriverError(error) && error.code === 'Conflict' && vm.settings?.protection === true && !unprotected) {
          unprotected = true;
          const { task } = await plan.driver.reconfigure(ref, { settings: { protection: false } });
          await followTask(plan, task, deadline, now);
          continue;
        }
        throw error;
      }
    } catch (error) {
      if (isDriverError(error) && !error.retryable && error.code !== 'NotFound') {
        outcome.left.push(`VM of ${owner.name} (${owner.uid}): ${error.code}: ${oneLine(error)}`);
        return;
      }
      lastError = oneLine(error);
      await plan.pause(pauseMs);
    }
  }
  outcome.left.push(`VM ${removedId ?? ''} of ${owner.name} (${owner.uid}): ${lastError}`.replace('VM  of', 'VM of'));
}

async function removeImage(plan: CleanupPlan, record: ImportRecord, outcome: CleanupOutcome): Promise<void> {
  const now = plan.now ?? Date.now;
  const deadline = now() + plan.timeoutMs;
  let lastError = 'not gone in time';
  for (let pauseMs = 50; now() < deadline; pauseMs = Math.min(pauseMs * 2, 2000)) {
    try {
      const { task } = await plan.driver.deleteImportedDisk(record.owner, record.name);
      await followTask(plan, task, deadline, now);
      return;
    } catch (error) {
      if (isDriverError(error) && !error.retryable) {
        outcome.left.push(`image ${record.name} of ${record.owner.name} (${record.owner.uid}): ${error.code}: ${oneLine(error)}`);
        return;
      }
      lastError = oneLine(error);
      await plan.pause(pauseMs);
    }
  }
  outcome.left.push(`image ${record.name} of ${record.owner.name} (${record.owner.uid}): ${lastError}`);
}
