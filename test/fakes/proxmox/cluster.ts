/** Version, cluster, node and storage endpoints (inventory a driver reads). */
import { reply, type Handler } from './context.js';
import { paramError } from './errors.js';
import { vmStatus } from './qemu.js';
import type { World } from './state.js';
import type { StorageRec } from './storage.js';

const VERSIONS = {
  '9.1': { release: '9.1', version: '9.1.9', repoid: 'ee7bad0a3d1546c9', kernel: '6.17.2-1-pve' },
  '8.4': { release: '8.4', version: '8.4.18', repoid: '40eb4ac16f053344', kernel: '6.8.12-11-pve' },
} as const;

const fingerprint = (name: string): string =>
  Array.from({ length: 32 }, (_, i) => ((name.charCodeAt(i % name.length) * (i + 7)) & 0xff).toString(16).toUpperCase().padStart(2, '0')).join(':');

function nodeUsage(world: World, name: string): { mem: number; cpu: number; uptime: number } {
  const node = world.nodes.get(name);
  const running = [...world.vms.values()].filter((vm) => vm.node === name && vm.power !== 'stopped').length;
  return {
    mem: 2 * 1024 ** 3 + running * 1024 ** 3,
    cpu: 0.01 + running * 0.005,
    uptime: node ? Math.floor((world.now() - node.bootedAt) / 1000) : 0,
  };
}

function storageRow(world: World, storage: StorageRec, node: string): Record<string, unknown> {
  const used = world.volumes.usedBytes(storage.id, node);
  return {
    storage: storage.id,
    type: storage.type,
    content: [...storage.content].sort().join(','),
    shared: storage.shared ? 1 : 0,
    active: 1,
    enabled: 1,
    total: storage.capacityBytes,
    used,
    avail: Math.max(0, storage.capacityBytes - used),
    used_fraction: storage.capacityBytes > 0 ? used / storage.capacityBytes : 0,
  };
}

export const clusterHandlers: Record<string, Handler> = {
  'GET /version': (ctx) => {
    const { release, version, repoid } = VERSIONS[ctx.world.options.version];
    return reply({ release, version, repoid });
  },

  'GET /cluster/resources': (ctx) => {
    const world = ctx.world;
    const type = ctx.params.str('type');
    const rows: Record<string, unknown>[] = [];
    if (type === undefined || type === 'vm') {
      for (const vm of world.vms.values()) {
        const status = vmStatus(world, vm);
        const row: Record<string, unknown> = {
          id: `qemu/${vm.vmid}`,
          type: 'qemu',
          vmid: vm.vmid,
          name: status['name'],
          node: vm.node,
          // A down node's VMs keep their row (names, locks and tags come from /etc/pve, which
          // every node has), but their status is no longer reported (API2Tools extract_vm_stats).
          status: world.isNodeDown(vm.node) ? 'unknown' : status['status'],
          template: status['template'] ?? 0,
          maxcpu: status['cpus'],
          maxmem: status['maxmem'],
          maxdisk: status['maxdisk'],
          mem: status['mem'],
          cpu: status['cpu'],
          disk: 0,
          netin: status['netin'],
          netout: status['netout'],
          diskread: status['diskread'],
          diskwrite: status['diskwrite'],
          uptime: status['uptime'],
        };
        if (status['tags'] !== undefined) row['tags'] = status['tags'];
        if (status['lock'] !== undefined) row['lock'] = status['lock'];
        rows.push(row);
      }
    }
    if (type === undefined || type === 'node') {
      for (const node of world.nodes.values()) {
        const usage = nodeUsage(world, node.name);
        if (world.isNodeDown(node.name)) {
          // API2Tools extract_node_stats: a member that is not online, without current stats.
          rows.push({ id: `node/${node.name}`, type: 'node', node: node.name, status: 'offline', level: '', maxcpu: node.cpus, maxmem: node.memoryBytes });
          continue;
        }
        rows.push({
          id: `node/${node.name}`,
          type: 'node',
          node: node.name,
          status: 'online',
          level: '',
          'cgroup-mode': 2,
          maxcpu: node.cpus,
          maxmem: node.memoryBytes,
          mem: usage.mem,
          cpu: usage.cpu,
          maxdisk: 100 * 1024 ** 3,
          disk: 12 * 1024 ** 3,
          uptime: usage.uptime,
        });
      }
    }
    if (type === undefined || type === 'storage') {
      for (const storage of world.volumes.storages.values()) {
        for (const node of world.volumes.nodesOf(storage)) {
          const row = storageRow(world, storage, node);
          rows.push({
            id: `storage/${node}/${storage.id}`,
            type: 'storage',
            storage: storage.id,
            node,
            status: 'available',
            plugintype: storage.type,
            content: row['content'],
            shared: row['shared'],
            disk: row['used'],
            maxdisk: row['total'],
          });
        }
      }
    }
    return reply(rows);
  },

  // Perl returns the id as a string although the schema says integer.
  'GET /cluster/nextid': (ctx) => {
    const vmid = ctx.params.int('vmid');
    if (vmid === undefined) return reply(String(ctx.world.nextFreeVmid()));
    if (ctx.world.vms.has(vmid)) paramError({ vmid: `VM ${vmid} already exists` });
    return reply(String(vmid));
  },

  'GET /cluster/status': (ctx) => {
    const nodes = [...ctx.world.nodes.values()];
    return reply([
      { type: 'cluster', id: 'cluster', name: 'pve-cluster', nodes: nodes.length, quorate: 1, version: nodes.length + 3 },
      ...nodes.map((node, index) => ({
        type: 'node',
        id: `node/${node.name}`,
        name: node.name,
        nodeid: node.nodeid,
        ip: node.ip,
        online: ctx.world.isNodeDown(node.name) ? 0 : 1,
        local: index === 0 ? 1 : 0,
        level: '',
      })),
    ]);
  },

  'GET /cluster/ha/resources': () => reply([]),
  'GET /pools': () => reply([]),

  'GET /nodes': (ctx) =>
    reply(
      [...ctx.world.nodes.values()].map((node) => {
        const usage = nodeUsage(ctx.world, node.name);
        return {
          id: `node/${node.name}`,
          type: 'node',
          node: node.name,
          status: ctx.world.isNodeDown(node.name) ? 'offline' : 'online',
          level: '',
          ssl_fingerprint: fingerprint(node.name),
          maxcpu: node.cpus,
          maxmem: node.memoryBytes,
          mem: usage.mem,
          cpu: usage.cpu,
          maxdisk: 100 * 1024 ** 3,
          disk: 12 * 1024 ** 3,
          uptime: usage.uptime,
        };
      }),
    ),

  'GET /nodes/{node}/status': (ctx) => {
    const node = ctx.world.node(ctx.params.need('node'));
    const usage = nodeUsage(ctx.world, node.name);
    const release = VERSIONS[ctx.world.options.version];
    return reply({
      uptime: usage.uptime,
      idle: 0,
      loadavg: ['0.31', '0.27', '0.22'],
      kversion: `Linux ${release.kernel} #1 SMP PREEMPT_DYNAMIC PMX`,
      'current-kernel': { sysname: 'Linux', release: release.kernel, machine: 'x86_64', version: '#1 SMP PREEMPT_DYNAMIC PMX' },
      'boot-info': { mode: 'efi', secureboot: 0 },
      cpuinfo: { model: 'AMD EPYC 7302P 16-Core Processor', sockets: 1, cores: node.cpus / 2, cpus: node.cpus, mhz: '3000.000', hvm: '1', user_hz: 100, flags: 'fpu vme de pse tsc msr pae mce cx8 apic sep mtrr svm' },
      cpu: usage.cpu,
      wait: 0.0007,
      memory: { total: node.memoryBytes, used: usage.mem, free: node.memoryBytes - usage.mem, available: node.memoryBytes - usage.mem },
      ksm: { shared: 0 },
      swap: { total: 8 * 1024 ** 3, used: 0, free: 8 * 1024 ** 3 },
      pveversion: `pve-manager/${release.version}/${release.repoid}`,
      rootfs: { total: 100 * 1024 ** 3, avail: 88 * 1024 ** 3, used: 12 * 1024 ** 3, free: 88 * 1024 ** 3 },
    });
  },

  'GET /nodes/{node}/network': (ctx) => {
    ctx.world.node(ctx.params.need('node'));
    const type = ctx.params.str('type');
    if (type !== undefined && type !== 'bridge' && type !== 'any_bridge') return reply([]);
    return reply(
      [...ctx.world.bridges].sort().map((iface, index) => ({
        iface,
        type: 'bridge',
        active: 1,
        autostart: 1,
        method: index === 0 ? 'static' : 'manual',
        families: ['inet'],
        bridge_ports: `eno${index + 1}`,
        bridge_stp: 'off',
        bridge_fd: '0',
        priority: index + 3,
      })),
    );
  },

  'GET /nodes/{node}/storage': (ctx) => {
    const world = ctx.world;
    const node = world.node(ctx.params.need('node')).name;
    const content = (ctx.params.str('content') ?? '').split(/[,;\s]+/).filter((item) => item !== '');
    const only = ctx.params.str('storage');
    const rows = [...world.volumes.storages.values()]
      .filter((storage) => world.volumes.availableOn(storage, node))
      .filter((storage) => only === undefined || storage.id === only)
      .filter((storage) => content.length === 0 || content.some((item) => storage.content.includes(item)))
      .map((storage) => storageRow(world, storage, node));
    return reply(rows);
  },

  'GET /nodes/{node}/storage/{storage}/content': (ctx) => {
    const world = ctx.world;
    const node = world.node(ctx.params.need('node')).name;
    const storage = world.volumes.checkEnabled(ctx.params.need('storage'), node);
    const content = ctx.params.str('content');
    const vmid = ctx.params.int('vmid');
    const rows = world.volumes
      .list(storage.id, node)
      .filter((volume) => content === undefined || volume.content === content)
      .filter((volume) => vmid === undefined || volume.vmid === vmid)
      .map((volume) => {
        const row: Record<string, unknown> = { volid: volume.volid, content: volume.content, format: volume.format, size: volume.size, ctime: volume.ctime };
        if (volume.vmid !== undefined) row['vmid'] = volume.vmid;
        if (volume.parent !== undefined) row['parent'] = volume.parent.split(':')[1];
        if (volume.content === 'images') row['used'] = Math.floor(volume.size / 10);
        return row;
      });
    return reply(rows);
  },

  'GET /storage': (ctx) =>
    reply(
      [...ctx.world.volumes.storages.values()].map((storage) => {
        const row: Record<string, unknown> = { storage: storage.id, type: storage.type, content: storage.content.join(','), shared: storage.shared ? 1 : 0, digest: '8a1d2b6f0e4c3a9b7d5e1f2a3b4c5d6e7f809a1b' };
        if (storage.nodes) row['nodes'] = storage.nodes.join(',');
        return row;
      }),
    ),
};
