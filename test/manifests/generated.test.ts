// The committed manifests are the generator's output (checked first, byte for byte; the other
// tests read the generator's output), and what they declare is what the apiserver and
// Metacontroller will accept.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parse } from 'yaml';
import { renderManifests } from '../../src/manifests/render.js';
import { CrdValidator, structuralIssues } from '../helpers/crd-validator.js';

type Json = Record<string, unknown>;

const root = fileURLToPath(new URL('../..', import.meta.url));
const rendered = renderManifests();
const REGENERATE = 'run `npm run manifests` and commit the result';

/** Short names KubeVirt (and CDI) already take; `kubectl get vm` must not become ambiguous. */
const KUBEVIRT_SHORT_NAMES = [
  'vm', 'vms', 'vmi', 'vmis', 'vmirs', 'vmpool', 'vmsnapshot', 'vmsnapshots', 'vmclone', 'vmclones',
  'vmexport', 'vmrestore', 'vmpref', 'vmipreset', 'vmim', 'vminstancetype', 'vmclusterinstancetype',
  'vmf', 'vmcf', 'dv', 'dvs',
];

function yamlFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return yamlFiles(path);
    return /\.ya?ml$/.test(name) ? [relative(root, path)] : [];
  });
}

/** A generated manifest, parsed as YAML 1.2 (our contract; the quoting makes 1.1 read the same). */
function renderedYaml(path: string): Json {
  const value: unknown = parse(rendered.get(path) ?? '');
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error(`${path} is not a mapping`);
  return value as Json;
}

function at(value: unknown, ...path: (string | number)[]): unknown {
  let current = value;
  for (const key of path) {
    current = current !== null && typeof current === 'object' ? (current as Record<string, unknown>)[key] : undefined;
  }
  return current;
}

const crdPaths = [...rendered.keys()].filter((p) => p.startsWith('manifests/crds/'));
const controllerPaths = [...rendered.keys()].filter((p) => p.startsWith('manifests/metacontroller/'));
const crds = crdPaths.map(renderedYaml);
const controllers = controllerPaths.map(renderedYaml);

t.test('every generated manifest is committed byte for byte', async (t) => {
  for (const [path, text] of rendered) {
    let committed: string | undefined;
    try {
      committed = readFileSync(join(root, path), 'utf8');
    } catch {
      committed = undefined;
    }
    t.ok(committed !== undefined, `${path} is committed (if not, ${REGENERATE})`);
    t.ok(committed === text, `${path} equals the generator's output (if not, ${REGENERATE})`);
  }
});

t.test('manifests/ holds no YAML the generator does not write', async (t) => {
  const stray = yamlFiles(join(root, 'manifests')).filter((path) => !rendered.has(path));
  t.same(stray, [], `no stray files under manifests/ (if there are, ${REGENERATE}; it removes them)`);
});

t.test('there is one CRD and one CompositeController per kind', async (t) => {
  t.equal(crds.length, 14);
  t.equal(controllers.length, crds.length);
});

for (const [i, crd] of crds.entries()) {
  const kind = String(at(crd, 'spec', 'names', 'kind'));

  t.test(`the ${kind} CRD is structural and at the Kubernetes 1.26 CEL level`, async (t) => {
    t.same(structuralIssues(crd), [], crdPaths[i] ?? kind);
  });

  const viti = at(crd, 'spec', 'group') === 'vitistack.io';
  t.test(`the ${kind} CRD is in category ${viti ? 'vitistack' : 'virtrigaud'} and has the status subresource`, async (t) => {
    t.same(at(crd, 'spec', 'names', 'categories'), [viti ? 'vitistack' : 'virtrigaud']);
    const versions = at(crd, 'spec', 'versions');
    t.ok(Array.isArray(versions) && versions.length > 0);
    for (const version of Array.isArray(versions) ? versions : []) {
      t.same(at(version, 'subresources', 'status'), {}, `version ${String(at(version, 'name'))}`);
    }
  });
}

t.test('no short name clashes with KubeVirt or with another of our kinds', async (t) => {
  const taken = new Map<string, string>();
  for (const crd of crds) {
    const names = at(crd, 'spec', 'names');
    const kind = String(at(names, 'kind'));
    const own = [at(names, 'plural'), at(names, 'singular'), ...((at(names, 'shortNames') as unknown[]) ?? [])].map(String);
    for (const name of own) {
      // VMSnapshot and VMClone are the seed's kind names, so their plural and singular are fixed; with
      // KubeVirt installed, `kubectl get vrsnap` / `vrclone` (or the full resource name) are unambiguous.
      const seedFixed = (kind === 'VMSnapshot' || kind === 'VMClone') && !((at(names, 'shortNames') as unknown[]) ?? []).includes(name);
      if (!seedFixed) t.notOk(KUBEVIRT_SHORT_NAMES.includes(name), `${kind}: ${name} is a KubeVirt short name`);
      t.notOk(taken.has(name), `${kind}: ${name} is also used by ${taken.get(name) ?? ''}`);
      taken.set(name, kind);
    }
  }
});

const compositeControllerCrd = CrdValidator.fromFile(
  join(root, 'test/fixtures/metacontroller/compositecontrollers.metacontroller.k8s.io.yaml'),
);

t.test("Metacontroller's own CompositeController CRD is structural, so it can judge ours", async (t) => {
  const upstream: unknown = parse(
    readFileSync(join(root, 'test/fixtures/metacontroller/compositecontrollers.metacontroller.k8s.io.yaml'), 'utf8'),
  );
  t.same(structuralIssues(upstream), []);
  t.equal(compositeControllerCrd.kind, 'CompositeController');
});

for (const [i, controller] of controllers.entries()) {
  const name = controllerPaths[i] ?? '';
  const resource = String(at(controller, 'spec', 'parentResource', 'resource'));

  t.test(`${name} is a valid CompositeController`, async (t) => {
    t.same(compositeControllerCrd.validate(controller), []);
  });

  t.test(`${name} generates selectors and calls v2 hooks on the hook Service`, async (t) => {
    t.equal(at(controller, 'spec', 'generateSelector'), true);
    const hooks = at(controller, 'spec', 'hooks');
    t.ok(hooks !== null && typeof hooks === 'object');
    for (const [hookName, hook] of Object.entries((hooks ?? {}) as Json)) {
      t.equal(at(hook, 'version'), 'v2', `${hookName}.version`);
      t.equal(at(hook, 'webhook', 'url'), undefined, `${hookName} must not use a url`);
      t.type(at(hook, 'webhook', 'service', 'name'), 'string', `${hookName}.webhook.service`);
      t.type(at(hook, 'webhook', 'path'), 'string', `${hookName}.webhook.path`);
    }
    t.ok(at(hooks, 'sync'), 'has a sync hook');
  });

  t.test(`${name} manages a kind we define`, async (t) => {
    const crd = crds.find((c) => at(c, 'spec', 'names', 'plural') === resource);
    t.ok(crd, `no CRD for ${resource}`);
    const versions = (at(crd, 'spec', 'versions') as unknown[] | undefined) ?? [];
    const apiVersions = versions.map((v) => `${String(at(crd, 'spec', 'group'))}/${String(at(v, 'name'))}`);
    t.ok(apiVersions.includes(String(at(controller, 'spec', 'parentResource', 'apiVersion'))));
  });
}

t.test('the VirtualMachine controller has a finalize hook', async (t) => {
  const vm = controllers.find((c) => at(c, 'spec', 'parentResource', 'resource') === 'virtualmachines');
  t.ok(at(vm, 'spec', 'hooks', 'finalize', 'webhook', 'service'));
});
