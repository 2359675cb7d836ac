// A Proxmox-backed VirtualMachine through the whole system: the Metacontroller stand-in drives the
// real hook server, whose Proxmox driver talks HTTP to a fake PVE that enforces the official API
// schema. One fake clock runs the harness, the hooks and the fake's tasks.
import t, { type Test } from 'tap';
import type { FakePveOptions } from '../fakes/proxmox/index.js';
import { API } from '../helpers/lifecycle.js';
import { imageServer, qcow2Header, sha256 } from '../hypervisors/proxmox/image-server.js';
import { proxmoxSystem } from '../helpers/proxmox-lifecycle.js';

async function proxmoxLifecycle(t: Test, options: FakePveOptions = {}) {
  const env = await proxmoxSystem(t, options);
  await env.basics({ cpus: 2, memory: '2Gi' }, { type: 'proxmox', endpoint: env.pve.url, runtime: { mode: 'InProcess' } });
  return env;
}

t.test('a Proxmox-backed VirtualMachine is cloned, configured, started and gets its IP', async (t) => {
  const env = await proxmoxLifecycle(t);
  env.createVM('web', {
    networks: [{ name: 'lan', staticIP: { address: '192.168.1.50/24', gateway: '192.168.1.1', dns: ['1.1.1.1'] } }],
    userData: { cloudInit: { inline: '#cloud-config\nusers:\n  - name: ops\n    ssh_authorized_keys:\n      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG1kZXI= ops@example\n' } },
  });
  await env.metacontroller.settle(() => env.isReady() && (env.status()['ips'] as string[]).length > 0, { maxSyncs: 400 });
  t.same(env.status()['ips'], ['192.168.1.50']);
  t.equal(env.status()['phase'], 'Running');
  const [vm] = env.ours();
  t.equal(env.ours().length, 1);
  t.equal(String(vm?.vmid), env.status()['providerID']);
  t.match(vm?.config, { ipconfig0: 'ip=192.168.1.50/24,gw=192.168.1.1', nameserver: '1.1.1.1', ciuser: 'ops' });
  // PVE keeps sshkeys URL-encoded once: decoding gives back exactly the key we sent.
  t.equal(decodeURIComponent(String(vm?.config['sshkeys'])).trim(), 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG1kZXI= ops@example');
  t.match(env.status()['consoleURL'], /\?console=kvm&novnc=1&vmid=\d+&vmname=web&node=pve\d/);
  t.same(env.metacontroller.events, []);
});

t.test('a Proxmox VM reconfigures, grows its disk, powers off and is deleted', async (t) => {
  const env = await proxmoxLifecycle(t);
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady(), { maxSyncs: 400 });
  env.cluster.patchSpec(API, 'VMClass', 'default', 'small', { cpus: 4, memory: '4Gi' });
  env.patchVM('web', { disks: [{ name: 'root', size: '50Gi' }], lifecycle: { restartRequest: 'apply' } });
  await env.metacontroller.settle(
    () => env.isReady() && env.status()['restartRequest'] === 'apply' && JSON.stringify(env.status()['hardware']).includes('50Gi'),
    { maxSyncs: 600 },
  );
  t.match(env.status()['hardware'], { cpus: 4, memory: '4Gi', disks: [{ name: 'root', size: '50Gi' }] });

  env.patchVM('web', { powerState: 'Off' });
  await env.metacontroller.settle(() => env.isReady() && env.status()['powerState'] === 'Off', { maxSyncs: 400 });
  env.cluster.delete(API, 'VirtualMachine', 'default', 'web');
  await env.metacontroller.settle(() => env.vm() === undefined, { maxSyncs: 400 });
  t.same(env.ours(), [], 'destroyed on PVE');
  t.ok(env.pve.vm(9000), 'the template is untouched');
});

t.test('a lost clone response leaves exactly one VM on Proxmox', async (t) => {
  const env = await proxmoxLifecycle(t);
  env.pve.injectFault({ kind: 'dropResponse', method: 'POST', path: /\/clone$/ });
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady(), { maxSyncs: 400 });
  t.equal(env.ours().length, 1);
  t.equal(env.pve.requests.filter((request) => request.method === 'POST' && request.path.endsWith('/clone')).length, 1);
});

t.test('a lock timeout is retried and shows as HypervisorBusy', async (t) => {
  const env = await proxmoxLifecycle(t);
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady(), { maxSyncs: 400 });
  env.pve.injectFault({ kind: 'lockTimeout', path: /\/status\/stop$/, times: 1 });
  env.patchVM('web', { powerState: 'Off' });
  await env.metacontroller.settle(() => env.isReady() && env.status()['powerState'] === 'Off', { maxSyncs: 400 });
  const busy = env.metacontroller.calls.find((call) => JSON.stringify(call.response).includes('"reason":"HypervisorBusy"'));
  t.ok(busy, 'the lock error was reported as a condition, and the stop was retried');
  t.match(JSON.stringify(busy?.response), "can't lock file");
  t.equal(env.pve.requests.filter((request) => request.method === 'POST' && request.path.endsWith('/status/stop')).length, 2);
});

t.test('a foreign VM that took over our VMID is never destroyed', async (t) => {
  const env = await proxmoxLifecycle(t);
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady(), { maxSyncs: 400 });
  const vmid = Number(env.status()['providerID']);
  // Someone destroys our VM and creates their own under the same VMID.
  env.pve.destroyOutOfBand(vmid);
  env.pve.addForeignVm({ vmid, name: 'someone-else', running: true });
  env.cluster.delete(API, 'VirtualMachine', 'default', 'web');
  await env.metacontroller.settle(() => env.vm() === undefined, { maxSyncs: 400 });
  t.match(env.pve.vm(vmid), { name: 'someone-else', status: 'running' }, 'still there, still running');
});

t.test('on Proxmox: a VMSnapshot with memory, a revert to it, and a full VMClone configured in its second step', async (t) => {
  const env = await proxmoxLifecycle(t);
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady(), { maxSyncs: 400 });
  const snapshotStatus = () => (env.get('VMSnapshot', 'before')?.['status'] ?? {}) as Record<string, unknown>;
  env.cluster.create({ apiVersion: API, kind: 'VMSnapshot', metadata: { name: 'before', namespace: 'default' }, spec: { vmRef: { name: 'web' }, includeMemory: true } });
  await env.metacontroller.settle(() => snapshotStatus()['phase'] === 'Ready', { maxSyncs: 400 });
  const [vm] = env.ours();
  const snapname = String(snapshotStatus()['snapshotID']);
  t.match(snapname, /^vr[0-9a-f]{32}$/, 'named after the VMSnapshot UID');
  t.equal(snapshotStatus()['memoryIncluded'], true);

  env.patchVM('web', { lifecycle: { revertRequest: { snapshotRef: { name: 'before' }, request: '1' } } });
  await env.metacontroller.settle(() => (env.status()['revert'] as { request?: string } | undefined)?.request === '1' && env.isReady(), { maxSyncs: 400 });
  t.ok(env.pve.requests.some((request) => request.method === 'POST' && request.path.endsWith(`/snapshot/${snapname}/rollback`)), 'rolled back on PVE');

  env.cluster.create({ apiVersion: API, kind: 'VMClone', metadata: { name: 'copy', namespace: 'default' }, spec: { sourceVMRef: { name: 'web' }, linkedClone: false } });
  await env.metacontroller.settle(() => env.isReady('copy'), { maxSyncs: 600 });
  t.equal(env.ours().length, 2);
  const copy = env.ours().find((other) => other.vmid !== vm?.vmid);
  t.equal(copy?.name, 'copy', 'configured with its own name in the second step');
  t.ok(String(copy?.tags).includes(`vr-${env.vm('copy')?.metadata.uid ?? ''}`), 'its own identity tag');

  env.cluster.delete(API, 'VMSnapshot', 'default', 'before');
  await env.metacontroller.settle(() => env.get('VMSnapshot', 'before') === undefined, { maxSyncs: 400 });
  t.notOk(env.pve.requests.some((request) => request.method === 'DELETE' && request.path.includes('/snapshot/') && !request.path.endsWith(snapname)), 'only our snapshot deleted');
  t.ok(env.pve.requests.some((request) => request.method === 'DELETE' && request.path.endsWith(`/snapshot/${snapname}`)), 'our snapshot deleted');
});

t.test('on Proxmox: a VirtualMachine installed from an ISO, and two from one image URL downloaded once, through the hooks', async (t) => {
  const env = await proxmoxLifecycle(t);
  env.pve.addVolume('local', 'iso/debian-12-netinst.iso', 600 * 1024 * 1024);
  const qcow2 = qcow2Header(2 * 1024 ** 3);
  const images = await imageServer(t, { '/noble.qcow2': qcow2 });
  const image = (name: string, spec: Record<string, unknown>) =>
    env.cluster.create({ apiVersion: API, kind: 'VMImage', metadata: { name, namespace: 'default' }, spec });
  image('debian-iso', { source: 'local:iso/debian-12-netinst.iso' });
  image('noble', { url: { url: `${images.url}/noble.qcow2`, checksum: `sha256:${sha256(qcow2)}` } });

  env.createVM('installer', { imageRef: { name: 'debian-iso' }, disks: [{ name: 'root', size: '16Gi' }] });
  env.createVM('web', { imageRef: { name: 'noble' } });
  env.createVM('api', { imageRef: { name: 'noble' } });
  await env.metacontroller.settle(() => ['installer', 'web', 'api'].every((name) => env.isReady(name)), { maxSyncs: 1200 });

  const byName = (name: string) => env.ours().find((vm) => vm.name === name);
  t.equal(env.ours().length, 3, 'one VM each');
  t.match(byName('installer')?.config, { ide2: 'local:iso/debian-12-netinst.iso,media=cdrom', boot: 'order=ide2;scsi0' });
  t.equal(images.hits.get('/noble.qcow2'), 1, 'the image was downloaded once for both VMs');
  t.equal(env.pve.requests.filter((request) => request.method === 'POST' && request.path.endsWith('/download-url')).length, 1);
  for (const name of ['web', 'api']) t.match(String(byName(name)?.config['scsi0']), /,size=40G/, `${name}: its root disk grown to the asked 40Gi`);
});
