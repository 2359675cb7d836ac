// The chart holds no second copy that can drift: the sources of its CRDs and CompositeControllers
// (files/crds/, files/metacontroller/) are the generated manifests, byte for byte (`npm run manifests`
// syncs them; `npm run helm:sync` alone too).
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { CHART, ROOT } from './render.js';

const SYNC = 'run `npm run helm:sync` (npm run manifests runs it too) and commit the result';

const yamlIn = (dir: string): string[] => readdirSync(dir).filter((name) => /\.ya?ml$/.test(name)).sort();

for (const [generated, copy] of [
  ['manifests/crds', 'files/crds'],
  ['manifests/metacontroller', 'files/metacontroller'],
] as const) {
  t.test(`the chart's ${copy}/ holds exactly the files of ${generated}/, byte for byte`, async (t) => {
    const source = join(ROOT, generated);
    const target = join(CHART, copy);
    t.same(yamlIn(target), yamlIn(source), `same file names in helm/virtrigaud/${copy} and ${generated} (if not, ${SYNC})`);
    for (const name of yamlIn(source)) {
      let copied: Buffer | undefined;
      try {
        copied = readFileSync(join(target, name));
      } catch {
        copied = undefined;
      }
      t.ok(copied?.equals(readFileSync(join(source, name))), `helm/virtrigaud/${copy}/${name} equals ${generated}/${name} (if not, ${SYNC})`);
    }
  });
}

t.test('npm run manifests syncs the chart after generating', async (t) => {
  const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  t.match(scripts['postmanifests'], /helm:sync/);
  t.match(scripts['helm:sync'], /manifests\/crds\/\*\.yaml helm\/virtrigaud\/files\/crds\//);
  t.match(scripts['helm:sync'], /manifests\/metacontroller\/\*\.yaml helm\/virtrigaud\/files\/metacontroller\//);
});

t.test('the CRDs are only in files/crds/ (rendered by templates/crds.yaml), never also in crds/', async (t) => {
  // Helm would create crds/ first and then refuse the templates' CRDs as objects it did not create.
  t.notOk(existsSync(join(CHART, 'crds')), `helm/virtrigaud/crds/ must not exist (if an old helm:sync made it, ${SYNC})`);
  const scripts = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
  t.notMatch((scripts['helm:sync'] ?? '').replace('rm -rf helm/virtrigaud/crds ', ''), /helm\/virtrigaud\/crds/, 'helm:sync writes nothing to crds/ (it only removes a stale one)');
});

/** Dotted paths of values.yaml's leaves (lists and empty maps count as leaves). */
function leafPaths(value: unknown, prefix: string[] = []): string[][] {
  if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0) {
    return Object.entries(value).flatMap(([key, child]) => leafPaths(child, [...prefix, key]));
  }
  return [prefix];
}

t.test('every value in values.yaml is used by a template (no value without behaviour)', async (t) => {
  const values = parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as unknown;
  const templates = readdirSync(join(CHART, 'templates'))
    .map((name) => readFileSync(join(CHART, 'templates', name), 'utf8'))
    .join('\n');
  for (const path of leafPaths(values)) {
    // A value is used when it, or a map containing it (passed whole to toYaml), is read.
    const used = path.some((_, i) => new RegExp(`\\.Values\\.${path.slice(0, i + 1).join('\\.')}(?![\\w])`).test(templates) && i >= Math.min(1, path.length - 1));
    t.ok(used, `.Values.${path.join('.')} is read by a template`);
  }
});
