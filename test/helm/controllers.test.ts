// The chart's CompositeControllers are the generated ones (manifests/metacontroller) with only the
// webhook target, the bearer-token authorization and the TLS CA templated, and Metacontroller
// accepts them.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { parse } from 'yaml';
import { compositeControllerSchema } from './objects.js';
import { ROOT, SKIP_HELM, ofKind, one, renderChart, type Json, type RenderOptions, type RenderedObject } from './render.js';

const skip = SKIP_HELM;
const TEMPLATED = ['service', 'authorization', 'caBundle'];

// The Viti API's controllers are rendered only with viti.enabled (test/helm/viti.test.ts).
const generated = new Map(
  readdirSync(join(ROOT, 'manifests/metacontroller'))
    .filter((name) => name.endsWith('.yaml'))
    .map((name) => {
      const controller = parse(readFileSync(join(ROOT, 'manifests/metacontroller', name), 'utf8'), { version: '1.1' }) as Json;
      return [String(controller['metadata']['name']), controller] as const;
    })
    .filter(([, controller]) => !String(controller['spec']['parentResource']['apiVersion']).startsWith('vitistack.io/')),
);

/** The controller with the templated webhook fields removed, and only the generated metadata. */
function untemplated(controller: Json): Json {
  const copy = structuredClone(controller);
  for (const hook of Object.values(copy['spec']['hooks'] ?? {}) as Json[]) {
    for (const field of TEMPLATED) delete hook['webhook'][field];
  }
  copy['metadata'] = { name: copy['metadata']['name'] };
  return copy;
}

function webhooks(controller: Json): [string, Json][] {
  return Object.entries(controller['spec']['hooks'] as Record<string, Json>).map(([name, hook]) => [name, hook['webhook'] as Json]);
}

const VALUE_SETS: [string, RenderOptions][] = [
  ['default values', {}],
  ['TLS from a Secret', { set: ['hooks.tls.enabled=true', 'hooks.tls.secretName=hooks-tls'] }],
  ['TLS with an inline CA', { set: ['hooks.tls.enabled=true', 'hooks.tls.secretName=hooks-tls', 'hooks.tls.caBundle=-----BEGIN CERTIFICATE-----'] }],
  ['an existing token Secret', { set: ['hooks.auth.existingSecret=metacontroller-token', 'hooks.auth.secretKey=bearer'] }],
  ['another release, namespace and Service port', { release: 'lab', namespace: 'vm-operators', set: ['hooks.service.port=8443'] }],
];

for (const [label, options] of VALUE_SETS) {
  const objects = skip ? [] : renderChart(options);
  const controllers = ofKind(objects, 'CompositeController');
  const service = skip ? ({} as RenderedObject) : one(objects, 'Service');
  const values = Object.fromEntries((options.set ?? []).map((expr) => expr.split('=') as [string, string]));
  const tls = values['hooks.tls.enabled'] === 'true';

  t.test(`with ${label}, there is one CompositeController per generated controller and each validates against Metacontroller's CRD`, { skip }, async (t) => {
    t.same(controllers.map((c) => c['metadata']['name']).sort(), [...generated.keys()].sort());
    for (const controller of controllers) {
      t.same(compositeControllerSchema.validate(controller), [], controller['metadata']['name']);
    }
  });

  t.test(`with ${label}, the controllers equal the generated ones except for the templated webhook fields`, { skip }, async (t) => {
    for (const controller of controllers) {
      const name = String(controller['metadata']['name']);
      t.same(untemplated(controller), untemplated(generated.get(name) ?? {}), name);
      t.match(controller['metadata']['labels'], generated.get(name)?.['metadata']['labels'] ?? {}, `${name} keeps its generated labels`);
      t.equal(controller['spec']['generateSelector'], true, `${name}: generateSelector`);
      for (const [hook, webhook] of webhooks(controller)) t.ok(webhook['path'], `${name} ${hook} keeps its path`);
    }
    const vm = controllers.find((c) => c['metadata']['name'] === 'virtrigaud-virtualmachine');
    t.same(Object.keys(vm?.['spec']['hooks'] ?? {}).sort(), ['customize', 'finalize', 'sync'], 'the VirtualMachine keeps customize and finalize');
    for (const controller of controllers) {
      for (const hook of Object.values(controller['spec']['hooks'] as Record<string, Json>)) t.equal(hook['version'], 'v2');
    }
  });

  t.test(`with ${label}, every webhook calls the rendered hook Service by name, namespace and port`, { skip }, async (t) => {
    for (const controller of controllers) {
      for (const [hook, webhook] of webhooks(controller)) {
        t.same(
          webhook['service'],
          {
            name: service['metadata']['name'],
            namespace: service['metadata']['namespace'],
            port: service['spec']['ports'][0]['port'],
            protocol: tls ? 'https' : 'http',
          },
          `${controller['metadata']['name']} ${hook}`,
        );
        t.notOk(webhook['url'], 'no url: it would win over service');
      }
    }
  });

  t.test(`with ${label}, the Bearer authorization points at the token Secret and key the hook server mounts`, { skip }, async (t) => {
    const deployment = one(objects, 'Deployment');
    const volumes = deployment['spec']['template']['spec']['volumes'] as Json[];
    const tokenVolume = volumes.find((v) => v['name'] === 'hook-token');
    for (const controller of controllers) {
      for (const [hook, webhook] of webhooks(controller)) {
        const what = `${controller['metadata']['name']} ${hook}`;
        const { type, secretRef } = webhook['authorization'] as Json;
        t.equal(type, 'Bearer', what);
        t.equal(secretRef['namespace'], service['metadata']['namespace'], `${what}: the Secret is in the release namespace`);
        t.equal(tokenVolume?.['secret']['secretName'], secretRef['name'], `${what}: the hook server mounts the same Secret`);
        t.same(tokenVolume?.['secret']['items'], [{ key: secretRef['key'], path: 'token' }], `${what}: and the same key`);
        const rendered = ofKind(objects, 'Secret').find((s) => s['metadata']['name'] === secretRef['name']);
        if (values['hooks.auth.existingSecret']) {
          t.equal(secretRef['name'], values['hooks.auth.existingSecret']);
          t.equal(secretRef['key'], values['hooks.auth.secretKey']);
          t.notOk(rendered, `${what}: the existing Secret is not rendered`);
        } else {
          t.ok(rendered?.['data']?.[secretRef['key']], `${what}: the rendered Secret holds the key`);
        }
      }
    }
  });

  t.test(`with ${label}, the webhook CA ${tls ? 'is the TLS Secret\'s (or inline)' : 'is not set'}`, { skip }, async (t) => {
    for (const controller of controllers) {
      for (const [hook, webhook] of webhooks(controller)) {
        const what = `${controller['metadata']['name']} ${hook}`;
        if (!tls) t.notOk(webhook['caBundle'], what);
        else if (values['hooks.tls.caBundle']) t.same(webhook['caBundle'], { inline: values['hooks.tls.caBundle'] }, what);
        else t.same(webhook['caBundle'], { secretRef: { name: 'hooks-tls', namespace: service['metadata']['namespace'], key: 'ca.crt' } }, what);
      }
    }
  });
}

t.test('Metacontroller\'s CRD rejects what the chart must never produce (the schema check is not lenient)', async (t) => {
  const controller = structuredClone(generated.get('virtrigaud-vmclass') ?? {});
  controller['spec']['hooks']['sync']['webhook']['service'] = { name: 'x' };
  controller['spec']['hooks']['sync']['webhook']['authorization'] = { type: 'Bearer' };
  controller['spec']['hooks']['sync']['version'] = 'v3';
  const messages = compositeControllerSchema.validate(controller).map((issue) => issue.path).join(' ');
  t.match(messages, /service\.namespace/);
  t.match(messages, /authorization\.secretRef/);
  t.match(messages, /version/);
});
