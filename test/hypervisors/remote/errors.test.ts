import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import {
  BusyError,
  ConflictError,
  InvalidSpecError,
  NotFoundError,
  UnauthorizedError,
  UnreachableError,
  UnsupportedError,
  type CallOptions,
  type DriverError,
  type ObservedVM,
} from '../../../src/contracts/driver.js';
import { RemoteDriver } from '../../../src/hypervisors/remote/index.js';
import { SimulatedHypervisor, SimulatorDriver } from '../../../src/hypervisors/simulator/index.js';
import { TOKEN, remoteSetup, simulatorSpec } from './helpers.js';

const owner = { uid: '0a1b2c3d-0000-4000-8000-000000000002', namespace: 'default', name: 'db' };

/** A simulator whose describe throws whatever the test sets. */
class RefusingDriver extends SimulatorDriver {
  refusal: Error | undefined;

  override describe(id: string, options?: CallOptions): Promise<ObservedVM> {
    if (this.refusal) return Promise.reject(this.refusal);
    return super.describe(id, options);
  }
}

t.test('every typed error comes back as the same class with the same message', async (t) => {
  let refusing: RefusingDriver | undefined;
  const { driver } = await remoteSetup(t, { driver: (hypervisor) => (refusing = new RefusingDriver(hypervisor)) });
  const classes: (new (message: string) => DriverError)[] = [
    NotFoundError,
    BusyError,
    ConflictError,
    InvalidSpecError,
    UnauthorizedError,
    UnsupportedError,
    UnreachableError,
  ];
  for (const ErrorClass of classes) {
    const sent = new ErrorClass(`the hypervisor says ${ErrorClass.name}`);
    refusing!.refusal = sent;
    const error = await driver.describe('100').catch((caught: unknown) => caught);
    t.ok(error instanceof ErrorClass, `${ErrorClass.name} stays ${ErrorClass.name}`);
    t.match(error, { code: sent.code, message: sent.message, retryable: sent.retryable, name: ErrorClass.name });
  }
});

t.test('errors from the simulated hypervisor round-trip with their messages', async (t) => {
  const { driver, hypervisor } = await remoteSetup(t);
  await t.rejects(driver.describe('987654'), new NotFoundError('VM 987654 not found'));
  hypervisor.injectFault('inventory', { kind: 'busy', message: "can't lock file '/var/lock/qemu-server/lock-100.conf'" });
  await t.rejects(driver.inventory(), new BusyError("can't lock file '/var/lock/qemu-server/lock-100.conf'"));
  const foreign = hypervisor.addForeignVM({ name: 'not-ours' });
  await t.rejects(driver.delete({ id: foreign, owner }), { code: 'Conflict' });
  hypervisor.injectFault('create', { kind: 'unauthorized', message: 'permission check failed' });
  await t.rejects(driver.create(simulatorSpec('db', owner)), new UnauthorizedError('permission check failed'));
});

t.test('a driver failure that is not a typed error is a 500 whose detail only the log sees', async (t) => {
  let refusing: RefusingDriver | undefined;
  const { driver, logs } = await remoteSetup(t, { driver: (hypervisor) => (refusing = new RefusingDriver(hypervisor)) });
  refusing!.refusal = new TypeError('cannot read properties of undefined (reading "secretThing")');
  const error = await driver.describe('100').catch((caught: unknown) => caught);
  t.ok(error instanceof UnreachableError);
  t.match(error, { message: /failed describe \(500\): internal error$/ });
  t.match(logs.join(''), 'secretThing');
});

t.test('a malformed body is a 400 with one plain line and the driver is not called', async (t) => {
  const { app, hypervisor } = await remoteSetup(t);
  const headers = { authorization: `Bearer ${TOKEN}` };
  const cases = [
    { url: '/v1/describe', payload: { id: 5 }, why: /^invalid body: id must be string$/ },
    { url: '/v1/describe', payload: { id: '100', extra: true }, why: /^invalid body: extra is not a known field$/ },
    { url: '/v1/power', payload: { ref: { id: '100', owner }, operation: 'explode' }, why: /^invalid body: operation must be one of "on", "off", "shutdown", "reboot", "suspend", "reset"$/ },
    { url: '/v1/create', payload: { spec: { ...simulatorSpec('db', owner), cpu: 2 } }, why: /^invalid body: spec.cpu is not a known field$/ },
  ];
  for (const { url, payload, why } of cases) {
    const response = await app.inject({ method: 'POST', url, headers, payload });
    t.equal(response.statusCode, 400, url);
    t.match(response.body, why);
    t.notMatch(response.body, '\n');
  }
  const notJson = await app.inject({ method: 'POST', url: '/v1/describe', headers: { ...headers, 'content-type': 'application/json' }, payload: '{"id": ' });
  t.equal(notJson.statusCode, 400);
  t.equal(hypervisor.callCount('describe') + hypervisor.callCount('power') + hypervisor.callCount('create'), 0);
});

t.test('a request the runtime refuses as malformed is an InvalidSpecError', async (t) => {
  const { driver, hypervisor } = await remoteSetup(t);
  await t.rejects(driver.reconfigure({ id: '100', owner }, { cpus: 1.5 }), {
    code: 'InvalidSpec',
    message: /refused reconfigure: invalid body: .*cpus must be integer/,
  });
  t.equal(hypervisor.callCount('reconfigure'), 0);
});

const SIMULATOR_CAPABILITIES = new SimulatedHypervisor().capabilities;

/** A runtime that answers whatever the test says; its capabilities fit the contract unless told otherwise. */
async function rogueRuntime(
  t: Test,
  answer: (request: IncomingMessage, response: ServerResponse) => void,
  capabilities: () => unknown = () => ({ type: 'simulator', capabilities: SIMULATOR_CAPABILITIES }),
): Promise<string> {
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      if (request.url === '/v1/capabilities') json(response, 200, capabilities());
      else answer(request, response);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const json = (response: ServerResponse, status: number, body: unknown) =>
  response.writeHead(status, { 'content-type': 'application/json' }).end(typeof body === 'string' ? body : JSON.stringify(body));

t.test('an answer outside the contract is refused by RemoteDriver', async (t) => {
  const url = await rogueRuntime(t, (request, response) => {
    if (request.url === '/v1/describe') json(response, 200, { id: '100', name: 'db', powerState: 'Sideways' });
    else if (request.url === '/v1/taskStatus') json(response, 200, { state: 'succeeded', progress: 100, surprise: 1 });
    else if (request.url === '/v1/inventory') json(response, 200, 'not json at all');
    else json(response, 409, { error: { code: 'Exploded', message: 'boom' } });
  });
  const driver = await RemoteDriver.connect(url, TOKEN);
  t.teardown(() => driver.close());
  await t.rejects(driver.describe('100'), { code: 'Unreachable', message: /^provider runtime answered outside the contract: \/\S+ / });
  await t.rejects(driver.taskStatus('upid'), { code: 'Unreachable', message: /^provider runtime answered outside the contract: \/surprise / });
  await t.rejects(driver.inventory(), { code: 'Unreachable', message: 'provider runtime answered outside the contract: / not JSON' });
  await t.rejects(driver.snapshotList({ id: '100', owner }), { code: 'Unreachable', message: /^provider runtime answered outside the contract: \/error\/code / });
});

t.test('capabilities outside the contract make connect fail', async (t) => {
  const url = await rogueRuntime(t, () => {}, () => ({ type: 'simulator', capabilities: { cloudInit: true } }));
  await t.rejects(RemoteDriver.connect(url, TOKEN), { code: 'Unreachable', message: /^provider runtime answered outside the contract: \/capabilities\// });
});

/** A simulator whose describe never answers and notes when its caller's signal gives up. */
class HangingDriver extends SimulatorDriver {
  aborted = false;

  override describe(_id: string, options?: CallOptions): Promise<ObservedVM> {
    return new Promise((_resolve, reject) => {
      options?.signal?.addEventListener('abort', () => {
        this.aborted = true;
        reject(new UnreachableError('describe aborted'));
      });
    });
  }
}

t.test('an aborted signal gives UnreachableError and stops the call in the runtime', async (t) => {
  let hanging: HangingDriver | undefined;
  const { driver } = await remoteSetup(t, { driver: (hypervisor) => (hanging = new HangingDriver(hypervisor)) });
  const controller = new AbortController();
  const call = driver.describe('100', { signal: controller.signal });
  setTimeout(() => controller.abort(), 50);
  await t.rejects(call, { code: 'Unreachable', message: /aborted/ });
  for (let wait = 0; wait < 100 && !hanging!.aborted; wait++) await new Promise((resolve) => setTimeout(resolve, 10));
  t.ok(hanging!.aborted, "the runtime aborted the driver call when the caller hung up");
});

t.test('an already aborted signal sends nothing', async (t) => {
  const { driver, hypervisor } = await remoteSetup(t);
  await t.rejects(driver.describe('100', { signal: AbortSignal.abort() }), { code: 'Unreachable', message: /aborted before it was sent/ });
  t.equal(hypervisor.callCount('describe'), 0);
});

t.test('a dead runtime gives UnreachableError', async (t) => {
  const { driver, close } = await remoteSetup(t);
  await close();
  await t.rejects(driver.probe(), { code: 'Unreachable', message: /^provider runtime 127\.0\.0\.1:\d+ unreachable: / });
});

t.test('connecting to a port nobody listens on gives UnreachableError', async (t) => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await t.rejects(RemoteDriver.connect(`http://127.0.0.1:${port}`, TOKEN), { code: 'Unreachable', message: /ECONNREFUSED/ });
});

t.test('an invalid runtime URL is an InvalidSpecError', async (t) => {
  await t.rejects(RemoteDriver.connect('not a url', TOKEN), { code: 'InvalidSpec' });
  await t.rejects(RemoteDriver.connect('ftp://runtime:21', TOKEN), { code: 'InvalidSpec' });
});

t.test('probe refreshes the capabilities', async (t) => {
  let snapshots = false;
  const url = await rogueRuntime(
    t,
    (_request, response) => json(response, 200, { version: '8.2.4' }),
    () => ({ type: 'proxmox', capabilities: { ...SIMULATOR_CAPABILITIES, snapshots } }),
  );
  const driver = await RemoteDriver.connect(url, TOKEN);
  t.teardown(() => driver.close());
  t.equal(driver.type, 'proxmox');
  t.equal(driver.capabilities.snapshots, false);
  snapshots = true;
  t.same(await driver.probe(), { version: '8.2.4' });
  t.equal(driver.capabilities.snapshots, true);
});
