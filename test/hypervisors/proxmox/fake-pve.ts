// The fake PVE on a fake clock, with as many driver instances as a test wants (runtime replicas, a
// restarted runtime): time passes only when the test says, so faults can last for hours in
// milliseconds, and every PVE call is counted from the fake's own request log.

import type { Test } from 'tap';
import type { Driver, Identity } from '../../../src/contracts/driver.js';
import { proxmoxConfigFromEnv } from '../../../src/hypervisors/proxmox/config.js';
import { ProxmoxDriver, type ProxmoxDriverOptions } from '../../../src/hypervisors/proxmox/driver.js';
import { FakePve, type FakePveOptions, type RequestRecord } from '../../fakes/proxmox/index.js';
import { FakeClock } from '../../helpers/clock.js';

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;

export const TOKEN_ENV = { PVE_TOKEN_ID: 'virtrigaud@pve!vrtg', PVE_TOKEN_SECRET: 'secret-token' };

export interface FakeCluster {
  fake: FakePve;
  clock: FakeClock;
  /** A new driver instance against the same PVE, closed with the test. */
  driver(options?: ProxmoxDriverOptions, env?: Record<string, string>): ProxmoxDriver;
  /** Requests so far that match, e.g. calls('POST', /\/clone$/). */
  calls(method?: string, path?: RegExp): RequestRecord[];
  /** Moves the fake clock in steps (so scheduled task steps run in order) until `done` holds. */
  until(done: () => Promise<boolean>, what: string, stepMs?: number, limitMs?: number): Promise<void>;
  /** Runs `task` to its end on the fake clock; fails when it fails. */
  finish(driver: Driver, task: string | undefined, what: string, stepMs?: number, limitMs?: number): Promise<void>;
}

export async function fakeCluster(t: Test, options: FakePveOptions = {}): Promise<FakeCluster> {
  const clock = new FakeClock();
  const fake = await FakePve.start({ clock, taskDurationMs: 2000, bootMs: 3000, authFailureDelayMs: 0, ...options });
  t.teardown(() => fake.close());
  const cluster: FakeCluster = {
    fake,
    clock,
    driver(driverOptions = {}, env = {}) {
      const driver = new ProxmoxDriver(proxmoxConfigFromEnv({ PVE_ENDPOINT: fake.url, ...TOKEN_ENV, ...env }), {
        now: () => clock.now(),
        ...driverOptions,
      });
      // A test may close an instance itself (a runtime that went away).
      t.teardown(() => driver.close().catch(() => undefined));
      return driver;
    },
    calls(method, path) {
      return fake.requests.filter((request) => (method === undefined || request.method === method) && (path === undefined || path.test(request.path)));
    },
    async until(done, what, stepMs = 1000, limitMs = 10 * MINUTE) {
      const deadline = clock.now() + limitMs;
      while (!(await done())) {
        if (clock.now() >= deadline) throw new Error(`${what}: not reached within ${limitMs / 1000} s of fake time`);
        clock.advance(stepMs);
      }
    },
    async finish(driver, task, what, stepMs, limitMs) {
      if (task === undefined) return;
      await cluster.until(
        async () => {
          const status = await driver.taskStatus(task);
          if (status.state === 'failed') throw new Error(`${what}: task failed: ${status.error ?? ''}`);
          return status.state === 'succeeded';
        },
        what,
        stepMs,
        limitMs,
      );
    },
  };
  return cluster;
}

/**
 * Creates the owner's VM through every step (a download, the clone or create, the configuration)
 * and answers its VMID.
 */
export async function createVM(cluster: FakeCluster, driver: Driver, spec: Parameters<Driver['create']>[0]): Promise<string> {
  for (let step = 0; step < 10; step += 1) {
    const created = await driver.create(spec);
    await cluster.finish(driver, created.task, `create step ${step}`);
    // No VM yet (PVE was downloading its image): the next create makes it.
    if (created.id === '') continue;
    const vm = await driver.describe(created.id);
    if (vm.lock === undefined && !vm.incomplete) return created.id;
  }
  throw new Error('the VM was not created in 10 steps');
}

export function owner(suffix: string, name = 'web'): Identity {
  return { uid: `5e0c7d1a-0000-4000-8000-${suffix.padStart(12, '0')}`, namespace: 'apps', name };
}
