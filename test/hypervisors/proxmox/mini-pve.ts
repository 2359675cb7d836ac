// A handful of VMs behind the stub server: enough PVE to drive the driver's verbs in unit tests.
// It answers reads from fixed data (recorded bodies where they fit) and lets each test add or
// override routes; it validates nothing, the fake in test/fakes/proxmox does that.

import type { Test } from 'tap';
import type { Identity } from '../../../src/contracts/driver.js';
import { ProxmoxDriver, type ProxmoxDriverOptions } from '../../../src/hypervisors/proxmox/driver.js';
import { formatMarker, ownerTag, type Marker } from '../../../src/hypervisors/proxmox/identity.js';
import { pveError, recordedData, startStub, stubConfig, type Handler, type Stub, type StubRequest, type StubResponse } from './pve-stub.js';

export interface MiniVM {
  vmid: number;
  node: string;
  name: string;
  config: Record<string, unknown>;
  status?: Record<string, unknown>;
  /** `GET …/pending` rows; by default the config with nothing pending. */
  pending?: { key: string; value?: unknown; pending?: unknown; delete?: number }[];
  template?: boolean;
  /** Tags shown in the resource list (the config's `tags` is separate, as on PVE). */
  tags?: string;
  lock?: string;
}

export const OWNER: Identity = { uid: '6f1c2a3b-0000-4000-8000-0000000000aa', namespace: 'apps', name: 'web' };

export function marker(owner: Identity, extra: Partial<Marker> = {}): string {
  return formatMarker({ uid: owner.uid, namespace: owner.namespace, name: owner.name, disks: { root: 'scsi0' }, nics: { lan: 'net0' }, ...extra });
}

/** A stopped VM of OWNER on pve1, configured, with one disk and one NIC. */
export function ownedVM(vmid = 120, overrides: Partial<MiniVM> = {}): MiniVM {
  return {
    vmid,
    node: 'pve1',
    name: 'web',
    tags: `virtrigaud;${ownerTag(OWNER.uid)}`,
    config: {
      name: 'web',
      cores: 2,
      sockets: 1,
      memory: '4096',
      agent: '1',
      scsi0: `local-lvm:vm-${vmid}-disk-0,size=20G`,
      ide2: `local-lvm:vm-${vmid}-cloudinit,media=cdrom`,
      net0: 'virtio=BC:24:11:00:00:01,bridge=vmbr0',
      boot: 'order=scsi0',
      description: marker(OWNER),
      tags: `virtrigaud;${ownerTag(OWNER.uid)}`,
      digest: '0123456789abcdef0123456789abcdef01234567',
    },
    status: { status: 'stopped', qmpstatus: 'stopped', vmid, name: 'web' },
    ...overrides,
  };
}

export const TEMPLATE: MiniVM = {
  vmid: 9000,
  node: 'pve1',
  name: 'ubuntu-22-template',
  template: true,
  config: { ...(recordedData('qemu-config.template-cloudinit.pve9') as Record<string, unknown>), scsi0: 'local-lvm:base-9000-disk-0,size=10G' },
  status: recordedData('qemu-status-current.stopped-template.pve9') as Record<string, unknown>,
};

const NODES = [
  { type: 'node', id: 'node/pve1', node: 'pve1', status: 'online', maxcpu: 16, maxmem: 64 * 2 ** 30, mem: 40 * 2 ** 30 },
  { type: 'node', id: 'node/pve2', node: 'pve2', status: 'online', maxcpu: 16, maxmem: 64 * 2 ** 30, mem: 8 * 2 ** 30 },
];
const STORAGES = ['pve1', 'pve2'].flatMap((node) => [
  { type: 'storage', id: `storage/${node}/local-lvm`, storage: 'local-lvm', node, shared: 0, content: 'images,rootdir', maxdisk: 100 * 2 ** 30, disk: 10 * 2 ** 30, status: 'available' },
  { type: 'storage', id: `storage/${node}/ceph`, storage: 'ceph', node, shared: 1, content: 'images', maxdisk: 1000 * 2 ** 30, disk: 100 * 2 ** 30, status: 'available' },
  { type: 'storage', id: `storage/${node}/local`, storage: 'local', node, shared: 0, content: 'iso,snippets', maxdisk: 50 * 2 ** 30, disk: 1 * 2 ** 30, status: 'available' },
]);

const VM_PATH = /^\/nodes\/([^/]+)\/qemu\/(\d+)(\/.*)?$/;

export interface MiniPve {
  stub: Stub;
  vms: Map<number, MiniVM>;
  driver: ProxmoxDriver;
  /** Route overrides: `METHOD /path` → response or handler; checked before the built-in routes. */
  routes: Map<string, Handler | StubResponse>;
}

export async function miniPve(t: Test, vms: MiniVM[], options: { env?: Record<string, string>; driver?: ProxmoxDriverOptions } = {}): Promise<MiniPve> {
  const state = new Map(vms.map((vm) => [vm.vmid, vm]));
  const overrides = new Map<string, Handler | StubResponse>();
  const handler: Handler = (request: StubRequest) => {
    const override = overrides.get(`${request.method} ${request.path}`);
    if (override !== undefined) return typeof override === 'function' ? override(request) : override;
    return builtIn(state, request);
  };
  const stub = await startStub(handler);
  t.teardown(stub.close);
  const driver = new ProxmoxDriver(stubConfig(stub, options.env), options.driver);
  t.teardown(() => driver.close());
  return { stub, vms: state, driver, routes: overrides };
}

function resourceRows(state: Map<number, MiniVM>, type: string | null): unknown[] {
  const vms = [...state.values()].map((vm) => {
    const row: Record<string, unknown> = {
      id: `qemu/${vm.vmid}`,
      type: 'qemu',
      vmid: vm.vmid,
      node: vm.node,
      name: vm.name,
      template: vm.template ? 1 : 0,
      status: String(vm.status?.['status'] ?? 'stopped'),
      maxcpu: Number(vm.config['cores'] ?? 1),
      maxmem: Number(vm.config['memory'] ?? 512) * 2 ** 20,
    };
    if (vm.tags !== undefined) row['tags'] = vm.tags;
    if (vm.lock !== undefined) row['lock'] = vm.lock;
    return row;
  });
  return type === 'vm' ? vms : [...vms, ...NODES, ...STORAGES];
}

function builtIn(state: Map<number, MiniVM>, request: StubRequest): StubResponse {
  if (request.method === 'GET' && request.path === '/cluster/resources') return { data: resourceRows(state, request.query.get('type')) };
  if (request.method === 'GET' && request.path === '/version') return { data: recordedData('version.pve9') };
  if (request.method === 'GET' && request.path === '/cluster/tasks') return { data: [] };
  if (request.method === 'GET' && request.path === '/cluster/nextid') {
    const asked = request.query.get('vmid');
    if (asked !== null) return state.has(Number(asked)) ? pveError(400, 'Parameter verification failed.', { vmid: `VM ${asked} already exists` }) : { data: asked };
    let next = 100;
    while (state.has(next)) next += 1;
    return { data: String(next) };
  }
  if (request.method === 'GET' && /^\/nodes\/[^/]+\/network$/.test(request.path)) {
    return { data: ['vmbr0', 'vmbr1', 'vmbr2'].map((iface) => ({ iface, type: 'bridge', active: 1 })) };
  }
  const match = VM_PATH.exec(request.path);
  if (match) {
    const [, node = '', id = '', rest = ''] = match;
    const vm = state.get(Number(id));
    if (vm === undefined || vm.node !== node) return pveError(500, `Configuration file 'nodes/${node}/qemu-server/${id}.conf' does not exist`);
    if (request.method === 'GET' && rest === '/config') return { data: { ...vm.config, ...(vm.lock === undefined ? {} : { lock: vm.lock }) } };
    if (request.method === 'GET' && rest === '/pending') return { data: vm.pending ?? Object.entries(vm.config).map(([key, value]) => ({ key, value })) };
    if (request.method === 'GET' && rest === '/status/current') return { data: { ...vm.status, ...(vm.lock === undefined ? {} : { lock: vm.lock }) } };
    if (request.method === 'GET' && rest === '/agent/network-get-interfaces') return pveError(500, 'QEMU guest agent is not running');
    const upid = (type: string): StubResponse => ({ data: `UPID:${node}:0003A3B0:01C3B4CC:67F0C1E2:${type}:${id}:virtrigaud@pve!vrtg:` });
    if (request.method === 'POST' && rest === '/clone') return upid('qmclone');
    if (request.method === 'POST' && rest === '/config') return upid('qmconfig');
    if (request.method === 'POST' && rest.startsWith('/status/')) return upid(`qm${rest.slice('/status/'.length)}`);
    if (request.method === 'DELETE' && rest === '') return upid('qmdestroy');
    if (request.method === 'PUT' && rest === '/resize') return upid('resize');
    if (request.method === 'POST' && rest === '/snapshot') return upid('qmsnapshot');
    if (request.method === 'DELETE' && rest.startsWith('/snapshot/')) return upid('qmdelsnapshot');
  }
  const message = `Method '${request.method} ${request.path}' not implemented`;
  return { status: 501, reason: message, body: { data: null, message } };
}
