// What a ProxmoxCluster's runtime is made of: the seed's credential forms as runtime variables
// (secrets only as files of mounted Secrets), the TLS table's fields, the operator range, and the
// client key through a Secret of its own that never shows in the Deployment.
import t from 'tap';
import { VITI_API_VERSION } from '../../../src/contracts/crds/common.js';
import type { ProxmoxClusterObject } from '../../../src/contracts/crds/viti.js';
import { clusterChildren, clusterTarget } from '../../../src/hooks/viti/cluster.js';

type Json = Record<string, unknown>;
const KEY = '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIKeyMaterialNeverShown\n-----END PRIVATE KEY-----\n';
const CA = '-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----\n';
const CERT = '-----BEGIN CERTIFICATE-----\nMIIBclient\n-----END CERTIFICATE-----\n';
const runtime = { tokenSecret: 'hook-secret', defaultImage: 'registry.example/virtrigaud:test' };
const viti = { namespace: 'pve-operator' };

function cluster(spec: Json): ProxmoxClusterObject {
  return { apiVersion: VITI_API_VERSION, kind: 'ProxmoxCluster', metadata: { name: 'prod', uid: 'u-1', generation: 1 }, spec: { endpoint: 'https://pve.example.com:8006', ...spec } } as ProxmoxClusterObject;
}

function deploymentOf(children: Json[]): { env: Record<string, string>; mounts: Json[]; volumes: Json[]; text: string } {
  const deployment = children.find((child) => child['kind'] === 'Deployment') as Json;
  const pod = (deployment['spec'] as Json)['template'] as Json;
  const podSpec = pod['spec'] as Json;
  const container = (podSpec['containers'] as Json[])[0] as Json;
  const env = Object.fromEntries((container['env'] as Json[]).map((entry) => [String(entry['name']), String(entry['value'])]));
  return { env, mounts: container['volumeMounts'] as Json[], volumes: podSpec['volumes'] as Json[], text: JSON.stringify(deployment) };
}

t.test('username and password, with the TLS table: a CA bundle, a client certificate and its key', async (t) => {
  const children = clusterChildren(
    cluster({
      credentials: { username: 'operator@pve', password: { secretRef: { name: 'proxmox-credentials', key: 'password' } } },
      caCertificate: CA,
      clientCertificate: CERT,
      clientKey: KEY,
      nodes: ['pve1'],
    }),
    { viti, runtime },
  ) as Json[];
  for (const child of children) t.equal((child['metadata'] as Json)['namespace'], 'pve-operator', `${String(child['kind'])} in the operator's namespace`);
  const { env, volumes, text } = deploymentOf(children);
  t.match(env, {
    PROVIDER_TYPE: 'proxmox',
    PVE_ENDPOINT: 'https://pve.example.com:8006',
    PVE_USERNAME: 'operator@pve',
    PVE_PASSWORD_FILE: '/var/run/virtrigaud/credentials/0/password',
    PVE_CLIENT_KEY_FILE: '/var/run/virtrigaud/credentials/1/client.key',
    PVE_CA_BUNDLE: CA,
    PVE_CLIENT_CERT: CERT,
    PVE_VMID_RANGE: '10000-99999',
    PVE_NODE_SELECTOR: 'pve1',
  });
  t.notOk('PVE_TOKEN_ID_FILE' in env || 'PVE_USERNAME_FILE' in env, 'no file variable for a key the Secret does not have (it would unset the value)');
  t.match(volumes, [{}, {}, { secret: { secretName: 'proxmox-credentials', optional: true } }, { secret: { secretName: 'virtrigaud-provider-proxmoxcluster-prod-tls' } }]);
  t.notOk(text.includes('KeyMaterialNeverShown'), 'the key is not in the Deployment');
  const secret = children.find((child) => child['kind'] === 'Secret' && (child['metadata'] as Json)['name'] === 'virtrigaud-provider-proxmoxcluster-prod-tls') as Json;
  t.equal(Buffer.from(String((secret['data'] as Json)['client.key']), 'base64').toString(), KEY);
});

t.test('an API token by its short name takes the username; a whole token ID stands alone', async (t) => {
  const short = deploymentOf(
    clusterChildren(cluster({ credentials: { username: 'operator@pve', tokenID: 'operator-token', tokenSecret: { secretRef: { name: 'creds', key: 'token-secret' } } } }), { viti, runtime }) as Json[],
  );
  t.match(short.env, { PVE_TOKEN_ID: 'operator@pve!operator-token', PVE_TOKEN_SECRET_FILE: '/var/run/virtrigaud/credentials/0/token-secret' });
  t.notOk('PVE_USERNAME' in short.env, 'token authentication only');
  const whole = deploymentOf(clusterChildren(cluster({ credentials: { tokenID: 'ops@pam!ci', tokenSecret: { secretRef: { name: 'creds', key: 't' } } } }), { viti, runtime }) as Json[]);
  t.equal(whole.env['PVE_TOKEN_ID'], 'ops@pam!ci');
  t.notOk(deploymentOf(clusterChildren(cluster({ credentials: { tokenID: 'ops@pam!ci', tokenSecret: { secretRef: { name: 'creds', key: 't' } } } }), { viti, runtime }) as Json[]).text.includes('PVE_CA_BUNDLE'), 'no CA: the system roots');
});

t.test('the cluster is reached as its runtime, by name, in the operator namespace', async (t) => {
  t.match(clusterTarget(cluster({ credentials: { tokenID: 'a@pve!b', tokenSecret: { secretRef: { name: 'c', key: 'd' } } } }), viti), {
    namespace: 'pve-operator',
    name: 'proxmoxcluster-prod',
    uid: 'u-1',
    type: 'proxmox',
    mode: 'Remote',
  });
});
