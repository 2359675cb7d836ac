// The Viti API's YAML shapes (seed 003): each fixture of test/fixtures/viti is accepted by the
// generated CRD as kubectl sends it (YAML 1.1) and by the hook's TypeBox schema; the seed's
// validation ranges and the credential rules are refused by the CRD itself.
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Value } from '@sinclair/typebox/value';
import t from 'tap';
import { parse } from 'yaml';
import { MachineObject, ProxmoxClusterObject, ProxmoxNodeObject } from '../../src/contracts/crds/viti.js';
import { machineDiskBytes } from '../../src/hooks/viti/machine.js';
import { loadCrdValidators } from '../helpers/crd-validator.js';

type Json = Record<string, unknown>;

const validators = loadCrdValidators(fileURLToPath(new URL('../../manifests/crds/', import.meta.url)));
const dir = new URL('../fixtures/viti/', import.meta.url);
const read = (name: string): Json => parse(readFileSync(new URL(name, dir), 'utf8'), { version: '1.1' }) as Json;
const SCHEMAS = { Machine: MachineObject, ProxmoxCluster: ProxmoxClusterObject, ProxmoxNode: ProxmoxNodeObject } as const;

function validate(object: Json): string[] {
  const crd = validators.get(String(object['kind']));
  if (!crd) throw new Error(`no CRD for ${String(object['kind'])}`);
  return crd.validate(object).map((issue) => (typeof issue === 'string' ? issue : JSON.stringify(issue)));
}

const files = readdirSync(dir).filter((name) => name.endsWith('.yaml') && name !== 'secret.yaml');
t.ok(files.length >= 5, 'the seed-shaped fixtures are here');
for (const file of files) {
  t.test(`viti/${file} applies unchanged`, async (t) => {
    const object = read(file);
    t.same(validate(object), [], 'the CRD accepts it as written');
    const kind = String(object['kind']) as keyof typeof SCHEMAS;
    const crd = validators.get(kind);
    t.ok(crd && Value.Check(SCHEMAS[kind], crd.prune(object)), 'the hook\'s schema accepts it');
  });
}

function withSpec(file: string, change: (spec: Json) => void): Json {
  const object = read(file);
  change(object['spec'] as Json);
  return object;
}

const refused: [string, string, (spec: Json) => void][] = [
  ['cores 129', 'machine-reference.yaml', (spec) => ((spec['cpu'] as Json)['cores'] = 129)],
  ['cores 0', 'machine-reference.yaml', (spec) => ((spec['cpu'] as Json)['cores'] = 0)],
  ['sockets 5', 'machine-reference.yaml', (spec) => ((spec['cpu'] as Json)['sockets'] = 5)],
  ['threadsPerCore 3', 'machine-reference.yaml', (spec) => ((spec['cpu'] as Json)['threadsPerCore'] = 3)],
  ['vlan 0', 'machine-vlan.yaml', (spec) => (((spec['networks'] as Json[])[0] as Json)['vlan'] = 0)],
  ['vlan 4095', 'machine-vlan.yaml', (spec) => (((spec['networks'] as Json[])[0] as Json)['vlan'] = 4095)],
  ['memory below 64 MB', 'machine-reference.yaml', (spec) => (spec['memory'] = 64 * 1024 * 1024 - 1)],
  ['vmid 99', 'machine-reference.yaml', (spec) => (spec['vmid'] = 99)],
  ['vmid 1000000000', 'machine-reference.yaml', (spec) => (spec['vmid'] = 1_000_000_000)],
  ['disk type nvme', 'machine-reference.yaml', (spec) => (((spec['disks'] as Json[])[0] as Json)['type'] = 'nvme')],
  ['disk size 20GB', 'machine-reference.yaml', (spec) => (((spec['disks'] as Json[])[0] as Json)['size'] = '20GB')],
  ['bootOrder floppy', 'machine-reference.yaml', (spec) => (spec['bootOrder'] = ['floppy'])],
  ['bootOrder twice disk', 'machine-reference.yaml', (spec) => (spec['bootOrder'] = ['disk', 'disk'])],
  ['osType beos', 'machine-reference.yaml', (spec) => (spec['osType'] = 'beos')],
  ['a field no one reads', 'machine-reference.yaml', (spec) => (spec['hugepages'] = true)],
  ['a password and a token', 'proxmoxcluster-token.yaml', (spec) => ((spec['credentials'] as Json)['password'] = { secretRef: { name: 's', key: 'p' } })],
  ['a tokenID without its secret', 'proxmoxcluster-password.yaml', (spec) => ((spec['credentials'] as Json)['tokenID'] = 'operator@pve!t')],
  ['a password without the username', 'proxmoxcluster-password.yaml', (spec) => delete (spec['credentials'] as Json)['username']],
  ['a short tokenID without the username', 'proxmoxcluster-token.yaml', (spec) => delete (spec['credentials'] as Json)['username']],
  ['a client certificate without its key', 'proxmoxcluster-token.yaml', (spec) => (spec['clientCertificate'] = '-----BEGIN CERTIFICATE-----')],
  ['an http endpoint', 'proxmoxcluster-password.yaml', (spec) => (spec['endpoint'] = 'http://proxmox.example.com:8006')],
  ['maxVMs -1', 'proxmoxnode.yaml', (spec) => (spec['maxVMs'] = -1)],
];
for (const [what, file, change] of refused) {
  t.test(`the CRD refuses ${what}`, async (t) => {
    t.not(validate(withSpec(file, change)), [], 'refused');
  });
}

t.test('a whole user@realm!name tokenID needs no username', async (t) => {
  t.same(validate(withSpec('proxmoxcluster-token.yaml', (spec) => {
    const credentials = spec['credentials'] as Json;
    delete credentials['username'];
    credentials['tokenID'] = 'operator@pve!operator-token';
  })), []);
});

t.test('disk sizes read as PVE writes them: binary units, a bare number in GiB', async (t) => {
  t.equal(machineDiskBytes('20G'), 20 * 1024 ** 3);
  t.equal(machineDiskBytes('20Gi'), 20 * 1024 ** 3);
  t.equal(machineDiskBytes('1T'), 1024 ** 4);
  t.equal(machineDiskBytes('512M'), 512 * 1024 ** 2);
  t.equal(machineDiskBytes('32'), 32 * 1024 ** 3);
  t.equal(machineDiskBytes('20GB'), undefined);
  t.equal(machineDiskBytes('0G'), undefined);
});
