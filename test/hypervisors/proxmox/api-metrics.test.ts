// `proxmox_operator_api_requests_total{method,endpoint,status}` (the Viti seed's metric): every PVE
// API request the client makes, counted in the registry it is given (the provider runtime's, served
// at its /metrics), with the endpoint as a path template so no node name, VMID, UPID or storage
// name ever becomes a label value.
import { createServer } from 'node:net';
import t, { type Test } from 'tap';
import { Registry } from 'prom-client';
import type { Driver, Identity, VMRef } from '../../../src/contracts/driver.js';
import { GiB } from '../../../src/contracts/quantity.js';
import { API_REQUESTS_METRIC, ProxmoxClient, endpointTemplate } from '../../../src/hypervisors/proxmox/client.js';
import { proxmoxConfigFromEnv } from '../../../src/hypervisors/proxmox/config.js';
import { ProxmoxDriver } from '../../../src/hypervisors/proxmox/driver.js';
import { ProviderRuntimeMetrics, buildProviderRuntime } from '../../../src/hypervisors/remote/index.js';
import { FakePve } from '../../fakes/proxmox/index.js';
import { basicSpec } from '../../conformance/driver-suite.js';

const TOKEN = { PVE_TOKEN_ID: 'virtrigaud@pve!vrtg', PVE_TOKEN_SECRET: 'secret-token' };
const FAST = { taskDurationMs: 40, bootMs: 80 };

/** `METHOD endpoint status` → count, from the Prometheus text of `proxmox_operator_api_requests_total`. */
function counts(text: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^proxmox_operator_api_requests_total\{(.*)\} (\d+)$/.exec(line);
    if (!match) continue;
    const labels = Object.fromEntries([...(match[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((label) => [label[1], label[2]]));
    found.set(`${labels['method']} ${labels['endpoint']} ${labels['status']}`, Number(match[2]));
  }
  return found;
}

async function registryCounts(registry: Registry): Promise<Map<string, number>> {
  return counts(await registry.metrics());
}

function total(found: Map<string, number>): number {
  return [...found.values()].reduce((sum, value) => sum + value, 0);
}

function driverFor(t: Test, endpoint: string, registry: Registry, options: { requestTimeoutMs?: number } = {}): ProxmoxDriver {
  const driver = new ProxmoxDriver(proxmoxConfigFromEnv({ ...TOKEN, PVE_ENDPOINT: endpoint }), { metricsRegistry: registry, ...options });
  t.teardown(() => driver.close());
  return driver;
}

async function fakePve(t: Test): Promise<FakePve> {
  const fake = await FakePve.start(FAST);
  t.teardown(() => fake.close());
  return fake;
}

async function taskDone(driver: Driver, task: string | undefined): Promise<void> {
  if (task === undefined) return;
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const status = await driver.taskStatus(task);
    if (status.state === 'failed') throw new Error(`task failed: ${status.error ?? ''}`);
    if (status.state === 'succeeded') return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`task ${task} did not end`);
}

t.test('endpoint templates replace every name and ID with its parameter', async (t) => {
  const cases: [path: string, template: string][] = [
    ['/version', '/version'],
    ['/cluster/resources', '/cluster/resources'],
    ['/cluster/nextid', '/cluster/nextid'],
    ['/cluster/tasks', '/cluster/tasks'],
    ['/access/ticket', '/access/ticket'],
    ['/nodes/pve1/status', '/nodes/{node}/status'],
    ['/nodes/pve-2/network', '/nodes/{node}/network'],
    ['/nodes/pve1/qemu', '/nodes/{node}/qemu'],
    ['/nodes/pve1/qemu/100', '/nodes/{node}/qemu/{vmid}'],
    ['/nodes/pve1/qemu/100/config', '/nodes/{node}/qemu/{vmid}/config'],
    ['/nodes/pve1/qemu/100/status/current', '/nodes/{node}/qemu/{vmid}/status/{action}'],
    ['/nodes/pve1/qemu/100/status/start', '/nodes/{node}/qemu/{vmid}/status/{action}'],
    ['/nodes/pve1/qemu/9000/clone', '/nodes/{node}/qemu/{vmid}/clone'],
    ['/nodes/pve1/qemu/100/agent/network-get-interfaces', '/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces'],
    ['/nodes/pve1/qemu/100/snapshot', '/nodes/{node}/qemu/{vmid}/snapshot'],
    ['/nodes/pve1/qemu/100/snapshot/before-upgrade/rollback', '/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback'],
    ['/nodes/pve1/tasks/UPID%3Apve1%3A0000A1B2%3A00C0FFEE%3A65F0A1B2%3Aqmclone%3A9000%3Avirtrigaud%40pve!vrtg%3A/status', '/nodes/{node}/tasks/{upid}/status'],
    ['/nodes/pve1/tasks/UPID:pve1:0000A1B2:00C0FFEE:65F0A1B2:qmstart:100:root@pam:/log', '/nodes/{node}/tasks/{upid}/log'],
    ['/nodes/pve1/storage/local-lvm/content', '/nodes/{node}/storage/{storage}/content'],
    ['/nodes/pve1/storage/local/content/local%3Aimport%2Fdisk.qcow2', '/nodes/{node}/storage/{storage}/content/{volume}'],
    ['/nodes/pve1/storage/local/download-url', '/nodes/{node}/storage/{storage}/download-url'],
    // Paths the driver does not use today: any segment that is not spelled like PVE's fixed ones is data.
    ['/cluster/ha/resources/vm:100', '/cluster/ha/resources/{id}'],
    ['/access/users/root@pam/token/virtrigaud', '/access/users/{userid}/token/{tokenid}'],
    ['/pools/constructor', '/pools/{poolid}'],
    ['/nodes/pve1/qemu/100/firewall/rules/3', '/nodes/{node}/qemu/{vmid}/firewall/rules/{id}'],
    ['/nodes/pve1/version?x=1', '/nodes/{node}/version'],
  ];
  for (const [path, template] of cases) t.equal(endpointTemplate(path), template, path);
});

t.test('a sequence of driver calls is counted request by request, under templated endpoints, in the runtime /metrics', async (t) => {
  const fake = await fakePve(t);
  const metrics = new ProviderRuntimeMetrics({ processMetrics: false });
  const driver = driverFor(t, fake.url, metrics.registry);
  const app = buildProviderRuntime({ driver, token: 'a-runtime-token', logger: false, metrics });
  t.teardown(() => app.close());

  await driver.probe();
  await driver.probe();
  let found = await registryCounts(metrics.registry);
  t.same([...found], [['GET /version 200', 2]], 'two probes, two requests');

  const owner: Identity = { uid: '8d3f2a10-2222-4000-8000-00000000c0de', namespace: 'apps', name: 'metered' };
  const spec = basicSpec('metered', owner, { disks: [{ name: 'root', sizeBytes: 12 * GiB, root: true }] });
  const created = await driver.create(spec);
  await taskDone(driver, created.task);
  const configured = await driver.create(spec);
  await taskDone(driver, configured.task);
  const ref: VMRef = { id: created.id, owner };
  await taskDone(driver, (await driver.power(ref, 'on')).task);
  await taskDone(driver, (await driver.snapshotCreate(ref, { name: 'before-upgrade', memory: false, quiesce: false })).task);
  await driver.inventory();

  const response = await app.inject({ method: 'GET', url: '/metrics' });
  t.equal(response.statusCode, 200, '/metrics needs no token');
  found = counts(response.body);
  for (const expected of [
    'GET /version 200',
    'GET /cluster/resources 200',
    'GET /cluster/nextid 200',
    'POST /nodes/{node}/qemu/{vmid}/clone 200',
    'GET /nodes/{node}/tasks/{upid}/status 200',
    'POST /nodes/{node}/qemu/{vmid}/config 200',
    'POST /nodes/{node}/qemu/{vmid}/status/{action} 200',
    'POST /nodes/{node}/qemu/{vmid}/snapshot 200',
    'GET /nodes/{node}/network 200',
  ]) {
    t.ok((found.get(expected) ?? 0) >= 1, `counted: ${expected}`);
  }
  // Every request the fake received, counted once under its template and status.
  const received = new Map<string, number>();
  for (const request of fake.requests) {
    const key = `${request.method} ${endpointTemplate(request.path)} ${request.status}`;
    received.set(key, (received.get(key) ?? 0) + 1);
  }
  t.same(Object.fromEntries(found), Object.fromEntries(received), 'the counter matches the fake request log');
  t.equal(total(found), fake.requests.length);

  const labelValues = [...found.keys()].join('\n');
  const vmid = created.id.split('/').pop() ?? created.id;
  t.notMatch(labelValues, /pve1|pve2/, 'no node name');
  t.notMatch(labelValues, /local-lvm|local\b/, 'no storage name');
  t.notMatch(labelValues, /UPID/, 'no UPID');
  t.notMatch(labelValues, /before-upgrade/, 'no snapshot name');
  t.notOk(labelValues.includes(vmid) || /\/\d+/.test(labelValues), 'no VMID');
  t.notMatch(response.body, /secret-token/, 'no credential on /metrics');
});

t.test('a 5xx answer is counted with its status', async (t) => {
  const fake = await fakePve(t);
  const registry = new Registry();
  const driver = driverFor(t, fake.url, registry);
  fake.injectFault({ kind: 'status', code: 500, path: /^\/version$/ });
  await t.rejects(driver.probe());
  fake.injectFault({ kind: 'status', code: 595, path: /^\/nodes\/[^/]+\/network$/, times: 'always' });
  await driver.inventory().catch(() => undefined);
  const found = await registryCounts(registry);
  t.equal(found.get('GET /version 500'), 1);
  t.ok((found.get('GET /nodes/{node}/network 595') ?? 0) >= 1, 'a node that does not answer: 595');
  t.equal(found.get('GET /cluster/resources 200'), 1);
});

t.test('a request that gets no answer is counted as "error": refused, or timed out', async (t) => {
  // A port that was just free: nothing listens there.
  const port = await new Promise<number>((resolve) => {
    const probe = createServer();
    probe.listen(0, '127.0.0.1', () => {
      const address = probe.address();
      probe.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
  const registry = new Registry();
  await t.rejects(driverFor(t, `https://127.0.0.1:${port}`, registry).probe(), { code: 'Unreachable' });
  t.same([...(await registryCounts(registry))], [['GET /version error', 1]]);

  const fake = await fakePve(t);
  fake.injectFault({ kind: 'hang', path: /^\/cluster\/resources$/ });
  const timedOut = new Registry();
  await t.rejects(driverFor(t, fake.url, timedOut, { requestTimeoutMs: 200 }).inventory(), { code: 'Unreachable' });
  t.equal((await registryCounts(timedOut)).get('GET /cluster/resources error'), 1);
});

t.test('clients sharing a registry count in the same series: a driver rebuilt after a rotation goes on counting', async (t) => {
  const fake = await fakePve(t);
  const registry = new Registry();
  const config = proxmoxConfigFromEnv({ ...TOKEN, PVE_ENDPOINT: fake.url });
  const first = new ProxmoxClient(config, { metricsRegistry: registry });
  const second = new ProxmoxClient(config, { metricsRegistry: registry });
  t.teardown(async () => {
    await first.close();
    await second.close();
  });
  await first.get('/version');
  await second.get('/version');
  t.equal((await registryCounts(registry)).get('GET /version 200'), 2);
  t.equal(registry.getMetricsAsArray().filter((metric) => metric.name === API_REQUESTS_METRIC).length, 1);
});

t.test('a client without a registry counts nowhere', async (t) => {
  const fake = await fakePve(t);
  const client = new ProxmoxClient(proxmoxConfigFromEnv({ ...TOKEN, PVE_ENDPOINT: fake.url }));
  t.teardown(() => client.close());
  await client.get('/version');
  const global = await import('prom-client');
  t.equal(global.register.getSingleMetric(API_REQUESTS_METRIC), undefined, 'nothing in the global registry');
});
