// The VMMigration controller: a cold migration as a series of steps, each resumable from what
// exists. Its state is its status (Metacontroller hands our last answer back); every step is safe
// to repeat: an export rewrites its file, an import of the same owner and name is the same image,
// the target VM is a child found by name. Its children are the staging PVC (when it makes one)
// and, once the disk is imported, the target VirtualMachine, which the VM controller then creates
// by its own identity rules (never twice). Both Providers' runtimes mount the PVC while the
// migration needs it (provider-runtime.ts, migrationVolumes below).
import type { Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { API_VERSION, type Condition } from '../contracts/crds/common.js';
import { VirtualMachineObject } from '../contracts/crds/virtualmachine.js';
import {
  VMMigrationStatus,
  type MigrationDiskStatus,
  type MigrationPhase,
  type VMMigrationObject,
} from '../contracts/crds/vmmigration.js';
import type { ProviderObject } from '../contracts/crds/provider.js';
import { isDriverError, type DiskFile, type DiskFormat, type Identity, type ProviderTarget, type VMRef } from '../contracts/driver.js';
import { objectsOfKind, type CustomizeResponse, type KubeObject, type ObjectsByType, type SyncRequestBody, type SyncResponse } from '../contracts/metacontroller.js';
import { describeUnsupported, unsupportedUses } from '../contracts/normalize/common.js';
import { normalizeVMMigration, targetNameOf, type CanonicalMigration } from '../contracts/normalize/vmmigration.js';
import { parseQuantity } from '../contracts/quantity.js';
import { fieldUses } from '../contracts/support.js';
import { buildConditions, previousConditions } from './conditions.js';
import type { DriverCalls } from './driver-calls.js';
import { reportDriverError, type FailureReport } from './driver-errors.js';
import { checkedChildren, checkedObject } from './objects.js';
import { rfc3339 } from './time.js';
import { driverForProvider, providerCalls, type VMHookDeps } from './virtualmachine/context.js';
import { resolveProviderRef } from './virtualmachine/resolve.js';

/** What the target hypervisor stores natively: the staged file's format unless options.diskFormat says otherwise. */
const NATIVE_FORMAT: Record<string, DiskFormat> = { libvirt: 'qcow2', proxmox: 'qcow2', vsphere: 'vmdk', simulator: 'raw' };
/** A copy that fails its checksum this many times is not made again: the migration fails. */
const MAX_COPIES = 3;
/** Progress is published in steps of this many percent: each status change resyncs the VMs of the namespace. */
const PROGRESS_STEP = 5;
/** A deleted VMMigration whose leftovers cannot be removed (a Provider gone) lets go after this long. */
const FINALIZE_GIVE_UP_MS = 30 * 60_000;
const RESYNC = { task: 5, waiting: 15, mount: 5, done: 600, failed: 300 } as const;

const TERMINAL: ReadonlySet<MigrationPhase> = new Set(['Ready', 'Failed']);
/** Phases in which the source is held off for a migration with source.powerOffBeforeMigration. */
const HOLDING: ReadonlySet<MigrationPhase> = new Set(['StoppingSource', 'Snapshotting', 'Exporting', 'Importing', 'Creating', 'Validating-Target', 'Ready']);

export function customizeVMMigration(migration: VMMigrationObject): CustomizeResponse {
  const namespace = migration.metadata.namespace ?? '';
  const vms = [migration.spec.source.vmRef.name, targetNameOf(migration.spec)].filter((name): name is string => name !== undefined);
  const rules: CustomizeResponse['relatedResources'] = [
    { apiVersion: API_VERSION, resource: 'virtualmachines', namespace, names: [...new Set(vms)].sort() },
    // The source's Provider is the source VM's (any namespace that admits this one): every Provider is sent (there are few).
    { apiVersion: API_VERSION, resource: 'providers', labelSelector: {} },
  ];
  const pvc = migration.spec.storage?.pvc?.name;
  if (pvc !== undefined) rules.push({ apiVersion: 'v1', resource: 'persistentvolumeclaims', namespace, names: [pvc] });
  return { relatedResources: rules };
}

/** The staging PVC's name: the one named, or the one the migration creates. */
export function stagingPVCName(migration: VMMigrationObject): string {
  return migration.spec.storage?.pvc?.name ?? `${migration.metadata.name.slice(0, 200)}-migration`;
}

type Status = Static<typeof VMMigrationStatus>;

function readStatus(raw: Record<string, unknown> | undefined): Status {
  const out: Record<string, unknown> = {};
  const properties = VMMigrationStatus.properties as Record<string, Parameters<typeof Value.Check>[0]>;
  for (const [key, schema] of Object.entries(properties)) {
    if (raw?.[key] !== undefined && Value.Check(schema, raw[key])) out[key] = structuredClone(raw[key]);
  }
  return out as Status;
}

interface Wait {
  reason: string;
  message: string;
  resync: number;
}

interface Party {
  provider: ProviderTarget;
  calls: DriverCalls;
}

/** One sync (or finalize) of one VMMigration. */
class MigrationHook {
  readonly status: Status;
  readonly previousConditions: Condition[];
  readonly now: number;
  readonly namespace: string;
  readonly identity: Identity;
  readonly pvc: string;
  readonly normalized: ReturnType<typeof normalizeVMMigration>;
  readonly targetChild: VirtualMachineObject | undefined;
  readonly targetName: string;
  #outcome: Wait | undefined;
  #failure: { reason: string; message: string } | undefined;
  #sourceParty: Party | undefined;
  #targetParty: Party | undefined;

  constructor(
    readonly migration: VMMigrationObject,
    readonly related: ObjectsByType | undefined,
    readonly children: ObjectsByType | undefined,
    readonly deps: VMHookDeps,
    readonly signal: AbortSignal,
  ) {
    this.status = readStatus(migration.status);
    this.previousConditions = previousConditions(migration.status);
    this.now = deps.clock.now();
    this.namespace = migration.metadata.namespace ?? '';
    this.identity = { uid: migration.metadata.uid ?? '', namespace: this.namespace, name: migration.metadata.name };
    this.pvc = stagingPVCName(migration);
    this.normalized = normalizeVMMigration(migration);
    this.targetName = targetNameOf(migration.spec) ?? migration.metadata.name;
    this.targetChild = checkedChildren(children, API_VERSION, 'VirtualMachine', VirtualMachineObject).find((vm) => vm.metadata.name === this.targetName);
  }

  get phase(): MigrationPhase {
    return this.status.phase ?? 'Pending';
  }

  /** The migration's directory in the PVC, relative to each runtime's migration directory. */
  get dir(): string {
    return `${this.pvc}/${this.identity.uid}`;
  }

  async sync(): Promise<SyncResponse> {
    if (!this.normalized.ok) {
      this.fail(this.normalized.unsupported ? 'Unsupported' : 'InvalidSpec', this.normalized.problem);
      return this.respond();
    }
    const canonical = this.normalized.value;
    const unsupported = fieldUses('VMMigration', { spec: this.migration.spec });
    if (unsupported.length > 0 && !TERMINAL.has(this.phase)) {
      const fields = [...new Set(unsupported.map((use) => (use.why ? `${use.path} (${use.why})` : use.path)))];
      this.fail('Unsupported', `VMMigration ${this.migration.metadata.name}: no provider can honour ${fields.join(', ')}`);
      return this.respond();
    }

    if (this.phase === 'Failed' && canonical.retryRequest !== undefined && canonical.retryRequest !== this.status.retryHandled) {
      this.status.retryHandled = canonical.retryRequest;
      this.enter(this.status.failedPhase ?? 'Validating');
      this.status.startTime = rfc3339(this.now);
      delete this.status.completionTime;
      delete this.status.failedPhase;
      delete this.status.cleanedUp;
      this.status.retryCount = 0;
      // A disk caught mid-step starts that step again.
      for (const disk of this.status.disks ?? []) {
        delete disk.task;
        if (disk.phase === 'Exporting') disk.phase = 'Pending';
        if (disk.phase === 'Importing') disk.phase = 'Exported';
      }
    }
    // A request written while the migration has not failed asks for nothing (not even a retry of a later failure).
    if (this.phase !== 'Failed' && canonical.retryRequest !== undefined) this.status.retryHandled = canonical.retryRequest;
    if (this.phase === 'Pending') {
      this.status.startTime ??= rfc3339(this.now);
      this.enter('Validating');
    }

    const started = Date.parse(this.status.startTime ?? '');
    if (!TERMINAL.has(this.phase) && !Number.isNaN(started) && this.now - started > canonical.timeoutMs) {
      this.fail('Timeout', `not done ${Math.round((this.now - started) / 1000)} s after it began (options.timeout) while in ${this.phase}`);
    }

    for (let step = 0; step < 8 && this.#outcome === undefined && this.#failure === undefined; step++) {
      const before = this.phase;
      await this.runPhase(canonical);
      if (this.phase === before && this.#outcome === undefined && this.#failure === undefined) break;
    }
    if (this.phase === 'Ready' || this.phase === 'Failed') await this.cleanupIfDue(canonical);
    return this.respond();
  }

  async runPhase(canonical: CanonicalMigration): Promise<void> {
    try {
      switch (this.phase) {
        case 'Validating':
          return await this.validate(canonical);
        case 'StoppingSource':
          return this.stopSource(canonical);
        case 'Snapshotting':
          return await this.snapshot();
        case 'Exporting':
          return await this.exportDisks(canonical);
        case 'Importing':
          return await this.importDisks();
        case 'Creating':
          return this.createTarget();
        case 'Validating-Target':
          return this.validateTarget(canonical);
        default:
          return;
      }
    } catch (error) {
      this.stepFailed(reportDriverError(error, `${this.phase}`), canonical);
    }
  }

  // --- phases ---

  async validate(canonical: CanonicalMigration): Promise<void> {
    const source = this.sourceVM();
    if ('wait' in source) return this.wait(source.wait.reason, source.wait.message, RESYNC.waiting);
    const vm = source.vm;
    const sourceRef = vm.spec.providerRef;
    const resolvedSource = resolveProviderRef(sourceRef, this.namespace, this.related, { requireReady: true });
    if (!resolvedSource.ok) return this.wait(resolvedSource.reason, resolvedSource.message, RESYNC.waiting);
    const sourceProvider = resolvedSource.provider;
    if (canonical.sourceProvider !== undefined) {
      const named = `${canonical.sourceProvider.namespace ?? this.namespace}/${canonical.sourceProvider.name}`;
      if (named !== keyOf(sourceProvider)) return this.fail('InvalidSpec', `spec.source.providerRef names ${named}, but VirtualMachine ${vm.metadata.name} is on ${keyOf(sourceProvider)}`);
    }
    const resolvedTarget = resolveProviderRef(canonical.targetProvider, this.namespace, this.related, { requireReady: true });
    if (!resolvedTarget.ok) return this.wait(resolvedTarget.reason, resolvedTarget.message, RESYNC.waiting);
    const targetProvider = resolvedTarget.provider;

    const existing = checkedObject(this.related, { apiVersion: API_VERSION, kind: 'VirtualMachine', namespace: this.namespace, name: this.targetName }, VirtualMachineObject);
    if (existing.found && this.targetChild === undefined) {
      return this.fail('TargetExists', `VirtualMachine ${this.targetName} already exists and is not this migration's: choose another target name`);
    }

    const modes = [sourceProvider, targetProvider];
    for (const provider of modes) {
      if (provider.mode === 'Remote' && provider.namespace !== this.namespace) {
        return this.fail(
          'Unsupported',
          `Provider ${keyOf(provider)} runs in namespace ${provider.namespace}: its runtime can mount only PVCs of that namespace; create the VMMigration (and its VMs) there`,
        );
      }
    }
    if (modes[0]?.mode !== modes[1]?.mode) {
      return this.fail('Unsupported', `Provider ${keyOf(modes[0] as ProviderTarget)} runs ${modes[0]?.mode === 'InProcess' ? 'in the hook server' : 'its own runtime'} and ${keyOf(modes[1] as ProviderTarget)} does not: they share no migration directory`);
    }

    if (canonical.pvc && 'existing' in canonical.pvc) {
      const pvc = checkedPVC(this.related, this.namespace, canonical.pvc.existing);
      if (pvc === undefined) return this.wait('PVCNotFound', `PersistentVolumeClaim ${canonical.pvc.existing} not found`, RESYNC.waiting);
    }

    const sourceParty = await this.party(sourceProvider);
    const targetParty = await this.party(targetProvider);
    if ('wait' in sourceParty) return this.wait(sourceParty.wait.reason, sourceParty.wait.message, RESYNC.waiting);
    if ('wait' in targetParty) return this.wait(targetParty.wait.reason, targetParty.wait.message, RESYNC.waiting);
    const sourceCaps = sourceParty.calls.driver.capabilities;
    const targetCaps = targetParty.calls.driver.capabilities;
    const missing: string[] = [];
    if (!sourceCaps.diskExport) missing.push(`the ${sourceParty.calls.driver.type} provider ${keyOf(sourceProvider)} cannot export disks`);
    if (!targetCaps.diskImport) missing.push(`the ${targetParty.calls.driver.type} provider ${keyOf(targetProvider)} cannot import disks`);
    if (canonical.createSnapshot && !sourceCaps.snapshots) missing.push(`the ${sourceParty.calls.driver.type} provider ${keyOf(sourceProvider)} takes no snapshots (spec.source.createSnapshot)`);
    if (missing.length > 0) return this.fail('Unsupported', missing.join('; '));
    // What the target VM would ask of its Provider is checked now, not after the disk has moved.
    const preview = this.targetSpec(canonical, vm, 'preview');
    const unhonoured = preview ? unsupportedUses(fieldUses('VirtualMachine', { spec: preview }), targetCaps) : [];
    if (unhonoured.length > 0) return this.fail('Unsupported', describeUnsupported(`the target VirtualMachine ${this.targetName}`, targetParty.calls.driver.type, unhonoured));

    this.status.source = { provider: keyOf(sourceProvider), id: vm.status?.['providerID'] as string, uid: vm.metadata.uid ?? '' };
    this.status.storagePVCName = this.pvc;
    this.#sourceParty = sourceParty;
    this.#targetParty = targetParty;

    for (const [party, role] of [[sourceParty, 'source'], [targetParty, 'target']] as const) {
      try {
        await party.calls.call('migrationVolume', (options) => party.calls.driver.migrationVolume(this.pvc, options));
      } catch (error) {
        if (!isDriverError(error)) throw error;
        if (error.code === 'NotFound') {
          const message = `waiting for the runtime of the ${role} Provider ${keyOf(party.provider)} to mount PVC ${this.pvc} (it restarts to mount it): ${error.message}`;
          return this.wait('StorageNotMounted', message, RESYNC.mount);
        }
        if (error.code === 'InvalidSpec') return this.fail('StorageNotWritable', `${role} Provider ${keyOf(party.provider)}: ${error.message}`);
        throw error;
      }
    }
    this.enter('StoppingSource');
  }

  stopSource(canonical: CanonicalMigration): void {
    const source = this.sourceVM();
    if ('wait' in source) return this.wait(source.wait.reason, source.wait.message, RESYNC.waiting);
    const status = source.vm.status ?? {};
    if (status['powerState'] === 'Off' && status['task'] === undefined) {
      this.enter(canonical.createSnapshot ? 'Snapshotting' : 'Exporting');
      return;
    }
    const name = source.vm.metadata.name;
    if (canonical.powerOff) return this.wait('StoppingSource', `VirtualMachine ${name} is being powered off for the migration (spec.source.powerOffBeforeMigration)`, RESYNC.task);
    this.wait('WaitingForPowerOff', `waiting for VirtualMachine ${name} to be powered off: set its spec.powerState to Off, or set spec.source.powerOffBeforeMigration: true`, RESYNC.waiting);
  }

  async snapshot(): Promise<void> {
    const party = await this.sourceParty();
    if ('wait' in party) return this.wait(party.wait.reason, party.wait.message, RESYNC.waiting);
    const ref = this.sourceRef();
    if (ref === undefined) return this.fail('SourceNotFound', 'the source VM\'s identity was not recorded');
    if (this.status.snapshotID !== undefined && this.status.snapshotTask !== undefined) {
      const task = this.status.snapshotTask;
      const state = await this.taskOf(party, task);
      if (state === 'running' || (typeof state === 'object' && 'percent' in state)) return this.wait('Snapshotting', 'taking the restore-point snapshot of the source', RESYNC.task);
      delete this.status.snapshotTask;
      if (isFailed(state) || state === 'lost') {
        const why = isFailed(state) ? state.failed : 'its task was lost';
        delete this.status.snapshotID;
        return this.stepFailed({ reason: 'SnapshotFailed', message: `the restore-point snapshot failed: ${why}`, retryable: true });
      }
      this.enter('Exporting');
      return;
    }
    if (this.status.snapshotID !== undefined) {
      this.enter('Exporting');
      return;
    }
    const name = `vm${this.identity.uid.replace(/-/g, '').toLowerCase()}`;
    const listed = await party.calls.call('snapshotList', (options) => party.calls.driver.snapshotList(ref, options));
    const found = listed.find((snapshot) => snapshot.name === name);
    if (found !== undefined) {
      this.status.snapshotID = found.id;
      this.enter('Exporting');
      return;
    }
    const created = await party.calls.call('snapshotCreate', (options) =>
      party.calls.driver.snapshotCreate(ref, { name, description: `restore point of VMMigration ${this.identity.name}`, memory: false, quiesce: false }, options),
    );
    this.status.snapshotID = created.id;
    if (created.task !== undefined) {
      this.status.snapshotTask = created.task;
      return this.wait('Snapshotting', 'taking the restore-point snapshot of the source', RESYNC.task);
    }
    this.enter('Exporting');
  }

  async exportDisks(canonical: CanonicalMigration): Promise<void> {
    const party = await this.sourceParty();
    if ('wait' in party) return this.wait(party.wait.reason, party.wait.message, RESYNC.waiting);
    const ref = this.sourceRef();
    if (ref === undefined) return this.fail('SourceNotFound', 'the source VM\'s identity was not recorded');
    const target = await this.targetParty();
    const format = canonical.format ?? ('wait' in target ? 'qcow2' : (NATIVE_FORMAT[target.calls.driver.type] ?? 'qcow2'));
    for (const disk of this.disks(canonical)) {
      if (disk.phase === 'Pending') {
        if (this.retryPending()) return;
        const file: DiskFile = { path: `${this.dir}/${disk.name}.${format}`, format };
        try {
          const started = await party.calls.call('exportDisk', (options) => party.calls.driver.exportDisk(ref, { disk: disk.name, file }, options));
          disk.file = file.path;
          disk.format = format;
          disk.attempts = (disk.attempts ?? 0) + 1;
          disk.phase = started.task === undefined ? 'Exported' : 'Exporting';
          disk.percent = started.task === undefined ? 100 : 0;
          if (started.task !== undefined) disk.task = started.task;
          else delete disk.task;
        } catch (error) {
          if (isDriverError(error) && error.code === 'Busy') return this.wait('SourceBusy', `exporting disk ${disk.name}: ${error.message}`, RESYNC.waiting);
          throw error;
        }
      }
      if (disk.phase === 'Exporting') {
        const task = disk.task;
        if (task === undefined) {
          disk.phase = 'Pending';
          continue;
        }
        const state = await this.taskOf(party, task);
        if (state === 'lost') {
          // The runtime that ran it restarted: the export starts again (and rewrites the file),
          // as a failed attempt, so a runtime that keeps dying ends the migration.
          disk.phase = 'Pending';
          delete disk.task;
          return this.stepFailed({ reason: 'ExportLost', message: `the export of disk ${disk.name} was lost (its provider runtime restarted?)`, retryable: true }, canonical);
        }
        if (isFailed(state)) {
          disk.phase = 'Pending';
          delete disk.task;
          return this.stepFailed({ reason: 'ExportFailed', message: `exporting disk ${disk.name}: ${state.failed}`, retryable: true }, canonical);
        }
        if (state !== 'done') {
          disk.percent = stepped(state === 'running' ? 0 : state.percent, disk.percent);
          return this.wait('Exporting', `exporting disk ${disk.name} to PVC ${this.pvc}`, RESYNC.task);
        }
        disk.phase = 'Exported';
        disk.percent = 100;
        delete disk.task;
      }
    }
    this.enter('Importing');
  }

  async importDisks(): Promise<void> {
    const canonical = this.normalized.ok ? this.normalized.value : undefined;
    if (canonical === undefined) return;
    const party = await this.targetParty();
    if ('wait' in party) return this.wait(party.wait.reason, party.wait.message, RESYNC.waiting);
    for (const disk of this.disks(canonical)) {
      if (disk.phase === 'Pending' || disk.phase === 'Exporting') {
        this.enter('Exporting');
        return;
      }
      if (disk.phase === 'Importing' && disk.task !== undefined) {
        const state = await this.taskOf(party, disk.task);
        if (state === 'running' || (typeof state === 'object' && 'percent' in state)) {
          disk.percent = stepped(state === 'running' ? 0 : state.percent, disk.percent);
          return this.wait('Importing', `importing disk ${disk.name} into Provider ${keyOf(party.provider)}`, RESYNC.task);
        }
        delete disk.task;
        if (state === 'done') {
          disk.phase = 'Imported';
          disk.percent = 100;
          continue;
        }
        if (isFailed(state) && state.code === 'Conflict') {
          if (!this.recopy(disk, state.failed)) return;
          continue;
        }
        // Lost or failed: asking again imports again (or finds what was finished), after the retry delay.
        disk.phase = 'Exported';
        const why = isFailed(state) ? state.failed : 'its task was lost (its provider runtime restarted?)';
        return this.stepFailed({ reason: 'ImportFailed', message: `importing disk ${disk.name}: ${why}`, retryable: true }, canonical);
      }
      if (disk.phase === 'Exported' || disk.phase === 'Importing') {
        if (this.retryPending()) return;
        if (disk.file === undefined || disk.format === undefined) {
          disk.phase = 'Pending';
          this.enter('Exporting');
          return;
        }
        const file: DiskFile = { path: disk.file, format: disk.format };
        try {
          const imported = await party.calls.call('importDisk', (options) => party.calls.driver.importDisk(this.identity, { name: disk.name, file }, options));
          disk.image = imported.image.kind === 'template' ? imported.image.ref : imported.image.kind === 'url' ? imported.image.url : '';
          disk.sizeBytes = imported.sizeBytes;
          if (imported.task !== undefined) {
            disk.phase = 'Importing';
            disk.task = imported.task;
            disk.percent = 0;
            return this.wait('Importing', `importing disk ${disk.name} into Provider ${keyOf(party.provider)}`, RESYNC.task);
          }
          disk.phase = 'Imported';
          disk.percent = 100;
        } catch (error) {
          if (!isDriverError(error)) throw error;
          if (error.code === 'Conflict') {
            if (!this.recopy(disk, error.message)) return;
            continue;
          }
          if (error.code === 'NotFound') {
            // The file or its checksum is gone (a PVC replaced): export it again.
            disk.phase = 'Pending';
            this.enter('Exporting');
            return this.wait('Exporting', `disk ${disk.name}: ${error.message}; exporting it again`, RESYNC.task);
          }
          if (error.code === 'Busy') return this.wait('TargetBusy', `importing disk ${disk.name}: ${error.message}`, RESYNC.waiting);
          throw error;
        }
      }
    }
    if (this.disks(canonical).some((disk) => disk.phase !== 'Imported')) {
      this.enter('Exporting');
      return;
    }
    this.enter('Creating');
  }

  /** A copy that failed its checksum: export it again, unless it failed too often. */
  recopy(disk: MigrationDiskStatus, why: string): boolean {
    if ((disk.attempts ?? 0) >= MAX_COPIES) {
      this.fail('ChecksumMismatch', `disk ${disk.name}: ${MAX_COPIES} copies failed their checksum; the last: ${why}`);
      return false;
    }
    disk.phase = 'Pending';
    delete disk.task;
    delete disk.image;
    this.enter('Exporting');
    this.wait('Exporting', `disk ${disk.name}: the copy failed its checksum (${why}); exporting it again`, RESYNC.task);
    return false;
  }

  createTarget(): void {
    const child = this.targetChild;
    if (child === undefined) {
      // The target's spec is the source's: without the source there is nothing to make it from.
      const source = this.sourceVM();
      if ('wait' in source) return this.wait(source.wait.reason, `the target VirtualMachine is made from the source's spec: ${source.wait.message}`, RESYNC.waiting);
      this.status.targetVMRef = { name: this.targetName };
      return this.wait('Creating', `creating VirtualMachine ${this.targetName}`, RESYNC.task);
    }
    const status = child.status ?? {};
    const phase = status['phase'];
    const ready = previousConditions(status).find((condition) => condition.type === 'Ready');
    if (phase === 'Failed') return this.fail('TargetFailed', `VirtualMachine ${this.targetName}: ${ready?.message ?? 'failed'}`);
    if ((phase === 'Running' || phase === 'Stopped') && status['providerID'] !== undefined && status['task'] === undefined) {
      this.enter('Validating-Target');
      return;
    }
    this.wait('Creating', `VirtualMachine ${this.targetName}: ${ready ? `${ready.reason}: ${ready.message}` : 'being created'}`, RESYNC.task);
  }

  validateTarget(canonical: CanonicalMigration): void {
    const child = this.targetChild;
    if (child === undefined) {
      this.enter('Creating');
      return;
    }
    const status = child.status ?? {};
    const results: NonNullable<Status['validationResults']> = { checksumMatch: true };
    const errors: string[] = [];
    if (canonical.checks.diskSize) {
      const hardware = status['hardware'] as { disks?: { name: string; size: string }[] } | undefined;
      const root = hardware?.disks?.find((disk) => disk.name === 'root');
      const expected = this.status.disks?.find((disk) => disk.name === 'root')?.sizeBytes;
      const actual = root ? parseQuantity(root.size) : undefined;
      if (actual === undefined || expected === undefined) return this.wait('Validating-Target', `waiting for VirtualMachine ${this.targetName} to report its root disk`, RESYNC.task);
      results.diskSizeMatch = actual >= expected;
      if (!results.diskSizeMatch) errors.push(`the target's root disk is ${root?.size}, smaller than the migrated ${expected} bytes`);
    }
    if (canonical.checks.boot) {
      results.bootSuccess = status['phase'] === 'Running';
      if (!results.bootSuccess) {
        this.status.validationResults = results;
        return this.wait('Validating-Target', `waiting for VirtualMachine ${this.targetName} to run (validationChecks.checkBoot)`, RESYNC.task);
      }
    }
    if (canonical.checks.connectivity) {
      const ips = status['ips'];
      results.connectivitySuccess = Array.isArray(ips) && ips.length > 0;
      if (!results.connectivitySuccess) {
        this.status.validationResults = results;
        return this.wait('Validating-Target', `waiting for VirtualMachine ${this.targetName} to report an IP address (validationChecks.checkConnectivity)`, RESYNC.task);
      }
    }
    if (errors.length > 0) results.validationErrors = errors;
    this.status.validationResults = results;
    if (errors.length > 0) return this.fail('ValidationFailed', errors.join('; '));
    this.enter('Ready');
    this.status.completionTime = rfc3339(this.now);
  }

  // --- cleanup ---

  async cleanupIfDue(canonical: CanonicalMigration): Promise<void> {
    if (this.status.cleanedUp === true) return;
    const due = canonical.cleanup === 'Always' || (canonical.cleanup === 'OnSuccess' && this.phase === 'Ready');
    if (!due) return;
    if (await this.cleanup()) this.status.cleanedUp = true;
  }

  /**
   * Removes the staged files, the imported images and the restore point; true when all is gone.
   * A removal the provider runs as a task is recorded (status.cleanupTasks) and followed: only its
   * success counts, and a failed or lost one is asked for again.
   */
  async cleanup(): Promise<boolean> {
    let done = true;
    const attempt = async (what: string, run: () => Promise<unknown>) => {
      try {
        await run();
      } catch (error) {
        if (isDriverError(error) && error.code === 'NotFound') return;
        done = false;
        if (!isDriverError(error)) throw error;
        this.status.message = `removing ${what}: ${error.message}`;
      }
    };
    const target = await this.targetParty();
    const source = await this.sourceParty();
    const partyOf = (kind: 'image' | 'snapshot') => (kind === 'image' ? target : source);

    // Removals started before: finished ones count, running ones wait, failed or lost ones start again below.
    const pending: NonNullable<Status['cleanupTasks']> = [];
    for (const record of this.status.cleanupTasks ?? []) {
      const party = partyOf(record.kind);
      if ('wait' in party) {
        pending.push(record);
        done = false;
        continue;
      }
      const state = await this.taskOf(party, record.task);
      if (state === 'done') {
        if (record.kind === 'snapshot') delete this.status.snapshotID;
        else for (const disk of this.status.disks ?? []) if (disk.name === record.name) disk.imageRemoved = true;
      } else if (state === 'running' || (typeof state === 'object' && 'percent' in state)) {
        pending.push(record);
        done = false;
      } else if (isFailed(state)) {
        this.status.message = `removing ${record.kind === 'image' ? `imported disk ${record.name}` : 'the restore-point snapshot'}: ${state.failed}`;
      }
    }
    const busy = (kind: 'image' | 'snapshot', name: string) => pending.some((record) => record.kind === kind && record.name === name);
    const follow = (kind: 'image' | 'snapshot', name: string, task: string | undefined): boolean => {
      if (task === undefined) return true;
      pending.push({ kind, name, task });
      done = false;
      return false;
    };

    const targetCreated = this.targetChild === undefined || (this.targetChild.status?.['providerID'] !== undefined && this.targetChild.status['task'] === undefined);
    for (const disk of this.status.disks ?? []) {
      if (disk.image === undefined || disk.imageRemoved === true || busy('image', disk.name)) continue;
      if ('wait' in target || !targetCreated) {
        done = false;
        continue;
      }
      await attempt(`imported disk ${disk.name}`, async () => {
        const started = await target.calls.call('deleteImportedDisk', (options) => target.calls.driver.deleteImportedDisk(this.identity, disk.name, options));
        if (follow('image', disk.name, started.task)) disk.imageRemoved = true;
      });
    }
    const files = 'wait' in source ? target : source;
    if ('wait' in files) done = false;
    else await attempt(`the staged files in PVC ${this.pvc}`, () => files.calls.call('removeMigrationFiles', (options) => files.calls.driver.removeMigrationFiles(this.dir, options)));
    const ref = this.sourceRef();
    const snapshotID = this.status.snapshotID;
    if (snapshotID !== undefined && ref !== undefined && !busy('snapshot', snapshotID)) {
      if ('wait' in source) done = false;
      else {
        await attempt('the restore-point snapshot', async () => {
          const started = await source.calls.call('snapshotDelete', (options) => source.calls.driver.snapshotDelete(ref, snapshotID, options));
          if (follow('snapshot', snapshotID, started.task)) delete this.status.snapshotID;
        });
      }
    }
    if (pending.length > 0) this.status.cleanupTasks = pending;
    else delete this.status.cleanupTasks;
    return done;
  }

  async finalize(): Promise<SyncResponse> {
    let finalized = this.status.cleanedUp === true;
    if (!finalized) {
      finalized = await this.cleanup();
      const deleted = Date.parse(String(this.migration.metadata.deletionTimestamp ?? ''));
      if (!finalized && !Number.isNaN(deleted) && this.now - deleted > FINALIZE_GIVE_UP_MS) finalized = true;
    }
    if (finalized) this.status.cleanedUp = true;
    const response = this.respond();
    response.finalized = finalized;
    response.resyncAfterSeconds = finalized ? 0 : RESYNC.waiting;
    return response;
  }

  // --- parts ---

  sourceVM(): { vm: VirtualMachineObject } | { wait: { reason: string; message: string } } {
    const name = this.migration.spec.source.vmRef.name;
    const found = checkedObject(this.related, { apiVersion: API_VERSION, kind: 'VirtualMachine', namespace: this.namespace, name }, VirtualMachineObject);
    if (!found.found) return { wait: { reason: 'SourceNotFound', message: `source VirtualMachine ${name} not found` } };
    if (found.problem !== undefined) return { wait: { reason: 'SourceInvalid', message: found.problem } };
    const vm = found.object;
    if (vm.metadata.deletionTimestamp !== undefined) return { wait: { reason: 'SourceDeleting', message: `source VirtualMachine ${name} is being deleted` } };
    if (this.status.source !== undefined && vm.metadata.uid !== this.status.source.uid) {
      return { wait: { reason: 'SourceReplaced', message: `source VirtualMachine ${name} was deleted and made again since the migration began` } };
    }
    if (typeof vm.status?.['providerID'] !== 'string') return { wait: { reason: 'SourceNotReady', message: `source VirtualMachine ${name} has not been created yet` } };
    return { vm };
  }

  sourceRef(): VMRef | undefined {
    const source = this.status.source;
    if (source === undefined) return undefined;
    return { id: source.id, owner: { uid: source.uid, namespace: this.namespace, name: this.migration.spec.source.vmRef.name } };
  }

  async party(target: ProviderTarget): Promise<Party | { wait: Wait }> {
    const lookup = await driverForProvider(this.deps.registry, target);
    if (!lookup.ok) return { wait: { reason: lookup.reason, message: lookup.message, resync: RESYNC.waiting } };
    return { provider: target, calls: providerCalls(this.deps, lookup.driver, target, this.signal) };
  }

  /** The source Provider recorded when the migration began (the VM may be gone by cleanup). */
  async sourceParty(): Promise<Party | { wait: Wait }> {
    if (this.#sourceParty) return this.#sourceParty;
    const recorded = this.status.source?.provider;
    if (recorded === undefined) return { wait: { reason: 'SourceNotFound', message: 'the source Provider was not recorded', resync: RESYNC.waiting } };
    const [namespace = '', name = ''] = recorded.split('/');
    const resolved = resolveProviderRef({ name, namespace }, this.namespace, this.related, { requireReady: false });
    if (!resolved.ok) return { wait: { reason: resolved.reason, message: resolved.message, resync: RESYNC.waiting } };
    const party = await this.party(resolved.provider);
    if (!('wait' in party)) this.#sourceParty = party;
    return party;
  }

  async targetParty(): Promise<Party | { wait: Wait }> {
    if (this.#targetParty) return this.#targetParty;
    if (!this.normalized.ok) return { wait: { reason: 'InvalidSpec', message: this.normalized.problem, resync: RESYNC.failed } };
    const resolved = resolveProviderRef(this.normalized.value.targetProvider, this.namespace, this.related, { requireReady: false });
    if (!resolved.ok) return { wait: { reason: resolved.reason, message: resolved.message, resync: RESYNC.waiting } };
    const party = await this.party(resolved.provider);
    if (!('wait' in party)) this.#targetParty = party;
    return party;
  }

  /** A task's state: running (with progress), done, failed (with why), or lost (the provider does not know it). */
  async taskOf(party: Party, task: string): Promise<TaskState> {
    try {
      const status = await party.calls.call('taskStatus', (options) => party.calls.driver.taskStatus(task, options));
      if (status.state === 'succeeded') return 'done';
      if (status.state === 'failed') return { failed: status.error ?? 'the task failed', ...(status.errorCode ? { code: status.errorCode } : {}) };
      return status.progress === undefined ? 'running' : { percent: status.progress };
    } catch (error) {
      if (isDriverError(error) && error.code === 'NotFound') return 'lost';
      throw error;
    }
  }

  /** The disks being moved, each with its status record (made on first sight). */
  disks(canonical: CanonicalMigration): MigrationDiskStatus[] {
    const records = this.status.disks ?? [];
    const out = canonical.moved.map((name) => records.find((disk) => disk.name === name) ?? { name, phase: 'Pending' as const });
    this.status.disks = out;
    return out;
  }

  /** A failed step waits its retry delay before it is tried again. */
  retryPending(): boolean {
    const canonical = this.normalized.ok ? this.normalized.value : undefined;
    const count = this.status.retryCount ?? 0;
    const last = Date.parse(this.status.lastRetryTime ?? '');
    if (canonical === undefined || count === 0 || Number.isNaN(last)) return false;
    const delay = canonical.retry.delayMs * canonical.retry.multiplier ** (count - 1);
    const left = last + delay - this.now;
    if (left <= 0) return false;
    // The failure's own message stays as it was written (it already says when the next attempt is).
    const ready = this.previousConditions.find((condition) => condition.type === 'Ready');
    this.wait(ready?.reason ?? 'Retrying', ready?.message ?? `a step failed; trying again at ${rfc3339(last + delay)}`, Math.ceil(left / 1000));
    return true;
  }

  stepFailed(report: FailureReport, canonical?: CanonicalMigration): void {
    if (!report.retryable || canonical === undefined) return this.fail(report.reason, report.message);
    const count = (this.status.retryCount ?? 0) + 1;
    if (count > canonical.retry.max) return this.fail(report.reason, `${report.message} (failed ${count} times: options.retryPolicy.maxRetries is ${canonical.retry.max})`);
    this.status.retryCount = count;
    this.status.lastRetryTime = rfc3339(this.now);
    const delay = canonical.retry.delayMs * canonical.retry.multiplier ** (count - 1);
    this.wait(report.reason, `${report.message}; trying again at ${rfc3339(this.now + delay)} (attempt ${count + 1} of ${canonical.retry.max + 1})`, Math.ceil(delay / 1000));
  }

  enter(phase: MigrationPhase): void {
    if (this.status.phase === phase) return;
    this.status.phase = phase;
    this.status.phaseStartTime = rfc3339(this.now);
    if (phase !== 'Failed') {
      delete this.status.retryCount;
      delete this.status.lastRetryTime;
    }
  }

  wait(reason: string, message: string, resync: number): void {
    this.#outcome ??= { reason, message, resync };
  }

  fail(reason: string, message: string): void {
    if (this.#failure !== undefined) return;
    this.#failure = { reason, message };
    if (this.phase !== 'Failed') this.status.failedPhase = this.phase === 'Pending' ? 'Validating' : this.phase;
    this.enter('Failed');
    this.status.completionTime = rfc3339(this.now);
  }

  respond(): SyncResponse {
    const phase = this.phase;
    let ready: { status: boolean | 'Unknown'; reason: string; message: string };
    let resync: number;
    if (this.#failure !== undefined || phase === 'Failed') {
      const failure = this.#failure ?? this.previousConditions.find((condition) => condition.type === 'Ready') ?? { reason: 'Failed', message: 'the migration failed' };
      ready = { status: false, reason: failure.reason, message: failure.message };
      resync = RESYNC.failed;
    } else if (phase === 'Ready') {
      ready = { status: true, reason: 'Completed', message: `VirtualMachine ${this.targetName} runs on Provider ${this.normalized.ok ? keyOf({ namespace: this.normalized.value.targetProvider.namespace ?? this.namespace, name: this.normalized.value.targetProvider.name }) : ''}` };
      resync = this.status.cleanedUp === true ? RESYNC.done : RESYNC.waiting;
    } else {
      const outcome = this.#outcome ?? { reason: phase, message: phase, resync: 1 };
      ready = { status: false, reason: outcome.reason, message: outcome.message };
      resync = outcome.resync;
    }
    this.status.message = ready.message;
    const status: Record<string, unknown> = { ...this.status };
    const generation = this.migration.metadata.generation;
    status['conditions'] = buildConditions(this.previousConditions, [{ type: 'Ready', ...ready }], this.now, generation);
    if (generation !== undefined) status['observedGeneration'] = generation;
    return { status, children: this.desiredChildren(), resyncAfterSeconds: resync };
  }

  desiredChildren(): KubeObject[] {
    const children: KubeObject[] = [];
    const canonical = this.normalized.ok ? this.normalized.value : undefined;
    const existingPVC = objectsOfKind(this.children, 'v1', 'PersistentVolumeClaim').find((pvc) => pvc.metadata.name === this.pvc);
    if (existingPVC !== undefined) children.push({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: this.pvc }, spec: existingPVC['spec'] } as KubeObject);
    else if (canonical !== undefined && !('existing' in canonical.pvc) && this.status.storagePVCName !== undefined) {
      const spec: Record<string, unknown> = { accessModes: [canonical.pvc.accessMode], resources: { requests: { storage: canonical.pvc.size } } };
      if (canonical.pvc.storageClassName !== undefined) spec['storageClassName'] = canonical.pvc.storageClassName;
      children.push({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: this.pvc }, spec } as KubeObject);
    }
    const child = this.targetChild;
    if (child !== undefined) {
      // Our labels and annotations only: the child's own carry Metacontroller's last-applied record.
      const metadata: KubeObject['metadata'] = { name: this.targetName };
      if (canonical && Object.keys(canonical.labels).length > 0) metadata.labels = canonical.labels;
      if (canonical && Object.keys(canonical.annotations).length > 0) metadata.annotations = canonical.annotations;
      children.push({ apiVersion: API_VERSION, kind: 'VirtualMachine', metadata, spec: Value.Clone(child.spec) as Record<string, unknown> });
    } else if (canonical !== undefined && (this.phase === 'Creating' || this.phase === 'Validating-Target') && this.#failure === undefined) {
      const spec = this.targetSpec(canonical);
      if (spec !== undefined) {
        const metadata: KubeObject['metadata'] = { name: this.targetName };
        if (Object.keys(canonical.labels).length > 0) metadata.labels = canonical.labels;
        if (Object.keys(canonical.annotations).length > 0) metadata.annotations = canonical.annotations;
        children.push({ apiVersion: API_VERSION, kind: 'VirtualMachine', metadata, spec });
      }
    }
    return children;
  }

  /** The target VM: the source's spec on the target Provider, booting from the imported root disk, with the overrides. */
  targetSpec(canonical: CanonicalMigration, sourceVM?: VirtualMachineObject, image?: string): Record<string, unknown> | undefined {
    const source = sourceVM ? { vm: sourceVM } : this.sourceVM();
    const diskID = image ?? this.status.disks?.find((disk) => disk.name === 'root')?.image;
    if ('wait' in source || diskID === undefined) return undefined;
    const spec = source.vm.spec;
    const out: Record<string, unknown> = {
      providerRef: canonical.targetProvider,
      classRef: canonical.classRef !== undefined ? { name: canonical.classRef } : spec.classRef,
      importedDisk: { diskID, source: 'migration', migrationRef: { name: this.identity.name } },
      powerState: canonical.powerOn ? 'On' : 'Off',
    };
    const networks = canonical.networks ?? spec.networks;
    if (networks !== undefined) out['networks'] = networks;
    const disks = canonical.disks ?? spec.disks?.filter((disk) => disk.name === 'root');
    if (disks !== undefined && disks.length > 0) out['disks'] = disks;
    if (canonical.placementRef !== undefined) out['placementRef'] = { name: canonical.placementRef };
    if (spec.deletionPolicy !== undefined) out['deletionPolicy'] = spec.deletionPolicy;
    return out;
  }
}

type TaskState = 'running' | 'done' | 'lost' | { percent: number } | { failed: string; code?: string };

function isFailed(state: TaskState): state is { failed: string; code?: string } {
  return typeof state === 'object' && 'failed' in state;
}

function keyOf(provider: { metadata?: { namespace?: string | undefined; name: string }; namespace?: string; name?: string }): string {
  if (provider.metadata) return `${provider.metadata.namespace ?? ''}/${provider.metadata.name}`;
  return `${provider.namespace ?? ''}/${provider.name ?? ''}`;
}

/** Progress moves in steps, and never back. */
function stepped(percent: number, previous: number | undefined): number {
  const step = Math.floor(Math.min(99, Math.max(0, percent)) / PROGRESS_STEP) * PROGRESS_STEP;
  return Math.max(step, previous ?? 0);
}

function checkedPVC(related: ObjectsByType | undefined, namespace: string, name: string): KubeObject | undefined {
  return objectsOfKind(related, 'v1', 'PersistentVolumeClaim').find((pvc) => pvc.metadata.name === name && (pvc.metadata.namespace ?? namespace) === namespace);
}

export async function syncVMMigration(request: SyncRequestBody<VMMigrationObject>, deps: VMHookDeps, signal: AbortSignal): Promise<SyncResponse> {
  return new MigrationHook(request.parent, request.related, request.children, deps, signal).sync();
}

export async function finalizeVMMigration(request: SyncRequestBody<VMMigrationObject>, deps: VMHookDeps, signal: AbortSignal): Promise<SyncResponse> {
  return new MigrationHook(request.parent, request.related, request.children, deps, signal).finalize();
}

/**
 * The PVCs a Provider's runtime mounts for migrations: those of the VMMigrations of its namespace
 * that move a VM from or to it and still need their files (not Ready/Failed with everything
 * cleaned up). Read from the related VMMigrations, each checked loosely (only these fields).
 */
export function migrationVolumes(provider: ProviderObject, related: ObjectsByType | undefined): string[] {
  const namespace = provider.metadata.namespace ?? '';
  const me = `${namespace}/${provider.metadata.name}`;
  const volumes = new Set<string>();
  for (const object of objectsOfKind(related, API_VERSION, 'VMMigration')) {
    if ((object.metadata.namespace ?? namespace) !== namespace) continue;
    const spec = object['spec'] as { target?: { providerRef?: { name?: unknown; namespace?: unknown } } } | undefined;
    const status = readStatus(object['status'] as Record<string, unknown> | undefined);
    const targetRef = spec?.target?.providerRef;
    const target = typeof targetRef?.name === 'string' ? `${typeof targetRef.namespace === 'string' ? targetRef.namespace : namespace}/${targetRef.name}` : undefined;
    if (target !== me && status.source?.provider !== me) continue;
    const pvc = status.storagePVCName;
    if (pvc === undefined) continue;
    if (status.cleanedUp === true && (status.phase === 'Ready' || status.phase === 'Failed')) continue;
    volumes.add(pvc);
  }
  return [...volumes].sort();
}

/** The VMMigration holding `vm` off (source.powerOffBeforeMigration), if any. */
export function migrationHolding(vm: { metadata: { name: string; namespace?: string | undefined } }, related: ObjectsByType | undefined): string | undefined {
  for (const object of objectsOfKind(related, API_VERSION, 'VMMigration')) {
    if ((object.metadata.namespace ?? '') !== (vm.metadata.namespace ?? '')) continue;
    const spec = object['spec'] as { source?: { vmRef?: { name?: unknown }; powerOffBeforeMigration?: unknown } } | undefined;
    if (spec?.source?.vmRef?.name !== vm.metadata.name || spec.source.powerOffBeforeMigration !== true) continue;
    const phase = readStatus(object['status'] as Record<string, unknown> | undefined).phase;
    if (phase !== undefined && HOLDING.has(phase)) return object.metadata.name;
  }
  return undefined;
}
