// What the configuration step writes into extraConfig for the guest and the user (guestinfo.ts):
// cloud-init and Ignition guestinfo, the user's entries, and the keys the driver keeps for itself.
import t from 'tap';
import { parse } from 'yaml';
import type { CreateSpec } from '../../../src/contracts/driver.js';
import { guestDataEntries, userExtraConfigEntries } from '../../../src/hypervisors/vsphere/guestinfo.js';
import { KEY } from '../../../src/hypervisors/vsphere/identity.js';
import { basicSpec } from '../../conformance/driver-suite.js';

const owner = { uid: '9e5f0000-0000-4000-8000-000000000001', namespace: 'ns', name: 'guest' };
const spec = (overrides: Partial<CreateSpec>) => basicSpec('web', owner, overrides);
const decoded = (entries: [string, string][], key: string) => {
  const value = new Map(entries).get(key);
  return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
};
const IGNITION = '{"ignition":{"version":"3.4.0"},"passwd":{"users":[{"name":"core","passwordHash":"SECRET-HASH"}]}}';

t.test('user-data goes to guestinfo.userdata with the driver’s meta-data, both base64', async (t) => {
  const entries = guestDataEntries(spec({ userData: '#cloud-config\n' }));
  t.same(entries.map(([key]) => key), ['guestinfo.userdata', 'guestinfo.userdata.encoding', 'guestinfo.metadata', 'guestinfo.metadata.encoding']);
  t.equal(decoded(entries, 'guestinfo.userdata'), '#cloud-config\n');
  t.same(parse(decoded(entries, 'guestinfo.metadata') ?? ''), { 'instance-id': owner.uid, 'local-hostname': 'web' });
  t.equal(new Map(entries).get('guestinfo.metadata.encoding'), 'base64');
});

t.test("the user's meta-data is laid over the driver's, key by key", async (t) => {
  const entries = guestDataEntries(spec({ userData: '#cloud-config\n', metaData: 'local-hostname: custom\nnetwork:\n  version: 2\n' }));
  t.same(parse(decoded(entries, 'guestinfo.metadata') ?? ''), { 'instance-id': owner.uid, 'local-hostname': 'custom', network: { version: 2 } });
});

t.test('meta-data without user-data is still written, without any user-data key', async (t) => {
  const entries = guestDataEntries(spec({ metaData: 'public-keys: [ssh-ed25519 AAAA]\n' }));
  t.same(entries.map(([key]) => key), ['guestinfo.metadata', 'guestinfo.metadata.encoding']);
  t.match(parse(decoded(entries, 'guestinfo.metadata') ?? ''), { 'instance-id': owner.uid, 'public-keys': ['ssh-ed25519 AAAA'] });
});

t.test('meta-data that sets instance-id or is no mapping is refused without quoting it', async (t) => {
  for (const metaData of ['instance-id: SECRET-ID\n', '- SECRET-LIST\n', '{SECRET: [']) {
    t.throws(() => guestDataEntries(spec({ metaData })), { code: 'InvalidSpec', message: /^cloud-init meta-data / }, metaData);
    try {
      guestDataEntries(spec({ metaData }));
    } catch (error) {
      t.notMatch((error as Error).message, /SECRET/, 'the document is never quoted');
    }
  }
});

t.test('an Ignition config goes to guestinfo.ignition.config.data, base64, and no cloud-init key is written', async (t) => {
  const entries = guestDataEntries(spec({ ignition: IGNITION }));
  t.same(entries.map(([key]) => key), ['guestinfo.ignition.config.data', 'guestinfo.ignition.config.data.encoding']);
  t.equal(decoded(entries, 'guestinfo.ignition.config.data'), IGNITION);
  t.equal(new Map(entries).get('guestinfo.ignition.config.data.encoding'), 'base64');
});

t.test('an Ignition config Ignition could not read is refused without quoting it', async (t) => {
  for (const ignition of ['variant: fcos # SECRET', '{"passwd":"SECRET"}']) {
    t.throws(() => guestDataEntries(spec({ ignition })), { code: 'InvalidSpec', message: /^the Ignition config / });
    try {
      guestDataEntries(spec({ ignition }));
    } catch (error) {
      t.notMatch((error as Error).message, /SECRET/);
    }
  }
});

t.test("the user's extraConfig passes through as written", async (t) => {
  const extraConfig = { 'disk.EnableUUID': 'TRUE', 'guestinfo.my-app.role': 'web', 'scsi0:0.ctkEnabled': 'FALSE' };
  t.same(userExtraConfigEntries(spec({ extraConfig })), Object.entries(extraConfig));
  t.same(userExtraConfigEntries(spec({})), []);
});

t.test('keys the driver writes are refused in any case, naming the key and never the value', async (t) => {
  const owned = [
    'guestinfo.userdata',
    'GuestInfo.UserData.Encoding',
    'guestinfo.metadata',
    'guestinfo.metadata.encoding',
    'guestinfo.vendordata',
    'guestinfo.ignition.config.data',
    'GUESTINFO.IGNITION.CONFIG.DATA.ENCODING',
    ...Object.values(KEY),
    'VirtRigaud.State',
    'virtrigaud.anything-new',
  ];
  for (const key of owned) {
    let message = '';
    t.throws(
      () => {
        try {
          userExtraConfigEntries(spec({ extraConfig: { 'disk.EnableUUID': 'TRUE', [key]: 'SECRET-VALUE' } }));
        } catch (error) {
          message = (error as Error).message;
          throw error;
        }
      },
      { code: 'InvalidSpec' },
      key,
    );
    t.ok(message.includes(`'${key}'`), `names ${key}`);
    t.notMatch(message, /SECRET/, 'never the value');
  }
});

t.test('keys that are no vSphere option name, or the same key twice in different case, are refused', async (t) => {
  for (const key of ['', 'has space', 'a=b', 'quote"d', 'new\nline', `${'k'.repeat(257)}`]) {
    t.throws(() => userExtraConfigEntries(spec({ extraConfig: { [key]: 'v' } })), { code: 'InvalidSpec', message: /not a vSphere option name/ }, JSON.stringify(key));
  }
  t.throws(() => userExtraConfigEntries(spec({ extraConfig: { 'disk.EnableUUID': 'TRUE', 'disk.enableuuid': 'FALSE' } })), {
    code: 'InvalidSpec',
    message: /'disk.EnableUUID' and 'disk.enableuuid' are the same key/,
  });
});
