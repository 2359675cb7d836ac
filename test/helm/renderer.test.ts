// tools/helm-render behaves like `helm template` for what the chart uses: values (values.yaml,
// -f, --set typing), Helm's functions and objects, output order and the errors Helm reports.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import t from 'tap';
import { SKIP_HELM, parseStream, runRenderer, type Json } from './render.js';

const skip = SKIP_HELM;

function writeChart(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'helm-render-'));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), content);
  }
  return dir;
}

const CHART_YAML = 'apiVersion: v2\nname: demo\nversion: 1.2.3\nappVersion: "9.9"\nkubeVersion: ">=1.28.0-0"\n';

const demo = writeChart({
  'Chart.yaml': CHART_YAML,
  'values.yaml': 'replicas: 1\nenabled: false\nname: base\nnested:\n  keep: kept\n  drop: me\n',
  'files/hello.txt': 'hello from a file\n',
  'files/other.txt': 'x\n',
  'templates/_helpers.tpl': '{{- define "demo.greet" -}}hello {{ . }}{{- end }}\n',
  'templates/a.yaml': `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-cm
  namespace: {{ .Release.Namespace }}
data:
  replicas: {{ .Values.replicas | quote }}
  replicasKind: {{ kindOf .Values.replicas }}
  enabledKind: {{ kindOf .Values.enabled }}
  name: {{ .Values.name | quote }}
  nameKind: {{ kindOf .Values.name }}
  nested: {{ toJson .Values.nested | quote }}
  list: {{ toJson .Values.list | quote }}
  greet: {{ include "demo.greet" "world" | quote }}
  tpl: {{ tpl "{{ .Release.Name }}-{{ .Values.name }}" . | quote }}
  lookup: {{ lookup "v1" "Secret" "ns" "name" | toJson | quote }}
  chart: {{ printf "%s-%s-%s" .Chart.Name .Chart.Version .Chart.AppVersion | quote }}
  kube: {{ printf "%s %s %s" .Capabilities.KubeVersion.Version .Capabilities.KubeVersion.Major .Capabilities.KubeVersion.Minor | quote }}
  hasApps: {{ .Capabilities.APIVersions.Has "apps/v1" | quote }}
  hasMonitoring: {{ .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" | quote }}
  release: {{ printf "%s %v %v" .Release.Service .Release.IsInstall .Release.IsUpgrade | quote }}
  template: {{ .Template.Name | quote }}
  file: {{ .Files.Get "files/hello.txt" | trim | quote }}
  glob: "{{ range $path, $_ := .Files.Glob "files/*.txt" }}{{ $path }} {{ end }}"
  missing: "{{ .Values.nothing }}"
  fromYaml: {{ (fromYaml "a: 1").a | quote }}
  toYaml: {{ toYaml (dict "b" 2 "a" "On") | quote }}
{{- if .Values.message }}
  required: {{ required "message is required" .Values.message | quote }}
{{- end }}
---
apiVersion: v1
kind: Namespace
metadata:
  name: {{ .Release.Namespace }}
`,
  'templates/required.yaml': '{{- if .Values.needMessage }}{{ required "message is required when needMessage is set" .Values.message }}{{ end }}\n',
  'templates/broken.yaml': '{{- if .Values.breakYaml }}\napiVersion: v1\nkind: ConfigMap\ndata: [unclosed\n{{- end }}\n',
  'templates/widget.yaml': 'apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n',
  'templates/service.yaml': 'apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n',
  'templates/NOTES.txt': 'Notes for {{ .Release.Name }}\n',
});
t.teardown(() => rmSync(demo, { recursive: true, force: true }));

function render(args: string[]): Json[] {
  const result = runRenderer(['rel', demo, '--namespace', 'ns1', ...args]);
  if (result.status !== 0) throw new Error(result.stderr);
  return parseStream(result.stdout);
}

function configData(args: string[] = []): Record<string, string> {
  return render(args).find((o) => o['kind'] === 'ConfigMap')?.['data'] as Record<string, string>;
}

t.test('values.yaml numbers are float64 as in Helm; --set types true/false/integers and keeps leading-zero numbers strings', { skip }, async (t) => {
  const defaults = configData();
  t.equal(defaults['replicasKind'], 'float64');
  t.equal(defaults['enabledKind'], 'bool');
  const set = configData(['--set', 'replicas=3,enabled=true', '--set', 'name=007']);
  t.equal(set['replicasKind'], 'int64');
  t.equal(set['replicas'], '3');
  t.equal(set['enabledKind'], 'bool');
  t.same([set['name'], set['nameKind']], ['007', 'string']);
  t.equal(configData(['--set-string', 'replicas=5'])['replicasKind'], 'string');
});

t.test('--set null deletes a default, -f files merge deeply in order, and --set wins over them', { skip }, async (t) => {
  const dir = writeChart({
    'one.yaml': 'nested:\n  added: one\n  keep: from-one\nname: one\n',
    'two.yaml': 'nested:\n  keep: from-two\n',
  });
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const data = configData(['-f', join(dir, 'one.yaml'), '-f', join(dir, 'two.yaml'), '--set', 'nested.drop=null', '--set', 'name=cli']);
  t.same(JSON.parse(data['nested'] ?? ''), { added: 'one', keep: 'from-two' });
  t.equal(data['name'], 'cli');
});

t.test('--set takes {a,b} lists and backslash-escaped dots in keys', { skip }, async (t) => {
  const data = configData(['--set', 'list={x,y},nested.a\\.b=c']);
  t.same(JSON.parse(data['list'] ?? ''), ['x', 'y']);
  t.same(JSON.parse(data['nested'] ?? '')['a.b'], 'c');
});

t.test('include, tpl, lookup and Helm\'s .Chart, .Release, .Capabilities, .Template and .Files work as in helm template', { skip }, async (t) => {
  const data = configData(['--kube-version', '1.29.4']);
  t.match(data, {
    greet: 'hello world',
    tpl: 'rel-base',
    lookup: '{}',
    chart: 'demo-1.2.3-9.9',
    kube: 'v1.29.4 1 29',
    hasApps: 'true',
    hasMonitoring: 'false',
    release: 'Helm true false',
    template: 'demo/templates/a.yaml',
    file: 'hello from a file',
    glob: 'files/hello.txt files/other.txt ',
    fromYaml: '1',
    toYaml: 'a: "On"\nb: 2',
  });
  t.equal(configData(['--api-versions', 'monitoring.coreos.com/v1'])['hasMonitoring'], 'true');
  t.equal(configData(['--is-upgrade'])['release'], 'Helm false true');
});

t.test('a missing value renders as nothing, never as "<no value>"', { skip }, async (t) => {
  t.equal(configData()['missing'], '');
});

t.test('required fails the render with its message and the template\'s location', { skip }, async (t) => {
  const result = runRenderer(['rel', demo, '--set', 'needMessage=true']);
  t.equal(result.status, 1);
  t.match(result.stderr, /^Error: execution error at \(demo\/templates\/required\.yaml:\d+:\d+\): message is required when needMessage is set/);
  t.equal(configData(['--set', 'message=hi'])['required'], 'hi');
});

t.test('a template that renders invalid YAML fails the render, naming the template', { skip }, async (t) => {
  const result = runRenderer(['rel', demo, '--set', 'breakYaml=true']);
  t.equal(result.status, 1);
  t.match(result.stderr, /YAML parse error on demo\/templates\/broken\.yaml/);
});

t.test('manifests come out in Helm\'s install order (unknown kinds last), each with its # Source', { skip }, async (t) => {
  const objects = render([]);
  t.same(objects.map((o) => o['kind']), ['Namespace', 'ConfigMap', 'Service', 'Widget']);
  t.same(objects.map((o) => (o as { source: string }).source), ['demo/templates/a.yaml', 'demo/templates/a.yaml', 'demo/templates/service.yaml', 'demo/templates/widget.yaml']);
});

t.test('--show-only keeps one template; NOTES.txt is printed only with --notes', { skip }, async (t) => {
  t.same(render(['--show-only', 'templates/service.yaml']).map((o) => o['kind']), ['Service']);
  t.notOk(runRenderer(['rel', demo]).stdout.includes('Notes for'));
  t.equal(runRenderer(['rel', demo, '--notes']).stdout, 'Notes for rel\n');
  t.match(runRenderer(['rel', demo, '--show-only', 'templates/nope.yaml']).stderr, /could not find template templates\/nope\.yaml/);
});

t.test('Chart.yaml\'s kubeVersion is enforced against --kube-version', { skip }, async (t) => {
  const result = runRenderer(['rel', demo, '--kube-version', '1.27.3']);
  t.equal(result.status, 1);
  t.match(result.stderr, /chart requires kubeVersion: >=1\.28\.0-0 which is incompatible with Kubernetes v1\.27\.3/);
});

t.test('templates cannot read the renderer\'s environment: env and expandenv do not exist, as in Helm', { skip }, async (t) => {
  const dir = writeChart({ 'Chart.yaml': CHART_YAML, 'templates/x.yaml': 'a: {{ env "HOME" }}\n' });
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const result = runRenderer(['rel', dir]);
  t.equal(result.status, 1);
  t.match(result.stderr, /function "env" not defined/);
});

t.test('subcharts are refused rather than silently ignored', { skip }, async (t) => {
  const dir = writeChart({ 'Chart.yaml': CHART_YAML, 'charts/sub/Chart.yaml': 'apiVersion: v2\nname: sub\nversion: 0.1.0\n' });
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.match(runRenderer(['rel', dir]).stderr, /subcharts are not supported/);
});

t.test('a missing renderer binary fails with how to build it, instead of skipping', async (t) => {
  t.throws(() => runRenderer(['rel', demo], join(demo, 'no-such-binary')), /no-such-binary is missing: build it with `npm run helm:renderer`.*VIRTRIGAUD_SKIP_HELM=1/);
});
