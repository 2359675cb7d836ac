// The CRDs are templates (templates/crds.yaml, crdUpgrade.enabled), so `helm upgrade` upgrades them:
// one per generated CRD (manifests/crds), equal to it but for the chart labels and
// `helm.sh/resource-policy: keep`, never also in crds/, and small enough for Helm's release Secret.
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import { parse } from 'yaml';
import { CHART, ROOT, SKIP_HELM, chartArgs, ofKind, renderChart, renderError, runRenderer, type Json, type RenderedObject } from './render.js';

const skip = SKIP_HELM;
const CRD_TEMPLATE = 'virtrigaud/templates/crds.yaml';
const CHART_LABELS = ['helm.sh/chart', 'app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/version', 'app.kubernetes.io/managed-by', 'app.kubernetes.io/part-of'];

/** manifests/crds/*.yaml by CRD name, read as kubectl reads them (YAML 1.1). */
// The Viti API's CRDs (group vitistack.io) are rendered only with viti.enabled (test/helm/viti.test.ts).
const generated = new Map(
  readdirSync(join(ROOT, 'manifests/crds'))
    .filter((name) => name.endsWith('.yaml') && !name.endsWith('.vitistack.io.yaml'))
    .map((name) => {
      const crd = parse(readFileSync(join(ROOT, 'manifests/crds', name), 'utf8'), { version: '1.1' }) as Json;
      return [String(crd['metadata']['name']), crd] as const;
    }),
);

// --include-crds: what `helm install` applies, crds/ included (the chart must have none).
const objects = skip ? [] : renderChart({ args: ['--include-crds'] });
const crds = ofKind(objects, 'CustomResourceDefinition');
const byName = new Map(crds.map((crd) => [String(crd['metadata']['name']), crd]));

/** The object without the metadata the chart adds: what must equal the generated file. */
function withoutChartMetadata(crd: Json): Json {
  const copy = structuredClone(crd);
  copy['metadata'] = { name: copy['metadata']['name'] };
  return copy;
}

t.test('the default render has one CRD per file of manifests/crds/, each from templates/crds.yaml', { skip }, async (t) => {
  t.ok(generated.size >= 8, `manifests/crds/ holds the CRDs (${generated.size})`);
  t.same([...byName.keys()].sort(), [...generated.keys()].sort());
  t.equal(crds.length, generated.size, 'each CRD once');
  for (const crd of crds) t.equal(crd.source, CRD_TEMPLATE, `${crd['metadata']['name']} is a template, so helm upgrade upgrades it`);
});

t.test('each rendered CRD equals its generated file (schema, names, versions, CEL rules) but for the chart metadata', { skip }, async (t) => {
  for (const [name, source] of generated) {
    const rendered = byName.get(name);
    t.ok(rendered, `${name} is rendered`);
    if (rendered) t.same(withoutChartMetadata(rendered), withoutChartMetadata(source), name);
  }
});

t.test('each CRD carries helm.sh/resource-policy: keep, the chart labels and its generated labels', { skip }, async (t) => {
  for (const crd of crds) {
    const name = String(crd['metadata']['name']);
    const metadata = crd['metadata'] as Json;
    t.equal(metadata['annotations']?.['helm.sh/resource-policy'], 'keep', `${name}: uninstalling leaves it (and every object of its kind)`);
    t.equal(metadata['annotations']?.['argocd.argoproj.io/sync-options'], 'Prune=false', `${name}: Argo CD pruning leaves it too`);
    for (const label of CHART_LABELS) t.ok(metadata['labels']?.[label], `${name}: label ${label}`);
    t.equal(metadata['labels']['app.kubernetes.io/instance'], 'virtrigaud');
    t.equal(metadata['labels']['app.kubernetes.io/managed-by'], 'Helm', `${name}: owned by the release, so Helm upgrades it`);
    t.match(metadata['labels'], generated.get(name)?.['metadata']['labels'] ?? {}, `${name}: the generated labels stay`);
  }
});

t.test('no CRD is both in crds/ and in templates: --include-crds adds nothing (chart-sources.test.ts: no crds/ directory)', { skip }, async (t) => {
  t.same(crds.filter((crd) => crd.source !== CRD_TEMPLATE).map((crd) => crd.source), [], 'every CRD comes from the template');
  t.equal(renderChart().length, objects.length, 'the same objects with and without --include-crds');
});

t.test('helm upgrade renders the same CRDs (Helm never upgrades crds/, but upgrades templates)', { skip }, async (t) => {
  const upgraded = ofKind(renderChart({ args: ['--is-upgrade'] }), 'CustomResourceDefinition');
  t.same(upgraded.map((crd) => withoutChartMetadata(crd)), crds.map((crd) => withoutChartMetadata(crd)));
});

t.test('the chart labels follow the release and commonLabels; the keep policy stays', { skip }, async (t) => {
  const other = ofKind(renderChart({ release: 'lab', namespace: 'vm-operators', set: ['commonLabels.team=vm'] }), 'CustomResourceDefinition');
  t.equal(other.length, generated.size);
  for (const crd of other) {
    t.match(crd['metadata'], { labels: { 'app.kubernetes.io/instance': 'lab', team: 'vm', 'app.kubernetes.io/part-of': 'virtrigaud' }, annotations: { 'helm.sh/resource-policy': 'keep' } });
    t.equal(crd['metadata']['namespace'], undefined, 'cluster-scoped');
  }
});

t.test('crdUpgrade.enabled=false renders no CRD and everything else as before; the notes say to apply manifests/crds/', { skip }, async (t) => {
  const off = renderChart({ set: ['crdUpgrade.enabled=false'], args: ['--include-crds'] });
  t.same(ofKind(off, 'CustomResourceDefinition'), []);
  const kinds = (list: RenderedObject[]) => list.filter((o) => o['kind'] !== 'CustomResourceDefinition').map((o) => `${o['kind']}/${o['metadata']['namespace'] ?? ''}/${o['metadata']['name']}`);
  t.same(kinds(off), kinds(objects));
  const notes = runRenderer([...chartArgs({ set: ['crdUpgrade.enabled=false'] }), '--notes']);
  t.equal(notes.status, 0, notes.stderr);
  t.match(notes.stdout, /crdUpgrade\.enabled is false[\s\S]*kubectl apply --server-side -f manifests\/crds\//);
  t.notMatch(runRenderer([...chartArgs(), '--notes']).stdout, /crdUpgrade/, 'no such note by default');
});

t.test('crdUpgrade.enabled takes true or false (also as strings), and nothing else', { skip }, async (t) => {
  t.equal(ofKind(renderChart({ args: ['--set-string', 'crdUpgrade.enabled=false'] }), 'CustomResourceDefinition').length, 0);
  t.equal(ofKind(renderChart({ args: ['--set-string', 'crdUpgrade.enabled=true'] }), 'CustomResourceDefinition').length, generated.size);
  t.match(renderError({ set: ['crdUpgrade.enabled=yes'] }), /crdUpgrade\.enabled must be true or false, not yes/);
});

/** The chart's files as Helm's loader keeps them in the release (all but Chart.yaml, values.yaml and templates/). */
function chartFiles(dir = CHART): { name: string; data: string }[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? chartFiles(path) : [{ name: relative(CHART, path), data: readFileSync(path).toString('base64') }];
  });
}

t.test('the release fits in its Secret: the rendered CRDs gzipped, and the whole release as Helm stores it, stay well under 1 MiB', { skip }, async (t) => {
  const only = runRenderer([...chartArgs(), '--show-only', 'templates/crds.yaml']);
  t.equal(only.status, 0, only.stderr);
  const gzip = (text: string) => gzipSync(text, { level: 9 }).length;
  const crdBytes = Buffer.byteLength(only.stdout);
  const crdGzip = gzip(only.stdout);
  // Helm's Secret driver stores base64(gzip(JSON of the release)): the rendered manifest, the chart
  // (its files as base64 JSON strings) and the values. This mimics it closely enough for a budget.
  const files = chartFiles();
  const release = {
    name: 'virtrigaud',
    namespace: 'virtrigaud-system',
    version: 1,
    info: { status: 'deployed', notes: runRenderer([...chartArgs(), '--notes']).stdout },
    chart: {
      metadata: parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as unknown,
      templates: files.filter((f) => f.name.startsWith('templates/')),
      files: files.filter((f) => !f.name.startsWith('templates/') && f.name !== 'Chart.yaml' && f.name !== 'values.yaml'),
      values: parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as unknown,
    },
    config: {},
    manifest: runRenderer(chartArgs()).stdout,
  };
  const secretBytes = Math.ceil(gzip(JSON.stringify(release)) / 3) * 4;
  t.comment(`rendered CRDs: ${crdBytes} bytes, ${crdGzip} gzipped; estimated release Secret: ${secretBytes} bytes`);
  t.ok(crdGzip < 256 * 1024, `the rendered CRDs gzip to ${crdGzip} bytes (budget 256 KiB)`);
  t.ok(secretBytes < 768 * 1024, `the release Secret would hold about ${secretBytes} bytes (Kubernetes refuses Secrets over 1 MiB; budget 768 KiB)`);
});
