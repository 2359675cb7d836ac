// What a create writes into the VM's configuration beyond its hardware, read back from vcsim:
// the user's extraConfig, cloud-init meta-data and Ignition guestinfo, CPU and memory allocation,
// on each way a VM is made (full clone, linked clone, copy of an owned VM); and what is refused
// before anything is cloned. The request itself is checked for the WSDL's element order, which
// vcsim's decoder does not hold us to but vCenter's does.
import t, { type Test } from 'tap';
import { parse } from 'yaml';
import type { CreateSpec, Identity, ObservedVM } from '../../../src/contracts/driver.js';
import { GiB, MiB } from '../../../src/contracts/quantity.js';
import { vsphereDriverFromEnv, type VsphereDriver } from '../../../src/hypervisors/vsphere/index.js';
import { extraConfigMap } from '../../../src/hypervisors/vsphere/identity.js';
import { retrieveOne } from '../../../src/hypervisors/vsphere/property-collector.js';
import { vmRef } from '../../../src/hypervisors/vsphere/vm.js';
import { child, childrenNamed, intAt, parseXml, textAt } from '../../../src/hypervisors/vsphere/xml.js';
import { basicSpec, createFully } from '../../conformance/driver-suite.js';
import { prepareTemplate, requireVcsim, startSoapProxy, startVcsim, vmsOwnedBy } from '../../helpers/vcsim.js';

t.setTimeout(180_000);

const owner = (name: string): Identity => ({ uid: `c0f10000-0000-4000-8000-${name.padEnd(12, '0').slice(0, 12)}`, namespace: 'config', name });

const IGNITION = '{"ignition":{"version":"3.4.0"},"passwd":{"users":[{"name":"core","passwordHash":"NOT-SHOWN-HASH"}]}}';

/** Every field of issue 22 that vSphere sets at creation. */
function fullSpec(name: string, overrides: Partial<CreateSpec> = {}): CreateSpec {
  return basicSpec(name, owner(name), {
    userData: '#cloud-config\npassword: not-shown-anywhere\n',
    metaData: 'local-hostname: from-user\npublic-keys:\n  - ssh-ed25519 AAAA-not-shown\n',
    extraConfig: { 'disk.EnableUUID': 'TRUE', 'guestinfo.app.role': 'frontend' },
    limits: { cpuLimitMHz: 4000, cpuReservationMHz: 1500, cpuShares: 3000, memoryLimitBytes: 3 * GiB, memoryReservationBytes: 512 * MiB },
    ...overrides,
  });
}

async function setup(t: Test) {
  const vcsim = await startVcsim(t);
  await prepareTemplate(vcsim);
  const proxy = await startSoapProxy(t, vcsim.url);
  const driver = vsphereDriverFromEnv({ ...vcsim.env, VSPHERE_ENDPOINT: proxy.url });
  t.teardown(() => driver.close());
  const target = {
    driver,
    spec: (name: string, who: Identity) => basicSpec(name, who),
    async waitUntil(done: () => Promise<boolean>, what: string) {
      for (let round = 0; round < 50; round++) if (await done()) return;
      throw new Error(`${what} not reached`);
    },
    addForeignVM: async () => '',
    close: async () => {},
  };
  return { vcsim, proxy, driver, create: (spec: CreateSpec): Promise<ObservedVM> => createFully(target, spec) };
}

interface Allocation {
  reservation: number | undefined;
  limit: number | undefined;
  shares: number | undefined;
  level: string | undefined;
}

/** The VM's configuration as vcsim holds it, read through the driver's SOAP client. */
async function configOf(driver: VsphereDriver, id: string) {
  const vm = await retrieveOne(driver.client, vmRef(id), ['config.extraConfig', 'config.cpuAllocation', 'config.memoryAllocation']);
  const allocation = (path: string): Allocation => {
    const value = vm.props.get(path);
    return { reservation: intAt(value, 'reservation'), limit: intAt(value, 'limit'), shares: intAt(value, 'shares', 'shares'), level: textAt(value, 'shares', 'level') };
  };
  const extraConfig = extraConfigMap(vm.props.get('config.extraConfig'));
  const decoded = (key: string) => {
    const value = extraConfig.get(key);
    return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
  };
  return { extraConfig, decoded, cpu: allocation('config.cpuAllocation'), memory: allocation('config.memoryAllocation') };
}

/** The configuration step's ConfigSpec, as the driver sent it. */
function configSpecsSent(requests: string[]) {
  return requests.filter((body) => body.includes('<ReconfigVM_Task')).map((body) => child(child(child(parseXml(body), 'Body'), 'ReconfigVM_Task'), 'spec'));
}

// vim.vm.ConfigSpec's sequence (vim25 WSDL, govmomi types.go) for the elements the driver sends.
const CONFIG_SPEC_ORDER = ['name', 'numCPUs', 'memoryMB', 'memoryHotAddEnabled', 'cpuHotAddEnabled', 'deviceChange', 'cpuAllocation', 'memoryAllocation', 'extraConfig', 'bootOptions', 'firmware', 'nestedHVEnabled'];

async function assertFullConfig(t: Test, driver: VsphereDriver, vm: ObservedVM, spec: CreateSpec) {
  const config = await configOf(driver, vm.id);
  t.equal(config.extraConfig.get('disk.EnableUUID'), 'TRUE', "the user's extraConfig is on the VM");
  t.equal(config.extraConfig.get('guestinfo.app.role'), 'frontend');
  t.equal(config.extraConfig.get('virtrigaud.owner.uid'), spec.owner.uid, 'the identity is still the driver’s');
  t.equal(config.extraConfig.get('virtrigaud.state'), 'ready');
  t.equal(config.decoded('guestinfo.userdata'), spec.userData);
  t.same(
    parse(config.decoded('guestinfo.metadata') ?? ''),
    { 'instance-id': spec.owner.uid, 'local-hostname': 'from-user', 'public-keys': ['ssh-ed25519 AAAA-not-shown'] },
    "the user's meta-data over the driver's; instance-id is the owner's UID",
  );
  t.equal(config.extraConfig.get('guestinfo.metadata.encoding'), 'base64');
  t.same(config.cpu, { reservation: 1500, limit: 4000, shares: 3000, level: 'custom' }, 'cpuAllocation in MHz, custom shares');
  t.match(config.memory, { reservation: 512, limit: 3072 }, 'memoryAllocation in MB');
}

function assertOrderedAndQuiet(t: Test, requests: string[]) {
  const specs = configSpecsSent(requests);
  const configuration = specs.find((spec) => child(spec, 'cpuAllocation') !== undefined);
  t.ok(configuration, 'the configuration step sent the allocation');
  const names = (configuration?.children ?? []).map((element) => element.name);
  const known = names.filter((name) => CONFIG_SPEC_ORDER.includes(name));
  t.same(known, names, `only elements whose order the test knows (${names.join(', ')})`);
  t.same(
    known.map((name) => CONFIG_SPEC_ORDER.indexOf(name)),
    known.map((name) => CONFIG_SPEC_ORDER.indexOf(name)).sort((a, b) => a - b),
    'ConfigSpec elements in WSDL order',
  );
  t.same(
    (child(configuration, 'cpuAllocation')?.children ?? []).map((element) => element.name),
    ['reservation', 'limit', 'shares'],
    'ResourceAllocationInfo in WSDL order',
  );
  t.same(childrenNamed(child(configuration, 'cpuAllocation'), 'shares')[0]?.children.map((element) => element.name), ['shares', 'level']);
}

if (requireVcsim(t)) {
  t.test('a full clone carries extraConfig, merged meta-data, limits, reservations and shares', async (t) => {
    const { driver, proxy, create } = await setup(t);
    const spec = fullSpec('full');
    const vm = await create(spec);
    await assertFullConfig(t, driver, vm, spec);
    assertOrderedAndQuiet(t, proxy.requests);
  });

  t.test('a linked clone carries them too', async (t) => {
    const { driver, create } = await setup(t);
    const spec = fullSpec('linked', { image: { kind: 'template', ref: 'ubuntu-22-template', fullClone: false } });
    const vm = await create(spec);
    await assertFullConfig(t, driver, vm, spec);
  });

  t.test("a copy of an owned VM gets its new owner's fields when its create continues it", async (t) => {
    const { driver, create } = await setup(t);
    const source = await create(fullSpec('source', { extraConfig: { 'source.only': 'yes' }, limits: { cpuShares: 500 } }));
    const target = fullSpec('copy');
    const started = await driver.clone({ id: source.id, owner: owner('source') }, { name: 'copy', owner: target.owner, linked: false });
    t.not(started.id, '', 'vcsim ends clones within the call');
    const vm = await create(target);
    t.equal(vm.id, started.id, "the target's create continued the copy");
    await assertFullConfig(t, driver, vm, target);
  });

  t.test('an Ignition config is written base64 for Fedora CoreOS and RHCOS, without cloud-init keys', async (t) => {
    const { driver, create } = await setup(t);
    const vm = await create(basicSpec('coreos', owner('coreos'), { ignition: IGNITION }));
    const config = await configOf(driver, vm.id);
    t.equal(config.decoded('guestinfo.ignition.config.data'), IGNITION);
    t.equal(config.extraConfig.get('guestinfo.ignition.config.data.encoding'), 'base64');
    t.notOk(config.extraConfig.has('guestinfo.userdata'), 'no cloud-init user-data');
    t.notOk(config.extraConfig.has('guestinfo.metadata'), 'no cloud-init meta-data');
  });

  t.test("static addresses reach cloud-init as network config v2 in guestinfo.metadata, each NIC matched by the MAC vSphere gave it", async (t) => {
    const { driver, proxy, create } = await setup(t);
    const spec = basicSpec('static', owner('static'), {
      metaData: 'local-hostname: from-user\n',
      nics: [
        { name: 'lan', staticIP: { address: '192.0.2.10/24', gateway: '192.0.2.1', dns: ['192.0.2.53', '2001:db8::53'] } },
        // Added by the configuration step: its MAC is vSphere's to generate, so it is made first.
        { name: 'backend', network: 'VM Network', staticIP: { address: '2001:db8:1::10/64', gateway: '2001:db8:1::1' } },
        { name: 'dhcp', network: 'VM Network' },
      ],
    });
    const vm = await create(spec);
    t.equal(configSpecsSent(proxy.requests).length, 2, 'the NICs, then the rest with their MACs');
    const config = await configOf(driver, vm.id);
    const metadata = parse(config.decoded('guestinfo.metadata') ?? '') as Record<string, string>;
    t.match(metadata, { 'instance-id': spec.owner.uid, 'local-hostname': 'from-user', 'network.encoding': 'base64' }, "the user's meta-data is laid over the driver's");
    const [lan, backend, dhcp] = vm.nics.map((nic) => nic.mac);
    t.ok(lan !== undefined && backend !== undefined && dhcp !== undefined && new Set([lan, backend, dhcp]).size === 3, 'three NICs, three MACs');
    t.same(parse(Buffer.from(metadata['network'] ?? '', 'base64').toString('utf8')), {
      version: 2,
      ethernets: {
        nic0: { match: { macaddress: lan }, addresses: ['192.0.2.10/24'], routes: [{ to: '0.0.0.0/0', via: '192.0.2.1' }], nameservers: { addresses: ['192.0.2.53', '2001:db8::53'] } },
        nic1: { match: { macaddress: backend }, addresses: ['2001:db8:1::10/64'], routes: [{ to: '::/0', via: '2001:db8:1::1' }] },
        nic2: { match: { macaddress: dhcp }, dhcp4: true },
      },
    });
  });

  t.test('a VM without any of these fields gets no allocation of ours and only its own extraConfig', async (t) => {
    const { driver, proxy, create } = await setup(t);
    const vm = await create(basicSpec('plain', owner('plain')));
    const sent = configSpecsSent(proxy.requests);
    t.ok(sent.length > 0);
    t.ok(sent.every((spec) => child(spec, 'cpuAllocation') === undefined && child(spec, 'memoryAllocation') === undefined), 'no allocation sent');
    const config = await configOf(driver, vm.id);
    t.notOk([...config.extraConfig.keys()].some((key) => key.startsWith('guestinfo.')), 'no guestinfo');
  });

  t.test('extraConfig the driver owns, bad limits and bad guest data are InvalidSpec before anything is cloned, and never quoted', async (t) => {
    const { vcsim, proxy, driver } = await setup(t);
    const refused: [string, Partial<CreateSpec>, RegExp][] = [
      ['user-data key', { extraConfig: { 'GuestInfo.UserData': 'SECRET-VALUE' } }, /extraConfig key 'GuestInfo.UserData' is written by the driver/],
      ['meta-data key', { extraConfig: { 'guestinfo.metadata.encoding': 'SECRET-VALUE' } }, /'guestinfo.metadata.encoding'/],
      ['vendor-data key', { extraConfig: { 'guestinfo.vendordata': 'SECRET-VALUE' } }, /'guestinfo.vendordata'/],
      ['Ignition key', { extraConfig: { 'guestinfo.ignition.config.data': 'SECRET-VALUE' } }, /'guestinfo.ignition.config.data'/],
      ['identity key', { extraConfig: { 'virtrigaud.owner.uid': 'SECRET-VALUE' } }, /'virtrigaud.owner.uid'/],
      ['state key', { extraConfig: { 'VIRTRIGAUD.STATE': 'SECRET-VALUE' } }, /'VIRTRIGAUD.STATE'/],
      ['reservation above limit', { limits: { cpuLimitMHz: 1000, cpuReservationMHz: 2000 } }, /CPU reservation/],
      ['meta-data with instance-id', { userData: '#cloud-config\n', metaData: 'instance-id: SECRET-VALUE\n' }, /meta-data sets instance-id/],
      ['Ignition without a version', { ignition: '{"passwd":"SECRET-VALUE"}' }, /Ignition config has no ignition.version/],
      ['static address without a prefix', { nics: [{ name: 'lan', staticIP: { address: '192.0.2.10' } }] }, /needs a prefix length, for example 192.0.2.10\/24/],
      ['gateway of the other family', { nics: [{ name: 'lan', staticIP: { address: '192.0.2.10/24', gateway: '2001:db8::1' } }] }, /gateway '2001:db8::1' is not an IPv4 address/],
      ['network in meta-data and static addresses', { metaData: 'network: SECRET-VALUE\n', nics: [{ name: 'lan', staticIP: { address: '192.0.2.10/24' } }] }, /meta-data sets 'network'/],
    ];
    for (const [what, overrides, message] of refused) {
      const spec = basicSpec('refused', owner(`refused-${refused.findIndex(([name]) => name === what)}`), overrides);
      let error: unknown;
      await t.rejects(
        driver.create(spec).catch((thrown: unknown) => {
          error = thrown;
          throw thrown;
        }),
        { code: 'InvalidSpec', message },
        what,
      );
      t.notMatch(String((error as Error | undefined)?.message), /SECRET/, `${what}: the value is never in the message`);
      t.same(await vmsOwnedBy(vcsim, spec.owner.uid), [], `${what}: no VM`);
    }
    t.notOk(
      proxy.requests.some((body) => body.includes('<CloneVM_Task') || body.includes('<ReconfigVM_Task')),
      'nothing was cloned or reconfigured',
    );
  });
}
