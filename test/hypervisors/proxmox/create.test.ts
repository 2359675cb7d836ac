import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { CreateSpec } from '../../../src/contracts/driver.js';
import { GiB } from '../../../src/contracts/quantity.js';
import { parseMarker, placeholderName } from '../../../src/hypervisors/proxmox/identity.js';
import { OWNER, TEMPLATE, marker, miniPve, ownedVM, type MiniVM } from './mini-pve.js';
import { pveError } from './pve-stub.js';

const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHq0 operator@k8s';

function spec(overrides: Partial<CreateSpec> = {}): CreateSpec {
  return {
    name: 'web',
    owner: OWNER,
    cpus: 2,
    memoryBytes: 4 * GiB,
    features: { tpm: false, secureBoot: false, nestedVirtualization: false, cpuHotAdd: false, memoryHotAdd: false },
    image: { kind: 'template', ref: 'ubuntu-22-template', fullClone: true },
    disks: [{ name: 'root', sizeBytes: 20 * GiB, root: true }],
    storage: { provisioning: 'thin' },
    nics: [{ name: 'lan' }],
    placement: {},
    ...overrides,
  };
}

/** The template with every volume on the shared `ceph` storage, so clones may go to any node. */
const SHARED_TEMPLATE: MiniVM = {
  ...TEMPLATE,
  config: { ...TEMPLATE.config, scsi0: 'ceph:base-9000-disk-0,size=10G', ide2: 'ceph:vm-9000-cloudinit,media=cdrom' },
};

/** The clone target as PVE shows it once the clone task has ended: the template's config, our description. */
function clonedVM(vmid: number, description = marker(OWNER, { state: 'configuring' })): MiniVM {
  return {
    vmid,
    node: 'pve1',
    name: placeholderName(OWNER.uid),
    config: { ...TEMPLATE.config, template: undefined, name: placeholderName(OWNER.uid), scsi0: `local-lvm:vm-${vmid}-disk-0,size=10G`, ide2: `local-lvm:vm-${vmid}-cloudinit,media=cdrom`, description },
    status: { status: 'stopped', qmpstatus: 'stopped' },
  };
}

t.test('create clones the template by name, with the marker in the description, and returns the clone task', async (t) => {
  const { driver, stub } = await miniPve(t, [TEMPLATE]);
  const created = await driver.create(spec());
  t.equal(created.id, '100');
  t.match(created.task, /^UPID:pve1:[0-9A-F]{8}:[0-9A-F]{8}:[0-9A-F]{8}:qmclone:9000:/);
  const [clone, ...more] = stub.calls('POST', '/nodes/pve1/qemu/9000/clone');
  t.equal(more.length, 0);
  t.equal(clone?.form.get('newid'), '100');
  t.equal(clone?.form.get('name'), `vr-${OWNER.uid}`, 'the placeholder name until the configuration step');
  t.equal(clone?.form.get('full'), '1');
  t.equal(clone?.form.get('target'), null, 'the template is on local storage: the clone stays on its node');
  t.equal(clone?.form.get('storage'), null);
  t.same(parseMarker(clone?.form.get('description')), { ...OWNER, disks: { root: 'scsi0' }, nics: { lan: 'net0' }, state: 'configuring' });
});

t.test('a full clone of a template on shared storage goes to the node with most free memory', async (t) => {
  const { driver, stub } = await miniPve(t, [SHARED_TEMPLATE]);
  await driver.create(spec({ storage: { provisioning: 'thin', datastore: 'ceph' } }));
  const clone = stub.calls('POST', '/nodes/pve1/qemu/9000/clone')[0];
  t.equal(clone?.form.get('target'), 'pve2');
  t.equal(clone?.form.get('storage'), 'ceph');
});

t.test('PVE_NODE_SELECTOR order comes before free memory', async (t) => {
  const { driver, stub } = await miniPve(t, [SHARED_TEMPLATE], { env: { PVE_NODE_SELECTOR: 'pve1,pve2' } });
  await driver.create(spec());
  t.equal(stub.calls('POST', '/nodes/pve1/qemu/9000/clone')[0]?.form.get('target'), null);
});

t.test('an explicit host that cannot take a clone of a local-storage template is refused before cloning', async (t) => {
  const { driver, stub } = await miniPve(t, [TEMPLATE]);
  await t.rejects(driver.create(spec({ placement: { host: 'pve2' } })), { code: 'InvalidSpec', message: /local storage 'local-lvm'/ });
  t.equal(stub.calls('POST', /clone$/).length, 0);
});

t.test('a linked clone is made on the template node, without storage', async (t) => {
  const { driver, stub } = await miniPve(t, [SHARED_TEMPLATE], { env: { PVE_DEFAULT_STORAGE: 'ceph' } });
  await driver.create(spec({ image: { kind: 'template', ref: '9000', fullClone: false } }));
  const clone = stub.calls('POST', '/nodes/pve1/qemu/9000/clone')[0];
  t.equal(clone?.form.get('full'), '0');
  t.equal(clone?.form.get('storage'), null);
  t.equal(clone?.form.get('target'), null);
});

t.test('an unknown template is an InvalidSpec and nothing is cloned', async (t) => {
  const { driver, stub } = await miniPve(t, [TEMPLATE]);
  await t.rejects(driver.create(spec({ image: { kind: 'template', ref: 'centos-9', fullClone: true } })), { code: 'InvalidSpec', message: "template 'centos-9' not found" });
  t.equal(stub.calls('POST', /clone$/).length, 0);
});

t.test('a root disk smaller than the template is refused: disks only grow', async (t) => {
  const { driver } = await miniPve(t, [TEMPLATE]);
  await t.rejects(driver.create(spec({ disks: [{ name: 'root', sizeBytes: 5 * GiB, root: true }] })), { code: 'InvalidSpec', message: /smaller than template/ });
});

t.test('thick provisioning is Unsupported', async (t) => {
  const { driver } = await miniPve(t, [TEMPLATE]);
  await t.rejects(driver.create(spec({ storage: { provisioning: 'thick' } })), { code: 'Unsupported', message: /thickProvisioning/ });
});

t.test('a bridge the node does not have is refused before cloning', async (t) => {
  const { driver, stub } = await miniPve(t, [TEMPLATE]);
  await t.rejects(driver.create(spec({ nics: [{ name: 'lan', bridge: 'vmbr9' }] })), { code: 'InvalidSpec', message: "bridge 'vmbr9' not found on node 'pve1' (NIC 'lan')" });
  t.equal(stub.calls('POST', /clone$/).length, 0);
});

t.test('user-data beyond what PVE generates, without a snippets storage, is Unsupported before any clone', async (t) => {
  const { driver, stub } = await miniPve(t, [TEMPLATE]);
  await t.rejects(driver.create(spec({ userData: '#cloud-config\npackages: [nginx]\nruncmd: [[ls]]\n' })), {
    code: 'Unsupported',
    message: /packages, runcmd .*PVE_SNIPPETS_STORAGE and PVE_SNIPPETS_DIR/,
  });
  t.equal(stub.requests.length, 0, 'refused without asking PVE anything');
});

t.test('a VMID taken between nextid and clone is retried with another one', async (t) => {
  const { driver, stub, routes } = await miniPve(t, [TEMPLATE]);
  let clones = 0;
  routes.set('POST /nodes/pve1/qemu/9000/clone', (request) => {
    clones += 1;
    if (clones === 1) return pveError(500, `unable to create VM ${request.form.get('newid') ?? ''}: config file already exists`);
    return { data: 'UPID:pve1:0003A2F1:01C3B2A4:67F0C1A0:qmclone:9000:root@pam:' };
  });
  const created = await driver.create(spec());
  t.same(stub.calls('POST', /clone$/).map((request) => request.form.get('newid')), ['100', '101']);
  t.equal(created.id, '101');
});

t.test('two concurrent creates clone two distinct VMIDs', async (t) => {
  const { driver, stub } = await miniPve(t, [TEMPLATE]);
  const other = { uid: 'uid-second', namespace: 'apps', name: 'db' };
  const [a, b] = await Promise.all([driver.create(spec()), driver.create(spec({ name: 'db', owner: other }))]);
  t.not(a.id, b.id);
  t.same(stub.calls('POST', /clone$/).map((request) => request.form.get('newid')).sort(), ['100', '101']);
});

t.test('with PVE_VMID_RANGE the first free id of the range is confirmed with nextid?vmid=', async (t) => {
  const { driver, stub } = await miniPve(t, [TEMPLATE, ownedVM(10000, { config: { ...ownedVM(10000).config, description: marker({ uid: 'x', namespace: 'a', name: 'b' }) } })], {
    env: { PVE_VMID_RANGE: '10000-10010' },
  });
  const created = await driver.create(spec());
  t.equal(created.id, '10001');
  t.same(stub.calls('GET', '/cluster/nextid').map((request) => request.query.get('vmid')), ['10001']);
});

t.test("an existing VM of the owner is returned without a task and nothing is cloned", async (t) => {
  const { driver, stub } = await miniPve(t, [TEMPLATE, ownedVM(120)]);
  t.same(await driver.create(spec()), { id: '120' });
  t.equal(stub.calls('POST', /clone$/).length, 0);
});

const OUR_CLONE = 'UPID:pve1:0003A2F1:01C3B2A4:67F0C1A0:qmclone:9000:virtrigaud@pve!vrtg:';

t.test('a VM of the owner whose clone still runs is returned with that clone task', async (t) => {
  const cloning: MiniVM = { vmid: 131, node: 'pve1', name: 'web', lock: 'clone', config: { description: marker(OWNER, { state: 'configuring' }) }, status: { status: 'stopped' } };
  const { driver, stub, routes } = await miniPve(t, [TEMPLATE, cloning]);
  routes.set('GET /cluster/tasks', { data: [{ upid: OUR_CLONE, type: 'qmclone', id: '9000', user: 'virtrigaud@pve!vrtg', node: 'pve1' }] });
  t.same(await driver.create(spec()), { id: '131', task: OUR_CLONE });
  t.equal(stub.requests.filter((request) => request.method !== 'GET').length, 0);
});

t.test('a clone this process started is found by its VMID before PVE has written the marker', async (t) => {
  const { driver, vms } = await miniPve(t, [TEMPLATE]);
  const created = await driver.create(spec());
  // What PVE shows first: "# qmclone temporary file", nothing but the lock.
  vms.set(100, { vmid: 100, node: 'pve1', name: 'VM 100', lock: 'clone', config: {}, status: { status: 'stopped' } });
  const found = await driver.findByIdentity(OWNER.uid);
  t.equal(found?.id, '100');
  t.same(found?.owner, OWNER);
  t.same(await driver.create(spec()), { id: '100', task: created.task }, 'a repeated create waits for the same clone');
});

t.test('create waits while a clone of ours that nobody can identify yet is running', async (t) => {
  const anonymous: MiniVM = { vmid: 140, node: 'pve1', name: 'VM 140', lock: 'clone', config: {}, status: { status: 'stopped' } };
  const { driver, stub, routes } = await miniPve(t, [TEMPLATE, anonymous]);
  routes.set('GET /cluster/tasks', { data: [{ upid: OUR_CLONE, type: 'qmclone', id: '9000', user: 'virtrigaud@pve!vrtg', node: 'pve1' }] });
  await t.rejects(driver.create(spec()), { code: 'Busy', message: /VM 140 on node 'pve1' is being created by this provider/ });
  t.equal(stub.calls('POST', /clone$/).length, 0);
  routes.set('GET /cluster/tasks', { data: [{ upid: OUR_CLONE.replace('virtrigaud@pve!vrtg', 'root@pam'), type: 'qmclone', id: '9000', user: 'root@pam', node: 'pve1' }] });
  t.equal((await driver.create(spec())).id, '100', "someone else's clone does not hold us up");
});

t.test('a clone whose VMID someone else took meanwhile is retried with another VMID', async (t) => {
  const { driver, stub, vms, routes } = await miniPve(t, [TEMPLATE]);
  routes.set('POST /nodes/pve1/qemu/9000/clone', (request) => {
    const newid = Number(request.form.get('newid'));
    // The thief's VM appears as our clone call returns; our clone task would fail later.
    if (newid === 100) vms.set(100, { ...ownedVM(100), name: 'thief', config: { name: 'thief' } });
    return { data: OUR_CLONE };
  });
  const created = await driver.create(spec());
  t.equal(created.id, '101');
  t.same(stub.calls('POST', /clone$/).map((request) => request.form.get('newid')), ['100', '101']);
});

t.test('an incomplete VM is configured with one config POST carrying everything', async (t) => {
  const { driver, stub } = await miniPve(t, [TEMPLATE, clonedVM(100)]);
  const userData = ['#cloud-config', 'hostname: web', 'users:', '  - name: ubuntu', '    ssh_authorized_keys:', `      - ${KEY}`].join('\n');
  const created = await driver.create(
    spec({
      userData,
      disks: [{ name: 'root', sizeBytes: 20 * GiB, root: true }, { name: 'data', sizeBytes: 5 * GiB, root: false }],
      nics: [{ name: 'lan', staticIP: { address: '192.168.1.100/24', gateway: '192.168.1.1', dns: ['8.8.8.8', '1.1.1.1'] } }, { name: 'dmz', vlan: 100 }],
    }),
  );
  t.equal(created.id, '100');
  t.match(created.task, /:qmconfig:100:/);
  const posts = stub.calls('POST', '/nodes/pve1/qemu/100/config');
  t.equal(posts.length, 1);
  const form = posts[0]?.form ?? new URLSearchParams();
  t.equal(form.get('name'), 'web', 'renamed from the placeholder');
  t.equal(form.get('cores'), '2');
  t.equal(form.get('sockets'), '1');
  t.equal(form.get('memory'), '4096');
  t.equal(form.get('net0'), 'virtio=BC:24:11:5E:7A:01,bridge=vmbr0', "the clone's MAC is kept");
  t.equal(form.get('net1'), 'virtio,bridge=vmbr1,tag=100');
  t.equal(form.get('ipconfig0'), 'ip=192.168.1.100/24,gw=192.168.1.1');
  t.equal(form.get('ipconfig1'), 'ip=dhcp');
  t.equal(form.get('nameserver'), '8.8.8.8 1.1.1.1');
  t.equal(form.get('scsi1'), 'local-lvm:5', 'the extra disk in GiB on the boot disk storage');
  t.equal(form.get('ide2'), null, 'the template already has a cloud-init drive');
  t.equal(form.get('ciuser'), 'ubuntu');
  t.equal(form.get('ciupgrade'), '0');
  t.equal(form.get('agent'), null, 'the template already enables the agent');
  t.equal(form.get('boot'), 'order=scsi0;scsi1');
  t.equal(form.get('tags'), `virtrigaud;vr-${OWNER.uid}`);
  t.same(parseMarker(form.get('description')), { ...OWNER, disks: { root: 'scsi0', data: 'scsi1' }, nics: { lan: 'net0', dmz: 'net1' } }, 'the final marker has no state');
  const body = posts[0]?.body ?? '';
  t.match(body, /(^|&)sshkeys=ssh-ed25519%2520AAAAC3NzaC1lZDI1NTE5AAAAIHq0%2520operator%2540k8s(&|$)/, 'sshkeys double-encoded on the wire');
  t.match(body, /(^|&)boot=order%3Dscsi0%3Bscsi1(&|$)/, '; and = encoded on the wire');
  t.match(body, /(^|&)tags=virtrigaud%3Bvr-/, 'the tag separator encoded on the wire');
  t.equal(stub.calls('POST', /clone$/).length, 0);
});

t.test('configuring adds UEFI, secure boot, a TPM, hot-plug and nested virtualization', async (t) => {
  const { driver, stub } = await miniPve(t, [TEMPLATE, clonedVM(100)], { env: { PVE_DEFAULT_STORAGE: 'ceph' } });
  await driver.create(spec({ firmware: 'uefi', machine: 'q35', features: { tpm: true, secureBoot: true, nestedVirtualization: true, cpuHotAdd: true, memoryHotAdd: true } }));
  const form = stub.calls('POST', '/nodes/pve1/qemu/100/config')[0]?.form ?? new URLSearchParams();
  t.equal(form.get('bios'), 'ovmf');
  t.equal(form.get('efidisk0'), 'ceph:1,efitype=4m,pre-enrolled-keys=1');
  t.equal(form.get('tpmstate0'), 'ceph:1,version=v2.0');
  t.equal(form.get('machine'), 'q35');
  t.equal(form.get('cpu'), 'host');
  t.equal(form.get('numa'), '1');
  t.equal(form.get('hotplug'), 'network,disk,usb,cpu,memory');
  t.equal(form.get('vcpus'), '2');
  t.ok(Number(form.get('cores')) >= 2, 'cores is the hot-plug ceiling');
});

t.test('template NICs beyond the spec are removed, and a missing cloud-init drive is added', async (t) => {
  const vm = clonedVM(100);
  vm.config = { ...vm.config, net1: 'e1000=BC:24:11:00:00:02,bridge=vmbr1', ipconfig1: 'ip=dhcp', ide2: 'none,media=cdrom' };
  const { driver, stub } = await miniPve(t, [TEMPLATE, vm]);
  await driver.create(spec({ nics: [{ name: 'lan', staticIP: { address: '10.0.0.5/24' } }] }));
  const form = stub.calls('POST', '/nodes/pve1/qemu/100/config')[0]?.form ?? new URLSearchParams();
  t.equal(form.get('delete'), 'net1,ipconfig1');
  t.equal(form.get('ide0'), 'local-lvm:cloudinit', 'ide2 holds a CD-ROM: the next IDE slot');
});

t.test('raw user-data goes into a snippet and cicustom names it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pve-snippets-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const { driver, stub } = await miniPve(t, [TEMPLATE, clonedVM(100)], { env: { PVE_SNIPPETS_STORAGE: 'local', PVE_SNIPPETS_DIR: dir } });
  const userData = '#cloud-config\npackages: [nginx]\n';
  await driver.create(spec({ userData }));
  const form = stub.calls('POST', '/nodes/pve1/qemu/100/config')[0]?.form ?? new URLSearchParams();
  t.equal(form.get('cicustom'), `user=local:snippets/${OWNER.uid}-user.yaml`);
  t.equal(form.get('ciuser'), null);
  t.equal(readFileSync(join(dir, `${OWNER.uid}-user.yaml`), 'utf8'), userData);
});

t.test('no user-data and no static IP leave cloud-init alone', async (t) => {
  const { driver, stub } = await miniPve(t, [TEMPLATE, clonedVM(100)]);
  await driver.create(spec());
  const form = stub.calls('POST', '/nodes/pve1/qemu/100/config')[0]?.form ?? new URLSearchParams();
  for (const key of ['ipconfig0', 'ciuser', 'sshkeys', 'ciupgrade', 'cicustom']) t.equal(form.get(key), null, key);
});

t.test('memory that is not a whole number of MiB is refused', async (t) => {
  const { driver } = await miniPve(t, [TEMPLATE]);
  await t.rejects(driver.create(spec({ memoryBytes: 1.5e9 })), { code: 'InvalidSpec', message: /whole number of Mi/ });
});

t.test('configuring sets cpuunits from the CPU shares', async (t) => {
  const { driver, stub } = await miniPve(t, [TEMPLATE, clonedVM(100)]);
  await driver.create(spec({ limits: { cpuShares: 2048 } }));
  t.equal(stub.calls('POST', '/nodes/pve1/qemu/100/config')[0]?.form.get('cpuunits'), '2048');
});

t.test('CPU shares outside the cgroup v2 weight range are refused before anything is cloned', async (t) => {
  const { driver, stub } = await miniPve(t, [TEMPLATE]);
  for (const cpuShares of [0, 10_001, 262_144, 1.5]) {
    await t.rejects(driver.create(spec({ limits: { cpuShares } })), { code: 'InvalidSpec', message: /cpuShares must be an integer from 1 to 10000/ }, String(cpuShares));
  }
  t.equal(stub.requests.length, 0);
});

t.test('resource limits, an Ignition config and extra configuration are Unsupported before anything is cloned', async (t) => {
  const { driver, stub } = await miniPve(t, [TEMPLATE]);
  await t.rejects(driver.create(spec({ limits: { cpuLimitMHz: 2000, cpuShares: 100 } })), { code: 'Unsupported', message: /resourceLimits/ });
  await t.rejects(driver.create(spec({ limits: { memoryReservationBytes: GiB } })), { code: 'Unsupported', message: /resourceLimits/ });
  await t.rejects(driver.create(spec({ ignition: '{"ignition":{"version":"3.4.0"}}' })), { code: 'Unsupported', message: /'ignition'/ });
  await t.rejects(driver.create(spec({ extraConfig: { 'disk.EnableUUID': 'TRUE' } })), { code: 'Unsupported', message: /'extraConfig'/ });
  t.equal(stub.requests.length, 0);
});

t.test("the clone's tags (the template's, another owner's) are replaced by the identity tags and the user's", async (t) => {
  const vm = clonedVM(100);
  vm.config = { ...vm.config, tags: 'ubuntu;virtrigaud;vr-someone-else' };
  const { driver, stub } = await miniPve(t, [TEMPLATE, vm]);
  await driver.create(spec({ tags: ['team-a', 'prod'] }));
  t.equal(stub.calls('POST', '/nodes/pve1/qemu/100/config')[0]?.form.get('tags'), `virtrigaud;vr-${OWNER.uid};prod;team-a`);
});

t.test("a clone carrying another owner's snippets loses them and keeps the template's own, with user-data or without", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pve-snippets-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const source = '0a1b2c3d-0000-4000-8000-00000000beef';
  const vm = clonedVM(100);
  vm.config = { ...vm.config, cicustom: `user=local:snippets/${source}-user.yaml,meta=local:snippets/${source}-meta.yaml,vendor=local:snippets/vendor.yaml` };
  const { driver, stub } = await miniPve(t, [TEMPLATE, vm], { env: { PVE_SNIPPETS_STORAGE: 'local', PVE_SNIPPETS_DIR: dir } });
  await driver.create(spec());
  t.equal(stub.calls('POST', '/nodes/pve1/qemu/100/config')[0]?.form.get('cicustom'), 'vendor=local:snippets/vendor.yaml');

  await driver.create(spec({ metaData: 'region: eu\n' }));
  t.equal(stub.calls('POST', '/nodes/pve1/qemu/100/config')[1]?.form.get('cicustom'), `meta=local:snippets/${OWNER.uid}-meta.yaml,vendor=local:snippets/vendor.yaml`);
});

t.test("a clone whose only snippets are another owner's has its cicustom deleted", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pve-snippets-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const vm = clonedVM(100);
  vm.config = { ...vm.config, cicustom: 'user=local:snippets/0a1b2c3d-0000-4000-8000-00000000beef-user.yaml' };
  const { driver, stub } = await miniPve(t, [TEMPLATE, vm], { env: { PVE_SNIPPETS_STORAGE: 'local', PVE_SNIPPETS_DIR: dir } });
  await driver.create(spec());
  const form = stub.calls('POST', '/nodes/pve1/qemu/100/config')[0]?.form ?? new URLSearchParams();
  t.equal(form.get('cicustom'), null);
  t.match(form.get('delete'), /(^|,)cicustom(,|$)/);
});
