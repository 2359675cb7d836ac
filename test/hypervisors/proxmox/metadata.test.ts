// cloud-init meta-data against the fake PVE (schema-checked): a `meta=` snippet next to the
// user-data, written where the snippets storage serves it, gone with the VM; refused without one.

import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { parse } from 'yaml';
import { basicSpec } from '../../conformance/driver-suite.js';
import { TEMPLATE, miniPve } from './mini-pve.js';
import { createVM, fakeCluster, owner, type FakeCluster } from './fake-pve.js';

function snippetsDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'pve-snippets-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** What the snippets storage would serve from `dir`: the fake cannot see our directory. */
function serve(cluster: FakeCluster, dir: string): void {
  for (const name of readdirSync(dir)) cluster.fake.addSnippet('local', name, readFileSync(join(dir, name), 'utf8'));
}

const META = 'local-hostname: web-1\nplacement:\n  region: eu-1\n';

t.test('meta-data goes into a snippet with the owner UID as instance-id, and cicustom names it', async (t) => {
  const dir = snippetsDir(t);
  const cluster = await fakeCluster(t);
  const driver = cluster.driver({}, { PVE_SNIPPETS_STORAGE: 'local', PVE_SNIPPETS_DIR: dir });
  const web = owner('b1');
  const id = await createVM(cluster, driver, basicSpec('web.example.com', web, { metaData: 'placement:\n  region: eu-1\n' }));

  const config = cluster.fake.vm(Number(id))?.config ?? {};
  t.equal(config['cicustom'], `meta=local:snippets/${web.uid}-meta.yaml`);
  t.equal(config['ciupgrade'], 0, 'the user section is still the one PVE generates');
  t.ok(String(config['ide2']).includes('cloudinit'), 'a cloud-init drive to carry it');
  t.same(parse(readFileSync(join(dir, `${web.uid}-meta.yaml`), 'utf8')), {
    'instance-id': web.uid,
    'local-hostname': 'web',
    placement: { region: 'eu-1' },
  }, "PVE's hostname (the name up to its first dot) unless the user sets one");

  serve(cluster, dir);
  await cluster.finish(driver, (await driver.power({ id, owner: web }, 'on')).task, 'start with the snippet');
  t.equal(cluster.fake.vm(Number(id))?.status, 'running');
});

t.test('meta-data and raw user-data share one cicustom, and both snippets go with the VM', async (t) => {
  const dir = snippetsDir(t);
  const cluster = await fakeCluster(t);
  const driver = cluster.driver({}, { PVE_SNIPPETS_STORAGE: 'local', PVE_SNIPPETS_DIR: dir });
  const web = owner('b2');
  const userData = '#cloud-config\npackages: [nginx]\n';
  const id = await createVM(cluster, driver, basicSpec('web', web, { userData, metaData: META }));

  const config = cluster.fake.vm(Number(id))?.config ?? {};
  t.equal(config['cicustom'], `user=local:snippets/${web.uid}-user.yaml,meta=local:snippets/${web.uid}-meta.yaml`);
  t.equal(config['ciupgrade'], undefined, 'PVE ignores the generated user keys with a custom user section: none sent');
  t.equal(readFileSync(join(dir, `${web.uid}-user.yaml`), 'utf8'), userData);
  t.same(parse(readFileSync(join(dir, `${web.uid}-meta.yaml`), 'utf8')), { 'instance-id': web.uid, 'local-hostname': 'web-1', placement: { region: 'eu-1' } });

  const gone = await driver.delete({ id, owner: web });
  await cluster.finish(driver, gone.task, 'destroy');
  t.same(readdirSync(dir), [], 'no snippet left behind');
});

t.test('without a snippets storage, meta-data is Unsupported naming the settings, before any call', async (t) => {
  const cluster = await fakeCluster(t);
  const driver = cluster.driver();
  await t.rejects(driver.create(basicSpec('web', owner('b3'), { metaData: META })), {
    code: 'Unsupported',
    message: /meta-data .*PVE_SNIPPETS_STORAGE and PVE_SNIPPETS_DIR/,
  });
  t.equal(cluster.calls().length, 0, 'PVE was not asked anything');
});

t.test('meta-data that sets instance-id or is no mapping is refused before anything is cloned, without quoting it', async (t) => {
  const dir = snippetsDir(t);
  const cluster = await fakeCluster(t);
  const driver = cluster.driver({}, { PVE_SNIPPETS_STORAGE: 'local', PVE_SNIPPETS_DIR: dir });
  await t.rejects(driver.create(basicSpec('web', owner('b4'), { metaData: 'instance-id: mine\n' })), { code: 'InvalidSpec', message: /instance-id/ });
  const error = await driver.create(basicSpec('web', owner('b4'), { metaData: '- s3cr3t-token\n' })).catch((caught: unknown) => caught);
  t.match(error, { code: 'InvalidSpec', message: /not a YAML mapping/ });
  t.notMatch(String((error as Error).message), /s3cr3t/);
  t.equal(cluster.calls().length, 0);
  t.same(readdirSync(dir), []);
});

t.test('a template whose cloud-init drive is not NoCloud refuses meta-data before it is cloned', async (t) => {
  const dir = snippetsDir(t);
  const windows = { ...TEMPLATE, config: { ...TEMPLATE.config, ostype: 'win11' } };
  const { driver, stub } = await miniPve(t, [windows], { env: { PVE_SNIPPETS_STORAGE: 'local', PVE_SNIPPETS_DIR: dir } });
  await t.rejects(driver.create(basicSpec('web', owner('b5'), { metaData: META })), { code: 'InvalidSpec', message: /NoCloud.*'configdrive2'/ });
  t.equal(stub.calls('POST', /clone$/).length, 0);
});
