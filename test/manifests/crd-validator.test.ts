// The apiserver stand-in (test/helpers/crd-validator.ts) rejects what the apiserver rejects, so the
// CRD tests cannot pass because the stand-in is lenient.
import t from 'tap';
import { CrdValidator, structuralIssues, type Schema } from '../helpers/crd-validator.js';

type Json = Record<string, unknown>;

function crd(spec: Schema, version: Json = { subresources: { status: {} } }): Json {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'widgets.example.com' },
    spec: {
      group: 'example.com',
      scope: 'Namespaced',
      names: { kind: 'Widget', plural: 'widgets', singular: 'widget', listKind: 'WidgetList' },
      versions: [
        {
          name: 'v1',
          served: true,
          storage: true,
          ...version,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              properties: { apiVersion: { type: 'string' }, kind: { type: 'string' }, metadata: { type: 'object' }, spec },
            },
          },
        },
      ],
    },
  };
}

const widget = (spec: unknown): Json => ({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' }, spec });

const itemsSchema: Schema = {
  type: 'array',
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['name'],
  items: {
    type: 'object',
    required: ['name'],
    properties: { name: { type: 'string' }, count: { type: 'integer' } },
    'x-kubernetes-validations': [{ rule: 'self.count >= oldSelf.count', message: 'count can only grow' }],
  },
};

const widgetSpec: Schema = {
  type: 'object',
  required: ['size'],
  properties: {
    size: { type: 'integer', minimum: 1 },
    mode: { type: 'string', enum: ['fast', 'slow'], default: 'slow' },
    port: { 'x-kubernetes-int-or-string': true },
    extra: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
    labels: { type: 'object', additionalProperties: { type: 'string', maxLength: 3 } },
    at: { type: 'string', format: 'date-time' },
    items: itemsSchema,
    name: { type: 'string' },
  },
  'x-kubernetes-validations': [
    { rule: 'self.size / 2 >= 1', message: 'size is divided as an int' },
    { rule: "self.mode == 'slow' || self.size > 10", message: 'fast needs size above 10' },
    { rule: "!has(self.name) || self.name.find('[0-9]+') == '' || self.name.findAll('[0-9]').size() < 3", message: 'at most two digits' },
  ],
};

const validator = CrdValidator.fromObject(crd(widgetSpec));

t.test('a well-formed CRD has no structural issues', async (t) => {
  t.same(structuralIssues(crd(widgetSpec)), []);
});

t.test('integers reach CEL as ints: 3 / 2 is 1', async (t) => {
  t.same(validator.validate(widget({ size: 3 })), []);
  t.match(validator.validate(widget({ size: 1 })), [{ path: 'spec', message: 'size is divided as an int' }]);
});

t.test('defaults are applied before validation rules run', async (t) => {
  t.same(validator.validate(widget({ size: 3 })), []);
  t.match(validator.validate(widget({ size: 3, mode: 'fast' })), [{ message: 'fast needs size above 10' }]);
  t.match(validator.prune(widget({ size: 3 })), { spec: { mode: 'slow' } });
});

t.test('find and findAll behave as the Kubernetes regex library', async (t) => {
  t.same(validator.validate(widget({ size: 3, name: 'a1b2' })), []);
  t.match(validator.validate(widget({ size: 3, name: 'a1b2c3' })), [{ message: 'at most two digits' }]);
});

t.test('unknown fields are errors and are pruned, except under preserve-unknown-fields', async (t) => {
  const object = widget({ size: 3, bogus: true, extra: { anything: { goes: 1 } } });
  t.same(validator.validate(object), [{ path: 'spec.bogus', message: 'unknown field "spec.bogus"' }]);
  t.same(validator.prune(object), widget({ size: 3, mode: 'slow', extra: { anything: { goes: 1 } } }));
});

t.test('int-or-string takes either, and nothing else', async (t) => {
  t.same(validator.validate(widget({ size: 3, port: 80 })), []);
  t.same(validator.validate(widget({ size: 3, port: 'http' })), []);
  t.match(validator.validate(widget({ size: 3, port: true })), [{ path: 'spec.port' }]);
});

t.test('map values, formats, enums, minimum and required are checked', async (t) => {
  const issues = validator.validate(widget({ size: 0, mode: 'turbo', labels: { a: 'long' }, at: 'today' }));
  const schemaIssues = issues.filter((i) => i.path !== 'spec'); // the CEL rules on spec fail too
  t.same(schemaIssues.map((i) => i.path).sort(), ['spec.at', 'spec.labels.a', 'spec.mode', 'spec.size']);
  t.match(validator.validate(widget({})), [{ path: 'spec.size', message: 'Required value' }]);
});

t.test('transition rules run only on update, on the item with the same key', async (t) => {
  const old = widget({ size: 3, items: [{ name: 'a', count: 5 }, { name: 'b', count: 1 }] });
  const shrunk = widget({ size: 3, items: [{ name: 'b', count: 1 }, { name: 'a', count: 4 }] });
  t.same(validator.validate(shrunk), []);
  t.match(validator.validate(shrunk, old), [{ path: 'spec.items[1]', message: 'count can only grow' }]);
  t.same(validator.validate(widget({ size: 3, items: [{ name: 'c', count: 0 }] }), old), []);
});

t.test('duplicate list-map keys are rejected', async (t) => {
  t.match(validator.validate(widget({ size: 3, items: [{ name: 'a' }, { name: 'a' }] })), [{ path: 'spec.items[1]' }]);
});

t.test('apiVersion, kind and metadata.name are checked', async (t) => {
  const issues = validator.validate({ apiVersion: 'example.com/v2', kind: 'Gadget', metadata: { name: 'Bad_Name', bogus: 1 }, spec: { size: 3 } });
  t.same(issues.map((i) => i.path).sort(), ['apiVersion', 'kind', 'metadata.bogus', 'metadata.name']);
});

const rule = (r: string, extra: Json = {}): Schema => ({
  type: 'object',
  properties: { size: { type: 'integer' }, tags: { type: 'array', items: { type: 'string' } } },
  'x-kubernetes-validations': [{ rule: r, ...extra }],
});

t.test('a rule that does not compile makes the CRD invalid and every object fail', async (t) => {
  for (const bad of ['self.sise > 0', 'has(self.sise)', 'self.size', 'self.size >', "self.tags.all(t, t.sise == '')", 'self.size.find("x") == ""']) {
    const definition = crd(rule(bad));
    t.match(structuralIssues(definition), [/x-kubernetes-validations\[0\]\.rule: compilation failed/], bad);
    t.match(CrdValidator.fromObject(definition).validate(widget({ size: 1 })), [{ path: 'spec', message: /compilation failed/ }], bad);
  }
});

t.test('a rule that fails to evaluate is an issue, not a pass', async (t) => {
  const v = CrdValidator.fromObject(crd(rule('self.size > 0')));
  t.match(v.validate(widget({})), [{ path: 'spec', message: /error evaluating rule/ }]);
});

t.test('rules above the Kubernetes 1.26 level are rejected', async (t) => {
  t.match(structuralIssues(crd(rule('self.size > 0', { messageExpression: "'x'" }))), [/messageExpression/]);
  t.match(structuralIssues(crd(rule('self.size > 0', { reason: 'FieldValueInvalid' }))), [/reason/]);
});

t.test('non-structural schemas are reported', async (t) => {
  const cases: [string, Schema][] = [
    ['additionalProperties: false', { type: 'object', properties: { a: { type: 'string' } }, additionalProperties: false }],
    ['properties with additionalProperties', { type: 'object', properties: { a: { type: 'string' } }, additionalProperties: { type: 'string' } }],
    ['a node without type', { type: 'object', properties: { a: { description: 'untyped' } } }],
    ['anyOf', { type: 'object', properties: { a: { type: 'string', anyOf: [{ enum: ['x'] }] } } }],
    ['const', { type: 'object', properties: { a: { type: 'string', const: 'x' } } }],
    ['list-map keys without list-type map', { type: 'object', properties: { a: { ...itemsSchema, 'x-kubernetes-list-type': 'atomic' } } }],
    ['a list-map key that is neither required nor defaulted', { type: 'object', properties: { a: { ...itemsSchema, items: { ...itemsSchema.items, required: [] } } } }],
    ['a transition rule under an atomic list', { type: 'object', properties: { a: { ...itemsSchema, 'x-kubernetes-list-type': 'atomic', 'x-kubernetes-list-map-keys': undefined } } }],
    ['a default that fails its own schema', { type: 'object', properties: { a: { type: 'integer', minimum: 1, default: 0 } } }],
  ];
  for (const [name, schema] of cases) {
    t.not(structuralIssues(crd(JSON.parse(JSON.stringify(schema)) as Schema)).length, 0, name);
  }
  t.match(structuralIssues(crd(widgetSpec, {})), [/subresources\.status/]);
  const withMetadata = crd(widgetSpec);
  const root = (((withMetadata['spec'] as Json)['versions'] as Json[])[0]?.['schema'] as Json)['openAPIV3Schema'] as Schema;
  (root.properties as Record<string, Schema>)['metadata'] = { type: 'object', properties: { name: { type: 'string' } } };
  t.match(structuralIssues(withMetadata), [/properties\.metadata/]);
});
