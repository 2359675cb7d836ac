import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { InvalidSpecError, UnsupportedError } from '../../../src/contracts/driver.js';
import { encodeParams } from '../../../src/hypervisors/proxmox/client.js';
import { parse } from 'yaml';
import {
  cicustomValue,
  cloudInitFormat,
  cloudInitParams,
  encodeSshKeys,
  metaDataDocument,
  planCloudInit,
  removeSnippets,
  requireSnippets,
  writeSnippets,
} from '../../../src/hypervisors/proxmox/cloudinit.js';
import { proxmoxConfigFromEnv } from '../../../src/hypervisors/proxmox/config.js';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq0b3BlcmF0b3Ita2V5 operator@k8s';
const settings = proxmoxConfigFromEnv({ PVE_ENDPOINT: 'https://pve:8006', PVE_TOKEN_ID: 'a@pve!tok', PVE_TOKEN_SECRET: 's' });

t.test("the guide's user, keys and hostname are carried by ciuser and sshkeys", async (t) => {
  const plan = planCloudInit(
    ['#cloud-config', 'hostname: web-server', 'users:', '  - name: ubuntu', '    ssh_authorized_keys:', `      - "${KEY}"`].join('\n'),
    'web-server',
  );
  t.same(plan, { ciuser: 'ubuntu', sshKeys: [KEY], upgrade: false, nameservers: [], searchdomains: [], rawKeys: [] });
});

t.test('top-level user, password, keys, package_upgrade and resolv_conf are carried', async (t) => {
  const plan = planCloudInit(
    [
      '#cloud-config',
      'user: admin',
      'password: hunter2',
      'chpasswd: {expire: false}',
      `ssh_authorized_keys: ["${KEY}"]`,
      'package_upgrade: true',
      'manage_resolv_conf: true',
      'resolv_conf:',
      '  nameservers: [10.0.0.53]',
      '  searchdomains: [corp.example, example]',
    ].join('\n'),
    'vm',
  );
  t.same(plan, { ciuser: 'admin', cipassword: 'hunter2', sshKeys: [KEY], upgrade: true, nameservers: ['10.0.0.53'], searchdomains: ['corp.example', 'example'], rawKeys: [] });
});

t.test('keys PVE cannot generate are listed as needing raw user-data', async (t) => {
  const plan = planCloudInit(
    ['#cloud-config', 'hostname: other-name', 'packages: [nginx]', 'runcmd: [[ls]]', 'users:', '  - name: ops', '    sudo: ALL=(ALL) NOPASSWD:ALL'].join('\n'),
    'web',
  );
  t.same(plan.rawKeys, ['hostname', 'packages', 'runcmd', 'users[0].sudo']);
});

t.test('user-data that is not #cloud-config needs the raw document', async (t) => {
  t.same(planCloudInit('#!/bin/sh\necho hi\n', 'vm').rawKeys, ['(user-data that is not #cloud-config)']);
});

t.test('invalid YAML is an InvalidSpec that does not quote the user-data', async (t) => {
  const error = t.throws(() => planCloudInit('#cloud-config\npassword: "topsecret\n  - [', 'vm'));
  t.ok(error instanceof InvalidSpecError);
  t.notMatch(String(error), /topsecret/);
});

t.test('without a snippets storage, raw user-data is Unsupported naming the keys and the settings', async (t) => {
  const plan = planCloudInit('#cloud-config\npackages: [nginx]\nwrite_files: []\n', 'vm');
  const error = t.throws(() => requireSnippets(plan, settings));
  t.ok(error instanceof UnsupportedError);
  t.match(String((error as Error).message), /packages, write_files .*PVE_SNIPPETS_STORAGE and PVE_SNIPPETS_DIR/);
});

t.test('sshkeys are URL-encoded inside the value, then form-encoded again: the exact bytes', async (t) => {
  const value = encodeSshKeys([KEY, 'ssh-rsa AAAAB3Nza+/= second@host']);
  t.equal(value, 'ssh-ed25519%20AAAAC3NzaC1lZDI1NTE5AAAAIHq0b3BlcmF0b3Ita2V5%20operator%40k8s%0Assh-rsa%20AAAAB3Nza%2B%2F%3D%20second%40host');
  t.match(value, /^[-%a-zA-Z0-9_.!~*'()]*$/, "PVE's urlencoded format");
  t.equal(
    encodeParams({ sshkeys: value }).toString(),
    'sshkeys=ssh-ed25519%2520AAAAC3NzaC1lZDI1NTE5AAAAIHq0b3BlcmF0b3Ita2V5%2520operator%2540k8s%250Assh-rsa%2520AAAAB3Nza%252B%252F%253D%2520second%2540host',
  );
});

t.test('ciupgrade is 0 unless the user-data asks for package upgrades', async (t) => {
  t.equal(cloudInitParams(planCloudInit('#cloud-config\nuser: a\n', 'vm'), false)['ciupgrade'], 0);
  t.equal(cloudInitParams(planCloudInit('#cloud-config\npackage_upgrade: true\n', 'vm'), false)['ciupgrade'], 1);
});

t.test('with a raw user-data snippet, none of the keys PVE generates the user section from are sent', async (t) => {
  t.same(cloudInitParams(planCloudInit('#cloud-config\nuser: a\npackages: [x]\n', 'vm'), true), {});
});

t.test('a snippet is written whole into the snippets directory and removed again', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pve-snippets-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = proxmoxConfigFromEnv({ PVE_ENDPOINT: 'https://pve:8006', PVE_TOKEN_ID: 'a@pve!tok', PVE_TOKEN_SECRET: 's', PVE_SNIPPETS_STORAGE: 'nfs-iso', PVE_SNIPPETS_DIR: dir });
  const userData = '#cloud-config\npackages: [nginx]\n';
  const written = await writeSnippets(config, 'c0ffee00-uid', { userData, metaData: 'instance-id: c0ffee00-uid\n' });
  t.same(written, { user: 'nfs-iso:snippets/c0ffee00-uid-user.yaml', meta: 'nfs-iso:snippets/c0ffee00-uid-meta.yaml' });
  t.same(readdirSync(dir).sort(), ['c0ffee00-uid-meta.yaml', 'c0ffee00-uid-user.yaml'], 'no temporary file left');
  t.equal(readFileSync(join(dir, 'c0ffee00-uid-user.yaml'), 'utf8'), userData);
  t.equal(statSync(join(dir, 'c0ffee00-uid-user.yaml')).mode & 0o777, 0o640);
  t.equal(statSync(join(dir, 'c0ffee00-uid-meta.yaml')).mode & 0o777, 0o640);
  await removeSnippets(config, 'c0ffee00-uid');
  t.same(readdirSync(dir), []);
});

const OWNER = { uid: '6f1c2a3b-0000-4000-8000-0000000000aa', namespace: 'apps', name: 'web' };

t.test("the meta-data document keeps the owner's UID as instance-id and lays the user's keys over PVE's hostname", async (t) => {
  t.equal(metaDataDocument({ name: 'web', owner: OWNER }), undefined, 'none without user meta-data: PVE generates its own');
  t.same(parse(metaDataDocument({ name: 'web.example.com', owner: OWNER, metaData: 'zone: a\n' }) ?? ''), {
    'instance-id': OWNER.uid,
    'local-hostname': 'web',
    zone: 'a',
  });
  t.same(parse(metaDataDocument({ name: 'web', owner: OWNER, metaData: 'local-hostname: db\n' }) ?? ''), { 'instance-id': OWNER.uid, 'local-hostname': 'db' });
  t.throws(() => metaDataDocument({ name: 'web', owner: OWNER, metaData: 'instance-id: x\n' }), InvalidSpecError);
});

t.test('the cloud-init format follows citype, then a Windows ostype, else NoCloud', async (t) => {
  t.equal(cloudInitFormat({}), 'nocloud');
  t.equal(cloudInitFormat({ ostype: 'l26' }), 'nocloud');
  t.equal(cloudInitFormat({ ostype: 'win11' }), 'configdrive2');
  t.equal(cloudInitFormat({ ostype: 'win11', citype: 'nocloud' }), 'nocloud');
  t.equal(cloudInitFormat({ citype: 'opennebula' }), 'opennebula');
});

t.test("cicustom: our files for our sections, other sections kept, another owner's files dropped", async (t) => {
  const snippets = proxmoxConfigFromEnv({ PVE_ENDPOINT: 'https://pve:8006', PVE_TOKEN_ID: 'a@pve!tok', PVE_TOKEN_SECRET: 's', PVE_SNIPPETS_STORAGE: 'snip', PVE_SNIPPETS_DIR: '/x' });
  const other = 'snip:snippets/0a1b2c3d-0000-4000-8000-00000000beef';
  t.equal(cicustomValue(undefined, {}, snippets), undefined);
  t.equal(cicustomValue(undefined, { meta: 'snip:snippets/m.yaml' }, snippets), 'meta=snip:snippets/m.yaml');
  t.equal(
    cicustomValue(`vendor=snip:snippets/v.yaml,meta=${other}-meta.yaml`, { user: 'snip:snippets/u.yaml' }, snippets),
    'user=snip:snippets/u.yaml,vendor=snip:snippets/v.yaml',
  );
  t.equal(cicustomValue(`user=${other}-user.yaml`, {}, snippets), undefined);
  t.equal(cicustomValue('user=local:snippets/admin-user.yaml', {}, snippets), 'user=local:snippets/admin-user.yaml', "an admin's file on another storage");
  t.equal(cicustomValue(`user=${other}-user.yaml`, {}, settings), `user=${other}-user.yaml`, 'without a snippets storage nothing is ours');
});
