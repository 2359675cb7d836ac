// The VMClone sync hook, called directly: which child VirtualMachine each shape of VMClone makes,
// and that every field no driver (or not this Provider's) honours is an Unsupported condition
// naming it and the driver, with no child and no driver call.
import { readFileSync } from 'node:fs';
import { Value } from '@sinclair/typebox/value';
import t from 'tap';
import { parse } from 'yaml';
import { VirtualMachineObject } from '../../src/contracts/crds/virtualmachine.js';
import type { VMCloneObject } from '../../src/contracts/crds/vmclone.js';
import type { Capability } from '../../src/contracts/driver.js';
import type { SyncRequestBody } from '../../src/contracts/metacontroller.js';
import { VMCLONE_FIELDS } from '../../src/contracts/normalize/vmclone.js';
import { customizeVMClone, syncVMClone } from '../../src/hooks/vmclone.js';
import { FakeClock } from '../helpers/clock.js';
import { capabilitiesWith, fakeDriver, hookDeps } from '../helpers/fake-driver.js';
import { hookBody, object } from '../helpers/hook-bodies.js';

type Json = Record<string, any>;

const upstreamFixture = (name: string): Json =>
  parse(readFileSync(new URL(`../fixtures/upstream-shaped/vmclone/${name}`, import.meta.url), 'utf8'), { version: '1.1' }) as Json;

const source = object('VirtualMachine', 'web', {
  spec: {
    providerRef: { name: 'sim' },
    classRef: { name: 'small' },
    imageRef: { name: 'ubuntu-22' },
    networks: [{ name: 'lan' }],
    disks: [
      { name: 'root', size: '40Gi' },
      { name: 'data', size: '10Gi' },
    ],
    lifecycle: { restartRequest: 'r1', gracefulShutdownTimeout: '90s' },
  },
  status: { providerID: 'vm-100' },
});
const provider = object('Provider', 'sim', { spec: { type: 'simulator' } });

function cloneObject(spec: Json, metadata: Json = {}): Json {
  const base = object('VMClone', 'copy', { spec });
  return { ...base, metadata: { ...base['metadata'], creationTimestamp: '2026-01-01T00:00:00Z', ...metadata } };
}

async function sync(clone: Json, options: { capabilities?: Partial<Record<Capability, boolean>>; children?: Json[]; related?: Json[]; clock?: FakeClock } = {}) {
  const fake = fakeDriver('fake', capabilitiesWith(options.capabilities));
  const body = hookBody(clone, options.related ?? [source, provider], options.children ?? []) as SyncRequestBody<VMCloneObject>;
  const response = await syncVMClone(body, hookDeps(fake.registry, options.clock));
  const status = response.status as Json;
  const ready = (status['conditions'] as Json[]).find((condition) => condition['type'] === 'Ready');
  return { response, status, ready, children: response.children as Json[], calls: fake.calls };
}

t.test('an upstream-shaped VMClone makes a full-clone VirtualMachine with its class, disk sizes, labels and annotations, left off', async (t) => {
  const fixture = upstreamFixture('test-copy.upstream.yaml');
  const { children, status, ready, calls } = await sync({ ...cloneObject(fixture['spec']), metadata: { ...cloneObject({})['metadata'], name: 'web-test' } });
  t.equal(children.length, 1);
  const child = children[0] as Json;
  t.same(child, {
    apiVersion: 'infra.virtrigaud.io/v1beta1',
    kind: 'VirtualMachine',
    metadata: { name: 'web-test', labels: { app: 'web', tier: 'test' }, annotations: { 'example.com/owner': 'qa-team' } },
    spec: {
      providerRef: { name: 'sim' },
      classRef: { name: 'large' },
      cloneFrom: { vmRef: { name: 'web' }, linkedClone: false },
      powerState: 'Off',
      networks: [{ name: 'lan' }],
      disks: [
        { name: 'root', size: '60Gi' },
        { name: 'data', size: '10Gi' },
      ],
      lifecycle: { gracefulShutdownTimeout: '90s' },
    },
  });
  t.ok(Value.Check(VirtualMachineObject, { ...child, metadata: { ...child['metadata'], namespace: 'default' } }), 'the child fits the VirtualMachine contract');
  t.match(status, { phase: 'Cloning', source: 'web', actualCloneType: 'FullClone', targetRef: { name: 'web-test' } });
  t.match(ready, { status: 'Unknown', reason: 'Cloning' });
  t.same(calls, [], 'nothing asked of a hypervisor');
});

t.test('the seed-shaped twin still makes a linked clone, powered on', async (t) => {
  const { children, status } = await sync(cloneObject({ sourceVMRef: { name: 'web' } }));
  t.match(children[0], { metadata: { name: 'copy' }, spec: { cloneFrom: { vmRef: { name: 'web' }, linkedClone: true }, powerState: 'On', classRef: { name: 'small' } } });
  t.notOk('labels' in (children[0] as Json)['metadata']);
  t.match(status, { actualCloneType: 'LinkedClone', phase: 'Cloning' });
});

t.test('upstream\'s powerOn is the clone\'s first power state; the seeds\' powerState is kept on the existing clone', async (t) => {
  const upstream = cloneObject({ source: { vmRef: { name: 'web' } }, target: { name: 'copy' }, options: { powerOn: true } });
  const first = await sync(upstream);
  t.equal((first.children[0] as Json)['spec']['powerState'], 'On');
  const existing = object('VirtualMachine', 'copy', { spec: { ...(first.children[0] as Json)['spec'], powerState: 'Off' } });
  const later = await sync(upstream, { children: [existing] });
  t.equal((later.children[0] as Json)['spec']['powerState'], 'Off', 'upstream\'s powerOn does not fight the VM\'s own powerState');
  const seed = cloneObject({ sourceVMRef: { name: 'web' }, target: { powerState: 'On' } });
  const kept = await sync(seed, { children: [existing] });
  t.equal((kept.children[0] as Json)['spec']['powerState'], 'On', 'the seeds\' target.powerState is kept');
});

t.test('the seeds\' default linked clone on a provider without linked clones is Unsupported, before any child', async (t) => {
  const { children, ready, status, calls, response } = await sync(cloneObject({ sourceVMRef: { name: 'web' } }), { capabilities: { linkedClones: false } });
  t.same(children, []);
  t.match(ready, { status: 'False', reason: 'Unsupported', message: 'VMClone copy: the fake provider cannot honour spec.linkedClone (default true)' });
  t.equal(status['phase'], 'Failed');
  t.equal(response.resyncAfterSeconds, 300, 'looked at again: the provider may gain the capability');
  t.same(calls, []);
});

/** `path` below the object, `[]` stepping into the first item of a list (made if missing). */
function setAt(root: Json, path: string, value: unknown): void {
  const steps = path.split('.');
  let node: Json = root;
  for (const [index, step] of steps.entries()) {
    const last = index === steps.length - 1;
    const list = step.endsWith('[]');
    const key = list ? step.slice(0, -2) : step;
    if (list) {
      node[key] ??= [{}];
      node = node[key][0];
    } else if (last) {
      node[key] = value;
    } else {
      node[key] ??= {};
      node = node[key];
    }
  }
}

const upstreamBase = () => ({ source: { vmRef: { name: 'web' } }, target: { name: 'copy', disks: [{ name: 'root', sizeGiB: 50 }] } });

for (const rule of VMCLONE_FIELDS) {
  const value = rule.values?.[0] ?? rule.example;
  const label = rule.values ? `${rule.path}: ${String(value)}` : rule.path;
  t.test(`${label} is Unsupported ${rule.capability ? `without ${rule.capability}` : 'on every provider'}: named, no child, no driver call`, async (t) => {
    const spec: Json = upstreamBase();
    // Another source replaces the VM (exactly one is allowed).
    if (rule.path.startsWith('spec.source.')) spec['source'] = {};
    setAt({ spec }, rule.path, structuredClone(value));
    const { children, ready, status, calls } = await sync(cloneObject(spec), { capabilities: rule.capability ? { [rule.capability]: false } : {} });
    t.same(children, [], 'no child VirtualMachine');
    t.equal(ready?.['reason'], 'Unsupported');
    t.match(ready?.['message'], rule.path, 'the condition names the field');
    if (!rule.path.startsWith('spec.source.')) t.match(ready?.['message'], 'the fake provider cannot honour', 'and the driver');
    if (rule.why) t.match(ready?.['message'], rule.why, 'and why');
    t.equal(status['phase'], 'Failed');
    t.same(calls, [], 'no driver call');
  });
}

t.test('a capability rule is no obstacle for a provider that has it; expandPolicy needs nothing (the copy is grown before it first runs)', async (t) => {
  const spec: Json = { ...upstreamBase(), options: { type: 'LinkedClone' } };
  (spec['target'] as Json)['disks'] = [{ name: 'root', sizeGiB: 50, expandPolicy: 'Online' }];
  const { children, calls } = await sync(cloneObject(spec), { capabilities: { onlineDiskGrow: false } });
  t.match(children[0], { spec: { cloneFrom: { linkedClone: true }, disks: [{ name: 'root', size: '50Gi' }] } });
  t.same(calls, []);
});

t.test('target.namespace and target.providerRef naming the clone\'s own are no obstacle; others are', async (t) => {
  const own = { ...upstreamBase(), target: { name: 'copy', namespace: 'default', providerRef: { name: 'sim', namespace: 'default' } } };
  t.equal((await sync(cloneObject(own))).children.length, 1);
  const other = { ...upstreamBase(), target: { name: 'copy', providerRef: { name: 'pve' } } };
  const refused = await sync(cloneObject(other));
  t.same(refused.children, []);
  t.match(refused.ready, { reason: 'Unsupported', message: /spec.target.providerRef \(a clone is made on its source's Provider/ });
});

t.test('several unsupported fields are named together', async (t) => {
  const spec = { ...upstreamBase(), options: { type: 'InstantClone', parallel: true }, customization: { hostname: 'web-02' } };
  const { ready } = await sync(cloneObject(spec));
  t.match(ready?.['message'], /spec.options.type=InstantClone .*spec.options.parallel .*spec.customization.hostname/);
});

t.test('what no provider honours is said even before the source exists', async (t) => {
  const spec = { ...upstreamBase(), customization: { hostname: 'web-02' } };
  const { ready, children } = await sync(cloneObject(spec), { related: [provider] });
  t.same(children, []);
  t.match(ready, { reason: 'Unsupported', message: /^VMClone copy: no provider can honour spec.customization.hostname/ });
});

t.test('a capability question waits for the source and its Provider', async (t) => {
  const linked = cloneObject({ ...upstreamBase(), options: { type: 'LinkedClone' } });
  t.match((await sync(linked, { related: [] })).ready, { reason: 'SourceNotFound' });
  const noProvider = await sync(linked, { related: [source] });
  t.match(noProvider.ready, { reason: 'ProviderNotFound' });
  t.equal(noProvider.status['phase'], 'Pending');
  t.same(noProvider.children, []);
});

t.test('the customized upstream fixture is refused field by field', async (t) => {
  const fixture = upstreamFixture('customized.upstream.yaml');
  const { ready, children } = await sync(cloneObject(fixture['spec']));
  t.same(children, []);
  for (const field of ['hostname', 'domain', 'timeZone', 'networks', 'userData.cloudInit', 'tags']) {
    t.match(ready?.['message'], `spec.customization.${field}`, field);
  }
});

t.test('a disk the source does not have is an invalid spec naming it', async (t) => {
  const spec = { ...upstreamBase(), target: { name: 'copy', disks: [{ name: 'logs', sizeGiB: 20 }] } };
  const { ready, children, status } = await sync(cloneObject(spec));
  t.same(children, []);
  t.match(ready, { reason: 'InvalidSpec', message: /^spec.target.disks\[0\]: the source VirtualMachine web has no disk logs/ });
  t.equal(status['phase'], 'Failed');
});

t.test('a root disk size is added when the source sized its root by class', async (t) => {
  const noDisks = { ...source, spec: { ...source['spec'], disks: undefined } };
  delete noDisks['spec']['disks'];
  const { children } = await sync(cloneObject(upstreamBase()), { related: [noDisks, provider] });
  t.same((children[0] as Json)['spec']['disks'], [{ name: 'root', size: '50Gi' }]);
});

t.test('an invalid spec with a clone already made keeps the clone and its labels', async (t) => {
  const existing = object('VirtualMachine', 'copy', { metadata: { name: 'copy', namespace: 'default', labels: { app: 'web' } }, spec: { providerRef: { name: 'sim' }, classRef: { name: 'small' }, cloneFrom: { vmRef: { name: 'web' } } } });
  const spec = { ...upstreamBase(), target: { name: 'copy', labels: { 'controller-uid': 'x' } } };
  const { children, ready } = await sync(cloneObject(spec), { children: [existing] });
  t.equal(children.length, 1, 'never dropped: dropping it would delete the clone');
  t.same((children[0] as Json)['metadata'], { name: 'copy', labels: { app: 'web' } });
  t.match(ready, { reason: 'InvalidSpec', message: /controller-uid/ });
});

t.test('options.timeout: an unfinished clone is Failed past it, and Ready once it gets there', async (t) => {
  const clock = new FakeClock(Date.parse('2026-01-01T00:10:00Z'));
  const clone = cloneObject({ source: { vmRef: { name: 'web' } }, target: { name: 'copy' } });
  const child = object('VirtualMachine', 'copy', {
    spec: { providerRef: { name: 'sim' }, classRef: { name: 'small' }, cloneFrom: { vmRef: { name: 'web' } } },
    status: { phase: 'Provisioning', conditions: [{ type: 'Ready', status: 'False', reason: 'Cloning', message: 'cloning', lastTransitionTime: '2026-01-01T00:00:00Z' }] },
  });
  const early = await sync(clone, { children: [child], clock });
  t.equal(early.status['phase'], 'Cloning');
  t.equal(early.response.resyncAfterSeconds, 20 * 60, 'looks again when upstream\'s default 30m runs out');
  clock.advance(21 * 60_000);
  const late = await sync(clone, { children: [child], clock });
  t.equal(late.status['phase'], 'Failed');
  t.match(late.ready, { reason: 'CloneTimeout', message: /not done 1860 s after the VMClone was made \(options.timeout\)/ });
  t.equal(late.children.length, 1, 'the VirtualMachine keeps going');
  const done = { ...child, status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True', reason: 'Ready', message: 'ok', lastTransitionTime: '2026-01-01T00:40:00Z' }] } };
  const ready = await sync(clone, { children: [done], clock });
  t.equal(ready.status['phase'], 'Ready');
  t.match(ready.ready, { status: 'True' });
  const seedClone = cloneObject({ sourceVMRef: { name: 'web' }, target: { name: 'copy' } });
  t.equal((await sync(seedClone, { children: [child], clock })).status['phase'], 'Cloning', 'the seeds\' VMClones have no timeout');
});

t.test('customize asks for the source VirtualMachine and the Providers', async (t) => {
  const upstream = customizeVMClone(cloneObject(upstreamBase()) as VMCloneObject);
  t.same(upstream.relatedResources, [
    { apiVersion: 'infra.virtrigaud.io/v1beta1', resource: 'virtualmachines', namespace: 'default', names: ['web'] },
    { apiVersion: 'infra.virtrigaud.io/v1beta1', resource: 'providers', labelSelector: {} },
  ]);
  const image = customizeVMClone(cloneObject({ source: { imageRef: { name: 'ubuntu' } }, target: { name: 'copy' } }) as VMCloneObject);
  t.same(image.relatedResources, [{ apiVersion: 'infra.virtrigaud.io/v1beta1', resource: 'providers', labelSelector: {} }], 'no VM when none is named');
});
