// The fields issue 22 brought from upstream VirtRigaud that a driver applies, end to end on the
// simulator (which has every capability): tags kept in sync on a running VM, cloud-init
// meta-data, Ignition, the VMClass's extraConfig, resource limits and guest tools, the
// Provider's defaults; and the refusals that come before any hypervisor call.
import t, { type Test } from 'tap';
import { API, lifecycle } from '../helpers/lifecycle.js';

type Env = Awaited<ReturnType<typeof lifecycle>>;

function secret(env: Env, name: string, data: Record<string, string>): void {
  env.cluster.create({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace: 'default' },
    data: Object.fromEntries(Object.entries(data).map(([key, value]) => [key, Buffer.from(value).toString('base64')])),
  });
}

function onlyVM(env: Env) {
  const vms = env.world.listVMs();
  if (vms.length !== 1 || vms[0] === undefined) throw new Error(`expected one VM, found ${vms.length}`);
  return vms[0];
}

async function refused(t: Test, env: Env, reason: string, message: RegExp | string): Promise<void> {
  await env.metacontroller.settle(() => env.condition('Ready')?.reason === reason);
  t.match(env.condition('Ready')?.message, message);
  t.equal(env.world.callCount('create'), 0, 'no VM was created');
}

t.test('tags are set at creation and follow the spec on a running VM, one reconfigure per change', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.createVM('web', { tags: ['environment:production', 'tier:web'] });
  await env.metacontroller.settle(() => env.isReady());
  t.same(onlyVM(env).tags, ['environment:production', 'tier:web']);
  t.equal(env.world.callCount('reconfigure'), 0, 'created with them: nothing to reconfigure');

  env.patchVM('web', { tags: ['tier:web', 'team:payments'] });
  await env.metacontroller.settle(() => env.condition('Configured')?.status === 'True' && onlyVM(env).tags?.includes('team:payments') === true);
  t.same([...(onlyVM(env).tags ?? [])].sort(), ['team:payments', 'tier:web']);
  t.equal(onlyVM(env).powerState, 'On', 'applied without a power cycle');
  t.equal(env.world.callCount('reconfigure'), 1, 'one reconfigure');
  t.equal(env.world.callCount('power'), 1, 'only the first power-on');

  await env.metacontroller.advance(10 * 60_000);
  t.equal(env.world.callCount('reconfigure'), 1, 'in sync: no more reconfigures over ten minutes of syncs');

  env.patchVM('web', { tags: [] });
  await env.metacontroller.settle(() => onlyVM(env).tags?.length === 0);
  t.equal(env.world.callCount('reconfigure'), 2, 'emptying them is one more');
});

t.test('a tag no driver could store is refused before any call, naming it', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  env.createVM('web', { tags: ['ok', 'has space'] });
  await refused(t, env, 'InvalidSpec', 'spec.tags: "has space" is not a tag');
});

t.test('meta-data, inline and from a Secret, reaches the hypervisor next to the user-data', async (t) => {
  const env = await lifecycle(t);
  await env.basics();
  secret(env, 'web-meta', { 'meta-data': 'public-keys:\n  - ssh-ed25519 AAAA test\n' });
  env.createVM('web', {
    userData: { cloudInit: { inline: '#cloud-config\npackages: [nginx]\n' } },
    metaData: { cloudInit: { inline: 'local-hostname: web-01\n', secretRef: { name: 'web-meta' } } },
  });
  await env.metacontroller.settle(() => env.isReady());
  const details = env.world.guestData(onlyVM(env).id);
  t.equal(details.metaData, 'local-hostname: web-01\npublic-keys:\n  - ssh-ed25519 AAAA test\n', 'both documents, one after the other');
  t.equal(details.userData, '#cloud-config\npackages: [nginx]\n', 'the user-data untouched');
  t.notMatch(JSON.stringify(env.vm()), 'ssh-ed25519', 'the Secret\'s content is not in the object');
});

t.test('meta-data that sets the instance-id, or is not a mapping, is refused before any call', async (t) => {
  for (const [inline, problem] of [
    ['instance-id: i-1234\n', 'sets instance-id'],
    ['- a\n- b\n', 'is not a YAML mapping'],
    ['key: [unclosed\n', 'is not YAML'],
  ] as const) {
    await t.test(problem, async (t) => {
      const env = await lifecycle(t);
      await env.basics();
      env.createVM('web', { metaData: { cloudInit: { inline } } });
      await refused(t, env, 'InvalidSpec', `spec.metaData.cloudInit ${problem}`);
      t.notMatch(env.condition('Ready')?.message, inline.trim(), 'the document is not quoted');
    });
  }
});

t.test('an Ignition config from a Secret reaches the hypervisor; a broken one is refused', async (t) => {
  const ignition = JSON.stringify({ ignition: { version: '3.4.0' }, passwd: { users: [{ name: 'core' }] } });
  await t.test('valid', async (t) => {
    const env = await lifecycle(t);
    await env.basics();
    secret(env, 'fcos', { 'config.ign': ignition });
    env.createVM('web', { userData: { ignition: { secretRef: { name: 'fcos' } } } });
    await env.metacontroller.settle(() => env.isReady());
    const details = env.world.guestData(onlyVM(env).id);
    t.equal(details.ignition, ignition);
    t.equal(details.userData, undefined, 'no cloud-init user-data');
  });
  for (const [text, problem] of [
    ['variant: fcos\nversion: 1.5.0\n', 'is not JSON'],
    ['{"passwd":{}}', 'has no ignition.version'],
  ] as const) {
    await t.test(problem, async (t) => {
      const env = await lifecycle(t);
      await env.basics();
      env.createVM('web', { userData: { ignition: { inline: text } } });
      await refused(t, env, 'InvalidSpec', `spec.userData.ignition ${problem}`);
    });
  }
});

t.test('the VMClass\'s extraConfig and resource limits are applied at creation', async (t) => {
  const env = await lifecycle(t);
  await env.basics({
    cpu: 2,
    memory: '4Gi',
    extraConfig: { 'svga.present': 'TRUE' },
    resourceLimits: { cpuLimit: 4000, cpuReservation: 1000, cpuShares: 2000, memoryLimit: '4Gi', memoryReservation: '2Gi' },
  });
  env.createVM('web');
  await env.metacontroller.settle(() => env.isReady());
  const details = env.world.details(onlyVM(env).id);
  t.same(details.extraConfig, { 'svga.present': 'TRUE' });
  t.same(details.limits, { cpuLimitMHz: 4000, cpuReservationMHz: 1000, cpuShares: 2000, memoryLimitBytes: 4 * 2 ** 30, memoryReservationBytes: 2 * 2 ** 30 });
});

t.test('guestToolsPolicy install adds a cloud-init part for the guest agent next to the VM\'s own user-data', async (t) => {
  const env = await lifecycle(t);
  await env.basics({ cpus: 2, memory: '4Gi', guestToolsPolicy: 'install' });
  env.createVM('web', { userData: { cloudInit: { inline: '#!/bin/sh\necho hello\n' } } });
  await env.metacontroller.settle(() => env.isReady());
  const userData = env.world.guestData(onlyVM(env).id).userData ?? '';
  t.match(userData, /^Content-Type: multipart\/mixed; boundary="virtrigaud-part-[0-9a-f]+"/, 'one MIME document');
  t.match(userData, 'Content-Type: text/x-shellscript', 'the VM\'s script, as a script');
  t.match(userData, /Content-Type: text\/cloud-config[^]*packages:\n  - qemu-guest-agent\n/, 'and the agent as cloud-config');
  t.notMatch(userData, 'package_upgrade', 'install does not upgrade the guest');

  await t.test('with Ignition there is no cloud-init to install it with', async (t) => {
    const env = await lifecycle(t);
    await env.basics({ cpus: 2, memory: '4Gi', guestToolsPolicy: 'upgrade' });
    env.createVM('web', { userData: { ignition: { inline: '{"ignition":{"version":"3.4.0"}}' } } });
    await refused(t, env, 'InvalidSpec', 'guestToolsPolicy upgrade installs through cloud-init');
  });
});

t.test('a clone cannot take its class\'s creation-time settings: Unsupported, no call', async (t) => {
  const env = await lifecycle(t);
  await env.basics({ cpus: 2, memory: '4Gi', extraConfig: { 'svga.present': 'TRUE' } });
  env.cluster.create({ apiVersion: API, kind: 'VMClass', metadata: { name: 'plain', namespace: 'default' }, spec: { cpus: 2, memory: '4Gi' } });
  env.createVM('source', { classRef: { name: 'plain' } });
  await env.metacontroller.settle(() => env.isReady('source'));
  const creates = env.world.callCount('create');
  const clones = env.world.callCount('clone');
  env.cluster.create({
    apiVersion: API,
    kind: 'VirtualMachine',
    metadata: { name: 'web', namespace: 'default' },
    spec: { providerRef: { name: 'sim' }, classRef: { name: 'small' }, cloneFrom: { vmRef: { name: 'source' }, linkedClone: false } },
  });
  await env.metacontroller.settle(() => env.condition('Ready')?.reason === 'Unsupported');
  t.match(env.condition('Ready')?.message, 'VMClass small: extraConfig is applied when a VM is made from an image');
  t.equal(env.world.callCount('create') + env.world.callCount('clone'), creates + clones, 'nothing created');
});

t.test('the Provider\'s defaults fill what the VM and its class leave unset', async (t) => {
  const env = await lifecycle(t);
  await env.basics({ cpus: 2, memory: '4Gi' }, { type: 'simulator', defaults: { datastore: 'sim-ds-2', network: 'dmz' } });
  env.createVM('web', { networks: [{ name: 'lan' }, { name: 'mgmt', bridge: 'mgmt' }] });
  env.createVM('db', { placement: { datastore: 'sim-ds-1' } });
  await env.metacontroller.settle(() => env.isReady('web') && env.isReady('db'));
  const byName = (name: string) => env.world.listVMs().find((vm) => vm.name === name);
  t.same(byName('web')?.disks.map((disk) => disk.datastore), ['sim-ds-2'], 'the default datastore');
  t.same(byName('web')?.nics.map((nic) => [nic.name, nic.network]), [['lan', 'dmz'], ['mgmt', 'mgmt']], 'the default network only where the NIC names none');
  t.same(byName('db')?.disks.map((disk) => disk.datastore), ['sim-ds-1'], 'the VM\'s own placement wins');
});
