// The worst interleaving of racing syncs, made deterministic: every read before any create.
import type { Driver, DriverRegistry } from '../../src/contracts/driver.js';

/**
 * Holds every create until `readers` inventory reads were made, once armed: the racing syncs of
 * both replicas all read the hypervisor before either creates, the worst interleaving there is.
 */
export class RaceGate {
  armed = false;
  #reads = 0;
  #open: () => void = () => undefined;
  readonly opened = new Promise<void>((resolve) => (this.#open = resolve));

  constructor(private readonly readers: number) {}

  read(): void {
    if (this.armed && ++this.#reads === this.readers) this.#open();
  }

  wrap(registry: DriverRegistry): DriverRegistry {
    return {
      driverFor: async (provider) => {
        const driver = await registry.driverFor(provider);
        const inventory: Driver['inventory'] = async (options) => {
          const answer = await driver.inventory(options);
          this.read();
          return answer;
        };
        const create: Driver['create'] = async (spec, options) => {
          if (this.armed) await this.opened;
          return driver.create(spec, options);
        };
        return new Proxy(driver, {
          get: (target, key) => {
            if (key === 'inventory') return inventory;
            if (key === 'create') return create;
            const value: unknown = Reflect.get(target, key, target);
            return typeof value === 'function' ? value.bind(target) : value;
          },
        });
      },
    };
  }
}


interface Injectable {
  inject(options: { method: 'POST'; url: string; payload: object }): Promise<{ statusCode: number; body: string; json(): unknown }>;
}

interface RaceEnv {
  vm(name: string): object | undefined;
  cluster: { updateStatus(apiVersion: string, kind: string, namespace: string, name: string, status: Record<string, unknown>): unknown };
}

/**
 * One sync of each named VM at once, alternating between two hook-server replicas, each answer's
 * status written as Metacontroller writes it. `related` is what Metacontroller sends along (the
 * Provider, class, image and policy the VMs share). Answers that are not 200 are returned as errors.
 */
export async function raceSyncs(env: RaceEnv, replicas: [Injectable, Injectable], names: readonly string[], related: object): Promise<string[]> {
  const errors: string[] = [];
  const answers = await Promise.all(
    names.map(async (name, i) => {
      const response = await replicas[i % 2]?.inject({
        method: 'POST',
        url: '/hooks/virtualmachine/sync',
        payload: { controller: {}, parent: env.vm(name) ?? {}, children: {}, related, finalizing: false },
      });
      if (response?.statusCode !== 200) errors.push(`${name}: ${response?.statusCode} ${response?.body}`);
      return { name, status: (response?.json() as { status?: Record<string, unknown> } | undefined)?.status };
    }),
  );
  for (const { name, status } of answers) if (status) env.cluster.updateStatus('infra.virtrigaud.io/v1beta1', 'VirtualMachine', 'default', name, status);
  return errors;
}
