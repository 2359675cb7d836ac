import t, { type Test } from 'tap';
import { VsphereClient, sessionCookie, vsphereConfigFromEnv } from '../../../src/hypervisors/vsphere/index.js';
import { retrieve, propertySpec, objectSpec } from '../../../src/hypervisors/vsphere/property-collector.js';
import { moref } from '../../../src/hypervisors/vsphere/soap.js';
import { startFakeVim, type FakeVimAnswer, type FakeVimRequest } from '../../helpers/vcsim.js';

const CREDENTIALS = { VSPHERE_USERNAME: 'svc', VSPHERE_PASSWORD: 'pa<ss&word' };

async function client(t: Test, answer: (request: FakeVimRequest) => FakeVimAnswer | undefined) {
  const fake = await startFakeVim(t, answer);
  const created = new VsphereClient(vsphereConfigFromEnv({ VSPHERE_ENDPOINT: fake.url, ...CREDENTIALS }));
  t.teardown(() => created.close());
  return { client: created, requests: fake.requests };
}

const SERVICE_INSTANCE = { type: 'ServiceInstance', value: 'ServiceInstance' };
const CURRENT_TIME = '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><CurrentTimeResponse xmlns="urn:vim25"><returnval>2026-11-22T00:00:00Z</returnval></CurrentTimeResponse></soapenv:Body></soapenv:Envelope>';

t.test('Set-Cookie is read the way vcsim and vCenter send it', async (t) => {
  t.equal(sessionCookie('vmware_soap_session=abc-123; HttpOnly'), 'vmware_soap_session=abc-123');
  t.equal(sessionCookie(['other=1; Path=/', 'vmware_soap_session="5f3e"; Path=/; HttpOnly; Secure']), 'vmware_soap_session="5f3e"');
  t.equal(sessionCookie(undefined), undefined);
});

t.test('calls log in once, send the session cookie and the SOAPAction of the server API version', async (t) => {
  const { client: vim, requests } = await client(t, (request) => (request.method === 'CurrentTime' ? { body: CURRENT_TIME } : undefined));
  await vim.call('CurrentTime', [moref('_this', SERVICE_INSTANCE)]);
  await vim.call('CurrentTime', [moref('_this', SERVICE_INSTANCE)]);
  t.same(requests.map((request) => request.method), ['RetrieveServiceContent', 'Login', 'CurrentTime', 'CurrentTime']);
  t.equal(requests[0]?.soapAction, '"urn:vim25"', 'the first call, before the version is known');
  t.equal(requests[2]?.soapAction, '"urn:vim25/6.5"', 'apiVersion from the captured about');
  t.equal(requests[2]?.cookie, 'vmware_soap_session="fake-2"');
  t.equal(requests[2]?.userAgent, 'virtrigaud-vsphere');
  t.match(requests[1]?.body, '<password>pa&lt;ss&amp;word</password>', 'the password is escaped in the Login body');
  t.equal(vim.logins, 1);
});

t.test('a NotAuthenticated answer (session expired or removed) logs in again once and retries', async (t) => {
  let expired = true;
  const { client: vim, requests } = await client(t, (request) => {
    if (request.method !== 'CurrentTime') return undefined;
    if (expired && request.cookie === 'vmware_soap_session="fake-2"') {
      expired = false;
      return { status: 500, fixture: '45-Fault-AfterLogout.response.xml' };
    }
    return { body: CURRENT_TIME };
  });
  const answer = await vim.call('CurrentTime', [moref('_this', SERVICE_INSTANCE)]);
  t.equal(answer.name, 'CurrentTimeResponse');
  t.same(requests.map((request) => request.method), ['RetrieveServiceContent', 'Login', 'CurrentTime', 'Login', 'CurrentTime']);
  t.equal(requests[4]?.cookie, 'vmware_soap_session="fake-4"');
  t.equal(vim.logins, 2);
});

t.test('a property read answered "not authenticated" property by property logs in again once and retries', async (t) => {
  let expired = true;
  const { client: vim, requests } = await client(t, (request) => {
    if (request.method !== 'RetrievePropertiesEx') return undefined;
    if (expired) {
      expired = false;
      return { fixture: 'capture-RetrievePropertiesEx-AfterLogout.response.xml' };
    }
    return { fixture: '06-RetrievePropertiesEx-ListVMs.response.xml' };
  });
  const objects = await retrieve(vim, [propertySpec('VirtualMachine', ['name'])], [objectSpec({ type: 'Folder', value: 'group-d1' })]);
  t.ok(objects.length > 0 && objects.every((object) => object.missing.size === 0), 'the answer read with the new session');
  t.same(requests.map((request) => request.method), ['RetrieveServiceContent', 'Login', 'RetrievePropertiesEx', 'Login', 'RetrievePropertiesEx']);
  t.equal(vim.logins, 2);
});

t.test('a session refused again right after a fresh login is Unauthorized, not a loop', async (t) => {
  const { client: vim, requests } = await client(t, (request) =>
    request.method === 'CurrentTime' ? { status: 500, fixture: '02-Fault-NotAuthenticated.response.xml' } : undefined,
  );
  await t.rejects(vim.call('CurrentTime', [moref('_this', SERVICE_INSTANCE)]), { code: 'Unauthorized' });
  t.equal(requests.filter((request) => request.method === 'Login').length, 2);
});

t.test('a rejected login is Unauthorized and names the variables, not the password', async (t) => {
  const { client: vim } = await client(t, (request) => (request.method === 'Login' ? { status: 500, fixture: '03-Fault-InvalidLogin.response.xml' } : undefined));
  const error = await vim.call('CurrentTime', [moref('_this', SERVICE_INSTANCE)]).catch((caught: unknown) => caught);
  t.match(error, { code: 'Unauthorized', message: /VSPHERE_USERNAME and VSPHERE_PASSWORD/ });
  t.notMatch((error as Error).message, 'pa<ss');
});

t.test('RetrievePropertiesEx pages are followed with ContinueRetrievePropertiesEx and the token sent back escaped', async (t) => {
  const { client: vim, requests } = await client(t, (request) => {
    if (request.method === 'RetrievePropertiesEx') return { fixture: 'derived-RetrievePropertiesEx-page1.response.xml' };
    if (request.method === 'ContinueRetrievePropertiesEx') return { fixture: 'derived-ContinueRetrievePropertiesEx-page2.response.xml' };
    return undefined;
  });
  const objects = await retrieve(vim, [propertySpec('VirtualMachine', ['name'])], [objectSpec({ type: 'Folder', value: 'group-d1' })]);
  t.same(objects.map((object) => [object.ref.value, object.props.get('name')?.text]), [['vm-36', 'DC0_C0_RP0_VM0'], ['vm-39', 'DC0_C0_RP0_VM1']]);
  const continued = requests.find((request) => request.method === 'ContinueRetrievePropertiesEx');
  t.match(continued?.body, '<token>page-2&amp;more</token>');
  t.match(requests.find((request) => request.method === 'RetrievePropertiesEx')?.body, '<options><maxObjects>500</maxObjects></options>');
});

t.test('close logs out the session', async (t) => {
  const { client: vim, requests } = await client(t, (request) => (request.method === 'CurrentTime' ? { body: CURRENT_TIME } : undefined));
  await vim.call('CurrentTime', [moref('_this', SERVICE_INSTANCE)]);
  await vim.close();
  t.equal(requests.at(-1)?.method, 'Logout');
  t.equal(requests.at(-1)?.cookie, 'vmware_soap_session="fake-2"');
});

t.test('an answer that is not SOAP is Unreachable', async (t) => {
  const { client: vim } = await client(t, (request) => (request.method === 'CurrentTime' ? { status: 502, body: '<html>bad gateway</html>' } : undefined));
  await t.rejects(vim.call('CurrentTime', [moref('_this', SERVICE_INSTANCE)]), { code: 'Unreachable' });
});

t.test('a refused connection is Unreachable', async (t) => {
  const vim = new VsphereClient(vsphereConfigFromEnv({ VSPHERE_ENDPOINT: 'http://127.0.0.1:9', ...CREDENTIALS }));
  t.teardown(() => vim.close());
  await t.rejects(vim.call('CurrentTime', [moref('_this', SERVICE_INSTANCE)]), { code: 'Unreachable', message: /cannot reach 127\.0\.0\.1:9/ });
});
