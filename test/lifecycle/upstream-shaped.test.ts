// Upstream VirtRigaud's spelling through the whole system: a Provider, VMClass, VMImage,
// VMNetworkAttachment and VirtualMachine written the way upstream's published examples write them
// (unquoted `powerState: On`, `sizeGiB`, `ipAddress`/`prefix`, `macAddress` with dashes,
// `source.proxmox.templateID`, `network.proxmox.bridge`) reach Running, take an offline disk
// growth and are deleted — on the simulator and on the Proxmox driver against the fake PVE.
import t, { type Test } from 'tap';
import { parse } from 'yaml';
import type { DriverRegistry } from '../../src/contracts/driver.js';
import type { ProviderRegistry } from '../../src/hypervisors/registry.js';
import { API, lifecycle } from '../helpers/lifecycle.js';
import { proxmoxSystem } from '../helpers/proxmox-lifecycle.js';

// As upstream writes them: YAML 1.1 (kubectl's), so `powerState: On` arrives as the boolean true.
const MANIFESTS = `
apiVersion: v1
kind: Secret
metadata: {name: pve-credentials, namespace: default}
stringData: {token_id: "virtrigaud@pve!vrtg", token_secret: "not-used-in-process"}
---
apiVersion: infra.virtrigaud.io/v1beta1
kind: Provider
metadata: {name: pve, namespace: default}
spec:
  type: proxmox
  endpoint: ENDPOINT
  credentialSecretRef: {name: pve-credentials}
  runtime: {mode: InProcess}
---
apiVersion: infra.virtrigaud.io/v1beta1
kind: VMClass
metadata: {name: small, namespace: default}
spec:
  cpu: 2
  memory: 2Gi
  firmware: BIOS
  diskDefaults: {type: thin, size: 20Gi}
  guestToolsPolicy: skip
---
apiVersion: infra.virtrigaud.io/v1beta1
kind: VMImage
metadata: {name: jammy, namespace: default}
spec:
  source:
    proxmox: {templateID: 9000, node: pve1, fullClone: true}
---
apiVersion: infra.virtrigaud.io/v1beta1
kind: VMNetworkAttachment
metadata: {name: app, namespace: default}
spec:
  network:
    type: bridged
    proxmox: {bridge: vmbr0, model: virtio, vlanTag: 100}
---
apiVersion: infra.virtrigaud.io/v1beta1
kind: VirtualMachine
metadata: {name: web, namespace: default}
spec:
  providerRef: {name: pve}
  classRef: {name: small}
  imageRef: {name: jammy}
  powerState: On
  resources: {cpu: 4, memoryMiB: 4096}
  tags: [web, env.prod]
  networks:
    - name: lan
      networkRef: {name: app}
      ipAddress: 192.168.1.10
      prefix: 24
      gateway: 192.168.1.1
      dns: "1.1.1.1, 9.9.9.9"
      macAddress: 52-54-00-AA-BB-CC
  disks:
    - {name: root, sizeGiB: 30, type: thin}
  userData:
    cloudInit:
      inline: |
        #cloud-config
        users:
          - name: ops
            ssh_authorized_keys:
              - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG1kZXI= ops@example
  lifecycle: {gracefulShutdownTimeout: 2m}
`;

type Env = Awaited<ReturnType<typeof lifecycle>>;

function apply(env: Env, endpoint: string): void {
  for (const document of MANIFESTS.split('\n---\n')) {
    const object = parse(document.replace('ENDPOINT', endpoint), { version: '1.1' }) as Record<string, unknown> & { kind: string };
    if (object.kind === 'Secret') {
      const { stringData, ...secret } = object as unknown as { stringData: Record<string, string> };
      const data = Object.fromEntries(Object.entries(stringData).map(([key, value]) => [key, Buffer.from(value).toString('base64')]));
      env.cluster.create({ ...secret, data } as never);
    } else env.cluster.create(object as never);
  }
}

/** Running with everything applied, then a disk growth that waits for power-off (sizeGiB: Offline), then deletion. */
async function drive(t: Test, env: Env, hypervisorVMs: () => number): Promise<void> {
  t.equal((env.vm()?.['spec'] as { powerState?: unknown }).powerState, true, 'the unquoted On arrived as YAML 1.1 reads it');
  await env.metacontroller.settle(() => env.isReady() && (env.status()['ips'] as string[] | undefined)?.length === 1, { maxSyncs: 600 });
  t.equal(env.status()['phase'], 'Running');
  t.same(env.status()['ips'], ['192.168.1.10']);
  t.match(env.status()['hardware'], {
    cpus: 4,
    memory: '4Gi',
    disks: [{ name: 'root', size: '30Gi' }],
    nics: [{ name: 'lan', mac: /^52:54:00:aa:bb:cc$/i, network: 'vmbr0', vlan: 100 }],
  });

  env.patchVM('web', { disks: [{ name: 'root', sizeGiB: 35, type: 'thin' }] });
  await env.metacontroller.settle(() => env.condition('Configured')?.reason === 'PowerCyclePending', { maxSyncs: 400 });
  t.match(env.condition('Configured')?.message, 'disk root 30Gi → 35Gi needs the VM powered off');
  env.patchVM('web', { powerState: false });
  await env.metacontroller.settle(() => env.isReady() && env.status()['powerState'] === 'Off' && JSON.stringify(env.status()['hardware']).includes('35Gi'), {
    maxSyncs: 600,
  });
  t.pass('grown while off');

  env.cluster.delete(API, 'VirtualMachine', 'default', 'web');
  await env.metacontroller.settle(() => env.vm() === undefined, { maxSyncs: 400 });
  t.equal(hypervisorVMs(), 0, 'deleted on the hypervisor');
}

t.test('on the simulator standing in for a proxmox Provider', async (t) => {
  const env = await lifecycle(t, {
    registry: (simulators: ProviderRegistry): DriverRegistry => ({
      driverFor: async (provider) => simulators.driverFor({ ...provider, type: 'simulator', mode: 'InProcess' }),
    }),
  });
  apply(env, 'https://pve.example.net:8006');
  await drive(t, env, () => env.world.listVMs().length);
});

t.test('on the Proxmox driver against the schema-validating fake PVE', async (t) => {
  const env = await proxmoxSystem(t);
  const { pve, ours } = env;
  apply(env, pve.url);
  await env.metacontroller.settle(() => env.isReady(), { maxSyncs: 600 });
  const [vm] = ours();
  t.match(vm?.config, { cores: 4, memory: 4096, ipconfig0: 'ip=192.168.1.10/24,gw=192.168.1.1', nameserver: '1.1.1.1 9.9.9.9', ciuser: 'ops' });
  t.match(String(vm?.config['net0']), /virtio=52:54:00:AA:BB:CC,bridge=vmbr0.*tag=100/i);
  t.same((vm?.tags ?? []).filter((tag) => !tag.startsWith('vr-') && tag !== 'virtrigaud').sort(), ['env.prod', 'web'], 'the spec\'s tags next to ours');
  await drive(t, env, () => ours().length);
  t.ok(pve.vm(9000), 'the template is untouched');
});
