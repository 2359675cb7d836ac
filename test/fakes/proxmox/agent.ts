/**
 * The QEMU guest agent endpoints (`…/agent/*`): answered only when `agent` is enabled, the VM
 * runs, the guest runs qemu-guest-agent and has booted (bootMs after start).
 */
import { reply, type Ctx, type Handler, type Reply } from './context.js';
import { parseNet } from './drives.js';
import { fail } from './errors.js';
import { powerOff } from './power.js';
import { agentEnabled, type VmRec, type World } from './state.js';
import { parsePropertyString } from './validate.js';

/** assert_agent_available, in qemu-server's order. */
function agentVm(ctx: Ctx): VmRec {
  const node = ctx.world.node(ctx.params.need('node')).name;
  const vmid = ctx.params.int('vmid') ?? 0;
  const vm = ctx.world.loadConfig(node, vmid);
  if (!agentEnabled(vm.conf)) fail('No QEMU guest agent configured');
  if (!ctx.world.checkRunning(node, vmid)) fail(`VM ${vmid} is not running`);
  if (!ctx.world.agentAnswers(vm)) fail('QEMU guest agent is not running');
  return vm;
}

const statistics = (seed: number): Record<string, number> => ({
  'rx-bytes': 324_105 + seed,
  'rx-dropped': 0,
  'rx-errs': 0,
  'rx-packets': 4025 + seed,
  'tx-bytes': 368_860 + seed,
  'tx-dropped': 0,
  'tx-errs': 0,
  'tx-packets': 3479 + seed,
});

/** EUI-64 link-local address of a MAC. */
function linkLocal(mac: string): string {
  const bytes = mac.split(':').map((part) => Number.parseInt(part, 16));
  const [b0 = 0, b1 = 0, b2 = 0, b3 = 0, b4 = 0, b5 = 0] = bytes;
  const groups = [((b0 ^ 2) << 8) | b1, (b2 << 8) | 0xff, (0xfe << 8) | b3, (b4 << 8) | b5];
  return `fe80::${groups.map((group) => group.toString(16)).join(':')}`;
}

/** What the guest reports: lo, then per NIC the ipconfig address (static or a deterministic DHCP lease) and fe80::. */
export function guestInterfaces(world: World, vm: VmRec): Record<string, unknown>[] {
  const result: Record<string, unknown>[] = [
    {
      name: 'lo',
      'hardware-address': '00:00:00:00:00:00',
      'ip-addresses': [
        { 'ip-address': '127.0.0.1', 'ip-address-type': 'ipv4', prefix: 8 },
        { 'ip-address': '::1', 'ip-address-type': 'ipv6', prefix: 128 },
      ],
      statistics: statistics(0),
    },
  ];
  for (let index = 0; index < 32; index++) {
    const value = vm.conf.get(`net${index}`);
    if (value === undefined) continue;
    const mac = (parseNet(value)['macaddr'] ?? '00:00:00:00:00:00').toLowerCase();
    const ipconfigText = vm.conf.get(`ipconfig${index}`);
    let ipconfig: Record<string, string> = {};
    try {
      ipconfig = ipconfigText === undefined ? {} : parsePropertyString('pve-qm-ipconfig', ipconfigText);
    } catch {
      ipconfig = {};
    }
    const addresses: Record<string, unknown>[] = [];
    const ip = ipconfig['ip'] ?? (ipconfig['ip6'] === undefined ? 'dhcp' : undefined);
    const v4 = ip === undefined ? undefined : /^(.+)\/(\d+)$/.exec(ip);
    if (v4) addresses.push({ 'ip-address': v4[1], 'ip-address-type': 'ipv4', prefix: Number(v4[2]) });
    else if (ip === 'dhcp') {
      addresses.push({ 'ip-address': `10.${(vm.vmid >> 8) & 255}.${vm.vmid & 255}.${100 + index}`, 'ip-address-type': 'ipv4', prefix: 24 });
    }
    const ip6 = ipconfig['ip6'];
    const v6 = ip6 === undefined ? undefined : /^(.+)\/(\d+)$/.exec(ip6);
    if (v6) addresses.push({ 'ip-address': v6[1], 'ip-address-type': 'ipv6', prefix: Number(v6[2]) });
    else if (ip6 === 'dhcp' || ip6 === 'auto') {
      addresses.push({ 'ip-address': `fd00:${vm.vmid.toString(16)}::${(100 + index).toString(16)}`, 'ip-address-type': 'ipv6', prefix: 64 });
    }
    addresses.push({ 'ip-address': linkLocal(mac), 'ip-address-type': 'ipv6', prefix: 64 });
    result.push({ name: `eth${index}`, 'hardware-address': mac, 'ip-addresses': addresses, statistics: statistics(index + 1) });
  }
  return result;
}

const execResults = new WeakMap<World, Map<number, Record<string, unknown>>>();

const agentReply = (result: unknown): Reply => reply({ result });

const commands: Record<string, (ctx: Ctx, vm: VmRec) => Reply> = {
  ping: () => agentReply({}),
  'network-get-interfaces': (ctx, vm) => agentReply(guestInterfaces(ctx.world, vm)),
  'get-host-name': (_, vm) => agentReply({ 'host-name': vm.conf.get('name') ?? `vm${vm.vmid}` }),
  'get-osinfo': () =>
    agentReply({
      id: 'ubuntu',
      name: 'Ubuntu',
      'pretty-name': 'Ubuntu 22.04.4 LTS',
      version: '22.04.4 LTS (Jammy Jellyfish)',
      'version-id': '22.04',
      'kernel-release': '5.15.0-105-generic',
      'kernel-version': '#115-Ubuntu SMP',
      machine: 'x86_64',
    }),
  info: (_, vm) => {
    // qemu-ga lists every command it knows; those turned off (`--blocked-rpcs`, a Windows guest
    // without VSS for fsfreeze) come with `enabled: false`.
    const freeze = vm.agentFsFreeze ?? true;
    const command = (name: string, enabled = true): Record<string, unknown> => ({ name, enabled, 'success-response': true });
    return agentReply({
      version: '6.2.0',
      supported_commands: [
        command('guest-ping'),
        command('guest-info'),
        command('guest-network-get-interfaces'),
        command('guest-fsfreeze-status', freeze),
        command('guest-fsfreeze-freeze', freeze),
        command('guest-fsfreeze-thaw', freeze),
        command('guest-shutdown'),
      ],
    });
  },
  shutdown: (ctx, vm) => {
    if (!vm.ignoresShutdown) ctx.world.schedule(ctx.world.now() + ctx.tasks.duration('qmshutdown'), () => powerOff(vm));
    return agentReply({});
  },
  exec: (ctx) => {
    const results = execResults.get(ctx.world) ?? new Map<number, Record<string, unknown>>();
    execResults.set(ctx.world, results);
    const pid = 3000 + results.size + 41;
    results.set(pid, { exited: 1, exitcode: 0, 'out-data': '' });
    return reply({ pid });
  },
  'exec-status': (ctx) => {
    const status = execResults.get(ctx.world)?.get(ctx.params.int('pid') ?? -1);
    if (!status) fail(`Agent error: Invalid parameter 'pid'`);
    return reply(status);
  },
};

function run(command: string): Handler {
  return (ctx) => {
    const vm = agentVm(ctx);
    const handler = commands[command];
    if (!handler) fail(`FakePve does not model the guest agent command '${command}'`);
    return handler(ctx, vm);
  };
}

export const agentHandlers: Record<string, Handler> = {
  'POST /nodes/{node}/qemu/{vmid}/agent': (ctx) => run(ctx.params.need('command'))(ctx),
  'POST /nodes/{node}/qemu/{vmid}/agent/ping': run('ping'),
  'GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces': run('network-get-interfaces'),
  'GET /nodes/{node}/qemu/{vmid}/agent/get-host-name': run('get-host-name'),
  'GET /nodes/{node}/qemu/{vmid}/agent/get-osinfo': run('get-osinfo'),
  'GET /nodes/{node}/qemu/{vmid}/agent/info': run('info'),
  'POST /nodes/{node}/qemu/{vmid}/agent/shutdown': run('shutdown'),
  'POST /nodes/{node}/qemu/{vmid}/agent/exec': run('exec'),
  'GET /nodes/{node}/qemu/{vmid}/agent/exec-status': run('exec-status'),
};
