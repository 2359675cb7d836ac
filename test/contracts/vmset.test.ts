// VMSet's pure parts, table by table: rollout numbers, what changes in place, revisions, the
// selector string, and single rollout steps.
import t from 'tap';
import type { VirtualMachineSpec } from '../../src/contracts/crds/virtualmachine.js';
import type { VMSetObject } from '../../src/contracts/crds/vmset.js';
import { normalizeVMSet, scaledValue, type CanonicalSet } from '../../src/contracts/normalize/vmset.js';
import { changesInPlace, planStep, selectorString, templateRevision } from '../../src/hooks/vmset.js';

const vm: VirtualMachineSpec = {
  providerRef: { name: 'sim' },
  classRef: { name: 'small' },
  imageRef: { name: 'ubuntu-22' },
  networks: [{ name: 'lan' }],
  disks: [{ name: 'root', size: '40Gi' }],
} as VirtualMachineSpec;

t.test('int-or-percent values resolve as Deployments resolve them', async (t) => {
  t.equal(scaledValue('25%', 5, true), 2);
  t.equal(scaledValue('25%', 5, false), 1);
  t.equal(scaledValue(3, 5, true), 3);
  t.equal(scaledValue('100%', 7, false), 7);
  t.equal(scaledValue('abc', 5, true), undefined);
});

t.test('rollout numbers: defaults, never both zero, Recreate and OnDelete', async (t) => {
  const numbers = (spec: Record<string, unknown>) => {
    const normalized = normalizeVMSet({ template: { spec: vm }, ...spec } as VMSetObject['spec']);
    if (!normalized.ok) throw new Error(normalized.problem);
    const { vm: _vm, ...rest } = normalized.value;
    return rest;
  };
  t.match(numbers({ replicas: 5 }), { replicas: 5, strategy: 'RollingUpdate', maxSurge: 2, maxUnavailable: 1, partition: 0, orderedReady: false, minReadyMs: 0, progressDeadlineMs: 600_000, ordinalStart: 0 });
  t.match(numbers({}), { replicas: 1, maxSurge: 1, maxUnavailable: 0 }, '1 replica: 25% surge rounds up to 1, unavailable down to 0');
  t.match(numbers({ replicas: 4, updateStrategy: { rollingUpdate: { maxSurge: 0, maxUnavailable: 0 } } }), { maxSurge: 0, maxUnavailable: 1 });
  t.match(numbers({ replicas: 4, updateStrategy: { type: 'Recreate' } }), { maxSurge: 0, maxUnavailable: 4 });
  t.match(numbers({ replicas: 4, updateStrategy: { type: 'OnDelete' } }), { strategy: 'OnDelete' });
  t.match(numbers({ minReadySeconds: 30, ordinals: { start: 1 } }), { minReadyMs: 30_000, ordinalStart: 1 });
  const invalid = normalizeVMSet({ template: { spec: { ...vm, disks: [{ name: 'root' }] } } } as VMSetObject['spec']);
  t.match(invalid, { ok: false, problem: /^spec\.template\.spec\.disks/ });
});

t.test('what reaches a VM in place, and what needs a new one', async (t) => {
  const cases: [string, Partial<VirtualMachineSpec>, boolean][] = [
    ['CPU and memory', { resources: { cpu: 4, memoryMiB: 8192 } }, true],
    ['class', { classRef: { name: 'large' } }, true],
    ['power', { powerState: 'Off' }, true],
    ['tags', { tags: ['web'] }, true],
    ['a disk grown', { disks: [{ name: 'root', size: '50Gi' }] }, true],
    ['the same disk in the other spelling', { disks: [{ name: 'root', sizeGiB: 40 }] } as Partial<VirtualMachineSpec>, true],
    ['a disk shrunk', { disks: [{ name: 'root', size: '30Gi' }] }, false],
    ['a disk added', { disks: [{ name: 'root', size: '40Gi' }, { name: 'data', size: '10Gi' }] }, false],
    ['image', { imageRef: { name: 'debian-12' } }, false],
    ['networks', { networks: [{ name: 'dmz' }] }, false],
    ['cloud-init', { userData: { cloudInit: { inline: '#cloud-config\n' } } }, false],
    ['placement', { placement: { host: 'sim-host-2' } }, false],
  ];
  for (const [label, change, inPlace] of cases) t.equal(changesInPlace(vm, { ...vm, ...change } as VirtualMachineSpec), inPlace, label);
  t.equal(changesInPlace({ ...vm, powerState: 'On', deletionPolicy: 'Delete' } as VirtualMachineSpec, vm), true, 'defaults written or not: no change');
});

t.test('a revision is stable across key order and defaulting, and changes with anything else', async (t) => {
  const base = { metadata: { labels: { app: 'web', tier: 'a' } }, spec: vm };
  const reordered = { spec: { disks: vm.disks, networks: vm.networks, imageRef: vm.imageRef, classRef: vm.classRef, providerRef: vm.providerRef }, metadata: { labels: { tier: 'a', app: 'web' } } };
  t.equal(templateRevision(base), templateRevision(reordered as typeof base));
  t.equal(templateRevision(base), templateRevision({ ...base, spec: { ...vm, powerState: 'On' } as VirtualMachineSpec }));
  t.not(templateRevision(base), templateRevision({ ...base, metadata: { labels: { app: 'web', tier: 'b' } } }));
  t.match(templateRevision(base), /^[0-9a-f]{10}$/);
});

t.test('status.selector: the selector as kubectl writes one, or the set label', async (t) => {
  const set = (selector: unknown) => ({ metadata: { name: 'web' }, spec: { selector, template: { spec: vm } } }) as unknown as VMSetObject;
  t.equal(selectorString(set({ matchLabels: { app: 'web', tier: 'front' } })), 'app=web,tier=front');
  t.equal(
    selectorString(set({ matchExpressions: [{ key: 'env', operator: 'In', values: ['a', 'b'] }, { key: 'x', operator: 'Exists' }, { key: 'y', operator: 'DoesNotExist' }, { key: 'z', operator: 'NotIn', values: ['c'] }] })),
    'env in (a,b),x,!y,z notin (c)',
  );
  t.equal(selectorString(set(undefined)), 'virtrigaud.io/vmset=web');
});

// ---- Single steps of the rollout ----------------------------------------------------------------

type Member = Parameters<typeof planStep>[2][number];
const canonical = (overrides: Partial<CanonicalSet> = {}): CanonicalSet => {
  const normalized = normalizeVMSet({ template: { spec: vm } } as VMSetObject['spec']);
  if (!normalized.ok) throw new Error(normalized.problem);
  return { ...normalized.value, replicas: 3, maxSurge: 1, maxUnavailable: 1, ...overrides };
};
const member = (ordinal: number, revision: string, state: { ready?: boolean; available?: boolean; createdAt?: number } = {}): Member =>
  ({
    name: `web-${ordinal}`,
    ordinal,
    object: { spec: vm } as Member['object'],
    revision,
    terminating: false,
    ready: state.ready ?? true,
    available: state.available ?? state.ready ?? true,
    createdAt: state.createdAt ?? ordinal,
  }) as Member;

t.test('scaling down removes VMs that are not Ready first, then the newest', async (t) => {
  const live = [member(0, 'r'), member(1, 'r', { ready: false }), member(2, 'r'), member(3, 'r')];
  const plan = planStep(canonical({ replicas: 2 }), 'r', live, [], () => 'inPlace');
  t.same(plan.deleted.sort(), ['web-1', 'web-3']);
  t.equal(plan.create, 0);
});

t.test('replacing with maxSurge 1, maxUnavailable 0: one new VM first, an old one only once it is available', async (t) => {
  const set = canonical({ replicas: 3, maxSurge: 1, maxUnavailable: 0 });
  const old = [member(0, 'old'), member(1, 'old'), member(2, 'old')];
  t.match(planStep(set, 'new', old, [], () => 'replace'), { create: 1, deleted: [] });
  t.match(planStep(set, 'new', [...old, member(3, 'new', { ready: false })], [], () => 'replace'), { create: 0, deleted: [] }, 'the new one is not Ready yet');
  t.match(planStep(set, 'new', [...old, member(3, 'new')], [], () => 'replace'), { create: 0, deleted: ['web-2'] }, 'available: one old VM goes');
  const terminating = [{ ...member(2, 'old'), terminating: true }];
  t.match(planStep(set, 'new', [old[0] as Member, old[1] as Member, member(3, 'new')], terminating, () => 'replace'), { create: 0 }, 'a VM still being deleted counts against the surge');
});

t.test('in place with maxUnavailable 1: one available VM at a time, unavailable ones at once', async (t) => {
  const set = canonical({ replicas: 3, maxSurge: 0, maxUnavailable: 1 });
  const moved = (plan: ReturnType<typeof planStep>) => [...plan.keep].filter(([, how]) => how === 'template').map(([name]) => name).sort();
  const allAvailable = planStep(set, 'new', [member(0, 'old'), member(1, 'old'), member(2, 'old')], [], () => 'inPlace');
  t.same(moved(allAvailable), ['web-2'], 'the highest ordinal first');
  t.equal(allAvailable.pending, 2);
  const oneDown = planStep(set, 'new', [member(0, 'old'), member(1, 'old'), member(2, 'old', { ready: false })], [], () => 'inPlace');
  t.same(moved(oneDown), ['web-2'], 'the unavailable one costs nothing, and uses up the budget no other may take');
  t.equal(oneDown.pending, 2);
});

t.test('OrderedReady creates one VM, and only while every VM is Ready', async (t) => {
  const set = canonical({ replicas: 3, orderedReady: true });
  t.equal(planStep(set, 'r', [], [], () => 'inPlace').create, 1);
  t.equal(planStep(set, 'r', [member(0, 'r', { ready: false })], [], () => 'inPlace').create, 0);
  t.equal(planStep(set, 'r', [member(0, 'r')], [], () => 'inPlace').create, 1);
});
