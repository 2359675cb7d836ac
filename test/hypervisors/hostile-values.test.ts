// Hostile but valid values — free text the API allows (snapshot descriptions, user-data, template
// references, folder paths) full of shell, XML, form and JSON metacharacters — go through each
// driver's request builders to its real peer or schema-checking fake and come back as data: the
// same text, or a clean refusal, never an injected parameter, element or command.
import t from 'tap';
import type { Identity } from '../../src/contracts/driver.js';
import { proxmoxConfigFromEnv, ProxmoxDriver } from '../../src/hypervisors/proxmox/index.js';
import { vsphereDriverFromEnv } from '../../src/hypervisors/vsphere/index.js';
import { basicSpec, createFully } from '../conformance/driver-suite.js';
import { FakePve } from '../fakes/proxmox/index.js';
import { prepareTemplate, requireVcsim, startVcsim } from '../helpers/vcsim.js';

const HOSTILE = [
  `it's "quoted" & <b>bold</b> ]]> <!-- x -->`,
  '$(reboot) `id` ; rm -rf / | cat /etc/shadow && echo pwned',
  'a=1&b=2;c=3%0A%3Bd=4+5 %26 #frag',
  '{"__proto__": {"x": 1}} \\u0000 \\n',
  'Zeile mit Ümlaut, 漢字, emoji 🙂 and a tab\there',
];

const owner = (name: string): Identity => ({ uid: `4b0e0000-0000-4000-8000-${name.padEnd(12, '0').slice(0, 12)}`, namespace: 'hostile', name });

t.test('PVE: hostile snapshot descriptions round-trip through the form encoding; a hostile template name is only "not found"', async (t) => {
  const pve = await FakePve.start({ taskDurationMs: 10, bootMs: 20 });
  t.teardown(() => pve.close());
  const driver = new ProxmoxDriver(proxmoxConfigFromEnv({ PVE_ENDPOINT: pve.url, PVE_TOKEN_ID: 'virtrigaud@pve!vrtg', PVE_TOKEN_SECRET: 'secret-token' }));
  t.teardown(() => driver.close());
  const who = owner('pve');
  const target = {
    driver,
    spec: (name: string, identity: Identity) => basicSpec(name, identity),
    async waitUntil(done: () => Promise<boolean>, what: string) {
      for (let round = 0; round < 500; round++) {
        if (await done()) return;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      throw new Error(`${what} not reached`);
    },
    addForeignVM: async () => '',
    close: async () => {},
  };
  // PVE's own cloud-init fields carry the value (cipassword): form-encoded, never split.
  const vm = await createFully(target, basicSpec('hostile', who, { userData: `#cloud-config\npassword: ${JSON.stringify(HOSTILE[1])}\n` }));
  for (const [index, description] of HOSTILE.entries()) {
    if (description.includes('\u0000')) continue;
    const name = `s${index}`;
    const started = await driver.snapshotCreate({ id: vm.id, owner: who }, { name, description, memory: false, quiesce: false });
    await target.waitUntil(async () => started.task === undefined || (await driver.taskStatus(started.task)).state === 'succeeded', `snapshot ${name}`);
    const listed = (await driver.snapshotList({ id: vm.id, owner: who })).find((snapshot) => snapshot.name === name);
    t.equal(listed?.description?.trim(), description.trim(), `description ${index} comes back as written`);
  }
  for (const ref of HOSTILE) {
    await t.rejects(
      driver.create(basicSpec('other', owner('other'), { image: { kind: 'template', ref, fullClone: true } })),
      { code: 'InvalidSpec' },
      'a hostile template reference is a plain refusal',
    );
  }
  t.equal(pve.requests.filter((request) => request.status === 400).length, 0, 'no request the schema refused: every value was encoded as one parameter');
});

if (requireVcsim(t)) {
  t.test('vSphere: hostile snapshot descriptions and folder paths stay XML text', async (t) => {
    const vcsim = await startVcsim(t);
    await prepareTemplate(vcsim);
    const driver = vsphereDriverFromEnv(vcsim.env);
    t.teardown(() => driver.close());
    const who = owner('vsphere');
    const target = {
      driver,
      spec: (name: string, identity: Identity) => basicSpec(name, identity),
      async waitUntil(done: () => Promise<boolean>, what: string) {
        for (let round = 0; round < 100; round++) {
          if (await done()) return;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        throw new Error(`${what} not reached`);
      },
      addForeignVM: async () => '',
      close: async () => {},
    };
    const vm = await createFully(target, basicSpec('hostile', who, { userData: `#cloud-config\nwrite_files:\n  - content: "${HOSTILE[0]}"\n` }));
    for (const [index, description] of HOSTILE.entries()) {
      if (description.includes('\u0000')) continue;
      const name = `s${index}`;
      await driver.snapshotCreate({ id: vm.id, owner: who }, { name, description, memory: false, quiesce: false });
      await target.waitUntil(async () => (await driver.snapshotList({ id: vm.id, owner: who })).some((snapshot) => snapshot.name === name), `snapshot ${name}`);
      const listed = (await driver.snapshotList({ id: vm.id, owner: who })).find((snapshot) => snapshot.name === name);
      t.equal(listed?.description, description, `description ${index} comes back as written`);
    }
    for (const folder of HOSTILE.slice(0, 3)) {
      await t.rejects(
        driver.create(basicSpec('placed', owner('placed'), { placement: { folder } })),
        { code: 'InvalidSpec' },
        'a hostile folder path is a plain "not found"',
      );
    }
  });
}
