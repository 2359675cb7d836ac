// VMPlacementPolicy on vcsim's cluster: the record travels in extraConfig with the identity, the
// inventory lists every VM per host (vcsim's own included), and two hook-server replicas (each with
// its own vSphere driver) racing for the cluster's last free slot end with one VM there. vcsim's
// work takes real time, so the harness settles in real time (test/helpers/realtime.ts).
import t, { type Test } from 'tap';
import type { Inventory } from '../../src/contracts/driver.js';
import { VsphereClient, vsphereConfigFromEnv, vsphereDriverFromEnv, type VsphereDriver } from '../../src/hypervisors/vsphere/index.js';
import { retrieveAll } from '../../src/hypervisors/vsphere/property-collector.js';
import { API, lifecycle } from '../helpers/lifecycle.js';
import { RaceGate, raceSyncs } from '../helpers/race-gate.js';
import { settleInRealTime } from '../helpers/realtime.js';
import { testServer } from '../helpers/server.js';
import { prepareTemplate, requireVcsim, startSoapProxy, startVcsim, VcsimGuests, vmsOwnedBy, type Vcsim } from '../helpers/vcsim.js';

t.setTimeout(300_000);

// vcsim's default inventory: cluster DC0_C0 with three hosts, and the standalone DC0_H0 that holds
// the template. The policy keeps to the cluster: vcsim clones onto the template's host and the
// driver moves the VM afterwards (create.ts relocateIfMisplaced), so DC0_H0 sees VMs in transit.
const CLUSTER_HOST = /^DC0_C0_H\d+$/;

/** The most VMs powered on at once on each host, sampled from outside the drivers. */
class PowerSampler {
  readonly peak = new Map<string, number>();
  readonly #client: VsphereClient;
  #timer: NodeJS.Timeout | undefined;

  constructor(vcsim: Vcsim) {
    this.#client = new VsphereClient(vsphereConfigFromEnv(vcsim.env));
  }

  start(): void {
    this.#timer = setInterval(() => void this.sample().catch(() => undefined), 100);
  }

  async sample(): Promise<void> {
    const { rootFolder } = await this.#client.serviceContent();
    const vms = await retrieveAll(this.#client, rootFolder, 'VirtualMachine', ['runtime.powerState', 'runtime.host']);
    const on = new Map<string, number>();
    for (const vm of vms) {
      const host = vm.props.get('runtime.host')?.text;
      if (host === undefined || vm.props.get('runtime.powerState')?.text !== 'poweredOn') continue;
      on.set(host, (on.get(host) ?? 0) + 1);
    }
    for (const [host, count] of on) this.peak.set(host, Math.max(this.peak.get(host) ?? 0, count));
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#client.close();
  }
}

/** The limit that leaves the cluster exactly `free` slots, counting the VMs vcsim already has. */
function slotsOf(inventory: Inventory): { hosts: string[]; limit: number; free: number } {
  const cluster = inventory.hosts.filter((host) => CLUSTER_HOST.test(host.name));
  const limit = Math.max(...cluster.map((host) => host.placed?.length ?? 0)) + 1;
  const free = cluster.reduce((sum, host) => sum + limit - (host.placed?.length ?? 0), 0);
  return { hosts: cluster.map((host) => host.name).sort(), limit, free };
}

async function system(t: Test, gate: RaceGate) {
  const vcsim = await startVcsim(t);
  await prepareTemplate(vcsim);
  // In front of vcsim for both drivers, to count the clones and deletes they ask for.
  const proxy = await startSoapProxy(t, vcsim.url);
  const driver = (): VsphereDriver => {
    const made = vsphereDriverFromEnv({ ...vcsim.env, VSPHERE_ENDPOINT: proxy.url });
    t.teardown(() => made.close());
    return made;
  };
  const first = driver();
  const guests = new VcsimGuests(vcsim);
  const booting = setInterval(() => void guests.assignAddresses().catch(() => undefined), 200);
  const sampler = new PowerSampler(vcsim);
  t.teardown(async () => {
    clearInterval(booting);
    await guests.close();
    await sampler.close();
  });
  const env = await lifecycle(t, {
    registry: (simulators) => gate.wrap({ driverFor: async (provider) => (provider.type === 'vsphere' ? first : simulators.driverFor(provider)) }),
  });
  await env.basics({ cpus: 1, memory: '512Mi' }, { type: 'vsphere', endpoint: vcsim.url, runtime: { mode: 'InProcess' } });
  const slots = slotsOf(await first.inventory());
  env.cluster.create({
    apiVersion: API,
    kind: 'VMPlacementPolicy',
    metadata: { name: 'last-slot', namespace: 'default' },
    spec: { nodeSelector: slots.hosts, constraints: { maxVMsPerNode: slots.limit } },
  });
  // A second replica: its own process state and its own vSphere driver, the same vCenter.
  const second = driver();
  const replica = testServer({ clock: env.clock, registry: () => gate.wrap({ driverFor: async () => second }) });
  t.teardown(() => replica.app.close());
  const settle = (predicate: () => boolean, what: string) => settleInRealTime(env.metacontroller, predicate, { timeoutMs: 120_000, stepMs: 100, what });
  const calls = (method: string) => proxy.requests.filter((request) => request.includes(`<${method} `)).length;
  return { ...env, vcsim, first, replica, slots, settle, calls, sampler };
}

const createVM = (env: Awaited<ReturnType<typeof system>>, name: string) =>
  env.cluster.create({
    apiVersion: API,
    kind: 'VirtualMachine',
    metadata: { name, namespace: 'default', labels: { 'app.kubernetes.io/name': name } },
    spec: { providerRef: { name: 'sim' }, classRef: { name: 'small' }, imageRef: { name: 'ubuntu-22' }, networks: [{ name: 'lan' }], placementRef: { name: 'last-slot' } },
  });

if (requireVcsim(t)) {
  t.test("maxVMsPerNode on vcsim's cluster, counting vcsim's own VMs, then ten syncs on two replicas race for the last slot", async (t) => {
    const gate = new RaceGate(10);
    const env = await system(t, gate);
    const { hosts, limit, free } = env.slots;
    t.ok(free > 1, `${free} free slots on ${hosts.join(', ')} with ${limit} VMs per host`);
    env.sampler.start();

    const fills = Array.from({ length: free - 1 }, (_, i) => `fill-${i}`);
    for (const name of fills) createVM(env, name);
    await env.settle(() => fills.every((name) => env.isReady(name)), 'the fills Ready');
    for (const name of fills) t.match(env.status(name)['host'], /^DC0_C0_H\d+$/, `${name} on a cluster host`);
    const fill = fills[0] ?? '';
    t.equal((await vmsOwnedBy(env.vcsim, env.vm(fill)?.metadata.uid ?? '')).length, 1, 'a fill is on vSphere');
    const listed = (await env.first.inventory()).hosts.flatMap((host) => host.placed ?? []).find((vm) => vm.name === fill);
    t.match(listed, { owner: env.vm(fill)?.metadata.uid, labels: { 'app.kubernetes.io/name': fill }, order: Number }, 'listed with the labels and order recorded at create');

    const last = [...env.metacontroller.calls].reverse().find((call) => call.controller === 'virtrigaud-virtualmachine' && call.hook === 'sync');
    const related = (last?.request as { related: object }).related;
    const racers = Array.from({ length: 10 }, (_, i) => `racer-${i}`);
    for (const name of racers) createVM(env, name);
    const clonesBefore = env.calls('CloneVM_Task');
    const destroysBefore = env.calls('Destroy_Task');
    gate.armed = true;
    t.same(await raceSyncs(env, [env.app, env.replica.app], racers, related), []);
    gate.armed = false;
    t.equal(env.calls('CloneVM_Task') - clonesBefore, 2, 'each replica cloned one VM for the last slot');

    const unschedulable = () => racers.filter((name) => env.condition('Placed', name)?.reason === 'Unschedulable');
    await env.settle(() => racers.filter((name) => env.isReady(name)).length === 1 && unschedulable().length === 9, 'one racer Ready, nine Unschedulable');
    const winner = racers.find((name) => env.isReady(name)) ?? '';
    t.match(env.status(winner)['host'], /^DC0_C0_H\d+$/);
    const full = (await env.first.inventory()).hosts.filter((host) => CLUSTER_HOST.test(host.name));
    t.same(
      full.map((host) => [host.name, host.placed?.length]),
      full.map((host) => [host.name, limit]),
      `the cluster is full: ${limit} VMs on each host`,
    );
    const racing = await Promise.all(racers.map(async (name) => (await vmsOwnedBy(env.vcsim, env.vm(name)?.metadata.uid ?? '')).length));
    t.equal(racing.reduce((sum, count) => sum + count, 0), 1, 'one racer VM on vSphere');
    t.equal(env.calls('CloneVM_Task') - clonesBefore, 2, 'no clone beyond the two racing copies');
    t.equal(env.calls('Destroy_Task') - destroysBefore, 1, 'the copy placed second was destroyed, once');
    const message = `no host fits: ${[...hosts, 'DC0_H0']
      .sort()
      .map((host) => `${host}: ${CLUSTER_HOST.test(host) ? `maxVMsPerNode ${limit} reached` : 'not in nodeSelector'}`)
      .join('; ')}`;
    for (const name of unschedulable()) t.equal(env.condition('Placed', name)?.message, message, `${name}: one line, host by host`);

    await env.sampler.sample();
    for (const host of (await env.first.inventory()).hosts) {
      if (!CLUSTER_HOST.test(host.name)) continue;
      const moid = (await env.vcsim.govc('find', '-i', '/DC0/host/DC0_C0', '-type', 'h', '-name', host.name)).trim().replace(/^HostSystem:/, '');
      t.ok((env.sampler.peak.get(moid) ?? 0) <= limit, `${host.name}: at most ${limit} VMs powered on at any time (${env.sampler.peak.get(moid) ?? 0})`);
    }
  });
}
