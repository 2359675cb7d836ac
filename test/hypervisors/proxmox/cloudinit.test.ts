import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { InvalidSpecError, UnsupportedError } from '../../../src/contracts/driver.js';
import { encodeParams } from '../../../src/hypervisors/proxmox/client.js';
import {
  cloudInitParams,
  encodeSshKeys,
  planCloudInit,
  removeSnippet,
  requireSnippets,
  writeSnippet,
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
  t.equal(cloudInitParams(planCloudInit('#cloud-config\nuser: a\n', 'vm'), undefined)['ciupgrade'], 0);
  t.equal(cloudInitParams(planCloudInit('#cloud-config\npackage_upgrade: true\n', 'vm'), undefined)['ciupgrade'], 1);
});

t.test('with a snippet, only cicustom is sent for the user section', async (t) => {
  t.same(cloudInitParams(planCloudInit('#cloud-config\nuser: a\npackages: [x]\n', 'vm'), 'user=snip:snippets/u-user.yaml'), { cicustom: 'user=snip:snippets/u-user.yaml' });
});

t.test('a snippet is written whole into the snippets directory and removed again', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pve-snippets-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const config = proxmoxConfigFromEnv({ PVE_ENDPOINT: 'https://pve:8006', PVE_TOKEN_ID: 'a@pve!tok', PVE_TOKEN_SECRET: 's', PVE_SNIPPETS_STORAGE: 'nfs-iso', PVE_SNIPPETS_DIR: dir });
  const userData = '#cloud-config\npackages: [nginx]\n';
  const cicustom = await writeSnippet(config, 'c0ffee00-uid', userData);
  t.equal(cicustom, 'user=nfs-iso:snippets/c0ffee00-uid-user.yaml');
  t.same(readdirSync(dir), ['c0ffee00-uid-user.yaml'], 'no temporary file left');
  t.equal(readFileSync(join(dir, 'c0ffee00-uid-user.yaml'), 'utf8'), userData);
  t.equal(statSync(join(dir, 'c0ffee00-uid-user.yaml')).mode & 0o777, 0o640);
  await removeSnippet(config, 'c0ffee00-uid');
  t.same(readdirSync(dir), []);
});
