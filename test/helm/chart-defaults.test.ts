// The chart with its default values, installed as the README says (release virtrigaud in
// virtrigaud-system): what lands in the cluster, object by object.
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { ProviderObject } from '../../src/contracts/crds/provider.js';
import { runtimeChildren } from '../../src/hooks/provider-runtime.js';
import { objectIssues } from './objects.js';
import { ROOT, SKIP_HELM, chartArgs, ofKind, one, renderChart, runRenderer, selects, type Json } from './render.js';

const skip = SKIP_HELM;
const objects = skip ? [] : renderChart({ args: ['--include-crds'] });
const templates = objects.filter((object) => object.source.includes('/templates/'));
const deployment: Json = skip ? {} : one(objects, 'Deployment');
const podSpec = (deployment['spec']?.['template']?.['spec'] ?? {}) as Json;
const podLabels = (deployment['spec']?.['template']?.['metadata']?.['labels'] ?? {}) as Record<string, string>;
const container = (podSpec['containers']?.[0] ?? {}) as Json;
const env = Object.fromEntries(((container['env'] ?? []) as Json[]).map((e) => [e['name'], e['value']]));
const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

t.test('the default render is one CRD per generated CRD, a ServiceAccount, two Secrets, a Service, a Deployment, two NetworkPolicies and one CompositeController per generated controller', { skip }, async (t) => {
  // Without the Viti API (viti.enabled is false by default).
  const generated = readdirSync(join(ROOT, 'manifests/metacontroller')).filter((name) => name.endsWith('.yaml') && !/^(machine|proxmoxcluster|proxmoxnode)-/.test(name));
  const crds = readdirSync(join(ROOT, 'manifests/crds')).filter((name) => name.endsWith('.yaml') && !name.endsWith('.vitistack.io.yaml'));
  const counts: Record<string, number> = {};
  for (const object of templates) counts[String(object['kind'])] = (counts[String(object['kind'])] ?? 0) + 1;
  t.same(counts, {
    CustomResourceDefinition: crds.length,
    ServiceAccount: 1,
    Secret: 2,
    Service: 1,
    Deployment: 1,
    NetworkPolicy: 2,
    CompositeController: generated.length,
  });
});

t.test('every object parses, validates against its schema, sits in the release namespace and carries the chart labels', { skip }, async (t) => {
  for (const object of objects) {
    t.same(objectIssues(object, { release: 'virtrigaud', namespace: 'virtrigaud-system' }), [], `${object['kind']} ${object['metadata']?.['name']}`);
  }
});

t.test('names match manifests/: the hook Service is virtrigaud-hooks when the release is virtrigaud', { skip }, async (t) => {
  t.equal(one(objects, 'Service')['metadata']['name'], 'virtrigaud-hooks');
  t.equal(deployment['metadata']['name'], 'virtrigaud-hooks');
});

t.test('the CRDs are templates (so helm upgrade upgrades them), kept on uninstall; crds.test.ts checks them against manifests/crds', { skip }, async (t) => {
  const crds = ofKind(objects, 'CustomResourceDefinition');
  t.same(crds.map((crd) => crd['metadata']['name']).sort(), ['providers', 'virtualmachines', 'vmclasses', 'vmclones', 'vmimages', 'vmmigrations', 'vmnetworkattachments', 'vmplacementpolicies', 'vmsets', 'vmsnapshots', 'vmsnapshotschedules'].map((p) => `${p}.infra.virtrigaud.io`));
  t.same(crds.filter((crd) => !templates.includes(crd)), [], 'from templates only, never from crds/ (even with --include-crds)');
  for (const crd of crds) t.equal(crd['metadata']['annotations']['helm.sh/resource-policy'], 'keep', crd['metadata']['name']);
});

t.test('the hook server gets no Kubernetes API rights: no token mounted, no Role or binding anywhere', { skip }, async (t) => {
  const account = one(objects, 'ServiceAccount');
  t.equal(account['automountServiceAccountToken'], false);
  t.equal(podSpec['serviceAccountName'], account['metadata']['name']);
  t.equal(podSpec['automountServiceAccountToken'], false);
  for (const kind of ['Role', 'RoleBinding', 'ClusterRole', 'ClusterRoleBinding']) t.same(ofKind(objects, kind), [], `no ${kind}`);
});

t.test('the hook server runs `serve` on 8080 from the chart image at the app version', { skip }, async (t) => {
  t.equal(container['image'], 'ghcr.io/virtrigaud/virtrigaud-ts:0.1.0');
  t.same(container['args'], ['serve']);
  t.same(container['ports'], [{ name: 'http', containerPort: 8080, protocol: 'TCP' }]);
  t.equal(env['PORT'], '8080');
  t.equal(deployment['spec']['replicas'], 1, 'one replica: the embedded simulator lives in memory');
});

t.test('the hook server pod is locked down: non-root, read-only root filesystem, no privilege escalation, no capabilities, RuntimeDefault seccomp', { skip }, async (t) => {
  t.match(podSpec['securityContext'], { runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, seccompProfile: { type: 'RuntimeDefault' } });
  t.match(container['securityContext'], {
    runAsNonRoot: true,
    readOnlyRootFilesystem: true,
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
  });
  t.notOk(container['securityContext']['capabilities']['add'], 'no capability added');
  t.notOk(container['securityContext']['privileged'], 'not privileged');
});

t.test('/tmp is an emptyDir, the only writable path', { skip }, async (t) => {
  const tmp = (container['volumeMounts'] as Json[]).find((m) => m['mountPath'] === '/tmp');
  t.ok(tmp, '/tmp is mounted');
  const volume = (podSpec['volumes'] as Json[]).find((v) => v['name'] === tmp?.['name']);
  t.ok(volume?.['emptyDir'], 'from an emptyDir');
  for (const mount of container['volumeMounts'] as Json[]) {
    if (mount['mountPath'] !== '/tmp') t.equal(mount['readOnly'], true, `${mount['mountPath']} is read-only`);
  }
});

t.test('readiness probes /readyz and liveness probes /healthz on the http port', { skip }, async (t) => {
  t.match(container['readinessProbe'], { httpGet: { path: '/readyz', port: 'http', scheme: 'HTTP' } });
  t.match(container['livenessProbe'], { httpGet: { path: '/healthz', port: 'http', scheme: 'HTTP' } });
});

t.test('the hook server requests CPU and memory and is limited in memory', { skip }, async (t) => {
  t.match(container['resources'], { requests: { cpu: String, memory: String }, limits: { memory: String } });
});

t.test('the Deployment selects its own pods and the Service selects them on the named port', { skip }, async (t) => {
  t.ok(selects(deployment['spec']['selector']['matchLabels'], podLabels), 'Deployment selector matches its pod template');
  const service = one(objects, 'Service');
  t.ok(selects(service['spec']['selector'], podLabels), 'Service selector matches the hook pods');
  t.same(service['spec']['ports'], [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }]);
  t.ok((container['ports'] as Json[]).some((p) => p['name'] === service['spec']['ports'][0]['targetPort']), 'targetPort names a container port');
});

t.test('the generated hook token is 48 alphanumeric characters, mounted as HOOK_TOKEN_FILE', { skip }, async (t) => {
  const secret = one(objects, 'Secret', 'virtrigaud-hook-token');
  const token = Buffer.from(String(secret['data']['token']), 'base64').toString('utf8');
  t.match(token, /^[A-Za-z0-9]{48}$/);
  const mount = (container['volumeMounts'] as Json[]).find((m) => m['name'] === 'hook-token');
  const volume = (podSpec['volumes'] as Json[]).find((v) => v['name'] === 'hook-token');
  t.equal(volume?.['secret']['secretName'], 'virtrigaud-hook-token');
  t.same(volume?.['secret']['items'], [{ key: 'token', path: 'token' }]);
  t.equal(env['HOOK_TOKEN_FILE'], `${mount?.['mountPath']}/token`);
});

t.test('the provider token secret is generated and mounted as PROVIDER_TOKEN_SECRET_FILE', { skip }, async (t) => {
  const secret = one(objects, 'Secret', 'virtrigaud-provider-token');
  t.match(Buffer.from(String(secret['data']['secret']), 'base64').toString('utf8'), /^[A-Za-z0-9]{48}$/);
  const volume = (podSpec['volumes'] as Json[]).find((v) => v['secret']?.['secretName'] === 'virtrigaud-provider-token');
  const mount = (container['volumeMounts'] as Json[]).find((m) => m['name'] === volume?.['name']);
  t.equal(env['PROVIDER_TOKEN_SECRET_FILE'], `${mount?.['mountPath']}/secret`);
  t.equal(env['RUNTIME_IMAGE'], container['image'], 'runtimes default to the same image');
});

t.test('secret volumes are readable by the pod group only (0440)', { skip }, async (t) => {
  for (const volume of (podSpec['volumes'] as Json[]).filter((v) => v['secret'])) {
    t.equal(volume['secret']['defaultMode'], 0o440, volume['name']);
  }
});

t.test('a changed generated secret restarts the hook server and re-creates the webhook clients (checksum annotations)', { skip }, async (t) => {
  const token = Buffer.from(String(one(objects, 'Secret', 'virtrigaud-hook-token')['data']['token']), 'base64').toString('utf8');
  const providerSecret = Buffer.from(String(one(objects, 'Secret', 'virtrigaud-provider-token')['data']['secret']), 'base64').toString('utf8');
  const annotations = deployment['spec']['template']['metadata']['annotations'];
  t.equal(annotations['checksum/hook-token'], sha256(token));
  t.equal(annotations['checksum/provider-token'], sha256(providerSecret));
  for (const controller of ofKind(objects, 'CompositeController')) {
    t.equal(controller['metadata']['annotations']['checksum/hook-token'], sha256(token), controller['metadata']['name']);
  }
});

t.test('without a cluster to look up, every render generates new secrets (the reason for hooks.auth.existingSecret)', { skip }, async (t) => {
  const again = renderChart();
  const tokenOf = (list: Json[]) => one(list as never, 'Secret', 'virtrigaud-hook-token')['data']['token'];
  t.not(tokenOf(again), tokenOf(objects));
});

t.test('the hook server NetworkPolicy admits only Metacontroller pods, on the http port', { skip }, async (t) => {
  const policy = one(objects, 'NetworkPolicy', 'virtrigaud-hooks');
  t.ok(selects(policy['spec']['podSelector']['matchLabels'], podLabels), 'it selects the hook pods');
  t.same(policy['spec']['policyTypes'], ['Ingress']);
  t.same(policy['spec']['ingress'], [
    {
      from: [
        {
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'metacontroller' } },
          podSelector: { matchLabels: { 'app.kubernetes.io/name': 'metacontroller' } },
        },
      ],
      ports: [{ port: 'http', protocol: 'TCP' }],
    },
  ]);
});

t.test('the provider-runtime NetworkPolicy selects the runtime pods the Provider hook creates, and admits only the hook server', { skip }, async (t) => {
  const provider = {
    apiVersion: 'infra.virtrigaud.io/v1beta1',
    kind: 'Provider',
    metadata: { name: 'pve', namespace: 'virtrigaud-system', uid: 'uid-1' },
    spec: { type: 'proxmox', endpoint: 'https://pve.example.com:8006', runtime: { mode: 'Remote' } },
  } as unknown as ProviderObject;
  const runtime = runtimeChildren(provider, { defaultImage: 'image', tokenSecret: 'secret' }).find((child) => child.kind === 'Deployment') as unknown as Json;
  const runtimeLabels = runtime['spec']['template']['metadata']['labels'] as Record<string, string>;
  const policy = one(objects, 'NetworkPolicy', 'virtrigaud-provider-runtimes');
  t.ok(selects(policy['spec']['podSelector']['matchLabels'], runtimeLabels), 'it selects provider runtime pods');
  t.notOk(selects(policy['spec']['podSelector']['matchLabels'], podLabels), 'not the hook server');
  t.same(policy['spec']['policyTypes'], ['Ingress', 'Egress']);
  const [rule, ...others] = policy['spec']['ingress'] as Json[];
  t.same(others, [], 'one ingress rule');
  const [peer, ...otherPeers] = rule?.['from'] as Json[];
  t.same(otherPeers, []);
  t.same(peer?.['namespaceSelector'], { matchLabels: { 'kubernetes.io/metadata.name': 'virtrigaud-system' } });
  t.ok(selects(peer?.['podSelector']['matchLabels'], podLabels), 'from the hook server pods');
});

t.test('provider runtimes may reach only DNS until providers.egressCIDRs is set, and the notes say so', { skip }, async (t) => {
  const policy = one(objects, 'NetworkPolicy', 'virtrigaud-provider-runtimes');
  t.same(policy['spec']['egress'], [
    {
      to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
      ports: [
        { port: 53, protocol: 'UDP' },
        { port: 53, protocol: 'TCP' },
      ],
    },
  ]);
  const notes = runRenderer([...chartArgs(), '--notes']);
  t.equal(notes.status, 0, notes.stderr);
  t.match(notes.stdout, /WARNING: providers\.egressCIDRs is empty/);
  t.notMatch(runRenderer([...chartArgs({ set: ['providers.egressCIDRs={192.0.2.0/24}'] }), '--notes']).stdout, /egressCIDRs is empty/);
});
