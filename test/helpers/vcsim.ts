// vcsim (govmomi's vSphere simulator) for the vSphere driver tests: one instance per test, on
// 127.0.0.1 with a free port, stopped in teardown. The binaries come from
// test/vsphere/build-vcsim.sh (`.cache/vcsim/bin/`), or $VCSIM_BIN / $GOVC_BIN.
//
// When vcsim is missing the tests skip, unless VIRTRIGAUD_REQUIRE_PEERS=1 (CI), where they fail.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Test } from 'tap';
import { VsphereClient } from '../../src/hypervisors/vsphere/client.js';
import { vsphereConfigFromEnv } from '../../src/hypervisors/vsphere/config.js';
import { retrieveAll } from '../../src/hypervisors/vsphere/property-collector.js';
import { moref, optionValue, typed } from '../../src/hypervisors/vsphere/soap.js';

const run = promisify(execFile);
const ROOT = resolve(new URL('../..', import.meta.url).pathname);

export const VCSIM_USER = 'vrtg-user';
export const VCSIM_PASSWORD = 'vrtg-pass-Not-A-Secret';

export function vcsimBinaries(): { vcsim: string; govc: string } | undefined {
  const vcsim = process.env['VCSIM_BIN'] ?? join(ROOT, '.cache/vcsim/bin/vcsim');
  const govc = process.env['GOVC_BIN'] ?? join(ROOT, '.cache/vcsim/bin/govc');
  return existsSync(vcsim) && existsSync(govc) ? { vcsim, govc } : undefined;
}

/**
 * True when the tests may use vcsim. Without it: fails the test under VIRTRIGAUD_REQUIRE_PEERS=1,
 * else skips it with the reason.
 */
export function requireVcsim(t: Test): boolean {
  if (vcsimBinaries() !== undefined) return true;
  const why = 'vcsim not built: run `bash test/vsphere/build-vcsim.sh` (or set VCSIM_BIN and GOVC_BIN)';
  if (process.env['VIRTRIGAUD_REQUIRE_PEERS'] === '1') t.fail(`${why}; VIRTRIGAUD_REQUIRE_PEERS=1 requires it`);
  else t.plan(0, why);
  return false;
}

export interface Vcsim {
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** The environment a vSphere driver needs to reach this vcsim. */
  env: Record<string, string>;
  /** Runs govc against this vcsim; answers its stdout. */
  govc(...args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export interface VcsimOptions {
  /** Extra vcsim flags, e.g. ['-cluster', '1']. */
  flags?: string[];
}

/** Starts vcsim; `t.teardown` stops it and removes its datastore directories. */
export async function startVcsim(t: Test, options: VcsimOptions = {}): Promise<Vcsim> {
  const binaries = vcsimBinaries();
  if (binaries === undefined) throw new Error('vcsim is not built');
  const dir = mkdtempSync(join(tmpdir(), 'vrtg-vcsim-'));
  const child: ChildProcess = spawn(
    binaries.vcsim,
    ['-l', '127.0.0.1:0', '-tls=false', '-username', VCSIM_USER, '-password', VCSIM_PASSWORD, ...(options.flags ?? [])],
    { env: { ...process.env, TMPDIR: dir }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stopped = false;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (child.exitCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  t.teardown(stop);

  const url = await new Promise<string>((done, fail) => {
    let output = '';
    const timer = setTimeout(() => fail(new Error(`vcsim did not start: ${output}`)), 15_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /GOVC_URL=http:\/\/[^@\s]*@(127\.0\.0\.1:\d+)\/sdk/.exec(output);
      if (match) {
        clearTimeout(timer);
        done(`http://${match[1]}`);
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`vcsim exited (${code}): ${output}`));
    });
  });
  await waitUntilAnswering(url);
  const govcUrl = `${url.replace('http://', `http://${VCSIM_USER}:${VCSIM_PASSWORD}@`)}/sdk`;
  return {
    url,
    env: { VSPHERE_ENDPOINT: url, VSPHERE_USERNAME: VCSIM_USER, VSPHERE_PASSWORD: VCSIM_PASSWORD },
    async govc(...args: string[]) {
      const { stdout } = await run(binaries.govc, args, { env: { ...process.env, GOVC_URL: govcUrl, GOVC_INSECURE: '1' }, timeout: 30_000 });
      return stdout;
    },
    stop,
  };
}

async function waitUntilAnswering(url: string): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    try {
      const response = await fetch(`${url}/about`);
      await response.arrayBuffer();
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((done) => setTimeout(done, 50));
  }
  throw new Error(`vcsim at ${url} does not answer`);
}

/**
 * The inventory the conformance and lifecycle tests expect: the standalone host's first VM,
 * powered off, renamed `ubuntu-22-template` and marked as a template.
 */
export async function prepareTemplate(vcsim: Vcsim, name = 'ubuntu-22-template'): Promise<void> {
  await vcsim.govc('vm.power', '-off', '-force', 'DC0_H0_VM0');
  await vcsim.govc('object.rename', '/DC0/vm/DC0_H0_VM0', name);
  await vcsim.govc('vm.markastemplate', name);
}

/**
 * The VMs vcsim holds whose identity names this owner UID, read with govc (outside the driver and
 * any proxy), with their create state (`virtrigaud.state`).
 */
export async function vmsOwnedBy(
  vcsim: Vcsim,
  uid: string,
): Promise<{ id: string; name: string; state: string | undefined; cpus: number; memoryMB: number; powerState: string }[]> {
  const paths = (await vcsim.govc('find', '/', '-type', 'm')).split('\n').filter((line) => line !== '');
  if (paths.length === 0) return [];
  const info = JSON.parse(await vcsim.govc('vm.info', '-json', '-e', ...paths)) as {
    VirtualMachines?: {
      Self: { Value: string };
      Name: string;
      Config?: { Hardware: { NumCPU: number; MemoryMB: number }; ExtraConfig?: { Key: string; Value: unknown }[] };
      Runtime: { PowerState: string };
    }[];
  };
  // vcsim 0.24.2 appends an extraConfig key set again (applyExtraConfig) where vCenter replaces it:
  // the last entry is the current value.
  const extra = (vm: { Config?: { ExtraConfig?: { Key: string; Value: unknown }[] } }, key: string) =>
    vm.Config?.ExtraConfig?.filter((option) => option.Key === key).at(-1)?.Value;
  return (info.VirtualMachines ?? [])
    .filter((vm) => extra(vm, 'virtrigaud.owner.uid') === uid)
    .map((vm) => {
      const state = extra(vm, 'virtrigaud.state');
      return {
        id: vm.Self.Value,
        name: vm.Name,
        state: typeof state === 'string' ? state : undefined,
        cpus: vm.Config?.Hardware.NumCPU ?? 0,
        memoryMB: vm.Config?.Hardware.MemoryMB ?? 0,
        powerState: vm.Runtime.PowerState,
      };
    });
}

/** Ends every session of the vSphere driver (found by its User-Agent), as an admin would. */
export async function killDriverSessions(vcsim: Vcsim): Promise<number> {
  const list = JSON.parse(await vcsim.govc('session.ls', '-json')) as { SessionList?: { Key: string; UserAgent?: string }[] };
  const keys = (list.SessionList ?? []).filter((session) => session.UserAgent === 'virtrigaud-vsphere').map((session) => session.Key);
  if (keys.length > 0) await vcsim.govc('session.rm', ...keys);
  return keys.length;
}

/**
 * Plays the guests' VMware Tools: every powered-on VM without an address gets one (vcsim's
 * `SET.guest.ipAddress` extraConfig, NOTES "Guest IP"), as a booted guest would report.
 */
export class VcsimGuests {
  readonly #client: VsphereClient;
  #next = 10;

  constructor(vcsim: Vcsim) {
    this.#client = new VsphereClient(vsphereConfigFromEnv(vcsim.env));
  }

  async assignAddresses(): Promise<void> {
    const { rootFolder } = await this.#client.serviceContent();
    const vms = await retrieveAll(this.#client, rootFolder, 'VirtualMachine', ['runtime.powerState', 'summary.guest.ipAddress'], undefined);
    for (const vm of vms) {
      if (vm.props.get('runtime.powerState')?.text !== 'poweredOn' || vm.props.get('summary.guest.ipAddress') !== undefined) continue;
      await this.setAddress(vm.ref.value, `192.0.2.${this.#next++}`);
    }
  }

  async setAddress(id: string, address: string): Promise<void> {
    await this.#client.call('ReconfigVM_Task', [
      moref('_this', { type: 'VirtualMachine', value: id }),
      typed('spec', 'VirtualMachineConfigSpec', [optionValue('extraConfig', 'SET.guest.ipAddress', address)]),
    ]);
  }

  close(): Promise<void> {
    return this.#client.close();
  }
}

export interface FakeVimRequest {
  method: string;
  body: string;
  cookie: string | undefined;
  soapAction: string | undefined;
  userAgent: string | undefined;
}

export interface FakeVimAnswer {
  status?: number;
  /** A file in test/fixtures/vsphere/. */
  fixture?: string;
  body?: string;
  setCookie?: string;
}

const FIXTURES = join(ROOT, 'test/fixtures/vsphere');

export function fixture(name: string): string {
  return readFileSync(join(FIXTURES, name), 'utf8');
}

/**
 * A scripted vim25 endpoint for unit tests of what vcsim cannot show (paging, expired sessions,
 * TLS): `answer` is asked first; RetrieveServiceContent, Login and Logout have captured defaults.
 */
export async function startFakeVim(
  t: Test,
  answer: (request: FakeVimRequest) => FakeVimAnswer | undefined,
  tls?: { key: string; cert: string },
): Promise<{ url: string; requests: FakeVimRequest[] }> {
  const requests: FakeVimRequest[] = [];
  const handler = (request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      const method = /<soapenv:Body><([A-Za-z_]+)/.exec(body)?.[1] ?? '';
      const header = (name: string) => {
        const value = request.headers[name];
        return Array.isArray(value) ? value.join(', ') : value;
      };
      const seen: FakeVimRequest = { method, body, cookie: header('cookie'), soapAction: header('soapaction'), userAgent: header('user-agent') };
      requests.push(seen);
      const given = answer(seen);
      const fallback: Record<string, FakeVimAnswer> = {
        RetrieveServiceContent: { fixture: '01-RetrieveServiceContent.response.xml' },
        Login: { fixture: '04-Login.response.xml', setCookie: `vmware_soap_session="fake-${requests.length}"; Path=/; HttpOnly; Secure` },
        Logout: { body: '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><LogoutResponse xmlns="urn:vim25"></LogoutResponse></soapenv:Body></soapenv:Envelope>' },
      };
      const chosen = given ?? fallback[method] ?? { status: 500, fixture: '38-RebootGuest-unimplemented.response.xml' };
      const headers: Record<string, string> = { 'content-type': 'text/xml; charset=utf-8' };
      if (chosen.setCookie !== undefined) headers['set-cookie'] = chosen.setCookie;
      response.writeHead(chosen.status ?? 200, headers);
      response.end(chosen.body ?? (chosen.fixture === undefined ? '' : fixture(chosen.fixture)));
    });
  };
  const server = tls === undefined ? createHttpServer(handler) : createHttpsServer(tls, handler);
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  t.teardown(
    () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  );
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return { url: `${tls === undefined ? 'http' : 'https'}://127.0.0.1:${port}`, requests };
}

/** What a proxy sends back: a body, a status and body, or 'drop' to lose the answer. */
export type ProxyAnswer = string | 'drop' | { status: number; body: string };

/**
 * A SOAP proxy in front of vcsim that can change what the driver sees: `intercept` gets each
 * request and vcsim's answer, and returns the answer to send (a body, or a status and body), or
 * 'drop' to lose it (the request still ran, as when a connection breaks after the server acted).
 * `instead` may answer a request itself, which then never reaches vcsim.
 */
export async function startSoapProxy(
  t: Test,
  target: string,
  intercept: (request: string, response: string) => ProxyAnswer | Promise<ProxyAnswer> = (_request, response) => response,
  instead: (request: string) => { status: number; body: string } | undefined = () => undefined,
): Promise<{ url: string; requests: string[] }> {
  const requests: string[] = [];
  const server = createHttpServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      requests.push(body);
      const own = instead(body);
      if (own !== undefined) {
        response.writeHead(own.status, { 'content-type': 'text/xml; charset=utf-8' });
        response.end(own.body);
        return;
      }
      void fetch(`${target}${request.url ?? '/'}`, {
        method: request.method ?? 'POST',
        headers: Object.fromEntries(Object.entries(request.headers).filter((entry): entry is [string, string] => typeof entry[1] === 'string' && entry[0] !== 'host' && entry[0] !== 'content-length')),
        body,
      })
        .then(async (answer) => {
          const text = await answer.text();
          const sent = await intercept(body, text);
          if (sent === 'drop') {
            request.socket.destroy();
            return;
          }
          const headers: Record<string, string> = { 'content-type': answer.headers.get('content-type') ?? 'text/xml' };
          const cookies = answer.headers.getSetCookie();
          const { status, body: answered } = typeof sent === 'string' ? { status: answer.status, body: sent } : sent;
          response.writeHead(status, { ...headers, ...(cookies.length > 0 ? { 'set-cookie': cookies } : {}) });
          response.end(answered);
        })
        .catch(() => request.socket.destroy());
    });
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  t.teardown(
    () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  );
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  return { url: `http://127.0.0.1:${port}`, requests };
}

/** How a held clone looks from outside while vcsim (which finishes clones at once) has made it. */
export type CloneHold =
  /** vCenter has not registered the new VM yet: only the running task (and its events) show. */
  | 'unregistered'
  /** The VM is registered but its configuration is not readable yet (vSphere API: `config` is "often unavailable during the initial phases of virtual machine creation"). */
  | 'unreadable';

export interface VmView {
  hideConfig: boolean;
  connectionState?: string;
}

interface HeldClone {
  task: string;
  vm: string;
  name: string;
  /** The eventChainId the task and its VmBeingClonedEvent share when `chainEvents` is on. */
  chain: number;
}

export interface FaultProxy {
  url: string;
  /** Every request body the driver sent, in order. */
  requests: string[];
  /** How many requests called this vim25 method. */
  calls(method: string): number;
  /**
   * From now on every CloneVM_Task is held: its task reads `running` with no result, and its VM
   * looks as `mode` says, until releaseClones. vCenter links a task to the events it posts by
   * `eventChainId` (vim.event.TaskEvent); vcsim 0.24.2 leaves it 0, so `chainEvents` gives the
   * task and its VmBeingClonedEvent one chain id, as vCenter would.
   */
  holdClones(mode: CloneHold, options?: { chainEvents?: boolean }): void;
  releaseClones(): void;
  /**
   * From now on every CreateSnapshot_Task is held: its task reads `running` with no result, and
   * its VM shows no snapshot tree (vcsim has made the snapshot), until releaseSnapshots.
   */
  holdSnapshots(): void;
  releaseSnapshots(): void;
  /** The moids of the VMs the held clones made (known to vcsim, hidden from the driver as the mode says). */
  heldVMs(): string[];
  /**
   * From now on, until restored, this VM shows as vCenter shows a VM it cannot read: without its
   * `config` (`hideConfig`, a datastore inaccessible) and/or with another `connectionState`.
   */
  degrade(vm: string, view: VmView): void;
  restore(vm: string): void;
}

const OBJECTS = /<objects>([\s\S]*?)<\/objects>/g;

function propSetPattern(name: RegExp | string): RegExp {
  const escaped = typeof name === 'string' ? name.replace(/\./g, '\\.') : name.source;
  return new RegExp(`<propSet><name>(?:${escaped})</name>[\\s\\S]*?</propSet>`, 'g');
}

function setPropText(block: string, name: string, text: string): string {
  return block.replace(new RegExp(`(<propSet><name>${name.replace(/\./g, '\\.')}</name><val[^>]*>)[^<]*(</val>)`), `$1${text}$2`);
}

/** A running task as vCenter reports it: no result, no completion time. */
function runningTask(block: string, chain: number | undefined): string {
  let out = block
    .replace('<state>success</state>', '<state>running</state>')
    .replace(/<result[^>]*>[^<]*<\/result>/, '')
    .replace(/<completeTime>[^<]*<\/completeTime>/, '')
    .replace(propSetPattern('info.result'), '')
    .replace(propSetPattern('info.completeTime'), '');
  out = setPropText(out, 'info.state', 'running');
  if (chain !== undefined) {
    out = out.replace(/<eventChainId>\d+<\/eventChainId>/, `<eventChainId>${chain}</eventChainId>`);
    out = setPropText(out, 'info.eventChainId', String(chain));
  }
  return out;
}

/** A VM as vCenter shows one it cannot read. */
function degradedVM(block: string, view: VmView): string {
  const out = view.hideConfig ? block.replace(propSetPattern(/config(?:\.[A-Za-z.]+)?/), '') : block;
  return view.connectionState === undefined ? out : setPropText(out, 'runtime.connectionState', view.connectionState);
}

/**
 * A SOAP proxy in front of vcsim whose faults persist until cleared: clones held running (vcsim
 * finishes them at once, NOTES "Tasks are synchronous") and VMs vSphere cannot read (vcsim has
 * no inaccessible datastores). It only rewrites vcsim's answers; every request still reaches vcsim.
 */
export async function startFaultProxy(t: Test, vcsim: Vcsim): Promise<FaultProxy> {
  let hold: { mode: CloneHold; chainEvents: boolean } | undefined;
  const held: HeldClone[] = [];
  let holdingSnapshots = false;
  const heldSnapshots: { task: string; vm: string }[] = [];
  const degraded = new Map<string, VmView>();
  const rewrite = (response: string): string => {
    let out = response.replace(OBJECTS, (whole, inner: string) => {
      const obj = /<obj type="(\w+)">([^<]*)<\/obj>/.exec(inner);
      if (obj === null) return whole;
      const [, type, id] = obj;
      if (hold !== undefined && type === 'Task') {
        const clone = held.find((entry) => entry.task === id);
        if (clone !== undefined) return `<objects>${runningTask(inner, hold.chainEvents ? clone.chain : undefined)}</objects>`;
      }
      if (holdingSnapshots && type === 'Task' && heldSnapshots.some((entry) => entry.task === id)) return `<objects>${runningTask(inner, undefined)}</objects>`;
      if (holdingSnapshots && type === 'VirtualMachine' && heldSnapshots.some((entry) => entry.vm === id)) {
        return `<objects>${inner.replace(propSetPattern('snapshot'), '')}</objects>`;
      }
      if (type === 'VirtualMachine' && id !== undefined) {
        if (hold !== undefined && held.some((entry) => entry.vm === id)) {
          return hold.mode === 'unregistered' ? '' : `<objects>${degradedVM(inner, { hideConfig: true })}</objects>`;
        }
        const view = degraded.get(id);
        if (view !== undefined) return `<objects>${degradedVM(inner, view)}</objects>`;
      }
      return whole;
    });
    if (hold?.chainEvents && out.includes('VmBeingClonedEvent')) {
      out = out.replace(/<returnval[^>]*VmBeingClonedEvent"[^>]*>[\s\S]*?<\/returnval>/g, (event) => {
        const dest = /<destName>([^<]*)<\/destName>/.exec(event)?.[1];
        const clone = held.find((entry) => entry.name === dest);
        return clone === undefined ? event : event.replace(/<chainId>\d+<\/chainId>/, `<chainId>${clone.chain}</chainId>`);
      });
    }
    return out;
  };
  const proxy = await startSoapProxy(t, vcsim.url, async (request, response) => {
    if (hold !== undefined && request.includes('<CloneVM_Task ')) {
      const task = /<returnval type="Task">([^<]+)<\/returnval>/.exec(response)?.[1];
      const name = /<\/folder><name>([^<]*)<\/name>/.exec(request)?.[1];
      if (task !== undefined && name !== undefined) {
        const result = (await vcsim.govc('object.collect', '-s', `Task:${task}`, 'info.result')).trim();
        held.push({ task, vm: result.replace(/^VirtualMachine:/, ''), name, chain: 900_000 + Number(task.replace(/\D/g, '')) });
      }
    }
    if (holdingSnapshots && request.includes('<CreateSnapshot_Task ')) {
      const task = /<returnval type="Task">([^<]+)<\/returnval>/.exec(response)?.[1];
      const vm = /<_this type="VirtualMachine">([^<]+)<\/_this>/.exec(request)?.[1];
      if (task !== undefined && vm !== undefined) heldSnapshots.push({ task, vm });
    }
    return hold === undefined && !holdingSnapshots && degraded.size === 0 ? response : rewrite(response);
  });
  return {
    url: proxy.url,
    requests: proxy.requests,
    calls: (method) => proxy.requests.filter((request) => request.includes(`<${method} `)).length,
    holdClones(mode, options = {}) {
      hold = { mode, chainEvents: options.chainEvents === true };
    },
    releaseClones() {
      hold = undefined;
      held.length = 0;
    },
    heldVMs: () => held.map((entry) => entry.vm),
    holdSnapshots() {
      holdingSnapshots = true;
    },
    releaseSnapshots() {
      holdingSnapshots = false;
      heldSnapshots.length = 0;
    },
    degrade(vm, view) {
      degraded.set(vm, view);
    },
    restore(vm) {
      degraded.delete(vm);
    },
  };
}
