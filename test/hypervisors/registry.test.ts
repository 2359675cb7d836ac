import t from 'tap';
import { UnsupportedError } from '../../src/contracts/driver.js';
import { ProviderRegistry } from '../../src/hypervisors/registry.js';
import { exampleBody } from '../helpers/bodies.js';
import { buildServer } from '../../src/hooks/server.js';

const simulator = (endpoint?: string) => ({
  namespace: 'default',
  name: 'sim',
  type: 'simulator' as const,
  mode: 'InProcess' as const,
  ...(endpoint === undefined ? {} : { endpoint }),
});

t.test('with the embedded simulator off, a simulator Provider is refused with the reason', async (t) => {
  const registry = ProviderRegistry.withSimulators({ enabled: false });
  await t.rejects(registry.driverFor(simulator()), new UnsupportedError('the embedded simulator is off in this hook server (EMBEDDED_SIMULATOR=false); use a Provider of a real hypervisor'));
  const app = buildServer({ registry, logger: false });
  t.teardown(() => app.close());
  const response = await app.inject({ method: 'POST', url: '/hooks/provider/sync', payload: exampleBody('provider-sync') });
  t.equal(response.statusCode, 200);
  t.match(response.json(), { status: { conditions: [{ type: 'Ready', status: 'False', reason: 'ProviderUnavailable', message: /embedded simulator is off/ }] } });
});

t.test('with the embedded simulator on, the number of worlds is bounded', async (t) => {
  const registry = ProviderRegistry.withSimulators({ enabled: true, maxWorlds: 3 });
  const drivers = await Promise.all(['simulator://a', 'simulator://b', 'simulator://c'].map((endpoint) => registry.driverFor(simulator(endpoint))));
  t.equal(new Set(drivers).size, 3);
  t.equal(await registry.driverFor(simulator('simulator://a')), drivers[0], 'a known endpoint is served from its world');
  await t.rejects(registry.driverFor(simulator('simulator://d')), { code: 'Unsupported', message: /already serves 3 endpoints, its limit/ });
});
