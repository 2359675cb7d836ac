// The operations of the seed's performance table, each driven through the hook path (hook server →
// driver → hypervisor) the way Metacontroller drives it, timed from its first hook call until the
// object reports it done. Every VM it makes carries a run prefix and a run UID, and is deleted
// again through the finalize hook (identity-checked, like any VM of ours).
import { randomUUID } from 'node:crypto';
import { API, conditionOf, reconcile, type HookClient, type Json, type ReconcileOptions } from './reconcile.js';

export const OPERATIONS = ['create', 'power-off', 'power-on', 'describe', 'reconfigure-cpu', 'snapshot', 'clone-linked'] as const;
export type Operation = (typeof OPERATIONS)[number];

/** The seed's name of each operation (its table's first column). */
export const OPERATION_TITLES: Readonly<Record<Operation, string>> = {
  create: 'Create VM',
  'power-on': 'Power On',
  'power-off': 'Power Off',
  describe: 'Describe',
  'reconfigure-cpu': 'Reconfigure CPU',
  snapshot: 'Snapshot Create',
  'clone-linked': 'Clone (Linked)',
};

export interface LoadOptions {
  /** Operations of each kind (VMs made by `create`; the others act on them). */
  count: number;
  /** Operations in flight at once (Metacontroller's workers). */
  concurrency: number;
  operations: readonly Operation[];
  /** The Provider the VMs are made on, as a Provider object's spec. */
  provider: Json;
  template: string;
  network: string;
  /** What the run's object names start with. */
  prefix: string;
  reconcile: ReconcileOptions;
  progress(line: string): void;
  /** True once the run is asked to stop (Ctrl-C): no new operation starts. */
  stopped?: () => boolean;
}

export interface OperationResult {
  operation: Operation;
  latenciesMs: number[];
  errors: string[];
  /** From the first operation's start to the last one's end. */
  wallMs: number;
  hookCalls: number;
}

const NAMESPACE = 'loadgen';

function object(kind: string, name: string, spec: Json, uid: string = randomUUID()): Json {
  return { apiVersion: API, kind, metadata: { name, namespace: NAMESPACE, uid, generation: 1, creationTimestamp: new Date().toISOString() }, spec };
}

function ready(status: Json): boolean {
  return conditionOf(status, 'Ready')?.status === 'True';
}

/** Runs `work` for each index with at most `concurrency` at once; each result's latency and error recorded. */
async function timed(
  count: number,
  concurrency: number,
  work: (index: number) => Promise<void>,
  result: OperationResult,
  progress: (line: string) => void,
  stopped: () => boolean,
): Promise<void> {
  let next = 0;
  let finished = 0;
  const started = Date.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, count) }, async () => {
      while (next < count && !stopped()) {
        const index = next++;
        const begin = Date.now();
        try {
          await work(index);
          result.latenciesMs.push(Date.now() - begin);
        } catch (error) {
          result.errors.push(error instanceof Error ? error.message : String(error));
        }
        finished += 1;
        if (finished % Math.max(1, Math.floor(count / 5)) === 0 || finished === count) {
          progress(`${OPERATION_TITLES[result.operation]}: ${finished}/${count} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
        }
      }
    }),
  );
  result.wallMs = Date.now() - started;
}

/** The whole run: the Provider checked Ready through its own hook, each operation in turn, then everything deleted. */
export async function runLoad(client: HookClient, options: LoadOptions): Promise<OperationResult[]> {
  const provider = object('Provider', `${options.prefix}provider`, options.provider);
  const vmClass = object('VMClass', `${options.prefix}class`, { cpus: 2, memory: '2Gi', performanceProfile: { cpuHotAddEnabled: true } });
  const image = object('VMImage', `${options.prefix}image`, { source: options.template });
  // A linked clone is of a template (PVE clones only templates linked): the same template, fullClone false.
  const linked = object('VMImage', `${options.prefix}image-linked`, { source: options.template, fullClone: false });
  const base = () => [provider, vmClass, image, linked];
  await reconcile(client, 'provider', provider, () => [], (status) => ready(status) || conditionOf(status, 'Ready')?.status === 'False', options.reconcile);
  if (!ready(provider['status'] as Json)) {
    const why = conditionOf(provider['status'] as Json, 'Ready');
    throw new Error(`the Provider is not Ready: ${why?.reason ?? ''}: ${why?.message ?? ''}`);
  }
  for (const reference of [vmClass, image, linked]) reference['status'] = (await client.sync(reference['kind'] === 'VMClass' ? 'vmclass' : 'vmimage', reference))['status'];

  const vms: Json[] = [];
  const clones: Json[] = [];
  const snapshots: Json[] = [];
  const results: OperationResult[] = [];
  const measure = async (operation: Operation, count: number, work: (index: number) => Promise<void>) => {
    if (!options.operations.includes(operation) || options.stopped?.()) return;
    const result: OperationResult = { operation, latenciesMs: [], errors: [], wallMs: 0, hookCalls: 0 };
    const callsBefore = client.calls;
    await timed(count, options.concurrency, work, result, options.progress, options.stopped ?? (() => false));
    result.hookCalls = client.calls - callsBefore;
    results.push(result);
  };
  const vmSpec = (): Json => ({
    providerRef: { name: (provider['metadata'] as Json)['name'] },
    classRef: { name: (vmClass['metadata'] as Json)['name'] },
    imageRef: { name: (image['metadata'] as Json)['name'] },
    networks: [{ name: options.network }],
    powerState: 'On',
  });
  const until = (vm: Json, done: (status: Json) => boolean, extra: () => Json[] = () => []) =>
    reconcile(client, 'virtualmachine', vm, () => [...base(), ...extra()], done, options.reconcile);
  const on = (status: Json) => ready(status) && status['powerState'] === 'On' && Array.isArray(status['ips']) && status['ips'].length > 0;

  try {
    // Create: to Ready, on, with an address (the guest booted, cloud-init included).
    for (let index = 0; index < options.count; index += 1) vms.push(object('VirtualMachine', `${options.prefix}vm-${index}`, vmSpec()));
    const needsVMs = options.operations.some((operation) => operation !== 'create');
    await measure('create', options.count, (index) => until(vms[index] as Json, on).then(() => undefined));
    if (!options.operations.includes('create') && needsVMs) {
      // The other operations need VMs: made, but not measured.
      await Promise.all(vms.map((vm) => until(vm, on)));
    }
    const usable = vms.filter((vm) => ready((vm['status'] ?? {}) as Json));

    await measure('power-off', usable.length, async (index) => {
      const vm = usable[index] as Json;
      (vm['spec'] as Json)['powerState'] = 'OffGraceful';
      await until(vm, (status) => status['powerState'] === 'Off' && conditionOf(status, 'PowerSynced')?.status === 'True');
    });
    await measure('power-on', usable.length, async (index) => {
      const vm = usable[index] as Json;
      (vm['spec'] as Json)['powerState'] = 'On';
      await until(vm, (status) => status['powerState'] === 'On' && conditionOf(status, 'PowerSynced')?.status === 'True');
    });
    // The VMs must be steady again (addresses back) before a describe means what it says.
    if (options.operations.includes('describe')) await Promise.all(usable.map((vm) => until(vm, on)));
    await measure('describe', usable.length, async (index) => {
      await client.sync('virtualmachine', usable[index] as Json, base());
    });
    await measure('reconfigure-cpu', usable.length, async (index) => {
      const vm = usable[index] as Json;
      (vm['spec'] as Json)['resources'] = { cpu: 3 };
      vm['metadata'] = { ...(vm['metadata'] as Json), generation: Number((vm['metadata'] as Json)['generation'] ?? 1) + 1 };
      await until(vm, (status) => conditionOf(status, 'Configured')?.status === 'True' && ready(status));
    });
    await measure('snapshot', usable.length, async (index) => {
      const vm = usable[index] as Json;
      const name = String((vm['metadata'] as Json)['name']);
      const snapshot = object('VMSnapshot', `${name}-snap`, { vmRef: { name }, includeMemory: true });
      snapshots.push(snapshot);
      await reconcile(client, 'vmsnapshot', snapshot, () => [vm, ...base()], (status) => status['phase'] === 'Ready' || status['phase'] === 'Failed', options.reconcile);
      if (((snapshot['status'] ?? {}) as Json)['phase'] !== 'Ready') throw new Error(`snapshot of ${name}: ${conditionOf(snapshot['status'] as Json, 'Ready')?.message ?? 'failed'}`);
    });
    await measure('clone-linked', options.count, async (index) => {
      const clone = object('VirtualMachine', `${options.prefix}linked-${index}`, { ...vmSpec(), imageRef: { name: (linked['metadata'] as Json)['name'] } });
      clones.push(clone);
      await until(clone, ready);
    });
  } finally {
    await cleanup(client, options, base, vms, clones, snapshots);
  }
  return results;
}

/** Deletes what the run made, through the finalize hooks: snapshots, then clones, then VMs. */
async function cleanup(client: HookClient, options: LoadOptions, base: () => Json[], vms: Json[], clones: Json[], snapshots: Json[]): Promise<void> {
  const made = (object: Json) => object['status'] !== undefined;
  const finalize = { ...options.reconcile, hook: 'finalize' as const };
  const stamp = (object: Json) => ({ ...object, metadata: { ...(object['metadata'] as Json), deletionTimestamp: new Date().toISOString() } });
  const failures: string[] = [];
  const each = async (objects: Json[], controller: string, related: (object: Json) => Json[]) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.max(1, options.concurrency) }, async () => {
        while (next < objects.length) {
          const object = objects[next++] as Json;
          if (!made(object)) continue;
          try {
            await reconcile(client, controller, stamp(object), () => related(object), () => false, finalize);
          } catch (error) {
            failures.push(error instanceof Error ? error.message : String(error));
          }
        }
      }),
    );
  };
  const vmOf = (snapshot: Json) => vms.find((vm) => (vm['metadata'] as Json)['name'] === ((snapshot['spec'] as Json)['vmRef'] as Json)['name']);
  await each(snapshots, 'vmsnapshot', (snapshot) => [...(vmOf(snapshot) ? [vmOf(snapshot) as Json] : []), ...base()]);
  await each(clones, 'virtualmachine', () => base());
  await each(vms, 'virtualmachine', () => base());
  options.progress(failures.length === 0 ? 'cleanup: everything the run made is deleted' : `cleanup: ${failures.length} object(s) not deleted: ${failures[0] ?? ''}`);
  if (failures.length > 0) throw new Error(`cleanup left ${failures.length} object(s): ${failures.join('; ')}`);
}

/** The p-th percentile (nearest rank) of latencies in ms. */
export function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** Operations per minute over the phase's wall time. */
export function throughput(result: OperationResult): number {
  return result.wallMs > 0 ? (result.latenciesMs.length / result.wallMs) * 60_000 : 0;
}

export function formatMs(ms: number | undefined): string {
  if (ms === undefined) return '-';
  return ms < 1000 ? `${Math.round(ms)}ms` : `${(ms / 1000).toFixed(1)}s`;
}
